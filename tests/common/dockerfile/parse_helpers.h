#pragma once

// Helpers for the Dockerfile parser tests.

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "common/dockerfile/parser.h"

namespace lf::dockerfile {

// Parses `text`, failing the test (and returning an empty Dockerfile, whose instructions.at()
// then throws and ends the test) if it does not parse.
inline Dockerfile mustParse(std::string_view text) {
  Result<Dockerfile> r = parse(text);
  if (!r.isOk()) {
    ADD_FAILURE() << "parse failed: " << r.status().toString() << "\ninput:\n" << text;
    return Dockerfile{};
  }
  return std::move(r).value();
}

// The error message of a parse that must fail.
inline std::string parseError(std::string_view text) {
  Result<Dockerfile> r = parse(text);
  if (r.isOk()) {
    ADD_FAILURE() << "parse unexpectedly succeeded:\n" << text;
    return "";
  }
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

// The only instruction after a "FROM alpine" line.
inline Instruction second(std::string_view instruction_line) {
  Dockerfile df = mustParse("FROM alpine\n" + std::string(instruction_line) + "\n");
  if (df.instructions.size() != 2) {
    ADD_FAILURE() << "expected 2 instructions, got " << df.instructions.size();
    return Instruction{};
  }
  return std::move(df.instructions[1]);
}

// The error for an instruction on line 2, after "FROM alpine".
inline std::string secondError(std::string_view instruction_line) {
  return parseError("FROM alpine\n" + std::string(instruction_line) + "\n");
}

}  // namespace lf::dockerfile
