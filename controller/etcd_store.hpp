// EtcdStore: the Store on an etcd v3 cluster, for highly available controllers. Records live
// under PREFIX/objects/KIND/ID and the generation under PREFIX/generation. load() is one range
// read (one consistent revision); commit() is one transaction, which with a fence set also
// compares the leader's election key, so that a controller that lost its lease (paused, cut off)
// can never write: its transaction fails and it gets StoreFenced.
#pragma once

#include <memory>
#include <string>

#include "etcd_client.hpp"
#include "store.hpp"

namespace cutover::controller {

class EtcdStore : public Store {
 public:
  // `max_txn_ops`: etcd's --max-txn-ops (128 by default); a change over it is refused, except a
  // pure deletion (retention), which goes in several transactions.
  EtcdStore(std::unique_ptr<EtcdClient> client, std::string prefix, size_t max_txn_ops = 128);

  std::vector<StoredRecord> load(uint64_t& generation) override;
  void commit(uint64_t generation, const std::vector<StoredRecord>& upserts,
              const std::vector<std::pair<std::string, std::string>>& deletes) override;

  // Every commit from now on holds only while `key` is the one created at `create_revision`
  // (this controller's leadership). 0: no fence (a single controller).
  void set_fence(std::string key, int64_t create_revision);
  int64_t revision() const { return revision_; }  // of the last load or commit
  // etcd's revision now (one small read); throws StoreUnavailable.
  int64_t head_revision();
  // Why this controller must not go on as the leader: a write was fenced, or its outcome is
  // unknown (etcd did not answer), so its copy of the state may differ from etcd's. Empty: none.
  const std::string& trouble() const { return trouble_; }
  const std::string& endpoint() const { return client_->endpoint(); }

 private:
  std::string object_key(const std::string& kind, const std::string& id) const;
  void txn(const nlohmann::json& ops);

  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
  size_t max_txn_ops_;
  std::string fence_key_;
  int64_t fence_revision_ = 0;
  int64_t revision_ = 0;
  std::string trouble_;
};

}  // namespace cutover::controller
