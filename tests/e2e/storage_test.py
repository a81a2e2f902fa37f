#!/usr/bin/env python3
"""e2e: NVMe/TCP storage through live migrations. An NVMe/TCP target guest (Debian's kernel,
nvmet + nvmet-tcp, one namespace) runs on h3; vm1's data disk is a volume on it, connected from
inside vm1 (keep_alive_tmo=30, reconnect_delay=1), where a verified 4 KiB write+read loop reports
every I/O to the client on h3. vm1 live-migrates h1 -> h2 -> h1 through cutover.

Asserts: the userspace path probe, run from the client's host namespace against the real target,
finds the volume (its NGUID, ANA optimized) and reports a wrong NQN as a Connect rejection with
sct 1 / sc 0x82, a closed port as refused and an address nobody answers as a timeout; I/O runs
across both migrations with 0 errors and resumes after each (the stall is reported, and must stay
under 3 s: measured 275-350 ms here and 137-629 ms in lab-facts under TCG - the VM's pause, TCG's
slow start and at most one TCP retransmission; a controller reconnect would cost more than 1 s).

Usage: storage_test.py   (exit 77 = skipped, with the reason printed)
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class StorageThroughMigration(unittest.TestCase):
    def test_in_guest_nvme_tcp_volume_survives_migrations(self):
        from cutover_lab import vmlab
        results, text = vmlab.run(cycles=1, baseline=False, prepare=False, external=False,
                                  storage=True, hops=(("h1", "h2"), ("h2", "h1")))
        print(text)
        with open(os.path.join(vmlab.BUILD, "lab", "report", "cutover-report.json")) as f:
            probes = json.load(f)["storage_probe"]
        vol = probes["volume"]
        self.assertTrue(vol["ok"], vol)
        self.assertEqual([n["nguid"] for n in vol["namespaces"]], [vmlab.STOR_NGUID])
        self.assertEqual([g["state"] for g in vol["ana"]], ["optimized"])
        self.assertEqual(probes["wrong_nqn"]["error"], "connect rejected")
        self.assertEqual((probes["wrong_nqn"]["sct"], probes["wrong_nqn"]["sc"]), (1, 0x82))
        self.assertEqual(probes["closed_port"]["error"], "refused")
        self.assertEqual(probes["no_answer"]["error"], "timeout")
        self.assertEqual(len(results), 2)
        for r in results:
            self.assertEqual(r["tcp_survived"], r["tcp_sessions"], r["hop"])
            self.assertEqual(r["io_errors"], 0, f"I/O errors across {r['hop']}")
            self.assertGreater(r["io_completed"], 50, f"I/O did not run across {r['hop']}")
            self.assertLess(r["io_stall_ms"], 3000, f"I/O stalled too long across {r['hop']}")


if __name__ == "__main__":
    from e2e_common import main
    sys.exit(main())
