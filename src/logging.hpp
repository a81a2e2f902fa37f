// Logging setup: one named spdlog logger per module ("agent", "ovs", "controller", ...), all
// sharing one stderr sink, as plain text or as JSON lines. Configured once from main().
#pragma once

#include <spdlog/spdlog.h>
#include <memory>
#include <string>

namespace cutover {

enum class LogFormat { text, json };

struct LogConfig {
  spdlog::level::level_enum level = spdlog::level::info;
  LogFormat format = LogFormat::text;
};

// Throws ParseError naming `field` for an unknown level or format name.
spdlog::level::level_enum parse_log_level(const std::string& text, const std::string& field);
LogFormat parse_log_format(const std::string& text, const std::string& field);

void setup_logging(const LogConfig& config);
// Returns the module's logger, creating it on first use with the configured sink and level.
std::shared_ptr<spdlog::logger> logger(const std::string& module);

}  // namespace cutover
