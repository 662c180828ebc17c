#pragma once

// Test fixtures for image assembly: a directory blob store, real layers written with
// layer::writeLayer from small trees, a synthetic base image in the store, and plans made with
// plan::makePlan from a Dockerfile and a context directory.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "common/blob/directory_blob_store.h"
#include "common/context/context_scanner.h"
#include "common/dockerfile/parser.h"
#include "common/layer/layer_writer.h"
#include "common/oci/layout.h"
#include "common/plan/build_plan.h"
#include "coordinator/assembly/image_assembly.h"
#include "tests/support/temp_dir.h"

namespace lf::coordinator::testing {

namespace fs = std::filesystem;

inline constexpr int64_t kEpoch = 1'700'000'000;  // 2023-11-14T22:13:20Z
inline constexpr std::string_view kBaseRef = "base:1";

// A Dockerfile plan with the Dockerfile and context snapshot it points into.
struct Planned {
  dockerfile::Dockerfile df;
  context::ContextSnapshot ctx;
  plan::BuildPlan plan;
};

class AssemblyFixture {
 public:
  AssemblyFixture() {
    auto s = blob::DirectoryBlobStore::open(dir_ / "store");
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(*s);
  }

  blob::BlobStore& store() { return *store_; }
  const lf::testing::TempDir& dir() const { return dir_; }

  // Writes `files` (path -> content) into a fresh tree and turns it into a layer in the store.
  BuiltLayer makeLayer(const std::map<std::string, std::string>& files) {
    fs::path root = dir_ / ("tree" + std::to_string(++trees_));
    fs::create_directories(root);
    for (const auto& [path, content] : files) lf::testing::writeFile(root / path, content);
    layer::LayerOptions opts;
    opts.source_date_epoch = kEpoch;
    opts.force_uid = 0;
    opts.force_gid = 0;
    auto info = layer::writeLayer(root, opts, *store_);
    EXPECT_TRUE(info.isOk()) << info.status().toString();
    if (!info.isOk()) return {};
    BuiltLayer out;
    out.descriptor.media_type = info->media_type;
    out.descriptor.digest = info->digest;
    out.descriptor.size = info->size;
    out.diff_id = info->diff_id;
    return out;
  }

  // A one-layer base image like busybox's: PATH, CMD ["sh"], two history entries.
  BaseImageInfo makeBase() {
    BuiltLayer layer = makeLayer({{"etc/os-release", "NAME=base\n"}, {"bin/sh", "#!sh\n"}});
    BaseImageInfo base;
    oci::ImageConfig& c = base.config;
    c.architecture = "amd64";
    c.os = "linux";
    c.created = "2024-01-01T00:00:00Z";
    c.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    c.config.cmd = std::vector<std::string>{"sh"};
    c.config.labels = {{"base.label", "kept"}};
    c.rootfs.diff_ids = {layer.diff_id};
    c.history = {{"2024-01-01T00:00:00Z", "ADD rootfs.tar / # buildkit", "", "base", false},
                 {"2024-01-01T00:00:00Z", "CMD [\"sh\"]", "", "base", true}};
    base.layers = {layer.descriptor};
    return base;
  }

  // Plans `dockerfile` with the context in a subdirectory holding `context_files`; the base
  // "base:1" is `base` (its config is what the stage inherits).
  std::unique_ptr<Planned> plan(std::string_view dockerfile,
                                const std::map<std::string, std::string>& context_files,
                                const BaseImageInfo* base) {
    auto out = std::make_unique<Planned>();
    fs::path ctx_dir = dir_ / ("ctx" + std::to_string(++trees_));
    fs::create_directories(ctx_dir);
    for (const auto& [path, content] : context_files) {
      lf::testing::writeFile(ctx_dir / path, content);
    }
    auto df = dockerfile::parse(dockerfile);
    EXPECT_TRUE(df.isOk()) << df.status().toString();
    if (!df.isOk()) return nullptr;
    out->df = std::move(*df);
    auto ctx = context::scanContext(ctx_dir, {});
    EXPECT_TRUE(ctx.isOk()) << ctx.status().toString();
    if (!ctx.isOk()) return nullptr;
    out->ctx = std::move(*ctx);
    plan::PlanInput in;
    in.dockerfile = &out->df;
    in.context = &out->ctx;
    if (base != nullptr) {
      in.bases[std::string(kBaseRef)] = {Digest::sha256Of("base manifest"),
                                         runtimeConfigOf(base->config),
                                         static_cast<int>(base->layers.size())};
    }
    auto p = plan::makePlan(in);
    EXPECT_TRUE(p.isOk()) << p.status().toString();
    if (!p.isOk()) return nullptr;
    out->plan = std::move(*p);
    return out;
  }

 private:
  lf::testing::TempDir dir_;
  std::unique_ptr<blob::DirectoryBlobStore> store_;
  int trees_ = 0;
};

}  // namespace lf::coordinator::testing
