"""``alignkit report``: tables with known numbers, valid figures, valid HTML, clear errors.

Records are built by hand, old-style (as written before tie counts were split and
ceilings carried their source) and new-style, with and without bootstrap
intervals. Intervals drawn in a figure are read back from its SVG: each error bar
is a group ``interval-<series>-<bar>`` whose path is mapped to data coordinates
through the chance and ceiling lines (``chance-line``, ``ceiling-line``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.errors import DataError, InputError
from alignkit.report import build_report, load_records, wilson_interval, write_report
from alignkit.results import ResultsTable, record_from_result

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Concept dimensions of model "alpha": label -> (triplets, correct); "empty" has no triplets.
DIMS = {
    "animal": (400, 300),
    "food": (300, 240),
    "royal": (50, 10),
    "tool": (250, 150),
    "sparse": (20, 19),  # below the default minimum of 30 triplets: left out
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
    # the per-model summary keeps each model's best layer, per series
    rows = [line for line in md.splitlines() if line.startswith("| alpha | ")]
    assert any(r.startswith("| alpha | zero-shot | fc |") and "0.6123" in r for r in rows)
    assert any(r.startswith("| alpha | probe transform | fc |") and "0.6613" in r for r in rows)
    assert any(r.startswith("| alpha | probe | fc |") and "0.6543" in r for r in rows)


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
        (lab for lab in DIMS if DIMS[lab][0] >= 30), key=lambda lab: -DIMS[lab][1] / DIMS[lab][0]
    )
    assert labels == ranked and "sparse" not in labels
    left = "dimensions left out for having fewer than 30 triplets: 2 of 6 (1 of them without any)"
    assert section.count(left) == 3  # figure alt text, figure caption, table caption


def test_every_section_has_its_figure_as_png_and_svg(report):
    files, tmp = report
    assert files.omitted == []
    figures = tmp / "out" / "figures"
    for stem in (
        "accuracy-things-test20k-cosine-any-tie-wrong",
        "probe-things-train-paper-paper",
        "rsa",
        "concepts-alpha-fc-things-test20k-cosine-any-tie-wrong",
        "attribute-imagenet_top1-ooo-things-test20k-cosine-any-tie-wrong",
        "attribute-n_params-ooo-things-test20k-cosine-any-tie-wrong",
        "attribute-imagenet_top1-probe-things-train-paper-paper",
        "attribute-n_params-probe-things-train-paper-paper",
        "scatter-ooo-rsa",  # RSA against each other measure of the same entries
        "scatter-probe-rsa",
    ):
        check_png(figures / f"{stem}.png")
        check_svg(figures / f"{stem}.svg")
    assert sorted(p.name for p in files.figures) == sorted(p.name for p in figures.iterdir())


def test_html_parses_and_every_image_exists(report):
    files, _ = report
    page = parse_page(files.html)
    assert len(page.images) == 10 == len([f for f in files.figures if f.suffix == ".png"])
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
        "Linear probes",
        "RSA: model against human dissimilarities",
        "Accuracy per human concept dimension",
        "Accuracy against model attributes",
    ]
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "accuracy-things-test20k-cosine-any-tie-wrong.png",
        "accuracy-things-test20k-cosine-any-tie-wrong.svg",
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
    assert all(Path(p).is_file() for p in listed) and len(listed) == 2 + 20  # 10 figures x 2
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


def test_importing_the_report_is_light():
    code = (
        "import sys, alignkit.report, alignkit.results, alignkit.commands.report\n"
        "print(sorted(m for m in ('matplotlib', 'zarr', 'torch', 'numba', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- new-style records
def new_ooo(
    model,
    layer,
    acc,
    ci=None,
    *,
    day=1,
    dataset="things-test20k",
    similarity="cosine",
    ties="paper",
    preset=None,
    overrides=(),
    transform=None,
    in_sample=None,
    ceiling=0.673,
    ceiling_source="THINGS (paper2023)",
    ties_split=(5, 4, 1),
    n_triplets=20000,
    per_concept=None,
    checksum="1",
):
    """An odd-one-out record as the current scoring code writes it."""
    lo, hi = ci if ci is not None else (None, None)
    n_ties, n_ties2, n_ties3 = ties_split
    return record_from_result(
        "ooo",
        {
            "accuracy": acc,
            "n_triplets": n_triplets,
            "n_correct": round(acc * n_triplets),
            "n_ties": n_ties,
            "n_ties2": n_ties2,
            "n_ties3": n_ties3,
            "similarity": similarity,
            "ties": ties,
            "preset": preset,
            "overrides": list(overrides),
            "ceiling": ceiling,
            "ceiling_source": ceiling_source if ceiling is not None else None,
            "normalised": None if ceiling is None else (acc - 1 / 3) / (ceiling - 1 / 3),
            "chance": 1 / 3,
            "ci_low": lo,
            "ci_high": hi,
            "ci_level": 0.95,
            "n_bootstrap": 1000 if ci is not None else 0,
            "in_sample": in_sample,
            "model": model,
            "layer": layer,
            "transform": transform,
            "per_concept": per_concept,
            "provenance": {
                "triplets": {"source": dataset},
                "features_checksum": "sha256:" + checksum * 64,
            },
        },
        created=when(day),
    )


def new_probe(model, layer, acc, *, sd=None, ci=None, zero_shot=None, in_sample=None, day=4):
    result = {
        "model": model,
        "layer": layer,
        "objective": "paper",
        "protocol": "nested",
        "accuracy": acc,
        "accuracy_sd": sd,
        "k": 3,
        "lambda": 0.001,
        "zero_shot_accuracy": zero_shot,
        "in_sample": in_sample,
        # a ceiling line gives the SVG a second reference line for reading intervals back
        "ceiling": 0.673,
        "ceiling_source": "THINGS (paper2023)",
    }
    if ci is not None:
        result.update(ci_low=ci[0], ci_high=ci[1], ci_level=0.95)
    return record_from_result("probe", result, created=when(day), dataset="things-train")


def md_section(md: str, title_start: str) -> str:
    """The Markdown of the one section whose heading starts with ``title_start``."""
    parts = [p for p in md.split("\n## ")[1:] if p.startswith(title_start)]
    assert len(parts) == 1, (title_start, [p.splitlines()[0] for p in md.split("\n## ")[1:]])
    return parts[0]


def md_rows(section: str, first_cell: str) -> list[str]:
    return [line for line in section.splitlines() if line.startswith(f"| {first_cell} |")]


def svg_intervals(svg: Path) -> dict[str, tuple[float, float]]:
    """Each error bar of a horizontal-bar figure, in data coordinates.

    The pixel-to-data map comes from the chance line (1/3) and the ceiling line
    (whose value is given in the legend, ``noise ceiling (0.673, ...)``).
    """
    text = svg.read_text()

    def xs(gid: str) -> list[float]:
        m = re.search(rf'<g id="{gid}">\s*<path d="M ([-\d.]+) [-\d.]+\s+L ([-\d.]+) ', text)
        assert m, gid
        return [float(m.group(1)), float(m.group(2))]

    ceiling = float(re.search(r"noise ceiling \(([\d.]+)", text).group(1))
    x_chance, x_ceiling = xs("chance-line")[0], xs("ceiling-line")[0]
    scale = (ceiling - 1 / 3) / (x_ceiling - x_chance)
    out = {}
    for gid in re.findall(r'<g id="(interval-\d+-\d+)">', text):
        a, b = xs(gid)
        out[gid] = (1 / 3 + (a - x_chance) * scale, 1 / 3 + (b - x_chance) * scale)
    return out


def interval_ids(svg: Path) -> list[str]:
    return re.findall(r'<g id="(interval-[\d-]+?)">', svg.read_text().replace("-cap", "_cap"))


def figure_of(files, name_start: str) -> Path:
    svgs = [f for f in files.figures if f.suffix == ".svg" and f.name.startswith(name_start)]
    assert len(svgs) == 1, (name_start, [f.name for f in files.figures])
    return svgs[0]


def test_one_section_table_and_figure_per_condition(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.6101, (0.60, 0.62)),
        new_ooo("beta", "fc", 0.5502, (0.54, 0.56)),
        new_ooo("alpha", "fc", 0.6202, (0.61, 0.63), similarity="dot"),
        new_ooo("alpha", "fc", 0.6303, (0.62, 0.64), ties="first"),
        new_ooo("alpha", "fc", 0.6404, (0.63, 0.65), preset="paper2023", overrides=["ties"]),
        new_ooo("alpha", "fc", 0.4505, (0.44, 0.46), dataset="cichy-triplets", ceiling=None),
        ooo("alpha", "fc", 0.5606, 0.55, 0.57),  # old record: ties "wrong"
    ]
    files = build_report(recs, tmp_path / "out")
    md, html = files.markdown.read_text(), files.html.read_text()
    conditions = {
        "triplets things-test20k, similarity cosine, tie rule paper": ("0.6101", "0.5502"),
        "triplets things-test20k, similarity dot, tie rule paper": ("0.6202",),
        "triplets things-test20k, similarity cosine, tie rule first": ("0.6303",),
        "triplets things-test20k, similarity cosine, tie rule paper, preset paper2023": ("0.6404",),
        "triplets cichy-triplets, similarity cosine, tie rule paper": ("0.4505",),
        "triplets things-test20k, similarity cosine, tie rule any-tie-wrong": ("0.5606",),
    }
    all_values = {v for vals in conditions.values() for v in vals}
    figures = [f for f in files.figures if f.name.startswith("accuracy-") and f.suffix == ".svg"]
    assert len(figures) == len(conditions)
    for cond, values in conditions.items():
        section = md_section(md, f"Odd-one-out accuracy: {cond}\n")
        for v in all_values:  # its own numbers, and nobody else's
            assert (v in section) == (v in values), (cond, v)
        captions = [line for line in section.splitlines() if line.startswith("*Odd-one-out")]
        assert len(captions) == 1 and f"({cond});" in captions[0]
        # the figure's own title names the condition too (SVG text is kept as text)
        (svg,) = [f for f in figures if f"{cond}</text>" in f.read_text()]
        assert len(interval_ids(svg)) == len(values)  # one bar with its interval per record
    assert "set beside it: ties" in md  # overrides beside a preset are shown
    assert "tie rule wrong" not in md and "tie rule wrong" not in html


def test_figure_titles_name_the_condition(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.61, (0.60, 0.62), preset="brainscore", similarity="dot"),
        new_ooo("alpha", "fc", 0.45, (0.44, 0.46), dataset="cichy-triplets", ceiling=None),
    ]
    files = build_report(recs, tmp_path / "out")
    for svg in (f for f in files.figures if f.suffix == ".svg"):
        text = svg.read_text()
        assert ("things-test20k" in text) != ("cichy-triplets" in text), svg.name
        if "things-test20k" in text:
            assert "similarity dot, tie rule paper, preset brainscore" in text
        else:
            assert "similarity cosine, tie rule paper" in text and "preset" not in text


def test_newest_record_without_interval_keeps_the_earlier_interval_of_the_same_value(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.6123, (0.6011, 0.6234), day=1),  # bootstrapped
        new_ooo("alpha", "fc", 0.6123, None, day=2),  # same value again, no bootstrap
    ]
    files = build_report(recs, tmp_path / "out")
    md = files.markdown.read_text()
    section = md_section(md, "Odd-one-out accuracy: triplets things-test20k")
    label = f"[0.6011, 0.6234] (interval of the earlier record of {when(1)})"
    rows = md_rows(section, "alpha")
    assert len(rows) == 2 and all(label in r for r in rows)  # best-layer and every-record tables
    assert when(2) in rows[1]  # the newest record is the one shown
    assert "The interval of alpha (zero-shot) is that of an earlier record" in section
    # the figure draws exactly that interval
    (iv,) = svg_intervals(figure_of(files, "accuracy-")).values()
    assert iv == pytest.approx((0.6011, 0.6234), abs=2e-4)


def test_newest_record_with_a_different_value_keeps_the_earlier_one_as_a_row(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.6123, (0.6011, 0.6234), day=1),
        new_ooo("alpha", "fc", 0.5999, None, day=2, checksum="2"),  # other features
    ]
    files = build_report(recs, tmp_path / "out")
    section = md_section(files.markdown.read_text(), "Odd-one-out accuracy: triplets things")
    table = section.split("**Odd-one-out accuracy, every measurement", 1)[1]
    rows = md_rows(table, "alpha")
    assert len(rows) == 2
    assert "0.5999" in rows[0] and "| – |" in rows[0] and when(2) in rows[0]
    assert "0.6123" in rows[1] and "[0.6011, 0.6234]" in rows[1]
    assert f"{when(1)}: earlier record, kept for its interval" in rows[1]
    assert "No interval is recorded for alpha (zero-shot)" in section
    assert "An earlier record of alpha (zero-shot) has an interval but a different value" in section
    assert svg_intervals(figure_of(files, "accuracy-")) == {}  # no bar claims that interval


def test_a_newer_record_with_an_interval_replaces_an_older_one(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.6000, (0.59, 0.61), day=1),  # oldest, with an interval
        new_ooo("alpha", "fc", 0.5111, None, day=2),
        new_ooo("alpha", "fc", 0.6123, (0.6011, 0.6234), day=3),
    ]
    files = build_report(recs, tmp_path / "out")
    md = files.markdown.read_text()
    assert "0.5111" not in md and "0.6000" not in md
    assert "[0.6011, 0.6234]" in md
    assert "kept for its interval" not in md and "interval of the earlier record" not in md


def test_probe_error_bars_are_what_the_caption_says(tmp_path):
    recs = [
        new_probe("alpha", "fc", 0.70, sd=0.01, ci=(0.65, 0.74), zero_shot=0.6111),
        new_probe("beta", "fc", 0.60, sd=0.02, zero_shot=0.5222),
        new_probe("gamma", "fc", 0.50),
    ]
    files = build_report(recs, tmp_path / "out")
    section = md_section(files.markdown.read_text(), "Linear probe: triplets things-train")
    caption = next(line for line in section.splitlines() if line.startswith("*Linear probe"))
    assert "Error bars: the recorded confidence interval for alpha (probe) (95%)." in caption
    assert (
        "plus or minus one standard deviation over cross-validation folds for beta (probe)"
        in caption
    )
    assert "No interval is recorded for gamma (probe), alpha (zero-shot), beta (zero-shot)" in (
        caption
    )
    # the SVG draws the CI for alpha and +-sd for beta, nothing for gamma or the zero-shot bars
    labels = ["alpha", "beta", "gamma"]  # figure order: best first
    bars = svg_intervals(figure_of(files, "probe-"))
    assert set(bars) == {"interval-0-0", "interval-0-1"}
    assert bars["interval-0-0"] == pytest.approx((0.65, 0.74), abs=2e-4)
    assert bars["interval-0-1"] == pytest.approx((0.58, 0.62), abs=2e-4)
    # the zero-shot accuracy on the same folds sits beside the probe
    svg = figure_of(files, "probe-").read_text()
    assert "zero-shot (raw features, same held-out folds)" in svg
    rows = {m: md_rows(section.split("every measurement")[1], m)[0] for m in labels}
    assert "0.6111" in rows["alpha"] and "0.5222" in rows["beta"]
    assert "[0.6500, 0.7400]" in rows["alpha"]


def test_in_sample_scores_are_labelled_wherever_they_appear(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.61, (0.60, 0.62)),
        new_ooo("alpha", "fc", 0.71, (0.70, 0.72), transform="glocal", in_sample=True),
        new_ooo("beta", "fc", 0.66, (0.65, 0.67), transform="glocal", in_sample=False),
        new_probe("alpha", "fc", 0.75, sd=0.01, in_sample=True),
    ]
    files = build_report(recs, tmp_path / "out")
    md = files.markdown.read_text()
    section = md_section(md, "Odd-one-out accuracy: triplets things-test20k")
    row = next(r for r in md_rows(section, "alpha") if "0.7100" in r)
    assert "glocal (in-sample: scored on its training triplets)" in row
    assert any("glocal (held-out)" in r for r in md_rows(section, "beta"))
    assert "Hatched bars are in-sample" in section
    svg = figure_of(files, "accuracy-").read_text()
    assert "with probe transform, in-sample (scored on its training triplets)" in svg
    probe = md_section(md, "Linear probe:")
    assert "in-sample (scored on its training triplets)" in md_rows(probe, "alpha")[-1]
    assert "linear probe, in-sample" in figure_of(files, "probe-").read_text()


def test_tie_counts_are_split_two_and_three_way(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.61, None, ties_split=(7, 5, 2)),
        ooo("beta", "fc", 0.55, None, None),  # old record: only the total
    ]
    files = build_report(recs, tmp_path / "out")
    md = files.markdown.read_text()
    header = next(line for line in md.splitlines() if "| tied triplets |" in line)
    assert "| tied triplets | two-way ties | three-way ties |" in header
    new = md_section(
        md, "Odd-one-out accuracy: triplets things-test20k, similarity cosine, tie rule paper"
    )
    assert "| 7 | 5 | 2 |" in md_rows(new, "alpha")[-1]
    old = md_section(
        md,
        "Odd-one-out accuracy: triplets things-test20k, similarity cosine, tie rule any-tie-wrong",
    )
    assert "| 3 | not recorded | not recorded |" in md_rows(old, "beta")[-1]


def test_ceiling_only_where_the_record_has_one(tmp_path):
    recs = [
        new_ooo("alpha", "fc", 0.4505, (0.44, 0.46), dataset="cichy-triplets", ceiling=None),
        # an old record on other triplets: older alignkit applied the THINGS ceiling anyway
        ooo("beta", "fc", 0.4606, 0.45, 0.47, dataset="king-triplets"),
        new_ooo(
            "gamma",
            "fc",
            0.5707,
            (0.56, 0.58),
            dataset="repeat-triplets",
            ceiling=0.7,
            ceiling_source="computed from repeats.npy",
        ),
    ]
    files = build_report(recs, tmp_path / "out")
    md = files.markdown.read_text()
    for dataset, model in (("cichy-triplets", "alpha"), ("king-triplets", "beta")):
        section = md_section(md, f"Odd-one-out accuracy: triplets {dataset}")
        row = md_rows(section, model)[-1]
        assert "| – | none |" in row  # no normalised score, no ceiling
        assert "No noise ceiling is recorded for these triplets" in section
        svg = figure_of(files, f"accuracy-{dataset}").read_text()
        assert 'id="ceiling-line"' not in svg and "noise ceiling" not in svg
    section = md_section(md, "Odd-one-out accuracy: triplets repeat-triplets")
    assert "Dotted line: the noise ceiling 0.700 (computed from repeats.npy)." in section
    assert "0.7 (computed from repeats.npy)" in md_rows(section, "gamma")[-1]
    assert 'id="ceiling-line"' in figure_of(files, "accuracy-repeat").read_text()


def test_rsa_text_says_whether_a_transform_was_applied(tmp_path):
    def rsa(model, value, transform=None):
        return record_from_result(
            "rsa",
            {
                "value": value,
                "compare": "spearman",
                "rdm_method": "correlation",
                "n_stimuli": 48,
                "model": model,
                "layer": "fc",
                "transform": transform,
                "reference": "rdm48",
                "ci_low": value - 0.05,
                "ci_high": value + 0.05,
                "ci_level": 0.95,
            },
            created=when(5),
        )

    files = build_report([rsa("alpha", 0.41), rsa("beta", 0.31)], tmp_path / "a")
    section = md_section(files.markdown.read_text(), "RSA")
    assert "No probe transform was applied to any of them" in section
    assert "All bars are from the raw features: no probe transform was applied." in section
    assert section.count("none (raw features)") == 2
    files = build_report([rsa("alpha", 0.41), rsa("alpha", 0.52, "glocal")], tmp_path / "b")
    section = md_section(files.markdown.read_text(), "RSA")
    assert (
        "1 of them are from the raw features (no transform applied) and 1 were computed after "
        "applying a probe transform (glocal)" in section
    )
    assert "glocal (applied)" in section and "[0.4700, 0.5700]" in section
    svg = (files.html.parent / "figures" / "rsa.svg").read_text()
    assert len(re.findall(r'<g id="interval-\d+-\d+-\d+">', svg)) == 2


def test_per_concept_intervals_and_minimum(tmp_path):
    recs = [new_ooo("alpha", "fc", 0.61, (0.60, 0.62), per_concept=per_concept())]
    files = build_report(recs, tmp_path / "a")
    section = md_section(files.markdown.read_text(), "Accuracy per human concept dimension")
    assert "95% Wilson score intervals" in section
    lo, hi = wilson_interval(10, 50)
    assert f"| royal | 50 | 10 | 0.2000 | [{lo:.4f}, {hi:.4f}] |" in section
    assert "fewer than 30 triplets: 2 of 6 (1 of them without any)" in section
    assert "sparse" not in section
    svg = figure_of(files, "concepts-")
    text = svg.read_text()
    bars = re.findall(r'<g id="(interval-0-\d+)">', text)
    assert len(bars) == 4  # animal, food, royal, tool
    # a lower minimum brings the sparse dimension back, with its (wide) interval
    files = build_report(recs, tmp_path / "b", min_concept_triplets=10)
    section = md_section(files.markdown.read_text(), "Accuracy per human concept dimension")
    lo, hi = wilson_interval(19, 20)
    assert f"| sparse | 20 | 19 | 0.9500 | [{lo:.4f}, {hi:.4f}] |" in section
    assert "fewer than 10 triplets: 1 of 6 (1 of them without any)" in section
    with pytest.raises(InputError, match="integer >= 1"):
        build_report(recs, tmp_path / "c", min_concept_triplets=0)
    # the same minimum from the command line
    import json

    from click.testing import CliRunner

    from alignkit.cli import cli

    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = CliRunner().invoke(cli, ["report", str(results), "--out", str(tmp_path / "d"),
                                 "--min-concept-triplets", "10"])
    assert r.exit_code == 0, r.output
    section = md_section((tmp_path / "d" / "report.md").read_text(),
                         "Accuracy per human concept dimension")
    assert "fewer than 10 triplets: 1 of 6 (1 of them without any)" in section
    r = CliRunner().invoke(cli, ["report", str(results), "--out", str(tmp_path / "e"),
                                 "--min-concept-triplets", "0"])
    assert r.exit_code == 2


def test_wilson_interval_known_values():
    assert wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    lo, hi = wilson_interval(10, 10, level=0.9)
    assert hi == 1.0 and lo == pytest.approx(10 / (10 + 1.6448536**2), abs=1e-6)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_a_probe_that_says_what_it_was_scored_on_is_not_labelled_object_held_out(tmp_path):
    """``evaluated_on`` replaces the default 'held-out objects (cross-validated)' label."""
    said = "real triplets; trained on simulated judgments among the same objects"
    plain = new_probe("alpha", "l", 0.6, zero_shot=0.5)
    told = new_probe("beta", "l", 0.61, zero_shot=0.5)
    told["result"]["evaluated_on"] = said
    told["result"]["protocol"] = "simulated"
    t = ResultsTable(tmp_path / "r.jsonl")
    t.append(plain)
    t.append(told)
    write_report(tmp_path / "r.jsonl", tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    beta = [ln for ln in md.splitlines() if ln.startswith("| beta |")]
    alpha = [ln for ln in md.splitlines() if ln.startswith("| alpha |")]
    assert beta and all("cross-validated" not in ln for ln in beta)
    assert any(said in ln for ln in beta)
    assert any("held-out objects (cross-validated)" in ln for ln in alpha)
    assert f"Probing accuracy, scored on {said}" in md  # the section of beta's protocol
    assert "Cross-validated probing accuracy on held-out objects" in md  # alpha's
    svgs = " ".join(p.read_text() for p in (tmp_path / "out" / "figures").glob("probe-*.svg"))
    assert f"linear probe ({said})" in svgs and "same test triplets" in svgs
