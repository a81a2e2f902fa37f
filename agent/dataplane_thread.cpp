// DataplaneThread: thread, wake-up eventfd and the desired-state mailbox.
#include "dataplane_thread.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

namespace cutover::agent {

DataplaneThread::DataplaneThread() {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
}

DataplaneThread::~DataplaneThread() {
  stop();
  close(wake_fd_);
}

void DataplaneThread::start(ReportFn on_report) {
  on_report_ = std::move(on_report);
  thread_ = std::thread([this] { run(); });
}

void DataplaneThread::set_desired(overlay::DesiredChange change) {
  {
    std::lock_guard lock(mutex_);
    if (std::holds_alternative<DesiredState>(change)) pending_.clear();
    pending_.push_back(std::move(change));
  }
  wake();
}

void DataplaneThread::set_departed(std::set<std::string> iface_ids) {
  {
    std::lock_guard lock(mutex_);
    departed_ = std::move(iface_ids);
  }
  wake();
}

std::optional<std::set<std::string>> DataplaneThread::take_departed() {
  std::lock_guard lock(mutex_);
  std::optional<std::set<std::string>> out = std::move(departed_);
  departed_.reset();
  return out;
}

void DataplaneThread::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  wake();
  thread_.join();
}

void DataplaneThread::wake() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = write(wake_fd_, &one, sizeof one);
}

void DataplaneThread::drain_wake() {
  uint64_t drained;
  [[maybe_unused]] auto n = read(wake_fd_, &drained, sizeof drained);
}

bool DataplaneThread::take_pending(overlay::DesiredIndex& index,
                                   const std::function<void(const overlay::DesiredChange&)>& also) {
  std::vector<overlay::DesiredChange> changes;
  {
    std::lock_guard lock(mutex_);
    changes.swap(pending_);
  }
  for (auto& c : changes) {
    // A delta before any whole state cannot be placed: the agent core never sends one.
    if (index.empty() && !std::holds_alternative<DesiredState>(c)) continue;
    if (also) also(c);
    index.apply(std::move(c));
  }
  return !changes.empty();
}

void DataplaneThread::announce(overlay::DesiredIndex& index, const ApplyReport& report,
                               FrameSink& sink) {
  announcer_.changed(index.take_changes(), index.self());
  if (report.ok) announcer_.after_apply(index, report.bound_ports, Announcer::Clock::now());
  announce_due(sink);
}

void DataplaneThread::announce_due(FrameSink& sink) {
  for (const auto& round : announcer_.run_due(Announcer::Clock::now(), sink)) {
    if (on_announce_) on_announce_(round);
  }
}

int DataplaneThread::announce_timeout(int timeout_ms) const {
  auto due = announcer_.next_due();
  if (!due) return timeout_ms;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(*due - Announcer::Clock::now())
          .count() +
      1;
  const int until = static_cast<int>(std::max<int64_t>(0, ms));
  return timeout_ms < 0 ? until : std::min(timeout_ms, until);
}

}  // namespace cutover::agent
