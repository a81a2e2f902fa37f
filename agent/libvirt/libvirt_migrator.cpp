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

MigrateOptions MigrateOptions::with(const LibvirtMigrationSettings& s) const {
  MigrateOptions o = *this;
  o.persist = s.persist.value_or(persist);
  o.auto_converge = s.auto_converge.value_or(auto_converge);
  o.compressed = s.compressed.value_or(compressed);
  o.bandwidth_mib_s = s.bandwidth_mib_s.value_or(bandwidth_mib_s);
  return o;
}

unsigned MigrateOptions::flags(bool domain_persistent) const {
  unsigned f = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
  if (tls) f |= VIR_MIGRATE_TLS;
  if (persist) {
    f |= VIR_MIGRATE_PERSIST_DEST;
    // Only a persistent domain has a definition on the source to remove.
    if (domain_persistent) f |= VIR_MIGRATE_UNDEFINE_SOURCE;
  }
  if (auto_converge) f |= VIR_MIGRATE_AUTO_CONVERGE;
  if (compressed) f |= VIR_MIGRATE_COMPRESSED;
  return f;
}

std::string libvirt_migrate(const std::string& local_uri, const std::string& iface_id,
                            const std::string& destination_uri, const MigrateOptions& options) {
  virConnectPtr conn = open_local(local_uri);
  if (!conn) return last_error("cannot open " + local_uri);
  std::string error;
  virDomainPtr target = running_domain_with(conn, iface_id);
  if (!target) {
    error = "no running domain here has interface " + iface_id;
  } else {
    const unsigned flags = options.flags(virDomainIsPersistent(target) == 1);
    const std::string name = virDomainGetName(target);
    virTypedParameterPtr params = nullptr;
    int nparams = 0, maxparams = 0;
    if (options.bandwidth_mib_s > 0) {
      virTypedParamsAddULLong(&params, &nparams, &maxparams, VIR_MIGRATE_PARAM_BANDWIDTH,
                              static_cast<unsigned long long>(options.bandwidth_mib_s));
    }
    if (virDomainMigrateToURI3(target, destination_uri.c_str(), params, nparams, flags) != 0) {
      error = last_error("migrate " + name + " to " + destination_uri);
    }
    virTypedParamsFree(params, nparams);
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
