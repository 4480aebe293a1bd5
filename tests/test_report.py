"""``alignkit report``: tables with known numbers, valid figures, valid HTML, clear errors."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.errors import DataError, InputError
from alignkit.report import build_report, load_records, write_report
from alignkit.results import ResultsTable, record_from_result

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")

# Concept dimensions of model "alpha": label -> (triplets, correct); "empty" has no triplets.
DIMS = {
    "animal": (400, 300),
    "food": (300, 240),
    "royal": (50, 10),
    "tool": (250, 150),
    "empty": (0, 0),
}


def when(day: int) -> str:
    return f"2026-03-{day:02d}T12:00:00+00:00"


def ooo(
    model, layer, acc, lo, hi, *, day=1, transform=None, per_concept=None, dataset="things-test20k"
):
    return record_from_result(
        "ooo",
        {
            "accuracy": acc,
            "n_triplets": 20000,
            "n_correct": round(acc * 20000),
            "n_ties": 3,
            "similarity": "cosine",
            "ties": "wrong",
            "ceiling": 0.673,
            "normalised": (acc - 1 / 3) / (0.673 - 1 / 3),
            "chance": 1 / 3,
            "ci_low": lo,
            "ci_high": hi,
            "model": model,
            "layer": layer,
            "per_concept": per_concept,
            "transform": transform,
            "provenance": {
                "triplets": {"source": dataset},
                "features_checksum": "sha256:" + "0" * 64,
            },
        },
        created=when(day),
    )


def per_concept() -> dict:
    return {
        "source": "spose-49d",
        "top": 1,
        "dimensions": [
            {
                "dimension": i + 1,
                "label": lab,
                "triplets": n,
                "correct": c,
                "accuracy": c / n if n else None,
            }
            for i, (lab, (n, c)) in enumerate(DIMS.items())
        ],
    }


def known_records() -> list[dict]:
    """Three models with known numbers in every section; one stale repeat."""
    attrs = {
        "alpha": {"imagenet_top1": 0.7613, "n_params": 25_557_032},
        "beta": {"imagenet_top1": 0.7159, "n_params": 138_357_544},
        "gamma": {"imagenet_top1": 0.8112, "n_params": 86_567_656},
    }
    recs = [
        ooo("alpha", "fc", 0.5111, 0.5, 0.52, day=1),  # stale: replaced by the next one
        ooo("alpha", "fc", 0.6123, 0.6000, 0.6250, day=2, per_concept=per_concept()),
        ooo("alpha", "avgpool", 0.5987, 0.5871, 0.6102, day=2),
        ooo("beta", "classifier.3", 0.5432, 0.5311, 0.5550, day=2),
        ooo("gamma", "head", 0.4567, 0.4444, 0.4690, day=2),
        ooo(
            "alpha",
            "fc",
            0.6613,
            0.6500,
            0.6720,
            day=3,
            transform="paper",
            dataset="things-test20k",
        ),
    ]
    for model, layer, acc, sd, lam in (
        ("alpha", "fc", 0.6543, 0.0021, 0.001),
        ("beta", "classifier.3", 0.6012, 0.0034, 0.01),
    ):
        recs.append(
            record_from_result(
                "probe",
                {
                    "model": model,
                    "layer": layer,
                    "objective": "paper",
                    "protocol": "paper",
                    "accuracy": acc,
                    "accuracy_sd": sd,
                    "lambda": lam,
                    "k": 3,
                },
                created=when(4),
                dataset="things-train",
            )
        )
    for model, layer, raw, probed in (
        ("alpha", "fc", 0.4321, 0.5432),
        ("beta", "classifier.3", 0.3111, 0.3999),
    ):
        for transform, value in ((None, raw), ("paper", probed)):
            recs.append(
                record_from_result(
                    "rsa",
                    {
                        "value": value,
                        "compare": "spearman",
                        "rdm_method": "correlation",
                        "n_stimuli": 48,
                        "n_pairs": 1128,
                        "p_value": 0.0001,
                        "ci_low": value - 0.05,
                        "ci_high": value + 0.05,
                        "model": model,
                        "layer": layer,
                        "transform": transform,
                        "reference": "RDM48_triplet.mat",
                    },
                    created=when(5),
                )
            )
    for rec in recs:
        if rec["model"] in attrs:
            rec["model_attrs"] = attrs[rec["model"]]
    return recs


class PageParser(HTMLParser):
    """Collects image sources and links; checks that non-void tags nest and close."""

    VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
            assert a.get("alt"), "every image has alternative text"
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_page(path: Path) -> PageParser:
    p = PageParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    assert p.errors == [] and p.stack == [], (p.errors, p.stack)
    return p


def check_png(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].std()) > 0.01  # not a blank canvas
    return img


def check_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    table = ResultsTable(tmp / "results.jsonl")
    table.extend(known_records())
    files = write_report(table.path, tmp / "out", title="Known numbers")
    return files, tmp


def test_tables_show_the_known_numbers(report):
    files, _ = report
    html, md = files.html.read_text(), files.markdown.read_text()
    expected = [
        "0.6123",
        "[0.6000, 0.6250]",  # alpha fc zero-shot, newest record
        "0.5987",
        "[0.5871, 0.6102]",
        "0.5432",
        "[0.5311, 0.5550]",
        "0.4567",
        "0.6613",  # alpha scored with the probe transform
        "0.6543",
        "0.0021",
        "0.6012",
        "0.0034",  # probing accuracy and sd over folds
        "0.4321",
        "0.3111",
        "0.3999",
        "[0.3821, 0.4821]",  # RSA without / with transform
        "0.7613",
        "138357544",  # model attributes
        "0.7500",
        "0.8000",
        "0.2000",
        "0.6000",  # per-concept accuracies of alpha
    ]
    for text in expected:
        assert text in html, text
        assert text in md, text
    assert "0.5111" not in html and "0.5111" not in md  # the stale repeat is not shown
    assert "Known numbers" in html and md.startswith("# Known numbers")
    # the per-model summary keeps each model's best layer
    row = next(line for line in md.splitlines() if line.startswith("| alpha | fc |"))
    assert "0.6123" in row and "0.6613" in row  # probing: best of the probe and the probed score


def test_per_concept_table_is_sorted_and_skips_empty_dimensions(report):
    files, _ = report
    md = files.markdown.read_text()
    section = md.split("## Accuracy per human concept dimension", 1)[1].split("\n## ", 1)[0]
    labels = [
        line.split(" | ")[2]
        for line in section.splitlines()
        if line.startswith("| ") and line.split(" | ")[0] != "| rank" and "---" not in line
    ]
    ranked = sorted(
        (lab for lab in DIMS if DIMS[lab][0]), key=lambda lab: -DIMS[lab][1] / DIMS[lab][0]
    )
    assert labels == ranked
    assert "1 dimensions without triplets are left out" in section


def test_every_section_has_its_figure_as_png_and_svg(report):
    files, tmp = report
    assert files.omitted == []
    figures = tmp / "out" / "figures"
    for stem in (
        "accuracy",
        "rsa",
        "concepts-alpha",
        "attribute-imagenet_top1",
        "attribute-n_params",
    ):
        check_png(figures / f"{stem}.png")
        check_svg(figures / f"{stem}.svg")
    assert sorted(p.name for p in files.figures) == sorted(p.name for p in figures.iterdir())


def test_html_parses_and_every_image_exists(report):
    files, _ = report
    page = parse_page(files.html)
    assert len(page.images) == 5
    for src in page.images:
        assert not src.startswith(("/", "http", "data:")), src  # relative files next to the page
        check_png(files.html.parent / src)
    for href in page.links:
        if not href.startswith("#"):
            check_svg(files.html.parent / href)
    # the Markdown references the same files
    md = files.markdown.read_text()
    for src in page.images:
        assert f"]({src})" in md


def test_embedded_images_decode_to_the_same_png(tmp_path):
    files = build_report(known_records(), tmp_path / "out", embed=True)
    page = parse_page(files.html)
    assert page.images and all(s.startswith("data:image/png;base64,") for s in page.images)
    for src in page.images:
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == PNG_SIGNATURE
        assert any(data == f.read_bytes() for f in files.figures if f.suffix == ".png")


def test_sections_without_data_are_notes_not_empty_figures(tmp_path):
    recs = [ooo("alpha", "fc", 0.6123, 0.6, 0.625)]
    files = build_report(recs, tmp_path / "out")
    assert files.omitted == [
        "RSA with and without the probe transform",
        "Accuracy per human concept dimension",
        "Accuracy against model attributes",
    ]
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "accuracy.png",
        "accuracy.svg",
    ]
    html = files.html.read_text()
    assert "No RSA results are recorded" in html and "0.6123" in html
    # one model with an attribute: a table but no figure, and a note saying why
    recs[0]["model_attrs"] = {"n_params": 1000}
    files = build_report(recs, tmp_path / "out2")
    assert not list((tmp_path / "out2" / "figures").glob("attribute-*"))
    assert "fewer than two models" in files.markdown.read_text()


def test_report_from_a_store_folder(tmp_path):
    from alignkit.store import EmbeddingStore

    store = tmp_path / "s.zarr"
    EmbeddingStore(str(store), mode="a").write(
        "alpha", "fc", np.eye(3, dtype=np.float32), np.array(["a", "b", "c"])
    )
    with pytest.raises(InputError, match="the store has no results yet"):
        load_records(store)
    ResultsTable.for_store(store).extend(known_records()[:3])
    records, path = load_records(store)
    assert path == store / "results.jsonl" and len(records) == 3
    files = write_report(store, tmp_path / "out")
    assert "0.6123" in files.html.read_text()


def test_bad_inputs_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="holds no results records"):
        load_records(empty)
    with pytest.raises(InputError, match="does not exist"):
        load_records(tmp_path / "missing.jsonl")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="has no results.jsonl and is not an alignkit store"):
        load_records(tmp_path / "plain")
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps(dict(known_records()[0], format_version=2)) + "\n")
    with pytest.raises(DataError, match="line 1 was written by a newer alignkit"):
        load_records(newer)
    with pytest.raises(InputError, match="no results records"):
        build_report([], tmp_path / "out")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(
        InputError, match=f"--out {blocker / 'sub'}: cannot create the report folder"
    ):
        build_report(known_records(), blocker / "sub")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path):
    out = tmp_path / "ro"
    (out / "figures").mkdir(parents=True)
    out.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            build_report(known_records(), out)
    finally:
        out.chmod(0o700)


@pytest.fixture
def cli(monkeypatch):
    from alignkit import cli as cli_module

    monkeypatch.setitem(cli_module.COMMANDS, "report", "alignkit.commands.report:report")

    def run(*args: str):
        return CliRunner().invoke(cli_module.cli, list(args))

    return run


def test_cli_writes_the_report_and_lists_the_files(cli, tmp_path):
    results = tmp_path / "r.jsonl"
    ResultsTable(results).extend(known_records())
    out = tmp_path / "out"
    r = cli("report", str(results), "--out", str(out), "--title", "CLI run")
    assert r.exit_code == 0, r.output
    listed = r.stdout.split()
    assert listed[:2] == [str(out / "report.html"), str(out / "report.md")]
    assert all(Path(p).is_file() for p in listed) and len(listed) == 2 + 10
    assert "CLI run" in (out / "report.html").read_text()
    r = cli("report", "--help")
    assert r.exit_code == 0 and "Example" in r.output


def test_cli_bad_input_exits_2_with_one_line(cli, tmp_path):
    from alignkit.store import EmbeddingStore

    store = tmp_path / "s.zarr"
    EmbeddingStore(str(store), mode="a").write(
        "alpha", "fc", np.eye(3, dtype=np.float32), np.array(["a", "b", "c"])
    )
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps(dict(known_records()[0], format_version=2)) + "\n")
    good = tmp_path / "good.jsonl"
    ResultsTable(good).extend(known_records()[:2])
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    cases = [
        ((str(store), "--out", str(tmp_path / "o1")), "the store has no results yet"),
        ((str(newer), "--out", str(tmp_path / "o2")), "newer alignkit (format 2)"),
        ((str(good), "--out", str(blocker / "sub")), f"--out {blocker / 'sub'}: cannot create"),
        ((str(good),), "Missing option '--out'"),
    ]
    for args, message in cases:
        r = cli("report", *args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output
        assert "Traceback" not in r.output


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium (/usr/bin/chromium) not installed"
)
def test_report_opens_in_headless_chromium(report, tmp_path):
    files, _ = report
    base = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [*base, "--dump-dom", files.html.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "0.6123" in dom and dom.count("<img") == 5
    shot = tmp_path / "page.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1200,2000", files.html.as_uri()],
        capture_output=True,
        timeout=60,
        check=True,
    )
    check_png(shot)
    assert shutil.which(str(CHROMIUM))


def test_importing_the_report_is_light():
    code = (
        "import sys, alignkit.report, alignkit.results, alignkit.commands.report\n"
        "print(sorted(m for m in ('matplotlib', 'zarr', 'torch', 'numba', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
