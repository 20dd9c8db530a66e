"""Browser tier (``make test-browser``, not part of ``make test``): the project as a person uses it.

* JupyterLab on 127.0.0.1 driven by Debian's chromium through playwright (no browser download): open
  ``00_quickstart``, set ``profile = "smoke"``, run all cells, and find no error output, a rendered table, a
  rendered figure and a widget progress bar. Screenshots go to the folder the test prints.
* A fresh clone with nothing beside it: ``make setup`` and ``rlhf-nb reproduce --profile cpu --dry-run``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a scratch copy of the project (runs never touch the repository's runs/)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Debian chromium is missing at {CHROMIUM}: `make test-browser` installs it (apt-get install chromium)")
    root = tmp_path_factory.mktemp("lab")
    for name in ("notebooks", "params"):
        shutil.copytree(REPO / name, root / name)
    (root / "data").symlink_to(REPO / "data")
    port, token = _free_port(), "rlhf-nb-browser-test"
    # a workspace of its own: JupyterLab would otherwise reopen the tabs of the user's last session
    env = {**os.environ, "RLHF_NB_ROOT": str(root), "HF_HUB_OFFLINE": "1", "RLHF_NB_PRECISION": "fp32",
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(root / ".settings")}
    # every cell stays in the page (JupyterLab otherwise renders only the cells near the viewport)
    tracker = root / ".settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.disable_check_xsrf=True",
            "--KernelManager.transport=ipc"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start; see {root / 'jupyterlab.log'}")
    yield f"http://127.0.0.1:{port}", token, root
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()


def _chromium(playwright):
    """Debian's chromium, headless, without the sandbox (root in a container) or any phoning home."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])


def test_quickstart_runs_in_jupyterlab_with_tables_figures_and_widgets(lab):
    from playwright.sync_api import sync_playwright

    url, token, root = lab
    shots = root / "screenshots"
    shots.mkdir(exist_ok=True)
    print(f"\nscreenshots: {shots}")
    with sync_playwright() as p:
        browser = _chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _run_all_as_smoke(page, url, token, "00_quickstart", shots)
        assert page.locator(".jp-RenderedHTMLCommon table").count() >= 2  # the params table and per-task table
        assert page.locator(".jp-RenderedImage img").count() >= 2  # the two figures
        assert page.locator(".jp-OutputArea .widget-progress, .jp-OutputArea .jupyter-widgets").count() >= 1
        assert "RANDOM weights" in page.locator(".jp-Notebook").inner_text()  # the smoke banner
        browser.close()
    results = root / "runs" / "00_quickstart" / "smoke.scratch" / "results.json"
    assert results.is_file()  # interactive results go to the scratch folder ...
    assert not (root / "runs" / "00_quickstart" / "smoke").exists()  # ... never over batch results


def _run_all_as_smoke(page, url: str, token: str, notebook: str, shots: Path) -> None:
    page.goto(f"{url}/lab/tree/notebooks/{notebook}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-Toolbar-kernelStatus",
                           timeout=60_000)
    page.screenshot(path=str(shots / f"{notebook}-opened.png"))
    # the parameters cell: replace it with profile = "smoke", then Run > Run All Cells
    params = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell.jp-CodeCell").nth(0)
    params.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.type('profile = "smoke"\noverrides = {}\nout_dir = None\n')
    page.keyboard.press("Escape")
    page.get_by_role("menuitem", name="Run").first.click()
    page.get_by_text("Run All Cells", exact=True).first.click()
    deadline = time.time() + 600
    last = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell.jp-CodeCell").last
    while time.time() < deadline:
        if last.locator(".jp-InputArea-prompt").inner_text().strip() not in ("[ ]:", "[*]:", ""):
            break
        if page.locator("[data-mime-type='application/vnd.jupyter.error']").count():
            break
        time.sleep(2)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shots / f"{notebook}-ran.png"))
    errors = page.locator("[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.inner_text()[:2000]
    assert page.get_by_text("Jupyter news").count() == 0  # no prompt over the results asking about a news feed


def test_feedback_panel_clicks_become_exactly_those_events(lab):
    """Open 06, run it on smoke, click a comparison, a rating and a correction in the panel and press a shortcut key
    over the responses: the log holds exactly those four events, in that order."""
    import json

    from playwright.sync_api import sync_playwright

    url, token, root = lab
    shots = root / "screenshots"
    shots.mkdir(exist_ok=True)
    log = root / "runs" / "06_feedback_blender" / "feedback-smoke.jsonl"
    with sync_playwright() as p:
        browser = _chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        _run_all_as_smoke(page, url, token, "06_feedback_blender", shots)
        page.locator(".widget-tab").first.scroll_into_view_if_needed()
        page.get_by_role("tab", name="comparison").click()
        page.get_by_role("button", name="A is better").click()
        page.wait_for_timeout(800)
        page.get_by_role("tab", name="rating").click()
        page.get_by_role("button", name="rate", exact=True).click()
        page.wait_for_timeout(800)
        page.get_by_role("tab", name="correction").click()
        box = page.locator(".widget-textarea textarea").first
        box.fill("a corrected reply")
        page.get_by_role("button", name="submit correction").click()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / "06-panel.png"))
        assert "Recorded correction" in page.locator(".jp-Notebook").inner_text()
        # a shortcut: the mouse over the responses, "b" (in command mode JupyterLab would insert a cell below)
        cells = page.locator(".jp-Notebook .jp-Cell").count()
        page.keyboard.press("Escape")
        page.get_by_text("Prompt 1/").first.hover()
        page.keyboard.press("b")
        page.wait_for_timeout(1500)
        assert page.locator(".jp-Notebook .jp-Cell").count() == cells, "the key reached JupyterLab too"
        browser.close()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["type"] for e in events] == ["comparison", "rating", "correction", "comparison"]
    assert events[2]["content"]["text"] == "a corrected reply"
    assert events[3]["content"]["preferred"] == events[3]["response_ids"][1]  # B


def test_a_fresh_clone_sets_up_and_passes_the_dry_run(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    assert not (clone.parent / "shared").exists()
    done = subprocess.run(["make", "setup"], cwd=clone, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([str(clone / ".venv" / "bin" / "rlhf-nb"), "reproduce", "--profile", "cpu", "--dry-run"],
                          cwd=clone, capture_output=True, text=True, timeout=600)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PROBLEM" not in done.stdout and "00_quickstart" in done.stdout
