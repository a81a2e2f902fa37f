// Options: the daemons' command-line flags (parsed by CLI11) plus an optional config file. Each
// option is declared once (name, help, target); `--config FILE` fills options from a config
// file, then flags override it. The file is either `name = value` lines (names as the flags,
// without "--"; '#' starts a comment; what /etc/cutover ships) or a JSON object whose keys are the
// option names with '_' for '-'; both are read here, so that an error names the file's line.
// Every value, from a flag or a file, is converted by the same code. Unknown flags, unknown
// config keys and wrong types are ParseErrors naming the flag or field. Only main() uses this:
// libraries take plain config structs.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace cutover {

// Reads a shared-token file: its first line, trailing blanks removed. Throws ParseError naming
// `flag` when the file cannot be read or the token is empty.
std::string read_token_file(const std::string& path, const std::string& flag = "--token-file");

class Options {
 public:
  Options(std::string program, std::string summary);

  void add(const std::string& name, std::string* target, const std::string& help);
  void add(const std::string& name, int64_t* target, const std::string& help);
  void add(const std::string& name, bool* target, const std::string& help);  // a switch
  // A secret (a token): its value is never shown, not even in --help's defaults.
  void add_secret(const std::string& name, std::string* target, const std::string& help);

  // Returns false when --help was given (help text already printed to stdout). Positional
  // arguments are collected into positional(). Throws ParseError.
  bool parse(int argc, char** argv);
  const std::vector<std::string>& positional() const { return positional_; }
  std::string help() const;
  // Every flag's name (without "--") and whether it takes a value (a switch does not); --config
  // and --help included. For shell completion.
  std::vector<std::pair<std::string, bool>> flags() const;
  // A config file's contents, named `origin` in errors (what --config FILE does once read).
  void load_config_text(const std::string& origin, const std::string& text);

 private:
  struct Spec {
    std::string name;
    std::variant<std::string*, int64_t*, bool*> target;
    std::string help;
    bool secret = false;
  };
  const Spec* find(const std::string& name) const;
  // The flag a CLI11 error message is about ("--name"), else the program.
  std::string culprit(const std::string& message) const;
  void set(const Spec& spec, const std::string& value, const std::string& field);
  void load_config(const std::string& path);
  void load_config_lines(const std::string& path, const std::string& text);

  std::string program_, summary_;
  std::vector<Spec> specs_;
  std::vector<std::string> positional_;
};

}  // namespace cutover
