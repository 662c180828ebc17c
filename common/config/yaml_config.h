#pragma once

// Reading YAML configuration files (worker.yaml, coordinator.yaml) the same way everywhere:
// unknown keys are errors (a typo must not silently fall back to a default), and every problem
// of a file is reported at once, one per line, each naming the file, line and key:
// "worker.yaml:7: slots: must be between 1 and 1024, got 0".
//
// A config is described as a map from key to FieldReader (made by Readers, which writes into the
// config struct's fields); parseYamlConfig() loads the text and runs the readers. yaml-cpp throws;
// its calls stay behind these helpers.
//
// Thread-safety: none needed (one parse per thread).

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace lf::config {

// Collects every problem of one file; yaml-cpp throws, so all its calls stay in this file.
class ConfigProblems {
 public:
  explicit ConfigProblems(std::string_view source) : source_(source) {}
  void add(const YAML::Node& node, std::string_view key, std::string_view what) {
    std::string where = source_;
    if (node.IsDefined() && node.Mark().line >= 0) {
      where += ":" + std::to_string(node.Mark().line + 1);
    }
    lines_.push_back(where + ": " + std::string(key) + ": " + std::string(what));
  }
  void addPlain(std::string text) { lines_.push_back(source_ + ": " + std::move(text)); }
  bool empty() const { return lines_.empty(); }
  Status status() const {
    std::string message;
    for (const auto& line : lines_) {
      message += (message.empty() ? "" : "\n") + line;
    }
    return invalidArgument(message);
  }

 private:
  std::string source_;
  std::vector<std::string> lines_;
};

inline bool readScalar(const YAML::Node& node, std::string_view key, std::string& out, ConfigProblems& p) {
  if (!node.IsScalar()) {
    p.add(node, key, "must be a string");
    return false;
  }
  out = node.Scalar();
  return true;
}

template <typename T>
void readInt(const YAML::Node& node, std::string_view key, T& out, int64_t min, uint64_t max,
             ConfigProblems& p) {
  std::string text;
  if (!readScalar(node, key, text, p)) {
    return;
  }
  try {
    size_t used = 0;
    bool negative = !text.empty() && text[0] == '-';
    if (negative) {
      long long v = std::stoll(text, &used, 10);
      if (used != text.size()) throw std::invalid_argument("trailing");
      if (v < min) throw std::out_of_range("min");
      out = static_cast<T>(v);
      return;
    }
    unsigned long long v = std::stoull(text, &used, 10);
    if (used != text.size()) throw std::invalid_argument("trailing");
    if (v > max || static_cast<long double>(v) < static_cast<long double>(min)) {
      throw std::out_of_range("range");
    }
    out = static_cast<T>(v);
  } catch (const std::invalid_argument&) {
    p.add(node, key, "must be an integer, got \"" + text + "\"");
  } catch (const std::out_of_range&) {
    p.add(
        node, key,
        "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + text);
  }
}

inline void readBool(const YAML::Node& node, std::string_view key, bool& out, ConfigProblems& p) {
  std::string text;
  if (!readScalar(node, key, text, p)) {
    return;
  }
  if (text == "true" || text == "yes" || text == "on") {
    out = true;
  } else if (text == "false" || text == "no" || text == "off") {
    out = false;
  } else {
    p.add(node, key, "must be true or false, got \"" + text + "\"");
  }
}

inline constexpr uint64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
inline constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
inline constexpr uint64_t kMaxI64 = std::numeric_limits<int64_t>::max();

using FieldReader = std::function<void(const YAML::Node&, const std::string&)>;

// Calls the reader of each key of `map`; unknown and repeated keys are problems.
inline void readMap(const YAML::Node& map, std::string_view name,
             const std::map<std::string, FieldReader>& readers, ConfigProblems& p) {
  if (!map.IsMap()) {
    p.add(map, name, "must be a map");
    return;
  }
  for (const auto& entry : map) {
    std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
    std::string full = name.empty() ? key : std::string(name) + "." + key;
    auto it = readers.find(key);
    if (it == readers.end()) {
      std::string known;
      for (const auto& [k, unused] : readers) {
        known += (known.empty() ? "" : ", ") + k;
      }
      p.add(entry.first, full, "unknown key (known: " + known + ")");
      continue;
    }
    it->second(entry.second, full);
  }
}

// Makes FieldReaders. They outlive the builder: each captures only what outlives it (the field,
// the problems, the map of nodes seen) and plain values.
class Readers {
 public:
  Readers(ConfigProblems& p, std::map<std::string, YAML::Node>& seen) : p_(p), seen_(seen) {}

  FieldReader str(std::string& out) const {
    return [p = &p_, seen = &seen_, &out](const YAML::Node& n, const std::string& k) {
      (*seen)[k] = n;
      readScalar(n, k, out, *p);
    };
  }
  FieldReader absolutePath(std::filesystem::path& out) const {
    return [p = &p_, seen = &seen_, &out](const YAML::Node& n, const std::string& k) {
      (*seen)[k] = n;
      std::string text;
      if (readScalar(n, k, text, *p)) {
        if (text.empty() || text[0] != '/') {
          p->add(n, k, "must be an absolute path, got \"" + text + "\"");
        }
        out = text;
      }
    };
  }
  template <typename T>
  FieldReader integer(T& out, int64_t min, uint64_t max) const {
    return [p = &p_, seen = &seen_, &out, min, max](const YAML::Node& n, const std::string& k) {
      (*seen)[k] = n;
      readInt(n, k, out, min, max, *p);
    };
  }
  FieldReader boolean(bool& out) const {
    return [p = &p_, &out](const YAML::Node& n, const std::string& k) { readBool(n, k, out, *p); };
  }
  FieldReader labels(std::map<std::string, std::string>& out) const {
    return [p = &p_, &out](const YAML::Node& n, const std::string& k) {
      if (!n.IsMap()) {
        p->add(n, k, "must be a map of strings");
        return;
      }
      for (const auto& e : n) {
        std::string value;
        if (e.first.IsScalar() && readScalar(e.second, k + "." + e.first.Scalar(), value, *p)) {
          out[e.first.Scalar()] = value;
        }
      }
    };
  }
  // A nested map whose readers are made when it is read.
  FieldReader nested(std::map<std::string, FieldReader> sub) const {
    return [p = &p_, sub = std::move(sub)](const YAML::Node& n, const std::string& k) {
      readMap(n, k, sub, *p);
    };
  }

  FieldReader stringList(std::vector<std::string>& out) const {
    return [p = &p_, seen = &seen_, &out](const YAML::Node& n, const std::string& k) {
      (*seen)[k] = n;
      if (!n.IsSequence()) {
        p->add(n, k, "must be a list of strings");
        return;
      }
      for (size_t i = 0; i < n.size(); ++i) {
        std::string value;
        if (readScalar(n[i], k + "[" + std::to_string(i) + "]", value, *p)) {
          out.push_back(value);
        }
      }
    };
  }

 private:
  ConfigProblems& p_;
  std::map<std::string, YAML::Node>& seen_;
};

// Loads `yaml` (named `source` in errors), checks it is a map, and calls `read` with the root;
// `read` adds problems. Returns every problem at once, or ok.
Status parseYamlConfig(std::string_view yaml, std::string_view source,
                       const std::function<void(const YAML::Node& root, ConfigProblems& p)>& read);

// The whole file, for configs and token files; errors name the path.
Result<std::string> readTextFile(const std::filesystem::path& path);

}  // namespace lf::config
