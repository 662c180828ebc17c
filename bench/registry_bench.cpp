// registry_bench: drives the layerfarm registry client for bench/registry_bench.sh.
//
//   registry_bench generate DIR TOTAL_MB LAYERS   write a random multi-layer image as an OCI layout
//   registry_bench push DIR HOST/REPO:TAG          push the layout's image (plain HTTP to HOST)
//   registry_bench pull HOST/REPO:TAG DIR          pull linux/amd64 into a blob directory
// push and pull print "seconds=S bytes=B MBps=R" on one line.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "common/blob/directory_blob_store.h"
#include "common/oci/manifest.h"
#include "common/oci/media_types.h"
#include "common/registry/image_transfer.h"

namespace {

using namespace lf;

int fail(const Status& s) {
  std::cerr << "registry_bench: " << s.toString() << "\n";
  return 1;
}

Result<std::unique_ptr<blob::DirectoryBlobStore>> openStore(const std::string& dir) {
  blob::DirectoryBlobStoreOptions options;
  options.fsync = false;
  return blob::DirectoryBlobStore::open(dir, options);
}

Result<oci::Descriptor> writeLayer(blob::BlobStore& store, uint64_t bytes, uint64_t seed) {
  LF_ASSIGN_OR_RETURN(auto writer, store.openWriter());
  std::mt19937_64 rng(seed);
  std::string buf(1 << 20, '\0');
  for (uint64_t done = 0; done < bytes; done += buf.size()) {
    for (size_t i = 0; i < buf.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(buf.data() + i, &v, 8);
    }
    LF_RETURN_IF_ERROR(writer->write(buf.data(), std::min<uint64_t>(buf.size(), bytes - done)));
  }
  LF_ASSIGN_OR_RETURN(auto info, writer->commit());
  return oci::Descriptor{std::string(oci::kOciLayerTar), info.digest, info.size};
}

int generate(const std::string& dir, uint64_t total_mb, int layers) {
  auto store = openStore(dir);
  if (!store.isOk()) return fail(store.status());
  oci::Manifest m;
  m.media_type = std::string(oci::kOciManifest);
  nlohmann::json diff_ids = nlohmann::json::array();
  for (int i = 0; i < layers; ++i) {
    auto layer = writeLayer(**store, (total_mb << 20) / layers, 1000 + i);
    if (!layer.isOk()) return fail(layer.status());
    m.layers.push_back(*layer);
    diff_ids.push_back(layer->digest.toString());
  }
  nlohmann::json config = {{"architecture", "amd64"},
                           {"os", "linux"},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  auto cinfo = (*store)->putBytes(config.dump());
  if (!cinfo.isOk()) return fail(cinfo.status());
  m.config = {std::string(oci::kOciConfig), cinfo->digest, cinfo->size};
  std::string manifest = m.toJson();
  auto minfo = (*store)->putBytes(manifest);
  if (!minfo.isOk()) return fail(minfo.status());
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", oci::kOciIndex},
                          {"manifests",
                           {{{"mediaType", oci::kOciManifest},
                             {"digest", minfo->digest.toString()},
                             {"size", minfo->size},
                             {"annotations", {{"org.opencontainers.image.ref.name", "bench"}}}}}}};
  std::ofstream(dir + "/index.json") << index.dump();
  std::ofstream(dir + "/oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
  std::cout << minfo->digest.toString() << "\n";
  return 0;
}

Result<std::unique_ptr<registry::RegistryClient>> client(const registry::Reference& ref) {
  registry::RegistryConfig config;
  config.insecure_registries = {ref.domain};
  return registry::RegistryClient::create(config);
}

void report(std::chrono::steady_clock::time_point start, uint64_t bytes) {
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("seconds=%.2f bytes=%llu MBps=%.1f\n", s, static_cast<unsigned long long>(bytes),
              static_cast<double>(bytes) / (1 << 20) / s);
}

int push(const std::string& dir, const std::string& target) {
  auto ref = registry::Reference::parse(target);
  if (!ref.isOk()) return fail(ref.status());
  auto store = openStore(dir);
  if (!store.isOk()) return fail(store.status());
  std::ifstream in(dir + "/index.json");
  auto index = nlohmann::json::parse(in, nullptr, false);
  if (index.is_discarded()) return fail(invalidArgument(dir + "/index.json: not JSON"));
  auto digest = Digest::parse(index["manifests"][0]["digest"].get<std::string>());
  if (!digest.isOk()) return fail(digest.status());
  auto c = client(*ref);
  if (!c.isOk()) return fail(c.status());
  auto start = std::chrono::steady_clock::now();
  registry::PushOptions options;
  options.default_library_namespace = false;
  auto result = registry::pushImage(**c, *ref, *digest, **store, options);
  if (!result.isOk()) return fail(result.status());
  uint64_t bytes = 0;
  auto manifest = oci::Manifest::fromJson(*(*store)->getBytes(*digest));
  for (const auto& l : manifest->layers) bytes += l.size;
  report(start, bytes);
  return 0;
}

int pull(const std::string& source, const std::string& dir) {
  auto ref = registry::Reference::parse(source);
  if (!ref.isOk()) return fail(ref.status());
  auto store = openStore(dir);
  if (!store.isOk()) return fail(store.status());
  auto c = client(*ref);
  if (!c.isOk()) return fail(c.status());
  auto start = std::chrono::steady_clock::now();
  auto image = registry::pullImage(**c, *ref, oci::Platform{"amd64", "linux", "", {}, ""}, **store);
  if (!image.isOk()) return fail(image.status());
  uint64_t bytes = 0;
  for (const auto& l : image->manifest.layers) bytes += l.size;
  report(start, bytes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "generate" && argc == 5)
    return generate(argv[2], std::stoull(argv[3]), std::stoi(argv[4]));
  if (mode == "push" && argc == 4) return push(argv[2], argv[3]);
  if (mode == "pull" && argc == 4) return pull(argv[2], argv[3]);
  std::cerr << "usage: registry_bench generate DIR TOTAL_MB LAYERS | push DIR REF | pull REF DIR\n";
  return 2;
}
