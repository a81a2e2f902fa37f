// StorageAttacher: how an agent makes a VM's NVMe/TCP volume usable on its host (attach) and lets
// it go (detach). Implementations: KernelAttacher (libnvme: the kernel's nvme-tcp connects, the
// namespace must appear with the expected NGUID), ProbeAttacher (the userspace path probe proves
// the volume reachable from this host; nothing is attached), fakes in tests. Blocking calls,
// bounded by their own timeouts; they run on the storage thread, never on the agent's I/O thread.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "model.hpp"

namespace cutover::agent {

struct StorageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class StorageAttacher {
 public:
  virtual ~StorageAttacher() = default;
  virtual const char* kind() const = 0;  // "kernel" or "probe" (Host.storage)
  // Ready to use on this host when it returns; throws StorageError with the reason.
  virtual void attach(const Volume& v, const std::string& host_nqn) = 0;
  // Best effort; throws StorageError when the volume stays attached.
  virtual void detach(const Volume& v, const std::string& host_nqn) = 0;
};

// The kernel path (libnvme over /dev/nvme-fabrics). The fabric is injected so the logic (connect
// with the chosen timeouts, wait for the namespace, disconnect on failure) is testable.
class NvmeFabric {
 public:
  virtual ~NvmeFabric() = default;
  struct Options {
    int keep_alive_tmo_s = 30;  // a migration's pause never costs a controller reconnect
    int reconnect_delay_s = 1;  // if one is needed anyway, retry quickly
    int ctrl_loss_tmo_s = 600;
  };
  // Connects a controller for nqn over traddr:trsvcid; returns its name (e.g. "nvme3").
  virtual std::string connect(const std::string& nqn, const VolumePath& path,
                              const std::string& host_nqn, const Options& options) = 0;
  // NGUIDs of the namespaces the connected controller shows right now.
  virtual std::vector<std::array<uint8_t, 16>> namespaces(const std::string& ctrl) = 0;
  // Controllers connected to nqn (by earlier attaches, ours or a previous agent's).
  virtual std::vector<std::string> controllers(const std::string& nqn) = 0;
  virtual void disconnect(const std::string& ctrl) = 0;
};

class KernelAttacher : public StorageAttacher {
 public:
  using Clock = std::chrono::steady_clock;
  KernelAttacher(NvmeFabric& fabric, std::chrono::milliseconds namespace_timeout,
                 std::function<void(std::chrono::milliseconds)> pause);
  const char* kind() const override { return "kernel"; }
  void attach(const Volume& v, const std::string& host_nqn) override;
  void detach(const Volume& v, const std::string& host_nqn) override;

 private:
  NvmeFabric& fabric_;
  std::chrono::milliseconds namespace_timeout_;
  std::function<void(std::chrono::milliseconds)> pause_;  // sleeps between namespace scans
};

class ProbeAttacher : public StorageAttacher {
 public:
  explicit ProbeAttacher(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  const char* kind() const override { return "probe"; }
  void attach(const Volume& v, const std::string& host_nqn) override;
  void detach(const Volume&, const std::string&) override {}

 private:
  std::chrono::milliseconds timeout_;
};

// The libnvme fabric; nullptr with `why` set when this kernel cannot attach NVMe/TCP (no
// nvme-tcp / nvme-fabrics support), naming what is missing.
std::unique_ptr<NvmeFabric> make_libnvme_fabric(std::string& why);

}  // namespace cutover::agent
