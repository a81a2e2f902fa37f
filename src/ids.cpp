// Identifier validation shared by every id type.
#include "ids.hpp"

namespace cutover {

bool is_valid_id(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(text.front())) return false;
  for (char c : text) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace cutover
