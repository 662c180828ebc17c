#pragma once

// Pieces shared by the commands that talk to the coordinator (cli/build_command.cpp,
// cli/farm_commands.cpp): making the API client from the flags and environment, following a
// build's event stream, and stopping a build on Ctrl-C.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "cli/api_client.h"
#include "cli/progress_renderer.h"
#include "common/base/status.h"

namespace lf::cli {

// The client for --server (else LAYERFARM_SERVER, else the local default), with the token from
// LAYERFARM_TOKEN when set. stream_idle_timeout_ms 0 keeps the default.
Result<std::unique_ptr<ApiClient>> makeApiClient(const std::string& server_flag,
                                                 int stream_idle_timeout_ms = 30 * 60 * 1000);

// Feeds GET /v1/builds/{id}/events to `renderer` until the build's final event. A dropped
// connection is resumed with ?from= (up to `max_resumes` times). With a client whose
// stream_idle_timeout_ms is short, a quiet stream ends the call without error when
// `stop_when_idle` is set (`layerfarm logs` without --follow).
Status followBuildEvents(const ApiClient& client, const std::string& build_id,
                         ProgressRenderer& renderer, int max_resumes = 5,
                         bool stop_when_idle = false);

// While alive, SIGINT runs `on_interrupt` once (on a watcher thread) instead of killing the
// process; a second SIGINT exits at once with status 130. The previous handler is restored on
// destruction. One instance at a time per process.
class InterruptWatcher {
 public:
  explicit InterruptWatcher(std::function<void()> on_interrupt);
  ~InterruptWatcher();
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  bool interrupted() const { return interrupted_.load(); }

 private:
  void run();

  std::function<void()> on_interrupt_;
  std::atomic<bool> interrupted_{false};
  int signal_pipe_[2] = {-1, -1};
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  bool installed_ = false;
};

// Prints "layerfarm: <message>" for a failed command and returns its exit status (1).
int reportError(std::ostream& err, const Status& status);

}  // namespace lf::cli
