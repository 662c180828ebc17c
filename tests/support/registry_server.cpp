#include "tests/support/registry_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/registry/http_client.h"

namespace lf::testing {
namespace {

constexpr const char* kRegistryBinary = "/usr/bin/docker-registry";

pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& log,
            bool die_with_parent) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    if (die_with_parent) prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = log.empty() ? open("/dev/null", O_WRONLY)
                         : open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

int runCommand(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  pid_t pid = spawn(argv, log, /*die_with_parent=*/false);
  if (pid < 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Result<uint16_t> pickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return errnoStatus(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    return errnoStatus(err, "bind 127.0.0.1:0");
  }
  close(fd);
  return static_cast<uint16_t>(ntohs(addr.sin_port));
}

Status makeTestCertificates(const std::filesystem::path& dir) {
  auto log = dir / "openssl.log";
  auto p = [&](const char* name) { return (dir / name).string(); };
  std::vector<std::vector<std::string>> steps = {
      {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out",
       p("ca.pem"), "-days", "2", "-subj", "/CN=layerfarm test CA"},
      {"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"), "-out",
       p("server.csr"), "-subj", "/CN=127.0.0.1"},
  };
  for (const auto& s : steps) {
    if (runCommand(s, log) != 0) return internalError("openssl failed: " + readFile(log));
  }
  std::ofstream(dir / "ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                 << "basicConstraints=CA:FALSE\n"
                                 << "keyUsage=digitalSignature,keyEncipherment\n"
                                 << "extendedKeyUsage=serverAuth\n";
  if (runCommand({"openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey",
                  p("ca.key"), "-CAcreateserial", "-out", p("server.pem"), "-days", "2", "-extfile",
                  p("ext.cnf")},
                 log) != 0) {
    return internalError("openssl x509 failed: " + readFile(log));
  }
  return Status::ok();
}

bool RegistryServer::available() { return access(kRegistryBinary, X_OK) == 0; }

Result<std::unique_ptr<RegistryServer>> RegistryServer::start(RegistryServerOptions options) {
  std::unique_ptr<RegistryServer> server(new RegistryServer());
  Status last;
  // The port is free when we pick it but another process may take it before the registry
  // binds: try a few ports.
  for (int attempt = 0; attempt < 5; ++attempt) {
    last = server->launch(options);
    if (last.isOk()) return server;
    server->stop();
  }
  return last;
}

Status RegistryServer::launch(const RegistryServerOptions& options) {
  root_ = dir_ / "root";
  std::filesystem::create_directories(root_);
  log_path_ = dir_ / "registry.log";
  LF_ASSIGN_OR_RETURN(port_, pickFreePort());
  std::ostringstream cfg;
  cfg << "version: 0.1\n"
      << "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
      << "storage:\n  filesystem:\n    rootdirectory: " << root_.string() << "\n"
      << "  delete:\n    enabled: true\n"
      << "http:\n  addr: 127.0.0.1:" << port_ << "\n";
  if (options.tls) {
    if (!std::filesystem::exists(dir_ / "server.pem")) {
      LF_RETURN_IF_ERROR(makeTestCertificates(dir_.path()));
    }
    ca_cert_ = dir_ / "ca.pem";
    cfg << "  tls:\n    certificate: " << (dir_ / "server.pem").string()
        << "\n    key: " << (dir_ / "server.key").string() << "\n";
  }
  if (!options.users.empty()) {
    auto htpasswd = dir_ / "htpasswd";
    std::filesystem::remove(htpasswd);
    for (const auto& [user, password] : options.users) {
      std::vector<std::string> argv = {"htpasswd", "-B", "-b"};
      if (!std::filesystem::exists(htpasswd)) argv.push_back("-c");
      argv.insert(argv.end(), {htpasswd.string(), user, password});
      if (runCommand(argv, dir_ / "htpasswd.log") != 0) {
        return internalError("htpasswd failed: " + readFile(dir_ / "htpasswd.log"));
      }
    }
    cfg << "auth:\n  htpasswd:\n    realm: basic-realm\n    path: " << htpasswd.string() << "\n";
  } else if (options.token) {
    cfg << "auth:\n  token:\n    realm: " << options.token->realm
        << "\n    service: " << options.token->service << "\n    issuer: " << options.token->issuer
        << "\n    rootcertbundle: " << options.token->cert_pem.string() << "\n";
  }
  auto config_path = dir_ / "config.yml";
  std::ofstream(config_path) << cfg.str();
  pid_ = spawn({kRegistryBinary, "serve", config_path.string()}, log_path_, true);
  if (pid_ < 0) return errnoStatus(errno, "fork docker-registry");
  return waitReady(options.tls);
}

Status RegistryServer::waitReady(bool tls) {
  registry::HttpClientOptions http_options;
  http_options.ca_bundle_path = ca_cert_.string();
  http_options.connect_timeout_ms = 1000;
  http_options.io_timeout_ms = 2000;
  LF_ASSIGN_OR_RETURN(auto client, registry::HttpClient::create(http_options));
  LF_ASSIGN_OR_RETURN(auto url,
                      registry::Url::parse((tls ? "https://" : "http://") + host() + "/v2/"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return unavailable("docker-registry exited during startup: " + log());
    }
    registry::HttpRequest req;
    req.url = url;
    auto res = client->send(req);
    if (res.isOk() && (res->status == 200 || res->status == 401)) return Status::ok();
    // Polling a condition (the port accepting), not a fixed sleep standing in for one.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return deadlineExceeded("docker-registry did not answer GET /v2/ within 20 s: " + log());
}

std::string RegistryServer::log() const { return readFile(log_path_); }

void RegistryServer::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
}

RegistryServer::~RegistryServer() { stop(); }

}  // namespace lf::testing
