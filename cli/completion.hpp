// Shell completion for cutoverctl, generated from what the program already says: the commands
// and their verbs from its usage text (lines "  COMMAND VERB ... | VERB ..." under
// "Commands:"), the flags from its Options table. `cutoverctl completion bash` prints it; the
// build installs it for bash-completion.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace cutover::cli {

// command -> its verbs (empty: the command takes none, or only operands).
std::map<std::string, std::set<std::string>> commands_of_usage(const std::string& usage);

// A bash completion script for `program`: commands, then verbs, then flags (a flag that takes a
// value consumes the next word).
std::string bash_completion(const std::string& program, const std::string& usage,
                            const std::vector<std::pair<std::string, bool>>& flags);

}  // namespace cutover::cli
