// ReadinessPoller: one epoll set, waited on through the io_context, handing out readiness.
#include "readiness_poller.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace cutover::controller {

namespace {
int new_epoll() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  return fd;
}
}  // namespace

ReadinessPoller::ReadinessPoller(boost::asio::io_context& io) : epoll_(io, new_epoll()) {}

bool ReadinessPoller::add(int fd, std::shared_ptr<Reader> reader) {
  if (closed_ || fd < 0) {
    errno = closed_ ? ESHUTDOWN : EBADF;
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  if (static_cast<size_t>(fd) >= readers_.size()) readers_.resize(static_cast<size_t>(fd) + 1);
  readers_[static_cast<size_t>(fd)] = std::move(reader);
  ++count_;
  arm();
  return true;
}

void ReadinessPoller::remove(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= readers_.size() || !readers_[fd]) return;
  ::epoll_ctl(epoll_.native_handle(), EPOLL_CTL_DEL, fd, nullptr);
  readers_[static_cast<size_t>(fd)].reset();
  --count_;
}

void ReadinessPoller::close() {
  closed_ = true;
  boost::system::error_code ignored;
  epoll_.close(ignored);  // a pending wait ends with operation_aborted
  // Moved out first: a reader's destructor may call remove().
  auto gone = std::move(readers_);
  readers_.clear();
  count_ = 0;
  gone.clear();
}

void ReadinessPoller::arm() {
  if (armed_ || closed_) return;
  armed_ = true;
  epoll_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [self = shared_from_this()](const boost::system::error_code& ec) {
                      self->armed_ = false;
                      if (ec || self->closed_) return;
                      // One batch, then the wait again: a full batch (more may be ready) is
                      // reported at once by that wait, and the handlers that queued meanwhile
                      // (a REST request behind a thousand ACKs) run in between.
                      self->drain();
                      if (self->count_ > 0) self->arm();
                    });
}

void ReadinessPoller::drain() {
  std::array<epoll_event, 256> events;
  const int n =
      ::epoll_wait(epoll_.native_handle(), events.data(), static_cast<int>(events.size()), 0);
  for (int i = 0; i < n; ++i) {
    const int fd = events[static_cast<size_t>(i)].data.fd;
    // A reader may remove itself or another one while it runs: held for the call, and looked
    // up again for each event.
    if (static_cast<size_t>(fd) >= readers_.size() || !readers_[fd]) continue;
    std::shared_ptr<Reader> r = readers_[static_cast<size_t>(fd)];
    r->readable();
  }
}

}  // namespace cutover::controller
