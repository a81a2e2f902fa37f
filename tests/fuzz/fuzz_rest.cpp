// libFuzzer target: the REST API's request path, RestApi::handle, with the whole controller core
// behind it (state, hub, migration driver on a manual clock, in-memory store). The input is the
// method, the target and the Authorization header on the first three lines, then the body. Any
// request must get a status in 200..599 and, when JSON, a parseable body, with an error's code for
// 4xx/5xx - never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "controller_core.hpp"
#include "logging.hpp"

using namespace cutover::controller;

namespace {

using Rig = cutover::testing::ControllerCore;

std::string line(const std::string& in, size_t& at) {
  const auto nl = in.find('\n', at);
  std::string out = in.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
  at = nl == std::string::npos ? in.size() : nl + 1;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    cutover::LogConfig c;
    c.level = spdlog::level::off;
    cutover::setup_logging(c);
    return true;
  }();
  (void)quiet;
  // A fresh controller now and then: state grows with what the fuzzer creates.
  static std::unique_ptr<Rig> rig;
  static unsigned uses = 0;
  if (!rig || ++uses % 2000 == 0) rig = std::make_unique<Rig>();
  const std::string in(reinterpret_cast<const char*>(data), size);
  size_t at = 0;
  HttpRequest req;
  req.method = line(in, at);
  req.target = line(in, at);
  req.authorization = line(in, at);
  req.body = in.substr(at);
  const auto res = rig->api.handle(req);
  if (res.status < 200 || res.status > 599) std::abort();
  if (res.content_type == "application/json" && !res.body.empty()) {
    const auto j = nlohmann::json::parse(res.body, nullptr, false);
    if (j.is_discarded()) std::abort();
    if (res.status >= 400 && !(j.contains("error") && j["error"].contains("code"))) std::abort();
  }
  rig->clock.advance(std::chrono::milliseconds(1000));  // timeouts and retries fire too
  return 0;
}
