// JsonReader implementation: strict typed access with field paths.
#include "json_reader.hpp"

#include <algorithm>

namespace cutover {

namespace {
const char* type_name(const nlohmann::json& j) { return j.type_name(); }
}  // namespace

JsonReader::JsonReader(const nlohmann::json& j, std::string path) : j_(j), path_(std::move(path)) {
  if (!j_.is_object()) {
    throw ParseError(path_, std::string("expected an object, got ") + type_name(j_));
  }
}

const nlohmann::json* JsonReader::raw(const std::string& key) {
  auto it = j_.find(key);
  if (it == j_.end()) return nullptr;
  seen_.push_back(&it.key());  // the object's own key: no copy, lives as long as j_
  if (it->is_null()) return nullptr;
  return &*it;
}

std::string JsonReader::required_string(const std::string& key) {
  auto v = optional_string(key);
  if (!v) throw ParseError(child(key), "required field is missing");
  return *v;
}

std::optional<std::string> JsonReader::optional_string(const std::string& key) {
  const auto* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    throw ParseError(child(key), std::string("expected a string, got ") + type_name(*v));
  }
  return v->get<std::string>();
}

int64_t JsonReader::required_int(const std::string& key, int64_t min, int64_t max) {
  auto v = optional_int(key, min, max);
  if (!v) throw ParseError(child(key), "required field is missing");
  return *v;
}

std::optional<int64_t> JsonReader::optional_int(const std::string& key, int64_t min, int64_t max) {
  const auto* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) {
    throw ParseError(child(key), std::string("expected an integer, got ") + type_name(*v));
  }
  int64_t value;
  if (v->is_number_unsigned()) {
    const auto u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      throw ParseError(child(key), "integer out of range");
    }
    value = static_cast<int64_t>(u);
  } else {
    value = v->get<int64_t>();
  }
  if (value < min || value > max) {
    throw ParseError(child(key), std::to_string(value) + " out of range " + std::to_string(min) +
                                     ".." + std::to_string(max));
  }
  return value;
}

std::optional<bool> JsonReader::optional_bool(const std::string& key) {
  const auto* v = raw(key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) {
    throw ParseError(child(key), std::string("expected a boolean, got ") + type_name(*v));
  }
  return v->get<bool>();
}

void JsonReader::for_each(
    const std::string& key,
    const std::function<void(const nlohmann::json&, const std::string&)>& fn) {
  const auto* v = raw(key);
  if (!v) return;
  if (!v->is_array()) {
    throw ParseError(child(key), std::string("expected an array, got ") + type_name(*v));
  }
  for (size_t i = 0; i < v->size(); ++i) {
    fn((*v)[i], child(key) + "[" + std::to_string(i) + "]");
  }
}

std::map<std::string, std::string> JsonReader::string_map(const std::string& key) {
  std::map<std::string, std::string> out;
  const auto* v = raw(key);
  if (!v) return out;
  if (!v->is_object()) {
    throw ParseError(child(key), std::string("expected an object, got ") + type_name(*v));
  }
  for (const auto& [k, val] : v->items()) {
    if (!val.is_string()) {
      throw ParseError(child(key) + "." + k,
                       std::string("expected a string, got ") + type_name(val));
    }
    out.emplace(k, val.get<std::string>());
  }
  return out;
}

void JsonReader::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    if (std::find(seen_.begin(), seen_.end(), &it.key()) == seen_.end()) {
      throw ParseError(child(it.key()), "unknown field");
    }
  }
}

nlohmann::json parse_json_text(const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ParseError("", "malformed JSON at byte " + std::to_string(e.byte));
  } catch (const nlohmann::json::exception& e) {
    // e.g. a number too large for a double (out_of_range 406): still the sender's fault.
    throw ParseError("", std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace cutover
