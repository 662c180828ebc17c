#include "worker/exec/bind_mount.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <vector>

#include "common/context/context_manifest.h"
#include "common/layer/secure_fs.h"
#include "common/layer/unique_fd.h"
#include "worker/exec/step_spec.h"

namespace lf::worker {
namespace {

namespace fs = std::filesystem;
namespace v1 = layerfarm::v1;

Status makeDir(const fs::path& path, mode_t mode = 0700) {
  if (::mkdir(path.c_str(), mode) != 0) {
    return errnoStatus(errno, "create " + path.string());
  }
  return Status::ok();
}

// What `source` is inside the tree open as `root_fd`, resolved as the sandbox will: 1 a
// directory, 0 anything else, or -errno (-ENOENT when it or a directory on its way is missing).
int probeSource(int root_fd, const std::string& source, bool lone_layer) {
  int fd = layer::openInRootRaw(root_fd, source, O_PATH);
  if (fd < 0) {
    return fd;
  }
  layer::UniqueFd owned(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return -errno;
  }
  // A whiteout (a 0:0 character device) in a lone layer dir marks a deletion: nothing is there.
  if (lone_layer && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
    return -ENOENT;
  }
  return S_ISDIR(st.st_mode) ? 1 : 0;
}

// probeSource in the merged view of several layers: they are mounted read-only in a private
// mount namespace (a forked child), and the answer comes back through a pipe.
Result<int> probeInOverlay(const std::vector<fs::path>& lowers, const std::string& source,
                           const fs::path& scratch) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return errnoStatus(errno, "pipe");
  }
  layer::UniqueFd read_end(fds[0]);
  layer::UniqueFd write_end(fds[1]);
  const int out = write_end.get();
  Status status = sandbox::withMountedOverlays(
      {{sandbox::OverlayRoot{lowers, {}, {}}, true}}, scratch,
      [out, &source](const std::vector<fs::path>& mounted) -> Status {
        layer::UniqueFd root(::open(mounted.at(0).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        int answer = root ? probeSource(root.get(), source, false) : -errno;
        if (::write(out, &answer, sizeof answer) != static_cast<ssize_t>(sizeof answer)) {
          return errnoStatus(errno, "write the answer of the source lookup");
        }
        return Status::ok();
      });
  LF_RETURN_IF_ERROR(status);
  int answer = 0;
  if (::read(read_end.get(), &answer, sizeof answer) != static_cast<ssize_t>(sizeof answer)) {
    return internalError("the source lookup in the mounted layers gave no answer");
  }
  return answer;
}

// How errors name the tree: the coordinator sends the context as a one-layer chain.
std::string treeName(const std::vector<LayerRef>& chain) {
  if (chain.size() == 1 && chain[0].media_type == context::kContextManifestMediaType) {
    return "the build context";
  }
  return "the mount's from filesystem (" + std::to_string(chain.size()) + " layer" +
         (chain.size() == 1 ? "" : "s") + ")";
}

// The upper dir of a read-write bind: the overlay's root takes the upper dir's metadata, so it
// gets the top layer's (a step running as a user must see the tree's root as the layers have it).
Status makeThrowawayUpper(const fs::path& top_lower, const fs::path& upper) {
  struct stat st;
  if (::stat(top_lower.c_str(), &st) != 0) {
    return errnoStatus(errno, "stat " + top_lower.string());
  }
  LF_RETURN_IF_ERROR(makeDir(upper));
  if (::chown(upper.c_str(), st.st_uid, st.st_gid) != 0 ||
      ::chmod(upper.c_str(), st.st_mode & 07777) != 0) {
    return errnoStatus(errno, "set the owner and mode of " + upper.string());
  }
  return Status::ok();
}

// Where the source goes: the layer dir itself (read-only, one layer) or an overlay.
void chooseTree(const std::vector<fs::path>& lowers, bool readonly, const fs::path& scratch,
                sandbox::MountSpec* spec) {
  if (!readonly) {
    spec->overlay_lowers = lowers;
    spec->overlay_upper = scratch / "upper";
    spec->overlay_work = scratch / "work";
  } else if (lowers.size() == 1) {
    spec->source = lowers.front();
  } else {
    spec->overlay_lowers = lowers;
  }
}

}  // namespace

std::vector<fs::path> uniqueLowerDirs(const std::vector<fs::path>& bottom_first) {
  std::vector<fs::path> top_first;
  std::set<fs::path> seen;
  for (auto it = bottom_first.rbegin(); it != bottom_first.rend(); ++it) {
    if (seen.insert(*it).second) top_first.push_back(*it);
  }
  return {top_first.rbegin(), top_first.rend()};
}

Result<BindMount> prepareBindMount(const v1::RunMount& m, LayerStore& layers,
                                   const fs::path& scratch) {
  BindMount out;
  const std::string what =
      "RUN --mount=type=bind,source=" + (m.source().empty() ? std::string(".") : m.source()) +
      ",target=" + m.target();
  LF_ASSIGN_OR_RETURN(std::vector<LayerRef> chain, toLayerChain(m.from(), "mount.from"));
  auto lease = layers.acquire(chain);
  if (!lease.isOk()) {
    return lease.status().withContext(what + ": materialize its from layers");
  }
  out.lease = std::move(lease).value();
  LF_RETURN_IF_ERROR(makeDir(scratch));
  std::vector<fs::path> lowers = uniqueLowerDirs(out.lease.dirs());
  if (lowers.empty()) {  // FROM scratch with nothing in it: an empty tree
    LF_RETURN_IF_ERROR(makeDir(scratch / "empty", 0755));
    lowers.push_back(scratch / "empty");
  }

  int answer = 0;
  if (lowers.size() == 1) {
    layer::UniqueFd root(::open(lowers[0].c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
      return errnoStatus(errno, what + ": open " + lowers[0].string());
    }
    answer = probeSource(root.get(), m.source(), true);
  } else {
    LF_RETURN_IF_ERROR(makeDir(scratch / "probe"));
    auto probed = probeInOverlay(lowers, m.source(), scratch / "probe");
    if (!probed.isOk()) {
      return probed.status().withContext(what + ": look the source up in its from layers");
    }
    answer = *probed;
  }
  if (answer == -ENOENT) {
    out.step_error = what + ": no such file or directory in " + treeName(chain);
    return out;
  }
  if (answer == -ENOTDIR || answer == -ELOOP) {
    out.step_error = what + ": " +
                     (answer == -ENOTDIR ? "a component of the path is not a directory"
                                         : "too many levels of symbolic links") +
                     " in " + treeName(chain);
    return out;
  }
  if (answer < 0) {
    return errnoStatus(-answer, what + ": look the source up in its from layers");
  }

  sandbox::MountSpec& spec = out.mount;
  spec.type = sandbox::MountSpec::kBind;
  spec.target = m.target();
  spec.readonly = m.readonly();
  spec.source_path = m.source();
  spec.target_is_file = answer == 0;
  spec.nosuid_nodev = true;
  if (!m.readonly()) {
    LF_RETURN_IF_ERROR(makeThrowawayUpper(lowers.back(), scratch / "upper"));
    LF_RETURN_IF_ERROR(makeDir(scratch / "work"));
  }
  chooseTree(lowers, m.readonly(), scratch, &spec);
  return out;
}

}  // namespace lf::worker
