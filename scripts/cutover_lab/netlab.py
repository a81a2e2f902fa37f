"""Network-namespace lab: underlay, hosts with their own OVS, veth "VMs", and waiting helpers.

Facts this relies on (shared/notes/lab-facts.md): OVS runs with datapath_type=netdev; the underlay
IP sits on an OVS bridge (br-phy) with the uplink as its port; an nftables netdev ingress drop on
the uplink stops the kernel answering too; veth VMs need tx checksum offload off; VM MTU 1450.
"""
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
VM_MTU = 1450


class LabError(RuntimeError):
    pass


def missing(root_for, tools):
    """Why a test cannot run here (it then exits 77, reported as skipped), or None: not root
    (root_for says what root is needed for), or the first of `tools` not installed."""
    if os.geteuid() != 0:
        return f"needs root ({root_for})"
    for tool in tools:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} not installed (run scripts/install-deps)"
    return None


def run(*cmd, check=True, capture=True, timeout=60, env=None):
    """Runs a command; raises LabError with its stderr when it fails."""
    res = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def wait_until(what, fn, timeout=10.0, interval=0.02):
    """Polls fn() until it returns a truthy value; on timeout raises with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the condition may raise while things come up
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.1f}s waiting for {what}; last seen: {last!r}")
        time.sleep(interval)


def _start_time(pid):
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None
    if it is gone or a zombie: with the PID it identifies a process even after PID reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


class PidProc:
    """A process started by an earlier `scripts/lab up`, known by PID and start time: the same
    calls as subprocess.Popen that Lab uses (poll, send_signal, wait, kill), and it never signals
    a different process that reused the PID."""

    def __init__(self, pid, start_time, log_path=None):
        self.pid, self.start_time, self.log_path = pid, start_time, log_path
        self.returncode = None

    @classmethod
    def of(cls, proc):
        return cls(proc.pid, _start_time(proc.pid), getattr(proc, "log_path", None))

    def poll(self):
        if self.returncode is None and (self.start_time is None
                                        or _start_time(self.pid) != self.start_time):
            self.returncode = 0  # not ours to know: it was reaped by whoever adopted it
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode


class Host:
    """An emulated hypervisor: a namespace with its own OVS and an underlay address."""

    def __init__(self, lab, name, ns, underlay_ip, index):
        self.lab, self.name, self.ns, self.underlay_ip, self.index = lab, name, ns, underlay_ip, index
        self.backend = "ovs"
        self.migration_ip = None  # add_migration_network()
        self.dir = os.path.join(lab.dir, name)
        self.rundir = os.path.join(self.dir, "run")
        self.env = dict(os.environ, OVS_RUNDIR=self.rundir, OVS_DBDIR=self.dir,
                        OVS_LOGDIR=self.dir, OVS_SYSCONFDIR=self.dir, OVS_PKGDATADIR="/usr/share/openvswitch")
        self.db = f"unix:{self.rundir}/db.sock"

    def exec(self, *cmd, **kw):
        return run("ip", "netns", "exec", self.ns, *cmd, **kw)

    def vsctl(self, *args, **kw):
        return self.exec("ovs-vsctl", f"--db={self.db}", "--timeout=10", *args, env=self.env, **kw)

    def ofctl(self, *args, **kw):
        return self.exec("ovs-ofctl", "-O", "OpenFlow14", *args, env=self.env, **kw)

    def appctl(self, *args, **kw):
        return self.exec("ovs-appctl", f"--target={self.rundir}/ovs-vswitchd.ctl", *args,
                         env=self.env, **kw)

    def conntrack(self, a, b):
        """This host's conntrack entries (either backend, any zone) for the TCP connection between
        a and b, each an (ip, port) pair, in either direction."""
        if self.backend == "ovs":
            lines = self.appctl("dpctl/dump-conntrack").stdout.replace(",", " ").splitlines()
        else:
            lines = self.exec("cat", "/proc/net/nf_conntrack").stdout.splitlines()
        tuples = [f"src={x[0]} dst={y[0]} sport={x[1]} dport={y[1]}" for x, y in ((a, b), (b, a))]
        return [line for line in lines if "tcp" in line and any(t in line for t in tuples)]

    def mgmt(self, bridge="br-int"):
        return f"unix:{self.rundir}/{bridge}.mgmt"

    def kernel_objects(self):
        """Linux backend: our devices (with ifindex: a re-created device shows) and their FDB."""
        links = [line.split("<")[0] + line.split("master")[-1].split()[0] if "master" in line
                 else line.split("<")[0]
                 for line in self.exec("ip", "-o", "link", "show").stdout.splitlines()
                 if ": cv" in line]
        fdb = [line for line in self.exec("bridge", "fdb", "show").stdout.splitlines()
               if " dev cvx" in line and " dst " in line]
        return sorted(links) + sorted(fdb)

    def dump_flows(self, bridge="br-int", cookie=None):
        args = ["dump-flows", "--no-stats", self.mgmt(bridge)]
        if cookie is not None:
            args.append(f"cookie={cookie:#x}/-1")
        out = self.ofctl(*args).stdout
        return sorted(line.strip() for line in out.splitlines() if "actions=" in line)


class Lab:
    """Owns every namespace, process and temp dir it creates; cleanup() removes them all."""

    def __init__(self, name="lab"):
        self.prefix = f"cv{os.getpid() % 10000}{random.randint(0, 99):02d}"
        self.dir = tempfile.mkdtemp(prefix=f"cutover-{name}-")
        self.namespaces = []
        self.procs = []
        self.hosts = {}
        self.underlay_ns = None
        self.cleanups = []  # run first by cleanup(), newest first (e.g. destroy VMs)
        self.rmem_restore = None  # (value we set, value before) - see raise_socket_buffers()

    RMEM_PATH = "/proc/sys/net/core/rmem_default"

    def raise_socket_buffers(self, size=4 << 20):
        """OVS's userspace datapath reads every port through an AF_PACKET socket whose buffer
        is net.core.rmem_default (212 KB): a VM's burst after its pause (a few hundred frames
        queued for it, echoed at once) overflows it on the next hop and frames die there. The
        kernel lets only the initial namespace set it, so it is raised machine-wide while the
        lab runs and put back by cleanup() (only if nobody changed it meanwhile)."""
        with open(self.RMEM_PATH) as f:
            before = int(f.read())
        if before >= size:
            return
        with open(self.RMEM_PATH, "w") as f:
            f.write(str(size))
        self.rmem_restore = (size, before)

    def _restore_socket_buffers(self):
        if not self.rmem_restore:
            return
        ours, before = self.rmem_restore
        with open(self.RMEM_PATH) as f:
            if int(f.read()) == ours:
                with open(self.RMEM_PATH, "w") as w:
                    w.write(str(before))
        self.rmem_restore = None

    # -- persistence (scripts/lab up ... down) ---------------------------------------------------
    def to_state(self):
        """What a later process needs to use and tear down this lab: every namespace, every
        process by PID + start time, the hosts and the controller."""
        return {"prefix": self.prefix, "dir": self.dir, "namespaces": self.namespaces,
                "procs": [{"pid": p.pid, "start_time": getattr(p, "start_time", None)
                           or _start_time(p.pid), "log": getattr(p, "log_path", None)}
                          for p in self.procs if p.poll() is None],
                "underlay_ns": self.underlay_ns, "rmem_restore": self.rmem_restore,
                "controller_port": getattr(self, "controller_port", None),
                "ha": getattr(self, "ha", False),
                "token_file": getattr(self, "token_file", None),
                "pki_dir": getattr(self, "pki_dir", None),
                "ctl_binary": getattr(self, "ctl_binary", None),
                "hosts": [{"name": h.name, "ns": h.ns, "underlay_ip": h.underlay_ip,
                           "index": h.index, "backend": h.backend,
                           "migration_ip": h.migration_ip} for h in self.hosts.values()]}

    @classmethod
    def from_state(cls, st):
        lab = cls.__new__(cls)
        lab.prefix, lab.dir = st["prefix"], st["dir"]
        lab.namespaces = list(st["namespaces"])
        lab.procs = [PidProc(p["pid"], p["start_time"], p["log"]) for p in st["procs"]]
        lab.underlay_ns = st["underlay_ns"]
        lab.rmem_restore = st.get("rmem_restore")
        lab.controller_port, lab.token_file = st["controller_port"], st["token_file"]
        lab.ha = st.get("ha", False)
        lab.pki_dir, lab.ctl_binary = st.get("pki_dir"), st.get("ctl_binary")
        lab.cleanups = []
        lab.hosts = {}
        for h in st["hosts"]:
            host = Host(lab, h["name"], h["ns"], h["underlay_ip"], h["index"])
            host.backend = h["backend"]
            host.migration_ip = h.get("migration_ip")
            lab.hosts[host.name] = host
        return lab

    def find_proc(self, pid):
        return next((p for p in self.procs if p.pid == pid), None)

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def cleanup(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep tearing down
                print(f"cleanup: {e}")
        self.cleanups.clear()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
                except ProcessLookupError:
                    pass
        self.procs.clear()
        for ns in reversed(self.namespaces):
            run("ip", "netns", "del", ns, check=False)
        self.namespaces.clear()
        self._restore_socket_buffers()
        if os.environ.get("CUTOVER_KEEP_LAB_DIR"):
            print(f"lab files kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def spawn(self, ns, cmd, log_name, env=None):
        """Starts cmd inside namespace ns (None = here), logging to a file; tracked by PID."""
        log_path = os.path.join(self.dir, log_name)
        full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM):
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)

    def add_ns(self, suffix):
        ns = f"{self.prefix}-{suffix}"
        run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        return ns

    # -- topology ------------------------------------------------------------------------------
    CONTROLLER_IP = "192.168.100.254"

    def add_underlay(self):
        """The underlay: a Linux bridge in its own namespace, which also hosts the controller
        (reachable from the hosts at CONTROLLER_IP and from inside that namespace on loopback)."""
        self.underlay_ns = self.add_ns("ul")
        run("ip", "netns", "exec", self.underlay_ns, "ip", "link", "add", "ul", "type", "bridge")
        run("ip", "netns", "exec", self.underlay_ns, "ip", "addr", "add",
            f"{self.CONTROLLER_IP}/24", "dev", "ul")
        run("ip", "netns", "exec", self.underlay_ns, "ip", "link", "set", "ul", "up")

    def start_controller(self, binary, token="lab-token", extra_args=(), tls=True):
        """Runs cutover-controller in the underlay namespace; returns its port. With tls (the
        default, as a deployment should run) the lab makes its own CA with cutoverctl pki: the
        controller serves HTTPS and wss:// with a certificate for its addresses, each agent gets
        a certificate naming its host (issue_agent_cert), cutoverctl checks the CA."""
        if not self.underlay_ns:
            self.add_underlay()
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        tls_args = ["--insecure-clear-text"]  # a lab without TLS, on its own underlay
        self.pki_dir = None
        self.ctl_binary = os.path.join(os.path.dirname(os.path.dirname(binary)), "cli",
                                       "cutoverctl")
        if tls:
            self.pki_dir = os.path.join(self.dir, "pki")
            self.pki("init", "--name", f"{self.prefix} lab CA", "--days", "30")
            self.pki("issue", "controller", "--role", "controller", "--ips",
                     f"127.0.0.1,{self.CONTROLLER_IP}", "--days", "30")
            tls_args = ["--tls-cert", self.pki_path("controller.pem"),
                        "--tls-key", self.pki_path("controller.key"),
                        "--tls-ca", self.pki_path("ca.pem"),
                        "--tls-crl", self.pki_path("crl.pem")]
        port_file = os.path.join(self.dir, "controller.port")
        self.controller = self.spawn(self.underlay_ns, [
            binary, "--listen", "0.0.0.0:0", "--db", os.path.join(self.dir, "controller.db"),
            "--token-file", self.token_file, "--port-file", port_file, *tls_args, *extra_args],
            "controller.log")
        def read_port():
            with open(port_file) as f:
                return f.read().strip()
        self.controller_port = int(wait_until("controller port file", read_port))
        return self.controller_port

    HA_IPS = ["192.168.100.251", "192.168.100.252", "192.168.100.253"]
    HA_PORT = 8180

    def start_controllers_ha(self, binary, token="lab-token"):
        """Highly available controllers: a 3-member etcd cluster and three cutover-controllers in
        the underlay namespace, each on its own address (HA_IPS, etcd on 2379/2380, the
        controller on HA_PORT), over TLS with one certificate naming all three. Agents get every
        controller's URL; cutoverctl is pointed at the first that answers and follows the 307."""
        from .etcd import EtcdCluster
        self.ha = True
        if not self.underlay_ns:
            self.add_underlay()
        for ip in self.HA_IPS:
            run("ip", "netns", "exec", self.underlay_ns, "ip", "addr", "add", f"{ip}/24", "dev",
                "ul")
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(token + "\n")
        self.ctl_binary = os.path.join(os.path.dirname(os.path.dirname(binary)), "cli",
                                       "cutoverctl")
        self.pki_dir = os.path.join(self.dir, "pki")
        self.pki("init", "--name", f"{self.prefix} lab CA", "--days", "30")
        self.pki("issue", "controller", "--role", "controller", "--ips",
                 ",".join(["127.0.0.1", self.CONTROLLER_IP] + self.HA_IPS), "--days", "30")
        etcd_dir = os.path.join(self.dir, "etcd")
        os.makedirs(etcd_dir, exist_ok=True)
        self.etcd = EtcdCluster(etcd_dir, ips=self.HA_IPS,
                                spawn=lambda cmd, log: self.spawn(self.underlay_ns, cmd, log),
                                get=lambda url: self.ns_get(url))
        self.etcd.start_all(timeout=60)
        self.ha_controllers = []
        for ip in self.HA_IPS:
            self.ha_controllers.append(self.spawn(self.underlay_ns, [
                binary, "--listen", f"{ip}:{self.HA_PORT}", "--advertise-url",
                f"https://{ip}:{self.HA_PORT}", "--store", "etcd:" + self.etcd.endpoints,
                "--lease-ttl", "1", "--etcd-max-txn-ops", "1024", "--token-file",
                self.token_file, "--tls-cert", self.pki_path("controller.pem"),
                "--tls-key", self.pki_path("controller.key"), "--tls-ca", self.pki_path("ca.pem"),
                "--tls-crl", self.pki_path("crl.pem")], f"controller-{ip.rsplit('.', 1)[1]}.log"))
        self.controller = self.ha_controllers[0]
        self.controller_port = self.HA_PORT
        wait_until("a controller to lead", self.ha_leader, 30)
        return self.controller_port

    def ns_get(self, url):
        """GET url from inside the underlay namespace (the lab's CA for https); the body or None."""
        code = ("import ssl,sys,urllib.request as u\n"
                "c=ssl.create_default_context(cafile=sys.argv[2]) if sys.argv[2] else None\n"
                "try:\n"
                " print(u.build_opener(u.ProxyHandler({}),u.HTTPSHandler(context=c)).open("
                "sys.argv[1],timeout=2).read().decode())\n"
                "except Exception:\n sys.exit(1)\n")
        res = subprocess.run(["ip", "netns", "exec", self.underlay_ns, sys.executable, "-c", code,
                              url, self.pki_path("ca.pem") if url.startswith("https") else ""],
                             capture_output=True, text=True, timeout=10)
        return res.stdout if res.returncode == 0 else None

    def ha_leader(self):
        """The address of the controller that says it leads, or None."""
        for ip in self.HA_IPS:
            body = self.ns_get(f"https://{ip}:{self.HA_PORT}/healthz")
            if body and json.loads(body).get("role") == "leader":
                return ip
        return None

    def pki(self, *args):
        """cutoverctl pki on the lab's CA directory."""
        return run(self.ctl_binary, "--pki-dir", self.pki_dir, "pki", *args)

    def pki_path(self, name):
        return os.path.join(self.pki_dir, name)

    def issue_agent_cert(self, host_name):
        """The agent certificate naming host_name (issued once per lab)."""
        if not os.path.exists(self.pki_path(host_name + ".pem")):
            self.pki("issue", host_name, "--role", "agent", "--days", "30")
        return self.pki_path(host_name + ".pem"), self.pki_path(host_name + ".key")

    def controller_url(self, scheme="http", host="127.0.0.1"):
        """The controller's REST (http) or agent-channel (ws) URL, TLS or not as it runs. With
        HA controllers: every one for agents (ws), the leader (else the first) for REST."""
        secure = "s" if getattr(self, "pki_dir", None) else ""
        if getattr(self, "ha", False):
            if scheme == "ws":
                return ",".join(f"ws{secure}://{ip}:{self.controller_port}" for ip in self.HA_IPS)
            host = self.HA_IPS[getattr(self, "rest_index", 0)]
        return f"{scheme}{secure}://{host}:{self.controller_port}"

    def ctl(self, ctl_binary, *args, check=True):
        """Runs cutoverctl against the lab's controller (inside the underlay namespace)."""
        tls = ["--tls-ca", self.pki_path("ca.pem")] if getattr(self, "pki_dir", None) else []
        cmd = lambda: ["ip", "netns", "exec", self.underlay_ns, ctl_binary, "--controller",  # noqa
                       self.controller_url(), *tls, "--token-file", self.token_file, *args]
        if not getattr(self, "ha", False):
            return run(*cmd(), check=check)
        # HA: any live controller will do (cutoverctl follows a follower's 307); one that is
        # down, or a moment without a leader (503), moves on to the next for a few seconds.
        deadline = time.monotonic() + 10
        while True:
            res = run(*cmd(), check=False)
            transient = res.returncode != 0 and any(
                s in res.stderr for s in ("failed", "refused", "not_leader", "no leader", "reach"))
            if not transient or time.monotonic() > deadline:
                if check and res.returncode != 0:
                    raise LabError(f"cutoverctl {' '.join(args)} failed ({res.returncode}): "
                                   f"{res.stderr.strip()}")
                return res
            self.rest_index = (getattr(self, "rest_index", 0) + 1) % len(self.HA_IPS)
            time.sleep(0.1)

    def move_vm(self, vm, dst):
        """Emulates a migration's switchover: the VM's tap leaves the source host (port deleted
        first: a veth that comes back is RX-dead in OVS otherwise) and is plugged into dst."""
        src = vm.host
        if src.backend == "ovs":
            src.vsctl("--if-exists", "del-port", vm.tap)
        src.exec("ip", "link", "set", vm.tap, "netns", dst.ns)
        vm.host = dst
        dst.exec("ip", "link", "set", vm.tap, "mtu", str(VM_MTU), "up")
        self.plug(vm)

    def add_migration_network(self, host):
        """Gives host a second link, mig0 (192.168.101.<n>/24), on a plain Linux bridge in the
        underlay namespace: the network QEMU's live-migration stream takes, as operators keep it
        apart from the tunnel underlay. Through OVS's userspace datapath here, the stream's final
        burst overflows ovs-vswitchd's AF_PACKET buffer on the uplink (212 KB) and drops frames of
        every flow, the overlay's included."""
        if not getattr(self, "migration_bridge", None):
            run("ip", "netns", "exec", self.underlay_ns, "ip", "link", "add", "mig", "type", "bridge")
            run("ip", "netns", "exec", self.underlay_ns, "ip", "link", "set", "mig", "up")
            self.migration_bridge = "mig"
        peer = f"mg-{host.name}"[:15]
        run("ip", "link", "add", "mig0", "netns", host.ns, "type", "veth", "peer", "name", peer,
            "netns", self.underlay_ns)
        run("ip", "netns", "exec", self.underlay_ns, "ip", "link", "set", peer, "master", "mig", "up")
        host.migration_ip = f"192.168.101.{host.index}"
        host.exec("ip", "addr", "add", f"{host.migration_ip}/24", "dev", "mig0")
        host.exec("ip", "link", "set", "mig0", "up")

    def add_host(self, name, backend="ovs"):
        """Creates host `name` on the underlay (192.168.100.<n>/24). backend "ovs": its own OVS
        with the underlay IP on br-phy; "linux": the underlay IP on eth0, no OVS (the agent
        builds Linux bridges and VXLAN devices)."""
        if not self.underlay_ns:
            self.add_underlay()
        index = len(self.hosts) + 1
        ns = self.add_ns(name)
        host = Host(self, name, ns, f"192.168.100.{index}", index)
        host.backend = backend
        os.makedirs(host.rundir)
        # uplink: eth0 in the host, its peer enslaved to the underlay bridge
        peer = f"ul-{name}"[:15]
        run("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer,
            "netns", self.underlay_ns)
        run("ip", "netns", "exec", self.underlay_ns, "ip", "link", "set", peer, "master", "ul", "up")
        host.exec("ip", "link", "set", "eth0", "up")
        # Frames crossing the uplink into OVS's AF_PACKET port must carry real checksums: TCP to
        # the controller (in the underlay namespace) is otherwise dropped as bad-checksum.
        run("ip", "netns", "exec", self.underlay_ns, "ethtool", "-K", peer, "tx", "off")
        host.exec("ethtool", "-K", "eth0", "tx", "off")
        if backend == "linux":
            host.exec("ip", "addr", "add", f"{host.underlay_ip}/24", "dev", "eth0")
            self.hosts[name] = host
            return host
        self._start_ovs(host)
        # underlay address on br-phy (an OVS bridge with eth0 as its port), per lab-facts
        host.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
                   "--", "add-port", "br-phy", "eth0")
        wait_until(f"{name}: br-phy device", lambda: host.exec("ip", "link", "show", "br-phy",
                                                                 check=False).returncode == 0)
        host.exec("ip", "addr", "add", f"{host.underlay_ip}/24", "dev", "br-phy")
        # br-phy is a tap that this host's OVS reads in its main loop: its default queue (1,000
        # frames) overflowed while OVS was busy and a migration's relayed backlog (one datagram
        # per frame, up to thousands) left through it. A NIC's queue pushes back instead.
        host.exec("ip", "link", "set", "br-phy", "txqueuelen", "10000", "up")
        host.exec("nft", "add table netdev cutover_lab; "
                  "add chain netdev cutover_lab uplink { type filter hook ingress device eth0 priority 0; policy drop; }")
        # Pre-load OVS's tunnel neighbour cache both ways, as a busy underlay would have it:
        # otherwise the first encapsulated frame to each VTEP is dropped while OVS resolves it,
        # and the VM's ARP only retries a second later.
        host.phy_mac = json.loads(host.exec("ip", "-j", "link", "show", "br-phy").stdout)[0]["address"]
        for other in self.hosts.values():
            if other.backend != "ovs":
                continue
            host.appctl("tnl/neigh/set", "br-phy", other.underlay_ip, other.phy_mac)
            other.appctl("tnl/neigh/set", "br-phy", host.underlay_ip, host.phy_mac)
        self.hosts[name] = host
        return host

    def _start_ovs(self, host):
        dbfile = os.path.join(host.dir, "conf.db")
        run("ovsdb-tool", "create", dbfile, SCHEMA)
        self.spawn(host.ns, ["ovsdb-server", dbfile, f"--remote=punix:{host.rundir}/db.sock",
                             f"--unixctl={host.rundir}/ovsdb-server.ctl", "--no-chdir",
                             f"--log-file={host.dir}/ovsdb-server.log", "-vconsole:off"],
                   f"{host.name}-ovsdb.out", env=host.env)
        wait_until(f"{host.name}: ovsdb-server socket",
                   lambda: os.path.exists(f"{host.rundir}/db.sock"))
        host.vsctl("--no-wait", "init")
        self.spawn(host.ns, ["ovs-vswitchd", host.db, f"--unixctl={host.rundir}/ovs-vswitchd.ctl",
                             "--no-chdir", f"--log-file={host.dir}/ovs-vswitchd.log", "-vconsole:off"],
                   f"{host.name}-vswitchd.out", env=host.env)
        wait_until(f"{host.name}: ovs-vswitchd", lambda: os.path.exists(f"{host.rundir}/ovs-vswitchd.ctl"))

    def add_vm(self, host, name, mac, ip, iface_id=None, prefix_len=24, bridge="br-int"):
        """A "VM": a namespace with eth0 (mac, ip/prefix, MTU 1450) veth'd to host's bridge."""
        ns = self.add_ns(name)
        tap = f"t-{name}"[:15]
        run("ip", "link", "add", "eth0", "netns", ns, "address", mac, "mtu", str(VM_MTU), "type",
            "veth", "peer", "name", tap, "netns", host.ns)
        vm = Vm(self, name, ns, host, tap, mac, ip, iface_id or name)
        vm.exec("ip", "addr", "add", f"{ip}/{prefix_len}", "dev", "eth0")
        vm.exec("ip", "link", "set", "eth0", "up")
        vm.exec("ethtool", "-K", "eth0", "tx", "off")
        host.exec("ip", "link", "set", tap, "mtu", str(VM_MTU), "up")
        self.plug(vm, bridge)
        return vm

    def plug(self, vm, bridge="br-int"):
        """Attaches the VM's tap the way the hypervisor would: an OVS port with
        external_ids:iface-id, or (linux backend) a tap marked with ifalias iface-id=<id> that
        the agent enslaves to the right bridge."""
        if vm.host.backend == "linux":
            vm.host.exec("ip", "link", "set", vm.tap, "alias", f"iface-id={vm.iface_id}")
            vm.host.exec("ip", "link", "set", vm.tap, "up")
            return
        vm.host.vsctl("--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
                      "datapath_type=netdev", "fail_mode=secure",
                      "protocols=OpenFlow10,OpenFlow13,OpenFlow14,OpenFlow15")
        vm.host.vsctl("add-port", bridge, vm.tap, "--", "set", "interface", vm.tap,
                      f"external_ids:iface-id={vm.iface_id}")


class Vm:
    def __init__(self, lab, name, ns, host, tap, mac, ip, iface_id):
        self.lab, self.name, self.ns, self.host, self.tap = lab, name, ns, host, tap
        self.mac, self.ip, self.iface_id = mac, ip, iface_id

    def exec(self, *cmd, **kw):
        return run("ip", "netns", "exec", self.ns, *cmd, **kw)

    def connects(self, ip, port, timeout=1):
        """Whether a TCP connection from this VM to ip:port is accepted within `timeout` s."""
        probe = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])),"
                 " timeout=float(sys.argv[3])).close()\nexcept OSError:\n sys.exit(1)")
        return self.exec(sys.executable, "-c", probe, ip, str(port), str(timeout),
                         check=False).returncode == 0

    def ping(self, ip, count=1, size=56, timeout=2):
        res = self.exec("ping", "-c", str(count), "-W", str(timeout), "-s", str(size), "-M", "do",
                        ip, check=False, timeout=count * timeout + 5)
        return res.returncode == 0

    def tcp_port_to(self, ip, port):
        """The local port of this VM's TCP connection to ip:port."""
        found = re.search(rf"{re.escape(self.ip)}:(\d+)\s+{re.escape(ip)}:{port}\b",
                          self.exec("ss", "-tn").stdout)
        if not found:
            raise LabError(f"{self.name} has no TCP connection to {ip}:{port}")
        return int(found.group(1))

    def tcp_retransmits(self, local_port, ip, port):
        """How many segments this VM's TCP connection (from local_port to ip:port) retransmitted."""
        out = self.exec("ss", "-tni", "src", f"{self.ip}:{local_port}", "dst", f"{ip}:{port}").stdout
        found = re.search(r"retrans:\d+/(\d+)", out)
        return int(found.group(1)) if found else 0

    @contextlib.contextmanager
    def silenced(self, peer, port, local_port):
        """Drops everything this VM sends to the peer VM's port (TCP) while the block runs: the
        VM's own packets then cannot re-open its connection (from local_port) anywhere. Yields
        refused_by(host): once every host has applied a move of this VM to `host`, it waits for
        the peer to retransmit and returns host's conntrack entries for the connection and how
        many of the peer's packets reached this VM meanwhile (none of either: host refused it)."""
        table = ["inet", "cutover_test_silence"]
        self.exec("nft", "add", "table", *table)
        try:
            for chain, hook, rule in (("out", "output", ["ip", "daddr", peer.ip, "tcp", "dport",
                                                        str(port), "drop"]),
                                      ("in", "input", ["ip", "saddr", peer.ip, "tcp", "sport",
                                                       str(port), "counter"])):
                self.exec("nft", "add", "chain", *table, chain,
                          f"{{ type filter hook {hook} priority 0; policy accept; }}")
                self.exec("nft", "add", "rule", *table, chain, *rule)

            def arrived():
                out = self.exec("nft", "list", "chain", *table, "in").stdout
                found = re.search(r"counter packets (\d+)", out)
                if not found:
                    raise LabError(f"no counter in {out}")
                return int(found.group(1))

            def retransmits():
                return peer.tcp_retransmits(port, self.ip, local_port)

            def refused_by(host):
                sent, before = retransmits(), arrived()
                # Its backoff has been growing since the silence began: allow for a few rounds.
                wait_until(f"{peer.name} to retransmit to {host.name}",
                           lambda: retransmits() > sent, timeout=20)
                return (host.conntrack((peer.ip, port), (self.ip, local_port)),
                        arrived() - before)
            yield refused_by
        finally:
            self.exec("nft", "delete", "table", *table, check=False)

    def rx_packets(self):
        out = self.exec("cat", "/sys/class/net/eth0/statistics/rx_packets").stdout
        return int(out.strip())


def desired_state(generation, host, hosts, networks, ports):
    """Builds a DesiredState document (the agent's --desired-state format)."""
    return {
        "generation": generation,
        "host": host,
        "hosts": [{"id": h.name, "underlay_ip": h.underlay_ip} for h in hosts],
        "networks": [{"id": n, "vni": vni} for n, vni in networks.items()],
        "ports": ports,
    }


def write_json(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.rename(tmp, path)


class AgentRunner:
    """Runs cutover-agent for one host from a desired-state file; reads its status file."""

    def __init__(self, lab, host, binary, extra_args=()):
        self.lab, self.host, self.binary, self.extra = lab, host, binary, list(extra_args)
        self.state_path = os.path.join(host.dir, "desired-state.json")
        self.status_path = os.path.join(host.dir, "agent-status.json")
        self.control_socket = os.path.join(host.dir, "agent.sock")
        self.proc = None

    def write_state(self, doc, reload=True):
        write_json(self.state_path, doc)
        if reload and self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def start(self, controller=False):
        backend = ["--backend", self.host.backend]
        """Starts the agent fed from the state file, or (controller=True) from the lab's
        controller over the agent channel."""
        if os.path.exists(self.status_path):
            os.unlink(self.status_path)  # so that waiting sees this process's own report
        if controller:
            if getattr(self.lab, "pki_dir", None):
                # TLS: the certificate says which host this agent is; no token.
                cert, key = self.lab.issue_agent_cert(self.host.name)
                auth = ["--tls-cert", cert, "--tls-key", key,
                        "--tls-ca", self.lab.pki_path("ca.pem")]
            else:
                auth = ["--token-file", self.lab.token_file]
            source = ["--controller", self.lab.controller_url("ws", self.lab.CONTROLLER_IP),
                      *auth, "--host", self.host.name, "--underlay-ip", self.host.underlay_ip]
        else:
            source = ["--desired-state", self.state_path]
        self.proc = self.lab.spawn(self.host.ns, [self.binary, *backend, "--ovs-rundir",
                                                  self.host.rundir, *source, "--status-file",
                                                  self.status_path, "--control-socket",
                                                  self.control_socket, *self.extra],
                                   f"{self.host.name}-agent.log")
        return self.proc

    def kill9(self):
        self.lab.stop(self.proc, signal.SIGKILL)

    def status(self):
        try:
            with open(self.status_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait_applied(self, generation, complete=True, timeout=10):
        def ok():
            s = self.status()
            if self.proc and self.proc.poll() is not None:
                raise LabError(f"agent on {self.host.name} exited ({self.proc.returncode}); "
                               f"log: {self.log()[-2000:]}")
            return (s and s["ok"] and s["generation"] >= generation
                    and not s["waiting_for"]
                    and (not complete or not s["awaiting_taps"])) and s
        return wait_until(f"{self.host.name} agent to apply generation {generation}", ok, timeout)

    def log(self):
        if not self.proc:
            return ""
        with open(self.proc.log_path) as f:
            return f.read()
