// StorageCoordinator and StorageThread (see storage_coordinator.hpp).
#include "storage_coordinator.hpp"

namespace cutover::agent {

StorageReport StorageCoordinator::reconcile(const DesiredState& state) {
  std::map<std::string, Volume> needed;
  for (const auto& p : state.ports) {
    const bool here =
        (p.host && *p.host == state.host) || (p.migrating_to && *p.migrating_to == state.host);
    if (!here) continue;
    for (const auto& v : p.volumes) needed[p.id.str() + "/" + v.id] = v;
  }
  // Let go of what is no longer needed here (also retrying earlier failed detaches).
  for (auto it = attached_.begin(); it != attached_.end();) {
    if (needed.count(it->first) && needed.at(it->first) == it->second) {
      ++it;
      continue;
    }
    detach_failed_[it->first] = it->second;
    it = attached_.erase(it);
  }
  for (auto it = detach_failed_.begin(); it != detach_failed_.end();) {
    if (needed.count(it->first)) {  // needed again: keep it rather than detach
      it = detach_failed_.erase(it);
      continue;
    }
    try {
      attacher_.detach(it->second, host_nqn_);
      it = detach_failed_.erase(it);
    } catch (const StorageError&) {
      ++it;
    }
  }
  std::erase_if(failed_, [&](const auto& kv) { return !needed.count(kv.first); });
  for (const auto& [key, v] : needed) {
    if (attached_.count(key)) continue;
    try {
      attacher_.attach(v, host_nqn_);
      attached_[key] = v;
      failed_.erase(key);
    } catch (const StorageError& e) {
      failed_[key] = e.what();
    }
  }
  StorageReport r;
  for (const auto& [key, v] : attached_) r.ready.push_back(key);
  r.failed = failed_;
  for (const auto& [key, v] : detach_failed_) r.detach_failed.push_back(key);
  return r;
}

StorageThread::StorageThread(StorageAttacher& attacher, std::string host_nqn, ReportFn on_report,
                             std::chrono::milliseconds retry)
    : coordinator_(attacher, std::move(host_nqn)), on_report_(std::move(on_report)), retry_(retry) {
  thread_ = std::thread([this] { run(); });
}

StorageThread::~StorageThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StorageThread::set_desired(DesiredState state) {
  {
    std::lock_guard lock(mutex_);
    pending_ = std::move(state);
  }
  cv_.notify_all();
}

void StorageThread::run() {
  std::optional<DesiredState> current;
  bool retry = false;
  std::unique_lock lock(mutex_);
  for (;;) {
    // Wake for a new state, or to retry failures (a target that was down may be back).
    auto woken = [&] { return stopping_ || pending_.has_value(); };
    if (retry) {
      cv_.wait_for(lock, retry_, woken);
    } else {
      cv_.wait(lock, woken);
    }
    if (stopping_) return;
    if (pending_) {
      current = std::move(pending_);
      pending_.reset();
    }
    if (!current) continue;
    const DesiredState state = *current;
    lock.unlock();
    const auto report = coordinator_.reconcile(state);
    retry = !report.failed.empty() || !report.detach_failed.empty();
    if (on_report_) on_report_(report);
    lock.lock();
  }
}

}  // namespace cutover::agent
