// AckRepeat: recognises an agent's ACK that repeats its previous one but for the two numbers
// every ACK changes (generation, apply_ms). Most ACKs are such repeats - a host's report changes
// far less often than the generation - and the controller then skips the JSON decode, which was
// the largest part of handling an ACK. Pure text matching, next to the wire codecs (wire.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire.hpp"

namespace cutover::wire {

class AckRepeat {
 public:
  // After `text` decoded to `ack` and was acted on: remembers its shape (the text around its
  // top-level generation and apply_ms values). An ACK that waits for something is not a repeat
  // the controller may shortcut, and neither is one it cannot cut apart: it forgets instead.
  void remember(std::string_view text, const Ack& ack);
  void forget() { pieces_.clear(); }

  struct Numbers {
    uint64_t generation = 0;
    double apply_ms = 0;
  };
  // The generation and apply_ms of `text` when it is the remembered ACK with (valid) other
  // numbers in their place, so that decode_agent_message would give the remembered ACK's
  // report; nullopt otherwise (decode it).
  std::optional<Numbers> match(std::string_view text) const;

 private:
  // text = pieces_[0] number pieces_[1] number ... pieces_[n]; which number is the generation.
  std::vector<std::string> pieces_;
  std::vector<bool> is_generation_;
};

}  // namespace cutover::wire
