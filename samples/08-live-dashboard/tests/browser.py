#!/usr/bin/python3
"""The live dashboard in a real browser.

Starts live_dashboard on a free loopback port, opens its page in headless Chromium and reads the
page's counters through the Chrome DevTools Protocol (websocket-client from Debian's
python3-websocket) until every panel — server-sent events, long polling, short polling and
WebSocket — has received at least MIN_MESSAGES quotes with a measured latency. Then it saves a
screenshot (the second argument) and prints the counters. Fails with the page's state and
Chromium's log when a panel stays silent for the whole deadline.

    tests/browser.py build/dev/bin/live_dashboard /tmp/dashboard.png
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket  # python3-websocket

MIN_MESSAGES = 5
DEADLINE_S = 150  # Chromium's first start on a busy 2-core machine can take a while
PATTERNS = ("sse", "longpoll", "shortpoll", "websocket")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, deadline, what):
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


class DevTools:
    """A minimal CDP session on one page target."""

    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, screenshot = sys.argv[1], sys.argv[2]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("FAIL: chromium is not installed (scripts/install-deps installs it)")
        return 1

    work = tempfile.mkdtemp(prefix="patchbay-dashboard-")
    port = free_port()
    url = f"http://127.0.0.1:{port}/?interval=500"
    feed_log = open(os.path.join(work, "dashboard.log"), "w")
    feed = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--interval", "100"],
                            stdout=feed_log, stderr=subprocess.STDOUT)
    chrome = None
    chrome_log_path = os.path.join(work, "chromium.log")
    profile = os.path.join(work, "profile")
    snapshot = None
    try:
        deadline = time.monotonic() + DEADLINE_S

        def page_served():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    return b"patchbay live dashboard" in r.read()
            except OSError:
                if feed.poll() is not None:
                    raise RuntimeError("live_dashboard exited")
                return False

        wait_for(page_served, deadline, "the dashboard did not serve its page")

        # Its own session (setsid): every Chromium process is ended with the group below.
        chrome = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--remote-debugging-port=0", "--remote-allow-origins=*",
             "--window-size=1400,900", f"--user-data-dir={profile}", url],
            stdout=subprocess.DEVNULL, stderr=open(chrome_log_path, "w"), start_new_session=True)

        def devtools_port():
            try:
                with open(os.path.join(profile, "DevToolsActivePort")) as f:
                    return int(f.readline().strip())
            except (OSError, ValueError):
                if chrome.poll() is not None:
                    raise RuntimeError("chromium exited")
                return None

        cdp_port = wait_for(devtools_port, deadline, "chromium did not open its DevTools port")

        def page_target():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{cdp_port}/json/list", timeout=5) as r:
                    targets = json.load(r)
            except OSError:
                return None
            for t in targets:
                if t.get("type") == "page" and t.get("url", "").startswith(f"http://127.0.0.1:{port}/"):
                    return t["webSocketDebuggerUrl"]
            return None

        devtools = DevTools(wait_for(page_target, deadline, "the dashboard page did not open"))

        def all_panels_updated():
            nonlocal snapshot
            snapshot = devtools.evaluate(
                "window.patchbayDashboard ? JSON.stringify(window.patchbayDashboard.snapshot()) : null")
            if not snapshot:
                return False
            snapshot = json.loads(snapshot)
            return all(snapshot[p]["messages"] >= MIN_MESSAGES and snapshot[p]["p50"] is not None
                       for p in PATTERNS)

        wait_for(all_panels_updated, deadline, "not every panel received updates")
        # One more render so that the screenshot shows the counters just read.
        time.sleep(0.5)
        png = devtools.call("Page.captureScreenshot", format="png")["data"]
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(png))
        for p in PATTERNS:
            s = snapshot[p]
            print(f"browser ok: {p:9} messages={s['messages']} requests={s['requests']} bytes={s['bytes']} "
                  f"304s={s['notModified']} gaps={s['gaps']} errors={s['errors']}")
        print(f"screenshot: {screenshot}")
        return 0
    except (TimeoutError, RuntimeError) as e:
        print(f"FAIL: {e}")
        print("page counters:", json.dumps(snapshot))
        feed_log.flush()
        for name in ("dashboard.log", "chromium.log"):
            path = os.path.join(work, name)
            if os.path.exists(path):
                print(f"--- {name} (tail)")
                with open(path, errors="replace") as f:
                    print("".join(f.readlines()[-30:]))
        return 1
    finally:
        if chrome is not None:
            try:
                os.killpg(chrome.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            chrome.wait()
        feed.send_signal(signal.SIGTERM)
        try:
            feed.wait(timeout=20)
        except subprocess.TimeoutExpired:
            feed.kill()
            feed.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
