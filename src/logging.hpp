// Logging setup: one named spdlog logger per module ("agent", "ovs", "controller", ...), all
// sharing one stderr sink, as plain text or as JSON lines (escaped by a JSON library, time in
// UTC). Under systemd (stderr connected to the journal) each line starts with its syslog
// priority, "<4>" for a warning, so that `journalctl -p warning` finds it. Configured once from
// main().
#pragma once

#include <spdlog/spdlog.h>
#include <memory>
#include <string>

namespace cutover {

enum class LogFormat { text, json };

struct LogConfig {
  spdlog::level::level_enum level = spdlog::level::info;
  LogFormat format = LogFormat::text;
  bool journal = false;  // prefix each line with its syslog priority (sd-daemon's "<N>")
};

// Throws ParseError naming `field` for an unknown level or format name.
spdlog::level::level_enum parse_log_level(const std::string& text, const std::string& field);
LogFormat parse_log_format(const std::string& text, const std::string& field);
// Whether stderr is the journal: systemd's $JOURNAL_STREAM ("DEV:INODE", passed in by main())
// names the stream stderr is.
bool stderr_is_journal(const char* journal_stream);
// The syslog priority of a level: critical 2, error 3, warning 4, info 6, debug and trace 7.
int syslog_priority(spdlog::level::level_enum level);

void setup_logging(const LogConfig& config);
// Returns the module's logger, creating it on first use with the configured sink and level.
std::shared_ptr<spdlog::logger> logger(const std::string& module);

}  // namespace cutover
