// ApiError: a request the controller refuses, with the HTTP status, a stable machine-readable
// code, the offending field (dotted path, may be empty) and a human message. Rendered as
// {"error": {"code", "message", "field"}}.
#pragma once

#include <stdexcept>
#include <string>

namespace cutover::controller {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, std::string field, const std::string& message)
      : std::runtime_error(message),
        status_(status),
        code_(std::move(code)),
        field_(std::move(field)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }
  const std::string& field() const { return field_; }

 private:
  int status_;
  std::string code_;
  std::string field_;
};

}  // namespace cutover::controller
