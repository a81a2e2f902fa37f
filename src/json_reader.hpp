// JsonReader: strict, field-naming access to one JSON object. Each getter records the key it
// consumed; finish() rejects any key nobody asked for ("unknown field"). Every error is a
// ParseError carrying the full dotted path (e.g. "ports[1].ips[0]"), so REST answers, config-file
// errors and agent NACKs all name the offending field.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "parse_error.hpp"

namespace cutover {

class JsonReader {
 public:
  // Throws ParseError(path) unless j is an object.
  JsonReader(const nlohmann::json& j, std::string path);

  std::string required_string(const std::string& key);
  std::optional<std::string> optional_string(const std::string& key);
  int64_t required_int(const std::string& key, int64_t min, int64_t max);
  std::optional<int64_t> optional_int(const std::string& key, int64_t min, int64_t max);
  std::optional<bool> optional_bool(const std::string& key);
  // Returns the raw value (or nullptr when absent) and marks the key as consumed.
  const nlohmann::json* raw(const std::string& key);
  // Calls fn(element, element_path) for each element of an array field (absent = empty).
  void for_each(const std::string& key,
                const std::function<void(const nlohmann::json&, const std::string&)>& fn);
  // A string -> string object (labels, options).
  std::map<std::string, std::string> string_map(const std::string& key);

  // Applies a value parser (which throws ParseError with an empty field) and re-throws with the
  // field path filled in.
  template <typename T, typename Parse>
  T parse_field(const std::string& key, const std::string& text, Parse&& parse) {
    try {
      return parse(text);
    } catch (const ParseError& e) {
      throw ParseError(child(key), e.message());
    }
  }

  std::string child(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  const std::string& path() const { return path_; }

  // Throws ParseError for the first key that no getter consumed.
  void finish() const;

 private:
  const nlohmann::json& j_;
  std::string path_;
  // Keys consumed, as pointers to the object's own key strings (an object has a few dozen keys
  // at most; a linear look-up beats a set of copied strings).
  std::vector<const std::string*> seen_;
};

// Parses text as JSON; throws ParseError("", ...) with the byte offset on malformed input.
nlohmann::json parse_json_text(const std::string& text);

}  // namespace cutover
