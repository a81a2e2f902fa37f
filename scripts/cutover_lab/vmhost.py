"""libvirt per emulated hypervisor, and real QEMU guests on it.

Each host runs its own libvirtd inside its network namespace and a private mount namespace
(private /run, its own /etc/libvirt, /var/lib/libvirt, ... and the host's OVS run directory at
/run/openvswitch, so the ovs-vsctl libvirt runs to plug a VM's tap reaches *this* host's OVS),
listening on the host's underlay address without auth (a lab only), with a distinct host_uuid,
under a subreaper so the QEMUs it orphans are reaped at once. Facts behind each setting:
shared/notes/lab-facts.md ("Real guests and live migration")."""
import os
import subprocess
import time
import uuid

from .netlab import LabError, run, wait_until

WRAPPER = r"""#!/bin/bash
# Runs inside: ip netns exec HOST unshare --mount --uts --propagation private THIS HOSTDIR NAME ADDR
set -euo pipefail
H=$1 NAME=$2 ADDR=$3 SUBREAPER=$4
hostname "$NAME"
mount -t tmpfs -o mode=0755,size=64m tmpfs /run
mkdir -p /run/libvirt /run/openvswitch /run/lock
mount --bind "$H/libvirt/run" /run/libvirt
mount --bind "$H/run" /run/openvswitch
mount --bind "$H/libvirt/etc" /etc/libvirt
mount --bind "$H/libvirt/lib" /var/lib/libvirt
mount --bind "$H/libvirt/cache" /var/cache/libvirt
mount --bind "$H/libvirt/log" /var/log/libvirt
# libvirt's QEMU driver wants its compiled-in user/group to exist even with user="root";
# private copies of passwd/group carry them without touching the real files. libvirt also
# resolves its own host name: answer from a private /etc/hosts.
cp /etc/passwd "$H/libvirt/passwd"; cp /etc/group "$H/libvirt/group"
getent passwd libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin' >> "$H/libvirt/passwd"
getent group libvirt-qemu >/dev/null || echo 'libvirt-qemu:x:64055:' >> "$H/libvirt/group"
getent group kvm >/dev/null || echo 'kvm:x:64056:' >> "$H/libvirt/group"
{ cat /etc/hosts; echo "$ADDR $NAME"; } > "$H/libvirt/hosts"
mount --bind "$H/libvirt/passwd" /etc/passwd
mount --bind "$H/libvirt/group" /etc/group
mount --bind "$H/libvirt/hosts" /etc/hosts
exec "$SUBREAPER" /usr/sbin/libvirtd --listen
"""


class Libvirt:
    def __init__(self, lab, host, bindir, hook=None):
        """hook: cutover-libvirt-hook's path, installed as this daemon's qemu hook (it holds an
        incoming migration until cutover has prepared it), or None."""
        self.lab, self.host, self.bindir, self.hook = lab, host, bindir, hook
        self.dir = os.path.join(host.dir, "libvirt")
        self.uri = f"qemu+tcp://{host.underlay_ip}/system"
        self.proc = None

    def start(self):
        for d in ("run", "etc", "lib", "cache", "log"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        for d in ("/etc/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"):
            os.makedirs(d, exist_ok=True)  # mount points
        addr = self.host.underlay_ip
        # QEMU's migration stream: on the host's migration network when it has one.
        mig = self.host.migration_ip or addr
        with open(os.path.join(self.dir, "etc", "libvirtd.conf"), "w") as f:
            f.write(f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "{addr}"\ntcp_port = "16509"\n'
                    f'auth_tcp = "none"\nauth_unix_ro = "none"\nauth_unix_rw = "none"\n'
                    f'host_uuid = "{uuid.uuid4()}"\n'
                    'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')
        with open(os.path.join(self.dir, "etc", "qemu.conf"), "w") as f:
            f.write('user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
                    'security_driver = "none"\ncgroup_controllers = [ ]\nnamespaces = [ ]\n'
                    f'stdio_handler = "file"\nmigration_address = "{mig}"\nmigration_host = "{mig}"\n')
        hooks = os.path.join(self.dir, "etc", "hooks")
        os.makedirs(hooks, exist_ok=True)
        if self.hook:  # libvirtd looks for hooks when it starts
            with open(os.path.join(hooks, "qemu"), "w") as f:
                f.write(f'#!/bin/sh\nexec {self.hook} --socket {self.host.dir}/agent.sock '
                        '--timeout-ms 5000 "$@"\n')
            os.chmod(os.path.join(hooks, "qemu"), 0o755)
        wrapper = os.path.join(self.dir, "start-libvirtd")
        with open(wrapper, "w") as f:
            f.write(WRAPPER)
        os.chmod(wrapper, 0o755)
        self.proc = self.lab.spawn(self.host.ns, [
            "unshare", "--mount", "--uts", "--propagation", "private", wrapper, self.host.dir,
            f"lab-{self.host.name}", addr, os.path.join(self.bindir, "subreaper")],
            f"{self.host.name}-libvirtd.out")
        self.lab.cleanups.append(self.stop)
        wait_until(f"libvirtd on {self.host.name}", lambda: self.proc.poll() is None and
                   self.virsh("version", check=False).returncode == 0, timeout=30, interval=0.1)
        # The first migration into a fresh daemon probes QEMU for seconds: do it now.
        self.virsh("domcapabilities", "--virttype", "qemu")

    def virsh(self, *args, check=True, timeout=120):
        return self.host.exec("virsh", "-q", "-c", self.uri, *args, check=check, timeout=timeout)

    def domains(self):
        return [d for d in self.virsh("list", "--name", check=False).stdout.split() if d]

    def stop(self):
        if not self.proc:
            return
        for dom in self.domains():
            self.virsh("destroy", dom, check=False)
        # QEMUs that libvirt still knows of (it leaves them running when it exits).
        qemu_dir = os.path.join(self.dir, "run", "qemu")
        pids = []
        if os.path.isdir(qemu_dir):
            for name in os.listdir(qemu_dir):
                if name.endswith(".pid"):
                    try:
                        pids.append((int(open(os.path.join(qemu_dir, name)).read().strip()),
                                     name[:-4]))
                    except (OSError, ValueError):
                        pass
        self.lab.stop(self.proc)
        for pid, domain in pids:
            # A stale pid file may name a PID reused since: only that domain's QEMU.
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
                if not cmd[0].endswith(b"qemu-system-x86_64") or not any(
                        a.startswith(f"guest={domain},".encode()) for a in cmd):
                    continue
                os.kill(pid, 9)
            except (OSError, IndexError):
                pass
        self.proc = None


def interface_xml(mac, iface_id, backend):
    """OVS: libvirt plugs the tap into br-int with external_ids:iface-id (<virtualport>). Linux:
    a plain tap named after the iface-id (<= 15 characters), which the agent enslaves to the
    VNI's bridge."""
    if backend == "linux":
        return f"""<interface type='ethernet'>
      <mac address='{mac}'/>
      <target dev='{iface_id}' managed='yes'/>
      <model type='virtio'/>
      <mtu size='1450'/>
    </interface>"""
    return f"""<interface type='bridge'>
      <mac address='{mac}'/>
      <source bridge='br-int'/>
      <virtualport type='openvswitch'><parameters interfaceid='{iface_id}'/></virtualport>
      <model type='virtio'/>
      <!-- OVS userspace reads the tap with AF_PACKET and forwards offloaded checksums unfinished -->
      <driver><host csum='off'/></driver>
      <mtu size='1450'/>
    </interface>"""


CUTOVER_METADATA_NS = "https://cutover.dev/xmlns/libvirt/1"


def metadata_xml(nics):
    """cutover's <metadata> element naming the cutover network of each NIC (by MAC) that has one:
    the controller's inventory makes the VM's ports from it (no port entered by hand).
    nics: [(mac, network or None), ...]."""
    named = [(mac, net) for mac, net in nics if net]
    if not named:
        return ""
    return (f"<metadata><cutover:interfaces xmlns:cutover='{CUTOVER_METADATA_NS}'>"
            + "".join(f"<cutover:interface mac='{mac}' network='{net}'/>" for mac, net in named)
            + "</cutover:interfaces></metadata>")


def domain_xml(name, vmlinux, initrd, mac, ip, iface_id, console_log, memory_mib=128, cmdline="",
               backend="ovs", network=None, second_nic=None):
    """second_nic: (mac, ip, iface_id, network or None) of a second interface (the guest's eth1,
    configured from vmip2=)."""
    nics = [(mac, network)] + ([(second_nic[0], second_nic[3])] if second_nic else [])
    if second_nic:
        cmdline = f"vmip2={second_nic[1]}/24 {cmdline}"
    second = interface_xml(second_nic[0], second_nic[2], backend) if second_nic else ""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  {metadata_xml(nics)}
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{vmlinux}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet mitigations=off nowatchdog tsc=reliable no_timer_check cryptomgr.notests audit=0 apparmor=0 security=none vmip={ip}/24 vmmtu=1450 {cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    {interface_xml(mac, iface_id, backend)}
    {second}
    <serial type='file'><source path='{console_log}' append='on'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def start_vm(lv, name, guest_files, mac, ip, iface_id, cmdline="", memory_mib=128, network=None,
             second_nic=None):
    """cmdline: extra guest parameters (nvmet=NQN for a storage target, nvmeconn=... for a VM
    whose data disk is an NVMe/TCP volume; see guest.py). The interface follows the host's
    backend (see interface_xml). network: the cutover network named in the domain's metadata
    (the inventory makes its port). second_nic: see domain_xml."""
    backend = lv.host.backend
    vmlinux, initrd, _ = guest_files
    xml_path = os.path.join(lv.dir, f"{name}.xml")
    console = os.path.join(lv.lab.dir, f"{name}-console.log")
    with open(xml_path, "w") as f:
        f.write(domain_xml(name, os.path.abspath(vmlinux), os.path.abspath(initrd), mac, ip, iface_id,
                           console, memory_mib=memory_mib, cmdline=cmdline, backend=backend,
                           network=network, second_nic=second_nic))
    lv.virsh("create", xml_path)
    return console


def completed_downtime(dst, name):
    """QEMU-reported downtime (ms) of the last migration into dst, from libvirt's job info."""
    info = dst.virsh("domjobinfo", "--completed", name, check=False).stdout
    for line in info.splitlines():
        if line.startswith("Total downtime:"):
            return float(line.split(":")[1].split()[0])
    return None


def migrate(src, dst, name, timeout=120):
    """Live-migrates peer-to-peer; returns (wall seconds, QEMU-reported downtime ms or None)."""
    t0 = time.monotonic()
    res = src.virsh("migrate", "--live", "--p2p", name, dst.uri, check=False, timeout=timeout)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        raise LabError(f"virsh migrate {name} {src.host.name} -> {dst.host.name}: {res.stderr.strip()}")
    return wall, completed_downtime(dst, name)
