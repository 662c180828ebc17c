// The incremental context upload (docs/http-api.md, "Contexts") over real loopback HTTP against
// the real BuildManager: RocksDB state in a temp dir, a DirectoryBlobStore, real manifests and
// tars, the real planner; jobs "run" in FakeJobBroker. POST manifest -> missing files; PUT files
// -> ready; builds naming a manifest id or a legacy tar digest get the same cache keys; bad
// manifests and files tars are refused naming what is wrong, store nothing of the bad entry, and
// the server keeps serving.

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/blob/directory_blob_store.h"
#include "common/context/context_manifest.h"
#include "common/context/context_scanner.h"
#include "common/context/context_tar.h"
#include "coordinator/api/http_server.h"
#include "coordinator/builds/build_manager.h"
#include "coordinator/metrics/coordinator_metrics.h"
#include "tests/coordinator/api/http_test_client.h"
#include "tests/coordinator/builds/fake_job_broker.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator {
namespace {

using lf::testing::HttpAnswer;
using lf::testing::HttpTestClient;
using lf::testing::TempDir;
using nlohmann::json;

const std::string kManifestType = std::string(context::kContextManifestMediaType);

struct TarEntry {
  std::string name;
  std::string data;
  mode_t type = AE_IFREG;
};

// An uncompressed pax tar of `entries`, as the CLI sends the files.
std::string makeTar(const std::vector<TarEntry>& entries) {
  std::string out;
  archive* ar = archive_write_new();
  archive_write_set_format_pax_restricted(ar);
  archive_write_set_bytes_in_last_block(ar, 1);
  archive_write_open(
      ar, &out, nullptr,
      [](archive*, void* self, const void* data, size_t n) -> la_ssize_t {
        static_cast<std::string*>(self)->append(static_cast<const char*>(data), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const TarEntry& e : entries) {
    archive_entry* a = archive_entry_new();
    archive_entry_copy_pathname(a, e.name.c_str());
    archive_entry_set_filetype(a, e.type);
    archive_entry_set_perm(a, 0644);
    archive_entry_set_size(a, e.type == AE_IFREG ? static_cast<la_int64_t>(e.data.size()) : 0);
    archive_write_header(ar, a);
    if (e.type == AE_IFREG) archive_write_data(ar, e.data.data(), e.data.size());
    archive_entry_free(a);
  }
  archive_write_close(ar);
  archive_write_free(ar);
  return out;
}

TarEntry fileEntry(const std::string& data) { return {Digest::sha256Of(data).toString(), data}; }

// A context directory: its files, snapshot and encoded manifest (mtimes from stat, as the CLI).
struct LocalContext {
  TempDir dir;
  context::ContextSnapshot snapshot;
  std::string manifest;
  Digest id;
  std::map<Digest, std::string> contents;
};

std::unique_ptr<LocalContext> makeContext(const std::map<std::string, std::string>& files) {
  auto c = std::make_unique<LocalContext>();
  for (const auto& [path, content] : files) {
    c->dir.write(path, content);
    c->contents[Digest::sha256Of(content)] = content;
  }
  auto snapshot = context::scanContext(c->dir.path(), context::ScanOptions{});
  EXPECT_TRUE(snapshot.isOk()) << snapshot.status().toString();
  c->snapshot = *snapshot;
  auto manifest = context::manifestOf(c->snapshot, [&](const context::ContextEntry& e) {
    struct stat st {};
    EXPECT_EQ(::lstat((c->dir.path() / e.path).c_str(), &st), 0) << e.path;
    return static_cast<int64_t>(st.st_mtim.tv_sec);
  });
  EXPECT_TRUE(manifest.isOk()) << manifest.status().toString();
  c->manifest = context::encodeContextManifest(*manifest);
  c->id = Digest::sha256Of(c->manifest);
  return c;
}

const std::map<std::string, std::string> kFiles = {
    {"Dockerfile", "FROM scratch\nCOPY app /app\nCOPY top.txt /top.txt\nRUN echo hi > /x\n"},
    {".dockerignore", "Dockerfile\n.dockerignore\nignored.txt\n"},
    {"app/a.txt", "same bytes\n"},
    {"app/b.txt", "same bytes\n"},                 // one digest for two files
    {"app/sub/c.bin", std::string(1 << 20, 'c')},  // several reads of the body
    {"top.txt", "top\n"},
};

class ContextUploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto blobs = blob::DirectoryBlobStore::open(dir_ / "blobs");
    ASSERT_TRUE(blobs.isOk()) << blobs.status().toString();
    blobs_ = std::move(*blobs);
    auto state = StateStore::open({.dir = dir_ / "state", .sync_writes = false});
    ASSERT_TRUE(state.isOk()) << state.status().toString();
    state_ = std::move(*state);
    broker_ = std::make_unique<testing::FakeJobBroker>(*blobs_, /*auto_run=*/true);
    BuildManagerOptions options;
    options.data_dir = dir_.path();
    manager_ = std::make_unique<BuildManager>(
        BuildManagerDeps{*state_, *blobs_, nullptr, *broker_, nullptr, &metrics_}, options);
    startServer({});
  }
  void TearDown() override {
    server_.reset();
    if (manager_) manager_->stop();
    broker_.reset();
    manager_.reset();
  }

  void startServer(HttpServerOptions options) {
    server_.reset();
    options.listen_address = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options, *manager_, metrics_);
    ASSERT_TRUE(server_->start().isOk());
  }
  int port() const { return server_->port(); }

  HttpAnswer postManifest(const std::string& body, const std::string& type = kManifestType) {
    HttpTestClient c(port());
    return c.request("POST", "/v1/contexts", body, {"Content-Type: " + type});
  }
  HttpAnswer putFiles(const Digest& id, const std::string& tar) {
    HttpTestClient c(port());
    return c.request("PUT", "/v1/contexts/" + id.toString() + "/files", tar);
  }
  int head(const Digest& id) {
    HttpTestClient c(port());
    return c.request("HEAD", "/v1/contexts/" + id.toString()).status;
  }
  // The server still answers on a fresh connection.
  void expectServing() {
    HttpTestClient c(port());
    EXPECT_EQ(c.request("GET", "/healthz").status, 200);
  }
  bool stored(const Digest& d) {
    auto has = blobs_->has(d);
    return has.isOk() && *has;
  }

  // Uploads `c` the incremental way; returns the POST answer's JSON.
  json uploadIncremental(const LocalContext& c) {
    HttpAnswer post = postManifest(c.manifest);
    EXPECT_TRUE(post.status == 201 || post.status == 200) << post.body;
    json j = json::parse(post.body, nullptr, false);
    std::vector<TarEntry> entries;
    for (const auto& d : j["missing"]) {
      entries.push_back(fileEntry(c.contents.at(*Digest::parse(d.get<std::string>()))));
    }
    if (!entries.empty()) {
      HttpAnswer put = putFiles(c.id, makeTar(entries));
      EXPECT_EQ(put.status, 201) << put.body;
    }
    return j;
  }

  // Submits a build over HTTP and follows it to its end.
  BuildRecord build(const Digest& ctx) {
    HttpTestClient c(port());
    json req = {{"context", ctx.toString()},
                {"tags", {"127.0.0.1:5000/team/app:1"}},
                {"build_args", {{"SOURCE_DATE_EPOCH", "0"}}}};
    HttpAnswer a = c.request("POST", "/v1/builds", req.dump());
    EXPECT_EQ(a.status, 202) << a.body;
    const std::string id = json::parse(a.body, nullptr, false).value("id", "");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      auto record = manager_->getBuild(id);
      if (record.isOk() && record->has_value() && isFinished((*record)->state)) return **record;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "build " << id << " did not finish";
    return {};
  }

  TempDir dir_;
  std::unique_ptr<blob::DirectoryBlobStore> blobs_;
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<testing::FakeJobBroker> broker_;
  CoordinatorMetrics metrics_;
  std::unique_ptr<BuildManager> manager_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(ContextUploadTest, ManifestThenMissingFilesThenReadyAndBuilds) {
  auto c = makeContext(kFiles);
  EXPECT_EQ(head(c->id), 404);

  HttpAnswer post = postManifest(c->manifest);
  ASSERT_EQ(post.status, 201) << post.body;
  json j = json::parse(post.body);
  EXPECT_EQ(j["digest"], c->id.toString());
  EXPECT_EQ(j["files"], 6);  // every regular file, duplicates included
  uint64_t bytes = 0;
  for (const auto& [path, content] : kFiles) bytes += content.size();
  EXPECT_EQ(j["bytes"], bytes);
  std::vector<std::string> want;  // distinct, sorted
  for (const auto& [d, content] : c->contents) want.push_back(d.toString());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(j["missing"].get<std::vector<std::string>>(), want);
  EXPECT_EQ(j["missing_bytes"], bytes - std::string("same bytes\n").size());
  EXPECT_EQ(head(c->id), 404);  // not ready yet
  EXPECT_TRUE(stored(c->id));   // the manifest is a blob named by the id

  // Send half the files: 200, the rest still missing.
  std::vector<TarEntry> first = {fileEntry(kFiles.at("top.txt")),
                                 fileEntry(kFiles.at("top.txt"))};  // twice is fine
  HttpAnswer part = putFiles(c->id, makeTar(first));
  ASSERT_EQ(part.status, 200) << part.body;
  EXPECT_EQ(json::parse(part.body)["missing"].size(), want.size() - 1);
  EXPECT_EQ(head(c->id), 404);

  std::vector<TarEntry> rest;
  for (const auto& [d, content] : c->contents) {
    if (content != kFiles.at("top.txt")) rest.push_back(fileEntry(content));
  }
  std::reverse(rest.begin(), rest.end());  // any order
  HttpAnswer put = putFiles(c->id, makeTar(rest));
  ASSERT_EQ(put.status, 201) << put.body;
  json done = json::parse(put.body);
  EXPECT_EQ(done["missing"], json::array());
  EXPECT_EQ(done["missing_bytes"], 0);
  EXPECT_EQ(done["digest"], c->id.toString());
  EXPECT_EQ(head(c->id), 200);
  for (const auto& [d, content] : c->contents) EXPECT_EQ(*blobs_->getBytes(d), content);

  // Posting again: the manifest is known (200) and nothing is missing.
  HttpAnswer again = postManifest(c->manifest);
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body)["missing"], json::array());
  // Sending files of a ready context again is harmless: 200.
  EXPECT_EQ(putFiles(c->id, makeTar({fileEntry(kFiles.at("top.txt"))})).status, 200);

  BuildRecord record = build(c->id);
  ASSERT_EQ(record.state, BuildState::kSucceeded) << record.failure_reason;
  EXPECT_EQ(record.request.context_digest, c->id);
  // The COPY jobs name the context by a manifest: the workers' view, which leaves out the
  // Dockerfile and .dockerignore because .dockerignore excludes them (Docker sends them to the
  // builder only; COPY . must not see them).
  bool saw_copy = false;
  for (const auto& request : broker_->submitted()) {
    if (!request.spec.has_copy() || !request.spec.copy().has_context()) continue;
    saw_copy = true;
    const auto& ref = request.spec.copy().context();
    EXPECT_EQ(ref.blob().media_type(), kManifestType);
    EXPECT_EQ(ref.diff_id(), ref.blob().digest());
    EXPECT_NE(ref.blob().digest(), c->id.toString());
    auto view_bytes = blobs_->getBytes(*Digest::parse(ref.blob().digest()));
    ASSERT_TRUE(view_bytes.isOk()) << view_bytes.status().toString();
    EXPECT_EQ(static_cast<size_t>(ref.blob().size()), view_bytes->size());
    auto view = context::parseContextManifest(*view_bytes);
    ASSERT_TRUE(view.isOk()) << view.status().toString();
    std::vector<std::string> paths;
    for (const auto& e : view->entries) paths.push_back(e.entry.path);
    EXPECT_EQ(paths, (std::vector<std::string>{"app", "app/a.txt", "app/b.txt", "app/sub",
                                               "app/sub/c.bin", "top.txt"}));
  }
  EXPECT_TRUE(saw_copy);
  const std::string metrics = metrics_.serialize();
  EXPECT_NE(metrics.find("layerfarm_context_file_bytes_total{source=\"received\"}"),
            std::string::npos);
}

TEST_F(ContextUploadTest, LegacyTarIsReadyUnderBothIdsWithTheSameKeys) {
  auto c = makeContext(kFiles);
  auto tar_info = context::writeContextTarToStore(c->dir.path(), c->snapshot, *blobs_);
  ASSERT_TRUE(tar_info.isOk()) << tar_info.status().toString();
  const std::string tar = *blobs_->getBytes(tar_info->digest);
  ASSERT_TRUE(blobs_->remove(tar_info->digest).isOk());  // sent by the client, not stored yet

  HttpTestClient client(port());
  HttpAnswer put = client.request("PUT", "/v1/contexts/" + tar_info->digest.toString(), tar);
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(json::parse(put.body)["size"], tar.size());
  // Ready under the tar digest and under the manifest id the CLI computes for the same files
  // (mtimes from the tar are the files' mtimes).
  EXPECT_EQ(head(tar_info->digest), 200);
  EXPECT_EQ(head(c->id), 200);
  HttpAnswer post = postManifest(c->manifest);
  ASSERT_EQ(post.status, 200) << post.body;
  EXPECT_EQ(json::parse(post.body)["missing"], json::array());
  for (const auto& [d, content] : c->contents) EXPECT_TRUE(stored(d));

  // The snapshot the keys come from: the converted manifest's is the tar reader's (what the
  // coordinator keyed on before manifests) and the scanner's.
  auto from_tar = context::readContextTar(*blobs_, tar_info->digest, "Dockerfile");
  ASSERT_TRUE(from_tar.isOk()) << from_tar.status().toString();
  auto manifest = context::parseContextManifest(*blobs_->getBytes(c->id));
  ASSERT_TRUE(manifest.isOk()) << manifest.status().toString();
  auto from_manifest = context::snapshotOfManifest(
      *manifest, "Dockerfile", [&](const Digest& d) { return blobs_->getBytes(d); });
  ASSERT_TRUE(from_manifest.isOk()) << from_manifest.status().toString();
  EXPECT_EQ(from_manifest->entries(), from_tar->entries());
  EXPECT_EQ(from_manifest->builderOnly(), from_tar->builderOnly());
  EXPECT_EQ(from_manifest->entries(), c->snapshot.entries());
  EXPECT_EQ(from_manifest->builderOnly().size(), 2u);  // Dockerfile, .dockerignore: ignored
  EXPECT_EQ(*from_manifest->digestOf(""), *from_tar->digestOf(""));

  BuildRecord by_tar = build(tar_info->digest);
  ASSERT_EQ(by_tar.state, BuildState::kSucceeded) << by_tar.failure_reason;
  BuildRecord by_manifest = build(c->id);
  ASSERT_EQ(by_manifest.state, BuildState::kSucceeded) << by_manifest.failure_reason;
  ASSERT_EQ(by_tar.steps.size(), by_manifest.steps.size());
  for (size_t i = 0; i < by_tar.steps.size(); ++i) {
    EXPECT_EQ(by_tar.steps[i].key, by_manifest.steps[i].key) << by_tar.steps[i].instruction;
    EXPECT_TRUE(by_manifest.steps[i].cached) << by_manifest.steps[i].instruction;
  }
  EXPECT_EQ(by_tar.manifest_digest, by_manifest.manifest_digest);
}

TEST_F(ContextUploadTest, IncrementalAndLegacyUploadsOfOneTreeGiveTheSameKeys) {
  // Uploaded only incrementally first, then the same files as a legacy tar from another dir.
  auto c = makeContext(kFiles);
  uploadIncremental(*c);
  BuildRecord by_manifest = build(c->id);
  ASSERT_EQ(by_manifest.state, BuildState::kSucceeded) << by_manifest.failure_reason;

  TempDir other_blobs;
  auto other = blob::DirectoryBlobStore::open(other_blobs.path());
  ASSERT_TRUE(other.isOk());
  auto c2 = makeContext(kFiles);
  // Other mtimes: another tar and another manifest, but the same keys (mtimes are in none).
  for (const auto& [path, content] : kFiles) {
    struct timespec times[2] = {{1000000, 0}, {1000000, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (c2->dir.path() / path).c_str(), times, 0), 0);
  }
  auto tar_info = context::writeContextTarToStore(c2->dir.path(), c2->snapshot, **other);
  ASSERT_TRUE(tar_info.isOk());
  HttpTestClient client(port());
  HttpAnswer put = client.request("PUT", "/v1/contexts/" + tar_info->digest.toString(),
                                  *(*other)->getBytes(tar_info->digest));
  ASSERT_EQ(put.status, 201) << put.body;
  auto record = state_->getContext(tar_info->digest);
  ASSERT_TRUE(record.isOk() && record->has_value());
  EXPECT_NE((*record)->manifest, c->id);  // the mtimes differ
  EXPECT_EQ(head((*record)->manifest), 200);
  BuildRecord by_tar = build(tar_info->digest);
  ASSERT_EQ(by_tar.state, BuildState::kSucceeded) << by_tar.failure_reason;
  ASSERT_EQ(by_tar.steps.size(), by_manifest.steps.size());
  for (size_t i = 0; i < by_tar.steps.size(); ++i) {
    EXPECT_EQ(by_tar.steps[i].key, by_manifest.steps[i].key) << by_tar.steps[i].instruction;
  }
}

TEST_F(ContextUploadTest, BadManifestsAre400NamingTheEntry) {
  auto c = makeContext({{"Dockerfile", "FROM scratch\n"}});
  std::string bad = c->manifest;
  const std::string path = "\"path\":\"Dockerfile\"";
  bad.replace(bad.find(path), path.size(), "\"path\":\"../Dockerfile\"");
  HttpAnswer a = postManifest(bad);
  EXPECT_EQ(a.status, 400) << a.body;
  EXPECT_NE(a.body.find("../Dockerfile"), std::string::npos) << a.body;
  EXPECT_NE(a.body.find("invalid_argument"), std::string::npos) << a.body;
  EXPECT_FALSE(stored(Digest::sha256Of(bad)));

  EXPECT_EQ(postManifest("{not json").status, 400);
  EXPECT_EQ(postManifest("").status, 400);
  // A size that contradicts a stored blob of that digest.
  ASSERT_TRUE(blobs_->putBytes("FROM scratch\n").isOk());
  std::string lying = c->manifest;
  const std::string size = "\"size\":13";
  ASSERT_NE(lying.find(size), std::string::npos) << lying;
  lying.replace(lying.find(size), size.size(), "\"size\":14");
  HttpAnswer l = postManifest(lying);
  EXPECT_EQ(l.status, 400) << l.body;
  EXPECT_NE(l.body.find("Dockerfile"), std::string::npos) << l.body;
  expectServing();
}

TEST_F(ContextUploadTest, BadFilesTarsAre400AndStoreNothingOfTheEntry) {
  auto c = makeContext({{"Dockerfile", "FROM scratch\nCOPY a /a\n"}, {"a", "aaaa"}});
  ASSERT_EQ(postManifest(c->manifest).status, 201);
  const Digest a = Digest::sha256Of("aaaa");

  // An entry whose bytes are not its name.
  HttpAnswer wrong = putFiles(c->id, makeTar({{a.toString(), "bbbb"}}));
  EXPECT_EQ(wrong.status, 400) << wrong.body;
  EXPECT_NE(
      wrong.body.find("file " + a.toString() + " hashes to " + Digest::sha256Of("bbbb").toString()),
      std::string::npos)
      << wrong.body;
  EXPECT_FALSE(stored(a));
  EXPECT_FALSE(stored(Digest::sha256Of("bbbb")));

  // A digest the manifest does not list.
  HttpAnswer unknown = putFiles(c->id, makeTar({fileEntry("zzzz")}));
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_NE(unknown.body.find(Digest::sha256Of("zzzz").toString()), std::string::npos);
  EXPECT_FALSE(stored(Digest::sha256Of("zzzz")));

  // A directory, and a name that is not a digest.
  HttpAnswer dir = putFiles(c->id, makeTar({{"sub/", "", AE_IFDIR}}));
  EXPECT_EQ(dir.status, 400) << dir.body;
  EXPECT_NE(dir.body.find("sub/"), std::string::npos) << dir.body;
  HttpAnswer name = putFiles(c->id, makeTar({{"a", "aaaa"}}));
  EXPECT_EQ(name.status, 400) << name.body;
  EXPECT_NE(name.body.find("\\\"a\\\""), std::string::npos) << name.body;

  // A tar cut in the middle of the entry's data (the Content-Length says so: a complete body).
  std::string whole = makeTar({fileEntry("aaaa" + std::string(5000, 'x'))});
  auto c2 =
      makeContext({{"Dockerfile", "FROM scratch\n"}, {"big", "aaaa" + std::string(5000, 'x')}});
  ASSERT_EQ(postManifest(c2->manifest).status, 201);
  HttpAnswer cut = putFiles(c2->id, whole.substr(0, 512 + 2000));
  EXPECT_EQ(cut.status, 400) << cut.body;
  EXPECT_FALSE(stored(Digest::sha256Of("aaaa" + std::string(5000, 'x'))));
  // Not a tar at all.
  EXPECT_EQ(putFiles(c2->id, std::string(3000, 'q')).status, 400);

  // A client that goes away in the middle of the body: no answer, nothing stored, still serving.
  {
    HttpTestClient gone(port());
    ASSERT_TRUE(gone.send("PUT /v1/contexts/" + c2->id.toString() +
                          "/files HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                          std::to_string(whole.size()) + "\r\n\r\n" + whole.substr(0, 3000)));
  }
  expectServing();
  EXPECT_EQ(head(c->id), 404);

  // After all that, the right files make the context ready.
  HttpAnswer ok = putFiles(c->id, makeTar({fileEntry("aaaa"), fileEntry(kFiles.at("Dockerfile"))}));
  EXPECT_EQ(ok.status, 400) << ok.body;  // the second is not in this manifest: refused...
  EXPECT_TRUE(stored(a));                // ...but the valid entry before it was kept
  EXPECT_EQ(head(c->id), 404);           // the Dockerfile is still missing
  HttpAnswer fin = putFiles(c->id, makeTar({fileEntry("FROM scratch\nCOPY a /a\n")}));
  EXPECT_EQ(fin.status, 201) << fin.body;
  EXPECT_EQ(head(c->id), 200);
}

TEST_F(ContextUploadTest, FilesForAnUnknownManifestAre404) {
  const Digest never = Digest::sha256Of("never posted");
  HttpAnswer a = putFiles(never, makeTar({fileEntry("x")}));
  EXPECT_EQ(a.status, 404) << a.body;
  EXPECT_NE(a.body.find(never.toString()), std::string::npos);
  // A blob that is not a manifest (here: a file) is not a context either.
  ASSERT_TRUE(blobs_->putBytes("x").isOk());
  EXPECT_EQ(putFiles(Digest::sha256Of("x"), makeTar({fileEntry("x")})).status, 404);
  EXPECT_EQ(head(Digest::sha256Of("x")), 404);
  HttpTestClient c(port());
  EXPECT_EQ(c.request("PUT", "/v1/contexts/sha256:XYZ/files", "x").status, 400);
  expectServing();
}

TEST_F(ContextUploadTest, LengthSizeAndTypeAre411_413_415) {
  auto c = makeContext({{"Dockerfile", "FROM scratch\n"}});
  HttpAnswer type = postManifest(c->manifest, "application/json");
  EXPECT_EQ(type.status, 415) << type.body;
  EXPECT_NE(type.body.find(kManifestType), std::string::npos) << type.body;
  EXPECT_EQ(postManifest(c->manifest, kManifestType + "; charset=utf-8").status, 201);
  {
    HttpTestClient cl(port());
    ASSERT_TRUE(cl.send("POST /v1/contexts HTTP/1.1\r\nHost: x\r\nContent-Type: " + kManifestType +
                        "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
    EXPECT_EQ(cl.read().status, 411);
  }
  {
    HttpTestClient cl(port());
    ASSERT_TRUE(cl.send("POST /v1/contexts HTTP/1.1\r\nHost: x\r\nContent-Type: " + kManifestType +
                        "\r\nContent-Length: " + std::to_string(context::kMaxManifestBytes + 1) +
                        "\r\n\r\n"));
    EXPECT_EQ(cl.read().status, 413);
  }
  {
    HttpTestClient cl(port());
    ASSERT_TRUE(
        cl.send("PUT /v1/contexts/" + c->id.toString() +
                "/files HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
    EXPECT_EQ(cl.read().status, 411);
  }
  HttpServerOptions small;
  small.max_context_bytes = 1000;
  startServer(small);
  {
    HttpTestClient cl(port());
    ASSERT_TRUE(cl.send("PUT /v1/contexts/" + c->id.toString() +
                        "/files HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"));
    HttpAnswer big = cl.read();
    EXPECT_EQ(big.status, 413);
    EXPECT_NE(big.body.find("max_context_bytes"), std::string::npos) << big.body;
  }
  // Routes: GET on /v1/contexts is 405 with the allowed methods.
  HttpTestClient cl(port());
  HttpAnswer get = cl.request("GET", "/v1/contexts");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.headers["allow"], "POST");
  expectServing();
}

TEST_F(ContextUploadTest, SubmitRefusesUnknownAndPreManifestContexts) {
  // A record from before manifests (no manifest field): not ready, and submit says re-upload.
  ContextRecord old{.digest = Digest::sha256Of("old tar"), .size = 7};
  ASSERT_TRUE(state_->putContext(old).isOk());
  ASSERT_TRUE(blobs_->putBytes("old tar").isOk());
  EXPECT_EQ(head(old.digest), 404);
  HttpTestClient c(port());
  json req = {{"context", old.digest.toString()}};
  HttpAnswer a = c.request("POST", "/v1/builds", req.dump());
  EXPECT_EQ(a.status, 400) << a.body;
  EXPECT_NE(a.body.find("upload it again"), std::string::npos) << a.body;
  json unknown = {{"context", Digest::sha256Of("nothing").toString()}};
  HttpAnswer u = c.request("POST", "/v1/builds", unknown.dump());
  EXPECT_EQ(u.status, 400) << u.body;
  EXPECT_NE(u.body.find("has not been uploaded"), std::string::npos) << u.body;
  // A context whose manifest was posted but whose files are missing is not buildable either.
  auto ctx = makeContext({{"Dockerfile", "FROM scratch\n"}});
  ASSERT_EQ(postManifest(ctx->manifest).status, 201);
  json pending = {{"context", ctx->id.toString()}};
  EXPECT_EQ(c.request("POST", "/v1/builds", pending.dump()).status, 400);
}

TEST_F(ContextUploadTest, LegacyTarThatIsNotAContextIs400AndNotReady) {
  std::string bad = makeTar({{"../evil", "x"}});
  const Digest d = Digest::sha256Of(bad);
  HttpTestClient c(port());
  HttpAnswer a = c.request("PUT", "/v1/contexts/" + d.toString(), bad);
  EXPECT_EQ(a.status, 400) << a.body;
  EXPECT_NE(a.body.find("../evil"), std::string::npos) << a.body;
  EXPECT_EQ(head(d), 404);
  EXPECT_FALSE(stored(Digest::sha256Of("x")));
  EXPECT_FALSE(stored(d));  // the refused tar is not kept either
  expectServing();
}

}  // namespace
}  // namespace lf::coordinator
