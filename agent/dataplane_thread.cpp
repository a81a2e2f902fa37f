// DataplaneThread: thread, wake-up eventfd and the desired-state mailbox.
#include "dataplane_thread.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

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

void DataplaneThread::set_desired(DesiredState state) {
  {
    std::lock_guard lock(mutex_);
    pending_ = std::move(state);
  }
  wake();
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

std::optional<DesiredState> DataplaneThread::take_pending() {
  std::lock_guard lock(mutex_);
  std::optional<DesiredState> out = std::move(pending_);
  pending_.reset();
  return out;
}

}  // namespace cutover::agent
