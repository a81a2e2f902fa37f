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

FlowEntry OvsFlowSwitch::normalize(const std::string& flow, bool canonical) {
  if (!canonical) {
    // Parsed in bundle(), message by message while the switch already takes in the first ones
    // on its own core: into an empty table that halves the time to the barrier's reply.
    const auto pos = flow.find(" actions=");
    return {flow.substr(0, pos), pos == std::string::npos ? "" : flow.substr(pos + 9), nullptr};
  }
  char *key = nullptr, *actions = nullptr, *err = nullptr;
  cov_flow* parsed = nullptr;
  if (cov_flow_parse(flow.c_str(), &parsed, &key, &actions, &err) != 0) {
    throw std::invalid_argument(take(err));
  }
  std::shared_ptr<void> keep(parsed, [](void* p) { cov_flow_free(static_cast<cov_flow*>(p)); });
  FlowEntry e{key, actions, keep};
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
    for (size_t i = 0; i < n; ++i) out.push_back({keys[i], actions[i], nullptr});
    cov_free_strings(keys, n);
    cov_free_strings(actions, n);
    return out;
  }
}

void OvsFlowSwitch::bundle(const std::vector<FlowMod>& mods, uint64_t cookie) {
  std::vector<int> ops;
  std::vector<const char*> texts;
  std::vector<cov_flow*> parsed;
  ops.reserve(mods.size());
  texts.reserve(mods.size());
  parsed.reserve(mods.size());
  for (const auto& m : mods) {
    parsed.push_back(static_cast<cov_flow*>(m.parsed.get()));
    ops.push_back(m.op == FlowOp::add      ? COV_FLOW_ADD
                  : m.op == FlowOp::modify ? COV_FLOW_MODIFY
                                           : COV_FLOW_DELETE);
    texts.push_back(m.flow.c_str());
  }
  char* err = nullptr;
  if (cov_of_bundle(connection(), ops.data(), texts.data(), parsed.data(), mods.size(), cookie,
                    &err) != 0) {
    // A failed bundle is discarded by the switch: nothing applied. Drop the connection so the
    // next attempt starts clean.
    disconnect();
    throw std::runtime_error(take(err));
  }
}

void OvsFlowSwitch::packet_out(int64_t in_port, const std::vector<uint8_t>& frame) {
  char* err = nullptr;
  if (cov_of_packet_out(connection(), in_port, frame.data(), frame.size(), &err) != 0) {
    disconnect();
    throw std::runtime_error(take(err));
  }
}

std::vector<Meter> OvsFlowSwitch::meters() {
  cov_meter* raw = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (cov_of_meters(connection(), &raw, &n, &err) != 0) {
    disconnect();
    throw std::runtime_error(take(err));
  }
  std::vector<Meter> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(
        {raw[i].id, raw[i].simple ? static_cast<int64_t>(raw[i].kbps) : -1, raw[i].burst_kbit});
  }
  cov_free(raw);
  return out;
}

void OvsFlowSwitch::set_meter(const Meter& m, bool modify) {
  const cov_meter c{m.id, static_cast<uint32_t>(m.kbit_s), static_cast<uint32_t>(m.burst_kbit), 1};
  char* err = nullptr;
  if (cov_of_meter_mod(connection(), modify ? COV_METER_MODIFY : COV_METER_ADD, &c, &err) != 0) {
    disconnect();
    throw std::runtime_error(take(err));
  }
}

void OvsFlowSwitch::del_meter(uint32_t id) {
  const cov_meter c{id, 0, 0, 0};
  char* err = nullptr;
  if (cov_of_meter_mod(connection(), COV_METER_DELETE, &c, &err) != 0) {
    disconnect();
    throw std::runtime_error(take(err));
  }
}

}  // namespace cutover::agent
