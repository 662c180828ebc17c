#pragma once

// ConfigChanges: applies Dockerfile metadata instructions to an image config, the way
// `docker import --change` and `docker commit --change` do.
//
// Each change is one Dockerfile line (ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, VOLUME,
// STOPSIGNAL, HEALTHCHECK, ONBUILD), parsed by the Dockerfile front end (common/dockerfile) and
// word-expanded against the config's own Env, as Docker's builder does. Changes apply in order;
// like a Dockerfile, ENTRYPOINT resets a CMD that no earlier change set. Errors are
// kInvalidArgument naming the change ("--change 2: ...: instruction RUN is not allowed").
// Not thread-safe; one per config being built.

#include <string_view>

#include "common/base/status.h"
#include "common/oci/image_config.h"

namespace lf::oci {

class ConfigChanges {
 public:
  explicit ConfigChanges(ImageConfig* config) : config_(config) {}

  // `label` names the change in errors ("--change 2").
  Status apply(std::string_view line, std::string_view label);

 private:
  ImageConfig* config_;
  bool cmd_set_ = false;
};

}  // namespace lf::oci
