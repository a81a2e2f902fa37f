// LibvirtMigrator: runs one live migration the controller asked for - finds the local domain
// that owns an OVS interface id and calls virDomainMigrateToURI3 (live, peer-to-peer) towards
// the destination's libvirt. Blocking: run it on its own thread. Returns "" or libvirt's error.
#pragma once

#include <string>

namespace cutover::agent {

std::string libvirt_migrate(const std::string& local_uri, const std::string& iface_id,
                            const std::string& destination_uri);

}  // namespace cutover::agent
