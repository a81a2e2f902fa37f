// spdlog setup shared by the daemons, the CLI and the tests: one stderr sink that writes text or
// JSON lines, with syslog priorities when stderr is the journal.
#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>

#include "parse_error.hpp"

namespace cutover {

namespace {
std::mutex g_mutex;
LogConfig g_config;
std::shared_ptr<spdlog::sinks::sink> g_sink;

// "2026-12-06T23:45:30.159123Z"
std::string utc_time(spdlog::log_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(us.count() / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06uZ",
                static_cast<unsigned>(static_cast<unsigned long long>(us.count()) % 1000000));
  return std::string(date) + frac;
}

class LineSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LineSink(LogFormat format, bool journal) : format_(format), journal_(journal) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string line;
    if (journal_) line = "<" + std::to_string(syslog_priority(msg.level)) + ">";
    if (format_ == LogFormat::json) {
      const auto level = spdlog::level::to_string_view(msg.level);
      const nlohmann::json j = {
          {"time", utc_time(msg.time)},
          {"level", std::string(level.data(), level.size())},
          {"module", std::string(msg.logger_name.data(), msg.logger_name.size())},
          {"msg", std::string(msg.payload.data(), msg.payload.size())}};
      // Invalid UTF-8 in a message (a peer's bytes) is replaced, never a broken line.
      line += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else {
      spdlog::memory_buf_t buf;
      formatter_->format(msg, buf);
      line.append(buf.data(), buf.size());
    }
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  LogFormat format_;
  bool journal_;
};

std::shared_ptr<spdlog::sinks::sink> sink_locked() {
  if (!g_sink) {
    g_sink = std::make_shared<LineSink>(g_config.format, g_config.journal);
    // The journal stamps lines itself and colours nothing; a terminal gets time and level.
    g_sink->set_pattern(g_config.journal ? "[%n] %v" : "%Y-%m-%d %H:%M:%S.%e %-5l [%n] %v");
  }
  return g_sink;
}
}  // namespace

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;
    case spdlog::level::err:
      return 3;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::info:
      return 6;
    default:
      return 7;
  }
}

bool stderr_is_journal(const char* journal_stream) {
  if (!journal_stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(journal_stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

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
