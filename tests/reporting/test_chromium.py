"""report.html in a real browser: headless Chromium renders it, every <img> decodes, the
console shows no error, and the screenshot is not blank (usdenoise.reporting.html).

Skips with a reason when Chromium is not installed (.ci/run installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from usdenoise.denoise.benchmark import EvaluationSettings, MethodSpec, evaluate
from usdenoise.reporting.html import build_report

TIMEOUT = 60
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# only in the test's copy of the page: records errors, then writes a summary into the title
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.tagName) || 'error'));
}, true);
var __error = console.error;
console.error = function () { window.__errors.push(Array.from(arguments).join(' '));
  __error.apply(console, arguments); };
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  document.title = 'PROBE' + JSON.stringify({imgs: imgs.length, broken: broken.length,
                                            errors: window.__errors});
});
</script>"""


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = _chromium()
    if path is None:
        pytest.skip("Chromium not installed (apt-get install -y chromium; .ci/run does)")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chromium") / "e"
    settings = EvaluationSettings(
        data="phantom:6", size=32, noises=["rayleigh:0.25", "rayleigh:0.5"], examples=1,
        methods=[MethodSpec("noisy", {}, "noisy"), MethodSpec("median", {}, "median"),
                 MethodSpec("lee", {}, "lee")])
    evaluate(settings, out)
    return build_report(out, command="usdenoise evaluate phantom:6 --methods median,lee")


def _run(browser: str, args: list[str], profile: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within {TIMEOUT} s")


def test_every_image_decodes_and_the_console_is_clean(browser: str, report: Path,
                                                      tmp_path: Path) -> None:
    page = report.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    done = _run(browser, ["--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                tmp_path / "profile")
    match = re.search(r"<title>PROBE(.*?)</title>", done.stdout, flags=re.DOTALL)
    assert match, f"no result from the page (rc {done.returncode}): {done.stderr[-2000:]}"
    result = json.loads(html.unescape(match.group(1)))
    assert result["imgs"] == page.count("<img ") and result["imgs"] >= 10
    assert result["broken"] == 0, result
    assert result["errors"] == [], result


def test_screenshot_is_not_blank(browser: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = _run(browser, [f"--screenshot={shot}", "--window-size=1280,2000",
                          "--hide-scrollbars", report.as_uri()], tmp_path / "profile")
    assert shot.is_file(), f"no screenshot (rc {done.returncode}): {done.stderr[-2000:]}"
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.var() > 0
    # more than a page of one colour: text, table rules and images
    assert len(np.unique(pixels)) > 16
