// LibvirtMigrator implementation.
#include "libvirt_migrator.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "libvirt_domain_events.hpp"
#include "logging.hpp"

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
// Post-copy: libvirt starts the migration in pre-copy; this switches it to post-copy as soon as
// the job reports a memory iteration (libvirt counts the first at the end of the first pass over
// memory), so the VM runs on the destination from then on and the pages it dirtied follow, in
// the background and on demand. It does not wait for the second pass, which a guest with little
// dirty memory (the lab's) ends by converging within milliseconds. It watches the job from a
// connection of its own while libvirt_migrate's blocks in virDomainMigrateToURI3, and stops when
// destroyed (the migration ended, either way).
class PostcopySwitch {
 public:
  PostcopySwitch(std::string uri, std::string domain)
      : thread_([this, uri = std::move(uri), domain = std::move(domain)] { run(uri, domain); }) {}
  ~PostcopySwitch() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run(const std::string& uri, const std::string& domain) {
    auto log = logger("libvirt");
    virConnectPtr conn = open_local(uri);
    virDomainPtr dom = conn ? virDomainLookupByName(conn, domain.c_str()) : nullptr;
    if (!dom) {
      log->warn("{}: cannot watch its migration for the post-copy switch: {}", domain,
                last_error("lookup"));
      if (conn) virConnectClose(conn);
      return;
    }
    while (!stop_) {
      int type = 0, n = 0;
      virTypedParameterPtr params = nullptr;
      unsigned long long iteration = 0;
      if (virDomainGetJobStats(dom, &type, &params, &n, 0) == 0) {
        virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_MEMORY_ITERATION, &iteration);
        virTypedParamsFree(params, n);
      }
      if (iteration >= 1) {  // the first pass over memory is done
        if (virDomainMigrateStartPostCopy(dom, 0) == 0) {
          log->info("{}: switching to post-copy", domain);
        } else {
          log->warn("{}: {}; it stays in pre-copy", domain, last_error("post-copy switch"));
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    virDomainFree(dom);
    virConnectClose(conn);
  }

  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: it starts with everything above in place
};
}  // namespace

MigrateOptions MigrateOptions::with(const LibvirtMigrationSettings& s) const {
  MigrateOptions o = *this;
  o.persist = s.persist.value_or(persist);
  o.auto_converge = s.auto_converge.value_or(auto_converge);
  o.compressed = s.compressed.value_or(compressed);
  o.bandwidth_mib_s = s.bandwidth_mib_s.value_or(bandwidth_mib_s);
  o.postcopy = s.postcopy.value_or(postcopy);
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
  if (postcopy) f |= VIR_MIGRATE_POSTCOPY;
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
    std::optional<PostcopySwitch> postcopy;
    if (options.postcopy) postcopy.emplace(local_uri, name);
    if (virDomainMigrateToURI3(target, destination_uri.c_str(), params, nparams, flags) != 0) {
      error = last_error("migrate " + name + " to " + destination_uri);
    }
    postcopy.reset();
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
    if (state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_POSTCOPY) {
      // Switched to post-copy: it runs on the destination, whose memory this host still feeds.
      out.where = Where::gone;
      out.detail = name + " runs on the destination in post-copy (" + abort_said + ")";
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
