// Build-plan benchmark: parse + plan of a generated Dockerfile of N instructions (default 10,000)
// over a generated context, with every step keyed. Prints the median and min of R runs of
// parse alone, plan alone and both, and the context scan time for reference.
//
//   plan_bench [instructions] [runs]

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/context/context_scanner.h"
#include "common/dockerfile/parser.h"
#include "common/plan/build_plan.h"

namespace {

namespace fs = std::filesystem;
constexpr int kStageEvery = 500;  // a new stage every N instructions
constexpr int kContextDirs = 50;  // src/<d>/ with 10 files each

std::string generate(int instructions) {
  std::string s = "# syntax=docker/dockerfile:1\nARG BASE=debian:12\nFROM ${BASE} AS s0\n";
  int stage = 0;
  for (int i = 1; i < instructions; ++i) {
    std::string n = std::to_string(i);
    if (i % kStageEvery == 0) {
      ++stage;
      s += "FROM s" + std::to_string(stage - 1) + " AS s" + std::to_string(stage) + "\n";
      continue;
    }
    switch (i % 8) {
      case 0:
        s += "RUN --mount=type=cache,target=/root/.cache make -j2 target" + n + "\n";
        break;
      case 1:
        s += "ENV VAR" + n + "=\"value " + n + "\" PATH=/opt/bin" + n + ":$PATH\n";
        break;
      case 2:
        s += "COPY --chown=app:app src/" + std::to_string(i % kContextDirs) + "/ /app/" + n + "/\n";
        break;
      case 3:
        s += "ARG LEVEL" + n + "=" + n + "\n";
        break;
      case 4:
        s += "RUN echo $LEVEL" + std::to_string(i - 1) + " > /tmp/" + n + "\n";
        break;
      case 5:
        s += "WORKDIR /srv/" + n + "\n";
        break;
      case 6:
        s += "COPY src/" + std::to_string(i % kContextDirs) + "/*.txt /txt/\n";
        break;
      default:
        s += "LABEL k" + n + "=v" + n + "\n";
        break;
    }
  }
  return s;
}

void makeContext(const fs::path& root) {
  for (int d = 0; d < kContextDirs; ++d) {
    fs::create_directories(root / "src" / std::to_string(d));
    for (int f = 0; f < 10; ++f) {
      std::ofstream(root / "src" / std::to_string(d) / (std::to_string(f) + ".txt"))
          << "file " << d << "/" << f << "\n";
    }
  }
}

double ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void report(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("%-14s median %8.2f ms   min %8.2f ms\n", what, v[v.size() / 2], v.front());
}

}  // namespace

int main(int argc, char** argv) {
  int instructions = argc > 1 ? std::atoi(argv[1]) : 10000;
  int runs = argc > 2 ? std::atoi(argv[2]) : 11;
  std::string text = generate(instructions);

  char tmpl[] = "/tmp/lf-plan-bench-XXXXXX";
  fs::path ctx_dir = mkdtemp(tmpl);
  makeContext(ctx_dir);
  auto t0 = std::chrono::steady_clock::now();
  auto ctx = lf::context::scanContext(ctx_dir, {});
  auto scan_ms = ms(std::chrono::steady_clock::now() - t0);
  if (!ctx.isOk()) {
    std::fprintf(stderr, "scan: %s\n", ctx.status().toString().c_str());
    return 1;
  }

  std::vector<double> parse_ms, plan_ms, total_ms;
  size_t steps = 0, keyed = 0, stages = 0;
  for (int r = 0; r < runs; ++r) {
    auto a = std::chrono::steady_clock::now();
    auto df = lf::dockerfile::parse(text);
    auto b = std::chrono::steady_clock::now();
    if (!df.isOk()) {
      std::fprintf(stderr, "parse: %s\n", df.status().toString().c_str());
      return 1;
    }
    lf::plan::PlanInput in;
    in.dockerfile = &*df;
    in.context = &*ctx;
    in.bases["debian:12"] = {lf::Digest::sha256Of("debian:12"), std::nullopt, 1};
    auto p = lf::plan::makePlan(in);
    auto c = std::chrono::steady_clock::now();
    if (!p.isOk()) {
      std::fprintf(stderr, "plan: %s\n", p.status().toString().c_str());
      return 1;
    }
    parse_ms.push_back(ms(b - a));
    plan_ms.push_back(ms(c - b));
    total_ms.push_back(ms(c - a));
    stages = p->stages.size();
    steps = keyed = 0;
    for (const auto& s : p->stages) {
      for (const auto& st : s.steps) {
        ++steps;
        keyed += st.cache_key ? 1 : 0;
      }
    }
  }
  std::printf("Dockerfile: %d instructions, %zu bytes; %zu stages, %zu steps, %zu keyed\n",
              instructions, text.size(), stages, steps, keyed);
  std::printf("context: %zu entries, scanned in %.2f ms\n", ctx->entries().size(), scan_ms);
  report("parse", parse_ms);
  report("plan", plan_ms);
  report("parse+plan", total_ms);
  fs::remove_all(ctx_dir);
  return keyed == steps ? 0 : 1;
}
