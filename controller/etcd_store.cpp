// EtcdStore implementation: the store's calls translated into etcd range and txn requests.
#include "etcd_store.hpp"

#include <set>

namespace cutover::controller {

using nlohmann::json;

EtcdStore::EtcdStore(std::unique_ptr<EtcdClient> client, std::string prefix, size_t max_txn_ops)
    : client_(std::move(client)), prefix_(std::move(prefix)), max_txn_ops_(max_txn_ops) {
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  if (max_txn_ops_ < 2) throw std::invalid_argument("etcd: max txn ops must be at least 2");
}

void EtcdStore::set_fence(std::string key, int64_t create_revision) {
  fence_key_ = std::move(key);
  fence_revision_ = create_revision;
  trouble_.clear();
}

int64_t EtcdStore::head_revision() {
  int64_t rev = 0;
  try {
    client_->range(prefix_ + "/generation", "", &rev);
  } catch (const EtcdUnavailable& e) {
    throw StoreUnavailable(e.what());
  }
  return rev;
}

std::string EtcdStore::object_key(const std::string& kind, const std::string& id) const {
  return prefix_ + "/objects/" + kind + "/" + id;
}

std::vector<StoredRecord> EtcdStore::load(uint64_t& generation) {
  // One range over everything under the prefix: one revision, so a snapshot even while another
  // controller writes.
  std::vector<EtcdKv> kvs;
  try {
    kvs = client_->range(prefix_ + "/", EtcdClient::prefix_end(prefix_ + "/"), &revision_);
  } catch (const EtcdUnavailable& e) {
    throw StoreUnavailable(e.what());
  }
  generation = 0;
  std::vector<StoredRecord> out;
  const std::string objects = prefix_ + "/objects/";
  for (auto& kv : kvs) {
    if (kv.key == prefix_ + "/generation") {
      try {
        generation = std::stoull(kv.value);
      } catch (const std::exception&) {
        throw std::runtime_error("etcd " + kv.key + ": not a number: '" + kv.value + "'");
      }
      continue;
    }
    if (kv.key.rfind(objects, 0) != 0) continue;  // the election key and anything else
    const std::string rest = kv.key.substr(objects.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos || slash == 0) {
      throw std::runtime_error("etcd " + kv.key + ": expected " + objects + "KIND/ID");
    }
    out.push_back({rest.substr(0, slash), rest.substr(slash + 1), std::move(kv.value)});
  }
  return out;
}

void EtcdStore::txn(const json& ops) {
  json req = {{"success", ops}};
  if (fence_revision_ != 0) {
    req["compare"] = json::array({{{"target", "CREATE"},
                                   {"key", EtcdClient::b64(fence_key_)},
                                   {"result", "EQUAL"},
                                   {"create_revision", std::to_string(fence_revision_)}}});
  }
  json res;
  try {
    res = client_->call("kv/txn", req);
  } catch (const EtcdUnavailable& e) {
    trouble_ = std::string("a write's outcome is unknown: ") + e.what();
    throw StoreUnavailable(e.what());
  }
  revision_ = EtcdClient::num(EtcdClient::header(res), "revision");
  const auto ok = res.find("succeeded");
  if (fence_revision_ != 0 && !(ok != res.end() && ok->is_boolean() && ok->get<bool>())) {
    trouble_ = "a write was fenced: the leadership key is no longer ours";
    throw StoreFenced("not the leader any more: " + fence_key_ + " is no longer ours (created at " +
                      "revision " + std::to_string(fence_revision_) + ")");
  }
}

void EtcdStore::commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
                       const std::vector<std::pair<std::string, std::string>>& deletes) {
  auto del = [&](const std::pair<std::string, std::string>& d) {
    return json{
        {"request_delete_range", {{"key", EtcdClient::b64(object_key(d.first, d.second))}}}};
  };
  const json gen = {{"request_put",
                     {{"key", EtcdClient::b64(prefix_ + "/generation")},
                      {"value", EtcdClient::b64(std::to_string(generation))}}}};
  if (upserts.empty() && deletes.size() + 1 > max_txn_ops_) {
    // Retention: deletions only, each part on its own is a consistent state.
    json ops = json::array();
    for (const auto& d : deletes) {
      ops.push_back(del(d));
      if (ops.size() + 1 == max_txn_ops_) {
        txn(ops);
        ops = json::array();
      }
    }
    ops.push_back(gen);
    txn(ops);
    return;
  }
  if (upserts.size() + deletes.size() + 1 > max_txn_ops_) {
    throw std::runtime_error("a change of " + std::to_string(upserts.size() + deletes.size()) +
                             " records is over etcd's --max-txn-ops (" +
                             std::to_string(max_txn_ops_) + "); raise it on every member and " +
                             "--etcd-max-txn-ops here");
  }
  // etcd refuses a transaction that names a key twice: an upsert replaces a deletion of the same
  // record (as SQLite's delete-then-insert would end), and the last upsert of a key wins.
  std::set<std::string> put_keys;
  std::vector<const StoredRecord*> puts;
  for (auto it = upserts.rbegin(); it != upserts.rend(); ++it) {
    if (put_keys.insert(object_key(it->kind, it->id)).second) puts.push_back(&*it);
  }
  json ops = json::array();
  std::set<std::string> deleted;
  for (const auto& d : deletes) {
    const auto key = object_key(d.first, d.second);
    if (!put_keys.count(key) && deleted.insert(key).second) ops.push_back(del(d));
  }
  for (auto it = puts.rbegin(); it != puts.rend(); ++it) {
    const StoredRecord& r = **it;
    ops.push_back({{"request_put",
                    {{"key", EtcdClient::b64(object_key(r.kind, r.id))},
                     {"value", EtcdClient::b64(r.body)}}}});
  }
  ops.push_back(gen);
  txn(ops);
}

}  // namespace cutover::controller
