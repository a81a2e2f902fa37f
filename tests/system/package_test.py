#!/usr/bin/env python3
"""Packaging test: builds the three .deb packages with CPack from the current build, unpacks
them into a throwaway root (dpkg -x), checks the files, the conffiles and the dependencies,
verifies the systemd units (systemd-analyze verify), starts every binary from the unpacked root
with --help, and runs lintian (no errors or warnings allowed). Then the packages' life with dpkg in a
throwaway root (dpkg --root: maintainer scripts run chrooted, with busybox as their shell and
stand-ins for systemctl and deb-systemd-helper/-invoke that record their calls): install
(enabled, daemon-reload), upgrade to a newer version (restarted if running), remove (stopped;
conffiles kept), purge (conffiles and the controller's state gone).

Usage: package_test.py BUILD_DIR SOURCE_DIR   (exit 77 = skipped, with the reason printed)
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

BUILD = SOURCE = None


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


class Packages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cutover-pkg-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        res = run("cpack", "-G", "DEB", "-B", cls.tmp, cwd=BUILD)
        assert res.returncode == 0, res.stdout + res.stderr
        cls.debs = {name.split("_")[0]: os.path.join(cls.tmp, name)
                    for name in os.listdir(cls.tmp) if name.endswith(".deb")}
        cls.root = os.path.join(cls.tmp, "root")
        for deb in cls.debs.values():
            res = run("dpkg", "-x", deb, cls.root)
            assert res.returncode == 0, res.stderr

    def field(self, pkg, name):
        return run("dpkg-deb", "-f", self.debs[pkg], name).stdout.strip()

    def test_three_packages_with_their_files(self):
        self.assertEqual(sorted(self.debs), ["cutover-agent", "cutover-controller", "cutoverctl"])
        for path in ("usr/bin/cutover-agent", "usr/bin/cutover-controller", "usr/bin/cutoverctl",
                     "lib/systemd/system/cutover-agent.service",
                     "lib/systemd/system/cutover-controller.service",
                     "etc/cutover/agent.conf", "etc/cutover/controller.conf",
                     "usr/share/doc/cutover-agent/copyright",
                     "usr/share/doc/cutover-controller/api.md",
                     "usr/share/doc/cutover-controller/openapi.yaml",
                     "usr/share/doc/cutoverctl/changelog.gz",
                     "usr/share/man/man1/cutover-agent.1.gz",
                     "usr/share/man/man1/cutover-libvirt-hook.1.gz",
                     "usr/share/man/man1/cutover-nvme-probe.1.gz",
                     "usr/share/man/man1/cutover-controller.1.gz",
                     "usr/share/man/man1/cutoverctl.1.gz",
                     "usr/share/cutover/grafana/cutover-dashboard.json",
                     "usr/share/bash-completion/completions/cutoverctl"):
            self.assertTrue(os.path.exists(os.path.join(self.root, path)), path)
        conffiles = run("dpkg-deb", "--ctrl-tarfile", self.debs["cutover-agent"])
        self.assertEqual(conffiles.returncode, 0)

    def test_tls_files_reach_the_services_as_credentials(self):
        for pkg, unit, conf in (("cutover-agent", "cutover-agent.service", "agent.conf"),
                                ("cutover-controller", "cutover-controller.service",
                                 "controller.conf")):
            # Made root-only by postinst (shipped, a 0700 directory is a lintian warning); the
            # life-cycle test checks it exists after an install.
            postinst = run("dpkg-deb", "--info", self.debs[pkg], "postinst").stdout
            self.assertIn("mkdir -p /etc/cutover/tls\n  chmod 0700 /etc/cutover/tls", postinst)
            with open(os.path.join(self.root, "lib/systemd/system", unit)) as f:
                self.assertIn("LoadCredential=tls:/etc/cutover/tls\n", f.read())
            # The commented paths in the config name the credentials the unit creates.
            with open(os.path.join(self.root, "etc/cutover", conf)) as f:
                keys = [line for line in f if line.startswith("#tls-key = ")]
            self.assertEqual(keys, [f"#tls-key = /run/credentials/{unit}/tls_"
                                    f"{pkg.split('-')[1]}.key\n"])

    def test_dependencies(self):
        agent = self.field("cutover-agent", "Depends")
        self.assertIn("libspdlog1.10", agent)
        self.assertIn("openvswitch-switch", self.field("cutover-agent", "Recommends"))
        self.assertIn("libsqlite3-0", self.field("cutover-controller", "Depends"))

    def test_config_files_parse_and_binaries_start(self):
        env = dict(os.environ, PATH=os.path.join(self.root, "usr/bin") + ":" + os.environ["PATH"])
        for binary in ("cutover-agent", "cutover-controller", "cutoverctl"):
            res = run(os.path.join(self.root, "usr/bin", binary), "--help", env=env)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertIn("Usage:", res.stdout)
        # The shipped config files are accepted option for option (the help exits before any
        # connection is attempted).
        for binary, conf in (("cutover-agent", "agent.conf"), ("cutover-controller", "controller.conf")):
            res = run(os.path.join(self.root, "usr/bin", binary), "--config",
                      os.path.join(self.root, "etc/cutover", conf), "--help")
            self.assertEqual(res.returncode, 0, res.stderr)

    def test_agent_says_precisely_what_is_wrong(self):
        agent = os.path.join(self.root, "usr/bin/cutover-agent")
        state = os.path.join(self.tmp, "state.json")
        with open(state, "w") as f:
            f.write('{"generation": 1, "host": "h"}')
        res = run(agent, "--ovs-rundir", "/nonexistent-ovs", "--desired-state", state)
        self.assertEqual(res.returncode, 1)
        self.assertIn("Open vSwitch not reachable", res.stderr)
        self.assertIn("/nonexistent-ovs/db.sock", res.stderr)
        res = run(agent, "--controller", "ws://127.0.0.1:9", "--underlay-ip", "192.0.2.77")
        self.assertEqual(res.returncode, 2)
        self.assertIn("--token-file", res.stderr)
        token = os.path.join(self.tmp, "token")
        with open(token, "w") as f:
            f.write("t\n")
        res = run(agent, "--controller", "ws://127.0.0.1:9", "--token-file", token,
                  "--underlay-ip", "192.0.2.77", "--ovs-rundir", "/nonexistent-ovs")
        self.assertEqual(res.returncode, 1)
        self.assertIn("underlay IP 192.0.2.77", res.stderr)
        res = run(agent, "--ovs-rundir", "/nonexistent-ovs", "--desired-state", state,
                  "--libvirt-uri", "qemu+tcp://127.0.0.1:9/system")
        self.assertEqual(res.returncode, 1)
        self.assertIn("libvirt not reachable at qemu+tcp://127.0.0.1:9/system", res.stderr)
        res = run(agent, "--controller", "ws://127.0.0.1:9", "--token-file", token,
                  "--underlay-ip", "not-an-ip")
        self.assertEqual(res.returncode, 2)
        self.assertIn("--underlay-ip", res.stderr)

    def test_systemd_units_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze not installed")
        units = os.path.join(self.tmp, "units")
        os.makedirs(units, exist_ok=True)
        for unit in ("cutover-agent.service", "cutover-controller.service"):
            # Verify against this machine's systemd, with ExecStart pointing into the unpacked
            # root (verify checks that the command exists and is executable).
            with open(os.path.join(self.root, "lib/systemd/system", unit)) as f:
                text = f.read().replace("ExecStart=/usr/bin/",
                                        f"ExecStart={self.root}/usr/bin/")
            path = os.path.join(units, unit)
            with open(path, "w") as f:
                f.write(text)
            res = run("systemd-analyze", "verify", "--man=no", path)
            problems = [line for line in (res.stdout + res.stderr).splitlines() if unit in line]
            self.assertEqual(problems, [], "\n".join(problems))
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_install_upgrade_remove_purge(self):
        busybox = shutil.which("busybox")
        if not busybox:
            self.skipTest("busybox-static not installed (the maintainer scripts' shell)")
        root = os.path.join(self.tmp, "dpkg-root")
        for d in ("bin", "dev", "run/systemd/system", "var/lib/dpkg/info", "var/lib/dpkg/updates",
                  "var/lib/cutover", "tmp"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.mknod(os.path.join(root, "dev/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
        shutil.copy(busybox, os.path.join(root, "bin/busybox"))
        for applet in ("sh", "rm", "cat", "mkdir"):
            os.symlink("busybox", os.path.join(root, "bin", applet))
        log = os.path.join(root, "calls.log")
        for tool in ("systemctl", "deb-systemd-helper", "deb-systemd-invoke"):
            path = os.path.join(root, "bin", tool)
            with open(path, "w") as f:  # a stand-in: records the call; was-enabled says yes
                f.write(f"#!/bin/sh\necho \"{tool} $*\" >> /calls.log\nexit 0\n")
            os.chmod(path, 0o755)

        def dpkg(*args):
            # --force-depends: the root has none of the libraries; only the scripts run there.
            res = run("dpkg", f"--root={root}", "--force-depends", *args,
                      env=dict(os.environ, PATH="/usr/sbin:/usr/bin:/sbin:/bin"))
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            return res

        def calls():
            text = open(log).read() if os.path.exists(log) else ""
            open(log, "w").close()
            return text

        daemons = [self.debs["cutover-agent"], self.debs["cutover-controller"]]
        dpkg("-i", *daemons)
        first = calls()
        for unit in ("cutover-agent.service", "cutover-controller.service"):
            self.assertIn(f"deb-systemd-helper enable {unit}", first)
            self.assertNotIn(f"try-restart {unit}", first, "a first install starts nothing")
        self.assertIn("systemctl --system daemon-reload", first)
        self.assertTrue(os.path.exists(os.path.join(root, "usr/bin/cutover-agent")))
        tls = os.stat(os.path.join(root, "etc/cutover/tls"))
        self.assertEqual(stat.S_IMODE(tls.st_mode), 0o700)

        # A newer version of the same packages: an upgrade restarts what was running.
        newer = []
        for deb in daemons:
            unpacked = deb + ".newer"
            self.assertEqual(run("dpkg-deb", "-R", deb, unpacked).returncode, 0)
            control = os.path.join(unpacked, "DEBIAN", "control")
            text = open(control).read()
            version = next(line.split(": ", 1)[1] for line in text.splitlines()
                           if line.startswith("Version: "))
            with open(control, "w") as f:
                f.write(text.replace(f"Version: {version}", f"Version: {version}+1"))
            out = deb.replace(".deb", "-newer.deb")
            self.assertEqual(run("dpkg-deb", "--root-owner-group", "-b", unpacked, out).returncode, 0)
            newer.append(out)
        dpkg("-i", *newer)
        upgrade = calls()
        for unit in ("cutover-agent.service", "cutover-controller.service"):
            self.assertIn(f"deb-systemd-invoke try-restart {unit}", upgrade)
            self.assertNotIn(f"deb-systemd-invoke stop {unit}", upgrade)
        status = run("dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Version}",
                     "cutover-agent").stdout
        self.assertTrue(status.endswith("+1"), status)

        # Remove: stopped, binaries gone, conffiles and state kept.
        db = os.path.join(root, "var/lib/cutover/controller.db")
        open(db, "w").close()
        dpkg("-r", "cutover-agent", "cutover-controller")
        removed = calls()
        for unit in ("cutover-agent.service", "cutover-controller.service"):
            self.assertIn(f"deb-systemd-invoke stop {unit}", removed)
        self.assertFalse(os.path.exists(os.path.join(root, "usr/bin/cutover-agent")))
        self.assertTrue(os.path.exists(os.path.join(root, "etc/cutover/agent.conf")))
        self.assertTrue(os.path.exists(db))
        # Purge: conffiles, enablement state and the controller's store go.
        dpkg("-P", "cutover-agent", "cutover-controller")
        purged = calls()
        self.assertIn("deb-systemd-helper purge cutover-controller.service", purged)
        self.assertFalse(os.path.exists(os.path.join(root, "etc/cutover/agent.conf")))
        self.assertFalse(os.path.exists(os.path.join(root, "var/lib/cutover")))
        self.assertFalse(os.path.exists(os.path.join(root, "etc/cutover")), "empty: gone")

    def test_agent_names_the_openvswitch_it_was_built_with(self):
        built_using = self.field("cutover-agent", "Built-Using")
        self.assertRegex(built_using, r"^openvswitch \(= [0-9][^)]*\)$")
        self.assertEqual(self.field("cutover-agent", "Maintainer"),
                         "cutover developers <maintainers@cutover.dev>")

    def test_lintian_clean_at_warning_level(self):
        res = run("lintian", "--fail-on", "warning", "--suppress-tags-from-file",
                  os.path.join(SOURCE, "packaging", "lintian-suppress"), *self.debs.values())
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertNotIn("\nE: ", "\n" + res.stdout)
        self.assertNotIn("\nW: ", "\n" + res.stdout)


def main():
    global BUILD, SOURCE
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    BUILD, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    for tool in ("cpack", "dpkg-deb", "lintian"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} not installed (run scripts/install-deps)")
            return 77
    prog = unittest.main(argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
