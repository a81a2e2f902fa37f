// spdlog setup shared by the daemons, the CLI and the tests.
#include "logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <mutex>

#include "parse_error.hpp"

namespace cutover {

namespace {
std::mutex g_mutex;
LogConfig g_config;
std::shared_ptr<spdlog::sinks::sink> g_sink;

std::shared_ptr<spdlog::sinks::sink> sink_locked() {
  if (!g_sink) {
    g_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    if (g_config.format == LogFormat::json) {
      g_sink->set_pattern(
          R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","module":"%n","msg":"%v"})");
    } else {
      g_sink->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
    }
  }
  return g_sink;
}
}  // namespace

spdlog::level::level_enum parse_log_level(const std::string& text, const std::string& field) {
  for (auto l :
       {spdlog::level::trace, spdlog::level::debug, spdlog::level::info, spdlog::level::warn,
        spdlog::level::err, spdlog::level::critical, spdlog::level::off}) {
    if (text == spdlog::level::to_string_view(l)) return l;
  }
  if (text == "warn" || text == "warning") return spdlog::level::warn;
  if (text == "error" || text == "err") return spdlog::level::err;
  throw ParseError(field, "unknown log level '" + text +
                              "': expected trace, debug, info, warn, error, critical or off");
}

LogFormat parse_log_format(const std::string& text, const std::string& field) {
  if (text == "text") return LogFormat::text;
  if (text == "json") return LogFormat::json;
  throw ParseError(field, "unknown log format '" + text + "': expected text or json");
}

void setup_logging(const LogConfig& config) {
  std::lock_guard lock(g_mutex);
  g_config = config;
  g_sink.reset();
  spdlog::drop_all();
  sink_locked();
}

std::shared_ptr<spdlog::logger> logger(const std::string& module) {
  std::lock_guard lock(g_mutex);
  if (auto l = spdlog::get(module)) return l;
  auto l = std::make_shared<spdlog::logger>(module, sink_locked());
  l->set_level(g_config.level);
  spdlog::register_logger(l);
  return l;
}

}  // namespace cutover
