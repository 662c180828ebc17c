#include "common/context/file_hasher.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common/context/safe_open.h"

namespace lf::context {

namespace {

constexpr size_t kBufferBytes = 1u << 20;

std::string quotePath(std::string_view path) { return "\"" + std::string(path) + "\""; }

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct MdDeleter {
  void operator()(EVP_MD* m) const { EVP_MD_free(m); }
};

// Shared by the workers of one hashFiles() call.
struct Batch {
  int root_fd;
  std::span<HashJob> jobs;
  std::vector<uint32_t> order;  // job indices, largest file first
  const EVP_MD* md;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mu;
  Status error;

  void fail(Status st) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (!failed.load()) {
      error = std::move(st);
      failed.store(true);
    }
  }
};

// One worker's reusable state.
class Worker {
 public:
  explicit Worker(Batch* batch) : batch_(batch) {}

  void run() {
    buffer_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, kBufferBytes)));
    ctx_.reset(EVP_MD_CTX_new());
    if (!buffer_ || !ctx_) {
      batch_->fail(resourceExhausted("hashing the build context: out of memory"));
      return;
    }
    while (!batch_->failed.load(std::memory_order_relaxed)) {
      size_t i = batch_->next.fetch_add(1, std::memory_order_relaxed);
      if (i >= batch_->order.size()) {
        return;
      }
      Status st = hashOne(batch_->jobs[batch_->order[i]]);
      if (!st.isOk()) {
        batch_->fail(std::move(st));
        return;
      }
    }
  }

 private:
  Status openChecked(const HashJob& job, UniqueFd* out) {
    int err = 0;
    auto fd =
        openBeneathCStr(batch_->root_fd, job.path.data(), O_RDONLY | O_NOFOLLOW | O_NOCTTY, &err);
    if (!fd.isOk()) {
      if (err == ENOENT) {
        return notFound("context file " + quotePath(job.path) + " vanished during the scan");
      }
      return fd.status().withContext("context file: open");
    }
    struct stat st {};
    if (fstat(fd->get(), &st) != 0) {
      return errnoStatus(errno, "context file " + quotePath(job.path) + ": fstat");
    }
    if (!S_ISREG(st.st_mode) || st.st_dev != job.dev || st.st_ino != job.ino) {
      return failedPrecondition("context file " + quotePath(job.path) +
                                " was replaced by another file during the scan");
    }
    if (static_cast<uint64_t>(st.st_size) != job.size) {
      return failedPrecondition("context file " + quotePath(job.path) + " changed size from " +
                                std::to_string(job.size) + " to " + std::to_string(st.st_size) +
                                " bytes during the scan");
    }
    *out = std::move(fd).value();
    return Status::ok();
  }

  Status hashOne(HashJob& job) {
    UniqueFd fd;
    LF_RETURN_IF_ERROR(openChecked(job, &fd));
    // Advice only: a failure changes nothing but speed.
    (void)posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    LF_CHECK(EVP_DigestInit_ex2(ctx_.get(), batch_->md, nullptr) == 1, "EVP_DigestInit_ex2");
    uint64_t total = 0;
    while (true) {
      ssize_t n = ::read(fd.get(), buffer_.get(), kBufferBytes);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return errnoStatus(errno, "context file " + quotePath(job.path) + ": read");
      }
      if (n == 0) {
        break;
      }
      total += static_cast<uint64_t>(n);
      if (total > job.size) {
        break;  // grew while being read; reported below
      }
      LF_CHECK(EVP_DigestUpdate(ctx_.get(), buffer_.get(), static_cast<size_t>(n)) == 1,
               "EVP_DigestUpdate");
    }
    if (total != job.size) {
      return failedPrecondition("context file " + quotePath(job.path) +
                                " changed size while being read (expected " +
                                std::to_string(job.size) + " bytes, read " +
                                (total > job.size ? "more" : std::to_string(total)) + ")");
    }
    unsigned int len = 0;
    LF_CHECK(EVP_DigestFinal_ex(ctx_.get(), job.sha256.data(), &len) == 1 && len == 32,
             "EVP_DigestFinal_ex");
    return Status::ok();
  }

  Batch* batch_;
  std::unique_ptr<uint8_t, FreeDeleter> buffer_;
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx_;
};

}  // namespace

Status hashFiles(int root_fd, std::span<HashJob> jobs, unsigned threads) {
  if (jobs.empty()) {
    return Status::ok();
  }
  // Fetch the implementation once: EVP_sha256() in an init call would look it up every file.
  std::unique_ptr<EVP_MD, MdDeleter> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  if (!md) {
    return internalError("OpenSSL: SHA256 is not available");
  }
  Batch batch;
  batch.root_fd = root_fd;
  batch.jobs = jobs;
  batch.md = md.get();
  batch.order.resize(jobs.size());
  std::iota(batch.order.begin(), batch.order.end(), 0u);
  std::stable_sort(batch.order.begin(), batch.order.end(),
                   [&jobs](uint32_t a, uint32_t b) { return jobs[a].size > jobs[b].size; });

  if (threads == 0) {
    threads = std::max(1u, std::thread::hardware_concurrency());
  }
  threads = static_cast<unsigned>(std::min<size_t>(threads, jobs.size()));
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    workers.push_back(std::make_unique<Worker>(&batch));
  }
  // The calling thread is a worker too: one thread fewer to start.
  for (unsigned t = 1; t < threads; ++t) {
    try {
      pool.emplace_back([w = workers[t].get()] { w->run(); });
    } catch (const std::system_error&) {
      break;  // no thread to be had: the threads already running share the work
    }
  }
  workers[0]->run();
  for (std::thread& th : pool) {
    th.join();
  }
  if (batch.failed.load()) {
    return batch.error;
  }
  return Status::ok();
}

}  // namespace lf::context
