#pragma once

// Typed Dockerfile commands: one parsed Instruction (ast.h) turned into a struct per keyword,
// with Docker's word expansion applied exactly where the Dockerfile reference says the builder
// applies it, and each instruction's arguments and flags validated.
//
// Where expansion happens (the reference's "Environment replacement" list, and BuildKit):
//   FROM (image, --platform), ADD/COPY (sources, dest, --from, --chown, --chmod, --exclude,
//   --checksum, unquoted here-document bodies), ENV and LABEL (keys and values), ARG (defaults),
//   EXPOSE (split into words, so `EXPOSE $PORTS` may give several ports), STOPSIGNAL, USER,
//   VOLUME, WORKDIR, and the values of RUN --mount options.
// Not expanded, because the shell does it at run time or Docker leaves them as written: RUN,
// CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, RUN --network/--security, and ONBUILD
// triggers (they are expanded in the build that inherits them).
//
// Every variable is read through the caller's Lookup, which holds the scope in effect before the
// instruction (for FROM: the global ARGs). As Docker documents, one instruction sees one scope:
// `ENV a=1 b=$a` sets b from the previous value of a; the caller updates its scope after ENV and
// ARG. Errors are kInvalidArgument with "<file>:<line>:<column>: " and what is wrong.
//
// decodeInstruction() is a pure function; it never throws.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/base/status.h"
#include "common/dockerfile/ast.h"
#include "common/shell/word_expander.h"

namespace lf::dockerfile {

// FROM [--platform=p] image [AS name]
struct FromCommand {
  std::string image;                    // expanded; never empty
  std::string stage_name;               // lower-cased; empty when there is no AS
  std::optional<std::string> platform;  // expanded
  Position pos;
};

enum class MountType { kBind, kCache, kTmpfs, kSecret, kSsh };
enum class MountSharing { kShared, kPrivate, kLocked };

// One RUN --mount=... spec, with BuildKit's defaults filled in.
struct Mount {
  MountType type = MountType::kBind;
  std::string target;    // secret: /run/secrets/<id> unless env is set; ssh: agent socket path
  std::string source;    // bind/cache: path in `from` (or the context)
  std::string from;      // bind/cache: stage, image or context name
  bool readonly = true;  // bind, secret, ssh default to read-only; cache and tmpfs to writable
  std::string id;        // cache (defaults to target), secret (defaults to basename of target
                         // or the env name), ssh ("default")
  MountSharing sharing = MountSharing::kShared;  // cache only
  std::optional<std::uint32_t> mode;             // cache, secret, ssh; octal in the Dockerfile
  std::optional<std::uint32_t> uid;
  std::optional<std::uint32_t> gid;
  bool required = false;                    // secret, ssh
  std::optional<std::uint64_t> size_bytes;  // tmpfs
  std::string env;                          // secret: expose it as this environment variable
};

enum class NetworkMode { kDefault, kNone, kHost };
enum class SecurityMode { kSandbox, kInsecure };

// RUN [--mount=...]... [--network=...] [--security=...] command
struct RunCommand {
  // Exec form: the JSON array. Shell form: one element, the command line as written (the
  // shell, not the builder, expands it).
  std::vector<std::string> args;
  bool shell_form = true;
  std::vector<Mount> mounts;
  NetworkMode network = NetworkMode::kDefault;
  SecurityMode security = SecurityMode::kSandbox;
  std::vector<Heredoc> heredocs;  // bodies as written; the shell expands them
  Position pos;
};

// A COPY/ADD source given as a here-document: a file named `name` with `content`.
struct InlineSource {
  std::string name;
  std::string content;  // expanded unless the delimiter was quoted
};

// COPY and ADD.
struct CopyCommand {
  bool is_add = false;
  std::vector<std::string> sources;  // expanded; here-document sources are in inline_sources
  std::vector<InlineSource> inline_sources;
  std::string dest;
  std::optional<std::string> from;           // COPY only
  std::optional<std::string> chown;          // "user[:group]"
  std::optional<std::string> chmod;          // as written after expansion: octal or symbolic
  std::optional<std::uint32_t> chmod_octal;  // set when chmod is octal
  bool link = false;
  bool parents = false;  // COPY only
  std::vector<std::string> excludes;
  std::optional<std::string> checksum;  // ADD only
  bool keep_git_dir = false;            // ADD only
  std::optional<bool> unpack;           // ADD only; nullopt = Docker's default for the source
  Position pos;
};

struct EnvCommand {
  std::vector<std::pair<std::string, std::string>> pairs;  // expanded keys and values
  Position pos;
};

struct LabelCommand {
  std::vector<std::pair<std::string, std::string>> pairs;
  Position pos;
};

struct ArgDeclaration {
  std::string name;
  std::optional<std::string> default_value;  // expanded
};

// ARG name[=default] [name[=default]...]
struct ArgCommand {
  std::vector<ArgDeclaration> args;
  Position pos;
};

struct WorkdirCommand {
  std::string path;
  Position pos;
};

struct UserCommand {
  std::string user;  // "user[:group]"
  Position pos;
};

struct CmdCommand {
  std::vector<std::string> args;  // exec form array, or one element (shell form)
  bool shell_form = true;
  Position pos;
};

struct EntrypointCommand {
  std::vector<std::string> args;
  bool shell_form = true;
  Position pos;
};

struct ShellCommand {
  std::vector<std::string> args;  // never empty
  Position pos;
};

struct PortSpec {
  std::uint16_t first = 0;
  std::uint16_t last = 0;        // == first unless a range "8000-8010" was given
  std::string protocol = "tcp";  // tcp, udp or sctp
};

struct ExposeCommand {
  std::vector<std::string> ports;  // expanded words as written: "80/tcp", "8000-8010"
  std::vector<PortSpec> specs;     // the same, parsed
  Position pos;
};

struct VolumeCommand {
  std::vector<std::string> paths;
  Position pos;
};

struct StopsignalCommand {
  std::string signal;  // as written after expansion: "SIGTERM", "9", "RTMIN+3"
  Position pos;
};

// HEALTHCHECK NONE, or HEALTHCHECK [options] CMD command.
struct HealthcheckCommand {
  bool none = false;
  std::vector<std::string> args;  // CMD: exec array or one shell-form string
  bool shell_form = true;
  std::optional<std::int64_t> interval_ns;
  std::optional<std::int64_t> timeout_ns;
  std::optional<std::int64_t> start_period_ns;
  std::optional<std::int64_t> start_interval_ns;
  std::optional<int> retries;
  Position pos;
};

struct OnbuildCommand {
  std::string trigger;          // the trigger's text as written: "RUN make"
  std::string trigger_keyword;  // upper-case: "RUN"
  Position pos;
};

struct MaintainerCommand {
  std::string name;
  Position pos;
};

using Command = std::variant<FromCommand, RunCommand, CopyCommand, EnvCommand, LabelCommand,
                             ArgCommand, WorkdirCommand, UserCommand, CmdCommand, EntrypointCommand,
                             ShellCommand, ExposeCommand, VolumeCommand, StopsignalCommand,
                             HealthcheckCommand, OnbuildCommand, MaintainerCommand>;

struct DecodeOptions {
  std::string file_name = "Dockerfile";  // for error messages
  char escape = '\\';                    // the Dockerfile's escape directive
  // When set, receives every variable name the instruction's expansions referenced (set or
  // not): what the build plan needs to key a step on the build args it really uses.
  std::set<std::string, std::less<>>* referenced = nullptr;
};

Result<Command> decodeInstruction(const Instruction& inst, const shell::Lookup& lookup,
                                  const DecodeOptions& options);

Result<Command> decodeInstruction(const Instruction& inst, const shell::Lookup& lookup,
                                  char escape = '\\', std::string_view file_name = "Dockerfile");

// The position of the instruction a command was decoded from.
Position commandPosition(const Command& command);

// Parses a Go-style duration ("30s", "1m30s", "1.5h", "250ms", "0") into nanoseconds.
Result<std::int64_t> parseDuration(std::string_view text);

// Parses a size with an optional binary unit suffix ("64m", "1g", "512k", "1024") into bytes.
Result<std::uint64_t> parseByteSize(std::string_view text);

}  // namespace lf::dockerfile
