#include "common/oci/image_config.h"

#include <ctime>
#include <limits>

#include "common/oci/json_fields.h"

namespace lf::oci {

using detail::FieldReader;
using detail::Json;

namespace {

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

Json healthToJson(const HealthConfig& h) {
  Json j = Json::object();
  detail::putStrings(j, "Test", h.test);
  auto putDuration = [&](const char* key, int64_t v) {
    if (v != 0) {
      j[key] = v;
    }
  };
  putDuration("Interval", h.interval_ns);
  putDuration("Timeout", h.timeout_ns);
  putDuration("StartPeriod", h.start_period_ns);
  putDuration("StartInterval", h.start_interval_ns);
  putDuration("Retries", h.retries);
  return j;
}

Result<HealthConfig> healthFromJson(const Json& value, const std::string& path) {
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(value, path));
  HealthConfig h;
  LF_RETURN_IF_ERROR(r.getStrings("Test", &h.test));
  LF_RETURN_IF_ERROR(r.getInt("Interval", 0, kMaxInt, &h.interval_ns));
  LF_RETURN_IF_ERROR(r.getInt("Timeout", 0, kMaxInt, &h.timeout_ns));
  LF_RETURN_IF_ERROR(r.getInt("StartPeriod", 0, kMaxInt, &h.start_period_ns));
  LF_RETURN_IF_ERROR(r.getInt("StartInterval", 0, kMaxInt, &h.start_interval_ns));
  LF_RETURN_IF_ERROR(r.getInt("Retries", 0, kMaxInt, &h.retries));
  return h;
}

Json containerConfigToJson(const ContainerConfig& c) {
  Json j = Json::object();
  detail::putString(j, "User", c.user);
  detail::putKeySet(j, "ExposedPorts", c.exposed_ports);
  detail::putStrings(j, "Env", c.env);
  if (c.entrypoint.has_value()) {
    j["Entrypoint"] = *c.entrypoint;
  }
  if (c.cmd.has_value()) {
    j["Cmd"] = *c.cmd;
  }
  detail::putKeySet(j, "Volumes", c.volumes);
  detail::putString(j, "WorkingDir", c.working_dir);
  detail::putStringMap(j, "Labels", c.labels);
  detail::putString(j, "StopSignal", c.stop_signal);
  if (c.healthcheck.has_value()) {
    j["Healthcheck"] = healthToJson(*c.healthcheck);
  }
  detail::putStrings(j, "OnBuild", c.on_build);
  detail::putStrings(j, "Shell", c.shell);
  if (c.args_escaped) {
    j["ArgsEscaped"] = true;
  }
  return j;
}

Result<ContainerConfig> containerConfigFromJson(const Json& value, const std::string& path) {
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(value, path));
  ContainerConfig c;
  LF_RETURN_IF_ERROR(r.getString("User", &c.user));
  LF_RETURN_IF_ERROR(r.getKeySet("ExposedPorts", &c.exposed_ports));
  LF_RETURN_IF_ERROR(r.getStrings("Env", &c.env));
  LF_RETURN_IF_ERROR(r.getOptionalStrings("Entrypoint", &c.entrypoint));
  LF_RETURN_IF_ERROR(r.getOptionalStrings("Cmd", &c.cmd));
  LF_RETURN_IF_ERROR(r.getKeySet("Volumes", &c.volumes));
  LF_RETURN_IF_ERROR(r.getString("WorkingDir", &c.working_dir));
  LF_RETURN_IF_ERROR(r.getStringMap("Labels", &c.labels));
  LF_RETURN_IF_ERROR(r.getString("StopSignal", &c.stop_signal));
  if (const Json* h = r.find("Healthcheck")) {
    LF_ASSIGN_OR_RETURN(c.healthcheck, healthFromJson(*h, path + ".Healthcheck"));
  }
  LF_RETURN_IF_ERROR(r.getStrings("OnBuild", &c.on_build));
  LF_RETURN_IF_ERROR(r.getStrings("Shell", &c.shell));
  LF_RETURN_IF_ERROR(r.getBool("ArgsEscaped", &c.args_escaped));
  return c;
}

Result<RootFs> rootFsFromJson(const Json& value, const std::string& path) {
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(value, path));
  RootFs rootfs;
  LF_RETURN_IF_ERROR(r.require("type"));
  LF_RETURN_IF_ERROR(r.getString("type", &rootfs.type));
  if (rootfs.type != "layers") {
    return invalidArgument(path + ".type: expected \"layers\", got \"" +
                           rootfs.type.substr(0, 100) + "\"");
  }
  std::vector<std::string> ids;
  LF_RETURN_IF_ERROR(r.getStrings("diff_ids", &ids));
  for (size_t i = 0; i < ids.size(); ++i) {
    auto d = Digest::parse(ids[i]);
    if (!d.isOk()) {
      return d.status().withContext(detail::indexPath(path + ".diff_ids", i));
    }
    rootfs.diff_ids.push_back(*d);
  }
  return rootfs;
}

Result<History> historyFromJson(const Json& value, const std::string& path) {
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(value, path));
  History h;
  LF_RETURN_IF_ERROR(r.getString("created", &h.created));
  LF_RETURN_IF_ERROR(r.getString("created_by", &h.created_by));
  LF_RETURN_IF_ERROR(r.getString("author", &h.author));
  LF_RETURN_IF_ERROR(r.getString("comment", &h.comment));
  LF_RETURN_IF_ERROR(r.getBool("empty_layer", &h.empty_layer));
  return h;
}

}  // namespace

std::string ImageConfig::toJson() const {
  Json j = Json::object();
  detail::putString(j, "created", created);
  detail::putString(j, "author", author);
  j["architecture"] = architecture;
  j["os"] = os;
  detail::putString(j, "os.version", os_version);
  detail::putStrings(j, "os.features", os_features);
  detail::putString(j, "variant", variant);
  j["config"] = containerConfigToJson(config);
  Json ids = Json::array();
  for (const auto& d : rootfs.diff_ids) {
    ids.push_back(d.toString());
  }
  j["rootfs"] = Json{{"type", rootfs.type}, {"diff_ids", std::move(ids)}};
  if (!history.empty()) {
    Json hist = Json::array();
    for (const auto& h : history) {
      Json e = Json::object();
      detail::putString(e, "created", h.created);
      detail::putString(e, "created_by", h.created_by);
      detail::putString(e, "author", h.author);
      detail::putString(e, "comment", h.comment);
      if (h.empty_layer) {
        e["empty_layer"] = true;
      }
      hist.push_back(std::move(e));
    }
    j["history"] = std::move(hist);
  }
  return detail::canonicalDump(j);
}

Result<ImageConfig> ImageConfig::fromJson(std::string_view text, std::string_view what) {
  LF_ASSIGN_OR_RETURN(Json j, detail::parseObject(text, what, kMaxConfigBytes));
  LF_ASSIGN_OR_RETURN(auto r, FieldReader::of(j, std::string(what)));
  ImageConfig c;
  LF_RETURN_IF_ERROR(r.require("architecture"));
  LF_RETURN_IF_ERROR(r.require("os"));
  LF_RETURN_IF_ERROR(r.require("rootfs"));
  LF_RETURN_IF_ERROR(r.getString("created", &c.created));
  LF_RETURN_IF_ERROR(r.getString("author", &c.author));
  LF_RETURN_IF_ERROR(r.getString("architecture", &c.architecture));
  LF_RETURN_IF_ERROR(r.getString("os", &c.os));
  LF_RETURN_IF_ERROR(r.getString("os.version", &c.os_version));
  LF_RETURN_IF_ERROR(r.getStrings("os.features", &c.os_features));
  LF_RETURN_IF_ERROR(r.getString("variant", &c.variant));
  if (const Json* cc = r.find("config")) {
    LF_ASSIGN_OR_RETURN(c.config, containerConfigFromJson(*cc, std::string(what) + ".config"));
  }
  LF_ASSIGN_OR_RETURN(c.rootfs, rootFsFromJson(*r.find("rootfs"), std::string(what) + ".rootfs"));
  if (const Json* h = r.find("history")) {
    if (!h->is_array()) {
      return invalidArgument(std::string(what) + ".history: expected an array");
    }
    for (size_t i = 0; i < h->size(); ++i) {
      LF_ASSIGN_OR_RETURN(
          auto entry,
          historyFromJson((*h)[i], detail::indexPath(std::string(what) + ".history", i)));
      c.history.push_back(std::move(entry));
    }
  }
  return c;
}

std::string formatRfc3339(int64_t seconds_since_epoch) {
  std::time_t t = static_cast<std::time_t>(seconds_since_epoch);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) {
    return "1970-01-01T00:00:00Z";  // out of range for the calendar; callers pass sane times
  }
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace lf::oci
