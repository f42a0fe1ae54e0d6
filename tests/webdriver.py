"""A small W3C WebDriver client (the protocol chromedriver speaks, over plain HTTP with JSON) for
driving Debian's headless Chromium in the console tests: no PyPI package, the standard library
only.

`Browser()` starts `chromedriver` on a free port and a headless `chromium` session; it is a
context manager that ends both. It does what the tests need: open a URL, find elements by CSS
selector, type, click, read text and the page source, take screenshots, resize the window."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import helpers

# The key under which WebDriver returns an element reference.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriverError(Exception):
    def __init__(self, status, error, message):
        super().__init__(f"{status} {error}: {message}")
        self.error = error


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromedriver_binary():
    return shutil.which("chromedriver")


class Element:
    def __init__(self, browser, ref):
        self.browser = browser
        self.ref = ref

    def _path(self, suffix=""):
        return f"/element/{self.ref}{suffix}"

    def click(self):
        self.browser._cmd("POST", self._path("/click"), {})

    def clear(self):
        self.browser._cmd("POST", self._path("/clear"), {})

    def send_keys(self, text):
        self.browser._cmd("POST", self._path("/value"), {"text": text})

    @property
    def text(self):
        return self.browser._cmd("GET", self._path("/text"))

    def attribute(self, name):
        return self.browser._cmd("GET", self._path(f"/attribute/{name}"))


class Browser:
    def __init__(self, width=1280, height=1000):
        binary, driver = chromium_binary(), chromedriver_binary()
        if not binary or not driver:
            raise RuntimeError("the console tests need Debian's chromium and chromium-driver (scripts/test installs them)")
        self.port = helpers.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._profile = tempfile.mkdtemp(prefix="flotilla-chromium-")
        self._log = open(os.path.join(self._profile, "chromedriver.log"), "ab")
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=self._log, stderr=self._log)
        deadline = time.time() + 30
        while True:
            try:
                if self._raw("GET", "/status")["value"].get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.time() > deadline:
                self.close()
                raise RuntimeError("chromedriver did not become ready")
            time.sleep(0.1)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--user-data-dir={self._profile}/profile", f"--window-size={width},{height}",
                    "--no-first-run", "--no-default-browser-check",
                ],
            },
        }
        out = self._raw("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = out["value"]["sessionId"]

    def _raw(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            payload = json.loads(e.read() or b"{}").get("value", {})
            raise WebDriverError(e.code, payload.get("error"), payload.get("message", "")) from None

    def _cmd(self, method, path, body=None):
        return self._raw(method, f"/session/{self.session}{path}", body)["value"]

    def get(self, url):
        self._cmd("POST", "/url", {"url": url})

    @property
    def url(self):
        return self._cmd("GET", "/url")

    @property
    def title(self):
        return self._cmd("GET", "/title")

    @property
    def source(self):
        return self._cmd("GET", "/source")

    def find(self, css):
        return Element(self, self._cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT])

    def find_all(self, css):
        return [Element(self, e[ELEMENT]) for e in self._cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def text(self, css):
        return self.find(css).text

    def execute(self, script, *args):
        return self._cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def cookies(self):
        return self._cmd("GET", "/cookie")

    def resize(self, width, height):
        self._cmd("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path, full_page=True):
        """Saves a PNG of the page; with full_page the window is first made as tall as the page."""
        if full_page:
            width = self.execute("return window.outerWidth")
            height = self.execute("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
            self.resize(width, min(max(int(height) + 140, 600), 6000))
        png = base64.b64decode(self._cmd("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)
        return path

    def wait_for(self, predicate, timeout=60, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except WebDriverError as e:
                last = e
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r}) at {self.url}")

    def close(self):
        try:
            if getattr(self, "session", None):
                self._raw("DELETE", f"/session/{self.session}")
        except (OSError, WebDriverError):
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
