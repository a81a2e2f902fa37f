#!/usr/bin/env python3
"""System test: highly available controllers. A real 3-member etcd cluster and three
cutover-controllers on loopback (free ports, temp dir, every process stopped by PID):

- exactly one leads; /healthz says leader or follower and names the leader; followers serve
  reads, answer writes with 307 to the leader (which cutoverctl follows) and turn agents away
  with 503; /metrics has cutover_leader;
- kill -9 of the leader with 1,000 writes in flight from 8 clients: no acknowledged write is
  lost, and another controller leads within 2 s;
- the leader's key deleted behind its back (what a lost lease does): its next write is refused
  by the fence (503) and nothing is written, and it steps down;
- SIGSTOP of the leader past its lease: another leads; after SIGCONT the old one writes nothing
  and serves as a follower;
- one etcd member killed: writes go on; two killed (quorum lost): writes get a clear 503, reads
  are served marked stale (Warning: 110), nothing is corrupted, and all recovers when the
  members return;
- etcd over TLS with client certificates (a CA made with cutoverctl pki): a controller with its
  certificate leads and writes; one without is refused by etcd and exits naming why.

Needs no root; skipped (77) without etcd. Usage: ha_test.py BUILD_DIR
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from cutover_lab.etcd import ETCD, EtcdCluster, free_ports  # noqa: E402
from wsframes import read_text  # noqa: E402

BUILD = None
TOKEN = "ha-s3cret"


def request(port, method, path, body=None, timeout=5):
    """(status, headers, parsed body) from the controller on port; redirects not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Authorization": "Bearer " + TOKEN})
        res = conn.getresponse()
        raw = res.read()
        data = json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()
        return res.status, dict(res.getheaders()), data
    finally:
        conn.close()


class Ha(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cutover-ha-")
        if not os.environ.get("CUTOVER_KEEP_TEST_DIR"):
            cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.etcd = EtcdCluster(cls.dir)
        cls.addClassCleanup(cls.etcd.stop_all)
        cls.etcd.start_all()
        cls.ports = free_ports(3)
        cls.procs = [None] * 3
        cls.addClassCleanup(cls.stop_controllers)
        for i in range(3):
            cls.start_controller(i)
        cls.wait_leader()

    @classmethod
    def start_controller(cls, i):
        log = open(os.path.join(cls.dir, f"c{i}.log"), "ab")
        port = cls.ports[i]
        cls.procs[i] = subprocess.Popen(
            [os.path.join(BUILD, "controller", "cutover-controller"),
             "--listen", f"127.0.0.1:{port}", "--advertise-url", f"http://127.0.0.1:{port}",
             "--store", "etcd:" + cls.etcd.endpoints, "--etcd-prefix", "/ha-test",
             "--etcd-max-txn-ops", "1024", "--lease-ttl", "1", "--etcd-timeout-ms", "500",
             "--token", TOKEN], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    @classmethod
    def stop_controllers(cls):
        for p in cls.procs:
            if p and p.poll() is None:
                p.kill()
                p.wait()

    @classmethod
    def roles(cls):
        out = {}
        for i, port in enumerate(cls.ports):
            if cls.procs[i] is None or cls.procs[i].poll() is not None:
                continue
            try:
                st, _, h = request(port, "GET", "/healthz", timeout=0.5)
                if st == 200:
                    out[i] = h
            except OSError:
                pass
        return out

    @classmethod
    def wait_leader(cls, timeout=10, exclude=()):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = cls.roles()
            leaders = [i for i, h in last.items() if h.get("role") == "leader" and i not in exclude]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.02)
        raise AssertionError(f"no single leader within {timeout}s; last seen {last}")

    def log(self, i):
        return read_text(os.path.join(self.dir, f"c{i}.log"))

    def write(self, path, body, deadline_s=15):
        """POSTs to whichever controller leads, following 307 and retrying 503 and lost
        connections; returns the final status."""
        deadline = time.monotonic() + deadline_s
        port = self.ports[0]
        while time.monotonic() < deadline:
            try:
                st, headers, data = request(port, "POST", path, body, timeout=3)
            except OSError:
                st, headers = None, {}
            if st == 307:
                port = int(headers["Location"].split(":")[2].split("/")[0])
                continue
            if st in (None, 503):
                alive = [i for i in range(3) if self.procs[i] and self.procs[i].poll() is None]
                port = self.ports[alive[int(time.monotonic() * 10) % len(alive)]]
                time.sleep(0.05)
                continue
            return st
        return None

    def test_1_one_leader_followers_read_and_redirect(self):
        leader = self.wait_leader()
        followers = [i for i in range(3) if i != leader]
        self.assertEqual(self.write("/v1/networks", {"id": "blue", "vni": 100}), 201)
        lurl = f"http://127.0.0.1:{self.ports[leader]}"
        for f in followers:
            h = request(self.ports[f], "GET", "/healthz")[2]
            self.assertEqual((h["role"], h["leader"]), ("follower", lurl))
            # Reads are served by the follower from its copy, which catches up within a second.
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                st, _, nets = request(self.ports[f], "GET", "/v1/networks")
                if st == 200 and [n["id"] for n in nets] == ["blue"]:
                    break
                time.sleep(0.05)
            self.assertEqual([n["id"] for n in nets], ["blue"])
            st, headers, body = request(self.ports[f], "POST", "/v1/networks",
                                        {"id": "x", "vni": 9})
            self.assertEqual((st, headers.get("Location"), body["error"]["code"]),
                             (307, lurl + "/v1/networks", "not_leader"))
            # cutoverctl follows the 307.
            res = subprocess.run(
                [os.path.join(BUILD, "cli", "cutoverctl"), "--controller",
                 f"http://127.0.0.1:{self.ports[f]}", "networks", "create", "--id", f"ctl{f}",
                 "--vni", str(200 + f)], env=dict(os.environ, CUTOVER_TOKEN=TOKEN),
                capture_output=True, text=True, timeout=30)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertEqual(request(self.ports[leader], "GET", f"/v1/networks/ctl{f}")[0], 200)
            # Which agents are connected is the leader's to say.
            st, headers, _ = request(self.ports[f], "GET", "/v1/agents")
            self.assertEqual((st, headers.get("Location")), (307, lurl + "/v1/agents"))
            metrics = request(self.ports[f], "GET", "/metrics")[2]
            self.assertIn("\ncutover_leader 0\n", metrics)
            # An agent is turned away, told where the leader is.
            s = socket.create_connection(("127.0.0.1", self.ports[f]), timeout=5)
            s.sendall((f"GET /v1/agent HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
                       f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                       ).encode())
            head = s.recv(4096)
            s.close()
            self.assertTrue(head.startswith(b"HTTP/1.1 503"), head[:200])
            self.assertIn(lurl.encode(), head)
        self.assertIn("\ncutover_leader 1\n", request(self.ports[leader], "GET", "/metrics")[2])

    def test_2_kill_the_leader_with_writes_in_flight(self):
        leader = self.wait_leader()
        acked, lock = [], threading.Lock()
        next_id = iter(range(1000))
        started = threading.Event()

        def client():
            while True:
                with lock:
                    n = next(next_id, None)
                if n is None:
                    return
                st = self.write("/v1/networks", {"id": f"n{n}", "vni": 1000 + n})
                if st == 201:
                    with lock:
                        acked.append(f"n{n}")
                        if len(acked) >= 200:
                            started.set()

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        self.assertTrue(started.wait(60), "200 writes acknowledged before the kill")
        killed_at = time.monotonic()
        self.procs[leader].kill()
        self.procs[leader].wait()
        new = self.wait_leader(timeout=10, exclude=(leader,))
        failover = time.monotonic() - killed_at
        for t in threads:
            t.join(120)
        print(f"failover {failover:.2f} s; {len(acked)} of 1000 writes acknowledged",
              file=sys.stderr)
        self.assertLess(failover, 2.0)
        st, _, nets = request(self.ports[new], "GET", "/v1/networks")
        have = {n["id"] for n in nets}
        lost = [n for n in acked if n not in have]
        self.assertEqual(lost, [], "acknowledged writes lost")
        self.assertGreater(len(acked), 900, "the clients carried on through the failover")
        self.start_controller(leader)  # back as a follower for the next cases
        self.wait_role(leader, "follower")

    def wait_role(self, i, role, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.roles().get(i, {}).get("role") != role:
            time.sleep(0.05)
        self.assertEqual(self.roles().get(i, {}).get("role"), role, f"controller {i}")

    def test_3_a_fenced_write_changes_nothing(self):
        leader = self.wait_leader()
        logged = len(self.log(leader))  # its log spans the earlier cases: read only what follows
        # What a lost lease does: the leadership key is gone. Whatever sees it first (the
        # election's poll or the write's fence), the write is refused and nothing is stored.
        req = urllib.request.Request(
            self.etcd.client[0] + "/v3/kv/deleterange", method="POST",
            data=json.dumps({"key": base64.b64encode(b"/ha-test/leader").decode()}).encode())
        urllib.request.urlopen(req, timeout=2).read()
        st, _, body = request(self.ports[leader], "POST", "/v1/networks", {"id": "fenced",
                                                                         "vni": 77})
        self.assertEqual((st, body["error"]["code"]), (503, "not_leader"))
        # It steps down; it campaigns again at once and may win again before a poll of its role
        # could see it a follower, so its log is what says it let go.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "stepping down" not in self.log(leader)[logged:]:
            time.sleep(0.05)
        self.assertIn("stepping down", self.log(leader)[logged:])
        new = self.wait_leader(timeout=10)
        st, _, nets = request(self.ports[new], "GET", "/v1/networks")
        self.assertNotIn("fenced", {n["id"] for n in nets})

    def test_4_a_paused_leader_writes_nothing_and_steps_down(self):
        leader = self.wait_leader()
        generation = self.etcd.kv("/ha-test/generation")
        self.procs[leader].send_signal(signal.SIGSTOP)
        try:
            new = self.wait_leader(timeout=10, exclude=(leader,))
        finally:
            self.procs[leader].send_signal(signal.SIGCONT)
        try:
            st = request(self.ports[leader], "POST", "/v1/networks", {"id": "paused",
                                                                       "vni": 78})[0]
        except OSError:
            st = "closed"  # it was tearing its leader phase down
        self.assertIn(st, (307, 503, "closed"))
        self.wait_role(leader, "follower")
        self.assertEqual(self.etcd.kv("/ha-test/generation"), generation, "nothing was written")
        st, _, nets = request(self.ports[new], "GET", "/v1/networks")
        self.assertNotIn("paused", {n["id"] for n in nets})

    def test_5_etcd_member_lost_then_quorum_lost(self):
        self.wait_leader()
        self.etcd.kill(2)
        self.assertEqual(self.write("/v1/networks", {"id": "one-down", "vni": 79}), 201)
        before = request(self.ports[self.wait_leader()], "GET", "/v1/networks")[2]
        # Every follower caught up (a read may be behind by up to its refresh period).
        for port in self.ports:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if len(request(port, "GET", "/v1/networks")[2]) == len(before):
                    break
                time.sleep(0.05)
        self.etcd.kill(1)
        # No quorum: a write is refused clearly and quickly, whoever is asked.
        started = time.monotonic()
        outcomes = set()
        for port in self.ports:
            answer = None
            while answer is None and time.monotonic() - started < 15:
                try:
                    st, _, body = request(port, "POST", "/v1/networks",
                                          {"id": "no-quorum", "vni": 80}, timeout=10)
                    answer = (st, body["error"]["code"] if isinstance(body, dict) else body)
                except OSError:
                    time.sleep(0.05)  # a leader closing its port to serve as a follower
            outcomes.add(answer)
        self.assertLess(time.monotonic() - started, 15)
        self.assertTrue(all(st in (503, 307) for st, _ in outcomes), outcomes)
        # Reads are still answered, marked as possibly stale once etcd has been silent a while.
        deadline = time.monotonic() + 10
        stale = None
        while time.monotonic() < deadline and not stale:
            try:
                st, headers, nets = request(self.ports[0], "GET", "/v1/networks")
                stale = headers.get("Warning") if st == 200 else None
            except OSError:
                pass
            time.sleep(0.1)
        self.assertIsNotNone(stale, "a read without quorum says it may be stale")
        self.assertIn("110", stale)
        self.assertEqual(sorted(n["id"] for n in nets), sorted(n["id"] for n in before))
        # Quorum back: a leader again, writes work, nothing was lost or half-written.
        self.etcd.start(1)
        self.etcd.start(2)
        self.etcd.wait_healthy()
        self.assertEqual(self.write("/v1/networks", {"id": "recovered", "vni": 81}, 30), 201)
        after = request(self.ports[self.wait_leader()], "GET", "/v1/networks")[2]
        # The write refused without quorum may still land: etcd's leader had it in its log, and
        # the 503 said its outcome was unknown. Nothing else may differ.
        self.assertEqual(sorted(n["id"] for n in after if n["id"] != "no-quorum"),
                         sorted([n["id"] for n in before] + ["recovered"]))


class EtcdTls(unittest.TestCase):
    def test_6_etcd_over_tls_with_client_certificates(self):
        tmp = tempfile.mkdtemp(prefix="cutover-ha-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        pki = os.path.join(tmp, "pki")
        ctl = os.path.join(BUILD, "cli", "cutoverctl")
        for args in (["init"], ["issue", "etcd", "--role", "controller", "--ips", "127.0.0.1"],
                     ["issue", "ctl", "--role", "controller"]):
            subprocess.run([ctl, "--pki-dir", pki, "pki", *args], check=True, capture_output=True)
        p = lambda n: os.path.join(pki, n)  # noqa: E731
        client, peer, port = free_ports(3)
        url = f"https://127.0.0.1:{client}"
        with open(os.path.join(tmp, "etcd.log"), "ab") as log:
            etcd = subprocess.Popen(
                [ETCD, "--name", "t", "--data-dir", os.path.join(tmp, "t"),
                 "--listen-client-urls", url, "--advertise-client-urls", url,
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"t=http://127.0.0.1:{peer}", "--cert-file", p("etcd.pem"),
                 "--key-file", p("etcd.key"), "--trusted-ca-file", p("ca.pem"),
                 "--client-cert-auth", "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)
        procs = [etcd]
        # A controller started before etcd answers waits for it (logged), so no wait is needed
        # here; the one without a certificate must still fail at once.

        def stop():
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        self.addCleanup(stop)

        def controller(port, *tls):
            log = open(os.path.join(tmp, f"c{port}.log"), "ab")
            proc = subprocess.Popen(
                [os.path.join(BUILD, "controller", "cutover-controller"), "--listen",
                 f"127.0.0.1:{port}", "--advertise-url", f"http://127.0.0.1:{port}", "--store",
                 "etcd:" + url, "--etcd-ca", p("ca.pem"), *tls, "--token", TOKEN],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
            procs.append(proc)
            return proc

        controller(port, "--etcd-cert", p("ctl.pem"), "--etcd-key", p("ctl.key"))
        deadline = time.monotonic() + 60
        role = None
        while time.monotonic() < deadline and role != "leader":
            try:
                role = request(port, "GET", "/healthz", timeout=1)[2].get("role")
            except OSError:
                pass
            time.sleep(0.1)
        self.assertEqual(role, "leader")
        self.assertEqual(request(port, "POST", "/v1/networks", {"id": "tls", "vni": 5})[0], 201)
        nocert = controller(free_ports(1)[0])
        self.assertEqual(nocert.wait(timeout=30), 1)
        with open(os.path.join(tmp, f"c{nocert.args[2].split(':')[1]}.log")) as f:
            self.assertIn("bad certificate", f.read())


def main():
    global BUILD
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    BUILD = sys.argv.pop(1)
    if not os.path.exists(ETCD):
        print("skipped: etcd is not installed (scripts/install-deps installs etcd-server)")
        return 77
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
