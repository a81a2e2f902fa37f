#!/usr/bin/env python3
"""System test for the inventory: a real cutover-controller on loopback, an agent session spoken
at the byte level reporting a libvirt domain's interfaces the way cutover-agent does, REST and
cutoverctl:
- interfaces whose cutover network is named by cutover's <metadata>, or by a mapping set with
  `cutoverctl mappings set`, become ports placed on the reporting host, and reach that host's
  agent as a delta;
- a VM whose second NIC cannot be a port (its MAC is taken in the VNI) gets no port at all, and
  `cutoverctl ports list` and `cutoverctl inventory` say why, naming the field;
- mappings and the ports made survive a controller restart; a VM that stops running has its
  port retired after --inventory-retire-ms.
Needs no root. Usage: inventory_test.py BUILD_DIR
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import controller_limits_test as limits  # noqa: E402
from controller_limits_test import TOKEN, Controller, ws_upgrade  # noqa: E402
from cutover_lab.netlab import wait_until  # noqa: E402
from wsframes import ws_recv, ws_send  # noqa: E402

BUILD = None
HELLO = json.dumps({"type": "hello", "host": {"id": "h1", "underlay_ip": "192.0.2.1"}})


class Agent:
    """One agent session as h1: says hello, reads what the controller sends, ACKs with a report
    of the VMs it runs."""

    def __init__(self, port):
        self.s, status = ws_upgrade(port)
        assert status == 101, status
        ws_send(self.s, HELLO)
        self.generation = self.read()

    def read(self):
        """The next desired/delta message's generation."""
        while True:
            opcode, payload = ws_recv(self.s)
            if opcode == 1:
                msg = json.loads(payload)
                if msg["type"] in ("desired", "delta"):
                    self.last = msg
                    return msg.get("generation", msg.get("state", {}).get("generation"))

    def report(self, vms):
        ws_send(self.s, json.dumps({"type": "ack", "generation": self.generation, "bound_ports": [],
                                    "paused_ports": [], "foreign_running": [], "vms": vms}))

    def close(self):
        self.s.close()


class Inventory(unittest.TestCase):
    def start(self, *args, db=None):
        c = Controller(*args, db=db)
        self.addCleanup(c.stop)
        return c

    def ctl(self, c, *args, json_out=True, ok=True):
        token = os.path.join(c.dir, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")
        r = subprocess.run([os.path.join(BUILD, "cli", "cutoverctl"), "--controller",
                            f"http://127.0.0.1:{c.port}", "--token-file", token]
                           + (["--json"] if json_out else []) + list(args),
                           capture_output=True, text=True, timeout=10)
        if ok:
            self.assertEqual(r.returncode, 0, r.stderr)
        return (json.loads(r.stdout) if json_out and r.stdout.strip() else r.stdout), r

    def test_ports_from_reported_vms_mappings_refusals_and_retirement(self):
        c = self.start("--inventory-retire-ms", "1500")
        for path, body in (("/v1/networks", {"id": "blue", "vni": 100}),
                           ("/v1/networks", {"id": "red", "vni": 200}),
                           ("/v1/ports", {"id": "hand", "mac": "52:54:00:00:00:22",
                                          "network": "red"})):
            self.assertEqual(c.request("POST", path, body)[0], 201)
        agent = Agent(c.port)
        self.addCleanup(agent.close)
        web = [{"iface_id": "if-web", "mac": "52:54:00:00:00:01", "network": "blue"}]
        db = [{"iface_id": "if-db-1", "mac": "52:54:00:00:00:11", "libvirt_network": "prod"},
              {"iface_id": "if-db-2", "mac": "52:54:00:00:00:12", "libvirt_network": "prod",
               "portgroup": "backend"}]
        agent.report({"web": web, "db": db})
        # web's metadata names blue: its port is made on h1 and sent to h1 as a delta.
        port = wait_until("port if-web", lambda: (lambda r: r[1] if r[0] == 200 else None)(
            c.request("GET", "/v1/ports/if-web")))
        self.assertEqual((port["host"], port["network"], port["mac"]), ("h1", "blue", "52:54:00:00:00:01"))
        self.assertEqual(port["labels"], {"origin": "libvirt", "vm": "web"})
        agent.read()
        self.assertIn("if-web", json.dumps(agent.last))
        # db is on a libvirt network with no mapping yet: refused by name.
        inv, _ = self.ctl(c, "inventory")
        by_iface = {e["iface_id"]: e for e in inv}
        self.assertEqual(by_iface["if-db-1"]["field"], "libvirt_network")
        self.assertEqual(by_iface["if-web"]["port"], "if-web")
        # A mapping whose backend portgroup goes to red, where a hand-made port holds if-db-2's
        # MAC: neither of db's NICs becomes a port, and `ports list` says why.
        self.assertEqual(c.request("DELETE", "/v1/ports/hand")[0], 204)
        self.assertEqual(c.request("POST", "/v1/ports", {"id": "hand", "mac": "52:54:00:00:00:12",
                                                         "network": "red"})[0], 201)
        self.ctl(c, "mappings", "set", "prod", "--network", "blue", "--portgroups", "backend=red")
        text, _ = self.ctl(c, "ports", "list", json_out=False)
        self.assertIn("VM interfaces that are no port", text)
        self.assertRegex(text, r"db on h1, if-db-2 \(mac 52:54:00:00:00:12\): mac: MAC "
                               r"52:54:00:00:00:12 is already used in VNI 200 by port hand")
        self.assertRegex(text, r"if-db-1 .*held back")
        self.assertEqual(c.request("GET", "/v1/ports/if-db-1")[0], 404, "all or none")
        audit = c.request("GET", "/v1/audit")[1]
        self.assertTrue(any(e.get("event") == "inventory_refused" and e.get("iface_id") == "if-db-2"
                            and e.get("field") == "mac" for e in audit), audit)
        # The hand-made port goes: both NICs of db become ports together.
        self.assertEqual(c.request("DELETE", "/v1/ports/hand")[0], 204)
        wait_until("db's ports", lambda: c.request("GET", "/v1/ports/if-db-2")[0] == 200)
        self.assertEqual(c.request("GET", "/v1/ports/if-db-1")[1]["network"], "blue")
        self.assertEqual(c.request("GET", "/v1/ports/if-db-2")[1]["network"], "red")
        mappings, _ = self.ctl(c, "mappings", "list")
        self.assertEqual(mappings, [{"libvirt_network": "prod", "network": "blue",
                                     "portgroups": {"backend": "red"}}])
        # Bad input is named, and stores nothing.
        _, r = self.ctl(c, "mappings", "set", "lab", "--network", "nope", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("network: no network 'nope'", r.stderr)
        _, r = self.ctl(c, "mappings", "set", "lab", "--portgroups", "x", ok=False)
        self.assertIn("--portgroups: expected k=v", r.stderr)
        self.assertEqual(len(self.ctl(c, "mappings", "list")[0]), 1)
        # web stops running: its port is retired after the grace; db's stay.
        agent.report({"db": db})
        wait_until("if-web retired", lambda: c.request("GET", "/v1/ports/if-web")[0] == 404,
                   timeout=10)
        self.assertEqual(c.request("GET", "/v1/ports/if-db-1")[0], 200)
        self.assertTrue(any(e.get("event") == "inventory_retired" and e.get("port") == "if-web"
                            for e in c.request("GET", "/v1/audit")[1]))

    def test_mappings_and_made_ports_survive_a_restart(self):
        c = self.start()
        self.assertEqual(c.request("POST", "/v1/networks", {"id": "blue", "vni": 100})[0], 201)
        self.assertEqual(c.request("PUT", "/v1/network-mappings/prod", {"network": "blue"})[0], 200)
        agent = Agent(c.port)
        agent.report({"web": [{"iface_id": "if-1", "mac": "52:54:00:00:00:01",
                               "libvirt_network": "prod"}]})
        wait_until("port if-1", lambda: c.request("GET", "/v1/ports/if-1")[0] == 200)
        agent.close()
        db = os.path.join(c.dir, "c.db")
        c.proc.kill()
        c.proc.wait()
        c2 = self.start(db=db)
        self.assertEqual(c2.request("GET", "/v1/network-mappings/prod")[1]["network"], "blue")
        self.assertEqual(c2.request("GET", "/v1/ports/if-1")[1]["labels"]["origin"], "libvirt")
        # No agent has reported since the restart: nothing is judged, nothing retired.
        self.assertEqual(c2.request("GET", "/v1/inventory")[1], [])


def main():
    global BUILD
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    BUILD = os.path.abspath(sys.argv[1])
    limits.BUILD = BUILD
    prog = unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[2:], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
