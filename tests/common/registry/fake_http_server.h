#pragma once

// FakeHttpServer: a tiny HTTP/1.1 server on 127.0.0.1:<free port> for tests that need a server
// to misbehave on purpose (wrong bytes, truncated bodies, endless 401s, stalls) or a token
// endpoint. Each connection runs on its own thread and may carry several requests.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lf::testing {

struct FakeRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;

  std::string path() const { return target.substr(0, target.find('?')); }
  // All values of a query parameter, percent-decoded.
  std::vector<std::string> query(const std::string& name) const;
};

class FakeHttpServer {
 public:
  // The handler returns the raw bytes to write (status line, headers, body). Returning an empty
  // string closes the connection without an answer. It may call waitUntilStopped() to stall.
  using Handler = std::function<std::string(const FakeRequest&)>;

  explicit FakeHttpServer(Handler handler);
  ~FakeHttpServer();

  uint16_t port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "http://" + host(); }
  int requestCount() const { return requests_; }
  int connectionCount() const { return connections_; }
  // Called from a handler: close the connection after writing this reply (to cut a body short).
  static void closeAfterReply();
  // Blocks until the server is being destroyed (for handlers that simulate a stalled peer).
  void waitUntilStopped();

  // Builds a response: "HTTP/1.1 <status> X\r\n" + headers + Content-Length + body.
  static std::string response(int status,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              const std::string& body = "");

 private:
  void acceptLoop();
  void serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable stopped_cv_;
  std::vector<int> conn_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace lf::testing
