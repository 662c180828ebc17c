#pragma once

// HttpServer: the coordinator's HTTP/JSON API (docs/http-api.md) in front of a BuildService.
//
// Routes: contexts (HEAD/PUT, the PUT body streamed into BuildService::blobs() in chunks, never
// held in memory whole), builds (submit, list, get, cancel, NDJSON event stream, export),
// workers, cache stats, image history, /healthz, /readyz and /metrics (CoordinatorMetrics).
//
// Thread model: one acceptor thread; each accepted connection gets its own thread running
// synchronous Beast reads and writes (event streams block on BuildEventLog::read and context
// uploads stream large bodies, which is simplest with a blocking thread). At most
// `max_connections` connections are served at once; beyond that a connection gets an immediate
// 503 and is closed. Keep-alive is supported. Every socket read and write has a deadline
// (`idle_timeout_ms`).
//
// Ownership: the server borrows the BuildService and CoordinatorMetrics; both must outlive it.
// Thread-safety: start() and stop() are called from one owning thread; stop() is idempotent and
// is called by the destructor. stop() closes the listener and every live connection (an event
// stream notices within `event_poll_ms`) and joins all threads.
//
// Errors: start() returns kUnavailable when the address cannot be bound, kInvalidArgument for a
// bad address. Request errors never escape: they are answered with {"error": {"code", "message"}}
// and the status docs/http-api.md gives; malformed HTTP closes that connection only.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace lf::coordinator {

class BuildService;
class CoordinatorMetrics;

// One configured API client (coordinator config `clients`): a bearer token and what it may do.
struct ApiClient {
  std::string token;
  std::string tenant;
  // Namespaces (first path component of a repository) the client may push to.
  std::vector<std::string> namespaces;
  // Admins may push to any namespace, library/ included.
  bool admin = false;
};

struct HttpServerOptions {
  // IPv4 or IPv6 literal to listen on.
  std::string listen_address = "127.0.0.1";
  // 0 = an ephemeral port; HttpServer::port() says which one was bound.
  uint16_t port = 7070;
  // Empty = no authentication: every request is tenant "default" with any namespace except
  // library/. Otherwise every request except /healthz, /readyz and /metrics needs
  // `Authorization: Bearer <token>` matching one entry (401 without or with an unknown token).
  std::vector<ApiClient> clients;
  // Largest JSON request body (bytes); larger: 413.
  uint64_t max_json_body_bytes = 1ull << 20;
  // Largest context upload (bytes); a larger Content-Length is answered 413 before reading.
  uint64_t max_context_bytes = 4ull << 30;
  // Largest request header block (bytes); larger: 431/400 and the connection is closed.
  uint32_t max_header_bytes = 16 << 10;
  // Connections served at once; more are answered 503 and closed.
  uint32_t max_connections = 256;
  // Deadline for each socket read/write, and for a keep-alive connection to send its next
  // request (milliseconds).
  uint32_t idle_timeout_ms = 60'000;
  // How often an event stream waiting for events checks that the client is still there and the
  // server is not stopping (milliseconds).
  uint32_t event_poll_ms = 500;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, BuildService& service, CoordinatorMetrics& metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Call once.
  Status start();
  // The bound port (meaningful after a successful start()).
  uint16_t port() const;
  // Stops accepting, closes live connections and joins every thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf::coordinator
