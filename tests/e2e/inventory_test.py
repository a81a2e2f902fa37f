#!/usr/bin/env python3
"""e2e: a VM nobody entered into cutover. A real QEMU guest is started through libvirt on h2 with
cutover's <metadata> element naming its network (no `ports create`); the h2 agent reads the
domain XML and reports its interface, and the controller's inventory makes the port.

Asserts: the port appears placed on h2 with the labels origin=libvirt and vm=vm2, `cutoverctl
inventory` lists the interface with its port, the guest answers the client on h3 (its traffic
crosses the overlay), and it migrates by name through cutover (h2 -> h1) like a hand-entered VM:
completed, the port moved, the guest still answering, and - the agents' default - defined on h1
(VIR_MIGRATE_PERSIST_DEST) although it was started transient; back to h2 with --no-persist it
stays transient there.

Usage: inventory_test.py   (exit 77 = skipped, with the reason printed)
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

VM2_MAC, VM2_IP = "52:54:00:10:00:2a", "10.1.0.42"
VM2_IFACE = "6f1c2a9e-0000-4000-8000-00000000002a"


class Inventory(unittest.TestCase):
    def test_a_vm_defined_in_libvirt_only_gets_its_port_and_migrates(self):
        from cutover_lab import vmhost, vmlab
        from cutover_lab.netlab import Lab, wait_until
        prog = vmlab.Progress(6)
        g = vmlab.get_ready(prog, install_and_build=False)
        with Lab("lab") as lab:
            ctx = vmlab.bring_up(lab, prog, g)
            cli, ctl = ctx["cli"], ctx["ctl"]

            def cutoverctl(*args):
                return json.loads(lab.ctl(ctl, "--json", *args).stdout)

            def port():
                res = lab.ctl(ctl, "--json", "ports", "show", VM2_IFACE, check=False)
                return json.loads(res.stdout) if res.returncode == 0 else None

            def echoes():
                probe = os.path.join(lab.dir, "vm2-probe.json")
                cli.exec(*ctx["traffic"], "udp-probe", VM2_IP, "7", "20", "0.2", probe,
                         env=ctx["env"])
                with open(probe) as f:
                    return json.load(f)["echoed"] > 0

            prog.step("booting vm2 on h2 from libvirt alone (metadata names network blue)")
            t0 = time.monotonic()
            vmhost.start_vm(ctx["libvirt"]["h2"], "vm2", g, VM2_MAC, VM2_IP, VM2_IFACE,
                            network="blue")
            made = wait_until("vm2's port made by the inventory", port, timeout=60)
            print(f"    vm2's port seen {1000 * (time.monotonic() - t0):.0f} ms after `virsh create` "
                  "began (polled through cutoverctl)", flush=True)
            self.assertEqual((made["host"], made["network"], made["mac"]), ("h2", "blue", VM2_MAC))
            self.assertEqual(made["labels"], {"origin": "libvirt", "vm": "vm2"})
            entry = [e for e in cutoverctl("inventory") if e["iface_id"] == VM2_IFACE]
            self.assertEqual(len(entry), 1, entry)
            self.assertEqual(entry[0].get("port"), VM2_IFACE)
            self.assertEqual(entry[0]["vm"], "vm2")
            wait_until("vm2 echoing to the client on h3", echoes, timeout=90, interval=0.2)
            prog.step("migrating vm2 h2 -> h1 by name through cutover")
            m = cutoverctl("migrations", "create", "--vm", "vm2", "--to", "h1")
            done = wait_until("vm2's migration ends", lambda: (lambda x: x["state"] in (
                "completed", "rolled_back") and x)(vmlab.migration_state(lab, ctl, m["id"])),
                timeout=90)
            self.assertEqual(done["state"], "completed", done)
            self.assertEqual(port()["host"], "h1")
            wait_until("vm2 echoing after its migration", echoes, timeout=30, interval=0.2)
            # The agents' default (persist): libvirt defined vm2 on h1, started transient on h2.
            info = ctx["libvirt"]["h1"].virsh("dominfo", "vm2").stdout
            self.assertRegex(info, r"Persistent:\s+yes", info)
            # Asked not to persist, the way back leaves it transient on h2.
            m = cutoverctl("migrations", "create", "--vm", "vm2", "--to", "h2", "--no-persist")
            self.assertEqual(m["libvirt"], {"persist": False})
            done = wait_until("vm2's way back ends", lambda: (lambda x: x["state"] in (
                "completed", "rolled_back") and x)(vmlab.migration_state(lab, ctl, m["id"])),
                timeout=90)
            self.assertEqual(done["state"], "completed", done)
            info = ctx["libvirt"]["h2"].virsh("dominfo", "vm2").stdout
            self.assertRegex(info, r"Persistent:\s+no", info)


if __name__ == "__main__":
    from e2e_common import main
    sys.exit(main())
