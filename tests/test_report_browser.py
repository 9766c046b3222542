"""report.html in a real browser: headless Chromium renders it, with no console error and no network request."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_sample import sample_results

from harness.report import write_reports

CHROMIUM = next(
    (
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if shutil.which(name)
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium to render report.html (Debian: apt-get install chromium)"
)

FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
    "--enable-logging=stderr",  # console messages and page errors go to stderr as ...:CONSOLE(...) lines
    "--v=0",
)
FAIL_RED = (0xB3, 0x43, 0x0E)  # --bad in report.css: the FAIL headline text


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    results = sample_results(24, samples_per_case=100)
    return results, write_reports(results, tmp_path_factory.mktemp("browser"))


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_renders_to_a_non_blank_page_showing_the_verdict(report, tmp_path):
    import matplotlib.image
    import numpy as np

    _, files = report
    shot = tmp_path / "report.png"
    proc = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", files.html.as_uri())
    assert shot.is_file(), proc.stderr[-2000:]
    assert console_lines(proc.stderr) == []
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).astype(int)
    assert pixels.shape[:2] == (1600, 1280)
    not_white = (pixels.min(axis=2) < 235).mean()
    assert not_white > 0.05  # text, tables and plots, not an empty page
    # the FAIL headline is drawn in its colour near the top of the page
    top = pixels[:200]
    assert (np.abs(top - np.array(FAIL_RED)).max(axis=2) < 30).sum() > 200


def test_dom_shows_summary_and_table_and_escapes_names(report, tmp_path):
    results, files = report
    proc = chromium(tmp_path, "--dump-dom", files.html.as_uri())
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert console_lines(proc.stderr) == []
    headline = re.search(r'<div id="headline"[^>]*>([^<]*)</div>', dom)
    assert headline and headline.group(1).startswith("FAIL: ")
    for label in ("regressed", "failed", "ambiguous", "improved", "unchanged", "new", "skipped"):
        assert f'data-verdict="{label}"' in dom
    body = dom[dom.index('<table id="cases-table"') :]
    body = body[: body.index("</table>")]
    assert body.count("<tr data-verdict=") == len(results.cases)
    # the model named <script>alert(1)</script> is text in the page, never an element
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script>alert(1)" not in dom


def test_sorting_and_no_network_in_a_driven_browser(report, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright drives the browser: pip install -e .[dev]")
    _, files = report
    problems: list[str] = []
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
            page.on(
                "request",
                lambda r: None if r.url.startswith(("data:", "file:")) else problems.append(f"request: {r.url}"),
            )
            page.goto(files.html.as_uri())
            assert page.inner_text("#headline").startswith("FAIL: ")
            assert page.is_visible("#cases-table")
            assert page.locator("#plots img").count() >= 3

            def column(name: str) -> list[float | None]:
                cells = page.eval_on_selector_all(
                    "#cases-table tbody tr",
                    "(rows, i) => rows.map(r => r.cells[i].getAttribute('data-v'))",
                    headers.index(name),
                )
                return [float(c) if c else None for c in cells]

            headers = [
                h.strip(" ↕▲▼") for h in page.eval_on_selector_all("#cases-table th", "hs => hs.map(h => h.innerText)")
            ]
            page.click("#cases-table th:has-text('p50 ms')")
            values = column("p50 ms")
            numbers = [v for v in values if v is not None]
            assert numbers == sorted(numbers) and values[: len(numbers)] == numbers  # ascending, blanks last
            page.click("#cases-table th:has-text('p50 ms')")
            numbers = [v for v in column("p50 ms") if v is not None]
            assert numbers == sorted(numbers, reverse=True)
            page.screenshot(path=str(tmp_path / "driven.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []


def test_main_table_fits_1280_px_without_horizontal_scroll(tmp_path):
    """Long model names, many cases, every optional column: the main table and the page stay within a 1280 px
    window (secondary facts sit under "more" in the case cell), and every header is on screen."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright drives the browser: pip install -e .[dev]")
    models = [
        "bert-base-uncased-finetuned-sst2-long-sequence-variant",
        "resnet50_v1.5_torchvision_imagenet_with_a_long_name",
        "squeezenet1.1",
        "<script>alert(1)</script>",
    ]
    files = write_reports(sample_results(60, models=models, samples_per_case=60), tmp_path / "wide")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(files.html.as_uri())
            table, wrap = page.eval_on_selector("#cases-table", "t => [t.scrollWidth, t.parentElement.clientWidth]")
            assert table <= wrap, f"main table {table} px wide in a {wrap} px container"
            page_width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert page_width[0] <= page_width[1], "the page scrolls sideways"
            right_edges = page.eval_on_selector_all(
                "#cases-table th", "hs => hs.map(h => h.getBoundingClientRect().right)"
            )
            assert len(right_edges) >= 10 and max(right_edges) <= 1280
            # the collapsed facts are one click away
            first = page.locator("#cases-table tbody tr").first
            first.locator("details.more summary").click()
            assert "p90" in first.inner_text() and "engine" in first.inner_text()
        finally:
            browser.close()
