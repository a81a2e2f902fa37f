// ControlServer: the agent's local control socket (protocol in control_request.hpp). Listens on
// a unix socket (mode 0660), reads one request line per connection, hands it to the agent and
// writes back its one-line JSON answer; a malformed request is answered with the error naming
// the field. Runs on the agent's io_context; removes the socket file when destroyed.
#pragma once

#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "control_request.hpp"

namespace cutover::agent {

class ControlServer {
 public:
  using Answer = std::function<void(const nlohmann::json&)>;
  using Handler = std::function<void(const ControlRequest&, Answer)>;
  // Throws std::runtime_error naming the path when it cannot listen there.
  ControlServer(boost::asio::io_context& io, std::string path, Handler handler);
  ~ControlServer();

 private:
  void accept();
  boost::asio::io_context& io_;
  std::string path_;
  Handler handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cutover::agent
