#!/usr/bin/env python3
"""System test for the web console in a real browser: a cutover-controller on loopback, two agent
sessions spoken at the byte level (h1 runs a VM called web, h2 is empty; each ACKs what it is sent
and plays its part of a live migration when asked), and Debian's headless Chromium driven through
chromedriver (W3C WebDriver over HTTP, from the standard library):

- the page loads with no token and asks for one; with it, the event stream goes live and the
  hosts, the VM and its port appear;
- the VM is migrated from the page (VM and destination picked, Migrate clicked): its row reaches
  `completed` without a reload, and its timeline has the phases, the events and the VM's pause;
- a measurement posted with `cutoverctl migrations measure` appears in the migration's row;
- a second migration, whose source never pauses, is cancelled from the page: rolled back;
- a screenshot is saved under the build folder (console/console.png), and the page's weight and
  time to first paint are printed.

Needs chromium and chromium-driver (scripts/install-deps); skipped (77) without them.
Usage: console_test.py BUILD_DIR
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import controller_limits_test as limits  # noqa: E402
from controller_limits_test import TOKEN, Controller, ws_upgrade  # noqa: E402
from cutover_lab.etcd import free_ports  # noqa: E402
from cutover_lab.netlab import wait_until  # noqa: E402
from wsframes import ws_recv, ws_send  # noqa: E402

BUILD = None
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
IFACE = {"iface_id": "if-web", "mac": "52:54:00:00:00:01", "network": "blue"}


class FakeAgent:
    """One agent session: hello, then ACK every desired/delta with this host's report. As a
    source asked to migrate (when `follow_migrate`), it pauses the VM and hands it to `peer`, as
    libvirt and the two real agents would report it; asked to abort, it answers "here"."""

    def __init__(self, port, host, ip):
        self.host = host
        self.s, status = ws_upgrade(port)
        assert status == 101, status
        self.lock = threading.Lock()
        self.generation = 0
        self.vms, self.bound, self.paused = {}, set(), set()
        self.peer = None
        self.follow_migrate = True
        self.migrates = []
        self.closed = False
        self.send({"type": "hello", "host": {"id": host, "underlay_ip": ip,
                                             "migration_uri": f"qemu+tcp://{host}/system"}})
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def send(self, msg):
        with self.lock:
            ws_send(self.s, json.dumps(msg))

    def report(self):
        with self.lock:
            msg = {"type": "ack", "generation": self.generation, "bound_ports": sorted(self.bound),
                   "paused_ports": sorted(self.paused), "foreign_running": [], "vms": self.vms}
            ws_send(self.s, json.dumps(msg))

    def run(self):
        self.s.settimeout(None)
        try:
            while True:
                opcode, payload = ws_recv(self.s)
                if opcode == 8:
                    return
                if opcode != 1:
                    continue
                msg = json.loads(payload)
                if msg["type"] in ("desired", "delta"):
                    with self.lock:
                        self.generation = msg.get("generation", msg.get("state", {}).get("generation"))
                    self.report()
                elif msg["type"] == "migrate":
                    self.migrates.append(msg)
                    if self.follow_migrate:
                        threading.Thread(target=self.migrate, args=(msg,), daemon=True).start()
                elif msg["type"] == "abort":
                    self.send({"type": "aborted", "migration": msg["migration"], "where": "here",
                               "detail": "fake libvirt: the job was cancelled"})
        except (OSError, ConnectionError):
            return

    def migrate(self, msg):
        """The VM's last pre-copy pass, its pause, and its resume on the peer."""
        time.sleep(0.4)
        port = next(p for p in self.bound)
        self.paused.add(port)
        self.report()
        time.sleep(0.15)
        self.peer.vms = {"web": [IFACE]}
        self.peer.bound.add(port)
        self.peer.report()
        self.vms, self.bound, self.paused = {}, set(), set()
        self.report()

    def close(self):
        self.s.close()


class WebDriver:
    """The few W3C WebDriver commands the test needs, over chromedriver's HTTP port."""

    def __init__(self, profile_dir):
        self.port = free_ports(1)[0]
        self.log = open(os.path.join(profile_dir, "chromedriver.log"), "ab")
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until("chromedriver", lambda: self.ready(), timeout=20)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1000",
                f"--user-data-dir={os.path.join(profile_dir, 'profile')}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def ready(self):
        try:
            return self.call("GET", "/status", timeout=2)["ready"]
        except (OSError, urllib.error.URLError):
            return False

    def call(self, method, path, body=None, timeout=60):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                return json.loads(res.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"WebDriver {method} {path}: {e.read().decode()[:500]}") from None

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def click(self, css):
        # The page redraws a row when its migration changes state; an element found just before
        # that is stale, and is found again, as a person would click the redrawn button.
        for attempt in range(5):
            try:
                return self.s("POST", f"/element/{self.find(css)}/click", {})
            except AssertionError as e:
                if "stale element" not in str(e) or attempt == 4:
                    raise

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self):
        try:
            self.call("DELETE", f"/session/{self.session}", timeout=20)
        except (AssertionError, OSError, urllib.error.URLError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def row_state(wd, mid):
    return wd.js("const r = document.querySelector(`tr[data-migration='${arguments[0]}']`);"
                 "return r ? r.dataset.state : null;", mid)


class Console(unittest.TestCase):
    def setUp(self):
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.path.exists(path):
                self.skipTest(f"{path} is not installed (scripts/install-deps installs it)")
        self.c = Controller()
        self.addCleanup(self.c.stop)
        for path, body in (("/v1/networks", {"id": "blue", "vni": 100}),):
            self.assertEqual(self.c.request("POST", path, body)[0], 201)
        self.h1 = FakeAgent(self.c.port, "h1", "192.0.2.1")
        self.addCleanup(self.h1.close)
        self.h2 = FakeAgent(self.c.port, "h2", "192.0.2.2")
        self.addCleanup(self.h2.close)
        self.h1.peer, self.h2.peer = self.h2, self.h1
        # web runs on h1: the inventory makes its port (if-web) from the report.
        self.h1.vms = {"web": [IFACE]}
        self.h1.report()
        wait_until("port if-web", lambda: self.c.request("GET", "/v1/ports/if-web")[0] == 200)
        self.h1.bound.add("if-web")
        self.h1.report()
        self.tmp = tempfile.mkdtemp(prefix="cutover-console-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.wd = WebDriver(self.tmp)
        self.addCleanup(self.wd.quit)

    def test_migrate_and_cancel_from_the_page(self):
        wd, url = self.wd, f"http://127.0.0.1:{self.c.port}/"
        wd.go(url)
        wait_until("token asked", lambda: wd.js("return !document.getElementById('login').hidden"))
        self.assertEqual(wd.js("return document.getElementById('status').dataset.state"), "error")
        wd.type("#token", TOKEN)
        wd.click("#login button")
        wait_until("live", lambda: wd.js("return document.getElementById('status').dataset.state")
                   == "live")
        self.assertEqual(wd.js("return getComputedStyle(document.getElementById('login')).display"),
                         "none", "the token form goes once the stream is live")
        wait_until("hosts and the VM", lambda: wd.js(
            "return document.querySelectorAll('#hosts tbody tr').length === 2 &&"
            " [...document.querySelectorAll('#migrate-vm option')].some(o => o.value === 'web')"))
        self.assertIn("if-web", wd.js("return document.querySelector('#ports tbody').textContent"))
        # Migrate web to h2 from the page.
        wd.click("#migrate-to option[value='h2']")
        wd.click("#migrate-go")
        mid = wait_until("a migration row", lambda: wd.js(
            "const r = document.querySelector('tr[data-migration]');"
            "return r ? r.dataset.migration : null;"))
        seen = []

        def completed():
            seen.append(row_state(wd, mid))
            return seen[-1] == "completed"
        wait_until("completed", completed, timeout=30)
        phases = set(wd.js(
            "return [...document.querySelectorAll(`tr[data-timeline='${arguments[0]}'] [data-phase]`)]"
            ".map(g => g.dataset.phase);", mid))
        for p in ("requested", "preparing", "ready", "migrating", "cutting_over", "completed",
                  "migration_started", "source_paused", "destination_bound", "vm_pause"):
            self.assertIn(p, phases)
        self.assertRegex(wd.js(
            "return document.querySelector(`tr[data-migration='${arguments[0]}']`).textContent",
            mid), r"h1 → h2.*completed.*\d+(\.\d)? ms")
        self.assertEqual(self.c.request("GET", f"/v1/ports/if-web")[1]["host"], "h2")
        self.assertIn("● connected", wd.js("return document.querySelector('#hosts tbody').textContent"))
        gen = self.c.request("GET", "/healthz")[1]["generation"]
        wait_until(f"generation {gen} shown", lambda: wd.js(
            "return document.getElementById('generation').textContent") == f"generation {gen}")
        # A measurement posted with cutoverctl appears in the row without a reload.
        token = os.path.join(self.tmp, "token")
        with open(token, "w") as f:
            f.write(TOKEN + "\n")
        r = subprocess.run([os.path.join(BUILD, "cli", "cutoverctl"), "--controller",
                            f"http://127.0.0.1:{self.c.port}", "--token-file", token, "migrations",
                            "measure", mid, "--pps", "1000", "--sent", "5000", "--lost", "0",
                            "--tcp-sessions", "8", "--tcp-survived", "8", "--by", "a test, no traffic"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until("the measurement shown", lambda: "0 of 5000 lost at 1000 pps; TCP 8/8" in wd.js(
            f"return document.querySelector(\"tr[data-migration='{mid}'] td.measured\").textContent"))
        os.makedirs(os.path.join(BUILD, "console"), exist_ok=True)
        shot = os.path.join(BUILD, "console", "console.png")
        wd.screenshot(shot)
        print(f"\nscreenshot: {shot} ({os.path.getsize(shot)} bytes); states seen in the row: "
              f"{[s for i, s in enumerate(seen) if s and (i == 0 or seen[i - 1] != s)]}")
        # Back to h1, but h2's libvirt never pauses the VM: cancelled from the page.
        self.h2.follow_migrate = False
        first_row = wd.find(f"tr[data-migration='{mid}']")
        wait_until("web on h2 in the form", lambda: wd.js(
            "return [...document.querySelectorAll('#migrate-to option')].map(o => o.value)"
            ".join() === 'h1'"))
        wd.click("#migrate-go")
        mid2 = wait_until("a second migration", lambda: wd.js(
            "const r = [...document.querySelectorAll('tr[data-migration]')]"
            ".find(r => r.dataset.migration !== arguments[0]); return r ? r.dataset.migration : null;",
            mid))
        wait_until("asked to migrate", lambda: self.h2.migrates, timeout=15)
        wd.click(f"tr[data-migration='{mid2}'] button.cancel")
        wait_until("rolled back", lambda: row_state(wd, mid2) == "rolled_back", timeout=20)
        self.assertIn("cancel", wd.js(
            f"return document.querySelector(\"tr[data-migration='{mid2}']\").textContent").lower())
        self.assertEqual(self.c.request("GET", f"/v1/ports/if-web")[1]["host"], "h2")
        # Rows are redrawn only when their own migration changes: the first one's element
        # outlived every event of the second.
        self.assertIn(mid, wd.s("GET", f"/element/{first_row}/text"))

    def test_page_weight_and_first_paint(self):
        wd, url = self.wd, f"http://127.0.0.1:{self.c.port}/"
        weight = 0
        for path in ("/", "/console.js", "/console.css"):
            with urllib.request.urlopen(url.rstrip("/") + path, timeout=5) as res:
                body = res.read()
                weight += len(body)
                self.assertIn("default-src 'self'", res.headers["Content-Security-Policy"])
        wd.go(url)
        paint = wait_until("first paint", lambda: wd.js(
            "const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "return p ? p.startTime : null;"))
        print(f"\npage weight: {weight} bytes (HTML + script + style sheet, uncompressed); "
              f"first contentful paint: {paint:.0f} ms")
        self.assertLess(weight, 64 * 1024, "the console stays small")


def main():
    global BUILD
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    BUILD = os.path.abspath(sys.argv[1])
    limits.BUILD = BUILD
    prog = unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[2:], exit=False)
    if prog.result.skipped and not prog.result.failures and not prog.result.errors \
            and prog.result.testsRun == len(prog.result.skipped):
        return 77
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
