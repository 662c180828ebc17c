#include "common/oci/json_fields.h"

#include <limits>

namespace lf::oci::detail {

namespace {

// Thrown by the parse callback when nesting is too deep; caught in parseObject, never escapes.
struct TooDeep {};

std::string_view typeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a number with a fraction or exponent";
    default:
      return "a value of unknown type";
  }
}

}  // namespace

Result<Json> parseObject(std::string_view text, std::string_view what, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return invalidArgument(std::string(what) + ": document is " + std::to_string(text.size()) +
                           " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  Json value;
  try {
    value = Json::parse(
        text.begin(), text.end(),
        [](int depth, Json::parse_event_t, Json&) {
          if (depth > kMaxJsonDepth) {
            throw TooDeep{};
          }
          return true;
        },
        /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const TooDeep&) {
    return invalidArgument(std::string(what) + ": JSON nested deeper than " +
                           std::to_string(kMaxJsonDepth) + " levels");
  } catch (const Json::exception& e) {
    // nlohmann's message already names the byte offset ("at line 1, column 7").
    return invalidArgument(std::string(what) + ": invalid JSON: " + e.what());
  }
  if (!value.is_object()) {
    return invalidArgument(std::string(what) + ": expected a JSON object, got " +
                           std::string(typeName(value)));
  }
  return value;
}

std::string canonicalDump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string fieldPath(std::string_view path, std::string_view key) {
  std::string out(path);
  out += '.';
  out += key;
  return out;
}

std::string indexPath(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

Result<FieldReader> FieldReader::of(const Json& value, std::string path) {
  if (!value.is_object()) {
    return invalidArgument(path + ": expected an object, got " + std::string(typeName(value)));
  }
  return FieldReader(&value, std::move(path));
}

const Json* FieldReader::find(std::string_view key) const {
  auto it = obj_->find(key);
  if (it == obj_->end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

Status FieldReader::require(std::string_view key) const {
  if (find(key) == nullptr) {
    return invalidArgument(fieldPath(path_, key) + ": required field is missing");
  }
  return Status::ok();
}

Status FieldReader::typeError(std::string_view key, std::string_view expected) const {
  return invalidArgument(fieldPath(path_, key) + ": expected " + std::string(expected) + ", got " +
                         std::string(typeName(*find(key))));
}

Status FieldReader::getString(std::string_view key, std::string* out) const {
  const Json* v = find(key);
  if (v == nullptr) {
    return Status::ok();
  }
  if (!v->is_string()) {
    return typeError(key, "a string");
  }
  *out = v->get<std::string>();
  return Status::ok();
}

Status FieldReader::getBool(std::string_view key, bool* out) const {
  const Json* v = find(key);
  if (v == nullptr) {
    return Status::ok();
  }
  if (!v->is_boolean()) {
    return typeError(key, "a boolean");
  }
  *out = v->get<bool>();
  return Status::ok();
}

Status FieldReader::getInt(std::string_view key, int64_t min, int64_t max, int64_t* out) const {
  const Json* v = find(key);
  if (v == nullptr) {
    return Status::ok();
  }
  std::string range = "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  int64_t n = 0;
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return invalidArgument(fieldPath(path_, key) + ": expected " + range + ", got " +
                             std::to_string(u));
    }
    n = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    n = v->get<int64_t>();
  } else {
    return typeError(key, range);
  }
  if (n < min || n > max) {
    return invalidArgument(fieldPath(path_, key) + ": expected " + range + ", got " +
                           std::to_string(n));
  }
  *out = n;
  return Status::ok();
}

Status FieldReader::getStrings(std::string_view key, std::vector<std::string>* out) const {
  std::optional<std::vector<std::string>> values;
  LF_RETURN_IF_ERROR(getOptionalStrings(key, &values));
  if (values.has_value()) {
    *out = std::move(*values);
  }
  return Status::ok();
}

Status FieldReader::getOptionalStrings(std::string_view key,
                                       std::optional<std::vector<std::string>>* out) const {
  const Json* v = find(key);
  if (v == nullptr) {
    return Status::ok();
  }
  if (!v->is_array()) {
    return typeError(key, "an array of strings");
  }
  std::vector<std::string> values;
  values.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& e = (*v)[i];
    if (!e.is_string()) {
      return invalidArgument(indexPath(fieldPath(path_, key), i) + ": expected a string, got " +
                             std::string(typeName(e)));
    }
    values.push_back(e.get<std::string>());
  }
  *out = std::move(values);
  return Status::ok();
}

Status FieldReader::getStringMap(std::string_view key,
                                 std::map<std::string, std::string>* out) const {
  const Json* v = find(key);
  if (v == nullptr) {
    return Status::ok();
  }
  if (!v->is_object()) {
    return typeError(key, "an object of strings");
  }
  std::map<std::string, std::string> values;
  for (const auto& [k, e] : v->items()) {
    if (!e.is_string()) {
      return invalidArgument(fieldPath(fieldPath(path_, key), k) + ": expected a string, got " +
                             std::string(typeName(e)));
    }
    values.emplace(k, e.get<std::string>());
  }
  *out = std::move(values);
  return Status::ok();
}

Status FieldReader::getKeySet(std::string_view key, std::set<std::string>* out) const {
  const Json* v = find(key);
  if (v == nullptr) {
    return Status::ok();
  }
  if (!v->is_object()) {
    return typeError(key, "an object");
  }
  std::set<std::string> keys;
  for (const auto& [k, e] : v->items()) {
    if (!e.is_object() && !e.is_null()) {
      return invalidArgument(fieldPath(fieldPath(path_, key), k) + ": expected {}, got " +
                             std::string(typeName(e)));
    }
    keys.insert(k);
  }
  *out = std::move(keys);
  return Status::ok();
}

Status FieldReader::getDigest(std::string_view key, Digest* out) const {
  std::string text;
  LF_RETURN_IF_ERROR(getString(key, &text));
  if (find(key) == nullptr) {
    return Status::ok();
  }
  auto digest = Digest::parse(text);
  if (!digest.isOk()) {
    return digest.status().withContext(fieldPath(path_, key));
  }
  *out = *digest;
  return Status::ok();
}

void putString(Json& obj, std::string_view key, const std::string& value) {
  if (!value.empty()) {
    obj[std::string(key)] = value;
  }
}

void putStrings(Json& obj, std::string_view key, const std::vector<std::string>& values) {
  if (!values.empty()) {
    obj[std::string(key)] = values;
  }
}

void putStringMap(Json& obj, std::string_view key, const std::map<std::string, std::string>& m) {
  if (!m.empty()) {
    obj[std::string(key)] = m;
  }
}

void putKeySet(Json& obj, std::string_view key, const std::set<std::string>& keys) {
  if (keys.empty()) {
    return;
  }
  Json set = Json::object();
  for (const auto& k : keys) {
    set[k] = Json::object();
  }
  obj[std::string(key)] = std::move(set);
}

}  // namespace lf::oci::detail
