"""Every notebook opened in JupyterLab in headless Chromium: what a learner sees, not only that the code runs.

Two views of each committed notebook, each opened once and checked by several small tests:
- "cloned": the notebook as a fresh clone opens it (untrusted: JupyterLab shows a widget's text fallback);
- "trusted": the same file after `jupyter trust`, so JupyterLab restores the widgets saved in its metadata.
And notebook 02's temperature slider with a live kernel at KDLAB_SCALE=smoke.
Screenshots go to ci-artifacts/screenshots/.
"""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VIEWS = ("cloned", "trusted")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# raw TeX left in rendered markdown: $$...$$, $...$ or a TeX command such as \frac
RAW_TEX = re.compile(r"\$\$|\$[^$\n]+\$|\\(?:frac|sum|mathrm|log|exp|alpha|beta|tau|approx|cdot|dots|left|right|"
                     r"text|operatorname|partial|nabla|ln|in|le|ge|times|sqrt|hat|bar|mathbb|mathcal)\b")
# a tqdm bar frozen at its first update, e.g. "teacher resnet20:   0%|          | 0/585 [00:00<?, ?it/s]"
FROZEN_BAR = re.compile(r"\b0%\|.*\|\s*0/\d+")


def _nb(path: Path) -> dict:
    return json.loads(path.read_text())


def _saves_progress_bars(path: Path) -> bool:
    """The committed outputs hold tqdm bars saved as widget views (whose text fallback reads 0%)."""
    return any(FROZEN_BAR.search("".join(o.get("data", {}).get("text/plain", "")))
               for c in _nb(path)["cells"] for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {}))


# ------------------------------------------------------------------------------------------------------------
# opening a notebook and collecting what the page shows

SETTLE_JS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!nb) return null;
  const md = Array.from(nb.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown'));
  return {
    cells: nb.querySelectorAll('.jp-Cell').length,
    markdownRendered: md.length,
    mathjax: nb.querySelectorAll('.jp-RenderedMarkdown mjx-container').length,
    loadingWidgets: Array.from(nb.querySelectorAll('.jp-OutputArea-output'))
        .filter(e => e.textContent.trim() === 'Loading widget...').length,
    imagesPending: Array.from(nb.querySelectorAll('.jp-OutputArea img')).filter(i => !i.complete).length,
  };
}"""

REPORT_JS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const md = Array.from(nb.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown')).map(el => {
    const c = el.cloneNode(true);
    c.querySelectorAll('mjx-container, code, pre').forEach(x => x.remove());
    return c.textContent;
  });
  const outputs = Array.from(nb.querySelectorAll('.jp-OutputArea-output'));
  return {
    cells: nb.querySelectorAll('.jp-Cell').length,
    markdownCells: nb.querySelectorAll('.jp-MarkdownCell').length,
    codeCells: nb.querySelectorAll('.jp-CodeCell').length,
    markdownRendered: nb.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown').length,
    markdownText: md,
    mathjax: nb.querySelectorAll('.jp-RenderedMarkdown mjx-container').length,
    images: Array.from(nb.querySelectorAll('.jp-OutputArea img')).map(i => ({w: i.naturalWidth, h: i.naturalHeight,
                                                                             src: i.src.slice(0, 40)})),
    outputText: outputs.map(e => e.innerText),
    widgets: nb.querySelectorAll('.jp-OutputArea-output .jupyter-widgets:not(.jp-OutputArea-output)').length,
    widgetErrors: outputs.filter(e => e.textContent.includes('Error displaying widget')).map(e => e.textContent),
    loadingWidgets: outputs.filter(e => e.textContent.trim() === 'Loading widget...').length,
  };
}"""


def _open(page, url: str, name: str, timeout_s: float = 120) -> None:
    page.goto(f"{url}lab/tree/{name}?reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=timeout_s * 1000)


def _settle(page, expect_cells: int, timeout_s: float = 90) -> dict:
    """Wait until every cell is in the page and the rendering (math, images, widgets) stopped changing."""
    deadline = time.monotonic() + timeout_s
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        state = page.evaluate(SETTLE_JS)
        if state != last:
            last, stable_since = state, time.monotonic()
        elif (state and state["cells"] >= expect_cells and state["imagesPending"] == 0
              and state["loadingWidgets"] == 0 and time.monotonic() - stable_since > 3):
            return state
        page.wait_for_timeout(500)
    return last  # the tests then say what is missing


def _screenshots(page, folder: Path, stem: str, limit: int = 60) -> list[Path]:
    """Screenshots down the whole notebook, one viewport at a time (the notebook scrolls inside its panel)."""
    for old in folder.glob(f"{stem}-*.png"):
        old.unlink()
    scroller = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer"
    height = page.evaluate(f"() => {{ const s = document.querySelector('{scroller}'); "
                           f"return s ? [s.scrollHeight, s.clientHeight] : [0, 0]; }}")
    shots, top = [], 0
    while len(shots) < limit:
        page.evaluate(f"() => {{ const s = document.querySelector('{scroller}'); if (s) s.scrollTop = {top}; }}")
        page.wait_for_timeout(150)
        shots.append(folder / f"{stem}-{len(shots):02d}.png")
        page.screenshot(path=str(shots[-1]))
        top += max(height[1] - 80, 200)
        if top >= height[0] - 10 or height[1] == 0:
            break
    return shots


@pytest.fixture(scope="module")
def served(lab, tmp_path_factory):
    """The notebooks under both views: copies, the trusted ones signed in the server's fresh data folder."""
    url, root = lab.url, lab.root
    for view in VIEWS:
        (root / view).mkdir()
        for p in NOTEBOOKS:
            nb = _nb(p)
            if view == "trusted":  # trust is keyed by content: mark the copy so the "cloned" one stays untrusted
                nb["metadata"]["kdlab_browser_test"] = "trusted copy"
            (root / view / p.name).write_text(json.dumps(nb, indent=1))
    subprocess.run([sys.executable, "-m", "jupyter", "trust", *[str(root / "trusted" / p.name) for p in NOTEBOOKS]],
                   env=lab.env, check=True, capture_output=True)
    return url, root


@pytest.fixture(scope="module")
def rendered(served, browser, screenshots):
    """Open each notebook once per view; return {(name, view): report} with page errors and screenshots."""
    url, _ = served
    reports = {}
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        for view in VIEWS:
            for path in NOTEBOOKS:
                page = context.new_page()
                errors = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                started = time.monotonic()
                _open(page, url, f"{view}/{path.name}")
                _settle(page, len(_nb(path)["cells"]))
                report = page.evaluate(REPORT_JS)
                report["page_errors"] = errors
                report["seconds"] = round(time.monotonic() - started, 1)
                report["screenshots"] = [str(p.relative_to(ROOT)) for p in
                                         _screenshots(page, screenshots, f"{path.stem}-{view}")]
                reports[path.name, view] = report
                page.close()
    finally:
        context.close()
    (screenshots / "rendered.json").write_text(json.dumps({f"{k[0]} ({k[1]})": v for k, v in reports.items()},
                                                          indent=1))
    return reports


CASES = [pytest.param(p, v, id=f"{p.stem}-{v}") for v in VIEWS for p in NOTEBOOKS]


@pytest.mark.parametrize("path, view", CASES)
def test_every_cell_rendered(rendered, path, view):
    nb, r = _nb(path), rendered[path.name, view]
    kinds = [c["cell_type"] for c in nb["cells"]]
    assert r["cells"] == len(kinds), f"{path.name}: {r['cells']} cells in the page, {len(kinds)} in the notebook"
    assert r["markdownCells"] == kinds.count("markdown") and r["codeCells"] == kinds.count("code")
    assert r["markdownRendered"] == kinds.count("markdown"), f"{path.name}: a markdown cell was left unrendered"


@pytest.mark.parametrize("path, view", CASES)
def test_every_saved_image_loaded(rendered, path, view):
    saved = sum("image/png" in o.get("data", {}) for c in _nb(path)["cells"] for o in c.get("outputs", []))
    images = rendered[path.name, view]["images"]
    assert len(images) >= saved, f"{path.name}: {saved} saved images, {len(images)} <img> in the page"
    broken = [i for i in images if i["w"] == 0 or i["h"] == 0]
    assert not broken, f"{path.name}: images that did not load: {broken}"


@pytest.mark.parametrize("path, view", CASES)
def test_latex_rendered(rendered, path, view):
    r = rendered[path.name, view]
    assert r["mathjax"] > 0, f"{path.name}: no MathJax output in the rendered markdown"
    raw = [(i, m.group(0), text[max(0, m.start() - 40):m.end() + 40])
           for i, text in enumerate(r["markdownText"]) for m in RAW_TEX.finditer(text)]
    assert not raw, f"{path.name}: raw TeX left in rendered markdown (markdown cell, match, context): {raw[:5]}"


@pytest.mark.parametrize("path, view", CASES)
def test_no_widget_errors_and_no_page_errors(rendered, path, view):
    r = rendered[path.name, view]
    assert not r["widgetErrors"], f"{path.name}: {r['widgetErrors'][:3]}"
    assert r["loadingWidgets"] == 0, f"{path.name}: {r['loadingWidgets']} widgets stuck at 'Loading widget...'"
    assert not r["page_errors"], f"{path.name}: page errors {r['page_errors'][:3]}"


@pytest.mark.parametrize("path, view", [
    pytest.param(p, v, id=f"{p.stem}-{v}", marks=pytest.mark.xfail(
        v == "cloned" and _saves_progress_bars(p), strict=True,
        reason=f"{p.name}'s committed outputs hold tqdm bars saved as widget views: opened from a clone "
               "(untrusted, so no widgets) a learner sees their text fallback '0%| | 0/N' (fix: no widget bars in "
               "saved runs, e.g. progress=False when not interactive; a printed summary line says what ran)"))
    for v in VIEWS for p in NOTEBOOKS])
def test_no_progress_bar_frozen_at_zero(rendered, path, view):
    frozen = [t for t in rendered[path.name, view]["outputText"] if FROZEN_BAR.search(t)]
    assert not frozen, f"{path.name}: {len(frozen)} outputs show a progress bar at 0%, e.g. {frozen[0][:100]!r}"


# ------------------------------------------------------------------------------------------------------------
# notebook 02's temperature slider, with a live kernel (the server runs kernels at KDLAB_SCALE=smoke)

NB02 = ROOT / "notebooks" / "02_temperature.ipynb"
ENTROPY = re.compile(r"entropy\s*(?:=\s*)?([0-9]+(?:\.[0-9]+)?)\s*nats")


def _slider_cells(nb: dict) -> list[int]:
    """The cells the slider needs: parameters, set-up (scale and data), teacher, slider."""
    src = ["".join(c["source"]) for c in nb["cells"]]
    find = lambda pred, what: next((i for i, s in enumerate(src) if pred(i, s)), None) or pytest.fail(
        f"{NB02.name}: no {what} cell")
    return [find(lambda i, s: "parameters" in nb["cells"][i]["metadata"].get("tags", []), "parameters"),
            find(lambda i, s: "kdlab.get_scale(" in s, "set-up"),
            find(lambda i, s: "cache.get_teacher(" in s, "teacher"),
            find(lambda i, s: "FloatLogSlider(" in s, "slider")]


def _slider_prints_entropy(nb: dict) -> bool:
    body = "".join(nb["cells"][_slider_cells(nb)[-1]]["source"])
    return bool(re.search(r"print\(.*entropy", body))


def _run_cell(page, cell, timeout_s: float = 300) -> None:
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    page.wait_for_function("c => /\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').textContent)",
                           arg=cell.element_handle(), timeout=timeout_s * 1000)


def _plot_and_text(cell) -> tuple[str, str]:
    img = cell.locator(".jp-OutputArea img").first
    return img.get_attribute("src") or "", cell.locator(".jp-Cell-outputArea").inner_text()


@pytest.fixture(scope="module")
def slider_states(lab, browser, screenshots):
    """Run the slider's cells in a live kernel, set T = 4 (its default), 1 and 32: [(T, image src, text)]."""
    root = lab.root / "live"
    root.mkdir()
    (root / NB02.name).write_bytes(NB02.read_bytes())
    nb = _nb(NB02)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _open(page, lab.url, f"live/{NB02.name}")
        _settle(page, len(nb["cells"]))
        page.wait_for_selector(".jp-Toolbar-kernelStatus, .jp-Notebook-ExecutionIndicator", timeout=60_000)
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        for i in _slider_cells(nb):
            _run_cell(page, cells.nth(i))
        slider_cell = cells.nth(_slider_cells(nb)[-1])
        readout = slider_cell.locator(".widget-readout")
        readout.wait_for(timeout=60_000)
        slider_cell.locator(".jp-OutputArea img").first.wait_for(timeout=120_000)
        states = [(4.0, *_plot_and_text(slider_cell))]
        for t in (1.0, 32.0):
            before = states[-1][1]
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(f"{t:g}")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "([c, before]) => { const i = c.querySelector('.jp-OutputArea img'); return i && i.complete && "
                "i.naturalWidth > 0 && i.getAttribute('src') !== before; }",
                arg=[slider_cell.element_handle(), before], timeout=120_000)
            page.wait_for_timeout(500)
            states.append((t, *_plot_and_text(slider_cell)))
            slider_cell.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshots / f"02_temperature-live-slider-T{t:g}.png"))
        readouts = readout.inner_text()
    finally:
        page.close()
    return {"states": states, "readout": readouts, "page_errors": errors}


def test_slider_moves_the_plot(slider_states):
    states = slider_states["states"]
    assert float(slider_states["readout"]) == pytest.approx(32, rel=0.02), "the slider did not take T = 32"
    srcs = [s for _, s, _ in states]
    assert all(s.startswith("data:image/png") or s.startswith("blob:") for s in srcs), srcs
    assert len(set(srcs)) == len(srcs), "moving the temperature slider did not change the plot"
    assert not slider_states["page_errors"], slider_states["page_errors"]


@pytest.mark.xfail(not _slider_prints_entropy(_nb(NB02)), strict=True,
                   reason="notebook 02's slider callback draws the entropy in the figure title only and prints "
                          "nothing: the number is not in the page as text (fix: print the T and entropy line)")
def test_slider_prints_entropy_that_follows_t(slider_states):
    entropies = {}
    for t, _, text in slider_states["states"]:
        found = ENTROPY.findall(text)
        assert found, f"no printed entropy at T = {t:g}: {text[:200]!r}"
        entropies[t] = float(found[-1])
    # The live kernel runs the smoke-scale teacher, which is nearly uniform: at 2 printed decimals T = 4 and
    # T = 32 can both read ln 10 = 2.30. Entropy must never fall as T grows, and must rise from T = 1 to 32.
    assert entropies[1.0] <= entropies[4.0] <= entropies[32.0] and entropies[1.0] < entropies[32.0], \
        f"entropy does not rise with T: {entropies}"
