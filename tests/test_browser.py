"""Open every page of the built book in headless Chromium, offline, and check what a reader sees.

The book is the one ``tests/conftest.py`` builds once per session (shared with test_book.py).
It is served on 127.0.0.1 and driven through the Chrome DevTools Protocol (websocket-client).
The browser resolves no host name, so the book must load with no network: anything it tried
to fetch from elsewhere (a CDN script, a web font) fails and is reported. A full-page
screenshot of each page is saved to ``<build>/screenshots/`` and stays there for a reader of the
test run. Every figure of a claim chapter must display at least ``MIN_PANEL_PX`` wide per panel:
a figure of a grid of N columns says so with the class ``cols-N`` (``:figclass:`` of its
``glue:figure``; ``grokcircuit.plots`` draws at most two columns) and reaches a little into the
right-hand margin (``:figwidth: 110%``), since the text column alone is under 700 px wide.

Chromium is Debian's ``chromium`` (``make test`` installs it when missing; ``$CHROMIUM``
names another binary). Without it, or without websocket-client, these tests are skipped.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "_config.yml").read_text())
TOC = yaml.safe_load((REPO / "_toc.yml").read_text())
PAGES = [TOC["root"], *(ch["file"] for part in TOC["parts"] for ch in part["chapters"])]
PAGES += ["genindex", "search"]
CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome"]
WIDTH, HEIGHT, MAX_SHOT_HEIGHT = 1280, 900, 16000  # viewport; screenshots stop at MAX_SHOT_HEIGHT
MIN_PANEL_PX = 350  # displayed width of one panel of a figure, below which its labels cannot be read
CLAIM_CHAPTERS = [p for p in PAGES if re.fullmatch(r"notebooks/0\d_\w+", p)]
VERDICT_CHAPTERS = [p for p in CLAIM_CHAPTERS if not p.startswith("notebooks/01_")]  # 01 sets up the task
COLUMNS = re.compile(r"\bcols-(\d+)\b")
# sphinx-thebe 0.3.1 (jupyter-book 1.0.4) writes its inline configuration into every page twice,
# and the second copy throws. Harmless: live code (thebe) is not enabled in this book.
KNOWN_JS_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
# An exception as Python prints it, at the start of a line (an exercise's hint names one inside).
EXCEPTION = re.compile(r"^(?:Traceback \(most recent call last\)|\w*(?:Error|Exception)\b)", re.M)
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']*""")

pytestmark = pytest.mark.slow

# Everything a reader would notice, measured in the page once MathJax and the fonts are done.
PAGE_FACTS = r"""
(async () => {
  if (window.MathJax?.startup?.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  const all = (sel, root = document) => [...root.querySelectorAll(sel)];
  const main = document.querySelector("main") ?? document.body;
  const pages = new Map();  // url -> parsed page (null if it does not load)
  const load = (url) => {
    if (!pages.has(url)) pages.set(url, fetch(url).then(r => r.ok ? r.text() : null)
      .then(t => t === null ? null : new DOMParser().parseFromString(t, "text/html")));
    return pages.get(url);
  };
  const broken = [];  // same-site links whose page or anchor does not exist
  for (const a of all("a[href]")) {
    const url = new URL(a.href);
    if (url.origin !== location.origin) continue;
    const anchor = decodeURIComponent(url.hash.slice(1));
    url.hash = "";
    const doc = await load(url.href);
    if (doc === null || (anchor && !doc.getElementById(anchor))) broken.push(a.href);
  }
  const citations = [];  // [href, role of the target] for every citation link
  for (const a of all(".bibtex-citation a[href]", main)) {
    const url = new URL(a.href), anchor = decodeURIComponent(url.hash.slice(1));
    url.hash = "";
    const doc = await load(url.href);
    citations.push([a.href, doc?.getElementById(anchor)?.getAttribute("role") ?? null]);
  }
  return {
    title: document.title,
    height: document.documentElement.scrollHeight,
    text: main.innerText,
    outputs: all(".cell_output", main).map(o => o.innerText).join("\n"),
    errors: all(".output.error, .output.traceback, .system-message, .problematic", main).length,
    unresolved: all(".xref", main).filter(x => !x.closest("a")).map(x => x.textContent),
    images: all("img", main).map(i => [i.currentSrc || i.src, i.complete ? i.naturalWidth : 0]),
    figures: all("figure img", main).map(i => [i.currentSrc || i.src, i.getBoundingClientRect().width,
                                                i.closest("figure").className]),
    math: all(".math", main).length,
    mathRendered: all(".math", main).filter(m => m.querySelector("mjx-container")).length,
    mathErrors: all("mjx-merror", main).length,
    links: all("a[href]").map(a => a.href),
    lead: (() => {  // the first verdict and the first figure, and whether they come before the live training
      const live = main.querySelector("section#train-it-yourself");
      const early = (el) => !!el && (!live || !!(el.compareDocumentPosition(live) & Node.DOCUMENT_POSITION_FOLLOWING));
      const v = main.querySelector(".admonition.verdict"), f = main.querySelector("figure");
      return {verdict: v?.innerText ?? null, verdictEarly: early(v), figure: f?.id ?? null,
              caption: f?.querySelector("figcaption")?.innerText ?? null, figureEarly: early(f), live: !!live};
    })(),
    broken,
    citations,
  };
})()
"""


class Chromium:
    """Headless Chromium with one tab, driven over the DevTools Protocol."""

    def __init__(self, exe: str, profile: Path, timeout: float = 60.0) -> None:
        import websocket

        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile / "chromium.log"
        args = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--hide-scrollbars", "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline: only 127.0.0.1
            "about:blank",
        ]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                log_tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{exe} did not start (exit code {self.proc.poll()}): {log_tail}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as resp:
            tab = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws = websocket.create_connection(
            tab["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
        )
        self.last_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable")
        self.resize(HEIGHT)

    def resize(self, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _receive(self) -> dict[str, Any]:
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events that arrive meanwhile are kept)."""
        self.last_id += 1
        self.ws.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while (message := self._receive()).get("id") != self.last_id:
            pass
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message["result"]

    def wait_for(self, event: str) -> None:
        while not any(e["method"] == event for e in self.events):
            self._receive()

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def visit(self, url: str, screenshot: Path) -> dict[str, Any]:
        """Load ``url``, save a full-page PNG and return the page's facts and its network log."""
        self.events.clear()
        navigation = self.call("Page.navigate", url=url)
        if "errorText" in navigation:
            return {"load_error": navigation["errorText"]}
        self.wait_for("Page.loadEventFired")
        facts = self.evaluate(PAGE_FACTS)
        self.resize(min(facts["height"], MAX_SHOT_HEIGHT))  # the whole page in one viewport
        shot = self.call("Page.captureScreenshot", format="png")
        self.resize(HEIGHT)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"]
                for e in self.events if e["method"] == "Network.requestWillBeSent"}
        facts["requests"] = sorted(set(urls.values()))
        responses = [e["params"]["response"] for e in self.events
                     if e["method"] == "Network.responseReceived"]
        facts["failed"] = sorted(
            {urls.get(e["params"]["requestId"], "?") for e in self.events
             if e["method"] == "Network.loadingFailed"}
            | {r["url"] for r in responses if r["status"] >= 400}
        )
        facts["js_errors"] = [
            e["params"]["exceptionDetails"].get("exception", {}).get("description", "?")
            for e in self.events if e["method"] == "Runtime.exceptionThrown"
        ]
        return facts

    def close(self) -> None:
        if getattr(self, "ws", None):
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(html: Path) -> Iterator[str]:
    """The built book served on an ephemeral port of 127.0.0.1; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Chromium]:
    pytest.importorskip("websocket", reason="websocket-client is not installed (extra [test])")
    names = [os.environ["CHROMIUM"]] if "CHROMIUM" in os.environ else CHROMIUM_NAMES
    exe = next(filter(None, map(shutil.which, names)), None)
    if exe is None:
        pytest.skip("no Chromium: install Debian's chromium (make test tries) or set $CHROMIUM")
    try:
        chromium = Chromium(exe, tmp_path_factory.mktemp("chromium"))
    except RuntimeError as err:
        pytest.skip(str(err))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def visit(browser: Chromium, site: str, build_dir: Path) -> Callable[[str], dict[str, Any]]:
    """``visit(page)``: the facts of one page (visited once), screenshot in <build>/screenshots."""
    screenshots = build_dir / "screenshots"
    shutil.rmtree(screenshots, ignore_errors=True)

    @functools.cache
    def visit(page: str) -> dict[str, Any]:
        return browser.visit(site + page + ".html", screenshots / f"{page.replace('/', '_')}.png")

    return visit


def launch_links(page: str) -> tuple[str, str]:
    """The Colab and Binder URLs that _config.yml's launch buttons should give ``page``."""
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    launch = CONFIG["launch_buttons"]
    ui = "lab/tree/" if launch["notebook_interface"] == "jupyterlab" else "tree/"
    colab = f"{launch['colab_url']}/github/{repo}/blob/{branch}/{page}.ipynb"
    binder = f"{launch['binderhub_url']}/v2/gh/{repo}/{branch}?urlpath={ui}{page}.ipynb"
    return colab, binder


def test_html_references_no_external_resource(html: Path):
    """No page pulls a script, style sheet, font or image from the web; MathJax is local."""
    found = {}
    for page in html.rglob("*.html"):
        text = page.read_text()
        tags = re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*>", text)
        problems = [t for t in tags if EXTERNAL.search(t)]
        if 'class="math' in text and not re.search(r'<script[^>]+src="[^"]*_static/mathjax/', text):
            problems.append("math without the local MathJax")
        if problems:
            found[str(page.relative_to(html))] = problems
    assert not found, f"pages that load from the web: {found}"


@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(page: str, visit: Callable[[str], dict[str, Any]], site: str):
    """The page loads offline and shows its figures, math, links, citations and launch buttons."""
    facts = visit(page)
    assert "load_error" not in facts, facts
    problems = []
    if not facts["title"]:
        problems.append("no title")
    if external := [u for u in facts["requests"] if not u.startswith((site, "data:", "blob:"))]:
        problems.append(f"requests that leave the machine: {external}")
    # The browser asks for /favicon.ico by itself; the book has none.
    if failed := [u for u in facts["failed"] if not u.endswith("/favicon.ico")]:
        problems.append(f"resources that failed to load: {failed}")
    if js := [e for e in facts["js_errors"] if not any(k in e for k in KNOWN_JS_ERRORS)]:
        problems.append(f"JavaScript errors: {js}")
    figures = [src for src, _ in facts["images"] if "/_images/" in src]
    if empty := [src for src, width in facts["images"] if width == 0]:
        problems.append(f"images that did not load: {empty}")
    if facts["errors"] or EXCEPTION.search(facts["outputs"]):
        problems.append("an error or traceback in the output")
    if "??" in facts["text"] or facts["unresolved"]:
        problems.append(f"unresolved references: {facts['unresolved']}")
    if facts["broken"]:
        problems.append(f"links to a missing page or anchor: {facts['broken']}")
    if bad := [href for href, role in facts["citations"] if role != "doc-biblioentry"]:
        problems.append(f"citations that point at no bibliography entry: {bad}")
    if facts["mathRendered"] != facts["math"] or facts["mathErrors"]:
        problems.append(f"math typeset {facts['mathRendered']}/{facts['math']}, "
                        f"{facts['mathErrors']} MathJax errors")
    if (REPO / f"{page}.ipynb").is_file():
        if not figures:
            problems.append("a notebook page without a figure")
        if missing := [u for u in launch_links(page) if u not in facts["links"]]:
            problems.append(f"launch buttons missing: {missing}")
    assert not problems, f"{page}: " + "; ".join(problems)


@pytest.mark.parametrize("page", CLAIM_CHAPTERS)
def test_figures_display_each_panel_legibly(page: str, visit: Callable[[str], dict[str, Any]]):
    """At the viewport's width, every figure of a claim chapter gives each of its columns of panels at least
    MIN_PANEL_PX: a one-panel figure that many pixels, a two-column grid (class cols-2) twice as many."""
    figures = visit(page)["figures"]
    assert figures, f"{page}: no figure"
    narrow = []
    for src, width, classes in figures:
        columns = int(m.group(1)) if (m := COLUMNS.search(classes)) else 1
        if width / columns < MIN_PANEL_PX:
            narrow.append(f"{src.rsplit('/', 1)[-1]}: {width:.0f} px for {columns} column(s)")
    assert not narrow, f"{page}: panels narrower than {MIN_PANEL_PX} px: {narrow}"


@pytest.mark.parametrize("page", VERDICT_CHAPTERS)
def test_claim_chapters_open_with_the_committed_evidence(page: str, visit: Callable[[str], dict[str, Any]]):
    """A claim chapter's first verdict and first figure come from the committed laptop-scale runs, before the
    closing section "Train it yourself", which trains live at a preset of the reader's choice."""
    lead = visit(page)["lead"]
    assert lead["live"], f"{page}: no section 'Train it yourself'"
    assert lead["verdict"] and lead["verdictEarly"], f"{page}: no verdict before the live training"
    assert "committed" in lead["verdict"] and "preset ci" not in lead["verdict"], lead["verdict"]
    assert lead["figureEarly"] and (lead["figure"] or "").endswith("-verdict"), lead
    assert "committed" in (lead["caption"] or ""), lead["caption"]


def test_every_page_leaves_a_screenshot(visit: Callable[[str], dict[str, Any]], build_dir: Path):
    """After the visits, <build>/screenshots holds one full-page PNG per page, as tall as the page (up to
    MAX_SHOT_HEIGHT) and as wide as the viewport."""
    missing, wrong = [], []
    for page in PAGES:
        height = min(visit(page)["height"], MAX_SHOT_HEIGHT)
        shot = build_dir / "screenshots" / f"{page.replace('/', '_')}.png"
        if not shot.is_file():
            missing.append(shot.name)
            continue
        head = shot.read_bytes()[:24]  # PNG signature, then the IHDR chunk: width and height, big-endian
        size = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
        if not head.startswith(b"\x89PNG") or size != (WIDTH, height):
            wrong.append(f"{shot.name}: {size}")
    assert not missing and not wrong, f"screenshots missing: {missing}; of the wrong size: {wrong}"


def test_math_is_typeset_offline(visit: Callable[[str], dict[str, Any]], site: str,
                                 browser: Chromium):
    """The bundled MathJax, fetched from the book itself, typesets the math of the background."""
    facts = visit("book/background")
    assert facts["math"] > 10
    assert facts["mathRendered"] == facts["math"] and facts["mathErrors"] == 0
    assert any(u.startswith(site + "_static/mathjax/") for u in facts["requests"])
    # ...with the network really off: the CDN that Sphinx would use is out of reach.
    reached = "fetch('https://cdn.jsdelivr.net/npm/mathjax@3/').then(() => true, () => false)"
    assert browser.evaluate(reached) is False
