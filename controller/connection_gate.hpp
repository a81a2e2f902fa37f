// ConnectionGate: what HttpServer admits. It counts open connections and those that have not
// yet shown the bearer token, refuses a new connection past either cap, and hands each admitted
// connection a Slot that gives its place back when the session ends (however it ends). Shared by
// the server and its sessions through a shared_ptr, so a session outliving the server is safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "metrics.hpp"

namespace cutover::controller {

// Limits on what the outside can make the controller hold. Defaults are the daemon's.
struct HttpLimits {
  size_t max_connections = 4096;     // REST clients and agents together
  size_t max_unauthenticated = 256;  // connections that have not presented the token yet
  std::chrono::milliseconds header_timeout{10000};  // to send a request's header (no token yet)
  std::chrono::milliseconds idle_timeout{120000};   // token shown: keep-alive idle, or a body
  std::chrono::milliseconds hello_timeout{10000};   // agent WebSocket: upgrade to its hello
  size_t agent_send_queue_bytes = 16u << 20;        // queued for one agent before a resync
};

class ConnectionGate {
 public:
  ConnectionGate(HttpLimits limits, Metrics& metrics) : limits_(limits), metrics_(metrics) {}

  // One admitted connection; unauthenticated until authenticated() is called.
  class Slot {
   public:
    explicit Slot(std::shared_ptr<ConnectionGate> gate) : gate_(std::move(gate)) {
      ++gate_->open_;
      ++gate_->unauthenticated_;
      gate_->publish();
    }
    Slot(Slot&&) = default;
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (!gate_) return;  // moved from
      --gate_->open_;
      if (!authenticated_) --gate_->unauthenticated_;
      gate_->publish();
    }
    void authenticated() {
      if (authenticated_) return;
      authenticated_ = true;
      --gate_->unauthenticated_;
      gate_->publish();
    }
    bool is_authenticated() const { return authenticated_; }
    ConnectionGate& gate() const { return *gate_; }

   private:
    std::shared_ptr<ConnectionGate> gate_;
    bool authenticated_ = false;
  };

  // Why a new connection must be refused ("max_connections", "max_unauthenticated"), or nullptr
  // when it may come in. Counts the refusal.
  const char* refusal() {
    const char* why = nullptr;
    if (open_ >= limits_.max_connections) {
      why = "max_connections";
    } else if (unauthenticated_ >= limits_.max_unauthenticated) {
      why = "max_unauthenticated";
    }
    if (why) metrics_.connection_refused(why);
    return why;
  }

  const HttpLimits& limits() const { return limits_; }
  Metrics& metrics() { return metrics_; }
  size_t open() const { return open_; }
  size_t unauthenticated() const { return unauthenticated_; }

 private:
  void publish() { metrics_.set_connections(open_, unauthenticated_); }

  HttpLimits limits_;
  Metrics& metrics_;
  size_t open_ = 0;
  size_t unauthenticated_ = 0;
};

}  // namespace cutover::controller
