"""The lab's guest: Debian's own kernel, uncompressed (boots in ~2 s under TCG instead of ~5 s:
no xz decompression in emulation), and a busybox-static initramfs with the virtio-net modules,
a UDP echo and a TCP echo (static C, built here) and busybox's HTTP server. /init configures eth0
from the kernel command line (vmip=A.B.C.D/NN, vmmtu=N), starts both echo servers on port 7 and
serves /www on port 80 (index.html names the guest and its address). Built once into
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
# Loaded on demand by /init (with their dependencies from modules.dep, in order): an NVMe/TCP
# target (nvmet=NQN on the command line) or an NVMe/TCP initiator (nvmeconn=TRADDR,NQN,...).
STORAGE_MODULES = {"target": ["nvmet", "nvmet-tcp"], "host": ["nvme-core", "nvme-fabrics", "nvme-tcp"]}
INIT = r"""#!/bin/busybox sh
# cutover lab guest init: eth0 from the kernel command line, UDP and TCP echo on port 7.
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
vmip= vmip2= vmmtu=1450 nvmet= nvmeconn=
for kv in $(cat /proc/cmdline); do
  case $kv in vmip=*|vmip2=*|vmmtu=*|nvmet=*|nvmeconn=*) eval "${kv%%=*}='${kv#*=}'" ;; esac
done
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "init: insmod $m failed"; done
ip link set lo up
i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done
ip link set eth0 mtu "$vmmtu"
ip link set eth0 up
[ -n "$vmip" ] && ip addr add "$vmip" dev eth0
# A second NIC (the lab's two-NIC VM, on another network and subnet): the echo servers listen on
# every address, so each NIC is measured on its own.
if [ -n "$vmip2" ]; then
  i=0; while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done
  ip link set eth1 mtu "$vmmtu"
  ip link set eth1 up
  ip addr add "$vmip2" dev eth1
fi
# UDP's global memory cap (sized from this small guest's RAM, ~14-20 MB) dropped a backlog the
# echo server's socket buffer (32 MiB) would hold, after a migration's slow TCG start (MemErrors):
# let the socket buffer be the limit.
echo "16384 32768 49152" > /proc/sys/net/ipv4/udp_mem
/bin/udpecho 7 &
/bin/tcpecho 7 &
mkdir -p /www && echo "cutover lab guest $vmip" > /www/index.html
/bin/busybox httpd -p 80 -h /www
if [ -n "$nvmet" ]; then
  # NVMe/TCP target: one namespace backed by a 16 MiB file in RAM (buffered: no O_DIRECT on
  # tmpfs), any host allowed, listening on our address, port 4420.
  for m in $(cat /lib/modules/target.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
  mount -t configfs none /sys/kernel/config
  dd if=/dev/zero of=/tmp/vol.img bs=1M count=16 2>/dev/null
  sub=/sys/kernel/config/nvmet/subsystems/$nvmet
  mkdir $sub && echo 1 > $sub/attr_allow_any_host
  mkdir $sub/namespaces/1
  echo /tmp/vol.img > $sub/namespaces/1/device_path
  echo 1 > $sub/namespaces/1/buffered_io
  echo c07e0000-0000-4000-8000-000000000001 > $sub/namespaces/1/device_nguid
  echo 1 > $sub/namespaces/1/enable
  port=/sys/kernel/config/nvmet/ports/1
  mkdir $port
  echo tcp > $port/addr_trtype; echo ipv4 > $port/addr_adrfam
  echo "${vmip%/*}" > $port/addr_traddr; echo 4420 > $port/addr_trsvcid
  ln -s $sub $port/subsystems/$nvmet && echo "CUTOVER-NVMET-READY nqn=$nvmet"
fi
if [ -n "$nvmeconn" ]; then
  # NVMe/TCP initiator: TRADDR,NQN,REPORT_IP,REPORT_PORT. keep_alive_tmo=30 so that a migration's
  # pause never costs a controller reconnect; reconnect_delay=1 if one is needed anyway.
  for m in $(cat /lib/modules/host.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
  IFS=, read traddr nqn rip rport <<EOF2
$nvmeconn
EOF2
  (i=0; until echo "transport=tcp,traddr=$traddr,trsvcid=4420,nqn=$nqn,keep_alive_tmo=30,reconnect_delay=1,ctrl_loss_tmo=600" > /dev/nvme-fabrics 2>/dev/null; do
     i=$((i+1)); [ $i -gt 300 ] && echo "CUTOVER-NVME-FAILED" && exit 1; sleep 1; done
   i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 500 ]; do usleep 10000; i=$((i+1)); done
   echo "CUTOVER-NVME-READY"
   exec /bin/nvmeio /dev/nvme0n1 "$rip" "$rport") &
fi
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
    for name, static in (("udpecho", True), ("tcpecho", True), ("nvmeio", True),
                         ("subreaper", False)):
        src, out = os.path.join(HERE, "csrc", name + ".c"), os.path.join(bindir, name)
        if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
            subprocess.run(["gcc", "-O2", "-Wall", "-Werror", *(["-static", "-s"] if static else []),
                            "-o", out, src], check=True)
    inputs = [vmlinuz, __file__] + [os.path.join(bindir, n) for n in ("udpecho", "tcpecho", "nvmeio")]
    if os.path.exists(initrd) and os.path.getmtime(initrd) >= max(os.path.getmtime(p) for p in inputs):
        return vmlinux, initrd, bindir
    log("building the guest initramfs (busybox-static, virtio-net, echo servers)")
    moddir = f"/lib/modules/{kver}"
    deps = open(os.path.join(moddir, "modules.dep")).read().splitlines()
    with tempfile.TemporaryDirectory() as root:
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "etc",
                  "lib/modules"):
            os.makedirs(os.path.join(root, d))
        shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
        for name in ("udpecho", "tcpecho", "nvmeio"):
            shutil.copy(os.path.join(bindir, name), os.path.join(root, "bin", name))
        by_name = {}
        for line in deps:
            path, _, rest = line.partition(":")
            by_name[os.path.basename(path).split(".ko")[0]] = (path, rest.split())

        def ordered(names):
            """names with their dependencies, each after what it needs (depth-first)."""
            out = []

            def visit(n):
                if n not in by_name:
                    raise RuntimeError(f"module {n} not in {moddir}/modules.dep")
                for d in by_name[n][1]:
                    visit(os.path.basename(d).split(".ko")[0])
                if n not in out:
                    out.append(n)
            for n in names:
                visit(n)
            return out
        orders = {"order": ordered(MODULES)}
        for role, names in STORAGE_MODULES.items():
            orders[role + ".order"] = ordered(names)
        for m in sorted(set(sum(orders.values(), []))):
            rel = by_name[m][0]
            src, dst = os.path.join(moddir, rel), os.path.join(root, "lib/modules", m + ".ko")
            if rel.endswith(".ko"):
                shutil.copy(src, dst)
            else:  # busybox insmod wants a plain .ko
                tool = {"xz": "xz", "zst": "zstd", "gz": "gzip"}[rel.rsplit(".", 1)[1]]
                with open(dst, "wb") as f:
                    subprocess.run([tool, "-dc", src], stdout=f, check=True)
        for name, mods in orders.items():
            with open(os.path.join(root, "lib/modules", name), "w") as f:
                f.write("\n".join(mods) + "\n")
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
