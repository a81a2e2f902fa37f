"""Traffic probes run inside VM namespaces (python3 -m cutover_lab.traffic ...).

udp-recv PORT OUT.json        count sequence-numbered datagrams until SIGTERM; write stats
udp-send IP PORT PPS SECONDS  send sequence-numbered datagrams at a fixed rate
tcp-sink PORT                 accept connections, discard data, report bytes per connection
tcp-send IP PORT BYTES [SECS] send BYTES (spread evenly over SECS if given: a live session, not
                              a bulk transfer) and wait for the sink's byte count echo
tcp-rate IP PORT SECS          send as fast as TCP allows for SECS to a tcp-sink; print the rate
                              the sink received (mbit_s), for measuring rate limits
bcast-send IFACE COUNT        send COUNT broadcast frames with ethertype 0x88b5 (local experimental)
udp-probe IP PORT PPS SECS OUT.json   send sequence-numbered datagrams to an echo server, record
                              every echo's arrival; lost = sent - echoed
tcp-probe IP PORT N SECS OUT.json     N TCP sessions to an echo server, each sending a message
                              every 10 ms and checking the echo; records survivors and stalls
tcp-source PORT BYTES_PER_S   accept connections and stream data to each at that rate until it
                              closes (the server side of a download)
tcp-pull IP PORT SECS OUT.json        connect and read for SECS; record bytes, arrivals, max gap
io-recv PORT OUT.json         collect the storage workload's reports (nvmeio in a guest: one datagram
                              per verified 4 KiB write+read) with host-clock arrival times
announce-watch IFACE MAC OUT.json      count GARPs / unsolicited NAs / RARPs announcing MAC
                              (and the IPs they claim) until SIGTERM, with arrival times;
                              OUT.json.counts has the counts so far (to wait for)
tap-vm TAP MAC IP STATE.json [paused]   a "VM" that owns tap TAP (created here) as QEMU does: it
                              answers ARP and UDP echo (port 7) for IP from the frames it reads;
                              SIGUSR1 stops reading (frames queue in the tap, as during a
                              migration's pause; STATE.json.paused exists once it has
                              stopped), SIGUSR2 reads again; SIGTERM writes what it
                              echoed (per sequence number) to STATE.json and exits

Receivers timestamp with the host clock (time.monotonic) so gaps are measured where they happen.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time


def udp_recv(port, out_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", int(port)))
    sock.settimeout(0.2)
    seen, arrivals, stop = set(), [], [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    with open(out_path + ".ready", "w"):
        pass
    while not stop[0]:
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            continue
        if len(data) >= 8:
            seq = struct.unpack("!Q", data[:8])[0]
            seen.add(seq)
            arrivals.append((time.monotonic(), seq))
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    stats = {
        "received": len(seen),
        "duplicates": len(arrivals) - len(seen),
        "max_seq": max(seen) if seen else -1,
        "max_gap_ms": round(max(gaps) * 1000, 3) if gaps else None,
        "arrivals": [[round(t, 6), s] for t, s in arrivals],
    }
    with open(out_path, "w") as f:
        json.dump(stats, f)


def udp_send(ip, port, pps, seconds):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pps, seconds = float(pps), float(seconds)
    n = int(pps * seconds)
    start = time.monotonic()
    for seq in range(n):
        target = start + seq / pps
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendto(struct.pack("!Q", seq) + b"x" * 56, (ip, int(port)))
    print(json.dumps({"sent": n}))


def tcp_sink(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(port)))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        total = 0
        while True:
            data = conn.recv(65536)
            if not data:
                break
            total += len(data)
            if data.endswith(b"\n"):  # sender's end marker
                break
        conn.sendall(f"{total}\n".encode())
        conn.close()


def tcp_send(ip, port, nbytes, seconds="0"):
    nbytes, seconds = int(nbytes), float(seconds)
    sock = socket.create_connection((ip, int(port)), timeout=20)
    chunk = b"c" * (4096 if seconds else 65536)
    left = nbytes - 1
    start = time.monotonic()
    while left > 0:
        if seconds:
            due = start + seconds * (1 - left / nbytes)
            wait = due - time.monotonic()  # read the clock once: it moves between two reads
            if wait > 0:
                time.sleep(wait)
        sock.sendall(chunk[: min(left, len(chunk))])
        left -= min(left, len(chunk))
    sock.sendall(b"\n")
    reply = sock.makefile().readline().strip()
    print(json.dumps({"sent": nbytes, "acked": int(reply)}))


def tcp_rate(ip, port, seconds):
    sock = socket.create_connection((ip, int(port)), timeout=20)
    chunk = b"r" * 65536
    start = time.monotonic()
    end = start + float(seconds)
    while time.monotonic() < end:
        sock.sendall(chunk)
    sock.sendall(b"\n")
    received = int(sock.makefile().readline().strip())
    elapsed = time.monotonic() - start
    print(json.dumps({"bytes": received, "seconds": round(elapsed, 3),
                      "mbit_s": round(received * 8 / elapsed / 1e6, 2)}))


def bcast_send(iface, count):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    mac = open(f"/sys/class/net/{iface}/address").read().strip()
    src = bytes.fromhex(mac.replace(":", ""))
    frame = b"\xff" * 6 + src + b"\x88\xb5" + b"cutover-isolation-probe".ljust(46, b"\0")
    for _ in range(int(count)):
        s.send(frame)
    print(json.dumps({"sent": int(count)}))


def guest_stat(sock, ip, port, tries=20):
    """Asks the lab guest's udpecho for its counters ("CUTOVER-STAT"): returns {"peers": {"ip:port":
    (received, echoed, send errors)}, "udp": {counter: value} from /proc/net/snmp,
    "eth0_rx_dropped": n}, or None if it does not answer (an older guest, a host that is not one)."""
    import select
    for _ in range(tries):
        sock.sendto(b"CUTOVER-STAT", (ip, int(port)))
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            try:
                data = sock.recv(8192)
            except BlockingIOError:
                break
            if data.startswith(b"CUTOVER-STAT"):
                return parse_stat(data.decode(errors="replace"))
    return None


def parse_stat(text):
    """'CUTOVER-STAT peers=A:P/rx/tx/err,... snmp=<file, lines joined by ;> eth0_rx_dropped=N'"""
    out = {"peers": {}, "udp": {}, "ip": {}, "eth0_rx_dropped": None}
    head, _, rest = text.partition(" snmp=")
    snmp, _, dropped = rest.partition(" eth0_rx_dropped=")
    for p in head.partition("peers=")[2].split(","):
        if p.count("/") == 3:
            addr, rx, tx, err = p.split("/")
            out["peers"][addr] = (int(rx), int(tx), int(err))
    for proto, key in (("Udp:", "udp"), ("Ip:", "ip")):
        lines = [line.split() for line in snmp.split(";") if line.startswith(proto)]
        if len(lines) >= 2:
            out[key] = {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:]) if v.lstrip("-").isdigit()}
    try:
        out["eth0_rx_dropped"] = int(dropped.strip().strip(";") or 0)
    except ValueError:
        pass
    return out


def udp_probe(ip, port, pps, seconds, out_path, stats=None):
    """stats="stat": also ask the guest for its counters before and after (see guest_stat)."""
    import select
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    before = guest_stat(sock, ip, port) if stats == "stat" else None
    pps, seconds = float(pps), float(seconds)
    n = int(pps * seconds)
    start = time.monotonic()
    start_wall = time.time()
    sent_at, echoes = {}, []
    seq = 0
    while True:
        now = time.monotonic()
        if seq < n and now >= start + seq / pps:
            sent_at[seq] = now
            try:
                sock.sendto(struct.pack("!Q", seq) + b"p" * 56, (ip, int(port)))
            except OSError:
                pass
            seq += 1
            continue
        if seq >= n and now > start + seconds + 1.0:
            break
        wait = max(0.0, min((start + seq / pps) - now if seq < n else 0.05, 0.05))
        if select.select([sock], [], [], wait)[0]:
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                if len(data) >= 8 and not data.startswith(b"CUTOVER-STAT"):
                    echoes.append((time.monotonic(), struct.unpack("!Q", data[:8])[0]))
    after = guest_stat(sock, ip, port) if stats == "stat" else None
    guest = None
    if before and after:
        mine = [k for k in after["peers"] if k.endswith(":%d" % sock.getsockname()[1])]
        a = after["peers"].get(mine[0], (0, 0, 0)) if mine else (0, 0, 0)
        b = before["peers"].get(mine[0], (0, 0, 0)) if mine else (0, 0, 0)
        udp_diff = {k: after["udp"].get(k, 0) - before["udp"].get(k, 0)
                    for k in ("InDatagrams", "InErrors", "RcvbufErrors", "SndbufErrors",
                              "InCsumErrors", "NoPorts", "MemErrors")}
        ip_diff = {k: after.get("ip", {}).get(k, 0) - before.get("ip", {}).get(k, 0)
                   for k in ("InHdrErrors", "InAddrErrors", "InDiscards", "ReasmFails")}
        guest = {"received": a[0] - b[0], "echoed": a[1] - b[1], "send_errors": a[2] - b[2],
                 "udp": udp_diff, "ip": ip_diff, "eth0_rx_dropped": (after["eth0_rx_dropped"] or 0)
                 - (before["eth0_rx_dropped"] or 0), "peer": mine[0] if mine else None}
    got = {s for _, s in echoes if s < n}
    gaps = [b[0] - a[0] for a, b in zip(echoes, echoes[1:])]
    gap_at = None
    if gaps:
        i = max(range(len(gaps)), key=lambda k: gaps[k])
        gap_at = round(echoes[i][0] - start, 4)
    with open(out_path, "w") as f:
        json.dump({"sent": n, "echoed": len(got), "lost": n - len(got),
                   "duplicates": len(echoes) - len(got),
                   "max_gap_ms": round(max(gaps) * 1000, 3) if gaps else None,
                   "max_gap_at_s": gap_at, "start": start, "start_wall": start_wall,
                   "guest": guest,
                   "echoes": [[round(t - start, 5), s] for t, s in echoes]}, f)


def tcp_probe(ip, port, sessions, seconds, out_path):
    import select
    socks = []
    for _ in range(int(sessions)):
        s = socket.create_connection((ip, int(port)), timeout=5)
        s.setblocking(False)
        socks.append(s)
    alive = [True] * len(socks)
    last_echo = [time.monotonic()] * len(socks)
    stall = [0.0] * len(socks)
    pending = [b""] * len(socks)
    start = time.monotonic()
    next_send = start
    seq = 0
    while time.monotonic() < start + float(seconds) + 0.5:
        now = time.monotonic()
        if now >= next_send and now < start + float(seconds):
            seq += 1
            msg = b"%08d\n" % seq
            for i, s in enumerate(socks):
                if alive[i]:
                    try:
                        s.send(msg)
                        pending[i] += msg
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        alive[i] = False
            next_send += 0.01
        ready = select.select([s for i, s in enumerate(socks) if alive[i]], [], [], 0.005)[0]
        for s in ready:
            i = socks.index(s)
            try:
                data = s.recv(65536)
            except OSError:
                alive[i] = False
                continue
            if not data:
                alive[i] = False
                continue
            if not pending[i].startswith(data[:len(pending[i])]):
                alive[i] = False  # corrupted echo
                continue
            pending[i] = pending[i][len(data):]
            t = time.monotonic()
            stall[i] = max(stall[i], t - last_echo[i])
            last_echo[i] = t
    survived = sum(1 for i in range(len(socks)) if alive[i] and not pending[i])
    with open(out_path, "w") as f:
        json.dump({"sessions": len(socks), "survived": survived,
                   "max_stall_ms": round(max(stall) * 1000, 1)}, f)
    for s in socks:
        s.close()


def tcp_source(port, rate):
    import threading
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(port)))
    srv.listen(16)
    chunk = b"x" * max(1, int(rate) // 100)

    def serve(conn):
        try:
            start, n = time.monotonic(), 0
            while True:
                conn.sendall(chunk)
                n += 1
                delay = start + n / 100 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except OSError:
            pass
        finally:
            conn.close()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def tcp_pull(ip, port, seconds, out_path):
    sock = socket.create_connection((ip, int(port)), timeout=5)
    sock.settimeout(0.2)
    end = time.monotonic() + float(seconds)
    total, last, max_gap, arrivals = 0, time.monotonic(), 0.0, []
    with open(out_path + ".ready", "w"):
        pass
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        t = time.monotonic()
        max_gap = max(max_gap, t - last)
        last = t
        total += len(data)
        arrivals.append([round(t, 6), total])
    max_gap = max(max_gap, time.monotonic() - last)
    sock.close()
    with open(out_path, "w") as f:
        json.dump({"bytes": total, "max_gap_ms": round(max_gap * 1000, 1),
                   "last_arrival": arrivals[-1][0] if arrivals else None,
                   "arrivals": arrivals}, f)


def io_recv(port, out_path):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", int(port)))
    sock.settimeout(0.2)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    reports = []
    with open(out_path + ".ready", "w"):
        pass
    while not stop[0]:
        try:
            data, _ = sock.recvfrom(64)
        except socket.timeout:
            continue
        if len(data) == 13:
            seq, status, took = struct.unpack("!QBI", data)
            reports.append([round(time.monotonic(), 6), seq, status, took])
    with open(out_path, "w") as f:
        json.dump({"reports": reports}, f)


def announce_watch(iface, mac, out_path):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sock.bind((iface, 0))
    sock.settimeout(0.2)
    want = bytes.fromhex(mac.replace(":", ""))
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    counts = {"garp": 0, "na": 0, "rarp": 0}
    ips, times = set(), []
    with open(out_path + ".ready", "w"):
        pass
    while not stop[0]:
        try:
            f = sock.recv(2048)
        except socket.timeout:
            continue
        if len(f) < 42 or f[6:12] != want:
            continue
        etype = struct.unpack("!H", f[12:14])[0]
        kind = None
        if etype == 0x0806 and f[22:28] == want and f[28:32] == f[38:42]:
            kind = "garp"
            ips.add(socket.inet_ntop(socket.AF_INET, f[28:32]))
        elif etype == 0x8035 and f[22:28] == want:
            kind = "rarp"
        elif etype == 0x86dd and len(f) >= 78 and f[20] == 58 and f[54] == 136:
            kind = "na"
            ips.add(socket.inet_ntop(socket.AF_INET6, f[62:78]))
        if kind:
            counts[kind] += 1
            times.append([round(time.monotonic(), 6), kind])
            with open(out_path + ".counts.tmp", "w") as f:
                json.dump(counts, f)
            os.replace(out_path + ".counts.tmp", out_path + ".counts")
    with open(out_path, "w") as f:
        json.dump(dict(counts, ips=sorted(ips), arrivals=times), f)


def tap_vm(tap, mac, ip, state_path, start="running"):
    import fcntl
    import select
    TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
    subprocess.run(["ip", "link", "set", tap, "mtu", "1450", "up"], check=True)
    me, my_ip = bytes.fromhex(mac.replace(":", "")), socket.inet_aton(ip)
    state = {"paused": start == "paused", "stop": False}
    signal.signal(signal.SIGUSR1, lambda *_: state.__setitem__("paused", True))
    signal.signal(signal.SIGUSR2, lambda *_: state.__setitem__("paused", False))
    signal.signal(signal.SIGTERM, lambda *_: state.__setitem__("stop", True))
    echoed = {}

    def ip_checksum(h):
        s = sum(struct.unpack("!10H", h))
        s = (s >> 16) + (s & 0xFFFF)
        return ~(s + (s >> 16)) & 0xFFFF

    with open(state_path + ".ready", "w"):
        pass
    paused_mark = state_path + ".paused"
    while not state["stop"]:
        if state["paused"]:
            # Like QEMU's STOP event, which comes once it has stopped reading: the mark says so.
            if not os.path.exists(paused_mark):
                open(paused_mark, "w").close()
            time.sleep(0.002)
            continue
        if os.path.exists(paused_mark):
            os.unlink(paused_mark)
        if not select.select([fd], [], [], 0.05)[0]:
            continue
        try:
            f = os.read(fd, 2048)
        except OSError:
            continue
        if len(f) < 42 or f[0:6] not in (me, b"\xff" * 6):
            continue
        etype = f[12:14]
        if etype == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == my_ip:  # ARP who-has
            reply = (f[6:12] + me + b"\x08\x06" + f[14:20] + b"\x00\x02" + me + my_ip + f[22:28]
                     + f[28:32])
            os.write(fd, reply.ljust(60, b"\0"))
        elif etype == b"\x08\x00" and f[30:34] == my_ip and f[23] == 17:
            ihl = (f[14] & 15) * 4
            udp = 14 + ihl
            sport, dport = struct.unpack("!HH", f[udp:udp + 4])
            if dport != 7:
                continue
            payload = f[udp + 8:udp + struct.unpack("!H", f[udp + 4:udp + 6])[0]]
            if len(payload) >= 8:
                seq = struct.unpack("!Q", payload[:8])[0]
                echoed[seq] = echoed.get(seq, 0) + 1
            hdr = bytearray(f[14:14 + 20])
            hdr[12:16], hdr[16:20] = f[30:34], f[26:30]
            hdr[10:12] = b"\0\0"
            hdr[10:12] = struct.pack("!H", ip_checksum(bytes(hdr)))
            udp_hdr = struct.pack("!HHHH", 7, sport, 8 + len(payload), 0)
            os.write(fd, f[6:12] + me + b"\x08\x00" + bytes(hdr) + udp_hdr + payload)
    with open(state_path, "w") as out:
        json.dump({"echoed": {str(k): v for k, v in echoed.items()}}, out)


if __name__ == "__main__":
    cmds = {"udp-recv": udp_recv, "udp-send": udp_send, "tcp-sink": tcp_sink,
            "tcp-send": tcp_send, "tcp-rate": tcp_rate, "bcast-send": bcast_send, "udp-probe": udp_probe,
            "tcp-probe": tcp_probe, "announce-watch": announce_watch,
            "tcp-source": tcp_source, "tcp-pull": tcp_pull, "io-recv": io_recv, "tap-vm": tap_vm}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    cmds[sys.argv[1]](*sys.argv[2:])
