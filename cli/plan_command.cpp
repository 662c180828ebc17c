// `layerfarm dockerfile plan`: what the farm would build, step by step, with cache keys.

#include <CLI/CLI.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "cli/app.h"
#include "common/context/context_scanner.h"
#include "common/dockerfile/parser.h"
#include "common/plan/build_plan.h"

namespace lf::cli {

namespace {

struct PlanArgs {
  std::string context_dir;
  std::string file;
  std::string target;
  std::vector<std::string> build_args;
  std::vector<std::string> bases;
  std::string platform;
  bool json = false;
};

Status splitAssignment(const std::string& text, const char* flag, std::string* k, std::string* v) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return invalidArgument(std::string(flag) + " " + text + ": expected NAME=VALUE");
  }
  *k = text.substr(0, eq);
  *v = text.substr(eq + 1);
  return Status::ok();
}

std::string keyText(const std::optional<Digest>& key) { return key ? key->toString() : "-"; }

nlohmann::json planToJson(const plan::BuildPlan& p, const context::ContextSnapshot& ctx) {
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& s : p.stages) {
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& st : s.steps) {
      steps.push_back({{"index", st.index},
                       {"instruction", st.keyword},
                       {"kind", plan::stepKindName(st.kind)},
                       {"layer", st.produces_layer},
                       {"created_by", st.created_by},
                       {"line", st.pos.line},
                       {"cache_key",
                        st.cache_key ? nlohmann::json(st.cache_key->toString()) : nlohmann::json()},
                       {"uses_stages", st.uses_stages},
                       {"uses_images", st.uses_images},
                       {"from_onbuild", st.from_onbuild}});
    }
    std::vector<int> deps(s.depends_on.begin(), s.depends_on.end());
    stages.push_back(
        {{"index", s.index},
         {"name", s.name},
         {"base", s.base_ref},
         {"base_stage", s.base_stage},
         {"platform", s.platform.toString()},
         {"line", s.pos.line},
         {"needed", s.needed},
         {"depends_on", deps},
         {"base_key", s.base_key ? nlohmann::json(s.base_key->toString()) : nlohmann::json()},
         {"steps", steps}});
  }
  return {{"target_stage", p.target_stage},
          {"stages", stages},
          {"steps", p.step_count},
          {"layer_steps", p.layer_step_count},
          {"unresolved_images", p.unresolved_images},
          {"unused_build_args", p.unused_build_args},
          {"warnings", p.warnings},
          {"context",
           {{"files", ctx.entries().size()},
            {"bytes", ctx.totalFileBytes()},
            {"digest", ctx.contextDigest().toString()}}}};
}

void printPlan(std::ostream& out, const plan::BuildPlan& p, const context::ContextSnapshot& ctx) {
  out << "context: " << ctx.entries().size() << " entries, " << ctx.totalFileBytes() << " bytes, "
      << ctx.contextDigest().toString() << "\n";
  for (const auto& s : p.stages) {
    out << "\nstage " << s.index;
    if (!s.name.empty()) out << " \"" << s.name << "\"";
    out << ": FROM " << s.base_ref << " (" << s.platform.toString() << ")";
    if (!s.depends_on.empty()) {
      out << " needs";
      for (int d : s.depends_on) out << " " << p.stages[d].displayName();
    }
    if (!s.needed) out << "  [skipped: not needed by the target]";
    if (s.index == p.target_stage) out << "  [target]";
    out << "\n  base key " << keyText(s.base_key) << "\n";
    int total = static_cast<int>(s.steps.size());
    for (const auto& st : s.steps) {
      out << "  [" << s.displayName() << " " << st.index << "/" << total << "] "
          << (st.produces_layer ? "layer " : "config") << " " << keyText(st.cache_key).substr(0, 19)
          << "  " << st.created_by << "\n";
    }
  }
  out << "\n" << p.step_count << " steps, " << p.layer_step_count << " produce layers\n";
  for (const auto& img : p.unresolved_images) {
    out << "unresolved: " << img << " has no digest; its stage has no cache keys (pass --base "
        << img << "=sha256:...)\n";
  }
  if (!p.unused_build_args.empty()) {
    out << "warning: build args not consumed by any ARG:";
    for (const auto& a : p.unused_build_args) out << " " << a;
    out << "\n";
  }
  for (const auto& w : p.warnings) out << "warning: " << w << "\n";
}

Status runPlan(const PlanArgs& a, Io io) {
  namespace fs = std::filesystem;
  fs::path ctx_dir(a.context_dir);
  fs::path df_path = a.file.empty() ? ctx_dir / "Dockerfile" : fs::path(a.file);
  std::ifstream in(df_path, std::ios::binary);
  if (!in) return notFound("cannot read Dockerfile " + df_path.string());
  std::stringstream text;
  text << in.rdbuf();
  LF_ASSIGN_OR_RETURN(auto df, dockerfile::parse(text.str(), df_path.filename().string()));

  context::ScanOptions scan;
  std::error_code ec;
  auto rel = fs::relative(fs::absolute(df_path), fs::absolute(ctx_dir), ec);
  scan.dockerfile = (!ec && !rel.empty() && *rel.begin() != "..") ? rel.generic_string() : "";
  LF_ASSIGN_OR_RETURN(auto ctx, context::scanContext(ctx_dir, scan));

  plan::PlanInput input;
  input.dockerfile = &df;
  input.context = &ctx;
  input.target = a.target;
  if (!a.platform.empty()) {
    LF_ASSIGN_OR_RETURN(input.target_platform, plan::Platform::parse(a.platform));
  }
  for (const auto& ba : a.build_args) {
    std::string k, v;
    LF_RETURN_IF_ERROR(splitAssignment(ba, "--build-arg", &k, &v));
    input.build_args[k] = v;
  }
  for (const auto& b : a.bases) {
    std::string ref, digest;
    LF_RETURN_IF_ERROR(splitAssignment(b, "--base", &ref, &digest));
    LF_ASSIGN_OR_RETURN(auto d, Digest::parse(digest));
    input.bases[ref] = plan::BaseImage{d, std::nullopt, 0};
  }
  LF_ASSIGN_OR_RETURN(auto p, plan::makePlan(input));
  if (a.json) {
    *io.out << planToJson(p, ctx).dump(2) << "\n";
  } else {
    printPlan(*io.out, p, ctx);
  }
  return Status::ok();
}

}  // namespace

void addPlanCommand(CLI::App& dockerfile_cmd, Io io, int* exit_code) {
  auto args = std::make_shared<PlanArgs>();
  auto* cmd = dockerfile_cmd.add_subcommand(
      "plan", "Print the stages and steps of a build, with each step's cache key");
  cmd->add_option("CONTEXT", args->context_dir, "Build context directory")->required();
  cmd->add_option("-f,--file", args->file, "Dockerfile (default: CONTEXT/Dockerfile)");
  cmd->add_option("--target", args->target, "Build only up to this stage");
  cmd->add_option("--build-arg", args->build_args, "Build argument NAME=VALUE (repeatable)");
  cmd->add_option("--base", args->bases,
                  "Pin a base image: IMAGE=sha256:<manifest digest> (repeatable)");
  cmd->add_option("--platform", args->platform, "Target platform, e.g. linux/arm64");
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->callback([args, io, exit_code] {
    Status s = runPlan(*args, io);
    if (!s.isOk()) {
      *io.err << "layerfarm: " << s.message() << "\n";
      *exit_code = 1;
    }
  });
}

}  // namespace lf::cli
