#!/usr/bin/env python3
"""System test for the agent's OpenFlow path (OvsFlowSwitch) on a real userspace-datapath bridge:
flows given unparsed, as into an empty table, are parsed while the bundle streams; all of them
land, and one malformed flow far into the stream (after the first chunks went out) fails the
whole bundle, names the flow, and leaves the bridge without any of them.

Usage: ovs_flow_switch_test.py PROBE_BINARY   (exit 77 = skipped, with the reason printed)
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from cutover_lab.netlab import Lab, missing  # noqa: E402

PROBE = None


class OvsFlowSwitch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lab = Lab("flowsw")
        cls.lab.__enter__()
        cls.addClassCleanup(cls.lab.__exit__, None, None, None)
        cls.host = cls.lab.add_host("h1")
        cls.host.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int",
                       "datapath_type=netdev", "fail_mode=secure",
                       "protocols=OpenFlow10,OpenFlow13,OpenFlow14,OpenFlow15")

    def probe(self, *args):
        """Runs the probe on an empty table: its first bundle, then 100 flows on the same
        connection."""
        self.host.ofctl("del-flows", self.host.mgmt())
        res = self.host.exec(PROBE, self.host.mgmt(), "install", *map(str, args), check=False,
                             env=self.host.env)
        self.assertEqual(res.returncode, 0, res.stderr)
        return json.loads(res.stdout)

    def test_unparsed_flows_all_land(self):
        r = self.probe(20000)
        self.assertEqual(r["first"], {"error": "", "installed": 20000})
        self.assertEqual(r["then"], {"error": "", "installed": 20100})

    def test_a_malformed_flow_late_in_the_stream_applies_nothing(self):
        # A BUNDLE_ADD of these flows is ~115 bytes: flow 15,000 is several 256 KiB chunks in.
        r = self.probe(20000, 15000)
        print(f"\n  error: {r['first']['error'][:160]}")
        self.assertIn("no_such_action", r["first"]["error"])
        self.assertEqual(r["first"]["installed"], 0, "a failed bundle left flows behind")
        self.assertEqual(r["then"], {"error": "", "installed": 100},
                         "the next bundle on the same connection must go through")

    def test_a_malformed_first_flow_sends_nothing(self):
        r = self.probe(1000, 0)
        self.assertIn("no_such_action", r["first"]["error"])
        # No bundle was opened, so none is discarded: the switch has nothing to complain of.
        self.assertNotIn("BAD_ID", r["first"]["error"])
        self.assertEqual(r["first"]["installed"], 0)
        self.assertEqual(r["then"], {"error": "", "installed": 100})


def main():
    global PROBE
    why = missing("network namespaces, OVS", ("ovs-vswitchd", "ovsdb-server", "ip"))
    if why:
        print(f"SKIP: {why}")
        return 77
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    PROBE = os.path.abspath(sys.argv.pop(1))
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
