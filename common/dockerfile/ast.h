#pragma once

// The Dockerfile syntax tree: what the parser produces and everything downstream (JSON dump,
// typed commands, build plan) consumes. Plain data, no behaviour; positions are 1-based.
//
// `args` follows Docker's per-instruction argument forms:
//   RUN, CMD, ENTRYPOINT, SHELL   exec form (json=true): the array elements;
//                                 shell form: one string, the command with continuations joined
//   COPY, ADD, VOLUME             exec form: the array elements; else whitespace-separated words
//   FROM, EXPOSE                  whitespace-separated words ("alpine", "AS", "build")
//   ENV, LABEL                    keys and values in order (k1, v1, k2, v2, ...)
//   ARG                           for each declaration, the name, then the default if one is given
//   MAINTAINER, USER, WORKDIR, STOPSIGNAL   one string
//   HEALTHCHECK                   "NONE", or "CMD" followed by the command as RUN/CMD would give it
//   ONBUILD                       the trigger instruction's text; `trigger` holds it parsed
// Quotes inside args are kept as written: removing them is word expansion's job (common/shell),
// because Docker does both in the same pass.

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lf::dockerfile {

struct Position {
  int line = 0;
  int column = 0;
};

// `--name=value`, or `--name` alone (value is nullopt) for boolean flags such as --link.
struct Flag {
  std::string name;  // without the leading "--"
  std::optional<std::string> value;
  std::string raw;  // as written: "--from=build"
  Position pos;
};

// A here-document attached to RUN, COPY or ADD.
struct Heredoc {
  std::string name;     // the delimiter word without quotes: "EOF"
  std::string content;  // the body; each line ends with '\n' (CRLF -> LF); tabs stripped for <<-
  bool expand = true;   // false when the delimiter was quoted ('EOF' or "EOF")
  bool strip_tabs = false;  // <<-EOF
};

// One name=value pair of ENV, LABEL or ARG, after splitting but before expansion.
struct KeyValue {
  std::string key;
  std::optional<std::string> value;  // only ARG may have no value
};

struct Instruction {
  std::string keyword;  // upper-case: "RUN"
  std::vector<Flag> flags;
  std::vector<std::string> args;
  bool json = false;  // exec (JSON array) form
  std::vector<Heredoc> heredocs;
  std::vector<KeyValue> pairs;  // ENV, LABEL, ARG: the same data as args, paired
  std::unique_ptr<Instruction> trigger;  // ONBUILD's instruction
  // The whole instruction as written, from the keyword to the end of end_line: continuation
  // lines (and comment lines inside them) and heredoc bodies included, joined with '\n'
  // (carriage returns dropped). For an ONBUILD trigger: the trigger's text after "ONBUILD ".
  std::string original;
  Position pos;          // where the keyword starts
  int end_line = 0;      // the last line it spans (heredoc bodies included)
};

struct Directive {
  std::string name;  // lower-case: "syntax", "escape", "check"
  std::string value;
  int line = 0;
};

struct Dockerfile {
  std::string file_name;  // used in error messages: "Dockerfile:3:1: ..."
  std::vector<Directive> directives;
  char escape = '\\';
  std::vector<Instruction> instructions;
};

}  // namespace lf::dockerfile
