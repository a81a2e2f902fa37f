"""Where a hop's lost echoes died, for the lab's report.

- The VM's actual pause: QEMU's STOP on the source to its RESUME on the destination, from
  QEMU's own event timestamps (virsh qemu-monitor-event on both hosts) - not the downtime QEMU
  reports, which leaves libvirt's finish phase out.
- The guest's own counts (udpecho's CUTOVER-STAT, taken by udp-probe before and after): how many
  requests reached its socket, how many it echoed, its UDP and NIC drop counters.
- Drop counters on the hosts: every VM tap's TX drops (frames the tap could not queue for the VM)
  and the packet-socket drops of ovs-vswitchd on the uplink (`ss -0`: its AF_PACKET buffer).

split() turns those into: requests lost in the network at the pause, elsewhere, in the guest, and
replies lost on the way back."""
import re
import subprocess
from datetime import datetime, timezone


class PauseWatch:
    """QEMU's STOP (source) and RESUME (destination) events for one hop."""

    def __init__(self, lab, src_lv, dst_lv):
        self.procs = {}
        for role, lv in (("stop", src_lv), ("resume", dst_lv)):
            self.procs[role] = lab.spawn(lv.host.ns, ["virsh", "-c", lv.uri, "qemu-monitor-event",
                                                      "--loop", "--timestamp"],
                                         f"qmp-{lv.host.name}.log")
        self.lab = lab

    def stop(self):
        """Returns (stop, resume) as unix seconds, None where the event was not seen."""
        out = {}
        for role, proc in self.procs.items():
            self.lab.stop(proc)
            with open(proc.log_path) as f:
                text = f.read()
            name = "STOP" if role == "stop" else "RESUME"
            stamps = re.findall(r"^(\S+ \S+)\+0000: event " + name + r" for domain 'vm1'", text, re.M)
            out[role] = _parse(stamps[-1]) if stamps else None
            open(proc.log_path, "w").close()  # the next hop reads only its own events
        return out["stop"], out["resume"]


def _parse(stamp):
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def drop_counters(hosts):
    """{host: {"tap_tx_dropped": n, "uplink_socket_drops": n}} summed over VM taps / OVS sockets."""
    out = {}
    for h in hosts:
        links = h.exec("ip", "-s", "-o", "link", "show", check=False).stdout
        tap = 0
        for line in links.splitlines():
            if ": vnet" in line or ": cvt-" in line:
                # "-o" puts RX and TX on one line: the TX numbers follow "TX:".
                tx = line.split("TX:")[-1].split("\\")[1].split()
                tap += int(tx[3])  # bytes packets errors dropped
        sockets = h.exec("ss", "-0", "-a", "-e", "-m", check=False).stdout
        drops = sum(int(d) for d in re.findall(r"\bd(\d+)\)", sockets))
        out[h.name] = {"tap_tx_dropped": tap, "uplink_socket_drops": drops}
    return out


def diff(before, after):
    return {h: {k: after[h][k] - before.get(h, {}).get(k, 0) for k in after[h]} for h in after}


def split(udp, pps, pause, guest_counts):
    """udp: the probe's result; pause: (stop, resume) unix seconds or None. Returns the split of
    udp["lost"] and the pause in the probe's own time."""
    got = {s for _, s in udp["echoes"]}
    lost = [s for s in range(udp["sent"]) if s not in got]
    out = {"lost": len(lost), "at_pause": None, "elsewhere": None, "requests": None,
           "replies": None, "in_guest": None, "pause_ms": None}
    if pause and pause[0] and pause[1]:
        start = udp["start_wall"]
        a, b = pause[0] - start, pause[1] - start
        out["pause_ms"] = round((pause[1] - pause[0]) * 1000, 1)
        out["pause_s"] = [round(a, 4), round(b, 4)]
        # A request sent from just before the stop until the resume met the pause.
        at = [s for s in lost if a - 0.005 <= s / pps <= b + 0.005]
        out["at_pause"], out["elsewhere"] = len(at), len(lost) - len(at)
        # Where the losses sit, for reading a bad run afterwards: [ms from the resume, count].
        runs = []
        for s in lost:
            if runs and s == runs[-1][2] + 1:
                runs[-1][1] += 1
                runs[-1][2] = s
            else:
                runs.append([round((s / pps - b) * 1000, 1), 1, s])
        out["runs"] = [r[:2] for r in runs[:20]]
        # The first echo after the resume, and whether its request had been waiting (sent before
        # the resume): then the time until it came back was the guest's, draining what queued
        # for it during the pause (under TCG it also re-translates its code after a migration).
        after = sorted((t, s) for t, s in udp["echoes"] if t >= b)
        if after:
            out["resume_to_first_echo_ms"] = round((after[0][0] - b) * 1000, 1)
            out["first_echo_waited"] = after[0][1] / pps < b
    g = guest_counts
    if g:
        out["requests"] = udp["sent"] - g["received"]  # never reached the guest's socket
        out["replies"] = g["echoed"] - udp["echoed"]  # echoed by the guest, not received back
        # UDP InErrors already counts a full socket buffer (RcvbufErrors) and a bad checksum.
        out["in_guest"] = g["udp"].get("InErrors", 0) + (g.get("eth0_rx_dropped") or 0)
        out["guest_counters"] = dict(g["udp"], **g.get("ip", {}),
                                     eth0_rx_dropped=g.get("eth0_rx_dropped") or 0)
    return out
