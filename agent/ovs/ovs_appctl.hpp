// ovs_appctl: a minimal client for ovs-vswitchd's unixctl socket (JSON-RPC over a unix socket,
// what `ovs-appctl` speaks), used for commands OpenFlow lacks, such as dumping one conntrack
// zone. Blocking with a deadline; any thread (it shares nothing with the OVS thread).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace cutover::agent {

// <rundir>/ovs-vswitchd.<pid>.ctl, the pid read from <rundir>/ovs-vswitchd.pid, else
// <rundir>/ovs-vswitchd.ctl. Throws std::runtime_error naming both when neither is there.
std::string vswitchd_ctl_path(const std::string& rundir);

// Runs one command; returns its text output. Throws std::runtime_error on connection failure,
// timeout or an error reply (with OVS's message).
std::string ovs_appctl(const std::string& ctl_path, const std::string& command,
                       const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace cutover::agent
