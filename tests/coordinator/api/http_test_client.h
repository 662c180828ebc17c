#pragma once

// A deliberately small HTTP/1.1 client over a raw loopback socket for the API tests: it sends
// exactly the bytes a test gives it (so tests can send garbage), and parses answers with
// Content-Length or chunked bodies. Every read waits at most `timeout_ms` (no test hangs).
// Not thread-safe; one per test thread.

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lf::testing {

struct HttpAnswer {
  int status = 0;                              // 0 when no answer could be read
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                            // de-chunked
  std::vector<std::string> chunks;             // the chunks as received, when chunked
};

class HttpTestClient {
 public:
  explicit HttpTestClient(int port, int timeout_ms = 10'000);
  ~HttpTestClient();
  HttpTestClient(const HttpTestClient&) = delete;
  HttpTestClient& operator=(const HttpTestClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Sends raw bytes.
  bool send(std::string_view bytes);
  // Sends a request with Host, Content-Length (when body is non-empty or the method is PUT/POST)
  // and the extra header lines ("Name: value").
  bool sendRequest(std::string_view method, std::string_view target, std::string_view body = "",
                   const std::vector<std::string>& headers = {});
  // Reads one response (for HEAD requests pass head = true: no body follows).
  HttpAnswer read(bool head = false);
  // Reads the status line and headers only.
  HttpAnswer readHead();
  // Reads the next chunk of a chunked body ("" at the last chunk); false on error/timeout.
  bool readChunk(std::string* chunk);
  // True when the server closed the connection (a read returns EOF within the timeout).
  bool closedByPeer();
  void close();

  HttpAnswer request(std::string_view method, std::string_view target, std::string_view body = "",
                     const std::vector<std::string>& headers = {}) {
    if (!sendRequest(method, target, body, headers)) return {};
    return read(method == "HEAD");
  }

 private:
  bool fill();  // reads more into buf_; false on EOF, error or timeout
  bool readLine(std::string* line);
  bool readExact(size_t n, std::string* out);

  int fd_ = -1;
  int timeout_ms_;
  std::string buf_;
};

}  // namespace lf::testing
