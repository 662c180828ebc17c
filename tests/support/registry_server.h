#pragma once

// RegistryServer: the real CNCF distribution registry (`docker-registry serve`) on 127.0.0.1 for
// integration tests, with a free port, a temporary root directory, and optionally htpasswd
// Basic auth, token (Bearer) auth and TLS. The process is killed when the object goes away.
//
// Tests that use it should GTEST_SKIP() when `available()` is false (the binary is missing).

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "tests/support/temp_dir.h"

namespace lf::testing {

struct RegistryServerOptions {
  // htpasswd Basic auth with these users (bcrypt, via apache2-utils' htpasswd -B).
  std::vector<std::pair<std::string, std::string>> users;
  // Serve HTTPS with a certificate for 127.0.0.1/localhost signed by a CA made for this server.
  bool tls = false;
  // Token auth: the registry trusts JWTs signed by the key of `token_cert_pem` (x5c header).
  struct Token {
    std::string realm;    // "http://127.0.0.1:PORT/token"
    std::string service;  // audience
    std::string issuer;
    std::filesystem::path cert_pem;
  };
  std::optional<Token> token;
};

class RegistryServer {
 public:
  static bool available();

  // Starts the registry and waits until GET /v2/ answers (deadline 20 s).
  static Result<std::unique_ptr<RegistryServer>> start(RegistryServerOptions options = {});
  ~RegistryServer();

  uint16_t port() const { return port_; }
  // "127.0.0.1:PORT"
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // PEM of the CA that signed the TLS certificate (empty without TLS).
  const std::filesystem::path& caCertPath() const { return ca_cert_; }
  const std::filesystem::path& rootDirectory() const { return root_; }
  // The registry's log so far (for failure messages).
  std::string log() const;

 private:
  RegistryServer() = default;
  Status launch(const RegistryServerOptions& options);
  Status waitReady(bool tls);
  void stop();

  TempDir dir_;
  std::filesystem::path root_;
  std::filesystem::path ca_cert_;
  std::filesystem::path log_path_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Runs a command (argv), returns its exit code; output goes to `log` when given.
int runCommand(const std::vector<std::string>& argv, const std::filesystem::path& log = {});
// Binds 127.0.0.1:0 and returns the port the kernel picked (the socket is closed again).
Result<uint16_t> pickFreePort();
// Makes a CA (ca.pem/ca.key) and a server certificate for 127.0.0.1 and localhost
// (server.pem/server.key) in `dir` with the openssl CLI.
Status makeTestCertificates(const std::filesystem::path& dir);

}  // namespace lf::testing
