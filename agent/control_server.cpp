// ControlServer: accept, read a line, answer, close.
#include "control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <stdexcept>

#include "parse_error.hpp"

namespace cutover::agent {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

namespace {
struct Connection : std::enable_shared_from_this<Connection> {
  explicit Connection(local::socket s) : socket(std::move(s)), buffer(kControlMaxLine + 1) {}
  local::socket socket;
  asio::streambuf buffer;
  std::string reply;

  void write(const nlohmann::json& j) {
    reply = j.dump() + "\n";
    asio::async_write(socket, asio::buffer(reply),
                      [self = shared_from_this()](const boost::system::error_code&, size_t) {
                        boost::system::error_code ec;
                        self->socket.close(ec);
                      });
  }
};
}  // namespace

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler)
    : io_(io), path_(std::move(path)), handler_(std::move(handler)), acceptor_(io) {
  std::error_code fs_ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), fs_ec);
  ::unlink(path_.c_str());  // a stale socket from an earlier run
  boost::system::error_code ec;
  acceptor_.open(local(), ec);
  if (!ec) acceptor_.bind(local::endpoint(path_), ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) throw std::runtime_error("control socket " + path_ + ": " + ec.message());
  ::chmod(path_.c_str(), 0660);
  accept();
}

ControlServer::~ControlServer() {
  *alive_ = false;
  boost::system::error_code ec;
  acceptor_.close(ec);
  ::unlink(path_.c_str());
}

void ControlServer::accept() {
  acceptor_.async_accept(
      [this, alive = alive_](const boost::system::error_code& ec, local::socket socket) {
        if (!*alive) return;
        if (!ec) {
          auto c = std::make_shared<Connection>(std::move(socket));
          asio::async_read_until(
              c->socket, c->buffer, '\n',
              [this, c, alive](const boost::system::error_code& ec, size_t n) {
                if (!*alive || ec) return;  // closed early, or a line longer than allowed
                std::string line(asio::buffers_begin(c->buffer.data()),
                                 asio::buffers_begin(c->buffer.data()) + static_cast<long>(n));
                ControlRequest req;
                try {
                  req = decode_control_request(line);
                } catch (const ParseError& e) {
                  c->write({{"ok", false}, {"error", e.message()}, {"field", e.field()}});
                  return;
                }
                handler_(req, [c](const nlohmann::json& j) { c->write(j); });
              });
        }
        if (acceptor_.is_open()) accept();
      });
}

}  // namespace cutover::agent
