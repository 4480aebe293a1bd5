"""The report in a real browser: headless Chromium loads the page and its SVG figures,
and the intervals are checked in the DOM it builds (not in pixels)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_report import check_png, new_ooo, new_probe, when

from alignkit.report import build_report

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((p for p in map(shutil.which, CANDIDATES) if p), None)

pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no headless Chromium binary found (looked for " + ", ".join(CANDIDATES) + " on PATH)",
)


class DomParser(HTMLParser):
    """Table rows (as lists of cell texts), figure captions and image sources of a DOM dump."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.captions: list[str] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "figcaption":
            self._caption = []
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "figcaption" and self._caption is not None:
            self.captions.append(" ".join("".join(self._caption).split()))
            self._caption = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)


def browser(tmp_path: Path, *args: str) -> str:
    cmd = [
        str(BROWSER),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    recs = [
        new_ooo("alpha", "fc", 0.6123, (0.6011, 0.6234), day=1),
        new_ooo("alpha", "fc", 0.6123, None, day=2),  # newest, without bootstrap
        new_ooo("beta", "fc", 0.5432, (0.5311, 0.5550), day=2),
        new_probe("alpha", "fc", 0.70, sd=0.01, ci=(0.65, 0.74), zero_shot=0.6111),
    ]
    return build_report(recs, tmp / "out"), tmp


def test_the_interval_is_in_the_page_dom(report, tmp_path):
    files, _ = report
    dom = DomParser()
    dom.feed(browser(tmp_path, "--dump-dom", files.html.as_uri()))
    carried = f"[0.6011, 0.6234] (interval of the earlier record of {when(1)})"
    alpha = [r for r in dom.rows if r[:1] == ["alpha"] and "0.6123" in r]
    assert alpha and all(carried in r for r in alpha)  # both tables, the newest record's row
    assert any(r[:1] == ["beta"] and "[0.5311, 0.5550]" in r for r in dom.rows)
    assert any(r[:1] == ["alpha"] and "[0.6500, 0.7400]" in r and "0.6111" in r for r in dom.rows)
    ooo_caption = next(c for c in dom.captions if c.startswith("Odd-one-out accuracy"))
    assert "triplets things-test20k, similarity cosine, tie rule paper" in ooo_caption
    assert "Error bars: the recorded confidence interval (95% bootstrap, 1000 resamples)." in (
        ooo_caption
    )
    probe_caption = next(c for c in dom.captions if c.startswith("Linear probe"))
    assert "recorded confidence interval for alpha (probe) (95%)" in probe_caption
    assert len(dom.images) == len([f for f in files.figures if f.suffix == ".png"])


def test_the_figures_draw_the_intervals_in_their_svg_dom(report, tmp_path):
    files, _ = report
    ooo_svg = next(
        f for f in files.figures if f.name.startswith("accuracy-") and f.suffix == ".svg"
    )
    dom = browser(tmp_path, "--dump-dom", ooo_svg.as_uri())
    # Chromium parsed the SVG: one error bar group per zero-shot bar (alpha carries the earlier
    # record's interval, beta its own), each with its two caps
    for gid in ("interval-0-0", "interval-0-1"):
        assert f'id="{gid}"' in dom and f'id="{gid}-cap0"' in dom and f'id="{gid}-cap1"' in dom
    assert 'id="interval-0-2"' not in dom
    assert 'id="ceiling-line"' in dom and "noise ceiling (0.673, THINGS (paper2023))" in dom


def test_the_page_renders(report, tmp_path):
    files, _ = report
    shot = tmp_path / "page.png"
    browser(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", files.html.as_uri())
    check_png(shot)
