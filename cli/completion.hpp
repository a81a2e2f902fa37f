// Shell completion for cutoverctl, generated from its command tree (CommandLine): commands, their
// verbs, and the flags each one takes. `cutoverctl completion bash` prints it; the build installs
// it for bash-completion.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace cutover::cli {

// A command (or the program, at the root) with its flags and its sub-commands.
struct CompletionNode {
  std::string name;
  std::vector<std::pair<std::string, bool>> flags;  // name without "--", takes a value
  std::vector<CompletionNode> children;
};

// A bash completion script for `program`: at each position, the sub-commands of the command
// named so far; after "-", the flags of that command and of those above it (a flag that takes a
// value consumes the next word, where nothing is offered).
std::string bash_completion(const std::string& program, const CompletionNode& root);

}  // namespace cutover::cli
