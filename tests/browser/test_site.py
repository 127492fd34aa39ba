"""The course's static site (docs/site), built here from the committed notebooks and opened in headless Chromium
from a local server: every page loads without the web, math renders, images load, internal links resolve, and
each notebook page shows its run card. Screenshots of the first screen of each page go to ci-artifacts/site/."""
import functools
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "ci-artifacts" / "site"

pytestmark = pytest.mark.browser
pytest.importorskip("myst_nb", reason="the site extra builds the site: pip install -e '.[site]'")

# raw TeX left in rendered prose: $$...$$, $...$ or a TeX command such as \frac
RAW_TEX = re.compile(r"\$\$|\$[^$\n]+\$|\\(?:frac|sum|mathrm|log|exp|alpha|beta|tau|approx|cdot|left|right|"
                     r"operatorname|partial|nabla|mathbb|mathcal)\b")

REPORT_JS = """() => {
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('.cell, pre, code, mjx-container, script, style').forEach(e => e.remove());
  return {
    title: document.title,
    mathjax: article.querySelectorAll('mjx-container').length,
    mathErrors: article.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    images: [...document.images].map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    prose: prose.innerText,
    text: article.innerText,
  };
}"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built as the README says (warnings are errors: a broken reference fails here)."""
    out = tmp_path_factory.mktemp("site") / "html"
    done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
                           str(ROOT / "docs" / "site"), str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"the site build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


PAGES = ["index.html", *(f"notebooks/{p.stem}.html" for p in NOTEBOOKS)]


@pytest.fixture(scope="module")
def pages(served, browser):
    """Each page opened once: {page: report}, with what failed to load and what it asked of the web."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    reports = {}
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    web = []

    def route(r):  # the site must not need the network: any request off this server is refused and recorded
        if r.request.url.startswith(served):
            r.continue_()
        else:
            web.append(r.request.url)
            r.abort()
    context.route("**/*", route)
    try:
        for name in PAGES:
            page = context.new_page()
            errors, failed = [], []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.on("requestfailed", lambda r, failed=failed: failed.append(r.url))
            page.on("response", lambda r, failed=failed: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
            response = page.goto(served + name, wait_until="load")
            # MathJax's deferred script replaces the configuration object; its startup promise settles once the
            # page's first typesetting is done
            page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)",
                                   timeout=60_000)
            page.evaluate("() => window.MathJax ? MathJax.startup.promise.then(() => true) : null")
            report = page.evaluate(REPORT_JS)
            report.update(status=response.status, page_errors=errors, failed=failed, web=list(web))
            web.clear()
            page.screenshot(path=str(SHOTS / (name.replace("/", "-").removesuffix(".html") + ".png")))
            reports[name] = report
            page.close()
    finally:
        context.close()
    (SHOTS / "pages.json").write_text(json.dumps({k: {**v, "prose": None, "text": None} for k, v in reports.items()},
                                                 indent=1))
    return reports


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_offline(pages, name):
    r = pages[name]
    assert r["status"] == 200 and not r["page_errors"], (r["status"], r["page_errors"])
    assert not r["failed"], f"{name}: these did not load: {r['failed']}"
    assert not r["web"], f"{name}: asked the web for {r['web']}"


@pytest.mark.parametrize("name", PAGES[1:])
def test_math_renders(pages, name):
    r = pages[name]
    assert r["mathjax"] > 0 and r["mathErrors"] == 0, f"{name}: {r['mathjax']} formulas, {r['mathErrors']} errors"
    raw = [m.group(0) for m in RAW_TEX.finditer(r["prose"])]
    assert not raw, f"{name}: raw TeX left in the prose: {raw[:5]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_saved_figures_load(pages, path):
    nb = json.loads(path.read_text())
    saved = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    images = [i for i in pages[f"notebooks/{path.stem}.html"]["images"] if "_images/" in (i["src"] or "")]
    assert saved and len(images) >= saved, f"{path.name}: {saved} saved figures, {len(images)} on its page"
    assert all(i["w"] > 0 and i["h"] > 0 for i in images), [i for i in images if not i["w"]]


@pytest.mark.parametrize("name", PAGES)
def test_internal_links_resolve(pages, served, site, name):
    broken = []
    for link in pages[name]["links"]:
        if not link.startswith(served):
            continue
        target, fragment = urldefrag(link)
        rel = urlparse(target).path.lstrip("/") or "index.html"
        file = site / rel
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            broken.append(link)
        elif fragment and file.suffix == ".html":
            other = pages.get(rel)
            ids = set(other["ids"]) if other else set(re.findall(r'id="([^"]+)"', file.read_text()))
            if fragment not in ids:
                broken.append(link)
    assert not broken, f"{name}: links to nothing: {broken[:10]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_page_shows_its_real_run(pages, path):
    text = pages[f"notebooks/{path.stem}.html"]["text"]
    assert "run card" in text.lower() and "git_commit" in text, f"{path.name}: its page shows no run card"
    assert "headline: " in text or path.stem.startswith("06"), f"{path.name}: its page shows no headline"


def test_index_lists_every_notebook(pages):
    links = pages["index.html"]["links"]
    for p in NOTEBOOKS:
        assert any(link.split("#")[0].endswith(f"notebooks/{p.stem}.html") for link in links), p.stem
