#include "tests/common/layer/layer_test_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/digest/digest.h"
#include "tests/support/shell.h"

namespace lf::layer::testing {

CommandResult runCommand(const std::string& command) {
  lf::testing::ShellResult r = lf::testing::runShell(command);
  return CommandResult{r.code, std::move(r.text)};
}

std::string pythonBinary() {
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

std::string xattrList(const std::filesystem::path& p) {
  std::string names(65536, '\0');
  ssize_t n = llistxattr(p.c_str(), names.data(), names.size());
  if (n <= 0) {
    return "";
  }
  std::vector<std::string> list;
  for (size_t pos = 0; pos < static_cast<size_t>(n);) {
    std::string name(names.data() + pos);
    pos += name.size() + 1;
    if (name.rfind("security.selinux", 0) == 0) {
      continue;
    }
    std::string value(65536, '\0');
    ssize_t v = lgetxattr(p.c_str(), name.c_str(), value.data(), value.size());
    value.resize(v < 0 ? 0 : static_cast<size_t>(v));
    list.push_back(name + "=" + Digest::sha256Of(value).shortHex());
  }
  std::sort(list.begin(), list.end());
  std::string out;
  for (const auto& x : list) {
    out += " " + x;
  }
  return out;
}

}  // namespace

std::string describeTree(const std::filesystem::path& root, bool with_mtime) {
  std::vector<std::string> lines;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const auto& p = it->path();
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      continue;
    }
    std::ostringstream line;
    line << std::filesystem::relative(p, root).string() << " ";
    char mode[16];
    snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    if (S_ISDIR(st.st_mode)) {
      line << "dir " << mode << " " << st.st_uid << ":" << st.st_gid;
    } else if (S_ISLNK(st.st_mode)) {
      line << "link " << st.st_uid << ":" << st.st_gid << " -> "
           << std::filesystem::read_symlink(p).string();
    } else if (S_ISREG(st.st_mode)) {
      line << "file " << mode << " " << st.st_uid << ":" << st.st_gid << " " << st.st_size << " "
           << Digest::sha256Of(slurp(p)).shortHex() << " nlink=" << st.st_nlink;
      if (with_mtime) {
        line << " mtime=" << st.st_mtim.tv_sec;
      }
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      line << (S_ISCHR(st.st_mode) ? "chr " : "blk ") << major(st.st_rdev) << ":"
           << minor(st.st_rdev);
    } else if (S_ISFIFO(st.st_mode)) {
      line << "fifo " << mode;
    }
    line << xattrList(p);
    lines.push_back(line.str());
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) {
    out += l + "\n";
  }
  return out;
}

bool supportsUserXattrs(const std::filesystem::path& dir) {
  auto probe = dir / ".xattr-probe";
  { std::ofstream(probe) << "x"; }
  bool ok = setxattr(probe.c_str(), "user.lf.probe", "1", 1, 0) == 0;
  std::filesystem::remove(probe);
  return ok;
}

bool makeTarWithPython(const std::filesystem::path& out, const std::string& body,
                       const std::string& mode) {
  auto script = out.string() + ".py";
  {
    std::ofstream py(script);
    py << "import tarfile, io, sys\n"
       << "t = tarfile.open(sys.argv[1], '" << mode << "', format=tarfile.PAX_FORMAT)\n"
       << "def add(name, data=b'', **kw):\n"
       << "    info = tarfile.TarInfo(name)\n"
       << "    info.size = len(data)\n"
       << "    for k, v in kw.items(): setattr(info, k, v)\n"
       << "    t.addfile(info, io.BytesIO(data) if data else None)\n"
       << body << "\n"
       << "t.close()\n";
  }
  auto r = runCommand(pythonBinary() + " " + shellQuote(script) + " " + shellQuote(out.string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return r.exit_code == 0;
}

}  // namespace lf::layer::testing
