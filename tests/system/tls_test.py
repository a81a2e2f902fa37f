#!/usr/bin/env python3
"""System test: trust over TLS. A CA made with `cutoverctl pki`, a real cutover-controller on
127.0.0.1 (port 0, temp dir) serving HTTPS and wss://, and Python's ssl module as the clients:

- plain HTTP against the TLS listener gets no HTTP answer;
- REST: the token over TLS works; an admin certificate writes without a token; a reader
  certificate reads and gets 403 on a write;
- the agent channel: an agent certificate naming h1 that says hello as h1 gets its desired
  state; the same certificate saying hello as h2 is closed (1008) naming the certificate's host;
  the shared token without an agent certificate gets 403;
- refused at the handshake: a certificate from another CA, an expired one, and one revoked with
  `cutoverctl pki revoke` once the controller re-read its CRL on SIGHUP (it worked before), whose
  agent session that was open before is closed (1008) at that SIGHUP, as is a REST keep-alive
  connection by a certificate revoked at the same time;
- /metrics counts every refusal by reason, and no key, token or certificate shows in the log;
- without TLS the controller refuses to listen on anything but loopback.

Needs no root. Usage: tls_test.py BUILD_DIR
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from cutover_lab.netlab import wait_until  # noqa: E402
from wsframes import read_text, ws_recv, ws_send  # noqa: E402

BUILD = None
TOKEN = "tls-test-token"


def pki(pki_dir, *args):
    subprocess.run([os.path.join(BUILD, "cli", "cutoverctl"), "--pki-dir", pki_dir, "pki", *args],
                   check=True, capture_output=True, text=True)


def expired_cert(pki_dir, out_dir, cn):
    """A certificate from the lab CA that expired in 2020 (openssl ca: cutoverctl will not)."""
    cnf = os.path.join(out_dir, "ca.cnf")
    for name in ("index.txt",):
        open(os.path.join(out_dir, name), "w").close()
    with open(os.path.join(out_dir, "serial"), "w") as f:
        f.write("1000\n")
    with open(cnf, "w") as f:
        f.write(f"""[ca]
default_ca = c
[c]
database = {out_dir}/index.txt
new_certs_dir = {out_dir}
serial = {out_dir}/serial
default_md = sha256
policy = p
unique_subject = no
[p]
organizationName = supplied
organizationalUnitName = supplied
commonName = supplied
""")
    key, csr, pem = (os.path.join(out_dir, f"expired.{x}") for x in ("key", "csr", "pem"))
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj",
                    f"/O=cutover/OU=agent/CN={cn}", "-out", csr], check=True, capture_output=True)
    subprocess.run(["openssl", "ca", "-batch", "-config", cnf, "-cert",
                    os.path.join(pki_dir, "ca.pem"), "-keyfile", os.path.join(pki_dir, "ca.key"),
                    "-in", csr, "-out", pem, "-startdate", "20200101000000Z", "-enddate",
                    "20200102000000Z", "-notext"], check=True, capture_output=True)
    return pem, key


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="cutover-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.pki = os.path.join(cls.dir, "pki")
        pki(cls.pki, "init", "--days", "2")
        pki(cls.pki, "issue", "controller", "--role", "controller", "--ips", "127.0.0.1")
        for name, role in (("h1", "agent"), ("h3", "agent"), ("ops", "admin"),
                           ("ops2", "admin"), ("viewer", "reader")):
            pki(cls.pki, "issue", name, "--role", role)
        other = os.path.join(cls.dir, "other")
        pki(other, "init")
        pki(other, "issue", "h1", "--role", "agent")
        cls.foreign = (os.path.join(other, "h1.pem"), os.path.join(other, "h1.key"))
        cls.expired = expired_cert(cls.pki, cls.dir, "h1")
        port_file = os.path.join(cls.dir, "port")
        cls.log_path = os.path.join(cls.dir, "controller.log")
        cls.log = open(cls.log_path, "ab")
        p = lambda n: os.path.join(cls.pki, n)  # noqa: E731
        cls.proc = subprocess.Popen(
            [os.path.join(BUILD, "controller", "cutover-controller"), "--listen", "127.0.0.1:0",
             "--port-file", port_file, "--db", os.path.join(cls.dir, "c.db"), "--token", TOKEN,
             "--tls-cert", p("controller.pem"), "--tls-key", p("controller.key"),
             "--tls-ca", p("ca.pem"), "--tls-crl", p("crl.pem"), "--hello-timeout-ms", "3000"],
            stdout=cls.log, stderr=subprocess.STDOUT)
        cls.addClassCleanup(cls.stop)
        cls.port = int(wait_until("controller port file", lambda: read_text(port_file).strip()
                                  if os.path.exists(port_file) else None))

    @classmethod
    def stop(cls):
        if cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()

    def ctx(self, cert=None):
        c = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.pem"))
        if cert:
            c.load_cert_chain(*cert)
        return c

    def mine(self, name):
        return os.path.join(self.pki, f"{name}.pem"), os.path.join(self.pki, f"{name}.key")

    def request(self, method, path, body=None, token=TOKEN, cert=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=5,
                                           context=self.ctx(cert))
        headers = {"Authorization": "Bearer " + token} if token else {}
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers=headers)
            res = conn.getresponse()
            raw = res.read()
            return res.status, (json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode())
        finally:
            conn.close()

    def refused_at_handshake(self, cert):
        """True when a client with `cert` gets no HTTP answer (with TLS 1.3 the server's verdict
        on a client certificate arrives after the client's side of the handshake)."""
        try:
            st, _ = self.request("GET", "/healthz", token=None, cert=cert)
            return False
        except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError):
            return True

    def ws_open(self, cert, token=None):
        s = self.ctx(cert).wrap_socket(socket.create_connection(("127.0.0.1", self.port),
                                                                timeout=5),
                                       server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        s.sendall((f"GET /v1/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            if not chunk:
                break
            head += chunk
        return s, int(head.split(b" ")[1]) if head else 0

    @staticmethod
    def hello(host):
        # Each host its own underlay address (two hosts may not share one).
        ip = f"192.0.2.{10 + sum(host.encode()) % 200}"
        return json.dumps({"type": "hello", "host": {"id": host, "underlay_ip": ip}})

    def metric(self, reason):
        text = self.request("GET", "/metrics", token=None)[1]
        for line in text.splitlines():
            if line.startswith(f'cutover_auth_refusals_total{{reason="{reason}"}}'):
                return float(line.split()[-1])
        return None

    def test_1_plain_http_gets_nothing_useful(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        s.close()
        self.assertFalse(data.startswith(b"HTTP/"), data[:100])

    def test_2_rest_by_token_or_certificate_with_roles(self):
        self.assertEqual(self.request("POST", "/v1/networks", {"id": "blue", "vni": 100})[0], 201)
        self.assertEqual(self.request("POST", "/v1/networks", {"id": "red", "vni": 101},
                                      token=None, cert=self.mine("ops"))[0], 201)
        st, nets = self.request("GET", "/v1/networks", token=None, cert=self.mine("viewer"))
        self.assertEqual((st, sorted(n["id"] for n in nets)), (200, ["blue", "red"]))
        st, body = self.request("POST", "/v1/networks", {"id": "x", "vni": 7}, token=None,
                                cert=self.mine("viewer"))
        self.assertEqual((st, body["error"]["code"]), (403, "forbidden"))
        self.assertEqual(self.request("GET", "/v1/networks", token=None)[0], 401)

    def test_3_an_agent_is_who_its_certificate_says(self):
        s, status = self.ws_open(self.mine("h1"))
        self.assertEqual(status, 101)
        ws_send(s, self.hello("h1"))
        op, payload = ws_recv(s)
        self.assertEqual(json.loads(payload)["type"], "desired")
        s.close()
        s, status = self.ws_open(self.mine("h1"))
        self.assertEqual(status, 101)
        ws_send(s, self.hello("h2"))
        op, payload = ws_recv(s)
        self.assertEqual(op, 8, "closed")
        code = struct.unpack("!H", payload[:2])[0]
        self.assertEqual(code, 1008)
        self.assertIn(b"certificate is for host h1", payload)
        s.close()
        hosts = [h["id"] for h in self.request("GET", "/v1/hosts")[1]]
        self.assertNotIn("h2", hosts, "a refused hello registers nothing")
        s, status = self.ws_open(None, token=TOKEN)
        s.close()
        self.assertEqual(status, 403, "with TLS the token does not make an agent")
        self.assertGreaterEqual(self.metric("certificate_names_another_host"), 1)
        self.assertGreaterEqual(self.metric("no_agent_certificate"), 1)

    def test_4_foreign_expired_and_revoked_certificates_are_refused(self):
        before = self.metric("tls_handshake")
        self.assertTrue(self.refused_at_handshake(self.foreign), "another CA")
        self.assertTrue(self.refused_at_handshake(self.expired), "expired")
        self.assertFalse(self.refused_at_handshake(self.mine("h3")), "valid until revoked")
        live, status = self.ws_open(self.mine("h3"))  # connected before the revocation
        self.assertEqual(status, 101)
        ws_send(live, self.hello("h3"))
        self.assertEqual(json.loads(ws_recv(live)[1])["type"], "desired")
        # So is a REST keep-alive connection by certificate.
        rest = self.ctx(self.mine("ops2")).wrap_socket(
            socket.create_connection(("127.0.0.1", self.port), timeout=5),
            server_hostname="127.0.0.1")
        rest.sendall(b"GET /v1/networks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertTrue(rest.recv(4096).startswith(b"HTTP/1.1 200"))
        pki(self.pki, "revoke", "ops2")
        pki(self.pki, "revoke", "h3")
        self.proc.send_signal(signal.SIGHUP)
        wait_until("the controller to re-read its CRL", lambda: "re-read" in read_text(self.log_path))
        self.assertTrue(self.refused_at_handshake(self.mine("h3")), "revoked")
        self.assertGreaterEqual(self.metric("tls_handshake") - before, 3)
        # The session it had open is closed too, naming why.
        op, payload = ws_recv(live)
        while op != 8:
            op, payload = ws_recv(live)
        live.close()
        self.assertEqual(struct.unpack("!H", payload[:2])[0], 1008)
        self.assertIn(b"certificate revoked", payload)
        try:
            closed = rest.recv(4096) == b""
        except (ssl.SSLError, ConnectionError):
            closed = True
        except socket.timeout:
            closed = False
        rest.close()
        self.assertTrue(closed, "the REST connection of a revoked certificate is closed")
        self.assertEqual(self.metric("certificate_revoked"), 2)

    def test_6_the_console_and_its_event_stream_over_tls(self):
        st, page = self.request("GET", "/", token=None)
        self.assertEqual(st, 200)
        self.assertIn("console.js", page)
        # A reader's certificate may watch: the snapshot, then a change made by an admin.
        s = self.ctx(self.mine("viewer")).wrap_socket(
            socket.create_connection(("127.0.0.1", self.port), timeout=5),
            server_hostname="127.0.0.1")
        self.addCleanup(s.close)
        s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""

        def until(marker):
            nonlocal data
            while marker not in data:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError(f"stream closed before {marker!r}: {data[-300:]!r}")
                data += chunk
        until(b"event: snapshot\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertIn(b"Content-Type: text/event-stream", data)
        self.assertEqual(self.request("POST", "/v1/networks", {"id": "green", "vni": 300})[0], 201)
        until(b'"id":"green"')
        self.assertIn(b"event: topology\n", data)

    def test_0_without_tls_only_loopback(self):
        res = subprocess.run([os.path.join(BUILD, "controller", "cutover-controller"), "--listen",
                              "0.0.0.0:0", "--token", TOKEN, "--db",
                              os.path.join(self.dir, "plain.db")],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(res.returncode, 2)
        self.assertIn("--listen: without TLS the controller listens on loopback only", res.stderr)

    def test_5_no_secret_in_the_log(self):
        log = read_text(self.log_path)
        self.assertNotIn(TOKEN, log)
        for name in ("ca.key", "controller.key", "h1.key"):
            body = read_text(os.path.join(self.pki, name))
            key_line = body.splitlines()[1]
            self.assertNotIn(key_line, log)


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
