// Options: flag and config-file parsing.
#include "options.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "json_reader.hpp"
#include "parse_error.hpp"
#include "version.hpp"

namespace cutover {

std::string read_token_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path);
  if (!in) throw ParseError(flag, "cannot read '" + path + "'");
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) throw ParseError(flag, "'" + path + "' is empty");
  return token;
}

Options::Options(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void Options::add(const std::string& name, std::string* target, const std::string& help) {
  specs_.push_back({name, target, help});
}
void Options::add_secret(const std::string& name, std::string* target, const std::string& help) {
  specs_.push_back({name, target, help, true});
}
void Options::add(const std::string& name, int64_t* target, const std::string& help) {
  specs_.push_back({name, target, help});
}
void Options::add(const std::string& name, bool* target, const std::string& help) {
  specs_.push_back({name, target, help});
}

const Options::Spec* Options::find(const std::string& name) const {
  for (const auto& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

void Options::set(const Spec& spec, const std::string& value, const std::string& field) {
  if (auto* s = std::get_if<std::string*>(&spec.target)) {
    **s = value;
  } else if (auto* i = std::get_if<int64_t*>(&spec.target)) {
    size_t used = 0;
    try {
      **i = std::stoll(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != value.size()) {
      throw ParseError(field, "expected an integer, got '" + value + "'");
    }
  } else if (auto* b = std::get_if<bool*>(&spec.target)) {
    if (value == "true" || value == "1" || value == "yes") {
      **b = true;
    } else if (value == "false" || value == "0" || value == "no") {
      **b = false;
    } else {
      throw ParseError(field, "expected true or false, got '" + value + "'");
    }
  }
}

void Options::load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ParseError("--config", "cannot read config file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  load_config_text(path, ss.str());
}

void Options::load_config_text(const std::string& path, const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') {
    load_config_lines(path, text);
    return;
  }
  nlohmann::json j;
  try {
    j = parse_json_text(text);
  } catch (const ParseError& e) {
    throw ParseError(path, e.message());
  }
  if (!j.is_object()) throw ParseError(path, "expected a JSON object of options");
  for (const auto& [key, value] : j.items()) {
    std::string name = key;
    for (auto& c : name) {
      if (c == '_') c = '-';
    }
    const Spec* spec = find(name);
    const std::string field = path + ": " + key;
    if (!spec || name == "config") throw ParseError(field, "unknown option");
    if (value.is_string()) {
      set(*spec, value.get<std::string>(), field);
    } else if (value.is_number_integer() && std::holds_alternative<int64_t*>(spec->target)) {
      *std::get<int64_t*>(spec->target) = value.get<int64_t>();
    } else if (value.is_boolean() && std::holds_alternative<bool*>(spec->target)) {
      *std::get<bool*>(spec->target) = value.get<bool>();
    } else {
      throw ParseError(field, std::string("wrong type ") + value.type_name());
    }
  }
}

void Options::load_config_lines(const std::string& path, const std::string& text) {
  std::stringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string where = path + ":" + std::to_string(n);
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    auto trim = [](std::string s) {
      const auto b = s.find_first_not_of(" \t\r");
      if (b == std::string::npos) return std::string();
      return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
    };
    line = trim(line);
    if (line.empty()) continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) throw ParseError(where, "expected 'name = value'");
    const std::string name = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    const Spec* spec = find(name);
    if (!spec || name == "config") throw ParseError(where + ": " + name, "unknown option");
    set(*spec, value, where + ": " + name);
  }
}

bool Options::parse(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // The config file comes first so that flags override it wherever they appear.
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] == "--config" && i + 1 < args.size()) load_config(args[i + 1]);
    if (args[i].rfind("--config=", 0) == 0) load_config(args[i].substr(9));
  }
  // CLI11 splits the command line (--name value, --name=value, switches, "--", operands); every
  // value goes through set(), as a config file's do. Help and the version are ours: help() is
  // what the man pages are made from.
  CLI::App app(summary_, program_);
  app.set_help_flag();
  bool want_help = false, want_version = false;
  app.add_flag("-h,--help", want_help);
  app.add_flag("--version", want_version);
  std::string config;
  app.add_option("--config", config);
  for (const auto& spec : specs_) {
    const std::string flag = "--" + spec.name;
    if (auto* b = std::get_if<bool*>(&spec.target)) {
      app.add_flag(flag, **b);  // bare, or --name=true|false
    } else {
      app.add_option_function<std::string>(
             flag, [this, &spec, flag](const std::string& v) { set(spec, v, flag); })
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
  }
  app.add_option("operands", positional_);
  app.allow_extras();
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    app.parse(args);
  } catch (const CLI::ArgumentMismatch& e) {
    throw ParseError(culprit(e.what()), "needs a value");
  } catch (const CLI::ParseError& e) {
    throw ParseError(culprit(e.what()), e.what());
  }
  if (want_help) {
    std::fputs(help().c_str(), stdout);
    return false;
  }
  if (want_version) {
    std::printf("%s %s\n", program_.c_str(), kVersion);
    return false;
  }
  // What no option took: unknown flags are refused; what follows "--" is operands.
  const auto rest = app.remaining();
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == "--") {
      positional_.insert(positional_.end(), rest.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                         rest.end());
      break;
    }
    if (rest[i].rfind("-", 0) == 0) {
      throw ParseError(rest[i].substr(0, rest[i].find('=')), "unknown option (see --help)");
    }
    positional_.push_back(rest[i]);
  }
  return true;
}

std::string Options::culprit(const std::string& message) const {
  // CLI11 names the option in its message; a whole name only, so that --tls-ca is not --tls.
  auto names = [&](const std::string& flag) {
    for (size_t at = message.find(flag); at != std::string::npos; at = message.find(flag, at + 1)) {
      const size_t end = at + flag.size();
      if (end == message.size()) return true;
      const char c = message[end];
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return true;
    }
    return false;
  };
  for (const auto& s : specs_) {
    if (names("--" + s.name)) return "--" + s.name;
  }
  return names("--config") ? "--config" : program_;
}

std::vector<std::pair<std::string, bool>> Options::flags() const {
  std::vector<std::pair<std::string, bool>> out{{"config", true}, {"help", false}};
  for (const auto& s : specs_) out.emplace_back(s.name, !std::holds_alternative<bool*>(s.target));
  return out;
}

std::string Options::help() const {
  std::string out = "Usage: " + program_ + " [options]\n" + summary_ + "\n\nOptions:\n";
  out +=
      "  --config FILE\n      JSON object of options (keys as below, '_' for '-'); flags override "
      "it\n";
  for (const auto& s : specs_) {
    std::string arg;
    std::string def;
    if (auto* str = std::get_if<std::string*>(&s.target)) {
      arg = " VALUE";
      if (!(*str)->empty()) def = s.secret ? " (set; not shown)" : " (default: " + **str + ")";
    } else if (auto* i = std::get_if<int64_t*>(&s.target)) {
      arg = " N";
      def = " (default: " + std::to_string(**i) + ")";
    }
    out += "  --" + s.name + arg + "\n      " + s.help + def + "\n";
  }
  out += "  --help\n      show this help\n";
  out += "  --version\n      print the version\n";
  return out;
}

}  // namespace cutover
