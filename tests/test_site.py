"""The built book, checked in a real headless browser.

Debian's Chromium and ChromeDriver (``apt-get install chromium chromium-driver``), driven
from Python with selenium, open every page of ``_build/html`` served over HTTP on
localhost, and check what a reader would notice: console errors, math that MathJax did
not typeset, images that did not load or have no alt text, headings out of order, a
lesson whose Colab link opens another notebook, a search that finds nothing. A full-page
screenshot of every page goes to ``_build/screenshots/NAME.png`` for people to look at,
and ``_build/screenshots/summary.json`` records what each page held.

The module is skipped until the book is built (so the plain ``pytest`` before the build
skips it); then: ``pytest tests/test_site.py``. Without Chromium it is skipped too, except
under CI (``CI`` set), where that is a failure.

The live figures (book/_static/live/vq_live.js): lesson 3's code editor and lesson 5's sampler run the
exported decoder and prior in the page with onnxruntime-web. ``test_live_code_editor`` and
``test_live_sampler`` use them as a reader would, compare what the canvases show with what Keras computes,
time them, and write ``_build/screenshots/live.json`` (times, download sizes, differences) and a screenshot
of each widget. Their files come from ``python -m vqvae_lessons export-onnx`` before the build (``.ci/run``).

A book built elsewhere (say without executing the notebooks, ``--path-output DIR``) is tested with
``BOOK_HTML=DIR/_build/html pytest tests/test_site.py``.

MathJax: the book loads MathJax 3 from its CDN (Sphinx's default ``mathjax_path``), which
a machine without internet access cannot reach. When a local copy of the same major
version exists (``npm install --prefix _build/mathjax mathjax@3``, as ``.ci/run`` does, or
the ``es5`` folder named by ``MATHJAX_DIR``), the test server serves it in place of the
CDN's, so the pages' math is typeset by the same MathJax a reader gets.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import math
import os
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))  # a build elsewhere: BOOK_HTML=DIR/_build/html
SCREENSHOTS = ROOT / "_build" / "screenshots"
MATHJAX_DIR = Path(os.environ.get("MATHJAX_DIR", ROOT / "_build/mathjax/node_modules/mathjax/es5"))
MATHJAX_CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/mathjax@(\d+)[^/\"']*/es5/")
MATHJAX_LOCAL = "/__mathjax__/"

# Third-party resources that may fail to load without harm, and why. Nothing else may
# fail: a page's own files, and MathJax, must all load.
HARMLESS_THIRD_PARTY = {
    # The "Open in Colab" badge image at the top of each lesson: a decoration of a link that
    # works without it (its alt text says "Open In Colab"); offline it cannot load.
    "https://colab.research.google.com/assets/colab-badge.svg",
}
MAX_SCREENSHOT_HEIGHT = 16_000  # Chrome's limit on one capture is about 16,384 pixels

pytestmark = pytest.mark.skipif(
    not (HTML / "index.html").exists(),
    reason="the book is not built: run `jupyter-book build . -W --keep-going` first",
)


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def _repository_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"].rstrip("/"), config["repository"].get("branch", "main")


PAGES = _toc_files()
LESSONS = [page for page in PAGES if (ROOT / f"{page}.ipynb").exists()]


# --------------------------------------------------------------------------- the server


def _local_mathjax_major():
    try:
        return json.loads((MATHJAX_DIR.parent / "package.json").read_text())["version"].split(".")[0]
    except (OSError, ValueError, KeyError):
        return None


def _local_mathjax(match):
    """The CDN's MathJax URL, pointed at the local copy when its major version is the same."""
    return MATHJAX_LOCAL if match.group(1) == _local_mathjax_major() else match.group(0)


class _BookHandler(http.server.SimpleHTTPRequestHandler):
    """Serves _build/html, with MathJax from the local copy when there is one."""

    # The live figures' runtime: ES modules must be served as JavaScript, whatever this machine's MIME table says.
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm", ".onnx": "application/octet-stream"}

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        path = unquote(urlsplit(self.path).path)
        if path.startswith(MATHJAX_LOCAL) and MATHJAX_DIR.is_dir():
            return self._send_file(MATHJAX_DIR, path[len(MATHJAX_LOCAL) :])
        if path.endswith(".html") and MATHJAX_DIR.is_dir():
            file = HTML / path.lstrip("/")
            if file.is_file():
                body = MATHJAX_CDN.sub(_local_mathjax, file.read_text(encoding="utf-8")).encode()
                return self._send(body, "text/html; charset=utf-8")
        return super().do_GET()

    def _send_file(self, folder, relative):
        file = (folder / relative).resolve()
        if not file.is_file() or folder.resolve() not in file.parents:
            return self.send_error(404)
        return self._send(file.read_bytes(), self.guess_type(str(file)))

    def _send(self, body, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site():
    """The base URL of _build/html served on localhost."""
    handler = functools.partial(_BookHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- the browser


def _find(*names):
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = _find(os.environ.get("CHROMIUM", "chromium"), "/usr/bin/chromium", "chromium-browser")
    chromedriver = _find(os.environ.get("CHROMEDRIVER", "chromedriver"), "/usr/bin/chromedriver")
    missing = [name for name, found in (("chromium", chromium), ("chromedriver", chromedriver)) if not found]
    if missing:
        message = f"{' and '.join(missing)} not found: apt-get install -y chromium chromium-driver"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    try:
        from selenium import webdriver
    except ImportError:
        message = "selenium is not installed: pip install -r requirements.txt"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A Service with an explicit path: selenium never tries to download a driver.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def summary():
    """What each page held, written to _build/screenshots/summary.json at the end."""
    record = {}
    yield record
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "summary.json").write_text(json.dumps(record, indent=2) + "\n")


# JavaScript run in the page ----------------------------------------------------------

WAIT_FOR_PAGE = """
const done = arguments[arguments.length - 1];
(async () => {
  if (document.readyState !== "complete") {
    await new Promise((resolve) => window.addEventListener("load", resolve, {once: true}));
  }
  for (const img of document.images) img.loading = "eager";
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await Promise.all(Array.from(document.images, (img) => img.complete ? null :
      new Promise((resolve) => { img.onload = img.onerror = resolve; })));
  done(null);
})().catch((error) => done(String(error)));
"""

INSPECT_PAGE = """
const article = document.querySelector("article") || document.body;
const maths = Array.from(document.querySelectorAll("article .math"));
const url = (src) => new URL(src, document.baseURI).href;
return {
  lang: document.documentElement.getAttribute("lang"),
  title: document.title,
  mathjax: Array.from(document.scripts, (s) => s.src).filter((src) => /mathjax/i.test(src)),
  math_elements: maths.length,
  math_untypeset: maths.filter((m) => !m.querySelector("mjx-container")).map((m) => m.textContent.slice(0, 80)),
  mjx_containers: document.querySelectorAll("mjx-container").length,
  math_errors: Array.from(document.querySelectorAll("mjx-merror"), (e) => e.textContent.slice(0, 80)),
  images: Array.from(document.images, (img) => ({
    src: url(img.getAttribute("src") || ""),
    alt: img.getAttribute("alt"),
    in_article: article.contains(img),
    captioned: Boolean(img.closest("figure") && img.closest("figure").querySelector("figcaption")),
    loaded: img.complete && img.naturalWidth > 0,
    width: img.naturalWidth,
  })),
  headings: Array.from(article.querySelectorAll("h1, h2, h3, h4, h5, h6"), (h) => [
    Number(h.tagName[1]), h.textContent.replace(/[#¶]\\s*$/, "").trim().slice(0, 60)]),
  colab_links: Array.from(document.querySelectorAll("a[href*='colab.research.google.com']"), (a) => a.href),
  stray_dollars: (() => {
    // A "$" left in the text outside code and math is math that the Markdown parser missed.
    const found = [];
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const skip = node.parentElement.closest("pre, code, .math, mjx-container, script, style, .highlight");
      if (!skip && node.textContent.includes("$")) found.push(node.textContent.trim().slice(0, 80));
    }
    return found;
  })(),
  figures_as_text: Array.from(article.querySelectorAll(".cell_output pre"), (pre) => pre.textContent.trim())
      .filter((text) => /^<Figure size [0-9.]+x[0-9.]+ with \\d+ Axes>$/.test(text)),
};
"""


def _load(browser, url):
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(url)
    error = browser.execute_async_script(WAIT_FOR_PAGE)
    assert error is None, f"{url}: waiting for the page failed: {error}"


def _is_harmless(entry, site):
    message = entry.get("message", "")
    if "Failed to load resource" not in message:
        return False
    if any(message.startswith(url) for url in HARMLESS_THIRD_PARTY):
        return True
    # The browser asks for /favicon.ico by itself; the book declares no icon, so that 404 is
    # not the page's doing (a page's own <link rel="icon"> that fails is still an error).
    return message.startswith(site + "favicon.ico ")


def _screenshot(browser, name):
    """A full-page PNG: make the viewport as tall as the page, capture, restore."""
    # Transitions (the sidebars slide) would be caught half-way when the viewport grows.
    browser.execute_script(
        "const style = document.createElement('style');"
        "style.textContent = '*, *::before, *::after { transition: none !important; animation: none !important; }';"
        "document.head.appendChild(style);"
    )
    width = browser.execute_script("return window.innerWidth")
    height = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    height = min(math.ceil(height), MAX_SCREENSHOT_HEIGHT)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        time.sleep(0.5)  # let the layout settle at the new size
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


# --------------------------------------------------------------------------- the tests


def test_every_page_of_the_toc_was_built():
    missing = [page for page in PAGES if not (HTML / f"{page}.html").is_file()]
    assert not missing, f"pages in _toc.yml missing from _build/html: {missing}"


_VISITS = {}


def _visit(page, site, browser):
    """Open a page once: what it holds, what the console said, and its screenshot."""
    if page not in _VISITS:
        if not (HTML / f"{page}.html").is_file():
            pytest.fail(f"{page}.html was not built")
        _load(browser, site + f"{page}.html")
        info = browser.execute_script(INSPECT_PAGE)
        console = browser.get_log("browser")
        _VISITS[page] = info, console, _screenshot(browser, Path(page).name)
    return _VISITS[page]


def _has_no_alt_text(image):
    """No alt text, or only a file name (myst-nb's default); a figure with a caption is fine."""
    alt = (image["alt"] or "").strip()
    if image["captioned"]:
        return False
    return not alt or bool(re.fullmatch(r"\S*\.(png|jpe?g|svg|gif|webp)", alt, flags=re.IGNORECASE))


@pytest.mark.parametrize("page", PAGES)
def test_page(page, site, browser, summary):
    """The page loads without console errors; its math, images and headings are right."""
    info, console, shot = _visit(page, site, browser)
    problems = []

    if info["lang"] != "en":
        problems.append(f'<html lang="{info["lang"]}">, expected "en"')

    severe = [entry["message"] for entry in console if entry["level"] == "SEVERE" and not _is_harmless(entry, site)]
    problems += [f"console error: {message}" for message in severe]

    if info["math_elements"]:
        if info["mjx_containers"] == 0:
            problems.append(
                f"{info['math_elements']} math elements but MathJax typeset none (MathJax from {info['mathjax']}; "
                "offline, install a local copy: npm install --prefix _build/mathjax mathjax@3)"
            )
        elif info["math_untypeset"]:
            problems.append(f"math MathJax did not typeset: {info['math_untypeset'][:5]}")
    problems += [f"MathJax error in: {text}" for text in info["math_errors"]]
    problems += [f"a $ outside math (math the Markdown parser missed?): {text!r}" for text in info["stray_dollars"]]

    images = [image for image in info["images"] if image["src"] not in HARMLESS_THIRD_PARTY]
    problems += [f"image did not load: {image['src']}" for image in images if not image["loaded"]]
    problems += [
        f"a matplotlib figure shown as the text {text!r} instead of a picture: the notebook needs "
        "`%matplotlib inline` before it shows a Figure made without pyplot"
        for text in info["figures_as_text"]
    ]

    levels = [level for level, _ in info["headings"]]
    if levels and levels[0] != 1:
        problems.append(f"the first heading is h{levels[0]}, not h1: {info['headings'][0]}")
    if levels.count(1) != 1:
        problems.append(f"{levels.count(1)} h1 headings, expected 1")
    for (before, _), (level, text) in zip(info["headings"], info["headings"][1:], strict=False):
        if level > before + 1:
            problems.append(f"heading h{level} {text!r} follows h{before}: a level is skipped")

    summary[page] = {
        "title": info["title"],
        "screenshot": os.path.relpath(shot, ROOT),
        "images_checked": len(images),
        "images_skipped_third_party": len(info["images"]) - len(images),
        "figures": sum(1 for image in images if image["in_article"] and "/_images/" in image["src"]),
        "figures_without_alt_text": sum(1 for image in images if image["in_article"] and _has_no_alt_text(image)),
        "math_elements": info["math_elements"],
        "mjx_containers": info["mjx_containers"],
        "headings": len(levels),
        "console_messages": len(console),
    }
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("page", PAGES)
def test_images_have_alt_text(page, site, browser):
    """Screen readers read an image's alt text; myst-nb's default for a cell's output is its
    file name. A lesson gives a figure its alt text in the cell's metadata:
    ``"mystnb": {"image": {"alt": "..."}}`` (or a caption: ``"mystnb": {"figure": {"caption": "..."}}``)."""
    info, _, _ = _visit(page, site, browser)
    missing = [
        image["src"].rsplit("/", 1)[-1]
        for image in info["images"]
        if image["in_article"] and image["src"] not in HARMLESS_THIRD_PARTY and _has_no_alt_text(image)
    ]
    assert not missing, f"{page}: {len(missing)} images without alt text: {missing}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_opens_its_own_notebook_in_colab(lesson, site, browser):
    repository, branch = _repository_url()
    github = repository.removeprefix("https://github.com/")
    expected = f"https://colab.research.google.com/github/{github}/blob/{branch}/{lesson}.ipynb"
    _load(browser, site + f"{lesson}.html")
    links = browser.execute_script(INSPECT_PAGE)["colab_links"]
    notebook_links = [link for link in links if "/github/" in link]
    assert notebook_links, f"{lesson}: no link opens a notebook in Colab (links: {links})"
    wrong = [link for link in notebook_links if link != expected]
    assert not wrong, f"{lesson}: Colab links that do not open {expected}: {wrong}"


def test_math_is_rendered_somewhere(summary):
    """Guards the per-page check: the glossary, at least, is full of math."""
    glossary = next((page for page in PAGES if page.endswith("glossary")), None)
    if glossary is None or glossary not in summary:
        pytest.skip("the glossary page was not checked")
    assert summary[glossary]["mjx_containers"] > 10, summary[glossary]


def test_search_finds_codebook(site, browser):
    _load(browser, site + "search.html?q=codebook")
    results = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const start = Date.now();
        (function poll() {
          const summary = document.querySelector("#search-results .search-summary, p.search-summary");
          const items = document.querySelectorAll("#search-results ul.search li");
          // Sphinx fills the summary in only once the last result is listed
          const finished = summary && summary.textContent.trim() !== "";
          if (finished || Date.now() - start > 30000) {
            const link = (li) => (li.querySelector("a") ? li.querySelector("a").href : li.textContent);
            done({summary: summary ? summary.textContent : null, items: Array.from(items, link)});
          } else setTimeout(poll, 200);
        })();
        """
    )
    _screenshot(browser, "search")
    console = browser.get_log("browser")
    severe = [entry["message"] for entry in console if entry["level"] == "SEVERE" and not _is_harmless(entry, site)]
    assert not severe, f"console errors on the search page: {severe}"
    assert results["summary"] and "found" in results["summary"], f"the search did not finish: {results}"
    assert results["items"], f"searching for 'codebook' found nothing: {results['summary']!r}"
    assert any("glossary" in item for item in results["items"]), results["items"]


def test_no_output_of_the_built_lessons_shows_a_reference_solution():
    """The book build runs every lesson top to bottom, as "Run all" in Colab does: none of its
    outputs may hold a line of an exercise's reference solution (they sit folded in Markdown)."""
    import json

    from vqvae_lessons import exercises

    executed = sorted((ROOT / "_build" / "jupyter_execute" / "book").glob("0*.ipynb"))
    assert executed, "the build wrote no executed lessons to _build/jupyter_execute/book"
    answers = {line for name in exercises.names() for line in exercises.solution_source(name).splitlines()
               if len(line.strip()) >= 20 and not line.strip().startswith(("def ", '"""', "#"))}
    for path in executed:
        outputs = json.dumps([cell.get("outputs", []) for cell in json.loads(path.read_text())["cells"]])
        shown = [line.strip() for line in answers if json.dumps(line.strip())[1:-1] in outputs]
        assert not shown, f"{path.name}: outputs show reference solutions: {shown[:3]}"


# --------------------------------------------------------------------------- the live figures

LIVE_PAGE = "book/03_vqvae"
LIVE_REPORT = SCREENSHOTS / "live.json"
# The widget draws each pixel v in [0, 1] as the grey 255 - round(255 v): reading it back loses up to 0.5/255,
# and the ONNX decoder differs from Keras's by about 1e-6 (export.TOLERANCE allows 1e-4). One grey level covers both.
CANVAS_TOLERANCE = 1 / 255
LIVE_WEIGHT_LIMIT = 10_000_000  # bytes a lesson page's live figures may add

WAIT_FOR_WIDGET = """
const [selector, decodes, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const start = performance.now();
(function poll() {
  const root = document.querySelector(selector);
  const state = root && root.dataset.state;
  if (state === "unavailable" || (state === "ready" && Number(root.dataset.decodes || 0) >= decodes)) {
    const widget = window.vqLive.widgets.find((w) => w.root === root);
    done({state, decodes: Number(root.dataset.decodes || 0), codes: Array.from(widget.codes || []),
          timings: widget.timings, status: widget.status.textContent, waited_ms: performance.now() - start});
  } else if (performance.now() - start > 60000) done({state, timeout: true});
  else setTimeout(poll, 20);
})();
"""

CANVAS_PIXELS = """
const canvas = document.querySelector(arguments[0]);
const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
return Array.from({length: rgba.length / 4}, (_, i) => 1 - rgba[4 * i] / 255);
"""

LIVE_DOWNLOADS = """
return performance.getEntriesByType("resource").filter((e) => e.name.includes("/_static/live/"))
    .map((e) => ({name: e.name.split("/_static/live/")[1], transfer: e.transferSize, body: e.encodedBodySize}));
"""


def _require_live(page, kind, generated_file):
    """Skip a book built before ``page`` had its live figure; fail where the lesson lost it, or where the
    figure's files were not exported before the build."""
    marker = f'data-vq-live="{kind}"'
    if marker not in (HTML / f"{page}.html").read_text(encoding="utf-8"):
        if marker in (ROOT / f"{page}.ipynb").read_text(encoding="utf-8"):
            pytest.skip(f"{page}.html was built before its live {kind} was added: build the book again")
        pytest.fail(f"{page} has no live {kind} ({marker}) any more")
    if not (HTML / "_static" / "live" / "generated" / generated_file).is_file():
        pytest.fail(f"the live {kind}'s files were not built: python -m vqvae_lessons export-onnx --out "
                    "book/_static/live/generated --prior gated-vqvae --sweep --runtime "
                    "_build/onnxruntime-web/node_modules/onnxruntime-web/dist before the build (.ci/run does it)")


def _scroll_to(browser, selector):
    browser.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", selector)


def _element_screenshot(browser, element, name):
    """A PNG of one element, whole even where it is taller than the window: the window grows to hold it, the
    element is scrolled to the top, the window captured and cropped to the element's box."""
    import io

    from PIL import Image

    height = browser.execute_script("return arguments[0].getBoundingClientRect().height", element)
    width = browser.execute_script("return window.innerWidth")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": math.ceil(height) + 300, "deviceScaleFactor": 1, "mobile": False})
    try:
        time.sleep(0.3)
        browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", element)
        box = browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                     "return [r.left, r.top, r.right, r.bottom];", element)
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"])))
    path = SCREENSHOTS / f"{name}.png"
    image.crop(tuple(round(v) for v in box)).save(path)
    return path


@pytest.fixture(scope="module")
def live_report():
    record = {}
    yield record
    if record:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        LIVE_REPORT.write_text(json.dumps(record, indent=2) + "\n")


def _live_page_finished(browser, site, widget, name):
    """What every live widget's test ends with: no console error, the page's extra download under
    LIVE_WEIGHT_LIMIT, and a screenshot of the widget (``_build/screenshots/NAME.png``); returns the downloads
    and their bytes."""
    console = browser.get_log("browser")
    severe = [e["message"] for e in console if e["level"] == "SEVERE" and not _is_harmless(e, site)]
    assert not severe, f"console errors: {severe}"
    downloads = browser.execute_script(LIVE_DOWNLOADS)
    weight = sum(max(d["transfer"], d["body"]) for d in downloads)
    assert weight < LIVE_WEIGHT_LIMIT, downloads
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _element_screenshot(browser, widget, name)
    return downloads, weight


def _screenshot_path(name):
    return os.path.relpath(SCREENSHOTS / f"{name}.png", ROOT)


def test_live_code_editor(site, browser, live_report):
    """Lesson 3's code editor runs the exported decoder in the page: it loads, a click on a position and one on
    a code decode the edited map to what Keras's decoder gives (within CANVAS_TOLERANCE), the lesson's edit
    buttons and the arrow keys work, nothing is logged as an error, and its downloads stay under 10 MB."""
    import numpy as np
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from vqvae_lessons import export, pretrained

    _require_live(LIVE_PAGE, "code-editor", export.DECODER_FILE)
    selector = '[data-vq-live="code-editor"]'
    _load(browser, site + f"{LIVE_PAGE}.html")
    _scroll_to(browser, selector)  # a widget starts when the reader comes near it
    ready = browser.execute_async_script(WAIT_FOR_WIDGET, selector, 1)
    assert ready.get("state") == "ready", f"the editor did not start: {ready}"
    data = json.loads((HTML / "_static/live/generated/codes.json").read_text())
    model = pretrained.load(data["model"])
    digits = {d["label"]: np.array(d["codes"], "int32").reshape(7, 7) for d in data["digits"]}
    lesson = data["lesson"]
    assert np.array_equal(np.reshape(ready["codes"], (7, 7)), digits[lesson["digit"]])

    def shown():
        return np.array(browser.execute_script(CANVAS_PIXELS, f"{selector} .vq-live-frame canvas")).reshape(28, 28)

    def click(element):  # in the middle of the window, clear of the theme's sticky header
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    def keras_image(codes):
        return model.decode(np.reshape(codes, (1, 7, 7)).astype("int32"))[0, ..., 0]

    differences = [float(np.abs(shown() - keras_image(ready["codes"])).max())]
    before = shown()

    # a click on a position, then on a code: the code that changes this digit's image the most there
    row, col = 2, 4
    widget = browser.find_element(By.CSS_SELECTOR, selector)
    cells = widget.find_elements(By.CSS_SELECTOR, ".vq-live-cell")
    click(cells[row * 7 + col])
    assert cells[row * 7 + col].get_attribute("aria-selected") == "true"
    variants = np.repeat(digits[lesson["digit"]][None], 128, axis=0)
    variants[:, row, col] = np.arange(128)
    code = int(np.abs(model.decode(variants)[..., 0] - before).sum(axis=(1, 2)).argmax())
    button = widget.find_element(By.CSS_SELECTOR, f'.vq-live-code[data-code="{code}"]')
    clicked = time.perf_counter()
    click(button)
    edited = browser.execute_async_script(WAIT_FOR_WIDGET, selector, 2)
    click_to_image_ms = 1000 * (time.perf_counter() - clicked)
    expected = digits[lesson["digit"]].copy()
    expected[row, col] = code
    assert np.array_equal(np.reshape(edited["codes"], (7, 7)), expected), edited
    after = shown()
    differences.append(float(np.abs(after - keras_image(expected)).max()))
    assert np.abs(after - before).max() > 0.1, "the decoded image did not change"

    # the lesson's edit: rows 4-6 from the partner digit; then the arrow keys move the chosen position
    click(widget.find_element(By.CSS_SELECTOR, '[data-edit="copy-rows"]'))
    copied = browser.execute_async_script(WAIT_FOR_WIDGET, selector, 3)
    partner = dict(map(tuple, lesson["pairs"])).get(lesson["digit"], next(d for d in digits if d != lesson["digit"]))
    expected[lesson["swap_from_row"]:] = digits[partner][lesson["swap_from_row"]:]
    assert np.array_equal(np.reshape(copied["codes"], (7, 7)), expected), copied
    differences.append(float(np.abs(shown() - keras_image(expected)).max()))
    cells[row * 7 + col].send_keys(Keys.ARROW_DOWN)
    assert cells[(row + 1) * 7 + col].get_attribute("aria-selected") == "true"
    assert browser.switch_to.active_element == cells[(row + 1) * 7 + col]
    palette = widget.find_elements(By.CSS_SELECTOR, ".vq-live-code")
    palette[0].send_keys(Keys.ARROW_RIGHT)  # the palette is one tab stop; the arrow keys move within it
    assert browser.switch_to.active_element == palette[1]

    assert max(differences) <= CANVAS_TOLERANCE, f"canvas against Keras: {differences}"
    downloads, weight = _live_page_finished(browser, site, widget, "live-code-editor")
    live_report["code_editor"] = {
        "page": LIVE_PAGE,
        "ready_since_navigation_ms": round(ready["timings"]["ready_since_navigation_ms"], 1),
        "ready_since_module_ms": round(ready["timings"]["ready_ms"], 1),
        "decode_ms": round(edited["timings"]["last_decode_ms"], 2),
        "click_to_image_ms": round(click_to_image_ms, 1),
        "canvas_max_difference": differences,
        "canvas_tolerance": CANVAS_TOLERANCE,
        "downloads": downloads,
        "download_bytes": weight,
        "screenshot": _screenshot_path("live-code-editor"),
    }


SAMPLER_PAGE = "book/05_pixelcnn_prior"
JUDGE_CONFIDENCE = 0.8  # the judge's mean confidence the page's 16 samples at temperature 1 must reach

WAIT_FOR_SAMPLES = """
const [selector, samples, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const start = performance.now();
(function poll() {
  const root = document.querySelector(selector);
  const state = root && root.dataset.state;
  if (state === "unavailable" || (state === "ready" && Number(root.dataset.samples || 0) >= samples)) {
    const widget = window.vqLive.widgets.find((w) => w.root === root);
    done({state, samples: Number(root.dataset.samples || 0), codes: Array.from(widget.codes || []),
          timings: widget.timings, status: widget.status.textContent});
  } else if (performance.now() - start > 120000) done({state, timeout: true});
  else setTimeout(poll, 50);
})();
"""

SAMPLE_PIXELS = """
return Array.from(document.querySelectorAll(arguments[0] + " canvas.vq-live-sample"), (canvas) => {
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  return Array.from({length: rgba.length / 4}, (_, i) => 1 - rgba[4 * i] / 255);
});
"""


def _greedy_maps(prior, n=1):
    """The maps a prior gives when every position takes its most likely code (49 full passes)."""
    import keras
    import numpy as np

    codes = np.zeros((n, 7, 7), "int32")
    for position in range(49):
        row, col = divmod(position, 7)
        codes[:, row, col] = keras.ops.convert_to_numpy(prior(codes))[:, row, col].argmax(-1)
    return codes


def test_live_sampler(site, browser, live_report):
    """Lesson 5's sampler draws maps from the exported prior in the page: at temperature 0 exactly the maps of
    the Keras prior (float16-rounded weights, as exported) taking its most likely code everywhere; at
    temperature 1, 16 non-blank digits that the course's judge reads with confidence, decoded as Keras decodes
    them; the same seed draws the same maps; no console error; downloads under 10 MB."""
    import numpy as np
    from selenium.webdriver.common.by import By

    from vqvae_lessons import export, pretrained

    _require_live(SAMPLER_PAGE, "sampler", export.PRIOR_FILE)
    selector = '[data-vq-live="sampler"]'
    _load(browser, site + f"{SAMPLER_PAGE}.html")
    _scroll_to(browser, selector)  # a widget starts when the reader comes near it
    first = browser.execute_async_script(WAIT_FOR_SAMPLES, selector, 1)
    assert first.get("state") == "ready", f"the sampler did not start: {first}"
    info = json.loads((HTML / "_static/live/generated/prior.json").read_text())
    prior = export.rounded_to_float16(pretrained.load(info["model"]))
    vqvae = pretrained.load(info["vqvae"])
    widget = browser.find_element(By.CSS_SELECTOR, selector)

    def draw(temperature, seed, count):
        browser.execute_script(
            "const [root, t, s] = arguments;"
            "const range = root.querySelector('input[type=range]'); range.value = t;"
            "range.dispatchEvent(new Event('input', {bubbles: true}));"
            "root.querySelector('.vq-live-seed').value = s;", widget, str(temperature), str(seed))
        button = widget.find_element(By.CSS_SELECTOR, '[data-action="sample"]')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        result = browser.execute_async_script(WAIT_FOR_SAMPLES, selector, count)
        assert result.get("state") == "ready" and result["samples"] == count, result
        return result

    greedy = draw(0, 0, 2)
    maps = np.reshape(greedy["codes"], (16, 7, 7))
    assert np.array_equal(maps, np.repeat(_greedy_maps(prior), 16, axis=0)), "temperature 0 differs from Keras"

    warm = draw(1, 7, 3)
    maps = np.reshape(warm["codes"], (16, 7, 7))
    shown = np.array(browser.execute_script(SAMPLE_PIXELS, selector)).reshape(16, 28, 28)
    decoded = vqvae.decode(maps)[..., 0]
    canvas_difference = float(np.abs(shown - decoded).max())
    assert canvas_difference <= CANVAS_TOLERANCE, canvas_difference
    ink = shown.mean(axis=(1, 2))
    assert ink.min() > 0.03, f"blank samples: mean ink {ink}"
    probabilities = pretrained.shipped_judge().probabilities(shown[..., None])
    confidence = float(probabilities.max(-1).mean())
    assert confidence >= JUDGE_CONFIDENCE, (confidence, probabilities.argmax(-1))
    assert len({m.tobytes() for m in maps}) > 8, "the 16 maps are mostly the same"
    again = draw(1, 7, 4)
    assert again["codes"] == warm["codes"], "the same seed drew other maps"

    downloads, weight = _live_page_finished(browser, site, widget, "live-sampler")
    live_report["sampler"] = {
        "page": SAMPLER_PAGE,
        "loaded_since_navigation_ms": round(first["timings"]["loaded_since_navigation_ms"], 1),
        "ready_since_navigation_ms": round(first["timings"]["ready_since_navigation_ms"], 1),  # first draw shown
        "sample_16_ms": round(warm["timings"]["last_sample_ms"], 1),
        "of_which_prior_ms": round(warm["timings"]["last_prior_ms"], 1),
        "judge_mean_confidence": round(confidence, 4),
        "judge_classes": np.bincount(probabilities.argmax(-1), minlength=10).tolist(),
        "canvas_max_difference": canvas_difference,
        "canvas_tolerance": CANVAS_TOLERANCE,
        "downloads": downloads,
        "download_bytes": weight,
        "screenshot": _screenshot_path("live-sampler"),
    }


EXPLORER_PAGE = "book/04_codebook_size"

WAIT_FOR_POINT = """
const [selector, decodes, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const start = performance.now();
(function poll() {
  const root = document.querySelector(selector);
  const state = root && root.dataset.state;
  if (state === "unavailable" || (state === "ready" && Number(root.dataset.decodes || 0) >= decodes)) {
    const widget = window.vqLive.widgets.find((w) => w.root === root);
    const chosen = root.querySelector("circle.vq-live-chosen");
    done({state, decodes: Number(root.dataset.decodes || 0), point: root.dataset.point, timings: widget.timings,
          marked: chosen && chosen.dataset.name,
          pressed: Array.from(root.querySelectorAll("[data-choice][aria-pressed=true]"), (b) => b.dataset.choice)});
  } else if (performance.now() - start > 60000) done({state, timeout: true});
  else setTimeout(poll, 20);
})();
"""


def test_live_sweep_explorer(site, browser, live_report):
    """Lesson 4's explorer: choosing K, then D, loads that point's decoder, decodes the codes it gave the test
    digits to what Keras's decoder of the point gives (within CANVAS_TOLERANCE), marks the point on the chart
    and presses the right buttons; no console error; downloads under 10 MB."""
    import numpy as np
    from selenium.webdriver.common.by import By

    from vqvae_lessons import export, sweep

    _require_live(EXPLORER_PAGE, "sweep-explorer", export.SWEEP_DATA_FILE)
    data_file = HTML / "_static" / "live" / "generated" / export.SWEEP_DATA_FILE
    data = json.loads(data_file.read_text())
    points = {p["name"]: p for p in data["points"]}
    selector = '[data-vq-live="sweep-explorer"]'
    _load(browser, site + f"{EXPLORER_PAGE}.html")
    _scroll_to(browser, selector)  # a widget starts when the reader comes near it
    ready = browser.execute_async_script(WAIT_FOR_POINT, selector, 1)
    assert ready.get("state") == "ready", f"the explorer did not start: {ready}"
    base = sweep.point_name(*data["base"])
    assert ready["point"] == ready["marked"] == base, ready
    widget = browser.find_element(By.CSS_SELECTOR, selector)

    def reconstructions():
        return np.array(browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0] + ' canvas.vq-live-reconstruction'), (c) => {"
            "  const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "  return Array.from({length: rgba.length / 4}, (_, i) => 1 - rgba[4 * i] / 255); });", selector))

    differences, timings = [], {}
    for count, (choice, k, d) in enumerate([("K8", 8, data["base"][1]), ("D2", data["base"][0], 2)], start=2):
        button = widget.find_element(By.CSS_SELECTOR, f'[data-choice="{choice}"]')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        clicked = time.perf_counter()
        button.click()
        shown = browser.execute_async_script(WAIT_FOR_POINT, selector, count)
        timings[choice] = {"click_to_image_ms": round(1000 * (time.perf_counter() - clicked), 1),
                           "load_ms": round(shown["timings"]["last_load_ms"], 1),
                           "decode_ms": round(shown["timings"]["last_decode_ms"], 2)}
        name = sweep.point_name(k, d)
        assert shown["point"] == shown["marked"] == name, shown
        assert sorted(shown["pressed"]) == sorted([f"K{k}", f"D{d}"]), shown
        codes = np.reshape(points[name]["codes"], (-1, 7, 7))
        expected = sweep.load_point(k, d).decode(codes)[..., 0].reshape(len(codes), -1)
        differences.append(float(np.abs(reconstructions() - expected).max()))
    assert max(differences) <= CANVAS_TOLERANCE, differences

    downloads, weight = _live_page_finished(browser, site, widget, "live-sweep-explorer")
    live_report["sweep_explorer"] = {
        "page": EXPLORER_PAGE,
        "ready_since_navigation_ms": round(ready["timings"]["ready_since_navigation_ms"], 1),
        "choices": timings,
        "canvas_max_difference": differences,
        "canvas_tolerance": CANVAS_TOLERANCE,
        "downloads": downloads,
        "download_bytes": weight,
        "screenshot": _screenshot_path("live-sweep-explorer"),
    }
