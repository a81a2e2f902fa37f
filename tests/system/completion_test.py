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
                         ["approve", "cancel", "create", "list", "show"])
        self.assertEqual(complete("cutoverctl mappings s"), ["set", "show"])
        self.assertEqual(complete("cutoverctl ports create --to-"), ["--to-vm"])
        self.assertIn("--from-vm", complete("cutoverctl ports create --"))

    def test_a_flags_value_is_not_a_command(self):
        # --controller takes a value: the next word is no command, the one after is.
        self.assertEqual(complete("cutoverctl --controller "), [])
        self.assertEqual(complete("cutoverctl --controller http://c:8180 ho"), ["hosts"])
        self.assertEqual(complete("cutoverctl --json ho"), ["hosts"])  # a switch takes none
        self.assertEqual(complete("cutoverctl ports list "), [])  # past the verb: operands


def main():
    global SCRIPT
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    SCRIPT = os.path.join(sys.argv[1], "completion", "cutoverctl")
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
