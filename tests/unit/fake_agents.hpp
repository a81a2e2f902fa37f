// FakeAgent: an in-process agent on a fake dataplane for controller tests. It attaches to the
// AgentHub like a WebSocket session would, decodes what the hub sends, and ACKs (with the ports
// it claims bound) or NACKs when the test says so. Like a real session it answers later, never
// from inside the hub's send: settle() delivers the pending ACKs until nothing is left to say.
#pragma once

#include <set>
#include <string>

#include "agent_hub.hpp"
#include "wire.hpp"

namespace cutover::testing {

class FakeAgent {
 public:
  FakeAgent(controller::AgentHub& hub, const std::string& host, bool auto_ack = true)
      : hub_(hub), host_(HostId::parse(host)), auto_ack_(auto_ack) {}

  void connect() {
    session_ = hub_.attach(host_, [this](const std::string& text) {
      auto msg = wire::decode_controller_message(text);
      if (auto* d = std::get_if<wire::Desired>(&msg)) {
        last = d->state;
      } else if (auto* m = std::get_if<wire::Migrate>(&msg)) {
        migrate_commands.push_back(*m);
        return;
      } else if (auto* p = std::get_if<wire::Prepared>(&msg)) {
        prepared.push_back(*p);
        return;
      } else if (auto* a = std::get_if<wire::Abort>(&msg)) {
        aborts.push_back(*a);
        return;
      } else {
        wire::apply(last, std::get<wire::Delta>(msg));
        ++deltas;
      }
      ++received;
      pending = auto_ack_;
    });
  }
  void disconnect() { hub_.detach(session_); }
  void ack() {
    pending = false;
    wire::Ack a;
    a.generation = last.generation;
    a.waiting_for = waiting_for;
    a.bound_ports.assign(bound.begin(), bound.end());
    a.paused_ports.assign(paused.begin(), paused.end());
    a.foreign_running.assign(foreign.begin(), foreign.end());
    a.storage_ready.assign(storage_ready.begin(), storage_ready.end());
    a.storage_failed = storage_failed;
    for (const auto& [name, ids] : vms) {
      for (const auto& id : ids) a.vms[name].push_back(VmInterface{id, "", "", "", "", {}});
    }
    for (const auto& [name, ifaces] : domains) {
      auto& into = a.vms[name];
      into.insert(into.end(), ifaces.begin(), ifaces.end());
    }
    a.precopy_iterations = precopy;
    a.incoming.assign(incoming.begin(), incoming.end());
    a.live_migrations.assign(live.begin(), live.end());
    hub_.on_message(session_, a);
  }
  // An ACK of the last generation whose text repeats the last full ack()'s report (what the
  // agent session hands over without decoding: wire::AckRepeat).
  void repeat_ack() {
    pending = false;
    hub_.on_repeated_ack(session_, last.generation);
  }
  void nack(const std::string& error) {
    hub_.on_message(session_, wire::Nack{last.generation, error, ""});
  }
  void bind(const std::string& port) {
    bound.insert(port);
    ack();
  }
  void set_auto_ack(bool v) { auto_ack_ = v; }
  void announced(const std::string& port, int64_t round, int64_t rounds, int64_t frames) {
    hub_.on_message(session_, wire::Announced{port, round, rounds, frames, 0, ""});
  }
  void conntrack(const std::string& port, std::vector<CarriedConn> conns) {
    hub_.on_message(session_, wire::Conntrack{port, std::move(conns)});
  }
  // The libvirt hook on this host asks to prepare VMs arriving with these interfaces.
  void ask_incoming(std::vector<std::string> ifaces) {
    hub_.on_message(session_, wire::Incoming{std::move(ifaces)});
  }
  void report_migration_failed(const std::string& migration, const std::string& error) {
    hub_.on_message(session_, wire::MigrationFailed{migration, error});
  }
  // Where the VM is after the abort of `migration` (libvirt_abort's answer).
  void answer_abort(const std::string& migration, wire::Aborted::Where where) {
    hub_.on_message(session_, wire::Aborted{migration, where, "fake"});
  }

  DesiredState last;
  int received = 0;
  int deltas = 0;
  std::vector<wire::Migrate> migrate_commands;
  std::vector<wire::Prepared> prepared;  // the controller's word on arriving ports
  std::vector<wire::Abort> aborts;       // orders to abort a libvirt migration
  std::set<std::string> incoming;        // VM taps here no port claims (arrivals)
  bool pending = false;
  std::vector<std::string> waiting_for;  // non-empty: ACKs say "applied partially"
  std::set<std::string> bound;
  std::set<std::string> paused;
  std::set<std::string> foreign;
  std::set<std::string> storage_ready;
  std::map<std::string, std::string> storage_failed;
  std::map<std::string, std::vector<std::string>> vms;      // libvirt domains "running" here
  std::map<std::string, std::vector<VmInterface>> domains;  // the same, with whole interfaces
  std::map<std::string, int64_t> precopy;  // port -> pre-copy pass of an outgoing migration
  std::set<std::string> live;              // migrations whose libvirt call runs here

 private:
  controller::AgentHub& hub_;
  HostId host_;
  bool auto_ack_;
  uint64_t session_ = 0;
};

template <typename... Agents>
void settle(Agents&... agents) {
  for (bool any = true; any;) {
    any = false;
    for (FakeAgent* a : {&agents...}) {
      if (a->pending) {
        a->ack();
        any = true;
      }
    }
  }
}

}  // namespace cutover::testing
