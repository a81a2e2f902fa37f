#!/usr/bin/env python3
"""System test for both overlay dataplanes, the same scenarios for each backend: three emulated
hypervisors in network namespaces, each with a cutover-agent fed from a desired-state file, and
veth "VMs" on two VNIs that share one IP subnet. Backend ovs: each host runs its own
ovsdb-server/ovs-vswitchd (userspace datapath). Backend linux: the agent builds Linux bridges,
kernel VXLAN devices and FDB entries over netlink.

Checks: same-VNI ping and TCP across hosts, full-size (MTU 1450) frames, isolation between VNIs
(unicast and broadcast, by counters), a VM port that appears later is bound quickly, agent kill -9
and restart under a 1 kpps UDP stream with 0 lost and no flow re-added, a foreign flow survives,
and a bad desired state is rejected with nothing changed.

Usage: overlay_test.py AGENT_BINARY [ovs|linux]   (exit 77 = skipped, with the reason printed)
"""
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from cutover_lab.netlab import AgentRunner, Lab, desired_state, missing, run, wait_until  # noqa: E402

AGENT = None
BACKEND = "ovs"
TRAFFIC = [sys.executable, "-m", "cutover_lab.traffic"]
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
ENV = dict(os.environ, PYTHONPATH=SCRIPTS)
COOKIE = 0xC07E000000000001


def snapshot(host):
    """What the agent installed: OVS flows (without counters) or our kernel objects."""
    return host.dump_flows() if host.backend == "ovs" else host.kernel_objects()


def port_bound(host, vm):
    if host.backend == "ovs":
        return any(f"{vm.mac} actions=output" in f for f in host.dump_flows())
    return "master cvb" in host.exec("ip", "-o", "link", "show", vm.tap).stdout


def flows_with_durations(host):
    out = host.ofctl("dump-flows", host.mgmt(), f"cookie={COOKIE:#x}/-1").stdout
    flows = {}
    for line in out.splitlines():
        m = re.search(r"duration=([\d.]+)s", line)
        if not m:
            continue
        key = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", line).strip()
        flows[key] = float(m.group(1))
    return flows


class OvsOverlay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab("ovs-system")
        cls.addClassCleanup(cls.lab.cleanup)
        lab = cls.lab
        cls.h = [lab.add_host(f"h{i}", backend=BACKEND) for i in (1, 2, 3)]
        h1, h2, h3 = cls.h
        cls.vms = {
            "b1": lab.add_vm(h1, "b1", "52:54:00:00:01:01", "10.1.0.1"),
            "b2": lab.add_vm(h2, "b2", "52:54:00:00:01:02", "10.1.0.2"),
            "b3": lab.add_vm(h3, "b3", "52:54:00:00:01:03", "10.1.0.3"),
            "r1": lab.add_vm(h1, "r1", "52:54:00:00:02:01", "10.1.0.11"),
            "r2": lab.add_vm(h2, "r2", "52:54:00:00:02:02", "10.1.0.12"),
        }
        cls.generation = 1
        cls.qos = {}  # port -> its "qos" (rate limits), for the rate-limit test
        cls.fields = {}  # port -> more fields (ingress_allow, carried_conns), for the firewall test
        cls.agents = {h.name: AgentRunner(lab, h, AGENT) for h in cls.h}
        for a in cls.agents.values():
            a.write_state(cls.state_for(a.host.name), reload=False)
            a.start()
        for a in cls.agents.values():
            a.wait_applied(cls.generation)

    @classmethod
    def ports(cls, extra=()):
        net = {"b": "blue", "r": "red"}
        ports = [{"id": n, "mac": vm.mac, "ips": [vm.ip], "network": net[n[0]], "host": vm.host.name}
                 for n, vm in cls.vms.items()]
        for p in ports:
            if p["id"] in cls.qos:
                p["qos"] = cls.qos[p["id"]]
            p.update(cls.fields.get(p["id"], {}))
        return ports + list(extra)

    @classmethod
    def state_for(cls, host, extra=()):
        return desired_state(cls.generation, host, cls.h, {"blue": 100, "red": 200},
                             cls.ports(extra))

    @classmethod
    def push(cls, extra=(), complete=True, last=None):
        """The next generation to every agent; with `last`, that host's only once every other
        has applied it (as the controller's prepare would have it: the others accept from it)."""
        cls.generation += 1
        agents = list(cls.agents.values())
        for group in ([a for a in agents if a.host.name != last],
                      [a for a in agents if a.host.name == last]):
            for a in group:
                a.write_state(cls.state_for(a.host.name, extra))
            for a in group:
                a.wait_applied(cls.generation, complete=complete)

    def test_port_moved_here_is_announced(self):
        # r2 moves h2 -> h3 (NIC moved, then the state says so): h3's agent announces it - one
        # GARP and one RARP per round, 4 paced rounds - and r1 on h1 sees them over the overlay.
        r1, r2 = self.vms["r1"], self.vms["r2"]
        src, dst = r2.host, self.h[2]
        out = os.path.join(self.lab.dir, "announce-r2.json")
        watch = self.lab.spawn(r1.ns, TRAFFIC + ["announce-watch", "eth0", r2.mac, out],
                               "announce-r2.log", env=ENV)
        try:
            wait_until("watcher ready", lambda: os.path.exists(out + ".ready"))
            self.lab.move_vm(r2, dst)
            # Announcing starts as soon as h3 applies: h1 must already accept from h3 in red.
            self.push(last=dst.name)
            wait_until("announcements logged", lambda: "round 4/4" in self.agents[dst.name].log())
            self.assertIn("announce r2 round 1/4: 2 frames sent", self.agents[dst.name].log())

            def counted():
                try:
                    with open(out + ".counts") as f:
                        c = json.load(f)
                except (OSError, ValueError):
                    return None
                return c if c["garp"] >= 4 and c["rarp"] >= 4 else None
            # The last round's frames may still be crossing the overlay when the log says sent.
            with contextlib.suppress(Exception):
                wait_until("the last round seen", counted, timeout=5)
        finally:
            watch.send_signal(signal.SIGTERM)
            watch.wait(timeout=10)
        with open(out) as f:
            seen = json.load(f)
        self.assertEqual((seen["garp"], seen["rarp"]), (4, 4), seen)
        self.assertEqual(seen["ips"], [r2.ip])
        self.assertTrue(r1.ping(r2.ip))
        self.lab.move_vm(r2, src)
        self.push()
        self.assertTrue(r1.ping(r2.ip))

    def tcp_rate(self, src, dst, seconds=2):
        """Mbit/s a bulk TCP transfer src -> dst gets (what a rate limit must hold)."""
        sink = self.lab.spawn(dst.ns, TRAFFIC + ["tcp-sink", "5002"], f"rate-sink-{dst.name}.log",
                              env=ENV)
        try:
            wait_until("tcp sink listening", lambda: ":5002" in dst.exec("ss", "-ltn").stdout)
            res = src.exec(*TRAFFIC, "tcp-rate", dst.ip, "5002", str(seconds), env=ENV, timeout=60)
            return json.loads(res.stdout)["mbit_s"]
        finally:
            self.lab.stop(sink)

    def test_rate_limits_hold_on_each_host_and_follow_a_move(self):
        # b1: at most 20 Mbit/s to it, 8 Mbit/s from it. Measured with bulk TCP on h1, then after
        # b1 moved to h3 (the state says so once its tap is there); h1 keeps nothing of it.
        b1, b2 = self.vms["b1"], self.vms["b2"]
        home, away = self.h[0], self.h[2]
        to_vm, from_vm = 20, 8
        free_in, free_out = self.tcp_rate(b2, b1), self.tcp_rate(b1, b2)
        rates = {}
        try:
            self.qos["b1"] = {"to_vm": {"kbit_s": to_vm * 1000}, "from_vm": {"kbit_s": from_vm * 1000}}
            self.push()
            # Installed limits read back as they were set (the kernel rounds tbf buckets): the
            # same state again touches nothing.
            self.push()
            self.assertIn(f"generation {self.generation} applied: +0 ~0 -0 objects",
                          self.agents[home.name].log())
            for host in (home, away):
                if host is away:
                    self.lab.move_vm(b1, away)
                    self.push(last=away.name)
                    self.assertFalse(self.limits_on(home), "h1 kept b1's limits after it left")
                rates[host.name] = (self.tcp_rate(b2, b1), self.tcp_rate(b1, b2))
        finally:
            self.qos.pop("b1", None)
            if b1.host is not home:
                self.lab.move_vm(b1, home)
            self.push()
        print(f"\n  rate limits ({BACKEND}): unlimited to/from b1 {free_in:.0f}/{free_out:.0f} Mbit/s;"
              f" limited {to_vm}/{from_vm}: " +
              ", ".join(f"on {h} {i:.1f}/{o:.1f}" for h, (i, o) in rates.items()))
        # The unlimited path is far faster than the limits: what is measured below is the limit.
        self.assertGreater(free_in, 3 * to_vm)
        self.assertGreater(free_out, 3 * from_vm)
        for h, (i, o) in rates.items():
            # A shaper gives TCP close to its rate; a policer (OVS, from the VM) less: TCP backs
            # off at each drop. Either way never above the limit (+10 % for measuring).
            self.assertLess(i, to_vm * 1.1, f"to b1 on {h}")
            self.assertGreater(i, to_vm * 0.5, f"to b1 on {h}")
            self.assertLess(o, from_vm * 1.1, f"from b1 on {h}")
            self.assertGreater(o, from_vm * 0.3, f"from b1 on {h}")
        self.assertFalse(self.limits_on(home))
        self.assertGreater(self.tcp_rate(b2, b1), 3 * to_vm, "limits stayed after they were removed")

    def test_stateful_firewall_admits_its_rules_and_carried_connections_after_a_move(self):
        # b1 (on h1) may be reached on tcp/5100 and by ping; its own connections out and their
        # replies always. It downloads from b2 (b1 connected out: only conntrack lets b2's
        # segments in), then moves to h3 twice: with the connection carried (the desired state
        # admits its 5-tuple, as the controller writes after the source's dump), the download
        # goes on; without, h3 takes b2's next segment for a new connection and drops it.
        b1, b2 = self.vms["b1"], self.vms["b2"]
        home, away = self.h[0], self.h[2]
        procs = []
        for vm, args in ((b1, ["tcp-sink", "5100"]), (b1, ["tcp-sink", "7000"]),
                         (b2, ["tcp-sink", "6100"]), (b2, ["tcp-source", "6000", "200000"])):
            procs.append(self.lab.spawn(vm.ns, TRAFFIC + args, f"fw-{vm.name}-{args[1]}.log",
                                        env=ENV))
        gaps, entries = {}, {}
        try:
            wait_until("listeners", lambda: all(
                p in vm.exec("ss", "-ltn").stdout
                for vm, p in ((b1, ":5100"), (b1, ":7000"), (b2, ":6100"), (b2, ":6000"))))
            self.assertTrue(b2.connects(b1.ip, 7000), "7000 closed before any firewall?")
            self.fields["b1"] = {"ingress_allow": [{"protocol": "tcp", "port": 5100},
                                                   {"protocol": "icmp"}]}
            self.push()
            self.assertTrue(b2.ping(b1.ip))
            self.assertTrue(b2.connects(b1.ip, 5100))
            self.assertFalse(b2.connects(b1.ip, 7000), "a port no rule allows was reached")
            self.assertTrue(b1.connects(b2.ip, 6100), "b1's own connection out was refused")
            for carry, to in ((True, away), (False, home)):
                out = os.path.join(self.lab.dir, f"fw-pull-{to.name}.json")
                pull = self.lab.spawn(b1.ns, TRAFFIC + ["tcp-pull", b2.ip, "6000", "3", out],
                                      f"fw-pull-{to.name}.log", env=ENV)
                procs.append(pull)
                wait_until("download flowing", lambda: os.path.exists(out + ".ready"))
                time.sleep(0.5)  # traffic, not synchronisation: a moment of download first
                local = b1.tcp_port_to(b2.ip, 6000)
                self.fields["b1"]["carried_conns"] = [{
                    "protocol": "tcp", "local_ip": b1.ip, "local_port": local,
                    "remote_ip": b2.ip, "remote_port": 6000}] if carry else []
                conn = ((b2.ip, 6000), (b1.ip, local))
                with contextlib.ExitStack() as silence:
                    # Not carried: b1's own next packet would let `to` pick the connection up
                    # mid-stream (a race), so b1 stays silent until b2 has retransmitted to `to`.
                    refused_by = None if carry else silence.enter_context(
                        b1.silenced(b2, 6000, local))
                    self.lab.move_vm(b1, to)
                    moved = time.monotonic()
                    self.push(last=to.name)  # every agent has applied the move when it returns
                    if carry:
                        entries[carry] = wait_until("the carried connection's entry on " + to.name,
                                                    lambda: to.conntrack(*conn), timeout=5)
                    else:
                        entries[carry], reached = refused_by(to)
                pull.wait(timeout=20)
                with open(out) as f:
                    stats = json.load(f)
                after = sum(1 for t, _ in stats["arrivals"] if t > moved + 0.5)
                gaps[carry] = (after, stats["max_gap_ms"])
            self.fields.pop("b1")
            self.push()
            reopened = b2.connects(b1.ip, 7000)
        finally:
            self.fields.pop("b1", None)
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=10)
            if b1.host is not home:
                self.lab.move_vm(b1, home)
            self.push()
        print(f"\n  stateful firewall ({BACKEND}): a download into b1 across a move, with its "
              f"connection carried: {gaps[True][0]} reads after the move, max gap "
              f"{gaps[True][1]} ms; not carried: {gaps[False][0]} reads, max gap {gaps[False][1]} ms")
        self.assertGreater(gaps[True][0], 10, "carried connection stopped")
        # Here the tap moves before its host's state says so (no prepare, unlike a migration),
        # so the gap holds TCP's retransmission backoff until the push lands: 60-100 ms usually,
        # 1.1 s once in CI.
        self.assertLess(gaps[True][1], 2000, "carried connection stalled")
        self.assertTrue(entries[True], "the carried connection has no entry on b1's new host")
        self.assertEqual(entries[False], [], "b1's new host let an uncarried connection in")
        self.assertEqual(reached, 0, "b2's segments reached b1 uncarried")
        self.assertTrue(reopened, "the firewall stayed after it was removed")

    def limits_on(self, host):
        """Whether host holds any rate limit of ours: OVS meters / QoS rows, or tc objects."""
        if host.backend == "ovs":
            meters = host.ofctl("-O", "OpenFlow13", "dump-meters", host.mgmt()).stdout
            qos = host.vsctl("--columns=_uuid", "list", "qos").stdout.strip()
            return "meter=" in meters or bool(qos)
        out = host.exec("tc", "qdisc", "show").stdout
        links = host.exec("ip", "-o", "link", "show", "type", "ifb").stdout
        return "qdisc tbf c07:" in out or "cvi" in links

    def test_same_vni_ping_tcp_and_full_size_frames(self):
        b1, b2, b3 = self.vms["b1"], self.vms["b2"], self.vms["b3"]
        self.assertTrue(b1.ping(b2.ip), "b1 -> b2 (h1 -> h2) same VNI")
        self.assertTrue(b1.ping(b3.ip), "b1 -> b3 (h1 -> h3) same VNI")
        self.assertTrue(self.vms["r1"].ping(self.vms["r2"].ip), "r1 -> r2 on VNI 200")
        # 1422 bytes of ICMP payload + 28 = 1450: a full-size frame with DF set must get through.
        self.assertTrue(b1.ping(b2.ip, size=1422), "full-size frame (MTU 1450) dropped")
        self.assertFalse(b1.ping(b2.ip, size=1423, timeout=1), "over-MTU frame with DF went out")
        sink = self.lab.spawn(b2.ns, TRAFFIC + ["tcp-sink", "5001"], "tcp-sink.log", env=ENV)
        try:
            wait_until("tcp sink listening", lambda: "5001" in b2.exec("ss", "-ltn").stdout)
            res = b1.exec(*TRAFFIC, "tcp-send", b2.ip, "5001", str(8 * 1024 * 1024), env=ENV)
            self.assertIn('"acked": 8388608', res.stdout, res.stdout + res.stderr)
        finally:
            self.lab.stop(sink)

    def test_vnis_are_isolated_unicast_and_broadcast(self):
        b1, r2, r1, b2 = self.vms["b1"], self.vms["r2"], self.vms["r1"], self.vms["b2"]
        self.assertFalse(b1.ping(r2.ip, timeout=1), "blue VM reached a red VM")
        before = {n: self.rx(vm) for n, vm in self.vms.items()}
        b1.exec(*TRAFFIC, "bcast-send", "eth0", "200", env=ENV)
        wait_until("b2 to receive the broadcast burst", lambda: self.rx(b2) - before["b2"] >= 200)
        wait_until("b3 to receive the broadcast burst",
                   lambda: self.rx(self.vms["b3"]) - before["b3"] >= 200)
        # The blue VMs got all 200; the red ones (one on b1's own host) must have got none of
        # them. Their own VNI is not silent (r1 and r2 exchange IPv6 MLD/ND now and then, which
        # once counted here: 1 frame), so allow a few frames but never the burst.
        self.assertLess(self.rx(r1) - before["r1"], 5, "broadcast leaked to red VM on same host")
        self.assertLess(self.rx(r2) - before["r2"], 5, "broadcast leaked to red VM on other host")

    @staticmethod
    def rx(vm):
        return int(vm.exec("cat", "/sys/class/net/eth0/statistics/rx_packets").stdout)

    def test_late_port_is_bound_without_new_state(self):
        h3 = self.h[2]
        late = {"id": "b4", "mac": "52:54:00:00:01:04", "ips": ["10.1.0.4"], "network": "blue",
                "host": "h3"}
        self.push([late], complete=False)  # the controller knows b4 before its tap exists
        status = self.agents["h3"].status()
        self.assertIn("b4", status["awaiting_taps"])
        self.assertEqual(status["waiting_for"], [])
        self.assertEqual(status["applied_generation"], status["generation"])
        t0 = time.monotonic()
        vm = self.lab.add_vm(h3, "b4", late["mac"], "10.1.0.4")
        wait_until("b4 bound on h3", lambda: port_bound(h3, vm), timeout=5)
        bound_ms = (time.monotonic() - t0) * 1000
        print(f"\n  late port bound {bound_ms:.0f} ms after the tap was created (includes veth setup)")
        self.assertTrue(vm.ping(self.vms["b1"].ip))

    def test_kill9_restart_loses_nothing_and_reinstalls_nothing(self):
        b1, b2, h2 = self.vms["b1"], self.vms["b2"], self.h[1]
        agent = self.agents["h2"]
        out = os.path.join(self.lab.dir, "udp.json")
        recv = self.lab.spawn(b2.ns, TRAFFIC + ["udp-recv", "6000", out], "udp-recv.log", env=ENV)
        wait_until("udp receiver", lambda: os.path.exists(out + ".ready"))
        send = self.lab.spawn(b1.ns, TRAFFIC + ["udp-send", b2.ip, "6000", "1000", "4"],
                              "udp-send.log", env=ENV)
        wait_until("stream flowing", lambda: self.rx(b2) > 0)
        before = flows_with_durations(h2) if BACKEND == "ovs" else {}
        objects_before = snapshot(h2)
        agent.kill9()
        t_kill = time.monotonic()
        agent.start()
        agent.wait_applied(self.generation)
        restart_ms = (time.monotonic() - t_kill) * 1000
        after = flows_with_durations(h2) if BACKEND == "ovs" else {}
        self.assertEqual(snapshot(h2), objects_before, "installed state changed across restart")
        send.wait(timeout=30)
        self.assertEqual(send.returncode, 0)
        recv.send_signal(signal.SIGTERM)
        recv.wait(timeout=10)
        with open(out) as f:
            stats = json.load(f)
        sent = 4000
        lost = sent - stats["received"]
        print(f"\n  kill -9 + restart: {restart_ms:.0f} ms to re-apply; UDP sent {sent}, lost {lost},"
              f" max gap {stats['max_gap_ms']} ms")
        self.assertEqual(lost, 0)
        self.assertEqual(sorted(before), sorted(after), "flow table changed across restart")
        for key, dur in before.items():
            self.assertGreaterEqual(after[key] + 0.001, dur, f"flow re-added: {key}")
        log = agent.log()
        self.assertIn("+0 ~0 -0 objects", log.split("cutover-agent started")[-1], log[-1500:])

    def test_foreign_objects_survive_and_bad_state_changes_nothing(self):
        h1 = self.h[0]
        if BACKEND == "ovs":
            h1.ofctl("add-flow", h1.mgmt(),
                     "table=0,priority=999,cookie=0x1234,udp,tp_dst=9 actions=drop")
            foreign = lambda: any("cookie=0x1234" in f for f in h1.dump_flows())  # noqa: E731
        else:
            # Someone else's bridge, VXLAN device and FDB entry, named like ours would be.
            h1.exec("ip", "link", "add", "cvb999", "type", "bridge")
            h1.exec("ip", "link", "add", "fvx9", "type", "vxlan", "id", "9", "dstport", "4789",
                    "local", h1.underlay_ip, "nolearning")
            h1.exec("bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "fvx9", "dst", "192.168.100.9")
            foreign = lambda: ("cvb999" in h1.exec("ip", "-o", "link").stdout and  # noqa: E731
                               "192.168.100.9" in h1.exec("bridge", "fdb", "show", "dev", "fvx9").stdout)
        self.push()  # reconcile after the foreign objects appeared
        self.assertTrue(foreign())
        before = snapshot(h1)
        agent = self.agents["h1"]
        bad = self.state_for("h1")
        bad["generation"] = self.generation + 1
        bad["ports"][1]["mac"] = bad["ports"][0]["mac"]  # duplicate MAC in VNI 100
        agent.write_state(bad)
        st = wait_until("rejection", lambda: (agent.status() or {}).get("rejected") and agent.status())
        self.assertEqual(st["error_field"], "ports[1].mac")
        self.assertEqual(snapshot(h1), before)
        self.assertTrue(foreign())
        self.assertTrue(self.vms["b1"].ping(self.vms["b2"].ip), "traffic broken by a rejected state")
        agent.write_state(self.state_for("h1"))  # restore


def main():
    global AGENT
    global BACKEND
    if len(sys.argv) > 2:
        BACKEND = sys.argv.pop(2)
    if BACKEND not in ("ovs", "linux"):
        print(__doc__)
        return 2
    why = missing("network namespaces, OVS",
                  ("ovs-vswitchd", "ovsdb-server", "ip", "nft", "ethtool", "bridge"))
    if why:
        print(f"SKIP: {why}")
        return 77
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    AGENT = os.path.abspath(sys.argv[1])
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
