// LibvirtDomainEvents: libvirt connection, lifecycle events, running-interface computation.
#include "libvirt_domain_events.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <chrono>
#include <cstdlib>
#include <mutex>

#include "domain_xml.hpp"
#include "logging.hpp"
#include "parse_error.hpp"

namespace cutover::agent {

namespace {
std::once_flag g_event_impl;

void ignore_errors(void*, virErrorPtr) {}

using Ifaces = LibvirtDomainEvents::DomainsNow;

std::vector<VmInterface> domain_interfaces_of(virDomainPtr dom) {
  std::vector<VmInterface> ifaces;
  if (char* xml = virDomainGetXMLDesc(dom, 0)) {
    ifaces = LibvirtDomainEvents::interfaces_from_xml(xml);
    std::free(xml);
  }
  return ifaces;
}

Ifaces domain_ifaces(virConnectPtr conn) {
  Ifaces out;
  virDomainPtr* doms = nullptr;
  const int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  for (int i = 0; i < n; ++i) {
    int state = 0, reason = 0;
    if (virDomainGetState(doms[i], &state, &reason, 0) == 0) {
      std::set<std::string>* into = nullptr;
      if (state == VIR_DOMAIN_RUNNING) into = &out.running;
      // Paused for the final copy, or switched to the destination in post-copy (this host still
      // feeds it memory): either way its network belongs to the destination now.
      if (state == VIR_DOMAIN_PAUSED &&
          (reason == VIR_DOMAIN_PAUSED_MIGRATION || reason == VIR_DOMAIN_PAUSED_POSTCOPY)) {
        into = &out.paused;
      }
      if (into) {
        auto ifaces = domain_interfaces_of(doms[i]);
        for (const auto& iface : ifaces) into->insert(iface.iface_id);
        if (into == &out.running && !ifaces.empty()) {
          out.vms[virDomainGetName(doms[i])] = std::move(ifaces);
        }
      }
    }
    virDomainFree(doms[i]);
  }
  std::free(doms);
  return out;
}

struct LoopCtx {
  virConnectPtr conn;
  LibvirtDomainEvents::RunningFn* fn;
  Ifaces last;
  bool first = true;
  std::map<std::string, int64_t> iterations;  // from MIGRATION_ITERATION events
  void refresh() {
    auto now = domain_ifaces(conn);
    // An iteration counts while its domain is still here, running or paused for the last copy.
    std::erase_if(iterations, [&](const auto& kv) {
      return !now.running.count(kv.first) && !now.paused.count(kv.first);
    });
    now.precopy_iterations = iterations;
    emit(std::move(now));
  }
  void emit(Ifaces now) {
    if (first || !(now == last)) {
      first = false;
      last = now;
      (*fn)(std::move(now));
    }
  }
  // A pre-copy pass of a domain leaving: no libvirt call here (the source daemon is busy with
  // the migration, and this runs up to the pause), the interfaces come from the last refresh.
  void iteration(const std::string& domain, int64_t n) {
    auto it = last.vms.find(domain);
    if (it == last.vms.end()) return;
    for (const auto& iface : it->second) iterations[iface.iface_id] = n;
    Ifaces now = last;
    now.precopy_iterations = iterations;
    emit(std::move(now));
  }
  // The domain paused for an outgoing migration's final copy: said at once, from what the last
  // refresh knew, without a call to libvirt (its daemon is busy migrating; a round trip there
  // is time the destination waits for the frames this host relays).
  void paused_for_migration(const std::string& domain) {
    auto it = last.vms.find(domain);
    if (it == last.vms.end()) return;
    Ifaces now = last;
    for (const auto& iface : it->second) {
      now.running.erase(iface.iface_id);
      now.paused.insert(iface.iface_id);
    }
    now.vms.erase(domain);
    emit(std::move(now));
  }
  // Any lifecycle change but the pause ends what the count described (a migration that failed
  // and resumed here, a stop): the next migration starts counting again.
  void forget(const std::string& domain) {
    auto it = last.vms.find(domain);
    if (it == last.vms.end()) return;
    for (const auto& iface : it->second) iterations.erase(iface.iface_id);
  }
};

int on_lifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  logger("libvirt")->debug("domain {} event {} detail {}", virDomainGetName(dom), event, detail);
  auto* ctx = static_cast<LoopCtx*>(opaque);
  // The pause for the final copy, or (post-copy) the switch to the destination.
  if (event == VIR_DOMAIN_EVENT_SUSPENDED && (detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED ||
                                              detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY)) {
    ctx->paused_for_migration(virDomainGetName(dom));
  }
  if (event != VIR_DOMAIN_EVENT_SUSPENDED) ctx->forget(virDomainGetName(dom));
  ctx->refresh();
  return 0;
}

void on_iteration(virConnectPtr, virDomainPtr dom, int iteration, void* opaque) {
  logger("libvirt")->info("domain {}: outgoing migration, pre-copy iteration {}",
                          virDomainGetName(dom), iteration);
  static_cast<LoopCtx*>(opaque)->iteration(virDomainGetName(dom), iteration);
}
}  // namespace

std::vector<VmInterface> LibvirtDomainEvents::interfaces_from_xml(const std::string& xml) {
  try {
    return domain_interfaces(xml);
  } catch (const ParseError& e) {
    logger("libvirt")->warn("a domain's XML could not be read: {}", e.what());
    return {};
  }
}

LibvirtDomainEvents::LibvirtDomainEvents(std::string uri, RunningFn on_change)
    : uri_(std::move(uri)), on_change_(std::move(on_change)) {}

LibvirtDomainEvents::~LibvirtDomainEvents() { stop(); }

void LibvirtDomainEvents::start() {
  thread_ = std::thread([this] { run(); });
}

void LibvirtDomainEvents::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  thread_.join();
}

void LibvirtDomainEvents::run() {
  auto log = logger("libvirt");
  std::call_once(g_event_impl, [] {
    virSetErrorFunc(nullptr, ignore_errors);
    virEventRegisterDefaultImpl();
  });
  // Wakes the event loop regularly so that stop() is noticed.
  const int tick = virEventAddTimeout(
      200, [](int, void*) {}, nullptr, nullptr);
  bool warned = false;
  while (!stopping_) {
    virConnectPtr conn = virConnectOpen(uri_.c_str());
    if (!conn) {
      if (!warned) {
        virErrorPtr err = virGetLastError();
        log->warn("libvirt {} not reachable ({}); retrying", uri_,
                  err && err->message ? err->message : "?");
        warned = true;
      }
      for (int i = 0; i < 5 && !stopping_; ++i) virEventRunDefaultImpl();  // ~1 s
      continue;
    }
    warned = false;
    connected_ = true;
    log->info("watching libvirt {}", uri_);
    LoopCtx ctx{conn, &on_change_, {}, true, {}};
    const int cb =
        virConnectDomainEventRegisterAny(conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &ctx, nullptr);
    const int iter_cb =
        virConnectDomainEventRegisterAny(conn, nullptr, VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_iteration), &ctx, nullptr);
    ctx.refresh();
    while (!stopping_ && virConnectIsAlive(conn) == 1) virEventRunDefaultImpl();
    if (cb >= 0) virConnectDomainEventDeregisterAny(conn, cb);
    if (iter_cb >= 0) virConnectDomainEventDeregisterAny(conn, iter_cb);
    virConnectClose(conn);
    connected_ = false;
    if (!stopping_) log->warn("libvirt {} connection lost; reconnecting", uri_);
  }
  if (tick >= 0) virEventRemoveTimeout(tick);
}

}  // namespace cutover::agent
