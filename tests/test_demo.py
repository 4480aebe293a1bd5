"""``alignkit demo``: the main job on bundled data, end to end."""

from __future__ import annotations

import html.parser

import pytest
from click.testing import CliRunner

from alignkit.cli import cli


class _Images(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src += [v for k, v in attrs if k == "src"]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    from alignkit.demo import find_mobilenet_weights
    from alignkit.results import ResultsTable

    out = tmp_path / "demo"
    r = CliRunner().invoke(cli, ["demo", "--out", str(out), "--bootstrap", "50"])
    assert r.exit_code == 0, r.output
    assert "0.63475" in r.stdout  # the SPoSE embedding on the real triplets (data README)
    assert "report:" in r.stdout

    records = ResultsTable.for_store(out / "demo.zarr").records()
    kinds = [rec["kind"] for rec in records]
    assert kinds.count("ooo") == 4 and kinds.count("probe") == 1 and kinds.count("rsa") == 3
    probe = next(rec["result"] for rec in records if rec["kind"] == "probe")
    lost = probe["human_embedding_accuracy"] - probe["zero_shot_accuracy"]
    assert lost > 0.03  # the distortion costs accuracy
    assert probe["accuracy"] - probe["zero_shot_accuracy"] > lost / 2  # the probe repairs most
    rsa = {(rec["model"], rec["transform"]): rec["result"]["value"]
           for rec in records if rec["kind"] == "rsa"}
    assert 0.85 < rsa[("spose", None)] < 0.89
    assert rsa[("spose-distorted", "paper-simulated")] > rsa[("spose-distorted", None)]

    page = out / "report" / "report.html"
    parser = _Images()
    parser.feed(page.read_text())
    assert parser.src
    for src in parser.src:
        png = (page.parent / src).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n", src

    if find_mobilenet_weights() is not None:
        assert "espresso" in r.stdout  # coffee.png, with the real pretrained weights
    else:
        assert "UNTRAINED" in r.output


def test_demo_needs_a_writable_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    r = CliRunner().invoke(cli, ["demo", "--out", str(blocker / "sub"), "--no-extract"])
    assert r.exit_code == 2
    assert "Traceback" not in r.output and "cannot create" in r.output
