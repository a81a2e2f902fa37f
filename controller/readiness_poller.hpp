// ReadinessPoller: tells many sockets that they have bytes to read, through one epoll set of its
// own that sits in the io_context as a single descriptor. The agent channel's plain sockets read
// through it: an ACK costs one recv, where an Asio read costs that recv, a second one that finds
// nothing (Asio's speculative read as the next read starts) and an operation's bookkeeping.
// Level-triggered: a socket with bytes left unread is reported again. That relies on Asio (1.74)
// re-registering a descriptor with EPOLL_CTL_MOD for every wait, which re-reports an epoll set
// that still has events: the io_context's own set watches this one edge-triggered. One batch of
// events per wait, so that other handlers run between batches. Single-threaded (the
// io_context's thread); used by http_server.cpp.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <vector>

namespace cutover::controller {

class ReadinessPoller : public std::enable_shared_from_this<ReadinessPoller> {
 public:
  // What a registered socket is told: it may read now (or the peer closed, or an error is
  // pending: a read says which).
  class Reader {
   public:
    virtual ~Reader() = default;
    virtual void readable() = 0;
  };

  // Made as a shared_ptr: its pending wait holds it.
  explicit ReadinessPoller(boost::asio::io_context& io);  // throws std::system_error
  ReadinessPoller(const ReadinessPoller&) = delete;
  ReadinessPoller& operator=(const ReadinessPoller&) = delete;

  // Calls reader->readable() whenever `fd` has something to read, until remove(fd); holds the
  // reader until then. False (errno set) when epoll refuses the descriptor, or after close().
  bool add(int fd, std::shared_ptr<Reader> reader);
  // Stops watching `fd`; call it before the descriptor is closed. A no-op for an unknown fd.
  void remove(int fd);
  // Drops every reader (they may hold this poller: the cycle ends here) and stops watching.
  // For the server's shutdown; add() refuses afterwards.
  void close();
  size_t size() const { return count_; }

 private:
  void arm();    // waits for the epoll set to have events, once
  void drain();  // hands out one batch of what the epoll set has

  boost::asio::posix::stream_descriptor epoll_;
  std::vector<std::shared_ptr<Reader>> readers_;  // by descriptor number
  size_t count_ = 0;
  bool armed_ = false;
  bool closed_ = false;
};

}  // namespace cutover::controller
