// ControllerClient: the agent's end of the agent channel. Connects to the controller's WebSocket
// (/v1/agent, bearer token), says hello with this host's identity, hands every desired state it
// receives to a callback, and ACKs/NACKs the generations the dataplane reports. Reconnects with
// exponential backoff (100 ms .. 5 s); the controller resends the full state on every connect.
// Runs on the agent's io_context.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "apply_report.hpp"
#include "controller_link.hpp"
#include "desired_index.hpp"
#include "desired_state.hpp"
#include "model.hpp"
#include "wire.hpp"

namespace cutover::agent {

struct ControllerClientConfig {
  std::string host = "127.0.0.1";  // controller address (the one tried now)
  std::string port = "8180";
  // Every controller's address (highly available controllers): on a failed attempt or a lost
  // channel the next is tried; a follower turns the agent away, the leader takes it.
  std::vector<std::pair<std::string, std::string>> controllers;
  bool tls = false;                                        // wss://: then tls_context is required
  std::shared_ptr<boost::asio::ssl::context> tls_context;  // make_client_tls (src/tls.hpp)
  std::string token;  // "" with TLS: the certificate says who this agent is
  Host self;
};

class ControllerClient : public ControllerLink {
 public:
  // A whole state (on every connect) or a delta relative to what came before on the connection.
  using DesiredFn = std::function<void(overlay::DesiredChange)>;
  using MigrateFn = std::function<void(const wire::Migrate&)>;
  using PreparedFn = std::function<void(const wire::Prepared&)>;
  using AbortFn = std::function<void(const wire::Abort&)>;
  ControllerClient(boost::asio::io_context& io, ControllerClientConfig config,
                   DesiredFn on_desired);
  ~ControllerClient() override;
  // Starts connecting; once started, the same as reconnect().
  void start();
  // A channel that is down (waiting out its backoff) is tried again now; a live one is kept.
  void reconnect();
  void stop();
  // ACK (applied, or partially with what it waits for) or NACK (rejected) the report's
  // generation; transient failures are retried by the dataplane and not reported. Repeats are
  // suppressed unless something changed.
  void report(const ApplyReport& r) override;
  bool connected() const;
  // Commands from the controller to live-migrate a VM (set before start()).
  void on_migrate(MigrateFn fn);
  // Word from the controller on an arriving port's migration (set before start()).
  void on_prepared(PreparedFn fn);
  // Orders to abort a live migration of a VM leaving here (set before start()).
  void on_abort(AbortFn fn);
  // Outcomes of libvirt calls: kept, and sent again after each reconnect for 10 minutes (the
  // controller may have been away when they happened).
  void migration_failed(const std::string& migration, const std::string& error) override;
  void aborted(const wire::Aborted& answer) override;
  // Tells the controller an announcement round went out (dropped while disconnected).
  void announced(const wire::Announced& round) override;
  // Sends a migrating port's conntrack entries (dropped while disconnected).
  void conntrack(const wire::Conntrack& ct) override;
  // Asks the controller to prepare VMs arriving with these interfaces (dropped while
  // disconnected: the asker's wait runs out).
  void incoming(const std::vector<std::string>& iface_ids) override;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Parses "ws://HOST:PORT[/v1/agent]", "wss://..." (sets tls) or "HOST:PORT"; throws ParseError
// naming --controller.
void parse_controller_url(const std::string& url, ControllerClientConfig& out);

}  // namespace cutover::agent
