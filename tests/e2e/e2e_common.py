"""What the e2e tests share: the check that this machine can run real guests under libvirt (root,
QEMU, libvirt, OVS, busybox, a guest kernel) - else exit 77, which ctest reports as skipped with
the reason - and running the test case verbosely."""
import os
import shutil
import sys
import unittest


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces, OVS, libvirt)")
        return 77
    for tool in ("qemu-system-x86_64", "libvirtd", "virsh", "ovs-vswitchd", "busybox", "cpio"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"SKIP: {tool} not installed (run scripts/install-deps)")
            return 77
    if not os.listdir("/lib/modules") if os.path.isdir("/lib/modules") else True:
        print("SKIP: no guest kernel in /lib/modules (linux-image-amd64; scripts/install-deps)")
        return 77
    prog = unittest.main(module="__main__", argv=[sys.argv[0], "-v"], exit=False)
    return 0 if prog.result.wasSuccessful() else 1
