"""The lab's guest: Debian's own kernel, uncompressed (boots in ~2 s under TCG instead of ~5 s:
no xz decompression in emulation), and a busybox-static initramfs with the virtio-net modules,
a UDP echo and a TCP echo (static C, built here). /init configures eth0 from the kernel command
line (vmip=A.B.C.D/NN, vmmtu=N) and starts both echo servers on port 7. Built once into
build/lab/guest and reused while its inputs are unchanged."""
import glob
import gzip
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = ["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
           "failover", "net_failover", "virtio_net"]
INIT = r"""#!/bin/busybox sh
# cutover lab guest init: eth0 from the kernel command line, UDP and TCP echo on port 7.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
vmip= vmmtu=1450
for kv in $(cat /proc/cmdline); do
  case $kv in vmip=*|vmmtu=*) eval "${kv%%=*}='${kv#*=}'" ;; esac
done
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "init: insmod $m failed"; done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done
ip link set eth0 mtu "$vmmtu"
ip link set eth0 up
[ -n "$vmip" ] && ip addr add "$vmip" dev eth0
/bin/udpecho 7 &
/bin/tcpecho 7 &
echo "CUTOVER-GUEST-READY uptime=$(cut -d' ' -f1 /proc/uptime) ip=$vmip"
while :; do sleep 3600; done
"""


def kernel_version():
    versions = sorted(os.listdir("/lib/modules"))
    if not versions:
        raise RuntimeError("no kernel in /lib/modules: install linux-image-amd64 (scripts/install-deps)")
    return versions[-1]


def extract_vmlinux(vmlinuz, out):
    """Finds the compressed payload in a bzImage and decompresses it to an ELF (the idea of the
    kernel's scripts/extract-vmlinux)."""
    data = open(vmlinuz, "rb").read()
    for magic, cmd in ((b"\xfd7zXZ\x00", ["xz", "-dc", "--single-stream"]),
                       (b"\x28\xb5\x2f\xfd", ["zstd", "-dc"]), (b"\x1f\x8b\x08", ["gzip", "-dc"])):
        pos = data.find(magic)
        while pos >= 0:
            res = subprocess.run(cmd, input=data[pos:], capture_output=True)
            if res.stdout[:4] == b"\x7fELF":
                with open(out + ".tmp", "wb") as f:
                    f.write(res.stdout)
                os.rename(out + ".tmp", out)
                return
            pos = data.find(magic, pos + 1)
    raise RuntimeError(f"no compressed ELF payload found in {vmlinuz}")


def build(outdir, log=print):
    """Returns (vmlinux, initrd, bindir); rebuilds only what is stale."""
    kver = kernel_version()
    vmlinuz = f"/boot/vmlinuz-{kver}"
    os.makedirs(outdir, exist_ok=True)
    vmlinux = os.path.join(outdir, "vmlinux")
    initrd = os.path.join(outdir, "initrd.cpio.gz")
    bindir = os.path.join(outdir, "bin")
    os.makedirs(bindir, exist_ok=True)
    if not os.path.exists(vmlinux) or os.path.getmtime(vmlinux) < os.path.getmtime(vmlinuz):
        log(f"extracting the uncompressed kernel from {vmlinuz}")
        extract_vmlinux(vmlinuz, vmlinux)
    for name, static in (("udpecho", True), ("tcpecho", True), ("subreaper", False)):
        src, out = os.path.join(HERE, "csrc", name + ".c"), os.path.join(bindir, name)
        if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
            subprocess.run(["gcc", "-O2", "-Wall", "-Werror", *(["-static", "-s"] if static else []),
                            "-o", out, src], check=True)
    inputs = [vmlinuz, __file__, os.path.join(bindir, "udpecho"), os.path.join(bindir, "tcpecho")]
    if os.path.exists(initrd) and os.path.getmtime(initrd) >= max(os.path.getmtime(p) for p in inputs):
        return vmlinux, initrd, bindir
    log("building the guest initramfs (busybox-static, virtio-net, echo servers)")
    moddir = f"/lib/modules/{kver}"
    deps = open(os.path.join(moddir, "modules.dep")).read().splitlines()
    with tempfile.TemporaryDirectory() as root:
        for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "lib/modules"):
            os.makedirs(os.path.join(root, d))
        shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
        for name in ("udpecho", "tcpecho"):
            shutil.copy(os.path.join(bindir, name), os.path.join(root, "bin", name))
        for m in MODULES:
            rel = next((line.split(":")[0] for line in deps
                        if os.path.basename(line.split(":")[0]).split(".ko")[0] == m), None)
            if not rel:
                raise RuntimeError(f"module {m} not in {moddir}/modules.dep")
            src, dst = os.path.join(moddir, rel), os.path.join(root, "lib/modules", m + ".ko")
            if rel.endswith(".ko"):
                shutil.copy(src, dst)
            else:  # busybox insmod wants a plain .ko
                tool = {"xz": "xz", "zst": "zstd", "gz": "gzip"}[rel.rsplit(".", 1)[1]]
                with open(dst, "wb") as f:
                    subprocess.run([tool, "-dc", src], stdout=f, check=True)
        with open(os.path.join(root, "lib/modules/order"), "w") as f:
            f.write("\n".join(MODULES) + "\n")
        with open(os.path.join(root, "init"), "w") as f:
            f.write(INIT)
        os.chmod(os.path.join(root, "init"), 0o755)
        files = subprocess.run("find . | LC_ALL=C sort", shell=True, cwd=root, capture_output=True,
                               check=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=root,
                              input=files, capture_output=True, check=True).stdout
        with gzip.open(initrd + ".tmp", "wb", compresslevel=6) as f:
            f.write(cpio)
        os.rename(initrd + ".tmp", initrd)
    return vmlinux, initrd, bindir
