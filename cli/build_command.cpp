// `layerfarm build [-t REF]... [-f Dockerfile] [--build-arg K=V]... [--target S] [--no-cache]
//  [--push | --output type=oci|docker,dest=PATH] [--platform P] [--progress auto|tty|plain]
//  [--server URL] [-q] CONTEXT`
//
// Builds on the farm: scans CONTEXT (honouring .dockerignore), tars it deterministically into a
// scratch blob store (common/context/context_tar.h), uploads it only when the coordinator does
// not have that digest yet, submits the build, and renders its event stream like BuildKit's
// plain progress. Prints the image's manifest digest last (with -q, only that). Exit status: 0
// built, 1 failed (the failing step's last output lines and error are printed), 130 cancelled
// by Ctrl-C (which asks the coordinator to cancel the build first), 2 usage error.

#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cli/app.h"
#include "cli/cli_util.h"
#include "cli/coordinator_commands.h"
#include "common/blob/directory_blob_store.h"
#include "common/context/context_scanner.h"
#include "common/context/context_tar.h"
#include "common/digest/digest.h"

namespace lf::cli {
namespace {

namespace fs = std::filesystem;

struct BuildOptions {
  std::vector<std::string> tags;
  std::string file;
  std::vector<std::string> build_args;
  std::string target;
  bool no_cache = false;
  bool push = false;
  std::string output;
  std::string platform;
  std::string progress = "auto";
  std::string server;
  bool quiet = false;
  std::string context;
};

// A private scratch directory for the context tar, removed at scope exit.
class Scratch {
 public:
  static Result<std::unique_ptr<Scratch>> create() {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    std::string tmpl = ((ec ? fs::path("/tmp") : base) / "layerfarm-build-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return errnoStatus(errno, "create scratch directory " + tmpl);
    }
    return std::make_unique<Scratch>(fs::path(tmpl));
  }
  explicit Scratch(fs::path path) : path_(std::move(path)) {}
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort: a leftover scratch dir only wastes space
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The Dockerfile's path inside the context: -f is relative to the context; a path that names no
// file there but one relative to the working directory (docker build's reading) is taken that
// way; either way the Dockerfile must be inside the context (the API names it by its path there).
Result<std::string> dockerfileInContext(const BuildOptions& opts) {
  std::string file = opts.file.empty() ? "Dockerfile" : opts.file;
  std::error_code exists_ec;
  if (!fs::path(file).is_absolute() &&
      !fs::exists(fs::symlink_status(fs::path(opts.context) / file, exists_ec)) &&
      fs::exists(fs::symlink_status(file, exists_ec))) {
    file = fs::absolute(file, exists_ec).string();  // docker build's reading: relative to cwd
  }
  if (fs::path(file).is_absolute()) {
    std::error_code ec;
    fs::path ctx = fs::weakly_canonical(opts.context, ec);
    fs::path abs = fs::weakly_canonical(file, ec);
    fs::path rel = abs.lexically_relative(ctx);
    if (ec || rel.empty() || *rel.begin() == "..") {
      return invalidArgument("-f " + file + ": the Dockerfile must be inside the context " +
                             opts.context);
    }
    file = rel.string();
  }
  auto norm = context::normalizeContextPath(file);
  if (!norm.isOk() || norm->empty()) {
    return invalidArgument("-f " + file + ": the Dockerfile must be a file inside the context " +
                           opts.context + " (the path is relative to it)");
  }
  return *norm;
}

nlohmann::json buildRequest(const BuildOptions& opts, const Digest& context,
                            const std::string& dockerfile,
                            const std::map<std::string, std::string>& args) {
  nlohmann::json req = {{"context", context.toString()},
                        {"dockerfile", dockerfile},
                        {"tags", opts.tags},
                        {"build_args", args},
                        {"target", opts.target},
                        {"no_cache", opts.no_cache},
                        {"push", opts.push},
                        {"output", ""},
                        {"platform", opts.platform}};
  if (!opts.output.empty()) {
    auto out = parseBuildOutput(opts.output);
    req["output"] = "type=" + out->type;  // validated before the upload
  }
  return req;
}

// Names the context by the digest of its tar, and uploads it unless the coordinator has it. The
// first pass only hashes (a cached rebuild writes nothing to disk: on VMs page faults and
// page-cache writes of a large tar cost more than reading and hashing it again); only a context
// the coordinator lacks is written again, into `scratch`, and sent.
Result<Digest> uploadContext(const ApiClient& client, const BuildOptions& opts,
                             const std::string& dockerfile, const fs::path& scratch, Io io) {
  context::ScanOptions scan;
  scan.dockerfile = dockerfile;
  LF_ASSIGN_OR_RETURN(context::ContextSnapshot snap, context::scanContext(opts.context, scan));
  bool has_dockerfile = snap.find(dockerfile) != nullptr;
  for (const auto& e : snap.builderOnly()) {
    has_dockerfile = has_dockerfile || e.path == dockerfile;
  }
  if (!has_dockerfile) {
    return notFound("Dockerfile \"" + dockerfile + "\" is not in the context " + opts.context);
  }
  for (const auto& skipped : snap.skipped()) {
    *io.err << "layerfarm: not sending " << skipped.path << ": " << skipped.reason << "\n";
  }
  Sha256 hash;
  context::ContextTarInfo tar;
  LF_RETURN_IF_ERROR(context::writeContextTar(opts.context, snap, [&](std::string_view chunk) {
    hash.update(chunk);
    tar.size += chunk.size();
    return Status::ok();
  }));
  tar.digest = hash.finish();
  std::string target = "/v1/contexts/" + tar.digest.toString();
  LF_ASSIGN_OR_RETURN(ApiResponse head, client.send("HEAD", target));
  bool present = head.status == 200;
  if (!present && head.status != 404) {
    return statusFromResponse(head);
  }
  if (!present) {
    LF_ASSIGN_OR_RETURN(auto store,
                        blob::DirectoryBlobStore::open(scratch / "store", {.fsync = false}));
    LF_ASSIGN_OR_RETURN(context::ContextTarInfo written,
                        context::writeContextTarToStore(opts.context, snap, *store));
    if (written.digest != tar.digest) {
      return failedPrecondition("the context changed while it was being sent; run the build again");
    }
    LF_ASSIGN_OR_RETURN(auto reader, store->openReader(tar.digest));
    LF_ASSIGN_OR_RETURN(
        ApiResponse put,
        client.sendStream(
            "PUT", target, tar.size,
            [&](void* buf, size_t size) { return reader->read(buf, size); }, "application/x-tar"));
    if (put.status != 200 && put.status != 201) {
      return statusFromResponse(put).withContext("uploading the context");
    }
  }
  if (!opts.quiet) {
    *io.err << "context: " << humanSize(tar.size)
            << (present ? ", already on the server" : ", uploaded") << " (" << tar.digest.shortHex()
            << ")" << std::endl;  // before the stream starts: a slow upload shows why
  }
  return tar.digest;
}

// GET /v1/builds/{id}/export into dest, atomically.
Status fetchExport(const ApiClient& client, const std::string& id, const std::string& dest) {
  std::string tmp = dest + ".layerfarm-tmp";
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(tmp.c_str(), "wb"), &std::fclose);
  if (!f) {
    return errnoStatus(errno, "--output: create " + tmp);
  }
  Status s = client.getStream("/v1/builds/" + id + "/export", [&](std::string_view chunk) {
    if (std::fwrite(chunk.data(), 1, chunk.size(), f.get()) != chunk.size()) {
      return errnoStatus(errno, "--output: write " + tmp);
    }
    return Status::ok();
  });
  if (s.isOk() && std::fflush(f.get()) != 0) {
    s = errnoStatus(errno, "--output: write " + tmp);
  }
  f.reset();
  if (s.isOk() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
    s = errnoStatus(errno, "--output: rename " + tmp + " to " + dest);
  }
  if (!s.isOk()) {
    ::unlink(tmp.c_str());
    return s.withContext("exporting the image");
  }
  return Status::ok();
}

RendererOptions rendererOptions(const BuildOptions& opts, Io io) {
  RendererOptions r;
  r.quiet = opts.quiet;
  bool tty = io.err == &std::cerr && ::isatty(STDERR_FILENO) == 1;
  r.color = opts.progress == "tty" || (opts.progress == "auto" && tty);
  return r;
}

// After the final event: prints the outcome and returns the exit status.
int finishBuild(const ApiClient& client, const BuildOptions& opts, const std::string& id,
                const ProgressRenderer& renderer, bool interrupted, Io io) {
  if (renderer.state() != "succeeded") {
    *io.err << renderer.failureReport();
    if (interrupted && renderer.state() == "cancelled") {
      *io.err << "layerfarm: build " << id << " cancelled\n";
      return 130;
    }
    *io.err << "layerfarm: build " << id << " " << renderer.state() << "\n";
    return 1;
  }
  std::string digest;
  if (renderer.result()) {
    digest = renderer.result()->value("manifest_digest", std::string());
  }
  if (!opts.quiet) {
    *io.err << renderer.summary() << "\n";
    if (renderer.result() && renderer.result()->contains("pushed") &&
        (*renderer.result())["pushed"].is_array()) {
      for (const auto& ref : (*renderer.result())["pushed"]) {
        *io.err << "pushed " << (ref.is_string() ? ref.get<std::string>() : ref.dump()) << "\n";
      }
    }
  }
  if (!opts.output.empty()) {
    auto out = parseBuildOutput(opts.output);
    Status s = fetchExport(client, id, out->dest);
    if (!s.isOk()) {
      return reportError(*io.err, s);
    }
    if (!opts.quiet) {
      *io.err << "exported " << out->type << " archive to " << out->dest << "\n";
    }
  }
  *io.out << digest << "\n";
  return 0;
}

int runBuild(const BuildOptions& opts, Io io) {
  if (opts.push && !opts.output.empty()) {
    return reportError(*io.err, invalidArgument("--push and --output exclude each other"));
  }
  if (opts.push && opts.tags.empty()) {
    return reportError(*io.err, invalidArgument("--push needs at least one -t REF"));
  }
  if (!opts.output.empty()) {
    auto out = parseBuildOutput(opts.output);
    if (!out.isOk()) {
      return reportError(*io.err, out.status());
    }
  }
  auto args = parseBuildArgs(opts.build_args, [](const std::string& key) {
    const char* v = std::getenv(key.c_str());
    return v == nullptr ? std::optional<std::string>() : std::optional<std::string>(v);
  });
  auto dockerfile = dockerfileInContext(opts);
  auto client = makeApiClient(opts.server);
  auto scratch = Scratch::create();
  for (const Status* s :
       {&args.status(), &dockerfile.status(), &client.status(), &scratch.status()}) {
    if (!s->isOk()) {
      return reportError(*io.err, *s);
    }
  }
  auto context = uploadContext(**client, opts, *dockerfile, (*scratch)->path(), io);
  if (!context.isOk()) {
    return reportError(*io.err, context.status());
  }
  auto build = (*client)->postJson("/v1/builds", buildRequest(opts, *context, *dockerfile, *args));
  if (!build.isOk()) {
    return reportError(*io.err, build.status());
  }
  std::string id = build->value("id", std::string());
  if (id.empty()) {
    return reportError(*io.err, dataLoss("the coordinator accepted the build without an id"));
  }
  if (!opts.quiet) {
    *io.err << "build " << id << " submitted to " << (*client)->server() << std::endl;
  }
  ProgressRenderer renderer(*io.err, rendererOptions(opts, io));
  const ApiClient& api = **client;
  InterruptWatcher watcher([&api, &id, io] {
    *io.err << "\nlayerfarm: cancelling build " << id << " (Ctrl-C again to quit at once)\n";
    auto s = api.send("POST", "/v1/builds/" + id + "/cancel");
    if (!s.isOk() || (s->status != 202 && s->status != 409)) {
      *io.err << "layerfarm: cancel: "
              << (s.isOk() ? statusFromResponse(*s).message() : s.status().message()) << "\n";
      std::_Exit(130);
    }
  });
  Status followed = followBuildEvents(api, id, renderer);
  if (!followed.isOk()) {
    return reportError(*io.err, followed.withContext("build " + id));
  }
  return finishBuild(api, opts, id, renderer, watcher.interrupted(), io);
}

}  // namespace

void registerBuildCommand(CLI::App& app, Io io, int* exit_code) {
  auto opts = std::make_shared<BuildOptions>();
  CLI::App* cmd = app.add_subcommand("build", "Build an image on the farm from a Dockerfile");
  cmd->add_option("CONTEXT", opts->context, "Build context directory")->required();
  cmd->add_option("-t,--tag", opts->tags, "Image reference REGISTRY/NAME[:TAG] (repeatable)");
  cmd->add_option("-f,--file", opts->file,
                  "Dockerfile path, relative to the context (default: Dockerfile)");
  cmd->add_option("--build-arg", opts->build_args, "Build argument KEY=VALUE (repeatable)");
  cmd->add_option("--target", opts->target, "Stage to build (default: the last)");
  cmd->add_flag("--no-cache", opts->no_cache, "Run every step, ignoring the layer cache");
  cmd->add_flag("--push", opts->push, "Push every tag after the build");
  cmd->add_option("--output", opts->output,
                  "type=oci,dest=PATH or type=docker,dest=PATH: download the image archive");
  cmd->add_option("--platform", opts->platform, "os/arch[/variant] (default: the farm's)");
  cmd->add_option("--progress", opts->progress, "auto, tty or plain")
      ->check(CLI::IsMember({"auto", "tty", "plain"}));
  cmd->add_option("--server", opts->server,
                  "Coordinator URL (default: $LAYERFARM_SERVER, else http://127.0.0.1:7070)");
  cmd->add_flag("-q,--quiet", opts->quiet, "Print only the image digest");
  cmd->callback([opts, io, exit_code] { *exit_code = runBuild(*opts, io); });
}

}  // namespace lf::cli
