#pragma once

// The two forked processes of a sandbox run (monitor and init) and the little protocol they use
// to talk to the caller's process. Internal to worker/sandbox.
//
// Messages are records [type][status code][length: 2 bytes][payload] written with one write()
// each (at most PIPE_BUF bytes, so atomic on a pipe):
//   'P' init's host pid (decimal)                        monitor -> parent, on the msg pipe
//   'S' init's end: "<si_code> <si_status>" of waitid     monitor -> parent, on the msg pipe
//   'E' a setup failure: the Status code and message      monitor or init -> parent
// The init writes on its own "exec pipe", which closes (CLOEXEC) the moment the command is
// exec'd: its EOF marks the end of setup.

#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "worker/sandbox/rootfs.h"

namespace lf::worker::sandbox {

// Descriptors of the caller's process the monitor inherits (renumbered first thing).
struct ChildFds {
  int msg_w = -1;   // monitor -> parent messages
  int exec_w = -1;  // init -> parent messages; EOF at exec
  int sync = -1;    // socket: parent sends 'g' to start the init, closes it to let monitor exit
  int null = -1;    // /dev/null for the command's stdin
  int out_w = -1;   // the command's stdout
  int err_w = -1;   // the command's stderr
};

// Everything the children need, prepared before fork().
struct LaunchSpec {
  RootPlan plan;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // PATH already defaulted
  std::string user;
  std::string working_dir;
  const std::vector<sock_filter>* seccomp = nullptr;
  uint64_t cap_mask = 0;
  pid_t parent_pid = 0;
};

[[noreturn]] void monitorMain(const LaunchSpec& spec, ChildFds fds);

// Message records.
constexpr char kMsgInitPid = 'P';
constexpr char kMsgInitStatus = 'S';
constexpr char kMsgError = 'E';

void sendMessage(int fd, char type, StatusCode code, std::string_view payload);

struct Message {
  char type = 0;
  StatusCode code = StatusCode::kOk;
  std::string payload;
};

// Accumulates bytes read from a message pipe and yields complete records.
class MessageReader {
 public:
  void feed(const char* data, size_t size) { buffer_.append(data, size); }
  bool next(Message* out);

 private:
  std::string buffer_;
};

// Resets every signal disposition to the default and unblocks all signals: a worker thread's
// mask and ignored signals (SIGPIPE, SIGCHLD) must not leak into the sandbox.
void resetSignals();

// Renumbers `fds` (in place) to 3, 4, ... and closes every other descriptor above 2.
void keepOnlyFds(std::vector<int*> fds);

}  // namespace lf::worker::sandbox
