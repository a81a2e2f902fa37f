// StorageCoordinator: keeps this host's NVMe/TCP attachments in line with the desired state. A
// volume is needed here while its port is placed here or arriving here (a migration's prepare:
// the destination attaches before the VM moves); once neither holds (the VM left, or the
// migration rolled back) it is detached. Reports which volumes are ready and which failed, by
// "port/volume" key, for the agent's ACK. StorageThread runs it off the agent's I/O thread
// (attaches block), newest state wins, failed attaches are retried.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "desired_state.hpp"
#include "storage_attacher.hpp"

namespace cutover::agent {

struct StorageReport {
  std::vector<std::string> ready;             // "port/volume"
  std::map<std::string, std::string> failed;  // "port/volume" -> reason
  std::vector<std::string> detach_failed;
  bool operator==(const StorageReport&) const = default;
};

class StorageCoordinator {
 public:
  StorageCoordinator(StorageAttacher& attacher, std::string host_nqn)
      : attacher_(attacher), host_nqn_(std::move(host_nqn)) {}
  StorageReport reconcile(const DesiredState& state);

 private:
  StorageAttacher& attacher_;
  std::string host_nqn_;
  std::map<std::string, Volume> attached_;
  std::map<std::string, std::string> failed_;
  std::map<std::string, Volume> detach_failed_;
};

class StorageThread {
 public:
  using ReportFn = std::function<void(const StorageReport&)>;
  StorageThread(StorageAttacher& attacher, std::string host_nqn, ReportFn on_report,
                std::chrono::milliseconds retry = std::chrono::milliseconds(2000));
  ~StorageThread();
  void set_desired(DesiredState state);

 private:
  void run();
  StorageCoordinator coordinator_;
  ReportFn on_report_;
  std::chrono::milliseconds retry_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<DesiredState> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace cutover::agent
