// NvmeFabric over libnvme: the kernel's NVMe over Fabrics host (nvme-tcp) through
// /dev/nvme-fabrics, and sysfs for the topology.
#include <libnvme.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage_attacher.hpp"

namespace cutover::agent {

namespace {
struct Root {
  nvme_root_t r;
  Root() : r(nvme_create_root(stderr, LOG_ERR)) {
    if (!r) throw StorageError(std::string("libnvme: ") + strerror(errno));
  }
  ~Root() { nvme_free_tree(r); }
};

class LibnvmeFabric : public NvmeFabric {
 public:
  std::string connect(const std::string& nqn, const VolumePath& path, const std::string& host_nqn,
                      const Options& o) override {
    Root root;
    nvme_host_t h = nvme_lookup_host(root.r, host_nqn.c_str(), nullptr);
    const auto traddr = path.traddr.to_string();
    const auto trsvcid = std::to_string(path.trsvcid);
    nvme_ctrl_t c = nvme_create_ctrl(root.r, nqn.c_str(), "tcp", traddr.c_str(), nullptr, nullptr,
                                     trsvcid.c_str());
    if (!h || !c) throw StorageError("libnvme: cannot describe the controller");
    nvme_fabrics_config cfg;
    nvmf_default_config(&cfg);
    cfg.keep_alive_tmo = o.keep_alive_tmo_s;
    cfg.reconnect_delay = o.reconnect_delay_s;
    cfg.ctrl_loss_tmo = o.ctrl_loss_tmo_s;
    if (nvmf_add_ctrl(h, c, &cfg) != 0) {
      throw StorageError(std::string("connect failed: ") + strerror(errno));
    }
    return nvme_ctrl_get_name(c);
  }
  std::vector<std::array<uint8_t, 16>> namespaces(const std::string& ctrl) override {
    Root root;
    std::vector<std::array<uint8_t, 16>> out;
    nvme_ctrl_t c = nvme_scan_ctrl(root.r, ctrl.c_str());
    if (!c) return out;
    nvme_ns_t n;
    nvme_ctrl_for_each_ns(c, n) {
      std::array<uint8_t, 16> g{};
      std::memcpy(g.data(), nvme_ns_get_nguid(n), 16);
      out.push_back(g);
    }
    return out;
  }
  std::vector<std::string> controllers(const std::string& nqn) override {
    Root root;
    std::vector<std::string> out;
    if (nvme_scan_topology(root.r, nullptr, nullptr) != 0) return out;
    nvme_host_t h;
    nvme_subsystem_t s;
    nvme_ctrl_t c;
    nvme_for_each_host(root.r, h) {
      nvme_for_each_subsystem(h, s) {
        if (nqn != nvme_subsystem_get_nqn(s)) continue;
        nvme_subsystem_for_each_ctrl(s, c) out.push_back(nvme_ctrl_get_name(c));
      }
    }
    return out;
  }
  void disconnect(const std::string& ctrl) override {
    Root root;
    nvme_ctrl_t c = nvme_scan_ctrl(root.r, ctrl.c_str());
    if (!c) return;  // already gone
    if (nvme_disconnect_ctrl(c) != 0) {
      throw StorageError("disconnect " + ctrl + ": " + strerror(errno));
    }
  }
};
}  // namespace

std::unique_ptr<NvmeFabric> make_libnvme_fabric(std::string& why) {
  if (access("/sys/module/nvme_tcp", F_OK) != 0) {
    why =
        "this kernel has no nvme-tcp loaded (/sys/module/nvme_tcp missing; try modprobe nvme-tcp)";
    return nullptr;
  }
  if (access("/dev/nvme-fabrics", W_OK) != 0) {
    why = "/dev/nvme-fabrics is missing or not writable (nvme-fabrics module)";
    return nullptr;
  }
  return std::make_unique<LibnvmeFabric>();
}

}  // namespace cutover::agent
