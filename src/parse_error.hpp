// ParseError: the one exception type for rejected input (REST bodies, config files, agent
// messages, desired-state files). It carries the dotted path of the offending field so that every
// layer above can answer "which field, and why" without re-parsing.
#pragma once

#include <stdexcept>
#include <string>

namespace cutover {

class ParseError : public std::runtime_error {
 public:
  ParseError(std::string field, const std::string& message)
      : std::runtime_error(field.empty() ? message : field + ": " + message),
        field_(std::move(field)),
        message_(message) {}

  // Dotted path of the field, e.g. "ports[2].mac"; empty when the whole input is at fault.
  const std::string& field() const { return field_; }
  // The reason without the field prefix.
  const std::string& message() const { return message_; }

 private:
  std::string field_;
  std::string message_;
};

}  // namespace cutover
