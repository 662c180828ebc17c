// `layerfarm build` against a tiny fake coordinator: a thread answering the API calls the CLI
// makes (HEAD context, POST manifest, PUT files, POST build, GET events, GET export) on a loopback
// port, recording every request. The fake checks the context upload as the contract says
// (docs/http-api.md "Contexts"): the manifest parses, the PUT tar holds only "sha256:<hex>"
// regular files whose bytes hash to their names.

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/app.h"
#include "common/context/context_manifest.h"
#include "common/digest/digest.h"
#include "tests/support/temp_dir.h"

namespace lf::cli {
namespace {

using lf::testing::TempDir;

struct Request {
  std::string method;
  std::string target;
  std::string content_type;
  std::string body;
};

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // When set, the server sends `body`, calls `between`, then sends `rest` (one Content-Length
  // covers both): a stream whose first events the client must render before the rest arrives.
  std::function<void()> between;
  std::string rest;
};

// One request per connection (the CLI sends Connection: close), answered by `handler`.
class FakeServer {
 public:
  explicit FakeServer(std::function<Reply(const Request&)> handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    for (auto& t : connections_) t.join();
    ::close(fd_);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Request> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  int count(const std::string& method) {
    int n = 0;
    for (const auto& r : requests()) n += r.method == method ? 1 : 0;
    return n;
  }
  int count(const std::string& method, const std::string& target_prefix) {
    int n = 0;
    for (const auto& r : requests()) {
      n += r.method == method && r.target.rfind(target_prefix, 0) == 0 ? 1 : 0;
    }
    return n;
  }

 private:
  void serve() {
    while (true) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;  // shut down
      // A thread per connection: a cancel must get through while the event stream waits.
      connections_.emplace_back([this, c] {
        handle(c);
        ::close(c);
      });
    }
  }

  void handle(int c) {
    std::string data;
    char buf[65536];
    size_t head_end;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) return;
      data.append(buf, static_cast<size_t>(n));
    }
    Request req;
    std::istringstream head(data.substr(0, head_end));
    head >> req.method >> req.target;
    size_t length = 0;
    std::string line;
    while (std::getline(head, line)) {
      for (auto& ch : line) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (line.rfind("content-length:", 0) == 0) length = std::stoul(line.substr(15));
      if (line.rfind("content-type: ", 0) == 0) {
        req.content_type = line.substr(14);
        if (!req.content_type.empty() && req.content_type.back() == '\r') {
          req.content_type.pop_back();
        }
      }
    }
    req.body = data.substr(head_end + 4);
    while (req.body.size() < length) {
      ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) return;
      req.body.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard lock(mu_);
      requests_.push_back(req);
    }
    Reply reply = handler_(req);
    std::string out =
        "HTTP/1.1 " + std::to_string(reply.status) + " X\r\nContent-Type: " + reply.content_type +
        "\r\nContent-Length: " + std::to_string(reply.body.size() + reply.rest.size()) +
        "\r\nConnection: close\r\n\r\n";
    if (req.method != "HEAD") out += reply.body;
    if (!writeAll(c, out)) return;
    if (reply.between) {
      reply.between();
      writeAll(c, reply.rest);
    }
  }

  static bool writeAll(int c, const std::string& out) {
    for (size_t off = 0; off < out.size();) {
      ssize_t n = ::write(c, out.data() + off, out.size() - off);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  std::function<Reply(const Request&)> handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::thread> connections_;  // only touched by thread_ until the destructor joins it
  std::mutex mu_;
  std::vector<Request> requests_;
};

const char* kDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

std::string successEvents() {
  return std::string(
             R"({"seq":0,"type":"build","state":"running","failure_reason":"","time_ms":1000})"
             "\n"
             R"({"seq":1,"type":"plan","time_ms":1000,"steps":[{"index":0,"stage":"s","stage_step":1,"stage_steps":2,"instruction":"FROM busybox","kind":"FROM"},{"index":1,"stage":"s","stage_step":2,"stage_steps":2,"instruction":"RUN echo hi","kind":"RUN"}]})"
             "\n"
             R"({"seq":2,"type":"step","index":0,"state":"cached","cached":true,"time_ms":1001})"
             "\n"
             R"({"seq":3,"type":"step","index":1,"state":"running","worker":"w1","attempt":1,"time_ms":1100})"
             "\n"
             R"({"seq":4,"type":"log","index":1,"stream":"stdout","line":"hi","ts_ns":1150000000,"time_ms":1150})"
             "\n"
             R"({"seq":5,"type":"step","index":1,"state":"done","worker":"w1","duration_ms":300,"time_ms":1400})"
             "\n"
             R"({"seq":6,"type":"result","manifest_digest":")") +
         kDigest +
         R"(","cached_steps":1,"total_steps":2,"pushed":[],"time_ms":1500})"
         "\n"
         R"({"seq":7,"type":"build","state":"succeeded","failure_reason":"","time_ms":1500})"
         "\n";
}

std::string failureEvents() {
  return R"({"seq":0,"type":"plan","time_ms":1000,"steps":[{"index":0,"stage":"s","stage_step":1,"stage_steps":1,"instruction":"RUN false","kind":"RUN"}]})"
         "\n"
         R"({"seq":1,"type":"step","index":0,"state":"running","worker":"w1","attempt":1,"time_ms":1100})"
         "\n"
         R"({"seq":2,"type":"log","index":0,"stream":"stderr","line":"something broke","ts_ns":1200000000,"time_ms":1200})"
         "\n"
         R"({"seq":3,"type":"step","index":0,"state":"failed","worker":"w1","error":"exit code 1","time_ms":1300})"
         "\n"
         R"({"seq":4,"type":"build","state":"failed","failure_reason":"step 1 failed","time_ms":1300})"
         "\n";
}

std::string runningEvents() {
  return R"({"seq":0,"type":"plan","time_ms":1000,"steps":[{"index":0,"stage":"s","stage_step":1,"stage_steps":1,"instruction":"RUN sleep 1000","kind":"RUN"}]})"
         "\n"
         R"({"seq":1,"type":"step","index":0,"state":"running","worker":"w1","attempt":1,"time_ms":1100})"
         "\n";
}

std::string cancelledEvents() {
  return R"({"seq":2,"type":"step","index":0,"state":"cancelled","time_ms":1300})"
         "\n"
         R"({"seq":3,"type":"build","state":"cancelled","failure_reason":"cancelled","time_ms":1300})"
         "\n";
}

// The CLI's stdout in the Ctrl-C test: lets the fake server wait until a line was flushed.
struct WatchedBuf : std::stringbuf {
  std::mutex mu;
  std::condition_variable cv;
  std::string flushed;

  int sync() override {
    std::lock_guard lock(mu);
    flushed = str();
    cv.notify_all();
    return 0;
  }
  bool waitFor(const std::string& needle, std::chrono::seconds timeout) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return flushed.find(needle) != std::string::npos; });
  }
};

Reply jsonReply(int status, std::string body) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// The fake coordinator's state: which contexts it holds, and the events of the next build.
struct Farm {
  std::mutex mu;
  std::condition_variable cancelled_cv;
  bool cancelled = false;
  // The events request streams a running step, waits until `live_output` shows it, sends SIGINT
  // and finishes the stream once the cancel arrived.
  bool interrupt_on_events = false;
  struct WatchedBuf* live_output = nullptr;
  std::atomic<bool> seen_live{false};
  std::string events = successEvents();
  // The context store: file blobs, POSTed manifests (id -> file digests), ready contexts.
  std::set<std::string> blobs;
  std::map<std::string, std::vector<std::string>> manifests;
  std::set<std::string> ready;
  std::vector<std::vector<std::string>> puts;  // the entry names of each PUT .../files tar
  std::string upload_error;                    // the first contract violation seen
  std::function<void()> on_post;               // runs before the POST /v1/contexts answer
  bool old_coordinator = false;                // no POST /v1/contexts route

  Reply contextAnswer(const std::string& id, int status) {
    nlohmann::json missing = nlohmann::json::array();
    for (const auto& d : manifests[id]) {
      if (!blobs.count(d)) missing.push_back(d);
    }
    if (missing.empty()) ready.insert(id);
    nlohmann::json body = {{"digest", id}, {"missing", missing}};
    return jsonReply(status, body.dump());
  }

  Reply postManifest(const Request& r) {
    if (r.content_type != context::kContextManifestMediaType) {
      upload_error = "POST /v1/contexts with Content-Type " + r.content_type;
      return jsonReply(415, "{}");
    }
    auto manifest = context::parseContextManifest(r.body);
    if (!manifest.isOk()) {
      upload_error = manifest.status().toString();
      return jsonReply(400, "{}");
    }
    std::string id = Digest::sha256Of(r.body).toString();
    for (const auto& d : context::manifestFileDigests(*manifest)) {
      manifests[id].push_back(d.toString());
    }
    if (on_post) on_post();
    return contextAnswer(id, 201);
  }

  Reply putFiles(const std::string& id, const Request& r) {
    if (!manifests.count(id)) return jsonReply(404, "{}");
    archive* a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_open_memory(a, r.body.data(), r.body.size());
    archive_entry* e = nullptr;
    std::vector<std::string> names;
    int rc;
    while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
      std::string name = archive_entry_pathname(e), data;
      char buf[65536];
      la_ssize_t n;
      while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) data.append(buf, n);
      if (archive_entry_filetype(e) != AE_IFREG || Digest::sha256Of(data).toString() != name) {
        upload_error = "PUT entry " + name + " does not hash to its name";
      }
      names.push_back(name);
      blobs.insert(name);
    }
    if (rc != ARCHIVE_EOF) upload_error = std::string("PUT tar: ") + archive_error_string(a);
    archive_read_free(a);
    puts.push_back(names);
    return contextAnswer(id, 201);
  }

  Reply handle(const Request& r) {
    std::unique_lock lock(mu);
    const std::string prefix = "/v1/contexts/";
    if (r.method == "POST" && r.target == "/v1/contexts" && !old_coordinator) {
      return postManifest(r);
    }
    if (r.target.rfind(prefix, 0) == 0) {
      std::string rest = r.target.substr(prefix.size());
      if (r.method == "HEAD") return jsonReply(ready.count(rest) ? 200 : 404, "");
      const std::string files = "/files";
      if (r.method == "PUT" && rest.ends_with(files)) {
        return putFiles(rest.substr(0, rest.size() - files.size()), r);
      }
    }
    if (r.method == "POST" && r.target == "/v1/builds") {
      auto req = nlohmann::json::parse(r.body);
      if (!req["tags"].empty() && req["tags"][0] == "UPPER/app") {
        return Reply{
            400, "application/json",
            R"({"error":{"code":"invalid_argument","message":"tags[0]: \"UPPER/app\": repository names must be lowercase"}})"};
      }
      return Reply{202, "application/json", R"({"id":"b-1","state":"queued"})"};
    }
    if (r.method == "GET" && r.target.rfind("/v1/builds/b-1/events", 0) == 0) {
      if (interrupt_on_events) {
        Reply reply{200, "application/x-ndjson", runningEvents()};
        reply.between = [this] {
          // The user sees the step running, then presses Ctrl-C.
          seen_live = live_output->waitFor("#1 running on worker w1", std::chrono::seconds(30));
          ::kill(::getpid(), SIGINT);
          std::unique_lock wait_lock(mu);
          cancelled_cv.wait_for(wait_lock, std::chrono::seconds(30), [&] { return cancelled; });
        };
        reply.rest = cancelledEvents();
        return reply;
      }
      return Reply{200, "application/x-ndjson", events};
    }
    if (r.method == "POST" && r.target == "/v1/builds/b-1/cancel") {
      cancelled = true;
      cancelled_cv.notify_all();
      return Reply{202, "application/json", R"({"id":"b-1","state":"running"})"};
    }
    if (r.method == "GET" && r.target == "/v1/builds/b-1/export") {
      return Reply{200, "application/x-tar", "TARBYTES"};
    }
    return Reply{404, "application/json", R"({"error":{"code":"not_found","message":"no route"}})"};
  }
};

// Hash caches go to a temp dir, not the user's ~/.cache.
class CacheDirEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    ::setenv("LAYERFARM_CACHE_DIR", dir_->path().c_str(), 1);
  }
  void TearDown() override { dir_.reset(); }

 private:
  std::unique_ptr<TempDir> dir_;
};
[[maybe_unused]] ::testing::Environment* const kCacheDir =
    ::testing::AddGlobalTestEnvironment(new CacheDirEnvironment);

struct CliRun {
  int code;
  std::string out;
  std::string err;
};

CliRun runCliWith(std::vector<std::string> args) {
  std::vector<const char*> argv{"layerfarm"};
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  int code = runCli(static_cast<int>(argv.size()), argv.data(), Io{&out, &err});
  return CliRun{code, out.str(), err.str()};
}

TEST(BuildCommand, UploadsTheContextOnceAndPrintsTheDigest) {
  Farm farm;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\nRUN echo hi\n");
  ctx.write("src/a.txt", "hello");

  CliRun first =
      runCliWith({"build", "--server", server.url(), "--progress", "plain", "-t",
                  "127.0.0.1:5000/team/app:1", "--build-arg", "A=1", ctx.path().string()});
  EXPECT_EQ(first.code, 0) << first.err;
  EXPECT_EQ(server.count("PUT"), 1);
  EXPECT_EQ(farm.upload_error, "");
  ASSERT_EQ(farm.puts.size(), 1u);
  EXPECT_EQ(farm.puts[0].size(), 2u) << "the Dockerfile and src/a.txt";
  EXPECT_NE(first.err.find("context: 30B in 2 files, 2 files (30B) sent ("), std::string::npos)
      << first.err;
  EXPECT_NE(first.err.find("#1 CACHED\n"), std::string::npos) << first.err;
  EXPECT_NE(first.err.find("#2 running on worker w1\n#2 0.050 hi\n#2 DONE 0.3s\n"),
            std::string::npos)
      << first.err;
  EXPECT_NE(first.err.find("built in 0.5s: 2 steps, 1 cached, 1 run on 1 worker\n"),
            std::string::npos)
      << first.err;
  // Progress goes to stderr, as docker build's does; stdout holds only the digest.
  EXPECT_EQ(first.out, std::string(kDigest) + "\n") << first.out;

  // The build request carries what the flags said.
  nlohmann::json posted;
  for (const auto& r : server.requests()) {
    if (r.method == "POST") posted = nlohmann::json::parse(r.body);
  }
  EXPECT_EQ(posted["tags"], nlohmann::json::array({"127.0.0.1:5000/team/app:1"}));
  EXPECT_EQ(posted["build_args"]["A"], "1");
  EXPECT_EQ(posted["dockerfile"], "Dockerfile");
  // The context is named by its manifest, the body of POST /v1/contexts.
  std::string manifest;
  for (const auto& r : server.requests()) {
    if (r.method == "POST" && r.target == "/v1/contexts") manifest = r.body;
  }
  EXPECT_EQ(posted["context"], Digest::sha256Of(manifest).toString());

  CliRun second = runCliWith({"build", "--server", server.url(), "-q", ctx.path().string()});
  EXPECT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(server.count("PUT"), 1) << "the second build must not upload the context again";
  EXPECT_EQ(server.count("POST", "/v1/contexts"), 1);
  EXPECT_EQ(server.count("HEAD"), 2);
  EXPECT_EQ(second.out, std::string(kDigest) + "\n");
}

TEST(BuildCommand, AnEditSendsOnlyTheChangedFile) {
  Farm farm;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\nCOPY data/ /data/\n");
  ctx.write("data/blob.bin", std::string(100000, 'b'));
  ctx.write("data/version.txt", "version 1\n");
  auto build = [&] { return runCliWith({"build", "--server", server.url(), ctx.path().string()}); };
  CliRun first = build();
  EXPECT_EQ(first.code, 0) << first.err;
  ASSERT_EQ(farm.puts.size(), 1u);
  EXPECT_EQ(farm.puts[0].size(), 3u);
  // The CLI keeps a hash cache for the context in $LAYERFARM_CACHE_DIR/hashes.
  std::string cache_dir = std::string(std::getenv("LAYERFARM_CACHE_DIR")) + "/hashes";
  EXPECT_FALSE(std::filesystem::is_empty(cache_dir));

  ctx.write("data/version.txt", "version 2\n");
  CliRun edited = build();
  EXPECT_EQ(edited.code, 0) << edited.err;
  ASSERT_EQ(farm.puts.size(), 2u);
  EXPECT_EQ(farm.puts[1], std::vector<std::string>{Digest::sha256Of("version 2\n").toString()});
  EXPECT_NE(edited.err.find("in 3 files, 1 file (10B) sent ("), std::string::npos) << edited.err;
  EXPECT_EQ(farm.upload_error, "");

  CliRun again = build();
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(farm.puts.size(), 2u);
  EXPECT_NE(again.err.find("in 3 files, nothing to send ("), std::string::npos) << again.err;
  EXPECT_EQ(server.count("POST", "/v1/contexts"), 2) << "a ready context is only HEADed";

  // The same files elsewhere (an older Dockerfile mtime: another manifest): the manifest is sent,
  // no file.
  TempDir copy;
  copy.write("Dockerfile", "FROM busybox\nCOPY data/ /data/\n");
  copy.write("data/blob.bin", std::string(100000, 'b'));
  copy.write("data/version.txt", "version 2\n");
  struct timespec old_times[2] = {{1'600'000'000, 0}, {1'600'000'000, 0}};
  ::utimensat(AT_FDCWD, (copy / "Dockerfile").c_str(), old_times, 0);
  CliRun elsewhere = runCliWith({"build", "--server", server.url(), copy.path().string()});
  EXPECT_EQ(elsewhere.code, 0) << elsewhere.err;
  EXPECT_EQ(server.count("POST", "/v1/contexts"), 3);
  EXPECT_EQ(farm.puts.size(), 2u);
  EXPECT_NE(elsewhere.err.find("in 3 files, nothing to send ("), std::string::npos)
      << elsewhere.err;
  EXPECT_EQ(farm.ready.size(), 3u);
}

TEST(BuildCommand, AFileChangedDuringTheUploadFailsNamingIt) {
  Farm farm;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\n");
  ctx.write("data/x", "1234");
  farm.on_post = [&] { ctx.write("data/x", "5678"); };
  CliRun run = runCliWith({"build", "--server", server.url(), ctx.path().string()});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("context file \"data/x\" changed while the context was being sent; run "
                         "the build again"),
            std::string::npos)
      << run.err;
  EXPECT_EQ(server.count("POST", "/v1/builds"), 0);
  EXPECT_TRUE(farm.ready.empty());
}

TEST(BuildCommand, AnOldCoordinatorGetsAClearError) {
  Farm farm;
  farm.old_coordinator = true;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\n");
  CliRun run = runCliWith({"build", "--server", server.url(), ctx.path().string()});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("the coordinator at " + server.url() +
                         " predates the incremental context upload (POST /v1/contexts answered "
                         "404); upgrade it"),
            std::string::npos)
      << run.err;
}

TEST(BuildCommand, FailedBuildExitsOneWithTheStepOutput) {
  Farm farm;
  farm.events = failureEvents();
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\nRUN false\n");
  CliRun run = runCliWith({"build", "--server", server.url(), ctx.path().string()});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find(" > [s 1/1] RUN false:\n0.100 something broke\n"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("error: step #1 [s 1/1] RUN false: exit code 1"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("layerfarm: build b-1 failed"), std::string::npos) << run.err;
}

TEST(BuildCommand, CtrlCCancelsTheBuildAndExits130) {
  Farm farm;
  WatchedBuf out_buf;
  farm.interrupt_on_events = true;
  farm.live_output = &out_buf;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\nRUN sleep 1000\n");
  std::ostream err(&out_buf);  // progress (live) goes to stderr
  std::ostringstream out;
  std::string dir = ctx.path().string();
  const char* argv[] = {"layerfarm", "build", "--server", nullptr, dir.c_str()};
  std::string url = server.url();
  argv[3] = url.c_str();
  CliRun run;
  run.code = runCli(5, argv, Io{&out, &err});
  run.out = out.str();
  run.err = out_buf.str();
  EXPECT_TRUE(farm.seen_live) << "the running step was not printed while the stream was open";
  EXPECT_EQ(run.code, 130) << run.err;
  EXPECT_EQ(server.count("POST", "/v1/builds"), 2);  // the build, then its cancel
  EXPECT_NE(run.err.find("cancelling build b-1"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("#1 CANCELED"), std::string::npos) << run.err;
  // The handler is gone again: SIGINT's previous disposition is back.
  struct sigaction now {};
  ::sigaction(SIGINT, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
}

TEST(BuildCommand, ServerErrorsPrintTheServersMessage) {
  Farm farm;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\n");
  CliRun run =
      runCliWith({"build", "--server", server.url(), "-t", "UPPER/app", ctx.path().string()});
  EXPECT_EQ(run.code, 1);
  EXPECT_TRUE(run.err.ends_with(
      "\nlayerfarm: server: tags[0]: \"UPPER/app\": repository names must be lowercase\n"))
      << run.err;
}

TEST(BuildCommand, OutputDownloadsTheExport) {
  Farm farm;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\n");
  std::string dest = (ctx.path() / "image.tar").string();
  CliRun run = runCliWith({"build", "--server", server.url(), "--output", "type=oci,dest=" + dest,
                           ctx.path().string()});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(lf::testing::readFile(dest), "TARBYTES");
  nlohmann::json posted;
  for (const auto& r : server.requests()) {
    if (r.method == "POST") posted = nlohmann::json::parse(r.body);
  }
  EXPECT_EQ(posted["output"], "type=oci");
}

TEST(BuildCommand, DockerfilePathRelativeToTheContextOrAbsolute) {
  Farm farm;
  FakeServer server([&](const Request& r) { return farm.handle(r); });
  TempDir ctx;
  ctx.write("sub/app.Dockerfile", "FROM busybox\n");
  for (const std::string& f :
       {std::string("sub/app.Dockerfile"), (ctx.path() / "sub/app.Dockerfile").string()}) {
    CliRun run =
        runCliWith({"build", "--server", server.url(), "-q", "-f", f, ctx.path().string()});
    EXPECT_EQ(run.code, 0) << f << ": " << run.err;
    nlohmann::json posted;
    for (const auto& r : server.requests()) {
      if (r.method == "POST") posted = nlohmann::json::parse(r.body);
    }
    EXPECT_EQ(posted["dockerfile"], "sub/app.Dockerfile") << f;
  }
}

TEST(BuildCommand, UsageErrorsAreCaughtBeforeAnyRequest) {
  TempDir ctx;
  ctx.write("Dockerfile", "FROM busybox\n");
  CliRun both = runCliWith({"build", "--server", "http://127.0.0.1:1", "--push", "-t", "a/b",
                            "--output", "type=oci,dest=x", ctx.path().string()});
  EXPECT_EQ(both.code, 1);
  EXPECT_NE(both.err.find("--push and --output exclude each other"), std::string::npos);
  CliRun missing = runCliWith(
      {"build", "--server", "http://127.0.0.1:1", "-f", "Other.Dockerfile", ctx.path().string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("Dockerfile \"Other.Dockerfile\" is not in the context"),
            std::string::npos)
      << missing.err;
}

TEST(BuildCommand, ConnectionRefusedNamesTheServerAndHints) {
  // A port that was just free: bind, read it, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  CliRun run = runCliWith({"workers", "--server", url});
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.err.find("cannot reach the coordinator at " + url), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("deploy/local"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace lf::cli
