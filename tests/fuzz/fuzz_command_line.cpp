// libFuzzer target: cutoverctl's command line (CLI11 command tree). The input is NUL-separated
// arguments. Anything must parse into words naming a command, or throw ParseError - never crash,
// never another exception - and a parse that succeeded names a command of the tree.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "command_line.hpp"
#include "parse_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args{"cutoverctl"};
  size_t at = 0;
  while (at <= input.size() && args.size() < 64) {
    const auto next = input.find('\0', at);
    args.push_back(input.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) break;
    at = next + 1;
  }
  for (const auto& a : args) {
    // They print to stdout: not what is fuzzed here.
    if (a == "-h" || a.rfind("--h", 0) == 0 || a.rfind("--v", 0) == 0) return 0;
  }
  cutover::cli::Flags flags;
  cutover::cli::CommandLine cmd(flags);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  try {
    if (!cmd.parse(static_cast<int>(argv.size()), argv.data())) return 0;
    const auto tree = cmd.completion_tree();
    bool known = false;
    for (const auto& c : tree.children) known |= !cmd.words().empty() && c.name == cmd.words()[0];
    if (!known) std::abort();
  } catch (const cutover::ParseError&) {
  }
  return 0;
}
