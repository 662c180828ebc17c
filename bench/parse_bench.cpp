// Dockerfile parser benchmark: generates a Dockerfile of N instructions (default 10,000; mixed
// instructions, continuations, heredocs, JSON forms, flags) and times lf::dockerfile::parse,
// printing the median and min of R runs (default 21) and the throughput.
//
//   parse_bench [instructions] [runs]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/dockerfile/ast_json.h"
#include "common/dockerfile/parser.h"

namespace {

std::string generate(int instructions) {
  std::string s = "# syntax=docker/dockerfile:1.7\nARG BASE=alpine:3.19\nFROM ${BASE} AS base\n";
  for (int i = 0; i < instructions - 1; ++i) {
    std::string n = std::to_string(i);
    switch (i % 10) {
      case 0:
        s += "RUN --mount=type=cache,target=/var/cache/apk apk add --no-cache pkg" + n +
             " \\\n    && echo installed \\\n    # a comment inside\n    && rm -rf /tmp/*\n";
        break;
      case 1:
        s += "ENV VAR" + n + "=\"value " + n + "\" OTHER_" + n + "=x\\ y\n";
        break;
      case 2:
        s += "COPY --chown=app:app --chmod=0644 --link src/" + n + "/ /app/" + n + "/\n";
        break;
      case 3:
        s += "RUN <<EOF bash\nset -euo pipefail\necho step " + n + "\nmake -j2 target" + n +
             "\nEOF\n";
        break;
      case 4:
        s += "LABEL org.example.k" + n + "=\"v " + n + "\" \"quoted key\"=\"say \\\"hi\\\"\"\n";
        break;
      case 5:
        s += "CMD [\"/usr/bin/server\", \"--port\", \"" + n + "\"]\n";
        break;
      case 6:
        s += "WORKDIR /srv/app" + n + "\n\n";
        break;
      case 7:
        s += "COPY <<-\"CONF\" /etc/app" + n + ".conf\n\tkey = value\n\tother = $x\n\tCONF\n";
        break;
      case 8:
        s += "ARG V" + n + "=1 W" + n + "\n";
        break;
      default:
        s += "HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/ || exit 1\n";
        break;
    }
  }
  return s;
}

double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  int instructions = argc > 1 ? std::atoi(argv[1]) : 10000;
  int runs = argc > 2 ? std::atoi(argv[2]) : 21;
  if (instructions < 1 || runs < 1) {
    std::fprintf(stderr, "usage: parse_bench [instructions>=1] [runs>=1]\n");
    return 2;
  }
  std::string text = generate(instructions);
  std::vector<double> parse_ms;
  std::vector<double> dump_ms;
  std::size_t parsed = 0;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    lf::Result<lf::dockerfile::Dockerfile> df = lf::dockerfile::parse(text);
    parse_ms.push_back(msSince(t0));
    if (!df.isOk()) {
      std::fprintf(stderr, "parse failed: %s\n", df.status().toString().c_str());
      return 1;
    }
    parsed = df->instructions.size();
    auto t1 = std::chrono::steady_clock::now();
    std::string json = lf::dockerfile::dumpJson(*df, -1);
    dump_ms.push_back(msSince(t1));
  }
  std::sort(parse_ms.begin(), parse_ms.end());
  std::sort(dump_ms.begin(), dump_ms.end());
  double median = parse_ms[parse_ms.size() / 2];
  double mib = static_cast<double>(text.size()) / (1024.0 * 1024.0);
  std::printf("dockerfile: %zu instructions, %zu lines, %.2f MiB\n", parsed,
              static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')), mib);
  std::printf("parse:     median %.3f ms, min %.3f ms, max %.3f ms over %d runs\n", median,
              parse_ms.front(), parse_ms.back(), runs);
  std::printf("           %.0f instructions/s, %.1f MiB/s (median)\n", parsed / (median / 1000.0),
              mib / (median / 1000.0));
  std::printf("json dump: median %.3f ms\n", dump_ms[dump_ms.size() / 2]);
  return 0;
}
