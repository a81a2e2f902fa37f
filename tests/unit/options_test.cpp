// Unit tests for Options: flags, both config-file formats, precedence, and every rejection
// naming the flag or the file:line.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "options.hpp"
#include "parse_error.hpp"
#include "version.hpp"

using namespace cutover;

namespace {
struct Cfg {
  std::string name = "default";
  int64_t count = 1;
  bool flag = false;
};

Options make(Cfg& c) {
  Options o("prog", "summary");
  o.add("name", &c.name, "a name");
  o.add("count", &c.count, "a count");
  o.add("flag", &c.flag, "a switch");
  return o;
}

bool parse(Options& o, std::vector<std::string> args) {
  std::vector<char*> argv{const_cast<char*>("prog")};
  for (auto& a : args) argv.push_back(a.data());
  return o.parse(static_cast<int>(argv.size()), argv.data());
}

std::string write(const std::string& text) {
  char path[] = "/tmp/cutover-options-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

std::string error_of(std::vector<std::string> args) {
  Cfg c;
  auto o = make(c);
  try {
    parse(o, std::move(args));
  } catch (const ParseError& e) {
    return e.what();
  }
  return "<accepted>";
}
}  // namespace

TEST(Options, FlagsBothForms) {
  Cfg c;
  auto o = make(c);
  ASSERT_TRUE(parse(o, {"--name", "x", "--count=5", "--flag", "pos"}));
  EXPECT_EQ(c.name, "x");
  EXPECT_EQ(c.count, 5);
  EXPECT_TRUE(c.flag);
  EXPECT_EQ(o.positional(), std::vector<std::string>{"pos"});
}

TEST(Options, SwitchValuesRepeatsAndOperandsAsCli11SplitsThem) {
  Cfg c;
  auto o = make(c);
  ASSERT_TRUE(parse(o, {"--flag", "--flag=false", "--name=a", "--name", "b", "--", "--count"}));
  EXPECT_FALSE(c.flag) << "the last wins";
  EXPECT_EQ(c.name, "b");
  EXPECT_EQ(c.count, 1);
  EXPECT_EQ(o.positional(), std::vector<std::string>{"--count"}) << "after --: an operand";
  EXPECT_NE(error_of({"-x"}).find("-x: unknown option"), std::string::npos);
  EXPECT_NE(error_of({"--nope=3"}).find("--nope: unknown option"), std::string::npos);
  EXPECT_NE(error_of({"--flag=maybe"}).find("--flag"), std::string::npos);
}

TEST(Options, ConfigLinesWithCommentsAndFlagPrecedence) {
  auto path = write("# comment\nname = \"from file\"  # trailing\n\ncount=7\nflag = true\n");
  Cfg c;
  auto o = make(c);
  ASSERT_TRUE(parse(o, {"--count", "9", "--config", path}));
  EXPECT_EQ(c.name, "from file");
  EXPECT_EQ(c.count, 9);  // the flag wins wherever it appears
  EXPECT_TRUE(c.flag);
  std::remove(path.c_str());
}

TEST(Options, ConfigJson) {
  auto path = write(R"({"name": "j", "count": 3, "flag": true})");
  Cfg c;
  auto o = make(c);
  ASSERT_TRUE(parse(o, {"--config=" + path}));
  EXPECT_EQ(c.name, "j");
  EXPECT_EQ(c.count, 3);
  std::remove(path.c_str());
}

TEST(Options, TheCulpritIsTheWholeOptionNotOneItPrefixes) {
  std::string tls, tls_ca;
  Options o("prog", "summary");
  o.add("tls", &tls, "registered first, a prefix of the next");
  o.add("tls-ca", &tls_ca, "the one given");
  std::vector<std::string> args{"prog", "--tls-ca"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  try {
    o.parse(static_cast<int>(argv.size()), argv.data());
    FAIL() << "--tls-ca without a value was accepted";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.field(), "--tls-ca") << e.what();
  }
}

TEST(Options, RejectionsNameTheCulprit) {
  EXPECT_NE(error_of({"--nope"}).find("--nope"), std::string::npos);
  EXPECT_NE(error_of({"--count", "abc"}).find("--count"), std::string::npos);
  EXPECT_NE(error_of({"--count", "5x"}).find("--count"), std::string::npos);
  EXPECT_NE(error_of({"--name"}).find("needs a value"), std::string::npos);
  EXPECT_NE(error_of({"--config", "/nonexistent/x.conf"}).find("cannot read"), std::string::npos);
  auto bad_line = write("name = a\ncolour = red\n");
  EXPECT_NE(error_of({"--config", bad_line}).find(":2: colour"), std::string::npos);
  auto no_eq = write("name\n");
  EXPECT_NE(error_of({"--config", no_eq}).find(":1"), std::string::npos);
  auto bad_json = write("{\"count\": \"x\"}");
  EXPECT_NE(error_of({"--config", bad_json}).find("count"), std::string::npos);
  auto broken = write("{\"count\": ");
  EXPECT_NE(error_of({"--config", broken}).find("malformed JSON"), std::string::npos);
  for (const auto& p : {bad_line, no_eq, bad_json, broken}) std::remove(p.c_str());
}

TEST(Options, HelpListsEveryOption) {
  Cfg c;
  auto o = make(c);
  auto h = o.help();
  for (const char* s : {"--name", "--count", "--flag", "--config", "--help", "default: default"}) {
    EXPECT_NE(h.find(s), std::string::npos) << s;
  }
}

#include <algorithm>
#include <nlohmann/json.hpp>

#include "logging.hpp"

TEST(Logging, LevelAndFormatNames) {
  EXPECT_EQ(parse_log_level("warn", "--log-level"), spdlog::level::warn);
  EXPECT_EQ(parse_log_level("warning", "--log-level"), spdlog::level::warn);
  EXPECT_EQ(parse_log_level("error", "--log-level"), spdlog::level::err);
  EXPECT_EQ(parse_log_level("debug", "--log-level"), spdlog::level::debug);
  EXPECT_THROW(parse_log_level("loud", "--log-level"), ParseError);
  EXPECT_EQ(parse_log_format("json", "--log-format"), LogFormat::json);
  EXPECT_THROW(parse_log_format("xml", "--log-format"), ParseError);
}

TEST(Options, ASecretIsNeverShownInHelp) {
  Cfg c;
  std::string token;
  auto o = make(c);
  o.add_secret("token", &token, "shared token");
  const auto path = write("token = s3cr3t-from-file\n");
  ASSERT_TRUE(parse(o, {"--config", path}));
  EXPECT_EQ(token, "s3cr3t-from-file");
  EXPECT_EQ(o.help().find("s3cr3t"), std::string::npos);
  EXPECT_NE(o.help().find("--token VALUE"), std::string::npos);
  std::remove(path.c_str());
}

TEST(Options, VersionPrintsTheProgramAndVersionAndStops) {
  Cfg c;
  auto o = make(c);
  ::testing::internal::CaptureStdout();
  EXPECT_FALSE(parse(o, {"--version", "--name", "x"}));
  const auto out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(out, std::string("prog ") + cutover::kVersion + "\n");
  EXPECT_NE(o.help().find("--version"), std::string::npos);
}

TEST(Logging, JsonLinesAreValidJsonInUtcAndTheJournalGetsPriorities) {
  for (bool journal : {false, true}) {
    cutover::LogConfig c;
    c.format = cutover::LogFormat::json;
    c.journal = journal;
    cutover::setup_logging(c);
    ::testing::internal::CaptureStderr();
    cutover::logger("test")->warn("a \"quoted\" message\nwith a newline, a tab\t and \xff bytes");
    const auto out = ::testing::internal::GetCapturedStderr();
    std::string line = out;
    if (journal) {
      ASSERT_EQ(line.rfind("<4>", 0), 0u) << line;
      line = line.substr(3);
    }
    ASSERT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << "one line: " << line;
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["level"], "warning");
    EXPECT_EQ(j["module"], "test");
    EXPECT_NE(j["msg"].get<std::string>().find("\"quoted\" message\nwith"), std::string::npos);
    const std::string time = j["time"];
    EXPECT_EQ(time.size(), 27u) << time;  // 2026-12-06T23:45:30.159123Z
    EXPECT_EQ(time.back(), 'Z');
  }
  EXPECT_EQ(cutover::syslog_priority(spdlog::level::err), 3);
  EXPECT_EQ(cutover::syslog_priority(spdlog::level::info), 6);
  EXPECT_FALSE(cutover::stderr_is_journal(nullptr));
  EXPECT_FALSE(cutover::stderr_is_journal("garbage"));
  EXPECT_FALSE(cutover::stderr_is_journal("1:1"));
  cutover::setup_logging({});
}
