// The WorkerDaemon's io side: the one file of the worker that includes Beast (WebSocket).
// Coroutines are named functions taking their arguments by value (lambda coroutines with
// captures double-free with g++ 12, see ARCHITECTURE.md).
// clang-format off
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange
// clang-format on

#include "worker/daemon/worker_daemon.h"

#include <spdlog/spdlog.h>
#include <sys/utsname.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <mutex>
#include <random>
#include <set>

#include "worker/daemon/job_slots.h"
#include "worker/daemon/outbox.h"
#include "worker/exec/step_runner.h"
#include "worker/layer_store/layer_store.h"

namespace lf::worker {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace http = boost::beast::http;
namespace v1 = layerfarm::v1;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr uint32_t kProtocolMajor = 1;
constexpr uint32_t kProtocolMinor = 0;
constexpr size_t kMaxFrameBytes = 64u << 20;

std::string defaultPlatform() {
  struct utsname u {};
  std::string arch = ::uname(&u) == 0 ? u.machine : "";
  if (arch == "x86_64") {
    return "linux/amd64";
  }
  if (arch == "aarch64") {
    return "linux/arm64";
  }
  return "linux/" + (arch.empty() ? std::string("unknown") : arch);
}

// One WebSocket connection and what belongs to it. Shared by the coroutines working on it; they
// all run on the io thread.
struct Conn {
  explicit Conn(asio::io_context& io)
      : ws(io), wake(io), writer_done(io), heartbeat(io), register_deadline(io) {}
  websocket::stream<beast::tcp_stream> ws;
  asio::steady_timer wake;         // the writer waits here for frames
  asio::steady_timer writer_done;  // cancelled when the writer has exited
  asio::steady_timer heartbeat;
  asio::steady_timer register_deadline;
  bool closed = false;
  bool registered = false;
  bool writer_running = false;
  // A heartbeat waits in the outbox: a coordinator that reads slowly gets one, not a pile.
  bool heartbeat_queued = false;
  uint32_t heartbeat_ms = 0;
  std::set<std::string> reported_layers;  // what the coordinator knows we hold
};

}  // namespace

struct WorkerDaemon::Impl {
  Impl(WorkerDaemonOptions o, StepExecutor& e)
      : options(std::move(o)),
        cfg(options.config),
        executor(e),
        outbox(OutboxOptions{cfg.log_queue_bytes, std::chrono::milliseconds(cfg.log_block_ms)},
               [this] { asio::post(io, [this] { wakeWriter(); }); }),
        slots(cfg.slots, executor, outbox, [this] { asio::post(io, [this] { maybeFinish(); }); }),
        backoff_timer(io),
        deliver_deadline(io),
        signals(io),
        rng(std::random_device{}()) {
    if (options.platform.empty()) {
      options.platform = defaultPlatform();
    }
  }

  // All below run on the io thread.
  void wakeWriter() {
    if (conn) {
      conn->wake.cancel();
    }
  }
  void closeConn(const std::shared_ptr<Conn>& c, const std::string& reason);
  void beginDrain(const std::string& reason);
  void maybeFinish();
  void finish();
  void noteError(const std::string& error) {
    std::lock_guard lock(stats_mu);
    stats.last_error = error;
    ++stats.connection_failures;
  }
  v1::WorkerMessage makeRegister(Conn& c);
  v1::WorkerMessage makeHeartbeat(Conn& c);
  void dispatch(const std::shared_ptr<Conn>& c, const v1::CoordinatorMessage& m);
  void onRegistered(const std::shared_ptr<Conn>& c, const v1::Registered& r);
  void onAssign(const v1::JobAssign& a);
  void badFrame(const std::shared_ptr<Conn>& c, const std::string& why);
  void startDeliverDeadline();

  WorkerDaemonOptions options;
  const WorkerConfig& cfg;
  StepExecutor& executor;
  asio::io_context io;
  Outbox outbox;
  JobSlots slots;
  std::shared_ptr<Conn> conn;
  asio::steady_timer backoff_timer;
  asio::steady_timer deliver_deadline;
  asio::signal_set signals;
  std::mt19937_64 rng;
  bool draining = false;
  bool goodbye_queued = false;
  bool finished = false;
  bool stopped = false;
  bool deliver_deadline_armed = false;
  std::string drain_reason;
  Status fatal;

  mutable std::mutex stats_mu;
  WorkerDaemonStats stats;
};

namespace {

using Impl = WorkerDaemon::Impl;

asio::awaitable<void> writerLoop(Impl* d, std::shared_ptr<Conn> c) {
  c->writer_running = true;
  while (!c->closed) {
    std::optional<v1::WorkerMessage> frame = d->outbox.pop();
    if (!frame) {
      error_code ec;
      c->wake.expires_at(asio::steady_timer::time_point::max());
      co_await c->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    std::string bytes = frame->SerializeAsString();
    error_code ec;
    co_await c->ws.async_write(asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      d->outbox.requeueFront(std::move(*frame));
      d->closeConn(c, "write to the coordinator failed: " + ec.message());
      break;
    }
    {
      std::lock_guard lock(d->stats_mu);
      if (frame->has_job_result()) {
        ++d->stats.results_sent;
      } else if (frame->has_heartbeat()) {
        ++d->stats.heartbeats_sent;
        c->heartbeat_queued = false;
      }
    }
    if (frame->has_goodbye()) {
      // The last frame: close politely, then the daemon is done.
      co_await c->ws.async_close(websocket::close_code::going_away,
                                 asio::redirect_error(asio::use_awaitable, ec));
      d->finish();
      break;
    }
  }
  c->writer_running = false;
  c->writer_done.cancel();
}

asio::awaitable<void> heartbeatLoop(Impl* d, std::shared_ptr<Conn> c) {
  while (!c->closed) {
    error_code ec;
    c->heartbeat.expires_after(std::chrono::milliseconds(c->heartbeat_ms));
    co_await c->heartbeat.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (c->closed) {
      break;
    }
    if (!c->heartbeat_queued) {
      c->heartbeat_queued = true;
      d->outbox.push(d->makeHeartbeat(*c));
    }
  }
}

asio::awaitable<void> registerDeadline(Impl* d, std::shared_ptr<Conn> c) {
  error_code ec;
  c->register_deadline.expires_after(std::chrono::milliseconds(d->cfg.connect_timeout_ms));
  co_await c->register_deadline.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!ec && !c->registered && !c->closed) {
    d->closeConn(c, "no Registered from the coordinator within " +
                        std::to_string(d->cfg.connect_timeout_ms) + " ms");
  }
}

// Connects and handshakes; an error Status says why (fatal ones set d->fatal).
asio::awaitable<Status> connectConn(Impl* d, std::shared_ptr<Conn> c) {
  const WorkerConfig& cfg = d->cfg;
  const std::string where = cfg.coordinator_url;
  error_code ec;
  tcp::resolver resolver(d->io);
  auto endpoints =
      co_await resolver.async_resolve(cfg.coordinator_host, std::to_string(cfg.coordinator_port),
                                      asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return unavailable("resolve " + cfg.coordinator_host + ": " + ec.message());
  }
  auto& tcp_stream = beast::get_lowest_layer(c->ws);
  tcp_stream.expires_after(std::chrono::milliseconds(cfg.connect_timeout_ms));
  co_await tcp_stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return unavailable("connect " + where + ": " + ec.message());
  }
  std::string auth = "Bearer " + cfg.token;
  std::string agent = d->options.worker_version;
  c->ws.set_option(websocket::stream_base::decorator([auth, agent](websocket::request_type& req) {
    req.set(http::field::authorization, auth);
    req.set(http::field::user_agent, agent);
  }));
  websocket::response_type response;
  std::string host = cfg.coordinator_host + ":" + std::to_string(cfg.coordinator_port);
  co_await c->ws.async_handshake(response, host, cfg.coordinator_path,
                                 asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    auto code = response.result_int();
    if (code == 401 || code == 403) {
      d->fatal = permissionDenied("coordinator " + where + " refused the worker's token: HTTP " +
                                  std::to_string(code) + " " + std::string(response.reason()) +
                                  " (check token / token_file)");
      co_return d->fatal;
    }
    std::string detail = code != 0 ? " (HTTP " + std::to_string(code) + ")" : "";
    co_return unavailable("WebSocket handshake with " + where + ": " + ec.message() + detail);
  }
  tcp_stream.expires_never();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::milliseconds(cfg.connect_timeout_ms);
  // A peer silent for three heartbeat intervals is gone; Beast pings at half of it.
  timeouts.idle_timeout = std::chrono::milliseconds(3ull * cfg.heartbeat_interval_ms + 1000);
  timeouts.keep_alive_pings = true;
  c->ws.set_option(timeouts);
  c->ws.binary(true);
  c->ws.read_message_max(kMaxFrameBytes);
  co_return Status::ok();
}

// One connection from dial to close. Returns when it is over.
asio::awaitable<void> runConn(Impl* d, std::shared_ptr<Conn> c) {
  Status connected = co_await connectConn(d, c);
  if (!connected.isOk()) {
    spdlog::warn("worker connection failed coordinator={} error={}", d->cfg.coordinator_url,
                 connected.message());
    d->noteError(connected.message());
    co_return;
  }
  {
    std::lock_guard lock(d->stats_mu);
    ++d->stats.connects;
  }
  if (d->finished || d->stopped) {
    d->closeConn(c, "shutting down");
    co_return;
  }
  d->conn = c;
  std::string hello = d->makeRegister(*c).SerializeAsString();
  error_code ec;
  co_await c->ws.async_write(asio::buffer(hello), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    d->closeConn(c, "write Register: " + ec.message());
  } else {
    asio::co_spawn(d->io, registerDeadline(d, c), asio::detached);
  }
  beast::flat_buffer buffer;
  while (!c->closed) {
    buffer.clear();
    co_await c->ws.async_read(buffer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      d->closeConn(c, "read from the coordinator: " + ec.message());
      break;
    }
    v1::CoordinatorMessage message;
    if (!c->ws.got_binary()) {
      d->badFrame(c, "a text frame (the protocol is binary protobuf)");
    } else if (!message.ParseFromArray(buffer.data().data(), static_cast<int>(buffer.size()))) {
      d->badFrame(c, "a frame that is not a CoordinatorMessage (" + std::to_string(buffer.size()) +
                         " bytes)");
    } else {
      d->dispatch(c, message);
    }
  }
  if (c->writer_running) {
    c->writer_done.expires_at(asio::steady_timer::time_point::max());
    co_await c->writer_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  d->conn.reset();
  d->goodbye_queued = false;
  d->outbox.dropConnectionFrames();
}

asio::awaitable<void> mainLoop(Impl* d) {
  uint32_t backoff_ms = d->cfg.reconnect_backoff_min_ms;
  while (!d->finished && !d->stopped && d->fatal.isOk()) {
    auto c = std::make_shared<Conn>(d->io);
    co_await runConn(d, c);
    d->maybeFinish();  // a drain that waited for this connection to register
    if (d->finished || d->stopped || !d->fatal.isOk()) {
      break;
    }
    if (c->registered) {
      backoff_ms = d->cfg.reconnect_backoff_min_ms;
    }
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    auto wait = std::chrono::milliseconds(static_cast<int64_t>(backoff_ms * jitter(d->rng)));
    spdlog::info("worker reconnects coordinator={} in_ms={}", d->cfg.coordinator_url, wait.count());
    error_code ec;
    d->backoff_timer.expires_after(wait);
    co_await d->backoff_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    backoff_ms = std::min(backoff_ms * 2, d->cfg.reconnect_backoff_max_ms);
  }
  d->signals.cancel();
  d->deliver_deadline.cancel();
  d->io.stop();
}

void onSignal(Impl* d, const error_code& ec, int signal_number) {
  if (ec) {
    return;
  }
  spdlog::info("worker got signal={}", signal_number);
  d->beginDrain(signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  d->signals.async_wait([d](const error_code& e, int n) { onSignal(d, e, n); });
}

}  // namespace

void Impl::closeConn(const std::shared_ptr<Conn>& c, const std::string& reason) {
  if (c->closed) {
    return;
  }
  c->closed = true;
  if (!finished) {
    spdlog::warn("worker connection closed coordinator={} reason={}", cfg.coordinator_url, reason);
    noteError(reason);
  }
  c->wake.cancel();
  c->heartbeat.cancel();
  c->register_deadline.cancel();
  error_code ignored;  // closing a socket that is already gone is fine
  beast::get_lowest_layer(c->ws).socket().close(ignored);
}

void Impl::badFrame(const std::shared_ptr<Conn>& c, const std::string& why) {
  {
    std::lock_guard lock(stats_mu);
    ++stats.bad_frames;
  }
  closeConn(c, "malformed frame from the coordinator: " + why);
}

v1::WorkerMessage Impl::makeRegister(Conn& c) {
  v1::WorkerMessage m;
  v1::Register& r = *m.mutable_register_();
  r.mutable_protocol_version()->set_major(kProtocolMajor);
  r.mutable_protocol_version()->set_minor(kProtocolMinor);
  r.set_worker_id(cfg.worker_id);
  r.set_worker_version(options.worker_version);
  r.set_platform(options.platform);
  r.set_slots(cfg.slots);
  r.mutable_labels()->insert(cfg.labels.begin(), cfg.labels.end());
  r.set_layer_budget_bytes(cfg.layer_budget_bytes);
  for (std::string& id : executor.heldDiffIds()) {
    r.add_diff_ids(id);
    c.reported_layers.insert(std::move(id));
  }
  for (auto& id : slots.running()) {
    *r.add_running() = std::move(id);
  }
  r.set_draining(draining);
  return m;
}

v1::WorkerMessage Impl::makeHeartbeat(Conn& c) {
  v1::WorkerMessage m;
  v1::Heartbeat& h = *m.mutable_heartbeat();
  for (auto& id : slots.running()) {
    *h.add_running() = std::move(id);
  }
  h.set_free_slots(draining ? 0 : slots.freeSlots());
  std::vector<std::string> held = executor.heldDiffIds();
  std::set<std::string> now(held.begin(), held.end());
  for (const auto& id : now) {
    if (c.reported_layers.count(id) == 0) {
      h.add_diff_ids_added(id);
    }
  }
  for (const auto& id : c.reported_layers) {
    if (now.count(id) == 0) {
      h.add_diff_ids_removed(id);
    }
  }
  c.reported_layers = std::move(now);
  h.set_layer_store_bytes(executor.layerStoreBytes());
  return m;
}

void Impl::dispatch(const std::shared_ptr<Conn>& c, const v1::CoordinatorMessage& m) {
  using K = v1::CoordinatorMessage;
  if (!c->registered && m.kind_case() != K::kRegistered && m.kind_case() != K::kError) {
    badFrame(c, "a frame before Registered");
    return;
  }
  switch (m.kind_case()) {
    case K::kRegistered:
      onRegistered(c, m.registered());
      return;
    case K::kJobAssign:
      onAssign(m.job_assign());
      return;
    case K::kCancel:
      if (!slots.cancel(m.cancel().job_id(), m.cancel().attempt())) {
        spdlog::info("cancel of a job not running here job={} attempt={}", m.cancel().job_id(),
                     m.cancel().attempt());
      }
      return;
    case K::kDrain:
      beginDrain("coordinator asked: " + m.drain().reason());
      return;
    case K::kError: {
      const v1::Error& e = m.error();
      std::string text = "coordinator error " + v1::Error::Code_Name(e.code()) + ": " + e.message();
      if (e.code() == v1::Error::CODE_UNSUPPORTED_VERSION) {
        fatal = failedPrecondition(text);
      } else if (e.code() == v1::Error::CODE_UNAUTHENTICATED) {
        fatal = permissionDenied(text);
      }
      if (!fatal.isOk() || e.code() == v1::Error::CODE_MALFORMED_FRAME) {
        closeConn(c, text);
      } else {
        spdlog::warn("worker got error={}", text);
      }
      return;
    }
    case K::KIND_NOT_SET:
      badFrame(c, "a CoordinatorMessage of an unknown kind");
      return;
  }
}

void Impl::onRegistered(const std::shared_ptr<Conn>& c, const v1::Registered& r) {
  if (c->registered) {
    badFrame(c, "a second Registered");
    return;
  }
  if (!r.accepted()) {
    closeConn(c, "coordinator did not accept the worker: " + r.reason());
    return;
  }
  c->registered = true;
  c->register_deadline.cancel();
  c->heartbeat_ms =
      r.heartbeat_interval_ms() != 0 ? r.heartbeat_interval_ms() : cfg.heartbeat_interval_ms;
  {
    std::lock_guard lock(stats_mu);
    ++stats.registrations;
  }
  spdlog::info("worker registered coordinator={} worker={} server={}", cfg.coordinator_url,
               cfg.worker_id, r.server_version());
  asio::co_spawn(io, writerLoop(this, c), asio::detached);
  asio::co_spawn(io, heartbeatLoop(this, c), asio::detached);
  if (draining) {
    v1::WorkerMessage notice;
    notice.mutable_drain_notice()->set_reason(drain_reason);
    outbox.push(std::move(notice));
  }
  maybeFinish();
}

void Impl::onAssign(const v1::JobAssign& a) {
  Status started = draining ? failedPrecondition("the worker is draining (" + drain_reason + ")")
                            : slots.start(a);
  std::lock_guard lock(stats_mu);
  if (started.isOk()) {
    ++stats.jobs_started;
    return;
  }
  ++stats.jobs_rejected;
  v1::WorkerMessage m;
  v1::JobRejected& r = *m.mutable_job_rejected();
  r.set_job_id(a.job_id());
  r.set_attempt(a.attempt());
  r.set_reason(started.message());
  outbox.push(std::move(m));
}

void Impl::beginDrain(const std::string& reason) {
  if (draining) {
    spdlog::warn("worker cancels running steps reason={}", reason);
    slots.cancelAll();
    return;
  }
  spdlog::info("worker drains reason={} running={}", reason, slots.runningCount());
  draining = true;
  drain_reason = reason;
  if (conn && conn->registered) {
    v1::WorkerMessage notice;
    v1::DrainNotice& n = *notice.mutable_drain_notice();
    n.set_reason(reason);
    for (auto& id : slots.running()) {
      *n.add_running() = std::move(id);
    }
    outbox.push(std::move(notice));
  }
  maybeFinish();
}

void Impl::maybeFinish() {
  if (!draining || finished || slots.runningCount() != 0) {
    return;
  }
  startDeliverDeadline();
  if (conn && !conn->closed && !conn->registered) {
    return;  // registering: onRegistered() or the end of the connection comes back here
  }
  bool connected = conn && conn->registered && !conn->closed;
  if (!connected) {
    if (outbox.pendingResults() == 0) {
      finish();  // nothing to tell anybody
    }
    return;  // results wait for the next connection (or the deadline)
  }
  if (!goodbye_queued) {
    goodbye_queued = true;
    v1::WorkerMessage bye;
    bye.mutable_goodbye()->set_reason(drain_reason);
    outbox.push(std::move(bye));  // after every queued result: the writer sends in order
  }
}

static void deliverDeadlineFired(Impl* d, const error_code& ec) {
  if (ec || d->finished) {
    return;
  }
  spdlog::error("worker exits with undelivered results count={}", d->outbox.pendingResults());
  d->finish();
}

void Impl::startDeliverDeadline() {
  if (deliver_deadline_armed) {
    return;
  }
  deliver_deadline_armed = true;
  deliver_deadline.expires_after(std::chrono::milliseconds(cfg.drain_deliver_timeout_ms));
  deliver_deadline.async_wait([this](const error_code& ec) { deliverDeadlineFired(this, ec); });
}

void Impl::finish() {
  if (finished) {
    return;
  }
  finished = true;
  backoff_timer.cancel();
  if (conn) {
    closeConn(conn, "drained");
  }
}

v1::StepResult StepRunnerExecutor::run(const v1::StepSpec& spec, const LogCallback& log,
                                       sandbox::Canceller* cancel) {
  return runner_.run(spec, log, cancel);
}

std::vector<std::string> StepRunnerExecutor::heldDiffIds() const {
  std::vector<std::string> ids;
  for (const Digest& d : layers_.diffIds()) {
    ids.push_back(d.toString());
  }
  return ids;
}

uint64_t StepRunnerExecutor::layerStoreBytes() const { return layers_.stats().bytes; }

WorkerDaemon::WorkerDaemon(WorkerDaemonOptions options, StepExecutor& executor)
    : impl_(std::make_unique<Impl>(std::move(options), executor)) {}

WorkerDaemon::~WorkerDaemon() {
  impl_->outbox.close();
  impl_->slots.shutdown();
}

Status WorkerDaemon::run() {
  Impl* d = impl_.get();
  if (d->options.handle_signals) {
    d->signals.add(SIGTERM);
    d->signals.add(SIGINT);
    d->signals.async_wait([d](const error_code& e, int n) { onSignal(d, e, n); });
  }
  asio::co_spawn(d->io, mainLoop(d), asio::detached);
  d->io.run();
  // Only a stop or a fatal error leaves steps running here; a drain waited for them.
  d->outbox.close();
  d->slots.shutdown();
  return d->fatal;
}

void WorkerDaemon::requestDrain(const std::string& reason) {
  Impl* d = impl_.get();
  asio::post(d->io, [d, reason] { d->beginDrain(reason); });
}

void WorkerDaemon::requestStop() {
  Impl* d = impl_.get();
  asio::post(d->io, [d] {
    d->stopped = true;
    d->slots.cancelAll();
    d->outbox.close();
    d->finish();
  });
}

WorkerDaemonStats WorkerDaemon::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  WorkerDaemonStats s = impl_->stats;
  s.log_lines_dropped = impl_->outbox.droppedLines();
  return s;
}

}  // namespace lf::worker
