// KernelAttacher and ProbeAttacher (see storage_attacher.hpp).
#include "storage_attacher.hpp"

#include <algorithm>

#include "json_codec.hpp"
#include "nvme_path_probe.hpp"

namespace cutover::agent {

namespace {
std::string describe(const Volume& v) { return "volume " + v.id + " (" + v.nqn + ")"; }
std::string where(const VolumePath& p) {
  return p.traddr.to_string() + ":" + std::to_string(p.trsvcid);
}
void add_error(std::string& errors, const std::string& what) {
  errors += (errors.empty() ? "" : "; ") + what;
}
}  // namespace

KernelAttacher::KernelAttacher(NvmeFabric& fabric, std::chrono::milliseconds namespace_timeout,
                               std::function<void(std::chrono::milliseconds)> pause)
    : fabric_(fabric), namespace_timeout_(namespace_timeout), pause_(std::move(pause)) {}

void KernelAttacher::attach(const Volume& v, const std::string& host_nqn) {
  auto has_volume = [&](const std::string& ctrl) {
    const auto ns = fabric_.namespaces(ctrl);
    return v.nguid ? std::find(ns.begin(), ns.end(), *v.nguid) != ns.end() : !ns.empty();
  };
  for (const auto& ctrl : fabric_.controllers(v.nqn)) {
    if (has_volume(ctrl)) return;  // already attached (an earlier prepare, or before a restart)
  }
  std::string errors;
  constexpr auto kScan = std::chrono::milliseconds(50);
  const auto scans = std::max<int64_t>(1, namespace_timeout_ / kScan);
  for (const auto& path : v.paths) {
    std::string ctrl;
    try {
      ctrl = fabric_.connect(v.nqn, path, host_nqn, NvmeFabric::Options{});
    } catch (const StorageError& e) {
      add_error(errors, where(path) + ": " + e.what());
      continue;
    }
    for (int64_t i = 0; i < scans; ++i) {
      if (has_volume(ctrl)) return;
      pause_(kScan);
    }
    add_error(errors, where(path) + ": connected as " + ctrl + " but " +
                          (v.nguid ? "no namespace with NGUID " + hex16(*v.nguid)
                                   : std::string("no namespace")) +
                          " appeared within " + std::to_string(namespace_timeout_.count()) + " ms");
    try {
      fabric_.disconnect(ctrl);  // do not leave a useless controller behind
    } catch (const StorageError&) {
    }
  }
  throw StorageError(describe(v) + " not attached: " + errors);
}

void KernelAttacher::detach(const Volume& v, const std::string&) {
  std::string errors;
  for (const auto& ctrl : fabric_.controllers(v.nqn)) {
    try {
      fabric_.disconnect(ctrl);
    } catch (const StorageError& e) {
      add_error(errors, ctrl + ": " + e.what());
    }
  }
  if (!errors.empty()) throw StorageError(describe(v) + " still attached: " + errors);
}

void ProbeAttacher::attach(const Volume& v, const std::string& host_nqn) {
  std::string errors;
  for (const auto& path : v.paths) {
    nvme::ProbeConfig config;
    config.host_nqn = host_nqn;
    config.timeout = timeout_;
    config.expect_nguid = v.nguid;
    const auto r = nvme::probe_path(
        {path.traddr.to_string(), static_cast<uint16_t>(path.trsvcid), v.nqn}, config);
    if (r.ok()) return;
    add_error(errors, where(path) + ": " + nvme::to_string(r.error) + ": " + r.message);
  }
  throw StorageError(describe(v) + " not reachable: " + errors);
}

}  // namespace cutover::agent
