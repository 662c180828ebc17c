#pragma once

// Resolving USER and COPY --chown specs against an image's own /etc/passwd and /etc/group, the
// way Docker does.
//
// USER (resolveUser):
//   - "name" must exist in passwd; its uid, primary gid and home are used.
//   - "uid" (decimal) need not exist; if it does, its primary gid and home come from passwd,
//     otherwise gid 0 and home "/".
//   - ":group" / ":gid" override the primary gid; a group name must exist in the group file.
//   - Without an explicit group, the supplementary groups are those the group file lists the
//     user's name as a member of.
// COPY --chown (resolveChown): "user[:group]" by name or id; names must exist; a user without a
// group uses the user's numeric uid as the gid (Docker's documented rule).
//
// The files are read beneath the image root with container semantics (symlinks resolve inside
// the root, see common/layer/secure_fs.h); a missing file is an empty database. Errors name the
// spec and the file ("USER app: no user \"app\" in /etc/passwd").

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::worker {

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups
  std::string home = "/";
};

struct Ownership {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Parses passwd(5) / group(5) content. Malformed lines (too few fields, non-numeric ids) are
// skipped, as libc does; comments (#) and blank lines too.
std::vector<PasswdEntry> parsePasswd(std::string_view content);
std::vector<GroupEntry> parseGroup(std::string_view content);

// The two files of an image, as read by loadUserDatabase().
struct UserDatabase {
  std::vector<PasswdEntry> passwd;
  std::vector<GroupEntry> group;
};

// Reads etc/passwd and etc/group beneath `root_fd` (an O_PATH or O_DIRECTORY fd of the image
// root). Files larger than 16 MiB are an error.
Result<UserDatabase> loadUserDatabase(int root_fd);

Result<ResolvedUser> resolveUser(const UserDatabase& db, std::string_view spec);
Result<Ownership> resolveChown(const UserDatabase& db, std::string_view spec);

// Parses a decimal id (0..2^32-2); nullopt for anything else.
std::optional<uint32_t> parseId(std::string_view text);

}  // namespace lf::worker
