// Unit tests for HostFacts: what the agent core adds to the dataplane's report before the
// controller gets it - a port is up only where its VM runs, paused VMs, foreign VMs, libvirt's
// domains and pre-copy passes, storage, the libvirt calls it runs, VMs arriving unannounced.
#include <gtest/gtest.h>

#include "host_facts.hpp"

using namespace cutover;
using namespace cutover::agent;

namespace {
DesiredState local_slice() {
  DesiredState s;
  s.host = HostId::parse("h1");
  for (const auto& [id, host, to] :
       {std::tuple{"a", "h1", ""}, std::tuple{"b", "h1", "h2"}, std::tuple{"c", "h2", "h1"}}) {
    Port p;
    p.id = PortId::parse(id);
    p.iface_id = std::string("if-") + id;
    p.host = HostId::parse(host);
    if (*to) p.migrating_to = HostId::parse(to);
    s.ports.push_back(p);
  }
  return s;
}
ApplyReport dataplane_says() {
  ApplyReport r;
  r.ok = true;
  r.bound_ports = {"a", "b", "c"};
  r.unclaimed_taps = {"if-x"};
  return r;
}
}  // namespace

TEST(HostFacts, WithoutLibvirtTheDataplaneIsBelievedUnlessAnIntegrationSaidOtherwise) {
  HostFacts f;
  f.desired(local_slice());
  auto r = f.for_controller(dataplane_says());
  EXPECT_EQ(r.bound_ports, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r.incoming, std::vector<std::string>{"if-x"});
  EXPECT_TRUE(r.paused_ports.empty());
  f.vm_state({"if-b"}, "paused_for_migration");
  f.vm_state({"if-c"}, "arriving");
  r = f.for_controller(dataplane_says());
  EXPECT_EQ(r.bound_ports, std::vector<std::string>{"a"});
  EXPECT_EQ(r.paused_ports, std::vector<std::string>{"b"});
  EXPECT_EQ(f.paused_here(), std::set<std::string>{"if-b"});
  f.vm_state({"if-b", "if-c"}, "gone");
  EXPECT_EQ(f.for_controller(dataplane_says()).bound_ports.size(), 3u);
}

TEST(HostFacts, WithLibvirtAPortIsUpOnlyWhereItsDomainRuns) {
  HostFacts f;
  f.desired(local_slice());
  f.watching_libvirt();
  EXPECT_TRUE(f.for_controller(dataplane_says()).bound_ports.empty()) << "nothing runs yet";
  LibvirtDomainEvents::DomainsNow now;
  now.running = {"if-a", "if-z"};
  now.paused = {"if-b"};
  now.vms = {{"web", {VmInterface{"if-a", "52:54:00:00:00:01", "", "", "", {}}}}};
  now.precopy_iterations = {{"if-b", 2}};
  f.libvirt(now);
  f.libvirt_call("m7", true);
  StorageReport storage;
  storage.ready = {"a/data"};
  storage.failed = {{"c/logs", "refused"}};
  f.storage(storage);
  auto r = f.for_controller(dataplane_says());
  EXPECT_EQ(r.bound_ports, std::vector<std::string>{"a"});
  EXPECT_EQ(r.paused_ports, std::vector<std::string>{"b"});
  EXPECT_EQ(r.foreign_running, std::vector<std::string>{"if-z"}) << "placed elsewhere by the state";
  EXPECT_EQ(r.vms.at("web"),
            (std::vector<VmInterface>{{"if-a", "52:54:00:00:00:01", "", "", "", {}}}));
  EXPECT_EQ(r.precopy_iterations.at("b"), 2);
  EXPECT_EQ(r.storage_ready, std::vector<std::string>{"a/data"});
  EXPECT_EQ(r.storage_failed.at("c/logs"), "refused");
  EXPECT_EQ(r.live_migrations, std::vector<std::string>{"m7"});
  f.libvirt_call("m7", false);
  EXPECT_TRUE(f.for_controller(dataplane_says()).live_migrations.empty());
}
