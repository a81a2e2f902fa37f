"""A real etcd cluster for tests, benchmarks and the lab: N members of Debian's `etcd`, each with
its own data directory and its own client and peer URLs (loopback ports picked free, or given
addresses inside a lab namespace), with short Raft timers (heartbeat 50 ms, election 500 ms)
so that a lease can be 1 s. Members are started, killed and restarted by PID (through `spawn`,
the lab's own when given); stop_all() kills every process it started.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_ports(n):
    """n distinct loopback ports that were free a moment ago."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class EtcdCluster:
    def __init__(self, root, members=3, max_txn_ops=1024, ips=None, spawn=None, get=None):
        """ips: one address per member (ports 2379/2380 on each), else free loopback ports.
        spawn(cmd, log_name) -> Popen-like: how members are started (default: here).
        get(url) -> body or None: how a member's /health is read (default: from here)."""
        self.get = get
        self.root = root
        self.names = [f"e{i}" for i in range(members)]
        if ips:
            self.client = [f"http://{ip}:2379" for ip in ips]
            self.peer = [f"http://{ip}:2380" for ip in ips]
        else:
            ports = free_ports(2 * members)
            self.client = [f"http://127.0.0.1:{p}" for p in ports[:members]]
            self.peer = [f"http://127.0.0.1:{p}" for p in ports[members:]]
        self.spawn = spawn
        self.initial = ",".join(f"{n}={u}" for n, u in zip(self.names, self.peer))
        self.max_txn_ops = max_txn_ops
        self.procs = [None] * members
        self.logs = [os.path.join(root, f"{n}.log") for n in self.names]

    @property
    def endpoints(self):
        return ",".join(self.client)

    def start(self, i):
        cmd = [ETCD, "--name", self.names[i], "--data-dir", os.path.join(self.root, self.names[i]),
               "--listen-client-urls", self.client[i], "--advertise-client-urls", self.client[i],
               "--listen-peer-urls", self.peer[i], "--initial-advertise-peer-urls", self.peer[i],
               "--initial-cluster", self.initial, "--initial-cluster-state", "new",
               "--initial-cluster-token", os.path.basename(self.root),
               "--heartbeat-interval", "50", "--election-timeout", "500",
               "--max-txn-ops", str(self.max_txn_ops), "--log-level", "warn"]
        if self.spawn:
            self.procs[i] = self.spawn(cmd, os.path.basename(self.logs[i]))
            return
        with open(self.logs[i], "ab") as log:
            self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def start_all(self, timeout=30):
        for i in range(len(self.names)):
            self.start(i)
        self.wait_healthy(timeout)

    def healthy(self, i):
        if self.get:
            body = self.get(self.client[i] + "/health")
            return bool(body) and '"health":"true"' in body.replace(" ", "")
        try:
            with urllib.request.urlopen(self.client[i] + "/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout=30, members=None):
        members = range(len(self.names)) if members is None else members
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.healthy(i) for i in members):
                return
            time.sleep(0.1)
        tails = {n: open(l, errors="replace").read()[-800:] for n, l in zip(self.names, self.logs)
                 if os.path.exists(l)}
        raise RuntimeError(f"etcd members {list(members)} not healthy within {timeout}s: {tails}")

    def kill(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.kill()
            p.wait()
        self.procs[i] = None

    def stop_all(self):
        for i, p in enumerate(self.procs):
            if p and p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
            self.procs[i] = None

    def kv(self, key):
        """The value of key (None when absent), read through member 0's JSON gateway."""
        import base64
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        for url in self.client:
            try:
                req = urllib.request.Request(url + "/v3/kv/range", data=body, method="POST")
                with urllib.request.urlopen(req, timeout=2) as r:
                    kvs = json.load(r).get("kvs", [])
                    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None
            except OSError:
                continue
        raise RuntimeError("no etcd member answered")
