#include "coordinator/assembly/image_history.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace lf::coordinator {

namespace {

constexpr size_t kCreatedByWidth = 45;  // docker history's CREATED BY column

bool readDigits(std::string_view text, size_t pos, size_t n, int* out) {
  if (pos + n > text.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + (text[i] - '0');
  }
  *out = v;
  return true;
}

// stringutils.Ellipsis: at most `width` characters (UTF-8 code points), the last one "…".
std::string ellipsis(const std::string& s, size_t width) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (++chars == width) {
        // Is there anything after this character?
        size_t next = i + 1;
        while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xC0) == 0x80) ++next;
        if (next == s.size()) return s;
        return s.substr(0, i) + "…";
      }
    }
  }
  return s;
}

}  // namespace

Result<int64_t> parseRfc3339Ms(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)
  auto bad = [&] {
    return invalidArgument("\"" + std::string(text) + "\" is not an RFC 3339 time");
  };
  std::tm tm{};
  int year, month, day, hour, minute, second;
  if (text.size() < 20 || !readDigits(text, 0, 4, &year) || text[4] != '-' ||
      !readDigits(text, 5, 2, &month) || text[7] != '-' || !readDigits(text, 8, 2, &day) ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !readDigits(text, 11, 2, &hour) ||
      text[13] != ':' || !readDigits(text, 14, 2, &minute) || text[16] != ':' ||
      !readDigits(text, 17, 2, &second)) {
    return bad();
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return bad();
  }
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < text.size() && text[pos] == '.') {
    size_t digits = 0;
    for (++pos; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++digits) {
      if (digits < 3) ms = ms * 10 + (text[pos] - '0');
    }
    if (digits == 0) return bad();
    for (; digits < 3; ++digits) ms *= 10;
  }
  int64_t offset_s = 0;
  if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int oh, om;
    if (!readDigits(text, pos + 1, 2, &oh) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
        !readDigits(text, pos + 4, 2, &om)) {
      return bad();
    }
    offset_s = (oh * 3600 + om * 60) * (text[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != text.size()) return bad();
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  int64_t seconds = static_cast<int64_t>(timegm(&tm)) - offset_s;
  return seconds * 1000 + ms;
}

std::string humanSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  double size = static_cast<double>(bytes);
  size_t unit = 0;
  while (size >= 1000.0 && unit + 1 < std::size(kUnits)) {
    size /= 1000.0;
    ++unit;
  }
  char buf[64];
  // Go's %.3g, like Docker's units.HumanSizeWithPrecision(size, 3).
  std::snprintf(buf, sizeof(buf), "%.3g%s", size, kUnits[unit]);
  return buf;
}

std::string humanDuration(int64_t ms) {
  int64_t seconds = ms / 1000;
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return std::to_string(seconds) + " seconds";
  int64_t minutes = seconds / 60;
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return std::to_string(minutes) + " minutes";
  // Go's d.Round(time.Hour): halves round away from zero.
  int64_t hours = (ms + 1800 * 1000) / (3600 * 1000);
  if (hours == 1) return "About an hour";
  if (hours < 48) return std::to_string(hours) + " hours";
  if (hours < 24 * 7 * 2) return std::to_string(hours / 24) + " days";
  if (hours < 24 * 30 * 2) return std::to_string(hours / 24 / 7) + " weeks";
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24 / 30) + " months";
  return std::to_string(ms / (3600 * 1000) / 24 / 365) + " years";
}

Result<std::vector<HistoryEntry>> historyEntries(const oci::ImageConfig& config,
                                                 const std::vector<uint64_t>& layer_sizes) {
  std::vector<HistoryEntry> out;
  size_t layer = 0;
  for (size_t i = 0; i < config.history.size(); ++i) {
    const oci::History& h = config.history[i];
    HistoryEntry e;
    if (!h.created.empty()) {
      auto t = parseRfc3339Ms(h.created);
      if (!t.isOk()) {
        return t.status().withContext("config.history[" + std::to_string(i) + "].created");
      }
      e.created_unix_ms = *t;
    }
    e.created_by = h.created_by;
    e.comment = h.comment;
    e.empty_layer = h.empty_layer;
    if (!h.empty_layer) {
      if (layer >= layer_sizes.size()) {
        return invalidArgument("config.history[" + std::to_string(i) + "] names layer " +
                               std::to_string(layer + 1) + " but the image has " +
                               std::to_string(layer_sizes.size()) + " layers");
      }
      e.layer_size = layer_sizes[layer++];
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<ImageRecord> imageRecordOf(const AssembledImage& image, std::vector<std::string> references,
                                  std::string build_id) {
  const oci::ImageConfig& c = image.config;
  ImageRecord r;
  r.manifest_digest = image.manifest.digest;
  r.config_digest = image.config_descriptor.digest;
  r.media_type = image.manifest.media_type;
  r.references = std::move(references);
  r.build_id = std::move(build_id);
  r.platform = c.os + "/" + c.architecture + (c.variant.empty() ? "" : "/" + c.variant);
  if (!c.created.empty()) {
    auto t = parseRfc3339Ms(c.created);
    if (!t.isOk()) return t.status().withContext("config.created");
    r.created_unix_ms = *t;
  }
  std::vector<uint64_t> sizes;
  for (const auto& l : image.layers) sizes.push_back(l.size);
  LF_ASSIGN_OR_RETURN(r.history, historyEntries(c, sizes));
  return r;
}

std::vector<HistoryRow> historyRows(const std::vector<HistoryEntry>& entries,
                                    const HistoryOptions& options) {
  std::vector<HistoryRow> rows;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    HistoryRow r;
    r.image = "<missing>";
    if (rows.empty() && !options.image_id.empty()) {
      r.image = options.image_id;
      if (!options.no_trunc) {
        auto d = Digest::parse(options.image_id);
        if (d.isOk()) r.image = d->shortHex();
      }
    }
    r.created_unix_ms = it->created_unix_ms;
    r.created = it->created_unix_ms == 0
                    ? "N/A"
                    : humanDuration(options.now_unix_ms - it->created_unix_ms) + " ago";
    r.created_by = it->created_by;
    for (auto& c : r.created_by) {
      if (c == '\t') c = ' ';
    }
    if (!options.no_trunc) r.created_by = ellipsis(r.created_by, kCreatedByWidth);
    r.size_bytes = it->empty_layer ? 0 : it->layer_size;
    r.size = humanSize(r.size_bytes);
    r.comment = it->comment;
    r.empty_layer = it->empty_layer;
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace lf::coordinator
