// libFuzzer target: the daemons' option parser - config file text (both formats) and then flags.
// The input is the config text, a NUL, then NUL-separated arguments. Anything must set the
// options or throw ParseError - never crash - and a value a parse accepted reads back as set.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "options.hpp"
#include "parse_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto nul = input.find('\0');
  const std::string config = input.substr(0, nul);
  std::vector<std::string> args{"prog"};
  if (nul != std::string::npos) {
    std::string rest = input.substr(nul + 1);
    size_t at = 0;
    while (at <= rest.size() && args.size() < 64) {
      const auto next = rest.find('\0', at);
      args.push_back(rest.substr(at, next == std::string::npos ? std::string::npos : next - at));
      if (next == std::string::npos) break;
      at = next + 1;
    }
  }
  std::string name, token, listen = "127.0.0.1:8180";
  int64_t count = 7;
  bool flag = false;
  cutover::Options o("prog", "fuzzed");
  o.add("name", &name, "a string");
  o.add("listen", &listen, "a string with a default");
  o.add("count", &count, "an integer");
  o.add("flag", &flag, "a switch");
  o.add_secret("token", &token, "a secret");
  try {
    o.load_config_text("fuzz.conf", config);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    // --config FILE would read a file: not part of what is fuzzed here.
    for (auto& a : args) {
      if (a == "--config" || a == "--help" || a == "-h") return 0;  // a file; stdout
    }
    o.parse(static_cast<int>(argv.size()), argv.data());
    // A secret never appears in --help: its entry says only whether it is set (other options'
    // defaults may hold any text, the token's included).
    const auto help = o.help();
    const std::string entry = "  --token VALUE\n      a secret";
    const auto at = help.rfind(entry);  // the last: defaults printed before it may hold any text
    if (at == std::string::npos) std::abort();
    const auto end = help.find('\n', at + entry.size());
    const auto rest = help.substr(at + entry.size(), end - at - entry.size());
    if (rest != (token.empty() ? "" : " (set; not shown)")) std::abort();
  } catch (const cutover::ParseError&) {
  }
  return 0;
}
