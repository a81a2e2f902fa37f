// CommandLine: the command tree (what `cutoverctl --help` lists) and its parsing.
#include "command_line.hpp"

#include <cstdio>

#include "parse_error.hpp"
#include "version.hpp"

namespace cutover::cli {

namespace {

constexpr const char* kFooter = R"(
The controller defaults to $CUTOVER_CONTROLLER or http://127.0.0.1:8180; the token to the first
line of --token-file, else $CUTOVER_TOKEN. For https:// give the CA (--tls-ca, or
$CUTOVER_TLS_CA) and a token, or a client certificate (--tls-cert, --tls-key).
`cutoverctl COMMAND --help` shows a command's verbs, `cutoverctl COMMAND VERB --help` its flags.)";

}  // namespace

CommandLine::CommandLine(Flags& flags)
    : app_(
          "Command-line client for cutover-controller's REST API: tables by default, --json for "
          "scripts.",
          "cutoverctl"),
      f_(flags) {
  app_.set_version_flag("--version", std::string("cutoverctl ") + kVersion);
  app_.set_help_flag("-h,--help", "show this help (after a command: that command's)");
  app_.set_help_all_flag("--help-all", "show every command with its flags");
  app_.footer(kFooter);
  // Global flags may follow the command (`cutoverctl ports list --json`).
  app_.fallthrough();
  app_.require_subcommand(1);
  value(&app_, "controller", &f_.controller, "controller base URL");
  value(&app_, "token-file", &f_.token_file, "file whose first line is the shared token");
  flag(&app_, "json", &f_.json_out, "print JSON instead of tables");
  value(&app_, "tls-ca", &f_.tls.ca, "https://: the CA that signed the controller's certificate");
  value(&app_, "tls-cert", &f_.tls.cert,
        "https://: a client certificate (role admin or reader) to authenticate by, no token");
  value(&app_, "tls-key", &f_.tls.key, "https://: the key of --tls-cert");
  value(&app_, "pki-dir", &f_.pki_dir, "pki: the certificate authority's directory");

  // hosts, networks, ports, migrations: list (the default), show, delete, create.
  auto crud = [&](const std::string& kind, const std::string& what, bool deletable = true) {
    auto* c = command(kind, what + " (default verb: list)");
    verb(c, "list", "list them");
    verb(c, "show", "show one", "ID", "its id");
    if (deletable) verb(c, "delete", "delete one", "ID", "its id");
    return c;
  };
  auto* hosts = crud("hosts", "hypervisors and their VTEPs");
  auto* hc = verb(hosts, "create", "add (or replace) a host");
  value(hc, "id", &f_.id, "host id (required)");
  value(hc, "underlay-ip", &f_.underlay_ip, "its VXLAN tunnel endpoint (required)");
  value(hc, "backend", &f_.backend, "ovs (default) or linux");
  value(hc, "labels", &f_.labels, "k=v,... (policy selects hosts by them)");

  auto* networks = crud("networks", "overlay networks (VNIs)");
  auto* nc = verb(networks, "create", "add a network");
  value(nc, "id", &f_.id, "network id (required)");
  value(nc, "vni", &f_.vni, "VXLAN network identifier (required)");
  value(nc, "mtu", &f_.mtu, "VM-facing MTU (default 1450)");
  value(nc, "name", &f_.name, "display name");

  auto* ports = crud("ports", "VM NICs: where each is, and what follows it");
  auto* pc = verb(ports, "create", "add a port");
  value(pc, "id", &f_.id, "port id (required)");
  value(pc, "mac", &f_.mac, "its MAC (required)");
  value(pc, "network", &f_.network, "its network (required)");
  value(pc, "ips", &f_.ips, "IP,... (announced after a migration)");
  value(pc, "host", &f_.host, "where it runs now");
  value(pc, "iface-id", &f_.iface_id, "libvirt's interfaceid (default: the port id)");
  value(pc, "labels", &f_.labels, "k=v,...");
  value(pc, "volume", &f_.volume,
        "ID=NQN@TRADDR[:TRSVCID]: the VM's NVMe/TCP volume ([v6addr]:port)");
  value(pc, "allow", &f_.allow,
        "PROTO[:PORT],...: stateful firewall, new connections allowed only for these (tcp, udp, "
        "icmp); replies always; \"none\" = none");
  value(pc, "to-vm", &f_.to_vm, "KBIT_S[:BURST_KBIT]: rate limit towards the VM (follows it)");
  value(pc, "from-vm", &f_.from_vm, "KBIT_S[:BURST_KBIT]: rate limit from the VM (follows it)");
  auto* place = verb(ports, "place", "move a port's record to a host", "ID", "the port");
  value(place, "host", &f_.host, "the host (required)");

  auto libvirt = [&](CLI::App* c) {
    flag(c, "no-persist", &f_.no_persist,
         "leave the domain's definition on the source (libvirt; default: the agent's)");
    flag(c, "auto-converge", &f_.auto_converge, "libvirt's auto-converge");
    flag(c, "compressed", &f_.compressed, "compressed memory pages (libvirt)");
    value(c, "bandwidth-mib-s", &f_.bandwidth_mib_s, "cap libvirt's migration stream (MiB/s)");
    flag(c, "postcopy", &f_.postcopy,
         "post-copy: the VM switches to the destination after one pass over its memory");
    flag(c, "no-conntrack-carry", &f_.no_conntrack_carry,
         "leave the source's connection tracking behind (for comparisons)");
  };
  auto* migrations = crud("migrations", "migrations, running and finished", false);
  auto* ml = migrations->get_subcommand("list");
  value(ml, "limit", &f_.limit, "one page of this many (oldest first)");
  value(ml, "after", &f_.after, "the page after this id");
  verb(migrations, "cancel", "cancel one (rolled back before the VM's pause)", "ID", "its id");
  verb(migrations, "approve", "approve one that waits for approval", "ID", "its id");
  auto* mm =
      verb(migrations, "measure", "record what a traffic test measured across a finished migration",
           "ID", "its id");
  value(mm, "pps", &f_.pps, "the probe stream's rate (required)");
  value(mm, "sent", &f_.sent, "probe packets sent (required)");
  value(mm, "lost", &f_.lost, "of which never came back (required)");
  value(mm, "tcp-sessions", &f_.tcp_sessions, "TCP sessions open across it");
  value(mm, "tcp-survived", &f_.tcp_survived, "of which survived");
  value(mm, "by", &f_.by, "who measured");
  auto* mc = verb(migrations, "create", "request a migration (--port or --vm)");
  value(mc, "port", &f_.port, "the port to migrate");
  value(mc, "vm", &f_.vm, "or the libvirt domain (all its ports)");
  value(mc, "to", &f_.to, "destination host (required)");
  libvirt(mc);

  auto* migrate = command("migrate",
                          "migrate a port or a VM (a name that is no port is a libvirt "
                          "domain), and with --wait follow it to its end");
  operand_of_[migrate] = "PORT|VM";
  migrate->add_option("PORT|VM", operands_[migrate], "a port id or a libvirt domain name")
      ->required();
  value(migrate, "to", &f_.to, "destination host (required)");
  flag(migrate, "wait", &f_.wait, "follow the migration until it ends; print its timeline");
  value(migrate, "timeout-s", &f_.timeout_s, "with --wait: give up after this many seconds");
  libvirt(migrate);

  command("agents", "the agents: connected, applied generation, what they wait for");
  command("inventory",
          "the VMs' interfaces the agents report (libvirt), the port each is, or why none was "
          "made");
  auto* mappings = command("mappings",
                           "libvirt network (portgroup) -> cutover network, for the inventory "
                           "(default verb: list)");
  verb(mappings, "list", "list them");
  verb(mappings, "show", "show one", "LIBVIRT_NET", "the libvirt network");
  verb(mappings, "delete", "delete one", "LIBVIRT_NET", "the libvirt network");
  auto* ms = verb(mappings, "set", "interfaces on that libvirt network become ports of a network",
                  "LIBVIRT_NET", "the libvirt network");
  value(ms, "network", &f_.network, "the cutover network");
  value(ms, "portgroups", &f_.portgroups, "PG=NET,...: per portgroup");
  auto* audit = command("audit", "the audit log, oldest first");
  value(audit, "limit", &f_.limit,
        "one page of this many; a full page prints on stderr the --after of the next");
  value(audit, "after", &f_.after, "the page after this seq");
  auto* completion = command("completion",
                             "print the shell completion script (the package "
                             "installs it)");
  operand_of_[completion] = "SHELL";
  completion->add_option("SHELL", operands_[completion], "bash")
      ->required()
      ->check(CLI::IsMember({"bash"}));

  auto* pki = command("pki", "the cluster's certificate authority (in --pki-dir)");
  pki->require_subcommand(1);
  auto* init = verb(pki, "init", "create the certificate authority");
  value(init, "name", &f_.name, "the CA's name (default: cutover CA)");
  value(init, "days", &f_.days, "validity (default 3650)");
  auto* issue = verb(pki, "issue",
                     "a key and certificate: an agent's NAME is its host id; a controller's lists "
                     "the DNS names and IPs agents dial",
                     "NAME", "host id, controller or user name");
  value(issue, "role", &f_.role, "agent (default), controller, admin or reader");
  value(issue, "dns", &f_.dns, "DNS names, comma-separated");
  value(issue, "ips", &f_.ips, "IP addresses, comma-separated");
  value(issue, "days", &f_.days, "validity (default 825)");
  verb(pki, "revoke", "add NAME's certificate to crl.pem (the controller reloads it on SIGHUP)",
       "NAME", "whose certificate");
  verb(pki, "crl", "rewrite crl.pem (it is valid for 30 days)");
  // The footer once, under the program's help, not under every command's.
  std::function<void(CLI::App*)> quiet = [&](CLI::App* a) {
    for (auto* sub : a->get_subcommands([](CLI::App*) { return true; })) {
      sub->footer("");
      quiet(sub);
    }
  };
  quiet(&app_);
}

CLI::App* CommandLine::command(const std::string& name, const std::string& help) {
  auto* c = app_.add_subcommand(name, help);
  c->require_subcommand(0, 1);
  return c;
}

CLI::App* CommandLine::verb(CLI::App* parent, const std::string& name, const std::string& help,
                            const std::string& operand, const std::string& operand_help) {
  auto* v = parent->add_subcommand(name, help);
  if (!operand.empty()) {
    operand_of_[v] = operand;
    v->add_option(operand, operands_[v], operand_help)->required();
  }
  return v;
}

void CommandLine::value(CLI::App* app, const std::string& name, std::string* target,
                        const std::string& help) {
  app->add_option("--" + name, *target, help);
  flags_of_[app].emplace_back(name, true);
}

void CommandLine::value(CLI::App* app, const std::string& name, int64_t* target,
                        const std::string& help) {
  app->add_option("--" + name, *target, help);
  flags_of_[app].emplace_back(name, true);
}

void CommandLine::flag(CLI::App* app, const std::string& name, bool* target,
                       const std::string& help) {
  app->add_flag("--" + name, *target, help);
  flags_of_[app].emplace_back(name, false);
}

std::vector<const CLI::App*> CommandLine::given() const {
  std::vector<const CLI::App*> chain;
  for (const CLI::App* at = &app_; !at->get_subcommands().empty();) {
    at = at->get_subcommands().front();
    chain.push_back(at);
  }
  return chain;
}

bool CommandLine::parse(int argc, char** argv) {
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    // The help of the deepest command given: `cutoverctl ports create --help` is create's.
    const auto chain = given();
    std::string prefix = app_.get_name();
    for (size_t i = 0; i + 1 < chain.size(); ++i) prefix += " " + chain[i]->get_name();
    const CLI::App* at = chain.empty() ? &app_ : chain.back();
    std::fputs(at->help(chain.empty() ? "" : prefix).c_str(), stdout);
    return false;
  } catch (const CLI::CallForAllHelp&) {
    // Every command and verb with its flags (what the man page is made from).
    std::string out = app_.help();
    std::function<void(const CLI::App*, const std::string&)> all = [&](const CLI::App* a,
                                                                       const std::string& at) {
      for (const auto* sub : a->get_subcommands([](const CLI::App*) { return true; })) {
        out += "\n" + sub->help(at);
        all(sub, at + " " + sub->get_name());
      }
    };
    all(&app_, "cutoverctl");
    std::fputs(out.c_str(), stdout);
    return false;
  } catch (const CLI::CallForVersion& e) {
    std::printf("%s\n", e.what());
    return false;
  } catch (const CLI::ParseError& e) {
    // CLI11 names the flag or operand in its message; the command it concerns goes first.
    std::string where;
    for (const auto* at : given()) where += (where.empty() ? "" : " ") + at->get_name();
    throw ParseError(where.empty() ? "cutoverctl" : where, std::string(e.what()) + " (see --help)");
  }
  words_.clear();
  for (const auto* at : given()) {
    words_.push_back(at->get_name());
    if (operand_of_.count(at)) words_.push_back(operands_.at(at));
  }
  return true;
}

CompletionNode CommandLine::node_of(const CLI::App* app) const {
  CompletionNode n;
  n.name = app->get_name();
  if (auto it = flags_of_.find(app); it != flags_of_.end()) n.flags = it->second;
  if (app == &app_) {
    n.flags.emplace_back("help", false);
    n.flags.emplace_back("version", false);
  }
  for (const auto* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    n.children.push_back(node_of(sub));
  }
  return n;
}

CompletionNode CommandLine::completion_tree() const { return node_of(&app_); }

}  // namespace cutover::cli
