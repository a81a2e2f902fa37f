"""Chaos: one component killed (-9) at one phase of a cutover-driven live migration under traffic,
restarted after a while, and what became of the migration.

For each (component, phase) cell: vm1 migrates between h1 and h2 through cutover under a 1 kpps
UDP echo stream and 8 TCP echo sessions from the client on h3; the component dies at the phase
and comes back DOWN_S later with its own command line and environment (the controller on the
same port). The cell records: the VM reachable again (ms from its resume on the destination - or
from the kill when it did not move - to the first echo), the longest gap in the echoes after
that point, echoes lost, TCP sessions kept, the final
record, whether the record tells the truth (completed when libvirt runs the VM on the
destination, rolled_back when on the source), and whether the next migration succeeds.

Components: controller, source agent, destination agent, a bystander VTEP's agent (the client's
host), the destination's ovs-vswitchd. Phases: preparing (right after the request), precopy
(libvirt's job running), pause (QEMU's STOP on the source), resumed (QEMU's RESUME on the
destination). Every process started, restarted ones included, is the lab's: torn down at the end,
also on failure."""
import json
import os
import re
import signal
import time

from .netlab import LabError, wait_until

COMPONENTS = ("controller", "source-agent", "destination-agent", "bystander-agent",
              "destination-ovs", "leader")  # leader: of the HA controllers (--ha)
PHASES = ("preparing", "precopy", "pause", "resumed")
DOWN_S = 2.0       # how long the killed component stays down
PROBE_S = 16       # traffic per cell: the migration, the outage and the recovery
SETTLE_S = 90      # how long a record may take to become final
GAP_S = 0.05       # a gap in the 1 kpps echoes longer than this is an outage


def _argv_env(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)
    return argv, env


def _proc_matching(lab, needle):
    for p in lab.procs:
        try:
            argv, _ = _argv_env(p.pid)
        except OSError:
            continue
        if p.poll() is None and any(needle in a for a in argv):
            return p
    raise LabError(f"no running lab process with '{needle}' in its command line")


class Target:
    """One component of the lab to kill and restart: how to find its process and namespace."""

    def __init__(self, ctx, component, src, dst):
        lab = self.lab = ctx["lab"]
        self.component = component
        if component == "controller":
            self.ns, self.proc = lab.underlay_ns, lab.controller
        elif component == "leader":
            if not getattr(lab, "ha", False):
                raise LabError("the leader component needs HA controllers (--ha)")
            ip = wait_until("a leader", lab.ha_leader, 10)
            self.ns, self.proc = lab.underlay_ns, _proc_matching(lab, f"{ip}:{lab.HA_PORT}")
        elif component.endswith("-agent"):
            host = {"source": src, "destination": dst,
                    "bystander": ctx["cli"].host.name}[component.split("-")[0]]
            self.ns, self.proc = lab.hosts[host].ns, ctx["agents"][host].proc
            self.agent = ctx["agents"][host]
        else:
            host = lab.hosts[dst]
            self.ns = host.ns
            self.proc = _proc_matching(lab, f"--unixctl={host.rundir}/ovs-vswitchd.ctl")

    def kill(self):
        self.argv, self.env = _argv_env(self.proc.pid)
        self.lab.stop(self.proc, signal.SIGKILL)
        self.killed_at = time.time()

    def restart(self):
        argv = list(self.argv)
        if self.component == "controller":
            # The agents know it by its port: the same one again.
            argv = [f"0.0.0.0:{self.lab.controller_port}" if a == "0.0.0.0:0" else a for a in argv]
        proc = self.lab.spawn(self.ns, argv, f"chaos-{self.component}.log", env=self.env)
        if self.component == "controller":
            self.lab.controller = proc
        elif hasattr(self, "agent"):
            self.agent.proc = proc
        self.restarted_at = time.time()
        return proc


def _qmp_event(lab, host, event, since):
    """Unix time of QEMU's `event` for vm1 in host's qemu-monitor-event log after `since`."""
    from .loss import _parse
    try:
        with open(os.path.join(lab.dir, f"qmp-{host}.log")) as f:
            text = f.read()
    except OSError:
        return None
    for stamp in re.findall(r"^(\S+ \S+)\+0000: event " + event + r" for domain 'vm1'", text, re.M):
        t = _parse(stamp)
        if t >= since:
            return t
    return None


FINAL = ("completed", "rolled_back", "rejected")


def _settled(lab, ctl, mid, what):
    """The migration's record once it is final (waits up to SETTLE_S; LabError after)."""
    from .vmlab import migration_state
    return wait_until(what, lambda: (lambda r: r["state"] in FINAL and r)(
        migration_state(lab, ctl, mid)), timeout=SETTLE_S, interval=0.2)


def _where(ctx, src, dst):
    """Where libvirt runs vm1: src, dst, or None."""
    for host in (dst, src):
        out = ctx["libvirt"][host].virsh("domstate", "vm1", check=False).stdout
        if out.strip().startswith("running"):
            return host
    return None


def reach_ms(echoes, ref):
    """ms from `ref` (probe time: the VM's resume on the destination, or the kill when it did not
    move) to the first echo after it: how long the VM stayed unreachable. None when no echo came
    back after it."""
    after = [t for t, _ in echoes if t >= ref]
    return round((min(after) - ref) * 1000, 1) if after else None


def longest_gap_ms(echoes, ref):
    """The longest silence in the echoes from `ref` on (ms): an outage that began later (e.g.
    forwarding that ended too early) shows here rather than in reach_ms."""
    times = sorted(t for t, _ in echoes if t >= ref)
    return round(max((b - a for a, b in zip(times, times[1:])), default=0.0) * 1000, 1)


def cell(ctx, component, phase, src, dst, tag):
    """One migration src -> dst with `component` killed at `phase`; returns the cell's row."""
    from .loss import PauseWatch
    from .vmlab import VM_IP, migration_state
    lab, cli, env, traffic, ctl = ctx["lab"], ctx["cli"], ctx["env"], ctx["traffic"], ctx["ctl"]
    udp_out = os.path.join(lab.dir, f"udp-{tag}.json")
    tcp_out = os.path.join(lab.dir, f"tcp-{tag}.json")
    watch = PauseWatch(lab, ctx["libvirt"][src], ctx["libvirt"][dst])
    udp = lab.spawn(cli.ns, traffic + ["udp-probe", VM_IP, "7", "1000", str(PROBE_S), udp_out],
                    f"udp-{tag}.log", env=env)
    tcp = lab.spawn(cli.ns, traffic + ["tcp-probe", VM_IP, "7", "8", str(PROBE_S), tcp_out],
                    f"tcp-{tag}.log", env=env)
    time.sleep(1.0)
    target = Target(ctx, component, src, dst)
    t0 = time.time()
    m = json.loads(lab.ctl(ctl, "--json", "migrations", "create", "--vm", "vm1", "--to",
                           dst).stdout)
    mid = m["id"]
    if m["state"] not in ("preparing", "ready"):
        raise LabError(f"migration refused: {m}")
    if phase == "precopy":
        wait_until("libvirt's job", lambda: "migration_started" in (
            migration_state(lab, ctl, mid) or {}).get("timeline", {}), timeout=30, interval=0.02)
        time.sleep(0.2)
    elif phase == "pause":
        wait_until("the VM's pause", lambda: _qmp_event(lab, src, "STOP", t0), timeout=60,
                   interval=0.002)
    elif phase == "resumed":
        wait_until("the VM's resume", lambda: _qmp_event(lab, dst, "RESUME", t0), timeout=60,
                   interval=0.002)
    target.kill()
    time.sleep(DOWN_S)
    target.restart()
    final = _settled(lab, ctl, mid, "the record to settle")
    udp.wait(timeout=PROBE_S + 60)
    tcp.wait(timeout=PROBE_S + 60)
    pause = watch.stop()
    with open(udp_out) as f:
        u = json.load(f)
    with open(tcp_out) as f:
        t = json.load(f)
    where = _where(ctx, src, dst)
    truthful = (final["state"] == "completed" and where == dst) or (
        final["state"] == "rolled_back" and where == src)
    # From the VM's resume on the destination; when it never moved (rolled back), from the kill.
    moved = bool(pause and pause[1] and pause[1] >= t0)
    ref = (pause[1] if moved else target.killed_at) - u["start_wall"]
    placed = json.loads(lab.ctl(ctl, "--json", "ports", "show", "vm1").stdout).get("host")
    return {"component": component, "phase": phase, "hop": f"{src}->{dst}", "migration": mid,
            "record": final["state"], "reason": final.get("reason", ""), "vm_on": where,
            "port_on": placed, "truthful": truthful and placed == where,
            "reach_ms": reach_ms(u["echoes"], ref), "reach_from": "resume" if moved else "kill",
            "gap_after_ms": longest_gap_ms(u["echoes"], ref),
            "lost": u["lost"], "sent": u["sent"], "duplicates": u["duplicates"],
            "tcp": f"{t['survived']}/{t['sessions']}", "tcp_ok": t["survived"] == t["sessions"],
            "killed_after_s": round(target.killed_at - t0, 3)}


def next_migration_ok(ctx, src, dst):
    """A plain cutover migration src -> dst after the cell, without traffic: (completed?, why)."""
    lab, ctl = ctx["lab"], ctx["ctl"]
    res = lab.ctl(ctl, "--json", "migrations", "create", "--vm", "vm1", "--to", dst, check=False)
    if res.returncode != 0:
        return False, res.stderr.strip() or res.stdout.strip()
    mid = json.loads(res.stdout)["id"]
    try:
        done = _settled(lab, ctl, mid, "the next migration")
    except LabError as e:
        return False, str(e)
    return done["state"] == "completed", done.get("reason", "")


def settle_open(ctx):
    """Waits for every open migration to finish (a failed cell must not fail the next ones);
    cancels one still open after SETTLE_S. Returns the ids that were stuck."""
    lab, ctl = ctx["lab"], ctx["ctl"]

    def open_ids():
        ms = json.loads(lab.ctl(ctl, "--json", "migrations").stdout)
        return [m["id"] for m in ms if m["state"] not in FINAL]
    try:
        wait_until("no open migration", lambda: not open_ids(), timeout=SETTLE_S, interval=0.5)
        return []
    except LabError:
        stuck = open_ids()
        for mid in stuck:
            lab.ctl(ctl, "migrations", "cancel", mid, check=False)
        return stuck


def keep_logs(lab, out, name):
    """Copies the lab's logs (controller, agents, OVS, libvirt) to out/name for a failed cell."""
    import shutil
    dest = os.path.join(out, name)
    os.makedirs(dest, exist_ok=True)
    for root, _, files in os.walk(lab.dir):
        for f in files:
            if f.endswith(".log"):
                rel = os.path.relpath(os.path.join(root, f), lab.dir).replace(os.sep, "_")
                shutil.copy(os.path.join(root, f), os.path.join(dest, rel))


def passed(row):
    return (row["reach_ms"] is not None and row["truthful"] and row["tcp_ok"]
            and not row.get("stuck") and row.get("next_ok", False))


def table(rows):
    head = (f"{'component':<18} {'phase':<10} {'reach ms':>9} {'gap ms':>7} {'lost':>5} {'TCP':>5} "
            f"{'record':<12} {'VM on':<6} {'truthful':<8} {'next':<5} verdict")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['component']:<18} {r['phase']:<10} "
                     f"{'never' if r['reach_ms'] is None else r['reach_ms']:>9} "
                     f"{r.get('gap_after_ms', '-'):>7} {r['lost']:>5} "
                     f"{r['tcp']:>5} {r['record']:<12} {str(r['vm_on']):<6} "
                     f"{'yes' if r['truthful'] else 'NO':<8} {'yes' if r['next_ok'] else 'NO':<5} "
                     f"{'pass' if passed(r) else 'FAIL'}")
    return "\n".join(lines)


def run(components=COMPONENTS[:-1], phases=PHASES, prepare=True, out=None, cells=None,
        ha=False):
    """Brings a lab up, runs every (component, phase) cell - `cells`, or every component at every
    phase - and tears it down; returns (rows, table text)."""
    from .netlab import Lab
    from .vmlab import BUILD, Progress, bring_up, get_ready
    cells = list(cells) if cells else [(c, p) for c in components for p in phases]
    prog = Progress(4 + (2 if prepare else 0) + len(cells))
    g = get_ready(prog, install_and_build=prepare)
    rows = []
    out = out or os.path.join(BUILD, "lab", "chaos")
    with Lab("chaos") as lab:
        ctx = bring_up(lab, prog, g, libvirt_everywhere=False, ha=ha)
        for i, (component, phase) in enumerate(cells):
            src = _where(ctx, "h1", "h2") or "h1"
            dst = "h2" if src == "h1" else "h1"
            prog.step(f"kill -9 {component} at {phase} (vm1 {src} -> {dst}), back after {DOWN_S} s")
            try:
                row = cell(ctx, component, phase, src, dst, f"chaos-{i}")
            except LabError as e:
                row = {"component": component, "phase": phase, "hop": f"{src}->{dst}",
                       "record": "error", "reason": str(e)[:300], "vm_on": None, "port_on": None,
                       "truthful": False, "reach_ms": None, "lost": -1, "sent": 0,
                       "duplicates": 0, "tcp": "-", "tcp_ok": False}
            row["stuck"] = settle_open(ctx)
            here = _where(ctx, src, dst) or src
            row["next_ok"], row["next_detail"] = next_migration_ok(
                ctx, here, "h2" if here == "h1" else "h1")
            if not passed(row):
                keep_logs(lab, out, f"cell-{i}-{component}-{phase}")
            print("    " + table([row]).splitlines()[-1], flush=True)
            rows.append(row)
    text = table(rows)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "chaos.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return rows, text + f"\n\n{sum(passed(r) for r in rows)}/{len(rows)} cells pass; " \
                        f"rows in {out}/chaos.json"
