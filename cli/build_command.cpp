// `layerfarm build [-t REF]... [-f Dockerfile] [--build-arg K=V]... [--target S] [--no-cache]
//  [--push | --output type=oci|docker,dest=PATH] [--platform P] [--progress auto|tty|plain]
//  [--server URL] [-q] CONTEXT`
//
// Builds on the farm: scans CONTEXT (honouring .dockerignore; a stat cache spares re-reading
// unchanged files), sends the coordinator the context's manifest and only the files it lacks
// (cli/context_upload.h), submits the build naming the manifest's digest, and renders its event
// stream like BuildKit's plain progress. Prints the image's manifest digest last (with -q, only
// that). Exit status: 0 built, 1 failed (the failing step's last output lines and error are
// printed), 130 cancelled by Ctrl-C (which asks the coordinator to cancel the build first), 2 usage
// error.

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
#include "cli/context_upload.h"
#include "cli/coordinator_commands.h"
#include "common/context/context_snapshot.h"
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
  for (const Status* s : {&args.status(), &dockerfile.status(), &client.status()}) {
    if (!s->isOk()) {
      return reportError(*io.err, *s);
    }
  }
  ContextUploadOptions upload;
  upload.dockerfile = *dockerfile;
  upload.quiet = opts.quiet;
  auto context = uploadContext(**client, opts.context, upload, *io.err);
  if (!context.isOk()) {
    return reportError(*io.err, context.status());
  }
  auto build =
      (*client)->postJson("/v1/builds", buildRequest(opts, context->id, *dockerfile, *args));
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
