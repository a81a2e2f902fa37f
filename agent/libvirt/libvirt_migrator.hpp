// LibvirtMigrator: the source's side of a live migration through this hypervisor's libvirt.
// libvirt_migrate runs one the controller asked for - finds the local domain that owns an OVS
// interface id and calls virDomainMigrateToURI3 (live, peer-to-peer) towards the destination's
// libvirt. libvirt_abort aborts the migration job of such a domain (whoever started it) and
// says where the VM is once the job has ended. Both block: run them off the io_context.
#pragma once

#include <chrono>
#include <string>

#include "model.hpp"
#include "wire.hpp"

namespace cutover::agent {

struct MigrateOptions {
  // VIR_MIGRATE_TLS: libvirt carries the migration stream over TLS (both hosts' libvirt need
  // their certificates set up: migrate_tls in qemu.conf and /etc/pki/qemu; see docs/install.md).
  bool tls = false;
  // VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE: the domain ends defined on the
  // destination and no longer on the source (UNDEFINE_SOURCE only for a persistent domain: a
  // transient one has no definition to remove).
  bool persist = true;
  bool auto_converge = false;   // VIR_MIGRATE_AUTO_CONVERGE
  bool compressed = false;      // VIR_MIGRATE_COMPRESSED
  int64_t bandwidth_mib_s = 0;  // VIR_MIGRATE_PARAM_BANDWIDTH; 0 = libvirt's own
  // VIR_MIGRATE_POSTCOPY, and virDomainMigrateStartPostCopy as soon as the job reports its
  // first memory iteration (libvirt_migrate watches the job for it).
  bool postcopy = false;
  // These defaults with what a request set.
  MigrateOptions with(const LibvirtMigrationSettings& s) const;
  // libvirt's flags for these options (live, peer-to-peer always).
  unsigned flags(bool domain_persistent) const;
};

// "" or libvirt's error.
std::string libvirt_migrate(const std::string& local_uri, const std::string& iface_id,
                            const std::string& destination_uri, const MigrateOptions& options = {});

// Aborts the live migration of the running domain with this interface (virDomainAbortJob), then
// waits up to `settle` for the domain to leave its migration pause: running here (the abort, or
// a failure, kept it), gone (it had already switched over), or unknown (libvirt unreachable, or
// still paused at the deadline). Never throws.
wire::Aborted libvirt_abort(const std::string& local_uri, const std::string& migration,
                            const std::string& iface_id, std::chrono::milliseconds settle);

}  // namespace cutover::agent
