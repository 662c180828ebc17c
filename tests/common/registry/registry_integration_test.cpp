// The registry client against the real CNCF distribution registry (docker-registry) on loopback:
// anonymous HTTP, htpasswd Basic auth, TLS with a test CA, and the Bearer token flow with a token
// server in this test that signs JWTs the registry verifies. skopeo checks what we pushed.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "common/blob/directory_blob_store.h"
#include "common/registry/image_transfer.h"
#include "common/registry/registry_client.h"
#include "tests/common/registry/fake_http_server.h"
#include "tests/common/registry/test_image.h"
#include "tests/support/registry_server.h"
#include "tests/support/temp_dir.h"

namespace lf::registry {
namespace {

using lf::testing::RegistryServer;
using lf::testing::RegistryServerOptions;
using lf::testing::TempDir;

std::unique_ptr<blob::DirectoryBlobStore> openStore(const std::filesystem::path& dir) {
  blob::DirectoryBlobStoreOptions options;
  options.fsync = false;
  auto store = blob::DirectoryBlobStore::open(dir, options);
  EXPECT_TRUE(store.isOk()) << store.status().toString();
  return std::move(*store);
}

RegistryConfig configFor(const RegistryServer& server, bool insecure = true) {
  RegistryConfig config;
  if (insecure) config.insecure_registries = {server.host()};
  config.initial_backoff_ms = 10;
  config.http.io_timeout_ms = 20'000;
  return config;
}

std::unique_ptr<RegistryClient> makeClient(RegistryConfig config) {
  auto client = RegistryClient::create(std::move(config));
  EXPECT_TRUE(client.isOk()) << client.status().toString();
  return std::move(*client);
}

Reference parseRef(const std::string& text) {
  auto r = Reference::parse(text);
  EXPECT_TRUE(r.isOk()) << r.status().toString();
  return *r;
}

oci::Platform linuxAmd64() {
  oci::Platform p;
  p.os = "linux";
  p.architecture = "amd64";
  return p;
}

void expectSameBlobs(blob::BlobStore& a, blob::BlobStore& b, const std::vector<Digest>& blobs) {
  for (const auto& d : blobs) {
    auto x = a.getBytes(d);
    auto y = b.getBytes(d);
    ASSERT_TRUE(x.isOk()) << x.status().toString();
    ASSERT_TRUE(y.isOk()) << d.toString() << ": " << y.status().toString();
    EXPECT_TRUE(*x == *y) << d.toString();
  }
}

class RegistryIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RegistryServer::available()) GTEST_SKIP() << "docker-registry is not installed";
  }
  TempDir dir_;
};

TEST_F(RegistryIntegrationTest, AnonymousPushInspectPullMount) {
  auto server = RegistryServer::start();
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  auto src = openStore(dir_ / "src");
  auto image = testing::makeTestImage(*src, {300'000, 50'000, 1'200'000}, 1);
  auto client = makeClient(configFor(**server));

  std::vector<std::string> progress;
  PushOptions options;
  options.progress = [&](std::string_view m) { progress.emplace_back(m); };
  auto pushed = pushImage(*client, parseRef((*server)->host() + "/app:v1"), image.manifest_digest,
                          *src, options);
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  std::string repo = (*server)->host() + "/library/app";
  EXPECT_EQ(pushed->repository, repo);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.front(), "pushing to " + repo);
  EXPECT_EQ(pushed->blobs_uploaded, 4u);
  EXPECT_EQ(pushed->manifest_digest, image.manifest_digest);

  // skopeo sees the image with our digests.
  auto out = dir_ / "inspect.json";
  ASSERT_EQ(lf::testing::runCommand({"sh", "-c",
                                     "skopeo inspect --tls-verify=false docker://" + repo +
                                         ":v1 > " + out.string() + " 2>&1"}),
            0)
      << lf::testing::readFile(out);
  auto inspect = nlohmann::json::parse(lf::testing::readFile(out));
  EXPECT_EQ(inspect["Digest"], image.manifest_digest.toString());
  std::vector<std::string> layers = inspect["Layers"];
  ASSERT_EQ(layers.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(layers[i], image.blobs[i + 1].toString());

  // HEAD resolves the tag without fetching the manifest body.
  auto head = resolveDigest(*client, parseRef(repo + ":v1"));
  ASSERT_TRUE(head.isOk()) << head.status().toString();
  EXPECT_EQ(head->digest, image.manifest_digest);

  // Pull it back identical.
  auto dst = openStore(dir_ / "dst");
  auto pulled = pullImage(*client, parseRef(repo + ":v1"), linuxAmd64(), *dst);
  ASSERT_TRUE(pulled.isOk()) << pulled.status().toString();
  EXPECT_EQ(pulled->manifest_digest, image.manifest_digest);
  expectSameBlobs(*src, *dst, image.blobs);
  expectSameBlobs(*src, *dst, {image.manifest_digest});

  // Pushing again finds every blob present.
  auto again = pushImage(*client, parseRef(repo + ":v1"), image.manifest_digest, *src);
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->blobs_present, 4u);
  EXPECT_EQ(again->blobs_uploaded, 0u);

  // A second repository gets the blobs by cross-repository mount, not by upload.
  auto before = client->counters();
  PushOptions mount;
  mount.mount_from = {"library/app"};
  auto second = pushImage(*client, parseRef((*server)->host() + "/team/app:v1"),
                          image.manifest_digest, *src, mount);
  ASSERT_TRUE(second.isOk()) << second.status().toString();
  EXPECT_EQ(second->blobs_mounted, 4u);
  EXPECT_EQ(second->blobs_uploaded, 0u);
  EXPECT_EQ(client->counters().blob_uploads, before.blob_uploads);
  EXPECT_EQ(client->counters().blob_mounts, before.blob_mounts + 4);
}

TEST_F(RegistryIntegrationTest, PlatformSelectionFromAnIndex) {
  auto server = RegistryServer::start();
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  auto src = openStore(dir_ / "src");
  auto amd = testing::makeTestImage(*src, {1000}, 2);
  auto arm = testing::makeTestImage(*src, {2000}, 3);
  auto client = makeClient(configFor(**server));
  Repository repo{(*server)->host(), "multi/app"};
  ASSERT_TRUE(
      pushImage(*client, parseRef(repo.toString() + ":amd"), amd.manifest_digest, *src).isOk());
  ASSERT_TRUE(
      pushImage(*client, parseRef(repo.toString() + ":arm"), arm.manifest_digest, *src).isOk());
  oci::Index index;
  index.media_type = std::string(oci::kOciIndex);
  for (auto [img, arch, variant] :
       {std::tuple{&amd, "amd64", ""}, std::tuple{&arm, "arm64", "v8"}}) {
    oci::Descriptor d;
    d.media_type = std::string(oci::kOciManifest);
    d.digest = img->manifest_digest;
    d.size = img->manifest_bytes.size();
    d.platform = oci::Platform{arch, "linux", "", {}, variant};
    index.manifests.push_back(d);
  }
  auto put = client->putManifest(repo, "latest", oci::kOciIndex, index.toJson());
  ASSERT_TRUE(put.isOk()) << put.status().toString();

  oci::Platform want{"arm64", "linux", "", {}, ""};
  auto dst = openStore(dir_ / "dst");
  auto pulled = pullImage(*client, parseRef(repo.toString() + ":latest"), want, *dst);
  ASSERT_TRUE(pulled.isOk()) << pulled.status().toString();
  EXPECT_EQ(pulled->manifest_digest, arm.manifest_digest);
  EXPECT_EQ(pulled->digest, *put);
  expectSameBlobs(*src, *dst, arm.blobs);

  auto missing = resolveImage(*client, parseRef(repo.toString() + ":latest"),
                              oci::Platform{"s390x", "linux", "", {}, ""});
  ASSERT_FALSE(missing.isOk());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("available: linux/amd64, linux/arm64/v8"),
            std::string::npos)
      << missing.status().message();
}

TEST_F(RegistryIntegrationTest, ChunkedUploadAndTags) {
  auto server = RegistryServer::start();
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  auto src = openStore(dir_ / "src");
  auto image = testing::makeTestImage(*src, {1'000'000, 10}, 4);
  RegistryConfig config = configFor(**server);
  config.monolithic_upload_max_bytes = 100'000;
  config.upload_chunk_bytes = 256 * 1024;
  auto client = makeClient(config);
  PushOptions options;
  options.extra_tags = {"v1", "stable"};
  auto target = parseRef((*server)->host() + "/ns/big:v1");
  auto pushed = pushImage(*client, target, image.manifest_digest, *src, options);
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  EXPECT_EQ(client->counters().upload_chunks, 4u);  // 1,000,000 bytes in 256 KiB chunks
  auto tags = client->listTags(Repository::of(target));
  ASSERT_TRUE(tags.isOk());
  std::sort(tags->begin(), tags->end());
  EXPECT_EQ(*tags, (std::vector<std::string>{"stable", "v1"}));
  auto dst = openStore(dir_ / "dst");
  ASSERT_TRUE(pullImage(*client, parseRef((*server)->host() + "/ns/big:stable"), linuxAmd64(), *dst)
                  .isOk());
  expectSameBlobs(*src, *dst, image.blobs);
}

TEST_F(RegistryIntegrationTest, HtpasswdBasicAuth) {
  RegistryServerOptions options;
  options.users = {{"alice", "s3cret"}};
  auto server = RegistryServer::start(options);
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  auto src = openStore(dir_ / "src");
  auto image = testing::makeTestImage(*src, {5000}, 5);
  auto target = parseRef((*server)->host() + "/private/app:v1");

  RegistryConfig good = configFor(**server);
  good.credentials.add((*server)->host(), {"alice", "s3cret", ""});
  auto client = makeClient(good);
  auto pushed = pushImage(*client, target, image.manifest_digest, *src);
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString();
  auto dst = openStore(dir_ / "dst");
  ASSERT_TRUE(pullImage(*client, target, linuxAmd64(), *dst).isOk());
  expectSameBlobs(*src, *dst, image.blobs);

  auto anonymous = makeClient(configFor(**server));
  auto denied = anonymous->headManifest(Repository::of(target), "v1");
  ASSERT_FALSE(denied.isOk());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.status().message().find("no credentials are configured"), std::string::npos)
      << denied.status().message();

  RegistryConfig bad = configFor(**server);
  bad.credentials.add((*server)->host(), {"alice", "wrong", ""});
  auto wrong = makeClient(bad)->headManifest(Repository::of(target), "v1");
  ASSERT_FALSE(wrong.isOk());
  EXPECT_EQ(wrong.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(wrong.status().message().find("401"), std::string::npos) << wrong.status().message();
}

TEST_F(RegistryIntegrationTest, TlsWithTestCa) {
  RegistryServerOptions options;
  options.tls = true;
  auto server = RegistryServer::start(options);
  ASSERT_TRUE(server.isOk()) << server.status().toString();
  RegistryConfig config = configFor(**server, /*insecure=*/false);
  config.http.ca_bundle_path = (*server)->caCertPath().string();
  auto client = makeClient(config);
  ASSERT_TRUE(client->ping((*server)->host()).isOk());
  auto src = openStore(dir_ / "src");
  auto image = testing::makeTestImage(*src, {70'000}, 6);
  auto target = parseRef((*server)->host() + "/secure/app:v1");
  ASSERT_TRUE(pushImage(*client, target, image.manifest_digest, *src).isOk());
  auto dst = openStore(dir_ / "dst");
  ASSERT_TRUE(pullImage(*client, target, linuxAmd64(), *dst).isOk());
  expectSameBlobs(*src, *dst, image.blobs);

  // Without the test CA the certificate is not trusted.
  auto untrusted = makeClient(configFor(**server, /*insecure=*/false));
  Status s = untrusted->ping((*server)->host());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("certificate verify failed"), std::string::npos) << s.message();
}

// --- Bearer tokens ---------------------------------------------------------------------------

std::string base64Url(std::string_view data) {
  std::string b = base64Encode(data);
  for (char& c : b) c = c == '+' ? '-' : (c == '/' ? '_' : c);
  while (!b.empty() && b.back() == '=') b.pop_back();
  return b;
}

// Signs JWTs with RS256 and a certificate in x5c, as the registry's token auth expects.
class TokenSigner {
 public:
  TokenSigner(const std::filesystem::path& key_pem, const std::filesystem::path& cert_pem) {
    BIO* kb = BIO_new_file(key_pem.c_str(), "r");
    key_ = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    BIO_free(kb);
    BIO* cb = BIO_new_file(cert_pem.c_str(), "r");
    X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO_free(cb);
    unsigned char* der = nullptr;
    int len = i2d_X509(cert, &der);
    cert_der_.assign(reinterpret_cast<char*>(der), len);
    OPENSSL_free(der);
    X509_free(cert);
  }
  ~TokenSigner() { EVP_PKEY_free(key_); }
  bool ok() const { return key_ != nullptr && !cert_der_.empty(); }

  std::string sign(const nlohmann::json& claims) const {
    nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5c", {base64Encode(cert_der_)}}};
    std::string input = base64Url(header.dump()) + "." + base64Url(claims.dump());
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t sig_len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_);
    EVP_DigestSign(ctx, nullptr, &sig_len, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    std::string sig(sig_len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    EVP_MD_CTX_free(ctx);
    sig.resize(sig_len);
    return input + "." + base64Url(sig);
  }

 private:
  EVP_PKEY* key_ = nullptr;
  std::string cert_der_;
};

TEST_F(RegistryIntegrationTest, BearerTokenFlow) {
  auto key = dir_ / "token.key";
  auto cert = dir_ / "token.pem";
  ASSERT_EQ(lf::testing::runCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                     "-keyout", key.string(), "-out", cert.string(), "-days", "2",
                                     "-subj", "/CN=layerfarm test token issuer"},
                                    dir_ / "openssl.log"),
            0);
  TokenSigner signer(key, cert);
  ASSERT_TRUE(signer.ok());
  std::atomic<int> token_requests{0};
  std::atomic<int> push_scopes{0};
  lf::testing::FakeHttpServer tokens([&](const lf::testing::FakeRequest& req) {
    if (req.path() != "/token") return lf::testing::FakeHttpServer::response(404, {});
    auto auth = req.headers.find("authorization");
    if (auth == req.headers.end() || auth->second != "Basic " + base64Encode("bob:hunter2")) {
      return lf::testing::FakeHttpServer::response(401, {});
    }
    ++token_requests;
    nlohmann::json access = nlohmann::json::array();
    for (const auto& scope : req.query("scope")) {
      // repository:NAME:ACTIONS
      size_t a = scope.find(':');
      size_t b = scope.rfind(':');
      std::vector<std::string> actions;
      std::string list = scope.substr(b + 1);
      for (size_t s = 0, e; s <= list.size(); s = e + 1) {
        e = list.find(',', s);
        if (e == std::string::npos) e = list.size();
        actions.push_back(list.substr(s, e - s));
      }
      if (list.find("push") != std::string::npos) ++push_scopes;
      access.push_back({{"type", scope.substr(0, a)},
                        {"name", scope.substr(a + 1, b - a - 1)},
                        {"actions", actions}});
    }
    int64_t now = time(nullptr);
    nlohmann::json claims = {{"iss", "test-issuer"},
                             {"sub", "bob"},
                             {"aud", "test-registry"},
                             {"exp", now + 300},
                             {"nbf", now - 60},
                             {"iat", now},
                             {"jti", std::to_string(token_requests.load())},
                             {"access", access}};
    nlohmann::json body = {{"token", signer.sign(claims)}, {"expires_in", 300}};
    return lf::testing::FakeHttpServer::response(200, {{"Content-Type", "application/json"}},
                                                 body.dump());
  });
  RegistryServerOptions options;
  options.token =
      RegistryServerOptions::Token{tokens.url() + "/token", "test-registry", "test-issuer", cert};
  auto server = RegistryServer::start(options);
  ASSERT_TRUE(server.isOk()) << server.status().toString();

  auto src = openStore(dir_ / "src");
  auto image = testing::makeTestImage(*src, {40'000, 80'000}, 7);
  auto target = parseRef((*server)->host() + "/tokens/app:v1");
  RegistryConfig config = configFor(**server);
  config.credentials.add((*server)->host(), {"bob", "hunter2", ""});
  auto client = makeClient(config);
  auto pushed = pushImage(*client, target, image.manifest_digest, *src);
  ASSERT_TRUE(pushed.isOk()) << pushed.status().toString() << "\n" << (*server)->log();
  EXPECT_GT(push_scopes.load(), 0);
  // Tokens are cached per scope: far fewer token requests than registry requests.
  auto counters = client->counters();
  EXPECT_LE(counters.token_fetches, 3u);
  EXPECT_GT(counters.requests, 8u);
  auto dst = openStore(dir_ / "dst");
  auto pulled = pullImage(*client, target, linuxAmd64(), *dst);
  ASSERT_TRUE(pulled.isOk()) << pulled.status().toString();
  expectSameBlobs(*src, *dst, image.blobs);

  // Wrong password: the token server refuses, and that is the error.
  RegistryConfig bad = configFor(**server);
  bad.credentials.add((*server)->host(), {"bob", "nope", ""});
  auto denied = makeClient(bad)->headManifest(Repository::of(target), "v1");
  ASSERT_FALSE(denied.isOk());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(denied.status().message().find("get token"), std::string::npos)
      << denied.status().message();
}

}  // namespace
}  // namespace lf::registry
