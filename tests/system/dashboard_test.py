#!/usr/bin/env python3
"""System test for the metrics an operator graphs: the Grafana dashboard shipped in
packaging/grafana queries only metrics that exist. It starts a controller on loopback and an
agent (file mode, Linux backend, in a namespace of its own) with --metrics-listen, reads both
/metrics, and checks every metric name in every panel's query against the families they expose
(a histogram's _bucket/_sum/_count count as its family). It also checks the exposition itself:
one HELP and TYPE per family, every sample under a declared family, names with units and
counters ending in _total.

Usage: dashboard_test.py BUILD_DIR SOURCE_DIR   (exit 77 = skipped, with the reason printed)
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import controller_limits_test as limits  # noqa: E402
from controller_limits_test import Controller  # noqa: E402
from cutover_lab.netlab import run, wait_until  # noqa: E402

BUILD = SOURCE = None
NS = f"cvdash{os.getpid()}"


def families(text):
    """name -> type, from the exposition; fails on a sample of an undeclared family."""
    types, helps = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helps, f"two HELP lines for {name}"
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            assert name not in types, f"two TYPE lines for {name}"
            types[name] = typ
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in types or types.get(base) == "histogram", f"sample of no family: {line}"
    assert helps == set(types), f"HELP without TYPE or back: {helps ^ set(types)}"
    return types


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.controller = Controller()
        cls.addClassCleanup(cls.controller.stop)
        run("ip", "netns", "add", NS)
        cls.addClassCleanup(run, "ip", "netns", "del", NS, check=False)
        run("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        cls.dir = tempfile.mkdtemp(prefix="cutover-dashboard-")
        state = os.path.join(cls.dir, "desired.json")
        with open(state, "w") as f:
            json.dump({"generation": 1, "host": "h1", "networks": [], "ports": [],
                       "hosts": [{"id": "h1", "underlay_ip": "192.168.100.1"}]}, f)
        cls.agent_log = os.path.join(cls.dir, "agent.log")
        with open(cls.agent_log, "wb") as log:
            cls.agent = subprocess.Popen(
                ["ip", "netns", "exec", NS, os.path.join(BUILD, "agent", "cutover-agent"),
                 "--backend", "linux", "--desired-state", state, "--control-socket", "",
                 "--relay-port", "0", "--metrics-listen", "127.0.0.1:0"],
                stdout=log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(cls.stop_agent)
        port = wait_until("agent metrics listening", lambda: (re.findall(
            r"metrics on http://127\.0\.0\.1:(\d+)/metrics", cls.log()) or [None])[0])
        wait_until("agent applied", lambda: "generation 1 applied" in cls.log())
        cls.agent_text = run("ip", "netns", "exec", NS, "curl", "-sf",
                             f"http://127.0.0.1:{port}/metrics").stdout
        cls.controller_text = cls.controller.request("GET", "/metrics", token="")[1]

    @classmethod
    def log(cls):
        with open(cls.agent_log) as f:
            return f.read()

    @classmethod
    def stop_agent(cls):
        if cls.agent.poll() is None:
            cls.agent.kill()
        cls.agent.wait()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_every_metric_the_dashboard_queries_exists(self):
        with open(os.path.join(SOURCE, "packaging", "grafana", "cutover-dashboard.json")) as f:
            dash = json.load(f)
        have = {**families(self.controller_text), **families(self.agent_text)}
        queried = set()
        for panel in dash["panels"]:
            self.assertTrue(panel["targets"], panel["title"])
            for t in panel["targets"]:
                queried |= set(re.findall(r"\bcutover_[a-z0-9_]+", t["expr"]))
        missing = []
        for name in sorted(queried):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in have and have.get(base) != "histogram":
                missing.append(name)
        print(f"\n  dashboard: {len(dash['panels'])} panels query {len(queried)} metrics; "
              f"controller exposes {len(families(self.controller_text))} families, "
              f"agent {len(families(self.agent_text))}")
        self.assertEqual(missing, [], "the dashboard queries metrics nobody exposes")

    def test_names_follow_prometheus_conventions(self):
        for who, text in (("controller", self.controller_text), ("agent", self.agent_text)):
            for name, typ in families(text).items():
                self.assertTrue(name.startswith("cutover_"), f"{who}: {name}")
                self.assertNotIn("cutover_cutover", name, f"{who}: {name}")
                if typ == "counter":
                    self.assertTrue(name.endswith("_total"), f"{who}: counter {name}")
                if typ == "histogram":
                    self.assertTrue(name.endswith("_seconds"), f"{who}: histogram {name}")
        self.assertIn('cutover_agent_build_info{version="', self.agent_text)
        self.assertIn("cutover_agent_reconcile_passes_total{outcome=\"applied\"} ", self.agent_text)
        self.assertRegex(self.agent_text, r'cutover_agent_installed_objects\{kind="links"\} \d')


def main():
    global BUILD, SOURCE
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    BUILD, SOURCE = sys.argv[1], sys.argv[2]
    limits.BUILD = BUILD
    if os.geteuid() != 0:
        print("skipped: needs root (network namespace for the agent)")
        return 77
    for tool in ("ip", "curl"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            print(f"skipped: {tool} not installed")
            return 77
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
