#pragma once

// The `layerfarm-worker` command line: subcommands that run without a coordinator, and the
// daemon mode:
//
//   exec --spec STEP.json --blobs DIR [--state DIR] ...
//       Runs one step from the JSON form of a StepSpec against a directory blob store, streams
//       the step's output to stderr as it happens and prints the StepResult as JSON on stdout.
//       Exit status 0 when the step succeeded, 1 when it did not, 2 for usage errors.
//   --config worker.yaml   (or: run --config worker.yaml)
//       The worker daemon (worker/daemon/worker_daemon.h): connects to the coordinator and runs
//       the steps it assigns until SIGTERM/SIGINT drains it. Exit status 0 when drained, 1 for a
//       fatal error (refused token or protocol version, unusable state), 2 for a bad config.
//   recover [--state DIR]
//       What a worker does at start-up: unmounts and removes what crashed steps left under the
//       state dir and kills and removes their cgroups. Only while no step runs on that state dir.
//
// Tests run the real binary; main.cpp only forwards argv here.

#include <iosfwd>

namespace lf::worker {

int runWorkerCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace lf::worker
