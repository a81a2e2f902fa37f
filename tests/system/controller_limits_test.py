#!/usr/bin/env python3
"""System test: the controller cannot be exhausted or crashed from outside. A real
cutover-controller on 127.0.0.1 (port 0, temp dir), raw sockets against it:

- 200 clients trickling a header never finishing it: a REST request still succeeds at once, and
  every one of them is closed by the header deadline;
- a 1 MiB body with a wrong token: the 401 arrives before a byte of the body is sent; with the
  token, a 2 MiB Content-Length is a 413 on the header, and Expect: 100-continue is honoured;
- the connection cap and the cap on connections without the token answer 503 and count it, while
  a connection that showed the token keeps working;
- an agent WebSocket that never says hello is closed (1008) at the hello deadline;
- an agent that stops reading is disconnected once its queue passes --agent-send-queue-bytes, and
  on reconnecting gets its whole slice;
- the agent channel's frames, which the controller reads and writes itself after the upgrade: a
  ping gets its pong, a close is echoed and the socket closed, an unmasked frame is refused with
  1002;
- out of file descriptors (EMFILE), the accept loop backs off instead of spinning, and serves
  again once descriptors are free;
- the audit log keeps --retention-entries, and `cutoverctl migrations list` / `audit` page with
  --limit/--after.
- (root) the store's file system fills up mid-run: writes answer 500 store_failed and change
  nothing, reads and the process go on, and writes work again once there is room.

Needs no root but for the last case (skipped without). Usage: controller_limits_test.py BUILD_DIR
"""
import base64
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from cutover_lab.netlab import wait_until  # noqa: E402
from wsframes import read_text, ws_frame, ws_recv, ws_send  # noqa: E402

BUILD = None
TOKEN = "s3cret"


class Controller:
    """One cutover-controller on 127.0.0.1:0 with its own temp dir; stopped by PID."""

    def __init__(self, *args, prefix=(), db=None):
        self.dir = tempfile.mkdtemp(prefix="cutover-limits-")
        port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "controller.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            list(prefix) + [os.path.join(BUILD, "controller", "cutover-controller"), "--listen",
                            "127.0.0.1:0", "--port-file", port_file, "--db",
                            db or os.path.join(self.dir, "c.db"), "--token", TOKEN] + list(args),
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(wait_until("controller port file", lambda: read_text(port_file).strip()
                                   if os.path.exists(port_file) else None))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method, path, body=None, token=TOKEN, timeout=5):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Authorization": "Bearer " + token} if token else {}
        data = None if body is None else json.dumps(body)
        try:
            conn.request(method, path, body=data, headers=headers)
            res = conn.getresponse()
            raw = res.read()
            return res.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode())
        finally:
            conn.close()

    def metric(self, name, text=None):
        text = text if text is not None else self.request("GET", "/metrics", token="")[1]
        m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.sockets.append(s)
        return s


def read_http_head(s):
    """Reads up to the end of a response header; returns (status, head text)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode(errors="replace")
    m = re.match(r"HTTP/1.1 (\d+)", head)
    return (int(m.group(1)) if m else None), head


def closed_by_peer(s):
    """True once the peer closed (EOF or reset); False while the socket is still open."""
    s.setblocking(False)
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def ws_upgrade(port, token=TOKEN, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode())
    status, head = read_http_head(s)
    return s, status


HELLO = json.dumps({"type": "hello", "host": {"id": "h1", "underlay_ip": "192.0.2.1"}})


class Limits(unittest.TestCase):
    def start(self, *args, **kw):
        c = Controller(*args, **kw)
        c.sockets = []
        self.addCleanup(c.stop)
        self.addCleanup(lambda: [s.close() for s in c.sockets])
        return c

    def test_a_read_only_token_reads_but_neither_writes_nor_speaks_for_an_agent(self):
        tmp = tempfile.mkdtemp(prefix="cutover-limits-token-")
        self.addCleanup(shutil.rmtree, tmp, True)
        read_token = os.path.join(tmp, "read-token")
        with open(read_token, "w") as f:
            f.write("look-only\n")
        c = self.start("--read-token-file", read_token)
        self.assertEqual(c.request("POST", "/v1/networks", {"id": "blue", "vni": 100})[0], 201)
        st, nets = c.request("GET", "/v1/networks", token="look-only")
        self.assertEqual((st, [n["id"] for n in nets]), (200, ["blue"]))
        st, body = c.request("POST", "/v1/networks", {"id": "red", "vni": 7}, token="look-only")
        self.assertEqual((st, body["error"]["code"]), (403, "forbidden"))
        self.assertEqual(c.request("DELETE", "/v1/networks/blue", token="look-only")[0], 403)
        s, status = ws_upgrade(c.port, token="look-only")
        c.sockets.append(s)
        self.assertEqual(status, 403)
        self.assertEqual(c.request("GET", "/v1/networks")[1][0]["id"], "blue")
        metrics = c.request("GET", "/metrics", token="")[1]
        self.assertEqual(c.metric('cutover_auth_refusals_total{reason="read_only"}', metrics), 3)
        self.assertNotIn("look-only", metrics)
        self.assertNotIn("look-only", read_text(c.log_path))
        self.assertNotIn(TOKEN, read_text(c.log_path))

    def test_slow_header_clients_neither_block_rest_nor_stay(self):
        c = self.start("--header-timeout-ms", "2000")
        t0 = time.monotonic()
        slow = []
        for _ in range(200):
            s = c.connect()
            s.sendall(b"GET /v1/hosts HTTP/1.1\r\nHost: x\r\n")  # never the blank line
            slow.append(s)
        wait_until("200 slow clients open", lambda: c.metric("cutover_connections_open") >= 200)
        t = time.monotonic()
        st, _ = c.request("GET", "/v1/hosts")
        took = time.monotonic() - t
        self.assertEqual(st, 200)
        self.assertLess(took, 1.0, "a REST request waited behind slow clients")
        # Trickle a byte now and then: the deadline is for the whole header, not per byte.
        while time.monotonic() - t0 < 1.5:
            for s in slow:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            time.sleep(0.3)  # the trickle's pace
        wait_until("every slow client closed", lambda: all(closed_by_peer(s) for s in slow),
                   timeout=8)
        closed_after = time.monotonic() - t0
        print(f"\n  200 slow-header clients: REST answered in {took * 1000:.1f} ms; all closed "
              f"{closed_after:.2f} s after they connected (header deadline 2 s)")
        self.assertLess(closed_after, 6.0)
        wait_until("gauges back down", lambda: c.metric("cutover_connections_unauthenticated") <= 1)

    def test_token_is_checked_before_the_body(self):
        c = self.start()
        s = c.connect()
        s.sendall(b"POST /v1/networks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n")
        t = time.monotonic()
        status, _ = read_http_head(s)  # not a byte of the body sent
        self.assertEqual(status, 401)
        print(f"\n  1 MiB body, wrong token: 401 in {(time.monotonic() - t) * 1000:.1f} ms "
              "without the body")
        # With the token, an oversized Content-Length is refused on the header too.
        s = c.connect()
        s.sendall(f"POST /v1/networks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Content-Length: 2097152\r\n\r\n".encode())
        self.assertEqual(read_http_head(s)[0], 413)
        # Expect: 100-continue: told to go on only once the token passed.
        body = json.dumps({"id": "blue", "vni": 100}).encode()
        s = c.connect()
        s.sendall(f"POST /v1/networks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        self.assertEqual(read_http_head(s)[0], 100)
        s.sendall(body)
        self.assertEqual(read_http_head(s)[0], 201)
        s = c.connect()
        s.sendall(b"POST /v1/networks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer no\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 20\r\n\r\n")
        self.assertEqual(read_http_head(s)[0], 401)
        # The endpoints open without the token take no body: none is read for them either.
        s = c.connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        self.assertEqual(read_http_head(s)[0], 401)
        # A small POST with a wrong token still reads as a 401 (no reset), as before.
        st, body = c.request("POST", "/v1/networks", {"id": "x", "vni": 5}, token="wrong")
        self.assertEqual((st, body["error"]["code"]), (401, "unauthenticated"))
        self.assertEqual([n["id"] for n in c.request("GET", "/v1/networks")[1]], ["blue"])

    def test_connection_cap(self):
        c = self.start("--max-connections", "5", "--max-unauthenticated", "100")
        idle = [c.connect() for _ in range(5)]
        s = c.connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            status = read_http_head(s)[0]
        except ConnectionResetError:
            status = "reset"
        self.assertIn(status, (503, "reset"))
        idle.pop().close()
        wait_until("served again after one closed", lambda: c.request("GET", "/healthz")[0] == 200)
        # The server frees a slot only once it has read the closing client's EOF: a request right
        # after another one closed may still meet the cap.
        text = wait_until("metrics within the cap", lambda: (lambda r: r[0] == 200 and r[1])(
            c.request("GET", "/metrics", token="")))
        self.assertRegex(text, r'cutover_connections_refused_total\{reason="max_connections"\} [1-9]')
        self.assertEqual(c.proc.poll(), None)

    def test_unauthenticated_cap_spares_connections_with_the_token(self):
        c = self.start("--max-unauthenticated", "3")
        keep = http.client.HTTPConnection("127.0.0.1", c.port, timeout=5)
        keep.request("GET", "/v1/hosts", headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(keep.getresponse().read(), b"[]")
        idle = [c.connect() for _ in range(3)]

        def metrics():  # over the connection that showed the token: a new one may be refused
            keep.request("GET", "/metrics")
            return keep.getresponse().read().decode()
        wait_until("3 without the token",
                   lambda: c.metric("cutover_connections_unauthenticated", metrics()) == 3)
        s = c.connect()
        s.sendall(f"GET /v1/hosts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
        try:
            status = read_http_head(s)[0]
        except ConnectionResetError:
            status = "reset"
        self.assertIn(status, (503, "reset"))
        keep.request("GET", "/v1/hosts", headers={"Authorization": "Bearer " + TOKEN})
        res = keep.getresponse()
        res.read()
        self.assertEqual(res.status, 200, "a connection with the token was refused")
        self.assertRegex(metrics(),
                         r'cutover_connections_refused_total\{reason="max_unauthenticated"\} [1-9]')
        for i in idle:
            i.close()
        keep.close()

    def test_agent_without_hello_is_closed_at_the_deadline(self):
        c = self.start("--hello-timeout-ms", "1000")
        s, status = ws_upgrade(c.port, token="wrong")
        self.assertEqual(status, 401)
        s.close()
        s, status = ws_upgrade(c.port)
        self.assertEqual(status, 101)
        t = time.monotonic()
        opcode, payload = ws_recv(s)  # blocks until the server speaks
        took = time.monotonic() - t
        s.close()
        self.assertEqual(opcode, 8)
        code = struct.unpack("!H", payload[:2])[0]
        print(f"\n  silent agent WebSocket closed after {took * 1000:.0f} ms (hello deadline "
              f"1000 ms): {code} {payload[2:].decode()!r}")
        self.assertEqual(code, 1008)
        self.assertIn(b"no hello", payload)
        self.assertGreater(took, 0.8)
        self.assertLess(took, 3.0)
        self.assertEqual(c.metric('cutover_agent_sessions_closed_total{reason="hello_timeout"}'), 1)

    def test_agent_that_stops_reading_is_resynced_not_queued_for(self):
        c = self.start("--agent-send-queue-bytes", "65536")
        s, status = ws_upgrade(c.port, rcvbuf=4096)
        self.assertEqual(status, 101)
        ws_send(s, HELLO)
        opcode, first = ws_recv(s)
        self.assertEqual(json.loads(first)["type"], "desired")
        wait_until("h1 connected", lambda: c.request("GET", "/v1/agents")[1][0]["connected"])
        self.assertEqual(c.request("POST", "/v1/networks", {"id": "blue", "vni": 100})[0], 201)
        # The agent reads no more. Each port on h1 is a delta of ~160 KB for it.
        labels = {f"k{j}": "v" * 250 for j in range(600)}
        made = 0
        for i in range(200):
            st, _ = c.request("POST", "/v1/ports", {
                "id": f"p{i}", "mac": "52:54:00:00:%02x:%02x" % (i >> 8, i & 255),
                "network": "blue", "host": "h1", "labels": labels})
            self.assertEqual(st, 201)
            made += 1
            if c.metric('cutover_agent_sessions_closed_total{reason="send_queue_full"}'):
                break
        self.assertEqual(c.metric('cutover_agent_sessions_closed_total{reason="send_queue_full"}'), 1,
                         f"no disconnect after {made} ports")
        self.assertFalse(c.request("GET", "/v1/agents")[1][0]["connected"])
        rss_kb = int(re.search(r"VmRSS:\s+(\d+)", read_text(f"/proc/{c.proc.pid}/status"))[1])
        print(f"\n  agent not reading: disconnected after {made} deltas of ~160 KB "
              f"(queue bound 64 KiB; controller RSS {rss_kb // 1024} MiB)")
        s.close()
        # It reconnects and gets everything in one slice.
        s, status = ws_upgrade(c.port)
        ws_send(s, HELLO)
        opcode, text = ws_recv(s)
        state = json.loads(text)["state"]
        self.assertEqual(len(state["ports"]), made)
        s.close()

    def test_agent_channel_control_frames_and_protocol_errors(self):
        """The agent channel's frames are the controller's own after the upgrade: a ping is
        answered, a close is echoed and the socket closed, an unmasked frame fails the
        connection with 1002."""
        c = self.start()

        def until(s, opcode):
            while True:
                op, payload = ws_recv(s)
                if op == opcode:
                    return payload

        def closed_by_server(s):
            s.settimeout(5)
            try:
                return s.recv(1) == b""
            except ConnectionResetError:
                return True

        s, status = ws_upgrade(c.port)
        self.assertEqual(status, 101)
        ws_send(s, HELLO)
        self.assertEqual(json.loads(until(s, 1))["type"], "desired")
        s.sendall(ws_frame(0x89, b"are you there"))
        self.assertEqual(until(s, 0xA), b"are you there", "a ping gets its payload back")
        s.sendall(ws_frame(0x88, struct.pack("!H", 1001) + b"going"))
        payload = until(s, 8)
        self.assertEqual(struct.unpack("!H", payload[:2])[0], 1001, "the close code is echoed")
        self.assertTrue(closed_by_server(s), "the server closes the socket after the handshake")
        s.close()
        wait_until("h1 disconnected", lambda: not c.request("GET", "/v1/agents")[1][0]["connected"])

        s, status = ws_upgrade(c.port)
        ws_send(s, HELLO)
        until(s, 1)
        s.sendall(ws_frame(0x81, b'{"type":"ack","generation":1}', masked=False))
        payload = until(s, 8)
        print(f"\n  unmasked client frame: closed with {struct.unpack('!H', payload[:2])[0]} "
              f"{payload[2:].decode()!r}")
        self.assertEqual(struct.unpack("!H", payload[:2])[0], 1002)
        self.assertIn(b"masked", payload)
        self.assertTrue(closed_by_server(s), "a protocol error fails the connection")
        s.close()
        wait_until("the violation logged",
                   lambda: "broke the WebSocket protocol" in read_text(c.log_path))

    def test_accept_backs_off_when_out_of_file_descriptors(self):
        c = self.start("--header-timeout-ms", "60000", prefix=["prlimit", "--nofile=40:40", "--"])
        for _ in range(60):  # more than the controller has descriptors for
            c.connect()
        wait_until("accept failing", lambda: "accept failed" in read_text(c.log_path))

        def cpu_s():
            fields = read_text(f"/proc/{c.proc.pid}/stat").rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        before, t = cpu_s(), time.monotonic()
        time.sleep(2.0)  # measuring a rate
        used = (cpu_s() - before) / (time.monotonic() - t)
        print(f"\n  out of descriptors: controller used {used * 100:.1f}% of a CPU")
        self.assertLess(used, 0.2, "the accept loop spins on EMFILE")
        for s in c.sockets:
            s.close()
        c.sockets.clear()
        wait_until("served again", lambda: c.request("GET", "/healthz")[0] == 200, timeout=10)
        self.assertGreater(c.metric("cutover_accept_errors_total"), 0)
        self.assertIsNone(c.proc.poll())

    def test_retention_and_paging_with_cutoverctl(self):
        c = self.start("--retention-entries", "5")
        for path, body in (("/v1/networks", {"id": "blue", "vni": 100}),
                           ("/v1/hosts", {"id": "h1", "underlay_ip": "192.0.2.1"}),
                           ("/v1/hosts", {"id": "h2", "underlay_ip": "192.0.2.2"}),
                           ("/v1/ports", {"id": "p1", "mac": "52:54:00:00:00:01",
                                          "network": "blue", "host": "h1"})):
            self.assertEqual(c.request("POST", path, body)[0], 201)
        for i in range(1, 12):  # no agents: each waits in preparing until cancelled
            self.assertEqual(c.request("POST", "/v1/migrations",
                                       {"port": "p1", "to_host": "h2"})[0], 201)
            self.assertEqual(c.request("POST", f"/v1/migrations/m{i}/cancel")[0], 200)
        audit = c.request("GET", "/v1/audit")[1]
        self.assertEqual(len(audit), 5, "--retention-entries 5")
        last = audit[-1]["seq"]
        self.assertEqual([e["seq"] for e in audit], list(range(last - 4, last + 1)))
        token = os.path.join(c.dir, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")

        def ctl(*args):
            r = subprocess.run([os.path.join(BUILD, "cli", "cutoverctl"), "--controller",
                                f"http://127.0.0.1:{c.port}", "--token-file", token, "--json"]
                               + list(args), capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout), r.stderr
        page, more = ctl("migrations", "list", "--limit", "4", "--after", "m8")
        self.assertEqual([m["id"] for m in page], ["m9", "m10", "m11"])
        self.assertEqual(more, "", "a short page is the last")
        page, more = ctl("migrations", "list", "--limit", "2")
        self.assertEqual([m["id"] for m in page], ["m1", "m2"])
        self.assertIn("--after m2", more)
        page, more = ctl("audit", "--limit", "2", "--after", str(last - 3))
        self.assertEqual([e["seq"] for e in page], [last - 2, last - 1])
        self.assertIn(f"--after {last - 1}", more)
        self.assertEqual(len(ctl("migrations", "list")[0]), 11, "no --limit: everything")


class StoreFailure(unittest.TestCase):
    """The store fails mid-run (its file system fills up): writes answer 500 naming the store,
    reads and the process go on, and writes work again once there is room. Root only: the store
    sits on a 1 MiB tmpfs in the controller's own mount namespace (gone with it)."""

    def test_a_full_store_fails_writes_not_the_controller(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (a tmpfs in a private mount namespace)")
        d = tempfile.mkdtemp(prefix="cutover-store-full-")
        self.addCleanup(shutil.rmtree, d, True)
        store = os.path.join(d, "store")
        os.mkdir(store)
        port_file = os.path.join(d, "port")
        log = open(os.path.join(d, "controller.log"), "ab")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o size=1m cutover-test-store "$0" && exec "$@"', store,
             os.path.join(BUILD, "controller", "cutover-controller"), "--listen", "127.0.0.1:0",
             "--port-file", port_file, "--db", os.path.join(store, "c.db"), "--token", TOKEN],
            stdout=log, stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.addCleanup(stop)
        port = int(wait_until("controller port file", lambda: read_text(port_file).strip()
                              if os.path.exists(port_file) else None))
        c = Controller.__new__(Controller)
        c.port = port
        self.assertEqual(c.request("POST", "/v1/networks", {"id": "blue", "vni": 100})[0], 201)
        # Fill the store's file system from outside, through the controller's own root.
        filler = f"/proc/{proc.pid}/root{store}/filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        failed = None
        for i in range(200):
            st, body = c.request("POST", "/v1/networks", {"id": f"n{i}", "vni": 200 + i,
                                                          "name": "x" * 120})
            if st != 201:
                failed = (st, body)
                break
        self.assertIsNotNone(failed, "the store never filled up")
        self.assertEqual(failed[0], 500, failed)
        self.assertEqual(failed[1]["error"]["code"], "store_failed", failed)
        self.assertIsNone(proc.poll(), "a store error must not end the controller")
        self.assertEqual(c.request("GET", "/healthz", token="")[0], 200)
        names = [n["id"] for n in c.request("GET", "/v1/networks")[1]]
        self.assertIn("blue", names)
        self.assertNotIn(f"n{i}", names, "a failed write changes nothing")
        os.unlink(filler)
        self.assertEqual(c.request("POST", "/v1/networks", {"id": "after", "vni": 999})[0], 201)
        self.assertIsNone(proc.poll())


def main():
    global BUILD
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    BUILD = os.path.abspath(sys.argv[1])
    prog = unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[2:], exit=False)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
