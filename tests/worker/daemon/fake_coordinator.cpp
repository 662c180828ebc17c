// clang-format off
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange
// clang-format on

#include "tests/worker/daemon/fake_coordinator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace lf::worker::daemon_test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;
namespace v1 = layerfarm::v1;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct ServerConn {
  explicit ServerConn(tcp::socket s) : ws(std::move(s)) {}
  websocket::stream<beast::tcp_stream> ws;
  std::deque<std::pair<std::string, bool>> out;  // (bytes, text), io thread only
  bool writing = false;
  bool closed = false;
};

}  // namespace

struct FakeCoordinator::Impl {
  explicit Impl(std::string t) : token(std::move(t)), acceptor(io) {}

  void startWrite(const std::shared_ptr<ServerConn>& c);
  void record(v1::WorkerMessage m) {
    {
      std::lock_guard lock(mu);
      received.emplace_back(std::move(m), false);
    }
    cv.notify_all();
  }

  std::string token;
  asio::io_context io;
  tcp::acceptor acceptor;
  uint16_t port = 0;
  std::thread thread;
  std::shared_ptr<ServerConn> conn;  // the latest connection, io thread only
  std::atomic<bool> auto_register{true};
  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<v1::WorkerMessage, bool>> received;
  int handshakes = 0;
  int refused = 0;
};

namespace {

using Impl = FakeCoordinator::Impl;

asio::awaitable<void> writeLoop(Impl* self, std::shared_ptr<ServerConn> c) {
  while (!c->out.empty() && !c->closed) {
    auto [bytes, text] = std::move(c->out.front());
    c->out.pop_front();
    c->ws.text(text);
    error_code ec;
    co_await c->ws.async_write(asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      break;
    }
  }
  c->writing = false;
}

asio::awaitable<bool> handshake(Impl* self, std::shared_ptr<ServerConn> c) {
  error_code ec;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  co_await http::async_read(beast::get_lowest_layer(c->ws), buffer, req,
                            asio::redirect_error(asio::use_awaitable, ec));
  if (ec || !websocket::is_upgrade(req)) {
    co_return false;
  }
  if (req[http::field::authorization] != "Bearer " + self->token) {
    http::response<http::string_body> res{http::status::unauthorized, req.version()};
    res.body() = "bad token";
    res.prepare_payload();
    co_await http::async_write(beast::get_lowest_layer(c->ws), res,
                               asio::redirect_error(asio::use_awaitable, ec));
    {
      std::lock_guard lock(self->mu);
      ++self->refused;
    }
    self->cv.notify_all();
    co_return false;
  }
  co_await c->ws.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return false;
  }
  c->ws.binary(true);
  self->conn = c;
  {
    std::lock_guard lock(self->mu);
    ++self->handshakes;
  }
  self->cv.notify_all();
  co_return true;
}

asio::awaitable<void> serve(Impl* self, std::shared_ptr<ServerConn> c) {
  if (!co_await handshake(self, c)) {
    co_return;
  }
  for (;;) {
    error_code ec;
    beast::flat_buffer frame;
    co_await c->ws.async_read(frame, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      c->closed = true;
      co_return;
    }
    v1::WorkerMessage m;
    if (!m.ParseFromArray(frame.data().data(), static_cast<int>(frame.size()))) {
      ADD_FAILURE() << "worker sent a frame that does not parse";
      co_return;
    }
    if (m.has_register_() && self->auto_register) {
      v1::CoordinatorMessage reply;
      reply.mutable_registered()->set_accepted(true);
      reply.mutable_registered()->set_heartbeat_interval_ms(100);
      reply.mutable_registered()->set_server_version("fake");
      c->out.emplace_back(reply.SerializeAsString(), false);
      self->startWrite(c);
    }
    self->record(std::move(m));
  }
}

asio::awaitable<void> acceptLoop(Impl* self) {
  for (;;) {
    error_code ec;
    tcp::socket socket =
        co_await self->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      co_return;
    }
    asio::co_spawn(self->io, serve(self, std::make_shared<ServerConn>(std::move(socket))),
                   asio::detached);
  }
}

}  // namespace

void FakeCoordinator::Impl::startWrite(const std::shared_ptr<ServerConn>& c) {
  if (!c->writing) {
    c->writing = true;
    asio::co_spawn(io, writeLoop(this, c), asio::detached);
  }
}

FakeCoordinator::FakeCoordinator(std::string token) : impl_(std::make_unique<Impl>(token)) {
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, acceptLoop(impl_.get()), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

FakeCoordinator::~FakeCoordinator() {
  Impl* d = impl_.get();
  asio::post(d->io, [d] {
    error_code ignored;  // tearing down
    d->acceptor.close(ignored);
    if (d->conn) {
      beast::get_lowest_layer(d->conn->ws).socket().close(ignored);
    }
    d->io.stop();
  });
  d->thread.join();
}

uint16_t FakeCoordinator::port() const { return impl_->port; }

std::string FakeCoordinator::url() const {
  return "ws://127.0.0.1:" + std::to_string(impl_->port) + "/v1/workers";
}

void FakeCoordinator::send(const v1::CoordinatorMessage& m) {
  sendRaw(m.SerializeAsString(), false);
}

void FakeCoordinator::sendRaw(std::string bytes, bool text) {
  Impl* d = impl_.get();
  asio::post(d->io, [d, bytes = std::move(bytes), text] {
    if (d->conn && !d->conn->closed) {
      d->conn->out.emplace_back(bytes, text);
      d->startWrite(d->conn);
    }
  });
}

void FakeCoordinator::dropConnection() {
  Impl* d = impl_.get();
  asio::post(d->io, [d] {
    if (d->conn) {
      d->conn->closed = true;
      error_code ignored;  // the point is to break it
      beast::get_lowest_layer(d->conn->ws).socket().close(ignored);
    }
  });
}

void FakeCoordinator::setAutoRegister(bool on) { impl_->auto_register = on; }

std::optional<v1::WorkerMessage> FakeCoordinator::waitFor(
    std::function<bool(const v1::WorkerMessage&)> pred, std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  std::optional<v1::WorkerMessage> found;
  impl_->cv.wait_for(lock, timeout, [&] {
    for (auto& [msg, taken] : impl_->received) {
      if (!taken && pred(msg)) {
        taken = true;
        found = msg;
        return true;
      }
    }
    return false;
  });
  return found;
}

std::vector<v1::WorkerMessage> FakeCoordinator::all() const {
  std::lock_guard lock(impl_->mu);
  std::vector<v1::WorkerMessage> out;
  for (const auto& [m, taken] : impl_->received) {
    out.push_back(m);
  }
  return out;
}

int FakeCoordinator::handshakes() const {
  std::lock_guard lock(impl_->mu);
  return impl_->handshakes;
}

int FakeCoordinator::refused() const {
  std::lock_guard lock(impl_->mu);
  return impl_->refused;
}

}  // namespace lf::worker::daemon_test
