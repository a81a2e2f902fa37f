#!/usr/bin/env python3
"""cutoverctl's bash completion, run in bash: the script the build generated (from cutoverctl's
own usage and flags) completes commands, verbs and flags, and never offers a command where a
flag's value goes.

Usage: completion_test.py BUILD_DIR   (exit 77 = skipped, with the reason printed)
"""
import os
import shutil
import subprocess
import sys
import unittest

SCRIPT = None
CTL = None


def complete(line):
    """COMPREPLY for the command line `line` (the cursor at its end)."""
    words = line.split(" ")
    prog = (f"source {SCRIPT}\n"
            f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
            f"COMP_CWORD={len(words) - 1}\n"
            "_cutoverctl\n"
            "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    res = subprocess.run(["bash", "-c", prog], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return sorted(w for w in res.stdout.split("\n") if w)


class Completion(unittest.TestCase):
    def test_commands_verbs_and_flags(self):
        self.assertEqual(complete("cutoverctl po"), ["ports"])
        self.assertEqual(complete("cutoverctl mi"), ["migrate", "migrations"])
        self.assertEqual(complete("cutoverctl ports "),
                         ["create", "delete", "list", "place", "show"])
        self.assertEqual(complete("cutoverctl migrations "),
                         ["approve", "cancel", "create", "list", "measure", "show"])
        self.assertEqual(complete("cutoverctl mappings s"), ["set", "show"])
        self.assertEqual(complete("cutoverctl ports create --to-"), ["--to-vm"])
        self.assertIn("--from-vm", complete("cutoverctl ports create --"))

    def test_each_command_offers_its_own_flags(self):
        self.assertNotIn("--vni", complete("cutoverctl hosts create --"))
        self.assertIn("--underlay-ip", complete("cutoverctl hosts create --"))
        self.assertEqual(complete("cutoverctl pki issue --r"), ["--role"])
        # The global flags are offered everywhere, after the command too.
        self.assertIn("--json", complete("cutoverctl migrations list --"))
        self.assertEqual(complete("cutoverctl migrations "),
                         ["approve", "cancel", "create", "list", "measure", "show"])

    def test_a_flags_value_is_not_a_command(self):
        # --controller takes a value: the next word is no command, the one after is.
        self.assertEqual(complete("cutoverctl --controller "), [])
        self.assertEqual(complete("cutoverctl --controller http://c:8180 ho"), ["hosts"])
        self.assertEqual(complete("cutoverctl --json ho"), ["hosts"])  # a switch takes none
        self.assertEqual(complete("cutoverctl ports list "), [])  # past the verb: operands


class CommandLine(unittest.TestCase):
    """cutoverctl's command tree: per-command help, --version, refusals naming the command."""

    def run_ctl(self, *args):
        return subprocess.run([CTL] + list(args), capture_output=True, text=True, timeout=10)

    def test_per_command_help_and_version(self):
        r = self.run_ctl("ports", "create", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("Usage: cutoverctl ports create [OPTIONS]", r.stdout)
        self.assertIn("--to-vm", r.stdout)
        self.assertNotIn("--vni", r.stdout)
        r = self.run_ctl("migrate", "--help")
        self.assertIn("PORT|VM", r.stdout)
        self.assertIn("--bandwidth-mib-s", r.stdout)
        top = self.run_ctl("--help").stdout
        for command in ("hosts", "ports", "migrate", "mappings", "pki", "completion"):
            self.assertRegex(top, rf"\n  {command} +\S")
        self.assertIn("--token-file", self.run_ctl("--help-all").stdout)
        self.assertIn("--portgroups", self.run_ctl("--help-all").stdout)
        r = self.run_ctl("--version")
        self.assertRegex(r.stdout, r"^cutoverctl \d+\.\d+\.\d+\n$")

    def test_refusals_name_the_command_and_the_flag(self):
        r = self.run_ctl("hosts", "create", "--vni", "3")
        self.assertEqual(r.returncode, 2)
        self.assertIn("hosts create:", r.stderr)
        self.assertIn("--vni", r.stderr)
        r = self.run_ctl("ports", "frobnicate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("frobnicate", r.stderr)
        r = self.run_ctl("migrate", "--to", "h2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("PORT|VM", r.stderr)
        r = self.run_ctl("completion", "zsh")
        self.assertEqual(r.returncode, 2)
        self.assertIn("zsh", r.stderr)


def main():
    global SCRIPT, CTL
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    SCRIPT = os.path.join(sys.argv[1], "completion", "cutoverctl")
    CTL = os.path.join(sys.argv[1], "cli", "cutoverctl")
    if not shutil.which("bash"):
        print("skipped: no bash")
        return 77
    if not os.path.exists(SCRIPT):
        print(f"{SCRIPT} missing: build the cutoverctl_completion target")
        return 1
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
