// Unit tests for the agent-channel wire protocol: round trips, deltas applied in order, and
// rejection of malformed messages naming the field.
#include <gtest/gtest.h>

#include <libvirt/libvirt.h>

#include <cstdio>

#include "ack_repeat.hpp"
#include "json_codec.hpp"
#include "parse_error.hpp"
#include "wire.hpp"

using namespace cutover;
using namespace cutover::wire;

namespace {
std::string field_of(const std::string& text, bool agent) {
  try {
    if (agent) {
      decode_agent_message(text);
    } else {
      decode_controller_message(text);
    }
  } catch (const ParseError& e) {
    return e.field();
  }
  return "<accepted>";
}
}  // namespace

TEST(Wire, AgentMessagesRoundTrip) {
  Host h;
  h.id = HostId::parse("hv1");
  h.underlay_ip = IpAddress::parse("192.0.2.1");
  auto hello = std::get<Hello>(decode_agent_message(encode(AgentMessage{Hello{h}})));
  EXPECT_EQ(hello.host, h);
  auto ack = std::get<Ack>(decode_agent_message(encode(AgentMessage{[] {
    Ack a;
    a.generation = 7;
    a.apply_ms = 1.5;
    a.waiting_for = {"tunnel to 10.0.0.9"};
    a.awaiting_taps = {"p3"};
    a.bound_ports = {"p1", "p2"};
    a.paused_ports = {"p2"};
    a.foreign_running = {"x"};
    a.storage_ready = {"p1/data"};
    a.storage_failed = {{"p2/logs", "refused"}};
    a.vms = {{"web-1",
              {VmInterface{"iface-a", "52:54:00:00:00:0a", "prod", "web", "", {}},
               VmInterface{"iface-b", "", "", "", "blue", {}}}}};
    a.precopy_iterations = {{"p2", 3}};
    a.incoming = {"iface-z"};
    a.live_migrations = {"m4"};
    return a;
  }()})));
  EXPECT_EQ(ack.generation, 7u);
  EXPECT_EQ(ack.waiting_for, std::vector<std::string>{"tunnel to 10.0.0.9"});
  EXPECT_EQ(ack.awaiting_taps, std::vector<std::string>{"p3"});
  EXPECT_EQ(ack.bound_ports, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(ack.paused_ports, std::vector<std::string>{"p2"});
  EXPECT_EQ(ack.storage_ready, std::vector<std::string>{"p1/data"});
  EXPECT_EQ(ack.storage_failed.at("p2/logs"), "refused");
  ASSERT_EQ(ack.vms.at("web-1").size(), 2u);
  EXPECT_EQ(ack.vms.at("web-1")[0],
            (VmInterface{"iface-a", "52:54:00:00:00:0a", "prod", "web", "", {}}));
  EXPECT_EQ(ack.vms.at("web-1")[1], (VmInterface{"iface-b", "", "", "", "blue", {}}));
  // An agent from before the inventory sends iface-ids only.
  auto old = std::get<Ack>(
      decode_agent_message(R"({"type":"ack","generation":1,"vms":{"db":["if-1","if-2"]}})"));
  EXPECT_EQ(old.vms.at("db"),
            (std::vector<VmInterface>{{"if-1", "", "", "", "", {}}, {"if-2", "", "", "", "", {}}}));
  EXPECT_EQ(ack.precopy_iterations.at("p2"), 3);
  EXPECT_EQ(ack.incoming, std::vector<std::string>{"iface-z"});
  EXPECT_EQ(ack.live_migrations, std::vector<std::string>{"m4"});
  for (const char* bad : {R"({"type":"ack","generation":1,"precopy_iterations":[1]})",
                          R"({"type":"ack","generation":1,"precopy_iterations":{"p":-1}})",
                          R"({"type":"ack","generation":1,"precopy_iterations":{"p":"2"}})"}) {
    EXPECT_THROW(decode_agent_message(bad), ParseError) << bad;
  }
  for (const char* bad :
       {R"({"type":"ack","generation":1,"vms":[]})",
        R"({"type":"ack","generation":1,"vms":{"a":"x"}})",
        R"({"type":"ack","generation":1,"vms":{"a":[1]}})",
        R"({"type":"ack","generation":1,"vms":{"":[]}})",
        R"({"type":"ack","generation":1,"vms":{"a":[""]}})",
        R"({"type":"ack","generation":1,"vms":{"a":[{"mac":"x"}]}})",
        R"({"type":"ack","generation":1,"vms":{"a":[{"iface_id":"i","x":1}]}})",
        R"({"type":"ack","generation":1,"vms":{"a":[{"iface_id":"i","mac":1}]}})"}) {
    try {
      decode_agent_message(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ParseError& e) {
      EXPECT_NE(std::string(e.what()).find("vms"), std::string::npos) << e.what();
    }
  }
  auto nack =
      std::get<Nack>(decode_agent_message(encode(AgentMessage{Nack{8, "dup", "ports[1].mac"}})));
  EXPECT_EQ(nack.field, "ports[1].mac");
  auto an = std::get<Announced>(
      decode_agent_message(encode(AgentMessage{Announced{"vm", 2, 4, 3, 1, "not bound"}})));
  EXPECT_EQ(an.port, "vm");
  EXPECT_EQ(an.round, 2);
  EXPECT_EQ(an.rounds, 4);
  EXPECT_EQ(an.frames, 3);
  EXPECT_EQ(an.failed, 1);
  EXPECT_EQ(an.error, "not bound");
}

TEST(Wire, DeltaFromEncodedPartsIsTheSameBytes) {
  wire::Delta d;
  d.generation = 42;
  Host h;
  h.id = HostId::parse("h2");
  h.underlay_ip = IpAddress::parse("192.168.0.2");
  d.upsert_hosts.push_back(h);
  for (const char* id : {"a", "b"}) {
    Port p;
    p.id = PortId::parse(id);
    p.mac = MacAddress::parse("52:54:00:00:00:01");
    p.network = NetworkId::parse("blue");
    p.iface_id = id;
    p.host = h.id;
    d.upsert_ports.push_back(p);
  }
  d.remove_ports.push_back(PortId::parse("gone"));
  const std::string whole = wire::encode(wire::ControllerMessage{d});
  EXPECT_EQ(
      wire::encode_delta(42, {to_json(h).dump()},
                         {to_json(d.upsert_ports[0]).dump(), to_json(d.upsert_ports[1]).dump()},
                         d.remove_ports),
      whole);
  EXPECT_EQ(wire::encode_delta(7, {}, {}, {}),
            wire::encode(wire::ControllerMessage{wire::Delta{7, {}, {}, {}}}));
}

TEST(Wire, DeltaAppliesInOrder) {
  DesiredState s;
  s.generation = 3;
  s.host = HostId::parse("a");
  Port p;
  p.id = PortId::parse("p1");
  p.mac = MacAddress::parse("52:54:00:00:00:01");
  p.network = NetworkId::parse("blue");
  p.iface_id = "p1";
  p.host = HostId::parse("b");
  s.ports.push_back(p);
  Delta d;
  d.generation = 4;
  Port moved = p;
  moved.host = HostId::parse("c");
  d.upsert_ports.push_back(moved);
  Host c;
  c.id = HostId::parse("c");
  c.underlay_ip = IpAddress::parse("10.0.0.3");
  d.upsert_hosts.push_back(c);
  auto decoded = std::get<Delta>(decode_controller_message(encode(ControllerMessage{d})));
  apply(s, decoded);
  EXPECT_EQ(s.generation, 4u);
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0].host, HostId::parse("c"));
  EXPECT_EQ(s.hosts.size(), 1u);
  Delta rm;
  rm.generation = 5;
  rm.remove_ports.push_back(PortId::parse("p1"));
  apply(s, std::get<Delta>(decode_controller_message(encode(ControllerMessage{rm}))));
  EXPECT_TRUE(s.ports.empty());
}

TEST(Wire, RejectsMalformedNamingTheField) {
  EXPECT_EQ(field_of("{\"type\":\"hello\"}", true), "host");
  EXPECT_EQ(field_of("{\"type\":\"shout\"}", true), "type");
  EXPECT_EQ(field_of("{\"type\":\"nack\",\"generation\":1}", true), "error");
  EXPECT_EQ(field_of("{\"type\":\"ack\",\"generation\":-1}", true), "generation");
  EXPECT_EQ(field_of("{\"type\":\"ack\",\"generation\":1,\"bound_ports\":[3]}", true),
            "bound_ports[0]");
  EXPECT_EQ(field_of("{\"type\":\"announced\",\"port\":\"vm\",\"round\":4,\"rounds\":4,"
                     "\"frames\":1,\"failed\":0}",
                     true),
            "round");
  EXPECT_EQ(field_of("{\"type\":\"announced\",\"port\":\"vm\",\"round\":0,\"rounds\":4,"
                     "\"frames\":-1,\"failed\":0}",
                     true),
            "frames");
  EXPECT_EQ(field_of("[]", true), "");
  EXPECT_EQ(field_of("not json", true), "");
  EXPECT_EQ(field_of("{\"type\":\"delta\",\"generation\":2,\"remove_ports\":[\"bad id\"]}", false),
            "remove_ports[0]");
  EXPECT_EQ(field_of("{\"type\":\"desired\"}", false), "state");
  EXPECT_EQ(
      field_of("{\"type\":\"desired\",\"state\":{\"generation\":1,\"host\":\"h\",\"ports\":[{}]}}",
               false),
      "state.ports[0].id");
}

#include "libvirt/libvirt_domain_events.hpp"

TEST(LibvirtDomainEvents, FindsOpenvswitchInterfaceIds) {
  const std::string xml = R"(<domain><devices>
    <interface type='bridge'><virtualport type='openvswitch'>
      <parameters interfaceid='6f1c2a9e-0000-4000-8000-00000000000a'/></virtualport></interface>
    <interface type="bridge"><virtualport type="openvswitch">
      <parameters interfaceid="11111111-2222-4333-8444-555555555555"/></virtualport></interface>
    <interface type='network'><source network='default'/><target dev='vnet3'/></interface>
    <interface type='ethernet'>
      <mac address='52:54:00:10:00:0a'/><target dev='cvtap-vm1' managed='yes'/></interface>
  </devices></domain>)";
  std::set<std::string> ids;
  for (const auto& i : cutover::agent::LibvirtDomainEvents::interfaces_from_xml(xml)) {
    ids.insert(i.iface_id);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"6f1c2a9e-0000-4000-8000-00000000000a",
                                        "11111111-2222-4333-8444-555555555555", "cvtap-vm1"}))
      << "openvswitch interfaceids and ethernet taps' names; other taps are not ports";
  EXPECT_TRUE(cutover::agent::LibvirtDomainEvents::interfaces_from_xml("<domain/>").empty());
  EXPECT_TRUE(cutover::agent::LibvirtDomainEvents::interfaces_from_xml("<bad").empty())
      << "unreadable XML: none (logged)";
}

#include "libvirt/domain_xml.hpp"
#include "libvirt/libvirt_migrator.hpp"

TEST(LibvirtMigrator, FlagsFollowTheAgentsDefaultsAndTheRequest) {
  using cutover::agent::MigrateOptions;
  MigrateOptions defaults;  // persist on, the rest off
  const unsigned base = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER;
  EXPECT_EQ(defaults.flags(true), base | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE);
  EXPECT_EQ(defaults.flags(false), base | VIR_MIGRATE_PERSIST_DEST)
      << "a transient domain has no definition to undefine";
  const auto asked = defaults.with({false, true, true, 64, std::nullopt});
  EXPECT_EQ(asked.flags(true), base | VIR_MIGRATE_AUTO_CONVERGE | VIR_MIGRATE_COMPRESSED);
  EXPECT_EQ(asked.bandwidth_mib_s, 64);
  MigrateOptions agent;
  agent.persist = false;
  agent.tls = true;
  agent.bandwidth_mib_s = 100;
  const auto unset = agent.with({});
  EXPECT_EQ(unset.flags(true), base | VIR_MIGRATE_TLS) << "nothing asked: the agent's defaults";
  EXPECT_EQ(unset.bandwidth_mib_s, 100);
  EXPECT_EQ(agent.with({true, std::nullopt, std::nullopt, std::nullopt, std::nullopt}).flags(false),
            base | VIR_MIGRATE_TLS | VIR_MIGRATE_PERSIST_DEST);
  // Post-copy: asked for, or the agent's default; a request may also turn it off.
  LibvirtMigrationSettings postcopy;
  postcopy.postcopy = true;
  EXPECT_EQ(agent.with(postcopy).flags(false), base | VIR_MIGRATE_TLS | VIR_MIGRATE_POSTCOPY);
  MigrateOptions by_default;
  by_default.postcopy = true;
  EXPECT_TRUE(by_default.with({}).flags(true) & VIR_MIGRATE_POSTCOPY);
  postcopy.postcopy = false;
  EXPECT_FALSE(by_default.with(postcopy).flags(true) & VIR_MIGRATE_POSTCOPY);
}

TEST(DomainXml, OnlyTheDevicesInterfacesCountAndBadXmlIsNamed) {
  // An interfaceid= in <metadata> or a comment is no interface (the old regular expression took
  // both).
  const std::string xml = R"(<domain><metadata><x interfaceid='not-me'/></metadata>
    <!-- <parameters interfaceid='nor-me'/> -->
    <devices><interface type='bridge'><virtualport type='openvswitch'>
      <parameters interfaceid='real'/></virtualport></interface></devices></domain>)";
  EXPECT_EQ(cutover::agent::domain_interface_ids(xml), std::set<std::string>{"real"});
  for (const char* bad : {"<domain>", "", "<network/>", "<domain><devices></domain>"}) {
    try {
      cutover::agent::domain_interface_ids(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ParseError& e) {
      EXPECT_EQ(e.field(), "xml") << bad;
    }
  }
}

TEST(DomainXml, InterfacesCarryMacNetworkPortgroupAndCutoverMetadata) {
  using cutover::agent::domain_interfaces;
  // Another program's metadata with an interfaceid= and a cutover element for an unknown MAC are
  // ignored; a NIC without an iface-id (a plain bridge) is skipped; MACs compare in lower case.
  const std::string xml = R"(<domain type='qemu'><name>web</name>
    <metadata>
      <other:x xmlns:other="urn:other"><parameters interfaceid='not-me'/></other:x>
      <cutover:interfaces xmlns:cutover="https://cutover.dev/xmlns/libvirt/1">
        <cutover:interface mac="52:54:00:AA:00:02" network="blue"/>
        <cutover:interface mac="52:54:00:ff:ff:ff" network="nobody"/>
      </cutover:interfaces>
    </metadata>
    <devices>
      <interface type='network'><mac address='52:54:00:aa:00:01'/>
        <source network='prod' portgroup='web'/>
        <virtualport type='openvswitch'><parameters interfaceid='if-1'/></virtualport></interface>
      <interface type='bridge'><mac address='52:54:00:AA:00:02'/><source bridge='br-int'/>
        <virtualport type='openvswitch'><parameters interfaceid='if-2'/></virtualport></interface>
      <interface type='ethernet'><mac address='52:54:00:aa:00:03'/><target dev='tap-3'/></interface>
      <interface type='bridge'><mac address='52:54:00:aa:00:04'/><source bridge='br0'/></interface>
    </devices></domain>)";
  const auto got = domain_interfaces(xml);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], (VmInterface{"if-1", "52:54:00:aa:00:01", "prod", "web", "", {}}));
  EXPECT_EQ(got[1], (VmInterface{"if-2", "52:54:00:aa:00:02", "", "", "blue", {}}));
  EXPECT_EQ(got[2], (VmInterface{"tap-3", "52:54:00:aa:00:03", "", "", "", {}}));
  // A <metadata> element outside cutover's namespace names nothing, even with the same name.
  const std::string foreign_ns = R"(<domain><metadata><c:interfaces xmlns:c="urn:not-cutover">
      <c:interface mac="52:54:00:00:00:01" network="blue"/></c:interfaces></metadata>
    <devices><interface type='bridge'><mac address='52:54:00:00:00:01'/>
      <virtualport type='openvswitch'><parameters interfaceid='i'/></virtualport></interface>
    </devices></domain>)";
  EXPECT_EQ(domain_interfaces(foreign_ns).at(0).network, "");
  // Hostile documents: too many interfaces, an over-long value, no devices at all.
  std::string many = "<domain><devices>";
  for (int i = 0; i < 257; ++i) {
    many += "<interface type='ethernet'><target dev='t" + std::to_string(i) + "'/></interface>";
  }
  many += "</devices></domain>";
  EXPECT_THROW(domain_interfaces(many), ParseError);
  const std::string long_id = "<domain><devices><interface type='ethernet'><target dev='" +
                              std::string(300, 'a') + "'/></interface></devices></domain>";
  try {
    domain_interfaces(long_id);
    ADD_FAILURE() << "accepted a 300-character tap name";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.field(), "xml");
    EXPECT_NE(std::string(e.what()).find("interface 1 target dev"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(domain_interfaces("<domain/>").empty());
  // Entities are not expanded (no XML_PARSE_NOENT): an external one reads no file.
  const std::string secret_file = ::testing::TempDir() + "cutover_domain_xml_secret";
  std::FILE* f = std::fopen(secret_file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("SECRET", f);
  std::fclose(f);
  const std::string entity = "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY e SYSTEM 'file://" +
                             secret_file +
                             "'>]><domain><devices><interface type='ethernet'>"
                             "<target dev='x&e;'/></interface></devices></domain>";
  try {
    for (const auto& i : domain_interfaces(entity)) {
      EXPECT_EQ(i.iface_id.find("SECRET"), std::string::npos) << i.iface_id;
    }
  } catch (const ParseError& e) {
    EXPECT_EQ(e.field(), "xml");  // refusing the document is fine too
  }
  std::remove(secret_file.c_str());
}

TEST(Wire, MigrateCarriesLibvirtSettingsOnlyWhenSetAndIsStrict) {
  Migrate plain{"m1", "if-1", "qemu+tcp://h2/system", {}};
  const auto text = encode(ControllerMessage{plain});
  EXPECT_EQ(text.find("libvirt"), std::string::npos) << "unset: the agent's defaults";
  Migrate asked{"m2", "if-1", "qemu+tcp://h2/system", {false, true, false, 512, true}};
  auto back = std::get<Migrate>(decode_controller_message(encode(ControllerMessage{asked})));
  EXPECT_EQ(back.libvirt, asked.libvirt);
  for (
      const char* bad :
      {R"({"type":"migrate","migration":"m","iface_id":"i","destination_uri":"u","libvirt":{"bandwidth_mib_s":0}})",
       R"({"type":"migrate","migration":"m","iface_id":"i","destination_uri":"u","libvirt":{"persist":"yes"}})",
       R"({"type":"migrate","migration":"m","iface_id":"i","destination_uri":"u","libvirt":{"postcopy":1}})",
       R"({"type":"migrate","migration":"m","iface_id":"i","destination_uri":"u","libvirt":[]})"}) {
    try {
      decode_controller_message(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ParseError& e) {
      EXPECT_EQ(e.field().rfind("libvirt", 0), 0u) << e.field();
    }
  }
}

TEST(Wire, PreparedRoundTripsAndIsStrict) {
  const auto p = std::get<Prepared>(decode_controller_message(
      encode(ControllerMessage{Prepared{"iface-1", "m4", false, "policy: no"}})));
  EXPECT_EQ(p.iface_id, "iface-1");
  EXPECT_EQ(p.migration, "m4");
  EXPECT_FALSE(p.ok);
  EXPECT_EQ(p.error, "policy: no");
  EXPECT_TRUE(
      std::get<Prepared>(decode_controller_message(
                             R"({"type":"prepared","iface_id":"x","migration":"m1","ok":true})"))
          .ok);
  EXPECT_THROW(decode_controller_message(R"({"type":"prepared"})"), ParseError);
  EXPECT_THROW(decode_controller_message(R"({"type":"prepared","iface_id":"x","extra":1})"),
               ParseError);
}

TEST(Wire, AbortAndItsAnswerRoundTripAndAreStrict) {
  const auto a =
      std::get<Abort>(decode_controller_message(encode(ControllerMessage{Abort{"m7", "vm-1"}})));
  EXPECT_EQ(a.migration, "m7");
  EXPECT_EQ(a.iface_id, "vm-1");
  EXPECT_THROW(decode_controller_message(R"({"type":"abort","migration":"m7"})"), ParseError);
  for (auto where : {Aborted::Where::here, Aborted::Where::gone, Aborted::Where::unknown}) {
    const auto ab = std::get<Aborted>(
        decode_agent_message(encode(AgentMessage{Aborted{"m7", where, "vm1 runs here"}})));
    EXPECT_EQ(ab.where, where);
    EXPECT_EQ(ab.migration, "m7");
    EXPECT_EQ(ab.detail, "vm1 runs here");
  }
  try {
    decode_agent_message(R"({"type":"aborted","migration":"m7","where":"elsewhere"})");
    ADD_FAILURE() << "an unknown place must be refused";
  } catch (const ParseError& e) {
    EXPECT_EQ(e.field(), "where");
  }
}

TEST(DomainXml, BandwidthBecomesTheInterfacesRateLimits) {
  using cutover::agent::domain_interfaces;
  // libvirt: average in kilobytes/s (1000 B), burst in KiB; inbound = to the VM.
  const std::string xml = R"(<domain><devices>
      <interface type='ethernet'><mac address='52:54:00:aa:00:01'/><target dev='t1'/>
        <bandwidth><inbound average='1000' burst='256'/><outbound average='125'/></bandwidth>
      </interface>
      <interface type='ethernet'><target dev='t2'/>
        <bandwidth><inbound average='0'/></bandwidth></interface>
    </devices></domain>)";
  const auto got = domain_interfaces(xml);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].qos.to_vm, (RateLimit{8000, 2098}));  // 256 KiB = 2097.152 kbit, rounded up
  EXPECT_EQ(got[0].qos.from_vm, (RateLimit{1000, 0}));
  EXPECT_TRUE(got[1].qos.empty()) << "average 0 is libvirt's 'no limit'";
  // It travels in the agent's report.
  AgentReport r;
  r.vms["web"] = got;
  auto j = nlohmann::json::object();
  add_report_fields(r, j);
  JsonReader reader(j, "report");
  EXPECT_EQ(report_fields_from(reader).vms.at("web"), got);
  // Bad numbers are named, never half-read.
  for (const char* bad :
       {"average='-1'", "average='1e3'", "average='99999999999999'", "average='10' burst='x'"}) {
    const std::string doc = std::string("<domain><devices><interface type='ethernet'>") +
                            "<target dev='t'/><bandwidth><outbound " + bad +
                            "/></bandwidth></interface></devices></domain>";
    try {
      domain_interfaces(doc);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ParseError& e) {
      EXPECT_NE(std::string(e.what()).find("bandwidth outbound"), std::string::npos) << e.what();
    }
  }
}

// AckRepeat: a repeat is recognised only when the full decode would give the same report, and
// then with the numbers the full decode would give.
TEST(AckRepeat, MatchesOnlyWhatDecodesToTheSameReport) {
  const std::string first =
      R"({"apply_ms":0.41,"bound_ports":["a","b"],"generation":7,"type":"ack",)"
      R"("vms":{"vm1":[{"iface_id":"a","mac":"52:54:00:00:00:01"}]}})";
  auto ack = std::get<Ack>(decode_agent_message(first));
  AckRepeat repeat;
  EXPECT_FALSE(repeat.match(first)) << "nothing remembered yet";
  repeat.remember(first, ack);
  auto same = [&](const std::string& text) {
    auto numbers = repeat.match(text);
    if (!numbers) return false;
    const auto full = std::get<Ack>(decode_agent_message(text));
    EXPECT_EQ(numbers->generation, full.generation) << text;
    EXPECT_EQ(numbers->apply_ms, full.apply_ms) << text;
    EXPECT_TRUE(static_cast<const AgentReport&>(full) == static_cast<const AgentReport&>(ack));
    return true;
  };
  const auto with = [&](const std::string& ms, const std::string& gen) {
    std::string t = first;
    t.replace(t.find("0.41"), 4, ms);
    t.replace(t.find("\"generation\":7") + 13, 1, gen);
    return t;
  };
  EXPECT_TRUE(same(first));
  EXPECT_TRUE(same(with("12.5", "8")));
  EXPECT_TRUE(same(with("0", "9223372036854775807")));
  EXPECT_TRUE(same(with("-1.5E+2", "0")));
  // Numbers the full decode would refuse or read otherwise: not a repeat.
  for (const auto& [ms, gen] :
       std::vector<std::pair<std::string, std::string>>{{"1", "9223372036854775808"},
                                                        {"1", "07"},
                                                        {"1", "-1"},
                                                        {"1", "1.0"},
                                                        {"1", "1e3"},
                                                        {"1", ""},
                                                        {"01", "1"},
                                                        {"1.", "1"},
                                                        {".5", "1"},
                                                        {"1e", "1"},
                                                        {"1e999", "1"},
                                                        {"+1", "1"},
                                                        {"--1", "1"}}) {
    EXPECT_FALSE(repeat.match(with(ms, gen))) << ms << " " << gen;
  }
  // Anything else different: a report field, the type, trailing bytes.
  std::string other = first;
  other.replace(other.find("\"b\""), 3, "\"c\"");
  EXPECT_FALSE(repeat.match(other));
  EXPECT_FALSE(repeat.match(first + " "));
  EXPECT_FALSE(repeat.match(first.substr(0, first.size() - 1)));
  // A key inside a nested object is not the ACK's generation.
  const std::string nested = R"({"generation":3,"type":"ack","vms":{"generation":[]}})";
  ack = std::get<Ack>(decode_agent_message(nested));
  repeat.remember(nested, ack);
  EXPECT_TRUE(same(R"({"generation":4,"type":"ack","vms":{"generation":[]}})"));
  // Not remembered: an ACK that waits for something, or with a key twice.
  const std::string partial = R"({"generation":3,"type":"ack","waiting_for":["x"]})";
  repeat.remember(partial, std::get<Ack>(decode_agent_message(partial)));
  EXPECT_FALSE(repeat.match(partial));
  const std::string twice = R"({"generation":3,"generation":4,"type":"ack"})";
  Ack any;
  any.generation = 4;
  repeat.remember(twice, any);
  EXPECT_FALSE(repeat.match(twice));
  const std::string escaped = R"({"generation":3,"generatio\u006e":4,"type":"ack"})";
  repeat.remember(escaped, any);
  EXPECT_FALSE(repeat.match(escaped));
}
