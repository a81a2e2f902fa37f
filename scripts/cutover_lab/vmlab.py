"""The real-VM cutover lab (used by scripts/lab and tests/e2e): a controller and three emulated
hypervisors (netns + own OVS + cutover-agent; libvirtd on h1 and h2), a QEMU guest on h1 with
UDP/TCP echo servers, a client on h3, and live migrations h1 <-> h2 measured from the client -
through cutover, then (optionally) with plain OVS NORMAL learning + QEMU announce as the
baseline. Returns the per-migration results and the report text."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

from .netlab import LabError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")

VM_MAC, VM_IP, VM_IFACE = "52:54:00:10:00:0a", "10.1.0.10", "6f1c2a9e-0000-4000-8000-00000000000a"
VM_TAP = "cvt-vm1"  # the Linux dataplane's iface-id for vm1: its tap's name (<= 15 characters)
CLI_MAC, CLI_IP = "52:54:00:00:00:99", "10.1.0.99"
# The two-NIC VM (--two-nics): vm1's second NIC on network red (VNI 200, its own subnet), and a
# second client on red beside the first, so that each NIC is measured on its own.
VM2_MAC, VM2_IP, VM2_IFACE = "52:54:00:20:00:0a", "10.2.0.10", "6f1c2a9e-0000-4000-8000-00000000020a"
VM2_TAP = "cvt-vm1-red"
CLI2_MAC, CLI2_IP = "52:54:00:00:02:99", "10.2.0.99"
# Storage (--storage): an NVMe/TCP target guest on h3; vm1's data disk is its namespace, attached
# from inside vm1 (this machine's kernel has no nvme-tcp), I/O reports to the client on IO_PORT.
STOR_MAC, STOR_IP, STOR_IFACE = "52:54:00:10:00:14", "10.1.0.20", "6f1c2a9e-0000-4000-8000-000000000014"
STOR_NQN = "nqn.2026-11.dev.cutover:lab-volume"
STOR_NGUID = "c07e0000000040008000000000000001"
IO_PORT = 9100
PROBE_SECONDS = 6
# The second UDP stream, next to the 1 kpps one. Measured here, not migrating: the TCG guest
# echoes 5 kpps alone without loss (2 x 5 s), loses at 6 kpps, and lost 20 of 30,000 in one of
# two 6 s runs of 4 kpps beside the 1 kpps stream and the TCP sessions - so 3 kpps.
FAST_PPS = 3000


class Progress:
    def __init__(self, total):
        self.total, self.n, self.t0 = total, 0, time.monotonic()

    def step(self, msg):
        self.n += 1
        print(f"[{self.n}/{self.total} {time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)


def migration_state(lab, ctl, mid):
    return json.loads(lab.ctl(ctl, "--json", "migrations", "show", mid).stdout)


def run_hop(ctx, mode, src, dst, tag):
    from .netlab import LabError, wait_until
    from . import vmhost
    from . import loss
    lab, cli, env, traffic = ctx["lab"], ctx["cli"], ctx["env"], ctx["traffic"]
    udp_out = os.path.join(lab.dir, f"udp-{tag}.json")
    fast_out = os.path.join(lab.dir, f"udp-fast-{tag}.json")
    tcp_out = os.path.join(lab.dir, f"tcp-{tag}.json")
    hosts = list(lab.hosts.values())  # the client's host too: replies burst into it
    drops_before = loss.drop_counters(hosts)
    agents = ctx.get("agents") or {}
    log_at = {h: _log_size(agents.get(h)) for h in (src, dst)}
    pause_watch = loss.PauseWatch(lab, ctx["libvirt"][src], ctx["libvirt"][dst])
    udp = lab.spawn(cli.ns, traffic + ["udp-probe", VM_IP, "7", "1000", str(PROBE_SECONDS), udp_out,
                                      "stat"],
                    f"udp-{tag}.log", env=env)
    fast = lab.spawn(cli.ns, traffic + ["udp-probe", VM_IP, "7", str(FAST_PPS), str(PROBE_SECONDS),
                                       fast_out, "stat"], f"udp-fast-{tag}.log", env=env)
    tcp = lab.spawn(cli.ns, traffic + ["tcp-probe", VM_IP, "7", "8", str(PROBE_SECONDS), tcp_out],
                    f"tcp-{tag}.log", env=env)
    cli2 = ctx.get("cli2")
    if cli2:  # the second NIC: its own 1 kpps stream and 8 TCP sessions, from the client on red
        udp2_out = os.path.join(lab.dir, f"udp2-{tag}.json")
        tcp2_out = os.path.join(lab.dir, f"tcp2-{tag}.json")
        udp2 = lab.spawn(cli2.ns, traffic + ["udp-probe", VM2_IP, "7", "1000", str(PROBE_SECONDS),
                                            udp2_out], f"udp2-{tag}.log", env=env)
        tcp2 = lab.spawn(cli2.ns, traffic + ["tcp-probe", VM2_IP, "7", "8", str(PROBE_SECONDS),
                                            tcp2_out], f"tcp2-{tag}.log", env=env)
    io = None
    if ctx.get("storage"):
        io_out = os.path.join(lab.dir, f"io-{tag}.json")
        io = lab.spawn(cli.ns, traffic + ["io-recv", str(IO_PORT), io_out], f"io-{tag}.log", env=env)
    time.sleep(1.0)  # a second of steady traffic before the migration starts
    timeline = {}
    mid = None
    t0 = time.monotonic()
    t_wall = time.time()
    if mode in ("cutover", "postcopy"):
        # cutover drives it: prepare, then the source agent live-migrates (libvirt p2p); in
        # post-copy the VM switches to the destination after one pass over its memory.
        m = json.loads(ctx["lab"].ctl(ctx["ctl"], "--json", "migrations", "create", "--vm", "vm1",
                                      "--to", dst, *(["--postcopy"] if mode == "postcopy" else [])
                                      ).stdout)
        if m["state"] not in ("preparing", "ready"):
            raise LabError(f"migration refused: {m}")
        done = wait_until("migration completed", lambda: (lambda x: x["state"] in (
            "completed", "rolled_back") and x)(migration_state(lab, ctx["ctl"], m["id"])), timeout=60)
        if done["state"] != "completed":
            raise LabError(f"migration rolled back: {done['reason']}")
        timeline = done["timeline"]
        mid = m["id"]
        wall = time.monotonic() - t0
        if mode == "postcopy":
            # libvirt's completed job info of a post-copy migration has no downtime (seen here:
            # none 30 s later); the pause is QEMU's STOP -> RESUME as for every hop.
            downtime = vmhost.completed_downtime(ctx["libvirt"][dst], "vm1")
        else:
            downtime = wait_until("libvirt job info", lambda: vmhost.completed_downtime(
                ctx["libvirt"][dst], "vm1"), timeout=10)
    else:
        wall, downtime = vmhost.migrate(ctx["libvirt"][src], ctx["libvirt"][dst], "vm1")
        if mode == "external":
            # cutover follows: wait until the controller placed the port on the destination.
            # cutover saw it start (the tap, or the libvirt hook) and prepared it, or - if not -
            # followed it once the VM ran there.
            def followed():
                ms = [m for m in json.loads(lab.ctl(ctx["ctl"], "--json", "migrations").stdout)
                      if m["port"] == "vm1" and m["destination"] == dst and m["state"] == "completed"
                      and ("detected_incoming" in m["timeline"] or "detected_external" in m["timeline"])
                      and m["timeline"]["requested"] >= t_wall * 1e6]
                return ms[-1] if ms else None
            m = wait_until("controller to follow the external migration", followed, timeout=30)
            timeline, mid = m["timeline"], m["id"]
    udp.wait(timeout=PROBE_SECONDS + 30)
    fast.wait(timeout=PROBE_SECONDS + 30)
    tcp.wait(timeout=PROBE_SECONDS + 30)
    second = None
    if cli2:
        udp2.wait(timeout=PROBE_SECONDS + 30)
        tcp2.wait(timeout=PROBE_SECONDS + 30)
        with open(udp2_out) as f:
            u2 = json.load(f)
        with open(tcp2_out) as f:
            t2 = json.load(f)
        second = {"network": "red", "lost": u2["lost"], "sent": u2["sent"],
                  "duplicates": u2["duplicates"], "max_gap_ms": u2["max_gap_ms"],
                  "tcp_sessions": t2["sessions"], "tcp_survived": t2["survived"]}
    pause = pause_watch.stop()
    drops = loss.diff(drops_before, loss.drop_counters(hosts))
    garps = None
    if mid:  # the destination's announcement rounds end 200 ms after activation: read them now
        final = migration_state(lab, ctx["ctl"], mid)
        timeline, garps = final["timeline"], final.get("announcements")
    with open(udp_out) as f:
        u = json.load(f)
    with open(fast_out) as f:
        fu = json.load(f)
    with open(tcp_out) as f:
        t = json.load(f)
    if mid:
        # What this hop measured goes onto its migration, where the console and `cutoverctl
        # migrations show` show it next to the controller's timeline.
        res = lab.ctl(ctx["ctl"], "migrations", "measure", mid, "--pps", "1000", "--sent",
                      str(u["sent"]), "--lost", str(u["lost"]), "--tcp-sessions",
                      str(t["sessions"]), "--tcp-survived", str(t["survived"]), "--by",
                      f"scripts/lab ({mode})", check=False)
        if res.returncode != 0:
            print(f"    measurement not recorded on {mid}: {res.stderr.strip()}", flush=True)
    gap = u["max_gap_ms"] or 0.0
    where = loss.split(u, 1000, pause, u.get("guest"))
    fast_where = loss.split(fu, FAST_PPS, pause, fu.get("guest"))
    phases = {k: v / 1e6 - u["start_wall"] for k, v in timeline.items()}
    storage = {}
    if io:
        io.send_signal(signal.SIGTERM)
        io.wait(timeout=10)
        with open(io_out) as f:
            reports = json.load(f)["reports"]
        times = [r[0] for r in reports]
        storage = {"io_completed": len(reports), "io_errors": sum(1 for r in reports if r[2]),
                   "io_stall_ms": round(max((b - a for a, b in zip(times, times[1:])), default=0) * 1000, 1)}
    http_ok = http_get(ctx)
    pause_ms = where["pause_ms"]
    return {"mode": mode, "hop": f"{src}->{dst}", "downtime_ms": downtime, "http_ok": http_ok, "migrate_wall_s": round(wall, 3),
            "pause_ms": pause_ms, "lost": u["lost"], "sent": u["sent"],
            "duplicates": u["duplicates"] + fu["duplicates"], "max_gap_ms": gap,
            # Beyond the VM's actual pause (QEMU STOP -> RESUME); QEMU's downtime if unseen.
            "beyond_pause_ms": round(max(0.0, gap - (pause_ms or downtime or 0.0)), 1),
            "loss": where, "fast": {"pps": FAST_PPS, "sent": fu["sent"], "lost": fu["lost"],
                                    "duplicates": fu["duplicates"], "max_gap_ms": fu["max_gap_ms"],
                                    "loss": fast_where},
            "host_drops": drops, "tcp_sessions": t["sessions"],
            "tcp_survived": t["survived"], "tcp_max_stall_ms": t["max_stall_ms"], "timeline": timeline,
            "garps": garps, **storage,
            # The two-NIC VM: the second NIC's own figures (the first NIC's are the ones above).
            **({"second_nic": second} if second else {}),
            "phases_s": phases, "echoes": u["echoes"],
            # Whether the source's agent switched the migration to post-copy (its log says so).
            "postcopy_switched": any("switching to post-copy" in line
                                     for line in _log_since(agents.get(src), log_at[src])),
            # What the agents' relays did in this hop, for reading a bad hop afterwards.
            "relay_log": [f"{h}: {line}" for h in (src, dst)
                          for line in _log_since(agents.get(h), log_at[h]) if "relay" in line][:40]}


def checked_hop(ctx, mode, src, dst, tag):
    """run_hop, then what a bad hop leaves behind: the diagnosis when it failed or lost the VM,
    and GuestCrashed when the guest's kernel oopsed during it (the console says so)."""
    lab = ctx["lab"]
    console = os.path.join(lab.dir, "vm1-console.log")
    console_at = os.path.getsize(console) if os.path.exists(console) else 0

    # A guest whose kernel died takes every echo with it; no later hop can measure a thing.
    def crashed(what):
        oops = guest_oops(console, console_at)
        if oops:
            return GuestCrashed(f"vm1's kernel crashed during the {mode} hop {src} -> {dst} "
                                f"({what}); its console:\n  " + "\n  ".join(oops))
        return None

    try:
        r = run_hop(ctx, mode, src, dst, tag)
    except BaseException as e:
        diagnose(ctx, f"{mode} hop {src} -> {dst} failed: {e}")
        crash = None if isinstance(e, KeyboardInterrupt) else crashed(f"the hop failed: {e}")
        if crash:
            raise crash from e
        raise
    print(hop_line(r))
    if r["tcp_survived"] < r["tcp_sessions"] or r["lost"] > 500:
        diagnose(ctx, f"{mode} hop {src} -> {dst} lost {r['lost']} echoes, TCP "
                      f"{r['tcp_survived']}/{r['tcp_sessions']}")
    crash = crashed(f"lost {r['lost']} at 1 kpps, TCP {r['tcp_survived']}/{r['tcp_sessions']}")
    if crash:
        raise crash
    return r


def _tail(path, n, keep=lambda line: True):
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in f if keep(line)][-n:]
    except (OSError, TypeError):
        return []


def diagnose(ctx, why):
    """Prints what a lost VM leaves behind, before the lab's files are removed: where libvirt says
    the VM is, the end of its console, and the warnings of the controller and the agents (a CI
    run keeps only what a failed test printed). Never raises: it runs while something failed."""
    try:
        _diagnose(ctx, why)
    except Exception as e:  # noqa: BLE001 - the failure being diagnosed matters more
        print(f"DIAGNOSIS ({why}) failed: {e}", flush=True)


def _diagnose(ctx, why):
    lab = ctx["lab"]
    out = [f"DIAGNOSIS ({why}); lab files in {lab.dir}"]
    for host, lv in ctx["libvirt"].items():
        try:
            state = lv.virsh("domstate", "vm1", "--reason", check=False, timeout=10).stdout.strip()
        except Exception as e:  # noqa: BLE001 - a dying libvirtd is evidence too
            state = f"virsh failed: {e}"
        out.append(f"  vm1 on {host}: {state or '-'}")
    out.append("  guest console (last 15 lines):")
    out += ["    " + line for line in _tail(os.path.join(lab.dir, "vm1-console.log"), 15)]
    important = lambda line: any(w in line for w in ("warn", "error", "critical"))  # noqa: E731
    for log in sorted(glob.glob(os.path.join(lab.dir, "controller*.log"))):  # several with --ha
        out.append(f"  {os.path.basename(log)} warnings (last 20):")
        out += ["    " + line for line in _tail(log, 20, important)]
    for host, agent in sorted(ctx["agents"].items()):
        out.append(f"  {host} agent warnings (last 15):")
        out += ["    " + line
                for line in _tail(getattr(getattr(agent, "proc", None), "log_path", None), 15,
                                  important)]
    print("\n".join(out), flush=True)


def _log_size(agent):
    try:
        return os.path.getsize(agent.proc.log_path)
    except (AttributeError, OSError, TypeError):
        return 0


def _log_since(agent, offset):
    return _lines_since(getattr(getattr(agent, "proc", None), "log_path", None), offset)


def _lines_since(path, offset):
    """The lines a file gained after its first `offset` bytes ([] if it cannot be read)."""
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            return f.read().splitlines()
    except (OSError, TypeError):
        return []


def http_get(ctx):
    """A fresh TCP connection to the guest's HTTP server from the client, after a hop: True if
    it answered with its page."""
    get = ("import urllib.request as u; print(u.build_opener(u.ProxyHandler({})).open("
           f"'http://{VM_IP}/', timeout=5).read().decode())")
    res = ctx["cli"].exec(sys.executable, "-c", get, check=False, timeout=15)
    return res.returncode == 0 and "cutover lab guest" in res.stdout


def to_baseline(ctx):
    """Stops cutover's agents and turns every br-int into a plain learning switch over a VXLAN
    star centred on the client's host (a full mesh with NORMAL would loop)."""
    lab = ctx["lab"]
    for a in ctx["agents"].values():
        lab.stop(a.proc)
    hub = lab.hosts["h3"]
    for h in lab.hosts.values():
        h.ofctl("del-flows", h.mgmt())
        h.ofctl("add-flow", h.mgmt(), "priority=0,actions=NORMAL")
        for port in h.vsctl("list-ports", "br-int").stdout.split():
            if port.startswith("cv-"):
                h.vsctl("del-port", "br-int", port)
    for h in (lab.hosts["h1"], lab.hosts["h2"]):
        h.vsctl("add-port", "br-int", f"bl-{hub.name}", "--", "set", "interface", f"bl-{hub.name}",
                "type=vxlan", f"options:remote_ip={hub.underlay_ip}", "options:key=100")
        hub.vsctl("add-port", "br-int", f"bl-{h.name}", "--", "set", "interface", f"bl-{h.name}",
                  "type=vxlan", f"options:remote_ip={h.underlay_ip}", "options:key=100")


def probe_storage(lab, cli, env):
    """The userspace NVMe/TCP path probe from the client's namespace against the lab's target:
    the volume, a wrong NQN, a closed port and an address nobody answers - each must be reported
    as what it is. Returns {case: probe JSON}."""
    probe = os.path.join(BUILD, "agent", "cutover-nvme-probe")
    cases = {
        "volume": ["--traddr", STOR_IP, "--nqn", STOR_NQN, "--expect-nguid", STOR_NGUID],
        "wrong_nqn": ["--traddr", STOR_IP, "--nqn", STOR_NQN + "-nope"],
        "closed_port": ["--traddr", STOR_IP, "--trsvcid", "4421", "--nqn", STOR_NQN],
        "no_answer": ["--traddr", "10.1.0.77", "--nqn", STOR_NQN, "--timeout-ms", "1500"],
    }
    out = {}
    for name, args in cases.items():
        res = cli.exec(probe, "--json", "--host-nqn", "nqn.2014-08.org.nvmexpress:uuid:lab-h3", *args,
                       check=False)
        out[name] = json.loads(res.stdout) if res.stdout.strip() else {"error": res.stderr.strip()}
    return out


def get_ready(prog, install_and_build=True):
    """Dependencies and the build (unless told not to), then the guest; returns the guest's
    (vmlinux, initrd, bindir). Two progress steps more with install_and_build."""
    from . import guest
    if install_and_build:
        prog.step("installing dependencies (idempotent)")
        subprocess.run([os.path.join(ROOT, "scripts", "install-deps")], check=True)
        prog.step("building cutover (libopenvswitch is built once and reused)")
        subprocess.run([os.path.join(ROOT, "scripts", "build")], check=True)
    prog.step("building the guest (Debian kernel, uncompressed + busybox initramfs)")
    return guest.build(os.path.join(BUILD, "lab", "guest"), log=lambda m: print("    " + m))


def bring_up(lab, prog, g, n_hosts=3, storage=False, relay=True, libvirt_everywhere=False,
             backend="ovs", migration_network=True, hook=True, ha=False, two_nics=False):
    """Controller + hosts h1..hN (netns + OVS + cutover-agent; libvirtd on h1, h2 - or on every
    host), the client on the last host, vm1 booted on h1 and echoing (two_nics: with a second NIC
    on network red, and a second client there). Returns the context run_hop() needs. Three
    progress steps, plus one with storage."""
    from .netlab import AgentRunner, wait_until
    from . import vmhost
    ctl = os.path.join(BUILD, "cli", "cutoverctl")
    names = [f"h{i}" for i in range(1, n_hosts + 1)]
    client_host = names[-1]
    prog.step(f"starting the controller and hypervisors {', '.join(names)} (netns + "
              f"{'OVS' if backend == 'ovs' else 'Linux bridge/VXLAN'} + cutover-agent)")
    lab.raise_socket_buffers()
    lab.add_underlay()
    if ha:
        lab.start_controllers_ha(os.path.join(BUILD, "controller", "cutover-controller"))
    else:
        lab.start_controller(os.path.join(BUILD, "controller", "cutover-controller"))
    hosts = {n: lab.add_host(n, backend) for n in names}
    vm_iface = VM_IFACE if backend == "ovs" else VM_TAP
    # libvirt first: an agent given --libvirt-uri refuses to start without it (preflight).
    lv_hosts = names if libvirt_everywhere else ["h1", "h2"] + ([client_host] if storage else [])
    if migration_network:
        for n in lv_hosts:
            lab.add_migration_network(hosts[n])
    prog.step(f"starting libvirtd on {', '.join(lv_hosts)} (private mount namespace each, subreaper)")
    hook_bin = os.path.join(BUILD, "agent", "cutover-libvirt-hook") if hook else None
    libvirt = {n: vmhost.Libvirt(lab, hosts[n], g[2], hook=hook_bin) for n in lv_hosts}
    for lv in libvirt.values():
        lv.start()
    agents = {}
    for n, h in hosts.items():
        uri = f"qemu+tcp://{h.underlay_ip}/system"
        extra = ["--libvirt-uri", uri, "--migration-uri", uri] if n in libvirt else []
        if not relay:
            extra += ["--relay-port", "0"]
        agents[n] = AgentRunner(lab, h, os.path.join(BUILD, "agent", "cutover-agent"), extra)
        agents[n].start(controller=True)
    wait_until("agents connected", lambda: lab.ctl(ctl, "--json", "agents").stdout.count(
        '"connected": true') == n_hosts, timeout=20)
    lab.ctl(ctl, "networks", "create", "--id", "blue", "--vni", "100")
    lab.ctl(ctl, "ports", "create", "--id", "vm1", "--mac", VM_MAC, "--ips", VM_IP, "--network",
            "blue", "--host", "h1", "--iface-id", vm_iface)
    lab.ctl(ctl, "ports", "create", "--id", "client", "--mac", CLI_MAC, "--ips", CLI_IP,
            "--network", "blue", "--host", client_host)
    cli = lab.add_vm(hosts[client_host], "client", CLI_MAC, CLI_IP)
    cli2, second_nic = None, None
    if two_nics:
        vm2_iface = VM2_IFACE if backend == "ovs" else VM2_TAP
        lab.ctl(ctl, "networks", "create", "--id", "red", "--vni", "200")
        lab.ctl(ctl, "ports", "create", "--id", "vm1-red", "--mac", VM2_MAC, "--ips", VM2_IP,
                "--network", "red", "--host", "h1", "--iface-id", vm2_iface)
        lab.ctl(ctl, "ports", "create", "--id", "client-red", "--mac", CLI2_MAC, "--ips", CLI2_IP,
                "--network", "red", "--host", client_host)
        cli2 = lab.add_vm(hosts[client_host], "client-red", CLI2_MAC, CLI2_IP)
        second_nic = (VM2_MAC, VM2_IP, vm2_iface, None)
    vm_cmdline, probes = "", None
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "scripts"))
    if storage:
        prog.step(f"booting the NVMe/TCP target guest on {client_host} (nvmet, 16 MiB namespace "
                  "in RAM)")
        lab.ctl(ctl, "ports", "create", "--id", "stor", "--mac", STOR_MAC, "--ips", STOR_IP,
                "--network", "blue", "--host", client_host, "--iface-id", STOR_IFACE)
        console = vmhost.start_vm(libvirt[client_host], "stor", g, STOR_MAC, STOR_IP, STOR_IFACE,
                                  cmdline=f"nvmet={STOR_NQN}", memory_mib=160)
        wait_until("the target listening", lambda: "CUTOVER-NVMET-READY" in open(console).read(),
                   timeout=120, interval=0.2)
        probes = probe_storage(lab, cli, env)
        for name, p in probes.items():
            print(f"    path probe {name}: {p.get('error')} {p.get('message', '')}".rstrip())
        vm_cmdline = f"nvmeconn={STOR_IP},{STOR_NQN},{CLI_IP},{IO_PORT}"
    prog.step("booting vm1 on h1 (QEMU TCG) and waiting for its echo servers")
    vm_console = vmhost.start_vm(libvirt["h1"], "vm1", g, VM_MAC, VM_IP, vm_iface,
                                 cmdline=vm_cmdline, memory_mib=192 if storage else 128,
                                 second_nic=second_nic)
    traffic = [sys.executable, "-m", "cutover_lab.traffic"]
    probe = os.path.join(lab.dir, "boot-probe.json")

    def echoing(client=cli, ip=VM_IP):
        client.exec(*traffic, "udp-probe", ip, "7", "20", "0.2", probe, env=env)
        with open(probe) as f:
            return json.load(f)["echoed"] > 0
    wait_until("guest echo", echoing, timeout=90, interval=0.2)
    if cli2:
        wait_until("guest echo on its second NIC", lambda: echoing(cli2, VM2_IP), timeout=30,
                   interval=0.2)
    wait_until("guest HTTP server", lambda: http_get({"cli": cli}), timeout=30, interval=0.2)
    if storage:
        wait_until("vm1's NVMe/TCP volume attached", lambda: "CUTOVER-NVME-READY" in open(
            vm_console).read(), timeout=120, interval=0.2)
    return {"lab": lab, "cli": cli, "cli2": cli2, "env": env, "traffic": traffic, "ctl": ctl,
            "libvirt": libvirt, "agents": agents, "storage": storage, "probes": probes, "guest": g}


def run(cycles=1, baseline=True, out=None, prepare=True, hops=(("h1", "h2"), ("h2", "h1")),
        external=True, relay=True, storage=False, migration_network=True, hook=True,
        schedule=None, ha=False, postcopy=False, two_nics=False):
    """Runs the lab; returns (results, report text). prepare=False skips install-deps/build.
    schedule: [(mode, src, dst), ...] instead of cycles x hops per mode (no baseline then)."""
    from .netlab import Lab
    from . import report
    modes = (["cutover"] + (["postcopy"] if postcopy else []) + (["external"] if external else [])
             + (["baseline"] if baseline else []))
    if schedule is None:
        schedule = [(mode, src, dst) for mode in modes for _ in range(cycles) for src, dst in hops]
    prog = Progress(5 + (1 if storage else 0) + (2 if prepare else 0) + len(schedule)
                    + (1 if any(m == "baseline" for m, _, _ in schedule) else 0))
    g = get_ready(prog, install_and_build=prepare)
    results = []
    with Lab("lab") as lab:
        ctx = bring_up(lab, prog, g, storage=storage, relay=relay,
                       migration_network=migration_network, hook=hook, ha=ha, two_nics=two_nics)
        # external: the same VM migrated with plain virsh while cutover runs - the destination's
        # agent sees it arrive (libvirt's hook, its tap) and the controller prepares it.
        in_baseline = False
        for i, (mode, src, dst) in enumerate(schedule):
            if mode == "baseline" and not in_baseline:
                prog.step("switching to the baseline: agents stopped, OVS NORMAL learning + QEMU announce")
                to_baseline(ctx)
                in_baseline = True
            prog.step(f"{mode}: live-migrating vm1 {src} -> {dst} under UDP (1 kpps and "
                      f"{FAST_PPS} pps) + 8 TCP sessions")
            r = checked_hop(ctx, mode, src, dst, f"{mode}-{i}-{src}")
            results.append(r)
        prog.step("writing the report")
        out = out or os.path.join(BUILD, "lab", "report")
        os.makedirs(out, exist_ok=True)
        text = report.write(results, out, probes=ctx["probes"])
    return results, text + f"\n\nreport: {out}/cutover-report.json, {out}/cutover-report.svg"


def hop_line(r):
    line = (f"    pause {r.get('pause_ms')} ms (QEMU downtime {r['downtime_ms']} ms), lost {r['lost']} "
            f"at 1 kpps and {r['fast']['lost']} at {r['fast']['pps']} pps, max gap "
            f"{r['max_gap_ms']} ms, TCP {r['tcp_survived']}/{r['tcp_sessions']}")
    if r.get("second_nic"):
        n = r["second_nic"]
        line += (f"\n    second NIC ({n['network']}): lost {n['lost']} at 1 kpps, max gap "
                 f"{n['max_gap_ms']} ms, TCP {n['tcp_survived']}/{n['tcp_sessions']}, "
                 f"{n['duplicates']} duplicates")
    return line


# -- the persistent lab: scripts/lab up | migrate | report | down ---------------------------------
# Where `up` records the lab; CUTOVER_LAB_STATE points elsewhere (the e2e test's own lab).
STATE_FILE = os.environ.get("CUTOVER_LAB_STATE", "/run/cutover-lab/state.json")


class LabDown(RuntimeError):
    pass


class GuestCrashed(LabError):
    """The guest's kernel oopsed or panicked during a hop: the VM is gone, not (only) its network."""


def guest_oops(console, offset):
    """The lines a kernel oops or panic wrote to the guest's console since `offset` (the first
    few, where the cause is), or [] if there was none."""
    lines = _lines_since(console, offset)
    marks = ("BUG:", "Oops:", "Kernel panic", "general protection fault")
    first = next((i for i, line in enumerate(lines) if any(m in line for m in marks)), None)
    if first is None:
        return []
    # The first lines say where it happened; the panic line, further down, that it was fatal.
    panic = [line for line in lines[first + 6:] if "Kernel panic" in line][:1]
    return lines[first:first + 6] + panic


class HopFailed(RuntimeError):
    """A migration that did not complete (rolled back, refused): the lab is still up."""


def _save(st):
    os.makedirs(os.path.dirname(STATE_FILE), exist_ok=True)
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f, indent=1)
    os.rename(tmp, STATE_FILE)


def _load():
    try:
        with open(STATE_FILE) as f:
            return json.load(f)
    except FileNotFoundError:
        raise LabDown("no lab is up (scripts/lab up starts one)") from None


def _restore(st):
    """The lab recorded by `up`, as objects run_hop() can use."""
    from .netlab import AgentRunner, Lab
    from . import vmhost
    lab = Lab.from_state(st["lab"])
    libvirt = {}
    for name, pid in st["libvirt"].items():
        lv = vmhost.Libvirt(lab, lab.hosts[name], st["guest"][2])
        lv.proc = lab.find_proc(pid)
        libvirt[name] = lv
    agents = {}
    for name, a in st["agents"].items():
        agents[name] = AgentRunner(lab, lab.hosts[name], os.path.join(BUILD, "agent", "cutover-agent"))
        agents[name].proc = lab.find_proc(a)
    client_host = lab.hosts[st["client_host"]]
    from .netlab import Vm
    cli = Vm(lab, "client", st["client_ns"], client_host, "t-client", CLI_MAC, CLI_IP, "client")
    return {"lab": lab, "cli": cli, "env": dict(os.environ, PYTHONPATH=os.path.join(ROOT, "scripts")),
            "traffic": [sys.executable, "-m", "cutover_lab.traffic"],
            "ctl": os.path.join(BUILD, "cli", "cutoverctl"), "libvirt": libvirt, "agents": agents,
            "storage": False, "probes": None}


def up(n_hosts=3, relay=True, prepare=True, backend="ovs", migration_network=True, hook=True,
       ha=False):
    """Brings a lab up and leaves it running; records it in STATE_FILE."""
    from .netlab import Lab, PidProc, _start_time
    if n_hosts < 2:
        raise LabDown("--hosts: a migration needs at least 2 hosts")
    if os.path.exists(STATE_FILE):
        st = _load()
        alive = _start_time(st["controller_pid"]) == st["controller_start"]
        raise LabDown("a lab is already up (" + STATE_FILE + "); scripts/lab down removes it" if alive
                      else "a lab recorded in " + STATE_FILE + " lost its controller; scripts/lab "
                      "down removes what is left of it")
    prog = Progress(4 + (2 if prepare else 0))
    g = get_ready(prog, install_and_build=prepare)
    lab = Lab("lab")
    # SIGTERM (a timeout, a service manager) tears down what was built so far, as Ctrl-C does.
    old_term = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        ctx = bring_up(lab, prog, g, n_hosts=n_hosts, relay=relay,
                       migration_network=migration_network, hook=hook,
                       libvirt_everywhere=True, backend=backend, ha=ha)
        ctl = lab.controller
        st = {"lab": lab.to_state(), "guest": list(g),
              "libvirt": {n: lv.proc.pid for n, lv in ctx["libvirt"].items()},
              "agents": {n: a.proc.pid for n, a in ctx["agents"].items()},
              "client_host": ctx["cli"].host.name, "client_ns": ctx["cli"].ns,
              "controller_pid": ctl.pid, "controller_start": PidProc.of(ctl).start_time,
              "results": []}
        _save(st)
    except BaseException:
        lab.cleanup()
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
    hosts = ", ".join(f"{h.name} {h.underlay_ip}" for h in lab.hosts.values())
    return (f"lab up ({backend}): hosts {hosts}; vm1 ({VM_IP}) runs on h1, the client ({CLI_IP}) on "
            f"{st['client_host']}; "
            + (f"controllers (etcd, one leads) on {lab.controller_url('ws')}, leader "
               f"{lab.controller_url()}" if ha else f"controller on {lab.controller_url()}")
            + f" in namespace "
            f"{lab.underlay_ns}; files in {lab.dir}\n"
            "next: scripts/lab migrate vm1 h2 | scripts/lab report | scripts/lab down")


def migrate(vm, dst, mode="cutover"):
    """One live migration of the lab's VM under traffic; the result is kept for `report`."""
    st = _load()
    ctx = _restore(st)
    if vm != "vm1":
        raise LabDown(f"no VM '{vm}' in this lab (it has vm1)")
    if dst not in ctx["lab"].hosts:
        raise LabDown(f"no host '{dst}' in this lab (hosts: {', '.join(ctx['lab'].hosts)})")
    src = json.loads(ctx["lab"].ctl(ctx["ctl"], "--json", "ports", "show", "vm1").stdout)["host"]
    if src == dst:
        raise LabDown(f"vm1 already runs on {dst}")
    prog = Progress(1)
    prog.step(f"{mode}: live-migrating vm1 {src} -> {dst} under 1 kpps UDP + 8 TCP sessions")
    from .netlab import LabError
    lab = ctx["lab"]
    ours = len(lab.procs)  # what this hop starts (probes): stopped if it fails, nothing else
    try:
        r = checked_hop(ctx, mode, src, dst, f"{mode}-{len(st['results'])}-{src}")
    except LabError as e:
        for proc in lab.procs[ours:]:
            lab.stop(proc)
        raise HopFailed(str(e)) from None
    st = _load()  # re-read: only the results change
    st["results"].append(r)
    _save(st)
    return r


def report_now(out=None):
    from . import report
    st = _load()
    if not st["results"]:
        raise LabDown("no migrations yet (scripts/lab migrate vm1 h2)")
    out = out or os.path.join(BUILD, "lab", "report")
    os.makedirs(out, exist_ok=True)
    text = report.write(st["results"], out)
    return text + f"\n\nreport: {out}/cutover-report.json, {out}/cutover-report.svg"


def down():
    """Destroys the VMs, stops every process `up` started (by PID and start time), removes the
    namespaces and the lab's files, and forgets the lab."""
    st = _load()
    ctx = _restore(st)
    lab = ctx["lab"]
    for lv in ctx["libvirt"].values():
        if lv.proc:
            lab.cleanups.append(lv.stop)
    lab.cleanup()
    os.unlink(STATE_FILE)
    return f"lab down: {len(st['lab']['namespaces'])} namespaces and {len(st['lab']['procs'])} " \
           "processes removed"
