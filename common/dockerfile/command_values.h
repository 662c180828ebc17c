#pragma once

// Value syntaxes inside Dockerfile instructions, parsed and validated for commands.cpp:
// RUN --mount specs, Go durations (HEALTHCHECK), byte sizes (tmpfs size=), ports (EXPOSE),
// signals (STOPSIGNAL), file modes (COPY --chmod) and booleans (--link=true).
// Each returns a Result whose error message says what is wrong with the value but not where;
// the caller prefixes "<file>:<line>:<column>: <INSTRUCTION> ...".

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/dockerfile/commands.h"

namespace lf::dockerfile {

// Expands one mount option value (the caller's word expander); may fail.
using ValueExpander = std::function<Result<std::string>(std::string_view)>;

// Parses one --mount value ("type=cache,target=/root/.cache,sharing=locked"). Fields are
// comma-separated, CSV-quoted when they contain commas; keys are case-insensitive. `ssh_index`
// numbers ssh mounts for their default socket path.
Result<Mount> parseMountSpec(std::string_view spec, const ValueExpander& expand, int ssh_index);

// Go's strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False.
std::optional<bool> parseBool(std::string_view text);

// "80", "80/tcp", "53/udp", "8000-8010", "8000-8010/sctp".
Result<PortSpec> parsePortSpec(std::string_view text);

// A signal name (SIGTERM, TERM, RTMIN+3, SIGRTMAX-1) or number 1..64.
Status validateSignal(std::string_view text);

// COPY --chmod: octal ("755", "0644") returns the mode; symbolic ("u+x,go=rX") returns nullopt;
// anything else is an error.
Result<std::optional<std::uint32_t>> parseChmod(std::string_view text);

// An octal mode of at most 07777 ("0755").
std::optional<std::uint32_t> parseOctalMode(std::string_view text);

// A non-negative decimal integer that fits in uint32.
std::optional<std::uint32_t> parseUint32(std::string_view text);

}  // namespace lf::dockerfile
