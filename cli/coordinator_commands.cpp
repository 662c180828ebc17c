#include "cli/coordinator_commands.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ostream>
#include <thread>

#include "cli/cli_util.h"

namespace lf::cli {

namespace {

// The write end of the active watcher's pipe; the handler may only do async-signal-safe work.
std::atomic<int> g_signal_fd{-1};
struct sigaction g_previous_action {};

void onSigint(int) {
  int fd = g_signal_fd.load();
  if (fd >= 0) {
    char byte = 1;
    ssize_t ignored = ::write(fd, &byte, 1);  // a full pipe already holds a pending interrupt
    (void)ignored;
  }
}

}  // namespace

Result<std::unique_ptr<ApiClient>> makeApiClient(const std::string& server_flag,
                                                 int stream_idle_timeout_ms) {
  ApiClientOptions options;
  options.server = resolveServer(server_flag);
  const char* token = std::getenv("LAYERFARM_TOKEN");
  if (token != nullptr) {
    options.token = token;
  }
  if (stream_idle_timeout_ms > 0) {
    options.stream_idle_timeout_ms = stream_idle_timeout_ms;
  }
  return ApiClient::create(std::move(options));
}

Status followBuildEvents(const ApiClient& client, const std::string& build_id,
                         ProgressRenderer& renderer, int max_resumes, bool stop_when_idle) {
  int resumes = 0;
  while (true) {
    Status bad_line;
    LineSplitter lines([&](std::string_view line) -> Status {
      if (line.empty()) {
        return Status::ok();
      }
      auto event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (event.is_discarded()) {
        return dataLoss("build " + build_id + ": the event stream has a line that is not JSON: " +
                        std::string(line.substr(0, 120)));
      }
      renderer.onEvent(event);
      return Status::ok();
    });
    std::string target = "/v1/builds/" + build_id + "/events";
    if (renderer.lastSeq() >= 0) {
      target += "?from=" + std::to_string(renderer.lastSeq() + 1);
    }
    Status s = client.getStream(target, [&](std::string_view chunk) { return lines.feed(chunk); });
    if (s.isOk()) {
      s = lines.finish();
    }
    if (renderer.finished()) {
      return Status::ok();
    }
    if (stop_when_idle && s.code() == StatusCode::kDeadlineExceeded) {
      return Status::ok();
    }
    bool transient = s.isOk() || s.code() == StatusCode::kUnavailable ||
                     s.code() == StatusCode::kDeadlineExceeded;
    if (!transient || ++resumes > max_resumes) {
      return s.isOk() ? unavailable("build " + build_id +
                                    ": the event stream ended before the build finished")
                      : s;
    }
    // A restarting coordinator needs a moment; the stream resumes where it stopped.
    std::this_thread::sleep_for(std::chrono::milliseconds(500 * resumes));
  }
}

InterruptWatcher::InterruptWatcher(std::function<void()> on_interrupt)
    : on_interrupt_(std::move(on_interrupt)) {
  if (::pipe2(signal_pipe_, O_CLOEXEC | O_NONBLOCK) != 0 || ::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    return;  // without pipes Ctrl-C keeps its default meaning: the process ends
  }
  g_signal_fd.store(signal_pipe_[1]);
  struct sigaction action {};
  action.sa_handler = onSigint;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  installed_ = ::sigaction(SIGINT, &action, &g_previous_action) == 0;
  thread_ = std::thread([this] { run(); });
}

InterruptWatcher::~InterruptWatcher() {
  if (installed_) {
    ::sigaction(SIGINT, &g_previous_action, nullptr);
  }
  g_signal_fd.store(-1);
  if (thread_.joinable()) {
    char byte = 0;
    ssize_t ignored = ::write(stop_pipe_[1], &byte, 1);
    (void)ignored;
    thread_.join();
  }
  for (int fd : {signal_pipe_[0], signal_pipe_[1], stop_pipe_[0], stop_pipe_[1]}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

void InterruptWatcher::run() {
  while (true) {
    pollfd fds[2] = {{signal_pipe_[0], POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    if (fds[1].revents != 0) {
      return;
    }
    char bytes[16];
    ssize_t n = ::read(signal_pipe_[0], bytes, sizeof(bytes));
    if (n <= 0) {
      continue;
    }
    if (interrupted_.exchange(true) || n > 1) {
      std::_Exit(130);  // a second Ctrl-C: the user does not want to wait for the cancel
    }
    on_interrupt_();
  }
}

int reportError(std::ostream& err, const Status& status) {
  err << "layerfarm: " << status.message() << "\n";
  return 1;
}

}  // namespace lf::cli
