#!/usr/bin/python3
"""Drive headless Chromium over the DevTools protocol, the way an operator
uses the pages: load a page, read what it shows, type into a form, click,
take screenshots.  Page scripts are disabled, so whatever works here works
without JavaScript.

  browser.py CHROME_DIR SHOT_DIR < steps.json

Steps (a JSON list), run in order; the first failure stops with exit 1:
  {"go": URL}                      load a page
  {"expect": [TEXT...]}           the page's text holds each TEXT
  {"absent": [TEXT...]}           ... and none of these
  {"status": CODE}                 the last navigation's HTTP status
  {"type": [SELECTOR, TEXT]}      focus a field and type into it
  {"click": SELECTOR}              click it (with the mouse) and wait for
                                   the page it leads to
  {"shot": NAME}                   full-page screenshot SHOT_DIR/NAME.png
Each check prints one "ok - ..." or "FAIL - ..." line."""

import base64
import html.parser
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import websocket

TIMEOUT = 30


class Text(html.parser.HTMLParser):
    """The visible text of a document, as one string."""

    def __init__(self):
        super().__init__()
        self.parts = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "title"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)

    def text(self):
        return " ".join(" ".join(self.parts).split())


class Browser:
    def __init__(self, profile):
        chrome = shutil.which("chromium") or shutil.which("chromium-browser")
        if chrome is None:
            raise SystemExit("browser: chromium is not installed")
        port_file = os.path.join(profile, "DevToolsActivePort")
        if os.path.exists(port_file):
            os.unlink(port_file)    # a previous run's
        self.proc = subprocess.Popen([
            chrome, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-extensions", "--disable-sync", "--no-first-run",
            "--no-default-browser-check", "--metrics-recording-only",
            "--password-store=basic", "--window-size=1100,900",
            "--user-data-dir=" + profile, "--remote-debugging-port=0",
            "about:blank"], stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(profile, "..", "chromium.log"), "w"))
        deadline = time.time() + TIMEOUT
        while not os.path.exists(port_file) or \
                os.path.getsize(port_file) == 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("browser: chromium did not start")
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        req = urllib.request.Request(
            "http://127.0.0.1:%s/json/new?about:blank" % port, method="PUT")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            target = json.load(r)
        self.ws = websocket.create_connection(
            target["webSocketDebuggerUrl"], timeout=TIMEOUT,
            suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("DOM.enable")
        self.call("Emulation.setScriptExecutionDisabled", value=True)
        self.status = None

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method,
                                 "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})
            self.events.append(msg)

    def wait_load(self, main_url=None):
        """Wait for the next load event; note the main document's
        status."""
        deadline = time.time() + TIMEOUT
        while True:
            while self.events:
                ev = self.events.pop(0)
                if ev.get("method") == "Network.responseReceived" and \
                        ev["params"].get("type") == "Document":
                    self.status = ev["params"]["response"]["status"]
                if ev.get("method") == "Page.loadEventFired":
                    return
            if time.time() > deadline:
                raise RuntimeError("the page did not load in %ds" % TIMEOUT)
            self.events.append(json.loads(self.ws.recv()))

    def go(self, url):
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_load()

    def node(self, selector):
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root,
                         selector=selector)["nodeId"]
        if not node:
            raise RuntimeError("nothing on the page matches %s" % selector)
        return node

    def text(self):
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        doc = self.call("DOM.getOuterHTML", nodeId=root)["outerHTML"]
        p = Text()
        p.feed(doc)
        return p.text()

    def type(self, selector, text):
        self.call("DOM.focus", nodeId=self.node(selector))
        self.call("Input.insertText", text=text)

    def click(self, selector):
        node = self.node(selector)
        self.call("DOM.scrollIntoViewIfNeeded", nodeId=node)
        quad = self.call("DOM.getBoxModel", nodeId=node)["model"]["content"]
        x = (quad[0] + quad[4]) / 2
        y = (quad[1] + quad[5]) / 2
        self.events.clear()
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y,
                      button="left", clickCount=1)
        self.wait_load()

    def shot(self, path):
        data = self.call("Page.captureScreenshot", format="png",
                         captureBeyondViewport=True)["data"]
        png = base64.b64decode(data)
        with open(path, "wb") as f:
            f.write(png)
        return png

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def main():
    profile, shots = sys.argv[1], sys.argv[2]
    os.makedirs(profile, exist_ok=True)
    os.makedirs(shots, exist_ok=True)
    steps = json.load(sys.stdin)
    b = Browser(profile)
    fails = 0
    try:
        for st in steps:
            if "go" in st:
                b.go(st["go"])
                print("ok - loaded %s (HTTP %s)" % (st["go"], b.status))
            elif "expect" in st or "absent" in st:
                text = b.text()
                for want in st.get("expect", []):
                    if want in text:
                        print("ok - the page shows %r" % want)
                    else:
                        fails += 1
                        print("FAIL - the page does not show %r; it says: "
                              "%s" % (want, text[:2000]), file=sys.stderr)
                for no in st.get("absent", []):
                    if no in text:
                        fails += 1
                        print("FAIL - the page shows %r" % no,
                              file=sys.stderr)
                    else:
                        print("ok - the page does not show %r" % no)
            elif "status" in st:
                if b.status == st["status"]:
                    print("ok - HTTP status %d" % b.status)
                else:
                    fails += 1
                    print("FAIL - HTTP status %s, not %d" %
                          (b.status, st["status"]), file=sys.stderr)
            elif "type" in st:
                b.type(*st["type"])
            elif "click" in st:
                b.click(st["click"])
                print("ok - clicked %s (HTTP %s)" % (st["click"], b.status))
            elif "shot" in st:
                path = os.path.join(shots, st["shot"] + ".png")
                png = b.shot(path)
                if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000:
                    print("ok - screenshot %s (%d bytes)" % (path, len(png)))
                else:
                    fails += 1
                    print("FAIL - screenshot %s is not a PNG of a page" %
                          path, file=sys.stderr)
            else:
                raise RuntimeError("unknown step %r" % st)
            if fails:
                break
    except (RuntimeError, OSError, websocket.WebSocketException) as e:
        print("FAIL - browser: %s" % e, file=sys.stderr)
        fails += 1
    finally:
        b.close()
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
