// clang-format off
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange
// clang-format on

#include "tests/coordinator/workers/test_worker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace lf::coordinator::workers_test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;
namespace v1 = layerfarm::v1;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct TestWorker::Impl {
  Impl() : ws(io), heartbeat(io) {}

  void push(std::string bytes, bool text) {
    asio::post(io, [this, bytes = std::move(bytes), text]() mutable {
      if (closed_io) {
        return;
      }
      out.emplace_back(std::move(bytes), text);
      startWrite();
    });
  }
  void startWrite();
  void heartbeatTick(const error_code& ec);

  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws;
  asio::steady_timer heartbeat;
  std::chrono::milliseconds heartbeat_every{0};
  std::thread thread;
  std::deque<std::pair<std::string, bool>> out;  // io thread only
  bool writing = false;
  bool closed_io = false;  // io thread only

  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<v1::CoordinatorMessage, bool>> received;  // (message, taken)
  std::set<std::pair<std::string, uint32_t>> running;             // assigned, not answered
  bool closed = false;
  int http_status = 0;
};

namespace {

using Impl = TestWorker::Impl;

asio::awaitable<void> writeLoop(Impl* d) {
  while (!d->out.empty() && !d->closed_io) {
    auto [bytes, text] = std::move(d->out.front());
    d->out.pop_front();
    d->ws.text(text);
    error_code ec;
    co_await d->ws.async_write(asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      break;
    }
  }
  d->writing = false;
}

asio::awaitable<void> readLoop(Impl* d) {
  for (;;) {
    beast::flat_buffer buffer;
    error_code ec;
    co_await d->ws.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      break;
    }
    v1::CoordinatorMessage m;
    if (!m.ParseFromArray(buffer.data().data(), static_cast<int>(buffer.size()))) {
      continue;  // the server only sends CoordinatorMessages; a test would see it missing
    }
    {
      std::lock_guard lock(d->mu);
      if (m.has_job_assign()) {
        d->running.emplace(m.job_assign().job_id(), m.job_assign().attempt());
      }
      d->received.emplace_back(std::move(m), false);
    }
    d->cv.notify_all();
  }
  d->closed_io = true;
  d->heartbeat.cancel();
  error_code ignored;  // already broken
  beast::get_lowest_layer(d->ws).socket().close(ignored);
  {
    std::lock_guard lock(d->mu);
    d->closed = true;
  }
  d->cv.notify_all();
}

// Connects, upgrades (reporting through `done`), then reads until the connection ends.
asio::awaitable<Status> connectAndRead(Impl* d, uint16_t port, std::string token,
                                       std::string path) {
  error_code ec;
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  co_await beast::get_lowest_layer(d->ws).async_connect(
      ep, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return unavailable("connect: " + ec.message());
  }
  d->ws.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
    if (!token.empty()) {
      req.set(http::field::authorization, "Bearer " + token);
    }
  }));
  websocket::response_type response;
  co_await d->ws.async_handshake(response, "127.0.0.1:" + std::to_string(port), path,
                                 asio::redirect_error(asio::use_awaitable, ec));
  {
    std::lock_guard lock(d->mu);
    d->http_status = static_cast<int>(response.result_int());
  }
  if (ec) {
    co_return unavailable("handshake: HTTP " + std::to_string(response.result_int()) + ": " +
                          ec.message());
  }
  d->ws.binary(true);
  asio::co_spawn(d->io, readLoop(d), asio::detached);
  co_return Status::ok();
}

}  // namespace

void TestWorker::Impl::startWrite() {
  if (!writing) {
    writing = true;
    asio::co_spawn(io, writeLoop(this), asio::detached);
  }
}

void TestWorker::Impl::heartbeatTick(const error_code& ec) {
  if (ec || closed_io) {
    return;
  }
  v1::WorkerMessage m;
  {
    std::lock_guard lock(mu);
    for (const auto& [job, attempt] : running) {
      v1::JobId* id = m.mutable_heartbeat()->add_running();
      id->set_job_id(job);
      id->set_attempt(attempt);
    }
  }
  m.mutable_heartbeat()->set_free_slots(0);
  out.emplace_back(m.SerializeAsString(), false);
  startWrite();
  heartbeat.expires_after(heartbeat_every);
  heartbeat.async_wait([this](const error_code& e) { heartbeatTick(e); });
}

TestWorker::TestWorker() : impl_(std::make_unique<Impl>()) {}

TestWorker::~TestWorker() {
  Impl* d = impl_.get();
  if (d->thread.joinable()) {
    asio::post(d->io, [d] {
      d->closed_io = true;
      d->heartbeat.cancel();
      error_code ignored;  // tearing down
      beast::get_lowest_layer(d->ws).socket().close(ignored);
      d->io.stop();
    });
    d->thread.join();
  }
}

Status TestWorker::connect(uint16_t port, const std::string& token, const std::string& path) {
  Impl* d = impl_.get();
  // Asynchronous: Boost 1.74's synchronous handshake leaves the response empty when it fails.
  std::future<Status> connected =
      asio::co_spawn(d->io, connectAndRead(d, port, token, path), asio::use_future);
  d->thread = std::thread([d] { d->io.run(); });
  return connected.get();
}

int TestWorker::httpStatus() const {
  std::lock_guard lock(impl_->mu);
  return impl_->http_status;
}

std::optional<v1::CoordinatorMessage> TestWorker::registerAs(
    const std::string& id, int slots, const std::vector<std::string>& diff_ids, uint32_t major) {
  v1::WorkerMessage m;
  v1::Register& r = *m.mutable_register_();
  r.mutable_protocol_version()->set_major(major);
  r.set_worker_id(id);
  r.set_worker_version("test-worker");
  r.set_platform("linux/amd64");
  r.set_slots(static_cast<uint32_t>(slots));
  for (const std::string& diff_id : diff_ids) {
    r.add_diff_ids(diff_id);
  }
  send(m);
  return waitFor(
      [](const v1::CoordinatorMessage& c) { return c.has_registered() || c.has_error(); },
      std::chrono::seconds(10));
}

void TestWorker::send(const v1::WorkerMessage& m) { impl_->push(m.SerializeAsString(), false); }

void TestWorker::sendRaw(std::string bytes, bool text) { impl_->push(std::move(bytes), text); }

void TestWorker::sendResult(const std::string& job_id, uint32_t attempt, v1::StepOutcome outcome,
                            const std::string& diff_id) {
  {
    std::lock_guard lock(impl_->mu);
    impl_->running.erase({job_id, attempt});
  }
  v1::WorkerMessage m;
  v1::JobResult& r = *m.mutable_job_result();
  r.set_job_id(job_id);
  r.set_attempt(attempt);
  r.mutable_result()->set_step_id(job_id);
  r.mutable_result()->set_outcome(outcome);
  if (!diff_id.empty()) {
    r.mutable_result()->mutable_layer()->set_diff_id(diff_id);
  }
  send(m);
}

void TestWorker::startHeartbeats(std::chrono::milliseconds every) {
  Impl* d = impl_.get();
  asio::post(d->io, [d, every] {
    d->heartbeat_every = every;
    d->heartbeatTick(error_code{});
  });
}

void TestWorker::dropConnection() {
  Impl* d = impl_.get();
  asio::post(d->io, [d] {
    error_code ignored;  // the point is to break it
    beast::get_lowest_layer(d->ws).socket().close(ignored);
  });
}

std::optional<v1::CoordinatorMessage> TestWorker::waitFor(
    std::function<bool(const v1::CoordinatorMessage&)> pred, std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  std::optional<v1::CoordinatorMessage> found;
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

std::optional<v1::CoordinatorMessage> TestWorker::waitAssign(std::chrono::milliseconds timeout) {
  return waitFor([](const v1::CoordinatorMessage& m) { return m.has_job_assign(); }, timeout);
}

bool TestWorker::waitClosed(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mu);
  return impl_->cv.wait_for(lock, timeout, [&] { return impl_->closed; });
}

bool TestWorker::closed() const {
  std::lock_guard lock(impl_->mu);
  return impl_->closed;
}

std::vector<v1::CoordinatorMessage> TestWorker::all() const {
  std::lock_guard lock(impl_->mu);
  std::vector<v1::CoordinatorMessage> out;
  for (const auto& [m, taken] : impl_->received) {
    out.push_back(m);
  }
  return out;
}

}  // namespace lf::coordinator::workers_test
