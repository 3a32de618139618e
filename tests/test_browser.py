"""A student's view: JupyterLab in a real browser runs a lab and its sliders answer.

For each lab in `BROWSER_LABS` (lab numbers, one parametrised case each, so a failure names
its lab; `GAN_COURSE_BROWSER_LABS=01,03` picks others) the test opens the lab in headless
Chromium through Playwright, served by one JupyterLab on a loopback port with a random
token, runs every cell from the Run menu, waits for the kernel to go idle, and checks that
no cell shows a traceback, that no figure warns of a glyph missing from its font (Chinese
text drawn as boxes) and that every widget renders.  Then every ipywidgets slider is moved
to its far end, one after the other, and the picture of the widget it belongs to must
change by a visible margin (pixels compared, not just bytes: a generator that draws flat
grey fails).  A lab whose code builds an explorer must show at least one slider.  A lab of
the Chinese edition is named by its folder: ``zh/01``.  Screenshots go to
outputs/browser/<lab>/ (each explorer before and after each slider move).

The server serves a copy of labs/ (`GAN_COURSE_BROWSER_LABS_DIR` picks another folder),
so nothing JupyterLab saves can touch the working tree.  The browser is the system's
Chromium (Debian's `chromium` package): the test never downloads one, and skips, saying
why, when Chromium or the `playwright` package is missing.
"""
from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LABS_DIR = Path(os.environ.get("GAN_COURSE_BROWSER_LABS_DIR", ROOT / "labs"))
BROWSER_LABS = os.environ.get("GAN_COURSE_BROWSER_LABS", "01,02,03,04,05,06,07,zh/01").split(",")
SCREENSHOTS = ROOT / "outputs" / "browser"
CHROMIUM = os.environ.get("GAN_COURSE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]
RUN_ALL_TIMEOUT_S = 300  # a smoke-profile lab takes well under a minute; a busy CI machine is slower

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

# JupyterLab settings for a repeatable run: every cell in the page (no windowing, so the
# checks below see all of them), the notebook's kernel started without asking, no
# autosave, no news or update pop-ups over the cells.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                   "autoStartDefaultKernel": True},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}

# JavaScript run in the page.
KERNEL_STATES = "() => Array.from(document.querySelectorAll('.jp-Notebook-ExecutionIndicator'))" \
                ".map(e => e.getAttribute('data-status'))"
KERNEL_STATUS_BAR = "() => Array.from(document.querySelectorAll('.jp-StatusBar-Widget')).map(e => e.textContent).join(' ')"
PROMPTS = "() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))" \
          ".map(e => e.textContent.trim())"
# IPython tracebacks arrive as stderr; TensorFlow's log lines do too, so look for the traceback itself.
TRACEBACKS = """() => Array.from(document.querySelectorAll(
    '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
  .map(e => e.textContent)
  .filter(t => t.includes('Traceback (most recent call last)') || /^-{20,}\\s*\\n?\\s*\\w+(Error|Exception)/.test(t))
  .map(t => t.slice(0, 1500))"""
# matplotlib's warning when a font lacks a character (the figure shows a box instead).
MISSING_GLYPHS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-OutputArea-output'))
  .map(e => e.textContent).filter(t => /Glyph \\d+ .* missing from font/.test(t)).map(t => t.slice(0, 300))"""
# The widgets a cell displayed that hold a slider: an explorer (its controls and its picture).
EXPLORERS = ".jp-Notebook .jp-OutputArea-output:has(.widget-slider)"
# The sources of an explorer's pictures, once every one of them has loaded.
PICTURE_SOURCES = "imgs => imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.map(i => i.src) : null"
# Code that builds a slider widget: such a lab must show at least one slider.
MAKES_SLIDERS = re.compile(r"(Explorer|_explorer)\(")
# A visible change: at least this share of the picture's pixels moves by more than this many
# grey levels (of 255).  A flat grey generator moves none; a barely trained one a fraction
# of a percent; a plot whose curves move, or a generator that reads its input, far more.
VISIBLE_LEVELS, VISIBLE_SHARE = 24, 0.01


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _terminate_with_parent():
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LabServer:
    """JupyterLab on 127.0.0.1 with a random token, serving `root`; stopped with its kernels."""

    def __init__(self, root: Path, work: Path):
        self.root, self.port, self.token = root, free_port(), secrets.token_urlsafe(24)
        settings = work / "settings"
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        env = {**os.environ, "GAN_COURSE_PROFILE": "smoke", "GAN_COURSE_OUT": str(work / "lab-outputs"),
               "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
               "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
        command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
                   f"--IdentityProvider.token={self.token}", f"--port={self.port}", "--ServerApp.port_retries=0",
                   "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
                   "--LabApp.extension_manager=readonly"]
        if os.geteuid() == 0:
            command.append("--allow-root")  # CI runs as root; the server still only listens on loopback
        self.log_path = work / "jupyter.log"
        self.log = open(self.log_path, "w")
        # A session of its own, so that stopping it reaches its kernels and nothing else; and
        # on Linux a SIGTERM when pytest itself dies before its fixtures can tear down.
        self.process = subprocess.Popen(command, env=env, cwd=root, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=_terminate_with_parent)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}?token={self.token}"

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server shuts its kernels down
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        try:  # kernels that outlived their server
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("jupyterlab")
    root = work / "labs"
    shutil.copytree(LABS_DIR, root, ignore=shutil.ignore_patterns("outputs", ".ipynb_checkpoints"))
    server = LabServer(root, work)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def kernel_idle(page) -> bool:
    """A kernel is attached (not "No Kernel", not still starting) and idle."""
    states, status_bar = page.evaluate(KERNEL_STATES), page.evaluate(KERNEL_STATUS_BAR)
    return bool(states) and all(s == "idle" for s in states) and "| Idle" in status_bar and "No Kernel" not in status_bar


def open_notebook(browser, server: LabServer, name: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    # A workspace of its own: JupyterLab would otherwise reopen the notebooks of earlier tests.
    page.goto(server.url(f"lab/workspaces/{Path(name).stem}-{len(Path(name).parts)}/tree/{name}"))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    # Wait for the kernel (idle twice in a row, no dialog open), accepting its choice if asked.
    deadline, settled = time.monotonic() + 120, 0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        dialog = page.locator(".jp-Dialog .jp-mod-accept")
        if dialog.count():
            dialog.first.click()
            settled = 0
            continue
        if kernel_idle(page):
            settled += 1
        else:
            settled = 0
        if settled >= 2:
            return page
    raise TimeoutError(f"the kernel for {name} did not start: {page.evaluate(KERNEL_STATES)}")


def run_all(page) -> list:
    """Run > Run All Cells, then wait until the kernel is idle with nothing queued; return the prompts."""
    for attempt in range(3):
        # The command acts on the current notebook: focus its tab first.
        page.locator(".lm-TabBar-tab.jp-mod-current").first.click()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:  # a cell queued or done shows that the command took
            page.wait_for_function(f"({PROMPTS})().some(p => p !== '[ ]:')", timeout=20_000)
            break
        except sync_api.TimeoutError:
            page.keyboard.press("Escape")
    deadline, settled = time.monotonic() + RUN_ALL_TIMEOUT_S, 0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        prompts = page.evaluate(PROMPTS)
        started = any(p.strip("[]: ").isdigit() for p in prompts)
        idle = kernel_idle(page) and not any("*" in p for p in prompts)
        settled = settled + 1 if started and idle else 0
        if settled >= 3:  # idle three polls in a row: not the gap between two cells
            return prompts
    raise TimeoutError(f"Run All did not finish within {RUN_ALL_TIMEOUT_S} s; prompts: {page.evaluate(PROMPTS)}")


def visible_change(before: list, after: list) -> float:
    """Share of pixels that moved by more than VISIBLE_LEVELS between two lists of PNG screenshots
    (1.0 when the pictures' number or sizes differ; 0.0 when no picture is left)."""
    import numpy as np
    from PIL import Image

    def grey(png):
        return np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.int16)

    if not after:
        return 0.0  # a message where the picture was is no picture that changed
    if len(before) != len(after):
        return 1.0
    moved, total = 0, 0
    for one, other in zip(map(grey, before), map(grey, after)):
        if one.shape != other.shape:
            return 1.0
        moved += int((np.abs(one - other) > VISIBLE_LEVELS).sum())
        total += one.size
    return moved / total


def move_every_slider(page, shots: Path) -> list[tuple[str, float]]:
    """Move each slider to its far end, in turn; return (slider, share of its picture that changed) for each.

    A slider's picture is every image of the explorer (the widget output) it sits in; the
    share is 0 when no image was redrawn within the time limit.
    """
    results = []
    explorers = page.locator(EXPLORERS)
    for e in range(explorers.count()):
        explorer = explorers.nth(e)
        pictures = explorer.locator("img")
        sliders = explorer.locator(".widget-slider")
        for index in range(sliders.count()):
            slider = sliders.nth(index)
            name = f"explorer {e}, slider {index} ({slider.locator('.widget-label').first.text_content().strip()})"
            handle = slider.locator(".noUi-handle").first
            if handle.get_attribute("aria-valuemin") == handle.get_attribute("aria-valuemax"):
                continue  # nothing to move to (lab 02's kernel position when the output has one pixel)
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(shots / f"explorer{e}_slider{index}_before.png"))
            sources = pictures.evaluate_all(PICTURE_SOURCES)
            before = [pictures.nth(i).screenshot() for i in range(pictures.count())]
            # The far end: the one farther from where the slider stands (the longer move of the two).
            low, now, high = (float(handle.get_attribute(f"aria-value{key}")) for key in ("min", "now", "max"))
            readout = slider.locator(".widget-readout").first.text_content()
            handle.focus()
            page.keyboard.press("Home" if now - low > high - now else "End")
            share, deadline = 0.0, time.monotonic() + 45
            while time.monotonic() < deadline:
                time.sleep(0.25)
                now = pictures.evaluate_all(PICTURE_SOURCES)
                if now is not None and now != sources and kernel_idle(page):
                    page.wait_for_timeout(100)  # one more frame: the new images painted
                    after = [pictures.nth(i).screenshot() for i in range(pictures.count())]
                    share = visible_change(before, after)
                    break
            explorer.screenshot(path=str(shots / f"explorer{e}_slider{index}_after.png"))
            assert slider.locator(".widget-readout").first.text_content() != readout, f"{name} did not move"
            results.append((name, share))
    return results


def code_of(notebook: Path) -> str:
    """The code cells of a notebook, as one text."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def lab_file(lab: str) -> str:
    """The notebook's path under the labs folder: `01` -> 01_*.ipynb, `zh/01` -> zh/01_*.ipynb."""
    found = sorted(LABS_DIR.glob(f"{lab}_*.ipynb"))
    if not found:
        pytest.skip(f"lab {lab} is not in {LABS_DIR} yet")
    return found[0].relative_to(LABS_DIR).as_posix()


@pytest.mark.parametrize("lab", BROWSER_LABS)
def test_lab_runs_in_the_browser_and_its_sliders_answer(lab, lab_server, browser):
    name = lab_file(lab)
    shots = SCREENSHOTS / name.replace("/", "_").removesuffix(".ipynb")
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page = open_notebook(browser, lab_server, name)
    try:
        page.screenshot(path=str(shots / "opened.png"))
        prompts = run_all(page)
        page.screenshot(path=str(shots / "after_run_all.png"))

        tracebacks = page.evaluate(TRACEBACKS)
        assert not tracebacks, f"{name} shows {len(tracebacks)} error(s); the first:\n{tracebacks[0]}"
        boxes = page.evaluate(MISSING_GLYPHS)
        assert not boxes, f"{name} draws characters its font lacks (boxes); the first warning:\n{boxes[0]}"
        unrun = [n for n, p in enumerate(prompts) if not p.strip("[]: ").isdigit()]
        assert not unrun, f"Run All stopped before code cells {unrun} of {name}"
        assert page.locator(".jp-Notebook").get_by_text("Error displaying widget").count() == 0

        if MAKES_SLIDERS.search(code_of(LABS_DIR / name)):
            assert page.locator(EXPLORERS).count() > 0, f"no ipywidgets slider rendered in {name}"
        moves = move_every_slider(page, shots)
        still = [f"{slider}: {share:.2%} of its picture changed" for slider, share in moves if share < VISIBLE_SHARE]
        assert not still, (f"moving these sliders of {name} to their far end changed their picture by less than "
                           f"{VISIBLE_SHARE:.0%} of its pixels:\n" + "\n".join(still))
        assert not page.evaluate(TRACEBACKS), "moving a slider raised an error"
    except Exception:
        page.screenshot(path=str(shots / "failure.png"))
        print(lab_server.log_tail())
        raise
    finally:
        page.close()


def test_a_traceback_is_seen(lab_server, browser):
    """The checks above can fail: a cell that raises is reported, and Run All stops there."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("import sys\nprint('a log line', file=sys.stderr)"),
                      nbformat.v4.new_code_cell("raise ValueError('a broken cell')"),
                      nbformat.v4.new_code_cell("print('never runs')")]
    nbformat.write(notebook, lab_server.root / "zz_broken.ipynb")
    page = open_notebook(browser, lab_server, "zz_broken.ipynb")
    try:
        prompts = run_all(page)
        tracebacks = page.evaluate(TRACEBACKS)
        assert len(tracebacks) == 1 and "ValueError" in tracebacks[0] and "a log line" not in tracebacks[0]
        assert not prompts[2].strip("[]: ").isdigit()
    finally:
        page.close()
