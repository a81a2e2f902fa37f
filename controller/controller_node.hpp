// ControllerNode: one controller process's life once its flags are parsed. Alone (SQLite), it
// serves as the leader until told to stop. Among highly available controllers (etcd), it serves
// in phases: a follower phase (reads from its copy of the state, refreshed as etcd's revision
// moves; writes redirected to the leader; agents turned away) until LeaderElection makes it the
// leader, then a leader phase built afresh from etcd (state, migrations recovered, agents
// accepted, every write fenced) until it stops or loses its lease. Each phase owns its event loop
// and everything on it; only the listening address and the election outlive a phase.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <string>

#include "access.hpp"
#include "connection_gate.hpp"
#include "controller_state.hpp"
#include "etcd_store.hpp"
#include "inventory.hpp"
#include "leader_election.hpp"
#include "migration_driver.hpp"
#include "store.hpp"
#include "tls.hpp"

namespace cutover::controller {

struct NodeConfig {
  boost::asio::ip::tcp::endpoint listen;
  std::string port_file;
  std::string store_name;  // for the log
  TlsFiles tls;
  std::string token, read_token;  // empty token: no authentication (tests)
  MigrationPolicy policy;
  HttpLimits limits;
  Retention retention;
  InventoryPolicy inventory;
};

// The state as last read from (or written to) the store, kept across phases: what a follower
// serves when it cannot reach etcd.
struct StateCopy {
  std::map<std::pair<std::string, std::string>, std::string> records;  // (kind, id) -> body
  uint64_t generation = 0;
  bool have = false;
};

class ControllerNode {
 public:
  // `etcd` and `election` together, or neither (the only controller).
  ControllerNode(NodeConfig config, Store& store, EtcdStore* etcd, LeaderElection* election);
  // Serves phase after phase until SIGINT/SIGTERM. Throws on what cannot go on (the listening
  // address taken, a corrupt store).
  void run();

 private:
  enum class End { stopped, elected, stepped_down };
  End serve(bool leading);

  NodeConfig config_;
  Store& store_;
  EtcdStore* etcd_;
  LeaderElection* election_;
  StateCopy copy_;
};

}  // namespace cutover::controller
