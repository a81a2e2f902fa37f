// OvsFlowSwitch implementation on the C shim.
#include "ovs_flow_switch.hpp"

#include <stdexcept>

#include "ovs_shim.h"

namespace cutover::agent {

namespace {
std::string take(char* err) {
  std::string s = err ? err : "unknown error";
  cov_free(err);
  return s;
}
}  // namespace

OvsFlowSwitch::~OvsFlowSwitch() { disconnect(); }

void OvsFlowSwitch::disconnect() {
  cov_of_close(of_);
  of_ = nullptr;
}

cov_of* OvsFlowSwitch::connection() {
  if (!of_) {
    char* err = nullptr;
    if (cov_of_open(target_.c_str(), 5000, &of_, &err) != 0) {
      of_ = nullptr;
      throw std::runtime_error(take(err));
    }
  }
  return of_;
}

FlowEntry OvsFlowSwitch::normalize(const std::string& flow) {
  char *key = nullptr, *actions = nullptr, *err = nullptr;
  if (cov_flow_normalize(flow.c_str(), &key, &actions, &err) != 0) {
    throw std::invalid_argument(take(err));
  }
  FlowEntry e{key, actions};
  cov_free(key);
  cov_free(actions);
  return e;
}

std::vector<FlowEntry> OvsFlowSwitch::dump(uint64_t cookie) {
  for (int attempt = 0;; ++attempt) {
    char **keys = nullptr, **actions = nullptr, *err = nullptr;
    size_t n = 0;
    if (cov_of_dump(connection(), cookie, UINT64_MAX, &keys, &actions, &n, &err) != 0) {
      disconnect();
      if (attempt == 0) {
        cov_free(err);
        continue;  // stale connection (switch restarted): reconnect once
      }
      throw std::runtime_error(take(err));
    }
    std::vector<FlowEntry> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) out.push_back({keys[i], actions[i]});
    cov_free_strings(keys, n);
    cov_free_strings(actions, n);
    return out;
  }
}

void OvsFlowSwitch::bundle(const std::vector<FlowMod>& mods, uint64_t cookie) {
  std::vector<int> ops;
  std::vector<const char*> texts;
  ops.reserve(mods.size());
  texts.reserve(mods.size());
  for (const auto& m : mods) {
    ops.push_back(m.op == FlowOp::add      ? COV_FLOW_ADD
                  : m.op == FlowOp::modify ? COV_FLOW_MODIFY
                                           : COV_FLOW_DELETE);
    texts.push_back(m.flow.c_str());
  }
  char* err = nullptr;
  if (cov_of_bundle(connection(), ops.data(), texts.data(), mods.size(), cookie, &err) != 0) {
    // A failed bundle is discarded by the switch: nothing applied. Drop the connection so the
    // next attempt starts clean.
    disconnect();
    throw std::runtime_error(take(err));
  }
}

}  // namespace cutover::agent
