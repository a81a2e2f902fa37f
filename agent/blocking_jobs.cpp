// BlockingJobs: bounded threads for blocking calls, always joined.
#include "blocking_jobs.hpp"

namespace cutover::agent {

BlockingJobs::~BlockingJobs() {
  std::list<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lock(mu_);
    jobs.swap(jobs_);
  }
  for (auto& j : jobs) j->thread.join();
}

void BlockingJobs::reap() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if ((*it)->done) {
      (*it)->thread.join();  // it has returned from fn: the join does not wait
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

bool BlockingJobs::submit(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  reap();
  if (jobs_.size() >= max_) return false;
  auto job = std::make_shared<Job>();
  jobs_.push_back(job);
  job->thread = std::thread([this, job, fn = std::move(fn)] {
    fn();
    std::lock_guard done_lock(mu_);
    job->done = true;
  });
  return true;
}

size_t BlockingJobs::running() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& j : jobs_) n += j->done ? 0 : 1;
  return n;
}

}  // namespace cutover::agent
