#include "worker/exec/step_spec.h"

#include <gtest/gtest.h>

namespace lf::worker {
namespace {

namespace v1 = layerfarm::v1;

const std::string kDigest = "sha256:" + std::string(64, 'a');
const std::string kDiffId = "sha256:" + std::string(64, 'b');

std::string layerJson() {
  return R"({"blob": {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ")" +
         kDigest + R"(", "size": "123"}, "diffId": ")" + kDiffId + R"("})";
}

TEST(StepSpecTest, ParsesTheJsonFormOfARunStep) {
  std::string json = R"({
    "stepId": "s1", "kind": "STEP_KIND_RUN",
    "parent": {"layers": [)" + layerJson() + R"(]},
    "config": {"env": ["PATH=/bin", "A=b=c"], "user": "app", "workingDir": "/src"},
    "run": {"command": ["make all"], "shellForm": true, "network": "NETWORK_MODE_NONE",
            "mounts": [{"type": "TYPE_CACHE", "target": "/root/.cache", "id": "go"}]},
    "limits": {"timeoutMs": "60000", "memoryBytes": 1073741824}
  })";
  auto spec = parseStepSpecJson(json, "step.json");
  ASSERT_TRUE(spec.isOk()) << spec.status().toString();
  EXPECT_EQ(spec->kind(), v1::STEP_KIND_RUN);
  EXPECT_EQ(spec->parent().layers(0).blob().size(), 123);
  EXPECT_EQ(spec->run().network(), v1::NETWORK_MODE_NONE);
  EXPECT_EQ(spec->limits().memory_bytes(), 1073741824);
  auto chain = toLayerChain(spec->parent(), "parent");
  ASSERT_TRUE(chain.isOk());
  EXPECT_EQ(chain->at(0).diff_id.toString(), kDiffId);
  // Printing and parsing again gives the same message.
  auto again = parseStepSpecJson(stepSpecToJson(*spec), "again");
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->SerializeAsString(), spec->SerializeAsString());
}

void expectError(const std::string& json, const std::string& fragment) {
  auto spec = parseStepSpecJson(json, "step.json");
  ASSERT_FALSE(spec.isOk()) << json;
  EXPECT_NE(spec.status().message().find(fragment), std::string::npos)
      << spec.status().message();
  EXPECT_EQ(spec.status().message().rfind("step.json", 0), 0u) << spec.status().message();
}

TEST(StepSpecTest, BadInputNamesTheField) {
  expectError("{", "step.json");
  expectError(R"({"kind": "STEP_KIND_RUN", "bogus": 1})", "bogus");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": []}})", "run.command: empty");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["a", "b"], "shellForm": true}})",
              "exactly one string");
  expectError(R"({"run": {"command": ["true"]}})", "kind");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"]},
                  "parent": {"layers": [{"blob": {"digest": "sha256:xyz"}, "diffId": ")" +
                  kDiffId + R"("}]}})",
              "parent.layers[0].blob.digest");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"]},
                  "parent": {"layers": [{"blob": {"digest": ")" + kDigest + R"("}}]}})",
              "parent.layers[0].diff_id: missing");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"]},
                  "config": {"env": ["NOEQUALS"]}})",
              "config.env[0]");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"]},
                  "config": {"workingDir": "relative"}})",
              "config.working_dir");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"],
                  "mounts": [{"type": "TYPE_SECRET", "target": "/run/secrets/x"}]}})",
              "type=secret is not supported");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"],
                  "mounts": [{"type": "TYPE_BIND", "target": "/a/../etc"}]}})",
              "run.mounts[0].target: \"/a/../etc\" has a \"..\" component");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"],
                  "mounts": [{"type": "TYPE_BIND", "target": "/proc/x"}]}})",
              "provided by the sandbox");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"],
                  "mounts": [{"type": "TYPE_TMPFS", "target": "/src"},
                             {"type": "TYPE_BIND", "target": "/src/go.mod"}]}})",
              "run.mounts[1].target: \"/src/go.mod\" overlaps");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"],
                  "mounts": [{"type": "TYPE_BIND", "target": "/src",
                              "from": {"layers": [{"blob": {"digest": "sha256:xyz"}}]}}]}})",
              "run.mounts[0].from.layers[0].blob.digest");
  expectError(R"({"kind": "STEP_KIND_RUN", "run": {"command": ["true"]},
                  "limits": {"timeoutMs": -1}})",
              "limits: negative");
  expectError(R"({"kind": "STEP_KIND_COPY", "copy": {"sources": ["a"], "destination": "/"}})",
              "neither context nor from");
  expectError(R"({"kind": "STEP_KIND_COPY", "copy": {"context": )" + layerJson() +
                  R"(, "sources": [""], "destination": "/"}})",
              "copy.sources[0]: empty path");
  expectError(R"({"kind": "STEP_KIND_ADD", "copy": {"context": )" + layerJson() +
                  R"(, "sources": ["a"]}})",
              "copy.destination: empty");
}

}  // namespace
}  // namespace lf::worker
