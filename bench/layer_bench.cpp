// layer_bench: times layerfarm's layer pipeline on a directory, for bench/layer_bench.sh.
//
//   layer_bench write gzip|zstd|none DIR OUT_FILE [THREADS]
//       DIR -> layer blob in OUT_FILE (tar + compress + diff ID + blob digest, one pass)
//   layer_bench apply LAYER_FILE NEW_DIR
//       unpacks LAYER_FILE into NEW_DIR (must not exist; atomic unpack)
// Prints one line of key=value figures, including the process's peak RSS (getrusage).

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "common/layer/layer_reader.h"
#include "common/layer/layer_writer.h"

namespace {

long peakRssKib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int usage() {
  std::fprintf(stderr,
               "usage: layer_bench write gzip|zstd|none DIR OUT_FILE [THREADS]\n"
               "       layer_bench apply LAYER_FILE NEW_DIR\n");
  return 2;
}

int runWrite(const std::string& comp, const std::string& dir, const std::string& out, int threads) {
  lf::layer::LayerOptions options;
  options.threads = threads;
  if (comp == "gzip") {
    options.compression = lf::layer::Compression::kGzip;
  } else if (comp == "zstd") {
    options.compression = lf::layer::Compression::kZstd;
  } else if (comp == "none") {
    options.compression = lf::layer::Compression::kNone;
  } else {
    return usage();
  }
  int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(out.c_str());
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  auto info = lf::layer::writeLayerTo(dir, options, [fd](const void* d, size_t n) -> lf::Status {
    const char* p = static_cast<const char*>(d);
    while (n > 0) {
      ssize_t w = write(fd, p, n);
      if (w < 0) {
        return lf::errnoStatus(errno, "write output");
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return lf::Status::ok();
  });
  close(fd);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!info.isOk()) {
    std::fprintf(stderr, "layer_bench: %s\n", info.status().toString().c_str());
    return 1;
  }
  std::printf(
      "op=write compression=%s seconds=%.2f blob_bytes=%llu digest=%s diff_id=%s "
      "peak_rss_mib=%.1f\n",
      comp.c_str(), secs, static_cast<unsigned long long>(info->size),
      info->digest.toString().c_str(), info->diff_id.toString().c_str(), peakRssKib() / 1024.0);
  return 0;
}

int runApply(const std::string& layer, const std::string& dir) {
  auto start = std::chrono::steady_clock::now();
  lf::Status s = lf::layer::unpackLayerFiles({layer}, dir, {});
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!s.isOk()) {
    std::fprintf(stderr, "layer_bench: %s\n", s.toString().c_str());
    return 1;
  }
  std::printf("op=apply seconds=%.2f peak_rss_mib=%.1f\n", secs, peakRssKib() / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::string(argv[1]) == "write") {
    return runWrite(argv[2], argv[3], argv[4], argc >= 6 ? std::atoi(argv[5]) : 0);
  }
  if (argc == 4 && std::string(argv[1]) == "apply") {
    return runApply(argv[2], argv[3]);
  }
  return usage();
}
