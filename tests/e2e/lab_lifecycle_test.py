#!/usr/bin/env python3
"""e2e: the persistent lab as a user drives it - `scripts/lab up --hosts 4`, two measured live
migrations of the real guest (h1 -> h3 through cutover by domain name, h3 -> h2 with plain virsh
while cutover follows) after one libvirt refuses (a domain of the same name on h3: rolled back
with libvirt's reason), `report`, `down`; and the same guest on the Linux dataplane
(`up --backend linux`: a plain tap the agent enslaves to the VNI's bridge), migrated h1 -> h2.

Asserts: each command succeeds and the refusals name what is wrong (an unknown host, a second
`up`); both migrations keep every TCP session and land where asked; the report holds both with
their figures; after `down` none of the lab's namespaces and none of its recorded processes is
left (a process that exited but was not yet reaped by init counts as gone), and the state file
is removed. The lab is recorded in a state file of its own (CUTOVER_LAB_STATE), so a lab the user
has up is never touched; `down` runs in tearDown, also when a test fails.

Usage: lab_lifecycle_test.py   (exit 77 = skipped, with the reason printed)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, HERE)
LAB = os.path.join(ROOT, "scripts", "lab")


def alive(pid, start_time):
    from cutover_lab.netlab import _start_time
    return _start_time(pid) == start_time


class LabLifecycle(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cutover-e2e-lab-")
        self.state = os.path.join(self.tmp, "state.json")
        self.env = dict(os.environ, CUTOVER_LAB_STATE=self.state)

    def lab(self, *args, ok=True):
        res = subprocess.run([sys.executable, LAB, *args], env=self.env, capture_output=True,
                             text=True, timeout=600)
        print(f"$ scripts/lab {' '.join(args)} -> {res.returncode}\n{res.stdout}{res.stderr}")
        if ok:
            self.assertEqual(res.returncode, 0, f"scripts/lab {' '.join(args)}: {res.stderr}")
        return res

    def tearDown(self):
        self.addCleanup(shutil.rmtree, self.tmp, True)
        if not os.path.exists(self.state):
            return
        with open(self.state) as f:
            st = json.load(f)
        self.lab("down")
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for ns in st["lab"]["namespaces"]:
            self.assertNotIn(ns, left)
        for p in st["lab"]["procs"]:
            self.assertFalse(alive(p["pid"], p["start_time"]), p)
        self.assertFalse(os.path.exists(self.state))
        self.assertFalse(os.path.exists(st["lab"]["dir"]))

    def test_linux_backend(self):
        self.lab("up", "--no-prepare", "--backend", "linux")
        self.lab("migrate", "vm1", "h2")
        out = os.path.join(self.tmp, "report")
        self.lab("report", "--out", out)
        with open(os.path.join(out, "cutover-report.json")) as f:
            (m,) = json.load(f)["migrations"]
        self.assertEqual((m["mode"], m["hop"]), ("cutover", "h1->h2"))
        self.assertEqual(m["tcp_survived"], m["tcp_sessions"])
        self.assertTrue(m["http_ok"])
        self.assertIn("source_paused", m["timeline"])
        self.assertIsNotNone(m["downtime_ms"], "QEMU did not report a downtime")
        # As on OVS (vm_migration_test): at 1 kpps, what is lost beyond the VM's own pause stays
        # within 100 echoes (measured here: 8-156 lost with 113-202 ms downtime over 6 hops).
        self.assertLessEqual(m["lost"], m["downtime_ms"] + 100)

    def test_up_migrate_report_down(self):
        self.lab("up", "--no-prepare", "--hosts", "4")
        with open(self.state) as f:
            st = json.load(f)
        self.assertEqual([h["name"] for h in st["lab"]["hosts"]], ["h1", "h2", "h3", "h4"])
        again = self.lab("up", "--no-prepare", ok=False)
        self.assertEqual(again.returncode, 2)
        self.assertIn("already up", again.stderr)
        bad = self.lab("migrate", "vm1", "h9", ok=False)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("no host 'h9'", bad.stderr)

        # libvirt refuses: h3 has another domain named vm1. The migration rolls back with
        # libvirt's own words, and vm1 stays up on h1 (the next migration works from there).
        h3 = next(h for h in st["lab"]["hosts"] if h["name"] == "h3")
        xml = os.path.join(self.tmp, "vm1-conflict.xml")
        with open(xml, "w") as f:
            f.write("<domain type='qemu'><name>vm1</name><memory unit='MiB'>64</memory>"
                    "<os><type arch='x86_64'>hvm</type></os></domain>")
        virsh = ["ip", "netns", "exec", h3["ns"], "virsh", "-q", "-c",
                 f"qemu+tcp://{h3['underlay_ip']}/system"]
        subprocess.run(virsh + ["define", xml], check=True, capture_output=True)
        refused = self.lab("migrate", "vm1", "h3", ok=False)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("live migration failed", refused.stderr)
        self.assertIn("already exists", refused.stderr, "libvirt's reason was lost")
        subprocess.run(virsh + ["undefine", "vm1"], check=True, capture_output=True)

        self.lab("migrate", "vm1", "h3")
        self.lab("migrate", "vm1", "h2", "--via", "virsh")
        out = os.path.join(self.tmp, "report")
        rep = self.lab("report", "--out", out)
        self.assertIn("CUTOVER REPORT", rep.stdout)
        with open(os.path.join(out, "cutover-report.json")) as f:
            migrations = json.load(f)["migrations"]
        self.assertEqual([(m["mode"], m["hop"]) for m in migrations],
                         [("cutover", "h1->h3"), ("external", "h3->h2")])
        for m in migrations:
            self.assertEqual(m["tcp_survived"], m["tcp_sessions"], m["hop"])
            self.assertTrue(m["http_ok"], m["hop"])
            self.assertIsNotNone(m["downtime_ms"], m["hop"])
            self.assertLessEqual(m["lost"], m["sent"])
        self.assertTrue(os.path.exists(os.path.join(out, "cutover-report.svg")))


if __name__ == "__main__":
    from e2e_common import main
    sys.exit(main())
