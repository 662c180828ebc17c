#include "cli/farm_commands.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <ostream>

#include "cli/app.h"
#include "cli/cli_util.h"
#include "cli/coordinator_commands.h"
#include "common/registry/http_client.h"

namespace lf::cli {

namespace {

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}

const nlohmann::json& arrayAt(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  if (!j.is_object()) {
    return kEmpty;
  }
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : kEmpty;
}

// "sha256:abc..." -> "abc..." cut to 12 unless no_trunc.
std::string shortId(const std::string& digest, bool no_trunc) {
  if (no_trunc) {
    return digest;
  }
  size_t colon = digest.find(':');
  std::string hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
  return hex.substr(0, 12);
}

std::string oneLine(std::string text) {
  for (char& c : text) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string rfc3339(int64_t ms) {
  if (ms <= 0) {
    return "";
  }
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::string formatHistory(const nlohmann::json& answer, int64_t now_ms, bool no_trunc) {
  const nlohmann::json& history = arrayAt(answer, "history");
  std::string image_id;
  if (answer.is_object() && answer.contains("image") && answer["image"].is_object()) {
    image_id = shortId(str(answer["image"], "config_digest"), no_trunc);
  }
  std::vector<std::vector<std::string>> rows;
  for (size_t i = history.size(); i-- > 0;) {
    const nlohmann::json& h = history[i];
    std::string created_by = oneLine(str(h, "created_by"));
    rows.push_back({rows.empty() && !image_id.empty() ? image_id : "<missing>",
                    timeAgo(num(h, "created_ms"), now_ms),
                    no_trunc ? created_by : truncateText(created_by, 45),
                    humanSize(static_cast<uint64_t>(std::max<int64_t>(0, num(h, "size")))),
                    oneLine(str(h, "comment"))});
  }
  return formatTable({"IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"}, rows);
}

std::string formatHistoryJson(const nlohmann::json& answer, int64_t now_ms) {
  const nlohmann::json& history = arrayAt(answer, "history");
  std::string image_id;
  if (answer.is_object() && answer.contains("image") && answer["image"].is_object()) {
    image_id = str(answer["image"], "config_digest");
  }
  std::string out;
  for (size_t i = history.size(); i-- > 0;) {
    const nlohmann::json& h = history[i];
    nlohmann::json row = {
        {"ID", i + 1 == history.size() && !image_id.empty() ? image_id : "<missing>"},
        {"CreatedAt", rfc3339(num(h, "created_ms"))},
        {"CreatedSince", timeAgo(num(h, "created_ms"), now_ms)},
        {"CreatedBy", str(h, "created_by")},
        {"Size", humanSize(static_cast<uint64_t>(std::max<int64_t>(0, num(h, "size"))))},
        {"Comment", str(h, "comment")}};
    out += row.dump() + "\n";
  }
  return out;
}

std::string formatBuilds(const nlohmann::json& answer, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const nlohmann::json& b : arrayAt(answer, "builds")) {
    std::string tags;
    if (b.contains("request") && b["request"].is_object()) {
      for (const auto& t : arrayAt(b["request"], "tags")) {
        if (t.is_string()) {
          tags += (tags.empty() ? "" : ",") + t.get<std::string>();
        }
      }
    }
    std::string state = str(b, "state");
    std::string duration = "-";
    if (num(b, "duration_ms") > 0) {
      duration = formatSeconds(num(b, "duration_ms"));
    } else if (state == "running" && num(b, "started_ms") > 0) {
      duration = formatSeconds(now_ms - num(b, "started_ms"));
    }
    rows.push_back(
        {str(b, "id"), state, tags.empty() ? "<none>" : tags, timeAgo(num(b, "created_ms"), now_ms),
         duration,
         std::to_string(num(b, "cached_steps")) + "/" + std::to_string(num(b, "total_steps"))});
  }
  return formatTable({"ID", "STATE", "TAGS", "CREATED", "DURATION", "CACHED"}, rows);
}

std::string formatWorkers(const nlohmann::json& answer) {
  std::vector<std::vector<std::string>> rows;
  for (const nlohmann::json& w : arrayAt(answer, "workers")) {
    bool draining =
        w.contains("draining") && w["draining"].is_boolean() && w["draining"].get<bool>();
    rows.push_back({str(w, "id"), str(w, "platform"), std::to_string(num(w, "slots")),
                    std::to_string(num(w, "running")), draining ? "yes" : "no",
                    std::to_string(num(w, "held_layers"))});
  }
  return formatTable({"ID", "PLATFORM", "SLOTS", "RUNNING", "DRAINING", "HELD LAYERS"}, rows);
}

std::string formatCacheStats(const nlohmann::json& answer) {
  if (!answer.is_object()) {
    return "";
  }
  int64_t lookups = num(answer, "lookups");
  int64_t lookup_hits = num(answer, "lookup_hits");
  char rate[32] = "-";
  if (lookups > 0) {
    std::snprintf(rate, sizeof(rate), "%.1f%%",
                  100.0 * static_cast<double>(lookup_hits) / static_cast<double>(lookups));
  }
  std::string out = formatTable(
      {"ENTRIES", "SIZE", "HITS", "LOOKUPS", "LOOKUP HITS", "HIT RATE"},
      {{std::to_string(num(answer, "entries")),
        humanSize(static_cast<uint64_t>(std::max<int64_t>(0, num(answer, "total_bytes")))),
        std::to_string(num(answer, "hits")), std::to_string(lookups), std::to_string(lookup_hits),
        rate}});
  std::vector<std::vector<std::string>> rows;
  if (answer.contains("by_kind") && answer["by_kind"].is_object()) {
    for (const auto& [kind, k] : answer["by_kind"].items()) {
      rows.push_back({kind, std::to_string(num(k, "entries")),
                      humanSize(static_cast<uint64_t>(std::max<int64_t>(0, num(k, "total_bytes")))),
                      std::to_string(num(k, "hits"))});
    }
  }
  if (!rows.empty()) {
    out += "\n" + formatTable({"KIND", "ENTRIES", "SIZE", "HITS"}, rows);
  }
  return out;
}

namespace {

struct FarmOptions {
  std::string server;
  std::string ref;
  std::string build;
  bool no_trunc = false;
  std::string format;
  bool follow = false;
  int limit = 50;
};

// Runs `fn` with a client for the command's --server; prints any error.
int withClient(const FarmOptions& opts, Io io, int idle_timeout_ms,
               const std::function<Status(const ApiClient&)>& fn) {
  auto client = makeApiClient(opts.server, idle_timeout_ms);
  if (!client.isOk()) {
    return reportError(*io.err, client.status());
  }
  Status s = fn(**client);
  return s.isOk() ? 0 : reportError(*io.err, s);
}

CLI::App* addServerOption(CLI::App* cmd, FarmOptions* opts) {
  cmd->add_option("--server", opts->server,
                  "Coordinator URL (default: $LAYERFARM_SERVER, else http://127.0.0.1:7070)");
  return cmd;
}

Status runLogs(const ApiClient& client, const FarmOptions& opts, Io io) {
  ProgressRenderer renderer(*io.out, RendererOptions{});
  // Without --follow the stream of a running build is read until it has been quiet a moment.
  LF_RETURN_IF_ERROR(followBuildEvents(client, opts.build, renderer, opts.follow ? 5 : 0,
                                       /*stop_when_idle=*/!opts.follow));
  if (renderer.finished()) {
    *io.out << renderer.summary() << "\n";
    if (renderer.state() != "succeeded") {
      *io.out << renderer.failureReport();
    }
  } else {
    *io.out << "(build " << opts.build << " is still running; --follow waits for the rest)\n";
  }
  return Status::ok();
}

void addLogsAndCancel(CLI::App& app, Io io, int* exit_code) {
  auto logs_opts = std::make_shared<FarmOptions>();
  CLI::App* logs = addServerOption(
      app.add_subcommand("logs", "Show a build's progress and step output"), logs_opts.get());
  logs->add_option("BUILD", logs_opts->build, "Build ID")->required();
  logs->add_flag("-f,--follow", logs_opts->follow, "Wait for the build to finish");
  logs->callback([logs_opts, io, exit_code] {
    *exit_code = withClient(*logs_opts, io, logs_opts->follow ? 30 * 60 * 1000 : 2000,
                            [&](const ApiClient& c) { return runLogs(c, *logs_opts, io); });
  });

  auto cancel_opts = std::make_shared<FarmOptions>();
  CLI::App* cancel = addServerOption(
      app.add_subcommand("cancel", "Cancel a queued or running build"), cancel_opts.get());
  cancel->add_option("BUILD", cancel_opts->build, "Build ID")->required();
  cancel->callback([cancel_opts, io, exit_code] {
    *exit_code = withClient(*cancel_opts, io, 0, [&](const ApiClient& c) -> Status {
      LF_ASSIGN_OR_RETURN(nlohmann::json b,
                          c.postJson("/v1/builds/" + cancel_opts->build + "/cancel", {}));
      *io.out << "cancelling build " << cancel_opts->build << " (state " << str(b, "state")
              << ")\n";
      return Status::ok();
    });
  });
}

}  // namespace

void registerFarmCommands(CLI::App& app, Io io, int* exit_code) {
  auto history_opts = std::make_shared<FarmOptions>();
  CLI::App* history =
      addServerOption(app.add_subcommand("history", "Show the layers of an image the farm built"),
                      history_opts.get());
  history->add_option("REF", history_opts->ref, "Image reference or digest")->required();
  history->add_flag("--no-trunc", history_opts->no_trunc, "Do not cut IDs and commands");
  history->add_option("--format", history_opts->format, "table (default) or json")
      ->check(CLI::IsMember({"", "table", "json"}));
  history->callback([history_opts, io, exit_code] {
    *exit_code = withClient(*history_opts, io, 0, [&](const ApiClient& c) -> Status {
      LF_ASSIGN_OR_RETURN(nlohmann::json answer, c.getJson("/v1/images/history?ref=" +
                                                           registry::urlEncode(history_opts->ref)));
      *io.out << (history_opts->format == "json"
                      ? formatHistoryJson(answer, nowMs())
                      : formatHistory(answer, nowMs(), history_opts->no_trunc));
      return Status::ok();
    });
  });

  auto builds_opts = std::make_shared<FarmOptions>();
  CLI::App* builds =
      addServerOption(app.add_subcommand("builds", "List recent builds"), builds_opts.get());
  builds->add_option("-n,--limit", builds_opts->limit, "How many (newest first)")
      ->check(CLI::Range(1, 1000));
  builds->callback([builds_opts, io, exit_code] {
    *exit_code = withClient(*builds_opts, io, 0, [&](const ApiClient& c) -> Status {
      LF_ASSIGN_OR_RETURN(nlohmann::json answer,
                          c.getJson("/v1/builds?limit=" + std::to_string(builds_opts->limit)));
      *io.out << formatBuilds(answer, nowMs());
      return Status::ok();
    });
  });

  addLogsAndCancel(app, io, exit_code);

  auto workers_opts = std::make_shared<FarmOptions>();
  CLI::App* workers =
      addServerOption(app.add_subcommand("workers", "List the farm's workers"), workers_opts.get());
  workers->callback([workers_opts, io, exit_code] {
    *exit_code = withClient(*workers_opts, io, 0, [&](const ApiClient& c) -> Status {
      LF_ASSIGN_OR_RETURN(nlohmann::json answer, c.getJson("/v1/workers"));
      *io.out << formatWorkers(answer);
      return Status::ok();
    });
  });

  auto cache_opts = std::make_shared<FarmOptions>();
  CLI::App* cache = app.add_subcommand("cache", "The farm's layer cache");
  cache->require_subcommand(1);
  CLI::App* stats =
      addServerOption(cache->add_subcommand("stats", "Cache size and hit rates"), cache_opts.get());
  stats->callback([cache_opts, io, exit_code] {
    *exit_code = withClient(*cache_opts, io, 0, [&](const ApiClient& c) -> Status {
      LF_ASSIGN_OR_RETURN(nlohmann::json answer, c.getJson("/v1/cache/stats"));
      *io.out << formatCacheStats(answer);
      return Status::ok();
    });
  });
}

}  // namespace lf::cli
