#include "worker/exec/user_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "common/layer/secure_fs.h"

namespace lf::worker {
namespace {

constexpr uint64_t kMaxDatabaseBytes = 16ull << 20;

std::vector<std::string_view> splitFields(std::string_view line, char sep) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t end = line.find(sep, start);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, end - start));
    start = end + 1;
  }
}

template <typename Fn>
void forEachLine(std::string_view content, Fn&& fn) {
  while (!content.empty()) {
    size_t end = content.find('\n');
    std::string_view line = content.substr(0, end);
    content = end == std::string_view::npos ? std::string_view() : content.substr(end + 1);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty() || line.front() == '#') {
      continue;
    }
    fn(line);
  }
}

// Reads `rel` beneath the root; an absent file reads as empty.
Result<std::string> readInRoot(int root_fd, const std::string& rel) {
  auto fd = layer::openInRoot(root_fd, rel, O_RDONLY | O_CLOEXEC);
  if (!fd.isOk()) {
    if (fd.status().code() == StatusCode::kNotFound) {
      return std::string();
    }
    return fd.status().withContext("/" + rel);
  }
  std::string content;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd->get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errnoStatus(errno, "read /" + rel);
    }
    if (n == 0) {
      return content;
    }
    content.append(buf, static_cast<size_t>(n));
    if (content.size() > kMaxDatabaseBytes) {
      return resourceExhausted("/" + rel + " is larger than 16 MiB");
    }
  }
}

const PasswdEntry* findUserByName(const UserDatabase& db, std::string_view name) {
  for (const auto& e : db.passwd) {
    if (e.name == name) {
      return &e;
    }
  }
  return nullptr;
}

const PasswdEntry* findUserById(const UserDatabase& db, uint32_t uid) {
  for (const auto& e : db.passwd) {
    if (e.uid == uid) {
      return &e;
    }
  }
  return nullptr;
}

const GroupEntry* findGroupByName(const UserDatabase& db, std::string_view name) {
  for (const auto& e : db.group) {
    if (e.name == name) {
      return &e;
    }
  }
  return nullptr;
}

// "user[:group]" -> (user, group or nullopt). Rejects empty parts.
Result<std::pair<std::string_view, std::optional<std::string_view>>> splitSpec(
    std::string_view what, std::string_view spec) {
  if (spec.empty()) {
    return invalidArgument(std::string(what) + ": empty user");
  }
  size_t colon = spec.find(':');
  if (colon == std::string_view::npos) {
    return std::pair<std::string_view, std::optional<std::string_view>>{spec, std::nullopt};
  }
  std::string_view user = spec.substr(0, colon);
  std::string_view group = spec.substr(colon + 1);
  if (user.empty() || group.empty() || group.find(':') != std::string_view::npos) {
    return invalidArgument(std::string(what) + " " + std::string(spec) +
                           ": expected user[:group]");
  }
  return std::pair<std::string_view, std::optional<std::string_view>>{user, group};
}

Result<uint32_t> resolveGroup(const UserDatabase& db, std::string_view what,
                              std::string_view spec, std::string_view group) {
  if (auto gid = parseId(group)) {
    return *gid;
  }
  if (const GroupEntry* g = findGroupByName(db, group)) {
    return g->gid;
  }
  return notFound(std::string(what) + " " + std::string(spec) + ": no group \"" +
                  std::string(group) + "\" in /etc/group");
}

}  // namespace

std::optional<uint32_t> parseId(std::string_view text) {
  uint32_t value = 0;
  if (text.empty()) {
    return std::nullopt;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == UINT32_MAX) {
    return std::nullopt;
  }
  return value;
}

std::vector<PasswdEntry> parsePasswd(std::string_view content) {
  std::vector<PasswdEntry> entries;
  forEachLine(content, [&](std::string_view line) {
    auto f = splitFields(line, ':');
    if (f.size() < 7 || f[0].empty()) {
      return;
    }
    auto uid = parseId(f[2]);
    auto gid = parseId(f[3]);
    if (!uid || !gid) {
      return;
    }
    entries.push_back(PasswdEntry{std::string(f[0]), *uid, *gid, std::string(f[5])});
  });
  return entries;
}

std::vector<GroupEntry> parseGroup(std::string_view content) {
  std::vector<GroupEntry> entries;
  forEachLine(content, [&](std::string_view line) {
    auto f = splitFields(line, ':');
    if (f.size() < 4 || f[0].empty()) {
      return;
    }
    auto gid = parseId(f[2]);
    if (!gid) {
      return;
    }
    GroupEntry entry{std::string(f[0]), *gid, {}};
    if (!f[3].empty()) {
      for (auto member : splitFields(f[3], ',')) {
        if (!member.empty()) {
          entry.members.emplace_back(member);
        }
      }
    }
    entries.push_back(std::move(entry));
  });
  return entries;
}

Result<UserDatabase> loadUserDatabase(int root_fd) {
  UserDatabase db;
  LF_ASSIGN_OR_RETURN(std::string passwd, readInRoot(root_fd, "etc/passwd"));
  LF_ASSIGN_OR_RETURN(std::string group, readInRoot(root_fd, "etc/group"));
  db.passwd = parsePasswd(passwd);
  db.group = parseGroup(group);
  return db;
}

Result<ResolvedUser> resolveUser(const UserDatabase& db, std::string_view spec) {
  ResolvedUser out;
  if (spec.empty()) {
    if (const PasswdEntry* root = findUserById(db, 0); root && !root->home.empty()) {
      out.home = root->home;
    }
    return out;
  }
  LF_ASSIGN_OR_RETURN(auto parts, splitSpec("USER", spec));
  auto [user, group] = parts;
  const PasswdEntry* entry = nullptr;
  if (auto uid = parseId(user)) {
    out.uid = *uid;
    entry = findUserById(db, *uid);
  } else {
    entry = findUserByName(db, user);
    if (entry == nullptr) {
      return notFound("USER " + std::string(spec) + ": no user \"" + std::string(user) +
                      "\" in /etc/passwd");
    }
    out.uid = entry->uid;
  }
  if (entry != nullptr) {
    out.gid = entry->gid;
    if (!entry->home.empty()) {
      out.home = entry->home;
    }
  }
  if (group) {
    LF_ASSIGN_OR_RETURN(out.gid, resolveGroup(db, "USER", spec, *group));
  } else if (entry != nullptr) {
    for (const auto& g : db.group) {
      if (std::find(g.members.begin(), g.members.end(), entry->name) != g.members.end() &&
          g.gid != out.gid &&
          std::find(out.groups.begin(), out.groups.end(), g.gid) == out.groups.end()) {
        out.groups.push_back(g.gid);
      }
    }
  }
  return out;
}

Result<Ownership> resolveChown(const UserDatabase& db, std::string_view spec) {
  LF_ASSIGN_OR_RETURN(auto parts, splitSpec("--chown", spec));
  auto [user, group] = parts;
  Ownership out;
  if (auto uid = parseId(user)) {
    out.uid = *uid;
  } else if (const PasswdEntry* entry = findUserByName(db, user)) {
    out.uid = entry->uid;
  } else {
    return notFound("--chown=" + std::string(spec) + ": no user \"" + std::string(user) +
                    "\" in /etc/passwd");
  }
  out.gid = out.uid;
  if (group) {
    LF_ASSIGN_OR_RETURN(out.gid, resolveGroup(db, "--chown", spec, *group));
  }
  return out;
}

}  // namespace lf::worker
