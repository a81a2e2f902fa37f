// ControllerClient among highly available controllers: given every controller's URL, an agent
// turned away by a follower (503, as a follower answers the agent channel) goes on to the next
// and says hello to the leader. Both are loopback listeners in the test (a plain HTTP answer and
// a Beast WebSocket server), on one io_context, no sleeps.
#include <utility>  // before Boost.Asio 1.74, which uses std::exchange without it

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "controller_client.hpp"
#include "parse_error.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace cutover;
using namespace cutover::agent;

TEST(ControllerClient, ParsesEveryControllerOfAList) {
  ControllerClientConfig cfg;
  parse_controller_url("ws://10.0.0.1:8180,ws://10.0.0.2:8181/v1/agent,ws://ctl3:8182", cfg);
  ASSERT_EQ(cfg.controllers.size(), 3u);
  EXPECT_EQ(cfg.controllers[1], (std::pair<std::string, std::string>("10.0.0.2", "8181")));
  EXPECT_EQ((cfg.host + ":" + cfg.port), "10.0.0.1:8180");
  EXPECT_FALSE(cfg.tls);
  EXPECT_THROW(parse_controller_url("wss://a:1,ws://b:2", cfg), ParseError) << "mixed schemes";
  EXPECT_THROW(parse_controller_url("ws://a:1,", cfg), ParseError) << "an empty entry";
  parse_controller_url("wss://a:1", cfg);
  EXPECT_TRUE(cfg.tls);
  EXPECT_EQ(cfg.controllers.size(), 1u);
}

TEST(ControllerClient, AFollowerSendsTheAgentOnToTheLeader) {
  asio::io_context io;
  tcp::acceptor follower(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::acceptor leader(io, {asio::ip::make_address("127.0.0.1"), 0});
  int turned_away = 0;
  std::string hello;

  // The follower: reads the upgrade request and answers 503 naming the leader, then closes.
  std::function<void()> follow = [&] {
    follower.async_accept([&](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      auto sock = std::make_shared<tcp::socket>(std::move(s));
      auto buf = std::make_shared<beast::flat_buffer>();
      auto req = std::make_shared<http::request<http::string_body>>();
      http::async_read(*sock, *buf, *req, [&, sock, buf, req](beast::error_code rec, size_t) {
        if (rec) return;
        ++turned_away;
        auto res = std::make_shared<http::response<http::string_body>>(
            http::status::service_unavailable, 11);
        res->body() = R"({"error":{"code":"not_leader","message":"the leader is elsewhere"}})";
        res->prepare_payload();
        res->keep_alive(false);
        http::async_write(*sock, *res, [sock, res](beast::error_code, size_t) {
          beast::error_code ignored;
          sock->shutdown(tcp::socket::shutdown_both, ignored);
        });
      });
      follow();
    });
  };
  follow();
  // The leader: accepts the WebSocket and reads the agent's first message.
  auto ws = std::make_shared<websocket::stream<beast::tcp_stream>>(io);
  auto wbuf = std::make_shared<beast::flat_buffer>();
  leader.async_accept([&](beast::error_code ec, tcp::socket s) {
    ASSERT_FALSE(ec);
    ws->next_layer().socket() = std::move(s);
    ws->async_accept([&](beast::error_code aec) {
      ASSERT_FALSE(aec) << aec.message();
      ws->async_read(*wbuf, [&](beast::error_code rec, size_t) {
        ASSERT_FALSE(rec) << rec.message();
        hello = beast::buffers_to_string(wbuf->data());
        io.stop();
      });
    });
  });

  ControllerClientConfig cfg;
  parse_controller_url("ws://127.0.0.1:" + std::to_string(follower.local_endpoint().port()) +
                           ",ws://127.0.0.1:" + std::to_string(leader.local_endpoint().port()),
                       cfg);
  cfg.token = "t";
  cfg.self.id = HostId::parse("h1");
  ControllerClient client(io, cfg, [](overlay::DesiredChange) {});
  client.start();
  io.run_for(std::chrono::seconds(10));
  client.stop();
  EXPECT_EQ(turned_away, 1) << "the follower was asked first";
  EXPECT_NE(hello.find("\"hello\""), std::string::npos) << hello;
  EXPECT_NE(hello.find("\"h1\""), std::string::npos) << hello;
}
