// WorkerServer's transport: the one coordinator file that includes Beast (WebSocket). Accepts
// workers' connections, checks the bearer token before the upgrade, reads binary frames into
// WorkerMessages for worker_server_protocol.cpp, writes CoordinatorMessages through one queue
// per connection, and runs the Scheduler's deadline timer. Everything runs on the one io thread.
// Coroutines are named functions taking their arguments by value (lambda coroutines with
// captures double-free with g++ 12, see ARCHITECTURE.md).
// clang-format off
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange
// clang-format on

#include "coordinator/workers/worker_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <deque>
#include <set>
#include <thread>

#include "coordinator/workers/worker_server_internal.h"

namespace lf::coordinator {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;
namespace v1 = layerfarm::v1;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// How long a closing connection may take to flush its last frames and the close handshake.
constexpr auto kCloseGrace = std::chrono::seconds(5);

struct Conn : ConnBase {
  explicit Conn(tcp::socket s)
      : ws(std::move(s)), register_timer(ws.get_executor()), close_timer(ws.get_executor()) {}
  websocket::stream<beast::tcp_stream> ws;
  asio::steady_timer register_timer;  // Register must come before it fires
  asio::steady_timer close_timer;     // bounds a graceful close
  std::deque<std::string> out;        // serialized frames waiting for the writer
  bool writing = false;
  bool closing = false;  // flushing, then closing: later frames from the worker are ignored
  std::string close_reason;
};

std::shared_ptr<Conn> asConn(const ConnPtr& c) { return std::static_pointer_cast<Conn>(c); }

}  // namespace

struct Transport {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::steady_timer timer{io};
  std::optional<TimePoint> armed;  // what `timer` waits for
  std::thread thread;
  uint16_t port = 0;
  bool started = false;
  bool stopped = false;
  std::set<std::shared_ptr<Conn>> live;  // open connections, for stop()
};

namespace {

using Impl = WorkerServer::Impl;

asio::awaitable<void> writeLoop(Impl* d, std::shared_ptr<Conn> c) {
  error_code ec;
  while (!c->closed && !c->out.empty()) {
    std::string bytes = std::move(c->out.front());
    c->out.pop_front();
    co_await c->ws.async_write(asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      d->close(c, "write to the worker failed: " + ec.message());
      break;
    }
    std::lock_guard lock(d->mu);
    ++d->server_stats.frames_sent;
  }
  c->writing = false;
  if (!c->closed && c->closing) {
    co_await c->ws.async_close(websocket::close_code::protocol_error,
                               asio::redirect_error(asio::use_awaitable, ec));
    d->close(c, c->close_reason);
  }
}

void startWriter(Impl* d, const std::shared_ptr<Conn>& c) {
  if (!c->writing && !c->closed) {
    c->writing = true;
    asio::co_spawn(d->transport->io, writeLoop(d, c), asio::detached);
  }
}

bool tokenAccepted(const std::vector<std::string>& tokens, std::string_view authorization) {
  if (tokens.empty()) {
    return true;
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) {
    return false;
  }
  std::string_view given = authorization.substr(kBearer.size());
  bool ok = false;
  for (const std::string& token : tokens) {
    // Compare every byte of equal-length tokens so the time taken says little about the token.
    if (token.size() == given.size()) {
      unsigned char diff = 0;
      for (size_t i = 0; i < token.size(); ++i) {
        diff |= static_cast<unsigned char>(token[i] ^ given[i]);
      }
      ok = ok || diff == 0;
    }
  }
  return ok;
}

asio::awaitable<void> refuse(Impl* d, std::shared_ptr<Conn> c, http::status status,
                             unsigned version, std::string body, std::string why) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::content_type, "text/plain");
  if (status == http::status::unauthorized) {
    res.set(http::field::www_authenticate, "Bearer realm=\"layerfarm-workers\"");
  }
  res.keep_alive(false);
  res.body() = std::move(body);
  res.prepare_payload();
  error_code ec;
  co_await http::async_write(beast::get_lowest_layer(c->ws), res,
                             asio::redirect_error(asio::use_awaitable, ec));
  spdlog::warn("worker handshake refused peer={} status={} reason={}", c->peer,
               static_cast<unsigned>(status), why);
  std::lock_guard lock(d->mu);
  ++d->server_stats.refused_handshakes;
}

// Reads the HTTP upgrade, checks path and token, accepts the WebSocket. False: refused or failed
// (already answered and logged).
asio::awaitable<bool> handshake(Impl* d, std::shared_ptr<Conn> c) {
  auto& stream = beast::get_lowest_layer(c->ws);
  stream.expires_after(std::chrono::milliseconds(d->options.register_timeout_ms));
  error_code ec;
  beast::flat_buffer buffer;
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1024);
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    spdlog::info("worker handshake failed peer={} reason={}", c->peer, ec.message());
    co_return false;
  }
  http::request<http::string_body> req = parser.release();
  std::string_view target(req.target().data(), req.target().size());
  target = target.substr(0, target.find('?'));
  if (target != d->options.path) {
    co_await refuse(d, c, http::status::not_found, req.version(),
                    "the worker endpoint is " + d->options.path + "\n",
                    "path " + std::string(target));
    co_return false;
  }
  auto auth = req[http::field::authorization];
  if (!tokenAccepted(d->options.tokens, std::string_view(auth.data(), auth.size()))) {
    co_await refuse(d, c, http::status::unauthorized, req.version(),
                    "missing or unknown bearer token\n",
                    auth.empty() ? "no Authorization header" : "unknown bearer token");
    co_return false;
  }
  if (!websocket::is_upgrade(req)) {
    co_await refuse(d, c, http::status::upgrade_required, req.version(),
                    "this endpoint speaks WebSocket\n", "not a WebSocket upgrade");
    co_return false;
  }
  co_await c->ws.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    spdlog::info("worker handshake failed peer={} reason={}", c->peer, ec.message());
    co_return false;
  }
  stream.expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::milliseconds(d->options.register_timeout_ms);
  // A TCP peer that went away without a FIN is found by Beast's pings; the Scheduler's
  // heartbeat timeout usually finds it first.
  auto idle = std::max<int64_t>(3ll * d->options.heartbeat_interval_ms,
                                d->options.scheduler.heartbeat_timeout.count());
  timeouts.idle_timeout = std::chrono::milliseconds(idle + 1000);
  timeouts.keep_alive_pings = true;
  c->ws.set_option(timeouts);
  c->ws.binary(true);
  c->ws.read_message_max(d->options.max_frame_bytes);
  {
    std::lock_guard lock(d->mu);
    ++d->server_stats.connections;
  }
  co_return true;
}

void onRegisterTimeout(Impl* d, std::shared_ptr<Conn> c, const error_code& ec) {
  if (!ec && !c->registered && !c->closed) {
    spdlog::warn("worker sent no Register peer={} timeout_ms={}", c->peer,
                 d->options.register_timeout_ms);
    d->close(c, "no Register in time");
  }
}

asio::awaitable<void> session(Impl* d, std::shared_ptr<Conn> c) {
  if (!co_await handshake(d, c)) {
    d->close(c, "handshake refused");
    d->transport->live.erase(c);
    co_return;
  }
  spdlog::info("worker connected peer={}", c->peer);
  c->register_timer.expires_after(std::chrono::milliseconds(d->options.register_timeout_ms));
  c->register_timer.async_wait([d, c](const error_code& ec) { onRegisterTimeout(d, c, ec); });
  beast::flat_buffer buffer;
  std::string reason;
  for (;;) {
    buffer.clear();
    error_code ec;
    co_await c->ws.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      reason = c->closed ? c->close_reason : "read from the worker: " + ec.message();
      break;
    }
    if (c->closing || c->closed) {
      continue;  // the connection is going away; what it says no longer counts
    }
    if (!c->ws.got_binary()) {
      d->malformed(c, "a text frame (the protocol is binary protobuf)");
      continue;
    }
    v1::WorkerMessage message;
    if (!message.ParseFromArray(buffer.data().data(), static_cast<int>(buffer.size()))) {
      d->malformed(
          c, "a frame that is not a WorkerMessage (" + std::to_string(buffer.size()) + " bytes)");
      continue;
    }
    d->onFrame(c, message);
  }
  d->close(c, reason);
  d->onClosed(c, reason);
  d->transport->live.erase(c);
}

asio::awaitable<void> acceptLoop(Impl* d) {
  for (;;) {
    error_code ec;
    tcp::socket socket =
        co_await d->transport->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (d->transport->stopped || ec == asio::error::operation_aborted) {
        co_return;
      }
      spdlog::warn("worker accept failed error={}", ec.message());
      continue;
    }
    auto c = std::make_shared<Conn>(std::move(socket));
    error_code ignored;  // a peer that already left has no address; the session will notice
    auto remote = beast::get_lowest_layer(c->ws).socket().remote_endpoint(ignored);
    c->peer = remote.address().to_string() + ":" + std::to_string(remote.port());
    d->transport->live.insert(c);
    asio::co_spawn(d->transport->io, session(d, c), asio::detached);
  }
}

void onTimerFired(Impl* d, const error_code& ec) {
  if (ec == asio::error::operation_aborted || d->transport->stopped) {
    return;
  }
  d->transport->armed.reset();
  d->onTimer();
}

}  // namespace

WorkerServer::Impl::Impl(WorkerServerOptions o)
    : options(std::move(o)),
      transport(std::make_unique<Transport>()),
      scheduler(options.scheduler) {}

WorkerServer::Impl::~Impl() = default;

void WorkerServer::Impl::send(const ConnPtr& base, const v1::CoordinatorMessage& m) {
  auto c = asConn(base);
  if (c->closed || c->closing) {
    return;
  }
  c->out.push_back(m.SerializeAsString());
  startWriter(this, c);
}

void WorkerServer::Impl::close(const ConnPtr& base, const std::string& reason) {
  auto c = asConn(base);
  if (c->closed) {
    return;
  }
  c->closed = true;
  if (c->close_reason.empty()) {
    c->close_reason = reason;
  }
  c->out.clear();
  c->register_timer.cancel();
  c->close_timer.cancel();
  error_code ignored;  // closing a socket that is already gone is fine
  beast::get_lowest_layer(c->ws).socket().close(ignored);
}

void WorkerServer::Impl::closeAfterFlush(const ConnPtr& base, const std::string& reason) {
  auto c = asConn(base);
  if (c->closed || c->closing) {
    return;
  }
  c->closing = true;
  c->close_reason = reason;
  c->close_timer.expires_after(kCloseGrace);
  Impl* d = this;
  c->close_timer.async_wait([d, c](const error_code& ec) {
    if (!ec) {
      d->close(c, c->close_reason + " (close timed out)");
    }
  });
  if (!c->writing) {
    // Nothing queued: the writer starts, finds the queue empty and closes.
    c->writing = true;
    asio::co_spawn(transport->io, writeLoop(this, c), asio::detached);
  }
}

void WorkerServer::Impl::armTimer(std::optional<TimePoint> at) {
  Transport& t = *transport;
  if (t.stopped || at == t.armed) {
    return;
  }
  t.armed = at;
  if (!at) {
    t.timer.cancel();
    return;
  }
  t.timer.expires_at(*at);  // cancels a wait for another deadline
  Impl* d = this;
  t.timer.async_wait([d](const error_code& ec) { onTimerFired(d, ec); });
}

void WorkerServer::Impl::post(std::function<void()> fn) {
  asio::post(transport->io, std::move(fn));
}

WorkerServer::WorkerServer(WorkerServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

WorkerServer::~WorkerServer() { stop(); }

Status WorkerServer::start() {
  Impl* d = impl_.get();
  Transport& t = *d->transport;
  if (t.started) {
    return failedPrecondition("worker server: start() called twice");
  }
  error_code ec;
  tcp::endpoint endpoint;
  auto address = asio::ip::make_address(d->options.listen_address, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, d->options.port);
  } else {
    // A host name ("localhost"): listen on its first IPv4 address (workers' configs usually
    // name IPv4 loopback), else its first address.
    tcp::resolver resolver(t.io);
    auto found = resolver.resolve(d->options.listen_address, std::to_string(d->options.port), ec);
    if (ec || found.empty()) {
      return invalidArgument("worker server listen address \"" + d->options.listen_address +
                             "\": " + (ec ? ec.message() : std::string("no address")));
    }
    endpoint = found.begin()->endpoint();
    for (const auto& entry : found) {
      if (entry.endpoint().address().is_v4()) {
        endpoint = entry.endpoint();
        break;
      }
    }
  }
  std::string where = d->options.listen_address + ":" + std::to_string(d->options.port);
  t.acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    t.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    t.acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    t.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return unavailable("worker server: listen on " + where + ": " + ec.message());
  }
  t.port = t.acceptor.local_endpoint(ec).port();
  t.started = true;
  asio::co_spawn(t.io, acceptLoop(d), asio::detached);
  t.thread = std::thread([&t] { t.io.run(); });
  spdlog::info("worker server listening address={} port={} path={} auth={}",
               d->options.listen_address, t.port, d->options.path,
               d->options.tokens.empty() ? "none" : "bearer");
  return Status::ok();
}

uint16_t WorkerServer::port() const { return impl_->transport->port; }

void WorkerServer::stop() {
  Impl* d = impl_.get();
  Transport& t = *d->transport;
  if (!t.started || t.stopped) {
    return;
  }
  asio::post(t.io, [d, &t] {
    t.stopped = true;
    error_code ignored;  // shutting down
    t.acceptor.close(ignored);
    t.timer.cancel();
    for (const auto& c : t.live) {
      d->close(c, "coordinator shutting down");
    }
    t.io.stop();
  });
  t.thread.join();
  t.stopped = true;
}

}  // namespace lf::coordinator
