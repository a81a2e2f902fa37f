// LibvirtMigrator implementation.
#include "libvirt_migrator.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdlib>
#include <thread>

#include "libvirt_domain_events.hpp"

namespace cutover::agent {

namespace {
// libvirt's error of the call that just failed. Read it before any other libvirt call: every
// public API call (even virDomainGetName) resets the thread's last error.
std::string last_error(const std::string& what) {
  virErrorPtr err = virGetLastError();
  return what + ": " + (err && err->message ? err->message : "unknown libvirt error");
}

// A connection to the local libvirt, with keepalive when an event loop runs in this process (the
// domain-event thread registers one): a libvirtd that stops answering fails the call instead of
// hanging it.
virConnectPtr open_local(const std::string& uri) {
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (conn) virConnectSetKeepAlive(conn, 5, 3);  // -1 without an event loop: nothing to do
  return conn;
}

// The running domain whose interfaces include `iface_id` (the caller frees it), or nullptr.
virDomainPtr running_domain_with(virConnectPtr conn, const std::string& iface_id) {
  virDomainPtr target = nullptr;
  virDomainPtr* doms = nullptr;
  const int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  for (int i = 0; i < n; ++i) {
    char* xml = virDomainGetXMLDesc(doms[i], 0);
    bool owns = false;
    if (xml) {
      for (const auto& iface : LibvirtDomainEvents::interfaces_from_xml(xml)) {
        owns = owns || iface.iface_id == iface_id;
      }
    }
    std::free(xml);
    if (owns && !target) {
      target = doms[i];
    } else {
      virDomainFree(doms[i]);
    }
  }
  std::free(doms);
  return target;
}
}  // namespace

std::string libvirt_migrate(const std::string& local_uri, const std::string& iface_id,
                            const std::string& destination_uri, const MigrateOptions& options) {
  virConnectPtr conn = open_local(local_uri);
  if (!conn) return last_error("cannot open " + local_uri);
  std::string error;
  virDomainPtr target = running_domain_with(conn, iface_id);
  if (!target) {
    error = "no running domain here has interface " + iface_id;
  } else {
    unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
    if (options.tls) flags |= VIR_MIGRATE_TLS;
    const std::string name = virDomainGetName(target);
    if (virDomainMigrateToURI3(target, destination_uri.c_str(), nullptr, 0, flags) != 0) {
      error = last_error("migrate " + name + " to " + destination_uri);
    }
    virDomainFree(target);
  }
  virConnectClose(conn);
  return error;
}

wire::Aborted libvirt_abort(const std::string& local_uri, const std::string& migration,
                            const std::string& iface_id, std::chrono::milliseconds settle) {
  using Where = wire::Aborted::Where;
  wire::Aborted out{migration, Where::unknown, ""};
  virConnectPtr conn = open_local(local_uri);
  if (!conn) {
    out.detail = last_error("cannot open " + local_uri);
    return out;
  }
  virDomainPtr dom = running_domain_with(conn, iface_id);
  if (!dom) {
    out.where = Where::gone;
    out.detail = "no running domain here has interface " + iface_id + " (it has left)";
    virConnectClose(conn);
    return out;
  }
  const std::string name = virDomainGetName(dom);
  std::string abort_said = "job aborted";
  if (virDomainAbortJob(dom) != 0) abort_said = last_error("abort");  // e.g. no job is active
  const auto deadline = std::chrono::steady_clock::now() + settle;
  for (;;) {
    int state = 0, reason = 0;
    if (virDomainGetState(dom, &state, &reason, 0) != 0 || state == VIR_DOMAIN_SHUTOFF ||
        state == VIR_DOMAIN_SHUTDOWN || state == VIR_DOMAIN_CRASHED) {
      out.where = Where::gone;
      out.detail = name + " is no longer running here (" + abort_said + ")";
      break;
    }
    if (state != VIR_DOMAIN_PAUSED || reason != VIR_DOMAIN_PAUSED_MIGRATION) {
      out.where = Where::here;
      out.detail = name + " runs here (" + abort_said + ")";
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      out.detail = name + " is still paused for its migration after " +
                   std::to_string(settle.count()) + " ms (" + abort_said + ")";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  virDomainFree(dom);
  virConnectClose(conn);
  return out;
}

}  // namespace cutover::agent
