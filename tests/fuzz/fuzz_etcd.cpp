// libFuzzer target: what the controller reads from etcd's JSON gateway - an HTTP status and body
// through EtcdClient::answer, then a range answer's key-values (base64 keys and values, 64-bit
// integers as strings) and a transaction's header. Input: two bytes of status, then the body.
// Anything must give a result or throw std::runtime_error (EtcdUnavailable is one) - never
// crash, and never another exception (which would end the controller's event loop).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "etcd_client.hpp"

using cutover::controller::EtcdClient;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const unsigned status = 100 + (static_cast<unsigned>(data[0]) << 8 | data[1]) % 500;
  const std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
  try {
    const auto res = EtcdClient::answer(status, body, "fuzz");
    int64_t revision = 0;
    for (const auto& kv : EtcdClient::range_answer(res, &revision)) {
      if (kv.key.size() > body.size() || kv.value.size() > body.size()) std::abort();
    }
    (void)EtcdClient::num(EtcdClient::header(res), "revision");
    (void)EtcdClient::num(res, "TTL");
  } catch (const std::runtime_error&) {
  }
  // Base64 both ways: what is encoded decodes to itself.
  if (EtcdClient::unb64(EtcdClient::b64(body)) != body) std::abort();
  return 0;
}
