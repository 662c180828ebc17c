// mountOverlay(): the new mount API first, the classic option string as the fallback.

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "common/layer/unique_fd.h"
#include "worker/sandbox/rootfs.h"

namespace lf::worker::sandbox {
namespace {

using layer::UniqueFd;

// A plain upper dir for the layer writer: no index, no metacopy-only files, no redirects.
constexpr const char* kPlainOptions[] = {"index", "metacopy", "redirect_dir"};

// The messages the kernel attached to a filesystem context ("e overlay: ..."), for errors.
std::string contextMessages(int fs_fd) {
  std::string out;
  char buf[512];
  for (int i = 0; i < 8; ++i) {
    ssize_t n = read(fs_fd, buf, sizeof buf - 1);
    if (n <= 0) {
      break;
    }
    if (!out.empty()) {
      out += "; ";
    }
    out.append(buf, n);
  }
  return out;
}

Status contextError(int err, int fs_fd, const std::string& what) {
  Status status = errnoStatus(err, "sandbox: " + what);
  std::string messages = contextMessages(fs_fd);
  if (!messages.empty()) {
    return Status(status.code(), status.message() + " (" + messages + ")");
  }
  return status;
}

// Returns ENOSYS/EINVAL-style "unsupported" as *unsupported so the caller can fall back.
Status mountWithFsConfig(const std::vector<std::string>& lowers, const std::string& upper,
                         const std::string& work, const std::string& target, bool* unsupported) {
  *unsupported = false;
  UniqueFd fs(fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) {
    *unsupported = errno == ENOSYS;
    return errnoStatus(errno, "sandbox: fsopen overlay");
  }
  auto set = [&](const char* key, const std::string& value) {
    return fsconfig(fs.get(), FSCONFIG_SET_STRING, key, value.c_str(), 0);
  };
  for (size_t i = 0; i < lowers.size(); ++i) {
    if (set("lowerdir+", lowers[i]) != 0) {
      // Kernels before 6.8 do not know "lowerdir+".
      *unsupported = i == 0 && errno == EINVAL;
      return contextError(errno, fs.get(), "overlay lower dir " + lowers[i]);
    }
  }
  if (!upper.empty()) {
    if (set("upperdir", upper) != 0) {
      return contextError(errno, fs.get(), "overlay upper dir " + upper);
    }
    if (set("workdir", work) != 0) {
      return contextError(errno, fs.get(), "overlay work dir " + work);
    }
  }
  for (const char* option : kPlainOptions) {
    // A kernel without the option does not have the feature either.
    (void)set(option, "off");
  }
  if (fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return contextError(errno, fs.get(), "mount overlay on " + target);
  }
  UniqueFd mnt(fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
  if (!mnt) {
    return contextError(errno, fs.get(), "fsmount overlay for " + target);
  }
  if (move_mount(mnt.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return errnoStatus(errno, "sandbox: move_mount overlay to " + target);
  }
  return Status::ok();
}

std::string escapeLower(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ':' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

std::string classicOptions(const std::vector<std::string>& lowers, const std::string& upper,
                           const std::string& work) {
  std::string data = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) {
    data += (i ? ":" : "") + escapeLower(lowers[i]);
  }
  if (!upper.empty()) {
    data += ",upperdir=" + upper + ",workdir=" + work;
  }
  for (const char* option : kPlainOptions) {
    data += std::string(",") + option + "=off";
  }
  return data;
}

}  // namespace

Status mountOverlayClassic(const std::vector<std::string>& lowers, const std::string& upper,
                           const std::string& work, const std::string& target) {
  for (const std::string* p : {&upper, &work}) {
    if (p->find(',') != std::string::npos) {
      return invalidArgument("sandbox: overlay dir " + *p + " contains ','");
    }
  }
  for (const std::string& l : lowers) {
    if (l.find(',') != std::string::npos) {
      return invalidArgument("sandbox: overlay layer path " + l + " contains ','");
    }
  }
  std::string data = classicOptions(lowers, upper, work);
  // Mount data is limited to a page. Long chains name each dir by an O_PATH descriptor, relative
  // to /proc/self/fd (the kernel follows the magic links): a few bytes per layer.
  std::vector<UniqueFd> held;
  if (data.size() >= 4000) {
    auto byFd = [&](const std::string& path) -> Result<std::string> {
      UniqueFd fd(open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (!fd) {
        return errnoStatus(errno, "sandbox: open overlay dir " + path);
      }
      std::string name = std::to_string(fd.get());
      held.push_back(std::move(fd));
      return name;
    };
    std::vector<std::string> short_lowers;
    for (const std::string& l : lowers) {
      LF_ASSIGN_OR_RETURN(std::string name, byFd(l));
      short_lowers.push_back(std::move(name));
    }
    std::string short_upper, short_work;
    if (!upper.empty()) {
      LF_ASSIGN_OR_RETURN(short_upper, byFd(upper));
      LF_ASSIGN_OR_RETURN(short_work, byFd(work));
    }
    data = classicOptions(short_lowers, short_upper, short_work);
    if (data.size() >= 4000) {
      return invalidArgument("sandbox: overlay options for " + std::to_string(lowers.size()) +
                             " layers exceed a page on this kernel");
    }
    if (chdir("/proc/self/fd") != 0) {
      return errnoStatus(errno, "sandbox: chdir /proc/self/fd");
    }
  }
  int rc = mount("overlay", target.c_str(), "overlay", 0, data.c_str());
  int err = errno;
  if (!held.empty() && chdir("/") != 0) {
    return errnoStatus(errno, "sandbox: chdir /");
  }
  if (rc != 0) {
    return errnoStatus(err, "sandbox: mount overlay on " + target);
  }
  return Status::ok();
}

Status mountOverlay(const std::vector<std::string>& lowers_top_first, const std::string& upper,
                    const std::string& work, const std::string& target) {
  bool unsupported = false;
  Status status = mountWithFsConfig(lowers_top_first, upper, work, target, &unsupported);
  if (status.isOk() || !unsupported) {
    return status;
  }
  return mountOverlayClassic(lowers_top_first, upper, work, target);
}

}  // namespace lf::worker::sandbox
