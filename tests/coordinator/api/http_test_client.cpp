#include "tests/coordinator/api/http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace lf::testing {

HttpTestClient::HttpTestClient(int port, int timeout_ms) : timeout_ms_(timeout_ms) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

HttpTestClient::~HttpTestClient() { close(); }

void HttpTestClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool HttpTestClient::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool HttpTestClient::sendRequest(std::string_view method, std::string_view target,
                                 std::string_view body, const std::vector<std::string>& headers) {
  std::string req = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\n";
  req += "Host: 127.0.0.1\r\n";
  for (const std::string& h : headers) req += h + "\r\n";
  if (!body.empty() || method == "PUT" || method == "POST") {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;
  return send(req);
}

bool HttpTestClient::fill() {
  pollfd p{fd_, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms_);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  char tmp[65536];
  ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf_.append(tmp, static_cast<size_t>(n));
  return true;
}

bool HttpTestClient::readLine(std::string* line) {
  while (true) {
    size_t eol = buf_.find("\r\n");
    if (eol != std::string::npos) {
      *line = buf_.substr(0, eol);
      buf_.erase(0, eol + 2);
      return true;
    }
    if (!fill()) return false;
  }
}

bool HttpTestClient::readExact(size_t n, std::string* out) {
  while (buf_.size() < n) {
    if (!fill()) return false;
  }
  out->append(buf_, 0, n);
  buf_.erase(0, n);
  return true;
}

HttpAnswer HttpTestClient::readHead() {
  HttpAnswer a;
  std::string line;
  if (!readLine(&line) || line.size() < 12 || line.compare(0, 5, "HTTP/") != 0) return a;
  int status = std::atoi(line.c_str() + 9);
  while (readLine(&line) && !line.empty()) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    size_t v = line.find_first_not_of(' ', colon + 1);
    a.headers[name] = v == std::string::npos ? "" : line.substr(v);
  }
  if (line.empty()) a.status = status;
  return a;
}

bool HttpTestClient::readChunk(std::string* chunk) {
  chunk->clear();
  std::string line;
  if (!readLine(&line)) return false;
  size_t size = std::strtoul(line.c_str(), nullptr, 16);
  if (size == 0) {
    // Trailer section: lines up to an empty one.
    while (readLine(&line) && !line.empty()) {
    }
    return line.empty();
  }
  if (!readExact(size, chunk)) return false;
  return readLine(&line) && line.empty();
}

HttpAnswer HttpTestClient::read(bool head) {
  HttpAnswer a = readHead();
  if (a.status == 0 || head || a.status == 100 || a.status == 204 || a.status == 304) return a;
  if (auto te = a.headers.find("transfer-encoding");
      te != a.headers.end() && te->second == "chunked") {
    std::string chunk;
    while (readChunk(&chunk) && !chunk.empty()) {
      a.chunks.push_back(chunk);
      a.body += chunk;
    }
    return a;
  }
  auto it = a.headers.find("content-length");
  if (it != a.headers.end()) {
    if (!readExact(std::strtoull(it->second.c_str(), nullptr, 10), &a.body)) a.status = 0;
    return a;
  }
  while (fill()) {
  }
  a.body = std::move(buf_);
  buf_.clear();
  return a;
}

bool HttpTestClient::closedByPeer() {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms_) <= 0) return false;
  char c;
  ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

}  // namespace lf::testing
