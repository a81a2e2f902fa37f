// CommandLine: cutoverctl's commands, verbs and flags as a CLI11 command tree. Each command and
// verb has its own flags and its own --help (`cutoverctl ports create --help`); the global flags
// (--controller, --token-file, --json, --tls-*) may come before or after the command. Parsing
// fills Flags and yields the words that name what to do: {"ports", "create"},
// {"migrate", "vm1"}, {"pki", "issue", "hv1"}. The bash completion comes from the same tree.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "completion.hpp"
#include "tls.hpp"

namespace cutover::cli {

struct Flags {
  std::string controller;
  std::string token_file;
  std::string pki_dir = "/etc/cutover/pki";
  TlsFiles tls;
  std::string role = "agent", dns;
  int64_t days = 0;
  bool json_out = false;
  std::string id, underlay_ip, backend, labels, vni, mtu, name, mac, network, ips, host, iface_id,
      port, to, allow, volume, vm, after, portgroups, to_vm, from_vm;
  int64_t limit = 0;  // 0: no paging, everything
  bool wait = false;
  bool no_conntrack_carry = false;
  bool no_persist = false, auto_converge = false, compressed = false, postcopy = false;
  int64_t bandwidth_mib_s = 0;
  int64_t timeout_s = 600;
  // migrations measure: what a traffic test measured (-1: not given)
  int64_t pps = -1, sent = -1, lost = -1, tcp_sessions = -1, tcp_survived = -1;
  std::string by;
};

class CommandLine {
 public:
  explicit CommandLine(Flags& flags);
  // false: --help or --version was printed (exit 0). Throws ParseError naming the flag, the
  // operand or the command that is wrong.
  bool parse(int argc, char** argv);
  // The command, its verb if it has one, then its operand, e.g. {"ports", "show", "vm1"}.
  const std::vector<std::string>& words() const { return words_; }
  // The tree for shell completion: commands, verbs, and each one's flags.
  CompletionNode completion_tree() const;

 private:
  CLI::App* command(const std::string& name, const std::string& help);
  CLI::App* verb(CLI::App* parent, const std::string& name, const std::string& help,
                 const std::string& operand = "", const std::string& operand_help = "");
  void value(CLI::App* app, const std::string& name, std::string* target, const std::string& help);
  void value(CLI::App* app, const std::string& name, int64_t* target, const std::string& help);
  void flag(CLI::App* app, const std::string& name, bool* target, const std::string& help);
  CompletionNode node_of(const CLI::App* app) const;
  // The commands and verbs given on the command line, outermost first (after parsing).
  std::vector<const CLI::App*> given() const;

  CLI::App app_;
  Flags& f_;
  std::map<const CLI::App*, std::string> operand_of_;  // a verb's operand, if it takes one
  std::map<const CLI::App*, std::vector<std::pair<std::string, bool>>> flags_of_;
  std::map<const CLI::App*, std::string> operands_;  // the operands given
  std::vector<std::string> words_;
};

}  // namespace cutover::cli
