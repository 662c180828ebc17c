#include "worker/exec/step_runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <random>

#include "common/layer/layer_writer.h"
#include "common/layer/secure_fs.h"
#include "common/layer/unique_fd.h"
#include "worker/copy/copy_executor.h"
#include "worker/exec/bind_mount.h"
#include "worker/exec/step_spec.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;
using Clock = std::chrono::steady_clock;

int64_t msSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

std::string randomSuffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  uint64_t value = rng();
  for (int i = 0; i < 12; ++i) {
    out.push_back(kHex[value & 15]);
    value >>= 4;
  }
  return out;
}

// Step ids come from the coordinator; only a safe subset names directories and hostnames.
std::string sanitizeId(const std::string& id, size_t max_len) {
  std::string out;
  for (char c : id) {
    if (out.size() >= max_len) {
      break;
    }
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    out.push_back(ok ? c : '-');
  }
  return out;
}

// The scratch directory of one step: removed (never following symlinks) when it goes away.
class StepDir {
 public:
  static Result<StepDir> create(const fs::path& steps_root, const std::string& step_id) {
    std::error_code ec;
    fs::create_directories(steps_root, ec);
    if (ec) {
      return errnoStatus(ec.value(), "create " + steps_root.string());
    }
    std::string id = sanitizeId(step_id, 40);
    std::string name = (id.empty() ? "step" : id) + "-" + randomSuffix();
    fs::path path = steps_root / name;
    if (::mkdir(path.c_str(), 0700) != 0) {
      return errnoStatus(errno, "create " + path.string());
    }
    StepDir dir(steps_root, name);
    for (const char* sub : {"upper", "work", "mnt"}) {
      if (::mkdir((path / sub).c_str(), 0755) != 0) {
        return errnoStatus(errno, "create " + (path / sub).string());
      }
    }
    return dir;
  }
  StepDir(StepDir&& other) noexcept
      : parent_(std::move(other.parent_)), name_(std::exchange(other.name_, std::string())) {}
  StepDir& operator=(StepDir&&) = delete;
  ~StepDir() {
    if (name_.empty()) {
      return;
    }
    layer::UniqueFd parent(::open(parent_.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (parent) {
      // Best effort: a leftover is removed by recoverAfterCrash at the next start.
      layer::removeAllAt(parent.get(), name_).ignore();
    }
  }
  fs::path path() const { return parent_ / name_; }
  fs::path upper() const { return path() / "upper"; }
  fs::path work() const { return path() / "work"; }
  fs::path mnt() const { return path() / "mnt"; }

 private:
  StepDir(fs::path parent, std::string name) : parent_(std::move(parent)), name_(std::move(name)) {}
  fs::path parent_;
  std::string name_;
};

v1::StepResult errorResult(const v1::StepSpec& spec, v1::StepOutcome outcome,
                           const Status& status) {
  v1::StepResult result;
  result.set_step_id(spec.step_id());
  result.set_outcome(outcome);
  result.set_error(status.message());
  return result;
}

std::string describeCommand(const v1::StepSpec& spec) {
  std::string out = spec.kind() == v1::STEP_KIND_RUN ? "RUN" : "";
  for (const auto& part : spec.run().command()) {
    out += " " + part;
  }
  if (out.size() > 200) {
    out = out.substr(0, 197) + "...";
  }
  return out;
}

std::string lastLines(const std::vector<std::string>& lines) {
  if (lines.empty()) {
    return "";
  }
  std::string out = "; last output:";
  for (const auto& line : lines) {
    out += "\n  " + line;
  }
  return out;
}

layer::Compression toCompression(v1::Compression c) {
  switch (c) {
    case v1::COMPRESSION_ZSTD:
      return layer::Compression::kZstd;
    case v1::COMPRESSION_NONE:
      return layer::Compression::kNone;
    default:
      return layer::Compression::kGzip;
  }
}

}  // namespace

StepRunner::StepRunner(StepRunnerOptions options, blob::BlobStore& blobs, LayerStore& layers)
    : options_(std::move(options)), blobs_(blobs), layers_(layers) {}

namespace {

// Everything one run() call needs, so the phases can be separate functions.
struct StepState {
  const v1::StepSpec& spec;
  const StepRunnerOptions& options;
  blob::BlobStore& blobs;
  LayerStore& layers;
  const StepRunner::LogCallback& log;
  sandbox::Canceller* cancel;
  v1::StepResult result;
};

// The step's RUN mounts for the sandbox. Cache locks and the leases of bind mounts' layers are
// kept in `held` until the sandbox has exited. A bind mount the step itself got wrong (a missing
// source) sets the step's outcome to FAILED and stops.
struct HeldByMounts {
  std::vector<layer::UniqueFd> locks;
  std::vector<LayerStore::Lease> leases;
};

Result<std::vector<sandbox::MountSpec>> prepareMounts(StepState& s, const StepDir& dir,
                                                      HeldByMounts& held) {
  std::vector<sandbox::MountSpec> mounts;
  for (int i = 0; i < s.spec.run().mounts_size(); ++i) {
    const v1::RunMount& m = s.spec.run().mounts(i);
    if (m.type() == v1::RunMount::TYPE_BIND) {
      LF_ASSIGN_OR_RETURN(BindMount bind,
                          prepareBindMount(m, s.layers, dir.path() / ("bind" + std::to_string(i))));
      if (!bind.step_error.empty()) {
        s.result.set_outcome(v1::STEP_OUTCOME_FAILED);
        s.result.set_error(bind.step_error);
        return mounts;
      }
      held.leases.push_back(std::move(bind.lease));
      mounts.push_back(std::move(bind.mount));
      continue;
    }
    sandbox::MountSpec out;
    out.target = m.target();
    out.readonly = m.readonly();
    if (m.type() == v1::RunMount::TYPE_TMPFS) {
      out.type = sandbox::MountSpec::kTmpfs;
      out.size_bytes = m.size_bytes();
    } else {
      // A cache dir per id, kept across steps. "locked" serializes the steps that share it.
      std::string id = m.id().empty() ? m.target() : m.id();
      fs::path cache = s.options.state_root / "cache" / Digest::sha256Of(id).hex().substr(0, 32);
      std::error_code ec;
      fs::create_directories(cache.parent_path(), ec);
      if (::mkdir(cache.c_str(), m.mode() == 0 ? 0755 : m.mode()) == 0) {
        if (::chown(cache.c_str(), m.uid(), m.gid()) != 0) {
          return errnoStatus(errno, "chown cache mount " + cache.string());
        }
      } else if (errno != EEXIST) {
        return errnoStatus(errno, "create cache mount " + cache.string());
      }
      if (m.sharing() == "locked") {
        fs::path lock_path = cache.string() + ".lock";
        layer::UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!lock || ::flock(lock.get(), LOCK_EX) != 0) {
          return errnoStatus(errno, "lock cache mount " + lock_path.string());
        }
        held.locks.push_back(std::move(lock));
      } else if (!m.sharing().empty() && m.sharing() != "shared" && m.sharing() != "private") {
        return invalidArgument("--mount sharing=" + m.sharing() +
                               ": expected shared, private or locked");
      }
      out.type = sandbox::MountSpec::kBind;
      out.source = cache;
    }
    mounts.push_back(std::move(out));
  }
  return mounts;
}

sandbox::ProcessSpec processSpec(const StepState& s) {
  const auto& config = s.spec.config();
  const auto& run = s.spec.run();
  sandbox::ProcessSpec proc;
  if (run.shell_form()) {
    if (config.shell_size() > 0) {
      proc.argv.assign(config.shell().begin(), config.shell().end());
    } else {
      proc.argv = {"/bin/sh", "-c"};
    }
    proc.argv.push_back(run.command(0));
  } else {
    proc.argv.assign(run.command().begin(), run.command().end());
  }
  proc.env.assign(config.env().begin(), config.env().end());
  proc.user = config.user();
  proc.working_dir = config.working_dir().empty() ? "/" : config.working_dir();
  proc.hostname = config.hostname();
  if (proc.hostname.empty()) {
    proc.hostname = sanitizeId(s.spec.step_id(), 12);
  }
  if (proc.hostname.empty()) {
    proc.hostname = "layerfarm";
  }
  switch (run.network()) {
    case v1::NETWORK_MODE_NONE:
      proc.network = sandbox::NetworkMode::kNone;
      break;
    case v1::NETWORK_MODE_HOST:
      proc.network = sandbox::NetworkMode::kHost;
      break;
    default:
      proc.network = sandbox::NetworkMode::kLoopback;
  }
  proc.extra_hosts.assign(run.extra_hosts().begin(), run.extra_hosts().end());
  int64_t timeout = s.spec.limits().timeout_ms();
  proc.timeout_ms = timeout > 0 ? timeout : s.options.default_timeout_ms;
  return proc;
}

cgroup::CgroupLimits cgroupLimits(const StepState& s) {
  const auto& limits = s.spec.limits();
  cgroup::CgroupLimits out;
  out.memory_bytes =
      limits.memory_bytes() > 0 ? limits.memory_bytes() : s.options.default_memory_bytes;
  out.pids_max = limits.pids_max() > 0 ? limits.pids_max() : s.options.default_pids_max;
  out.cpu_millis = limits.cpu_millis();
  return out;
}

// Runs the command; on success the upper dir holds its changes. Fills the outcome otherwise.
Status runCommand(StepState& s, const StepDir& dir, const std::vector<fs::path>& lowers) {
  if (s.spec.run().network() == v1::NETWORK_MODE_HOST && !s.options.allow_host_network) {
    return permissionDenied(
        "RUN --network=host is not allowed by this worker's configuration "
        "(allow_host_network)");
  }
  HeldByMounts held;
  sandbox::ProcessSpec proc = processSpec(s);
  LF_ASSIGN_OR_RETURN(proc.mounts, prepareMounts(s, dir, held));
  if (s.result.outcome() != v1::STEP_OUTCOME_UNSPECIFIED) {
    return Status::ok();  // the step's own fault, already described
  }

  cgroup::CgroupLimits limits = cgroupLimits(s);
  std::unique_ptr<cgroup::Cgroup> group;
  if (s.options.use_cgroups) {
    std::string name = dir.path().filename().string();
    LF_ASSIGN_OR_RETURN(group, cgroup::Cgroup::create(s.options.cgroups, name, limits));
  } else if (limits.memory_bytes > 0 || limits.pids_max > 0 || limits.cpu_millis > 0) {
    return failedPrecondition("the step has limits but this worker runs without cgroups");
  }
  sandbox::Hooks hooks;
  if (group) {
    hooks.before_start = [&group](pid_t pid) { return group->addProcess(pid); };
  }
  sandbox::OverlayRoot root{lowers, dir.upper(), dir.work()};
  const std::string& step_id = s.spec.step_id();
  auto on_line = [&](sandbox::OutputStream stream, int64_t ts, std::string_view line) {
    if (!s.log) {
      return;
    }
    v1::StepLog entry;
    entry.set_step_id(step_id);
    entry.set_stream(stream == sandbox::OutputStream::kStdout ? v1::StepLog::STREAM_STDOUT
                                                              : v1::StepLog::STREAM_STDERR);
    entry.set_timestamp_unix_ns(ts);
    entry.set_line(std::string(line));
    s.log(entry);
  };
  LF_ASSIGN_OR_RETURN(sandbox::RunResult run,
                      sandbox::runInSandbox(root, proc, on_line, hooks, s.cancel));
  s.result.mutable_timings()->set_setup_ms(run.setup_ms);
  s.result.mutable_timings()->set_run_ms(run.run_ms);
  s.result.set_exit_code(run.exited ? run.exit_code : -1);
  s.result.set_signal(run.signal);

  cgroup::CgroupEvents events;
  if (group) {
    // The sandbox waited for its whole PID namespace; this is for processes that escaped it
    // into the cgroup some other way (there should be none).
    LF_RETURN_IF_ERROR(group->killAll(std::chrono::seconds(5)));
    LF_ASSIGN_OR_RETURN(events, group->events());
    LF_RETURN_IF_ERROR(group->destroy());
  }
  std::string what = describeCommand(s.spec);
  std::string tail = lastLines(run.last_lines);
  if (events.oom_killed) {
    s.result.set_outcome(v1::STEP_OUTCOME_LIMIT_EXCEEDED);
    s.result.set_error(what + ": killed: memory limit of " + std::to_string(limits.memory_bytes) +
                       " bytes exceeded (out of memory)" + tail);
  } else if (events.pids_limit_hit && !(run.exited && run.exit_code == 0)) {
    s.result.set_outcome(v1::STEP_OUTCOME_LIMIT_EXCEEDED);
    s.result.set_error(what + ": process limit of " + std::to_string(limits.pids_max) +
                       " reached (fork failed)" + (run.timed_out ? "; killed at the timeout" : "") +
                       tail);
  } else if (run.cancelled) {
    s.result.set_outcome(v1::STEP_OUTCOME_CANCELLED);
    s.result.set_error(what + ": cancelled");
  } else if (run.timed_out) {
    s.result.set_outcome(v1::STEP_OUTCOME_TIMED_OUT);
    s.result.set_error(what + ": timed out after " + std::to_string(proc.timeout_ms) +
                       " ms; every process of the step was killed" + tail);
  } else if (!run.exited) {
    s.result.set_outcome(v1::STEP_OUTCOME_FAILED);
    s.result.set_error(what + ": killed by signal " + std::to_string(run.signal) + tail);
  } else if (run.exit_code != 0) {
    s.result.set_outcome(v1::STEP_OUTCOME_FAILED);
    s.result.set_error(what + ": exited with status " + std::to_string(run.exit_code) + tail);
  }
  return Status::ok();
}

Status runCopy(StepState& s, const StepDir& dir, const std::vector<fs::path>& lowers) {
  const auto& copy = s.spec.copy();
  CopyRequest request;
  request.sources.assign(copy.sources().begin(), copy.sources().end());
  request.destination = copy.destination();
  request.working_dir = s.spec.config().working_dir().empty() ? "/" : s.spec.config().working_dir();
  request.chown = copy.chown();
  request.chmod = copy.chmod();
  request.add = s.spec.kind() == v1::STEP_KIND_ADD;
  request.from_other_filesystem = copy.source_case() == v1::CopyStep::kFrom;

  std::vector<sandbox::MountedOverlay> overlays;
  overlays.push_back({sandbox::OverlayRoot{lowers, dir.upper(), dir.work()}, false});
  LayerStore::Lease source_lease;
  std::optional<fs::path> context_dir;
  if (copy.source_case() == v1::CopyStep::kContext) {
    LF_ASSIGN_OR_RETURN(LayerRef context, toLayerRef(copy.context(), "copy.context"));
    LF_ASSIGN_OR_RETURN(source_lease, s.layers.acquire({context}));
    context_dir = source_lease.dirs().front();
  } else {
    LF_ASSIGN_OR_RETURN(std::vector<LayerRef> chain, toLayerChain(copy.from(), "copy.from"));
    LF_ASSIGN_OR_RETURN(source_lease, s.layers.acquire(chain));
    overlays.push_back({sandbox::OverlayRoot{uniqueLowerDirs(source_lease.dirs()), {}, {}}, true});
  }
  auto start = Clock::now();
  Status status = sandbox::withMountedOverlays(
      overlays, dir.mnt(), [&](const std::vector<fs::path>& mounted) -> Status {
        const fs::path& source = context_dir ? *context_dir : mounted.at(1);
        return copyIntoRoot(source, mounted.at(0), request).status();
      });
  s.result.mutable_timings()->set_run_ms(msSince(start));
  if (!status.isOk()) {
    // A source that does not exist, a bad --chown or --chmod: the step's fault, not the worker's.
    bool user_error =
        status.code() == StatusCode::kInvalidArgument || status.code() == StatusCode::kNotFound ||
        status.code() == StatusCode::kAlreadyExists || status.code() == StatusCode::kUnimplemented;
    s.result.set_outcome(user_error ? v1::STEP_OUTCOME_FAILED : v1::STEP_OUTCOME_ERROR);
    s.result.set_error(status.message());
  }
  return Status::ok();
}

Status makeLayer(StepState& s, const StepDir& dir) {
  auto start = Clock::now();
  layer::LayerOptions options;
  options.overlay_upper = true;
  options.compression = toCompression(s.spec.compression());
  options.threads = s.options.compression_threads;
  if (s.spec.has_source_date_epoch()) {
    options.source_date_epoch = s.spec.source_date_epoch();
  }
  LF_ASSIGN_OR_RETURN(layer::LayerInfo info, layer::writeLayer(dir.upper(), options, s.blobs));
  LayerRef ref{info.digest, info.diff_id, info.size, info.media_type};
  *s.result.mutable_layer() = fromLayerRef(ref);
  {
    layer::UniqueFd upper(::open(dir.upper().c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!upper) {
      return errnoStatus(errno, "open " + dir.upper().string());
    }
    LF_ASSIGN_OR_RETURN(auto names, layer::listDirectory(upper.get(), dir.upper().string()));
    s.result.set_empty_layer(names.empty());
  }
  s.result.mutable_timings()->set_layer_ms(msSince(start));
  // Keep the new layer unpacked for the next step. Another step may have made the same layer
  // first; then ours is just scratch.
  Status adopted = s.layers.adopt(ref, dir.upper());
  if (!adopted.isOk() && adopted.code() != StatusCode::kAlreadyExists) {
    return adopted.withContext("keep the new layer in the layer store");
  }
  return Status::ok();
}

}  // namespace

v1::StepResult StepRunner::run(const v1::StepSpec& spec, const LogCallback& log,
                               sandbox::Canceller* cancel) {
  auto start = Clock::now();
  if (Status valid = validateStepSpec(spec); !valid.isOk()) {
    // No worker can run it: FAILED, so the coordinator does not retry it elsewhere.
    return errorResult(spec, v1::STEP_OUTCOME_FAILED, valid.withContext("invalid step spec"));
  }
  StepState s{spec, options_, blobs_, layers_, log, cancel, {}};
  s.result.set_step_id(spec.step_id());

  auto parents = toLayerChain(spec.parent(), "parent");
  auto lease = layers_.acquire(*parents);
  if (!lease.isOk()) {
    return errorResult(spec, v1::STEP_OUTCOME_ERROR,
                       lease.status().withContext("materialize the parent layers"));
  }
  s.result.mutable_timings()->set_materialize_ms(msSince(start));
  auto dir = StepDir::create(options_.state_root / "steps", spec.step_id());
  if (!dir.isOk()) {
    return errorResult(spec, v1::STEP_OUTCOME_ERROR, dir.status());
  }
  std::vector<fs::path> lowers = uniqueLowerDirs(lease->dirs());
  Status status =
      spec.kind() == v1::STEP_KIND_RUN ? runCommand(s, *dir, lowers) : runCopy(s, *dir, lowers);
  if (status.isOk() && s.result.outcome() == v1::STEP_OUTCOME_UNSPECIFIED) {
    status = makeLayer(s, *dir);
    if (status.isOk()) {
      s.result.set_outcome(v1::STEP_OUTCOME_SUCCEEDED);
    }
  }
  if (!status.isOk()) {
    v1::StepOutcome outcome = status.code() == StatusCode::kPermissionDenied
                                  ? v1::STEP_OUTCOME_FAILED
                                  : v1::STEP_OUTCOME_ERROR;
    s.result.set_outcome(outcome);
    s.result.set_error(status.message());
    s.result.clear_layer();
  }
  s.result.mutable_timings()->set_total_ms(msSince(start));
  return s.result;
}

}  // namespace lf::worker
