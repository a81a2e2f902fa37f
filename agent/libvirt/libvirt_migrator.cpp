// LibvirtMigrator implementation.
#include "libvirt_migrator.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdlib>

#include "libvirt_domain_events.hpp"

namespace cutover::agent {

namespace {
// libvirt's error of the call that just failed. Read it before any other libvirt call: every
// public API call (even virDomainGetName) resets the thread's last error.
std::string last_error(const std::string& what) {
  virErrorPtr err = virGetLastError();
  return what + ": " + (err && err->message ? err->message : "unknown libvirt error");
}
}  // namespace

std::string libvirt_migrate(const std::string& local_uri, const std::string& iface_id,
                            const std::string& destination_uri) {
  virConnectPtr conn = virConnectOpen(local_uri.c_str());
  if (!conn) return last_error("cannot open " + local_uri);
  std::string error;
  virDomainPtr target = nullptr;
  virDomainPtr* doms = nullptr;
  const int n = virConnectListAllDomains(conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  for (int i = 0; i < n; ++i) {
    char* xml = virDomainGetXMLDesc(doms[i], 0);
    const bool owns = xml && LibvirtDomainEvents::iface_ids_from_xml(xml).count(iface_id);
    std::free(xml);
    if (owns && !target) {
      target = doms[i];
    } else {
      virDomainFree(doms[i]);
    }
  }
  std::free(doms);
  if (!target) {
    error = "no running domain here has interface " + iface_id;
  } else {
    const unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
    const std::string name = virDomainGetName(target);
    if (virDomainMigrateToURI3(target, destination_uri.c_str(), nullptr, 0, flags) != 0) {
      error = last_error("migrate " + name + " to " + destination_uri);
    }
    virDomainFree(target);
  }
  virConnectClose(conn);
  return error;
}

}  // namespace cutover::agent
