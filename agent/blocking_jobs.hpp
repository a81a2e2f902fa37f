// BlockingJobs: where the agent runs calls that block for seconds (libvirt live migrations and
// their aborts) off its io_context: at most `max` at once, each on its own thread, every thread
// joined - finished ones on the next submit, the rest when the pool is destroyed. A submit over
// the limit is refused, not queued: the caller answers the controller with an error at once.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

namespace cutover::agent {

class BlockingJobs {
 public:
  explicit BlockingJobs(size_t max) : max_(max) {}
  ~BlockingJobs();
  BlockingJobs(const BlockingJobs&) = delete;
  BlockingJobs& operator=(const BlockingJobs&) = delete;

  // Starts fn on a thread of its own; false (fn not run) when `max` jobs are already running.
  bool submit(std::function<void()> fn);
  size_t running() const;

 private:
  struct Job {
    std::thread thread;
    bool done = false;
  };
  void reap();  // joins finished jobs; with mu_ held

  const size_t max_;
  mutable std::mutex mu_;
  std::list<std::shared_ptr<Job>> jobs_;
};

}  // namespace cutover::agent
