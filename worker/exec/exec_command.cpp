#include "worker/exec/exec_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/blob/directory_blob_store.h"
#include "worker/daemon/worker_daemon.h"
#include "worker/exec/step_runner.h"
#include "worker/exec/step_spec.h"
#include "worker/recovery/recovery.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;

struct ExecOptions {
  std::string spec_path;
  std::string blobs_path;
  std::string state_path = "/var/lib/layerfarm/worker";
  uint64_t layer_budget_bytes = 20ull << 30;
  bool allow_host_network = false;
  bool no_cgroups = false;
  bool timestamps = false;
  std::string cgroup_parent;
};

Result<std::string> readSpec(const std::string& path) {
  std::stringstream buffer;
  if (path == "-") {
    buffer << std::cin.rdbuf();
    return buffer.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return notFound("--spec " + path + ": cannot open");
  }
  buffer << in.rdbuf();
  if (buffer.str().size() > (64u << 20)) {
    return invalidArgument("--spec " + path + ": larger than 64 MiB");
  }
  return buffer.str();
}

int runExec(const ExecOptions& o, std::ostream& out, std::ostream& err) {
  auto fail = [&](const Status& status) {
    err << "layerfarm-worker exec: " << status.message() << "\n";
    return 1;
  };
  auto text = readSpec(o.spec_path);
  if (!text.isOk()) {
    return fail(text.status());
  }
  auto spec = parseStepSpecJson(*text, o.spec_path);
  if (!spec.isOk()) {
    return fail(spec.status());
  }
  blob::DirectoryBlobStoreOptions blob_options;
  blob_options.create = false;
  auto blobs = blob::DirectoryBlobStore::open(o.blobs_path, blob_options);
  if (!blobs.isOk()) {
    return fail(blobs.status().withContext("--blobs " + o.blobs_path));
  }
  fs::path state = fs::absolute(o.state_path);
  LayerStoreOptions store_options;
  store_options.root = state / "layers";
  store_options.budget_bytes = o.layer_budget_bytes;
  auto layers = LayerStore::open(store_options, **blobs);
  if (!layers.isOk()) {
    return fail(layers.status().withContext("--state " + o.state_path));
  }
  StepRunnerOptions runner_options;
  runner_options.state_root = state;
  runner_options.allow_host_network = o.allow_host_network;
  runner_options.use_cgroups = !o.no_cgroups;
  // One parent per exec process: several may share a state dir, and `recover` (which empties
  // the whole "layerfarm" parent) is for when none runs.
  runner_options.cgroups.parent = o.cgroup_parent.empty()
                                      ? "layerfarm/exec-" + std::to_string(::getpid())
                                      : o.cgroup_parent;
  // cgroup v2 lets a cgroup hand controllers to children only while it holds no processes
  // itself, and a command run from a shell sits in a cgroup that does (its session's). The
  // daemon moves itself into a leaf at start-up (prepareWorkerCgroups); a one-shot command must
  // not move its caller's processes, so on v2 its steps go below the hierarchy's root instead.
  if (runner_options.use_cgroups) {
    auto version = cgroup::Cgroup::detect(runner_options.cgroups);
    if (version.isOk() && *version == cgroup::CgroupVersion::kV2) {
      runner_options.cgroups.nest_under_self = false;
    }
  }
  StepRunner runner(runner_options, **blobs, **layers);
  auto log = [&](const v1::StepLog& entry) {
    if (o.timestamps) {
      err << entry.timestamp_unix_ns() << " ";
    }
    err << entry.line() << "\n";
    err.flush();
  };
  v1::StepResult result = runner.run(*spec, log);
  if (runner_options.use_cgroups) {
    // The step's own cgroup is gone; this removes the per-process parent above it.
    auto removed = cgroup::removeStaleCgroups(runner_options.cgroups);
    if (!removed.isOk()) {
      err << "layerfarm-worker exec: warning: " << removed.status().message() << "\n";
    }
  }
  out << stepResultToJson(result);
  out.flush();
  if (result.outcome() != v1::STEP_OUTCOME_SUCCEEDED) {
    err << "layerfarm-worker exec: step " << spec->step_id() << ": "
        << v1::StepOutcome_Name(result.outcome()) << ": " << result.error() << "\n";
    return 1;
  }
  return 0;
}

int runRecover(const std::string& state_path, const std::string& cgroup_parent,
               std::ostream& out, std::ostream& err) {
  cgroup::CgroupConfig cgroups;
  cgroups.parent = cgroup_parent;
  auto summary = recoverAfterCrash(fs::absolute(state_path), cgroups);
  if (!summary.isOk()) {
    err << "layerfarm-worker recover: " << summary.status().message() << "\n";
    return 1;
  }
  out << "unmounted " << summary->mounts_unmounted << " mounts, removed "
      << summary->step_dirs_removed << " step dirs and " << summary->cgroups_removed
      << " cgroups, killed " << summary->processes_killed << " processes\n";
  return 0;
}

}  // namespace

int runWorkerCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"layerfarm-worker: runs build steps in sandboxes"};
  app.name("layerfarm-worker");
  // No subcommand with --config: the daemon (`layerfarm-worker --config worker.yaml`).
  app.require_subcommand(0, 1);
  app.set_version_flag("--version", "layerfarm-worker 0.1.0");
  int exit_code = 0;

  std::string daemon_config;
  app.add_option("--config", daemon_config,
                 "Run the worker daemon with this YAML config (see worker/daemon/worker_config.h)");
  std::string run_config;
  CLI::App* run_cmd = app.add_subcommand("run", "Run the worker daemon (same as --config)");
  run_cmd->add_option("--config", run_config, "Worker YAML config")->required();
  run_cmd->callback([&] { exit_code = runWorkerDaemonCommand(run_config, err); });

  ExecOptions exec;
  CLI::App* exec_cmd = app.add_subcommand("exec", "Run one step from a JSON StepSpec");
  exec_cmd->add_option("--spec", exec.spec_path, "StepSpec as JSON (\"-\" = stdin)")->required();
  exec_cmd->add_option("--blobs", exec.blobs_path, "Directory blob store (an OCI layout works)")
      ->required();
  exec_cmd->add_option("--state", exec.state_path, "Worker state dir (layer store, scratch)")
      ->capture_default_str();
  exec_cmd->add_option("--layer-budget", exec.layer_budget_bytes,
                       "Bytes of unpacked layers kept before LRU eviction")
      ->capture_default_str();
  exec_cmd->add_flag("--allow-host-network", exec.allow_host_network,
                     "Allow RUN --network=host");
  exec_cmd->add_flag("--no-cgroups", exec.no_cgroups,
                     "Run without per-step cgroups (steps with limits are refused)");
  exec_cmd->add_option("--cgroup-parent", exec.cgroup_parent,
                       "cgroup path for step cgroups (default layerfarm/exec-<pid>)");
  exec_cmd->add_flag("--timestamps", exec.timestamps, "Prefix output lines with Unix ns times");
  exec_cmd->callback([&] { exit_code = runExec(exec, out, err); });

  std::string recover_state = "/var/lib/layerfarm/worker";
  CLI::App* recover_cmd =
      app.add_subcommand("recover", "Clean up mounts, dirs and cgroups of crashed steps");
  recover_cmd->add_option("--state", recover_state, "Worker state dir")->capture_default_str();
  std::string recover_cgroup_parent = "layerfarm";
  recover_cmd
      ->add_option("--cgroup-parent", recover_cgroup_parent,
                   "Every cgroup below this one is killed and removed")
      ->capture_default_str();
  recover_cmd->callback(
      [&] { exit_code = runRecover(recover_state, recover_cgroup_parent, out, err); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e, out, err);
    return code == 0 ? 0 : 2;
  }
  if (app.get_subcommands().empty()) {
    if (daemon_config.empty()) {
      err << "layerfarm-worker: give a subcommand (exec, recover, run) or --config FILE\n"
          << app.help();
      return 2;
    }
    return runWorkerDaemonCommand(daemon_config, err);
  }
  return exit_code;
}

}  // namespace lf::worker
