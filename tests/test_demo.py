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
    # calibration of both embeddings (dot products), concept-ridge of the distorted copy
    cal = {rec["model"]: rec["result"] for rec in records if rec["kind"] == "calibration"}
    assert sorted(cal) == ["spose", "spose-distorted"]
    assert 0.7 < cal["spose"]["temperature"] < 1.1 and cal["spose"]["ece"] < 0.05
    (ridge,) = [rec["result"] for rec in records if rec["kind"] == "concept-ridge"]
    assert 0.9 < ridge["mean_r2"] < 1.0
    assert f"{cal['spose']['temperature']:.5f}" in r.stdout and f"{ridge['mean_r2']:.5f}" in r.stdout
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


def _things_folder(root, n_rows=4):
    """A THINGS-layout folder (<concept>/<concept>_01b.jpg) for the concepts of a few real triplets."""
    import numpy as np
    from PIL import Image

    from alignkit.data import load_triplets, things_ids

    ids = things_ids().astype(str)
    concepts = sorted({ids[i] for i in load_triplets("things-test20k").array[:n_rows].ravel()})
    rng = np.random.default_rng(0)
    for c in concepts:
        (root / c).mkdir(parents=True)
        for suffix in ("01b", "02s"):
            pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{c}_{suffix}.jpg")
    return concepts


@pytest.mark.slow
def test_demo_scores_a_real_network_on_things_images(tmp_path):
    import numpy as np

    from alignkit.data import load_triplets, things_ids
    from alignkit.results import ResultsTable
    from alignkit.store import EmbeddingStore

    concepts = _things_folder(tmp_path / "things")
    out = tmp_path / "demo"
    r = CliRunner().invoke(cli, ["demo", "--out", str(out), "--bootstrap", "20",
                                 "--images", str(tmp_path / "things")])
    assert r.exit_code == 0, r.output
    assert "no network is scored" not in r.output
    assert "Extraction check" not in r.stdout  # the sample photographs are not extracted

    # independent zero-shot accuracy: cosine similarities of the stored features on the
    # real triplets whose three objects all have an image
    entry = EmbeddingStore(out / "demo.zarr").entry("mobilenet_v2", "features.18.1")  # penultimate
    assert list(entry.ids) == concepts
    X = entry.features().astype(np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    pos = {c: i for i, c in enumerate(concepts)}
    ids = things_ids().astype(str)
    rows = [[pos[ids[i]] for i in t] for t in load_triplets("things-test20k").array
            if all(ids[i] in pos for i in t)]
    t = np.array(rows)
    s = np.stack([(X[t[:, 0]] * X[t[:, 1]]).sum(1), (X[t[:, 0]] * X[t[:, 2]]).sum(1),
                  (X[t[:, 1]] * X[t[:, 2]]).sum(1)], axis=1)
    expected = float(np.mean(np.argmax(s, axis=1) == 0))

    records = ResultsTable.for_store(out / "demo.zarr").records()
    net = [rec for rec in records if rec["kind"] == "ooo" and rec["model"] == "mobilenet_v2"]
    assert {rec["layer"] for rec in net} == {"features.18.1", "classifier.1"}
    pen = next(rec for rec in net if rec["layer"] == "features.18.1")
    assert pen["result"]["n_triplets"] == len(t)
    assert pen["result"]["accuracy"] == pytest.approx(expected, abs=1e-12)
    probe = next(rec for rec in records if rec["kind"] == "probe" and rec["model"] == "mobilenet_v2")
    # the printed network table says its similarity and tie rule, the probe's included
    table = r.stdout[r.stdout.index("Zero-shot odd-one-out accuracy on those"):]
    header = table.splitlines()[1].split()
    assert header[:4] == ["model", "layer", "similarity", "ties"]
    assert probe["result"]["ties"] == pen["result"]["ties"] == "paper"
    assert f"{len(concepts)} THINGS concepts" in r.stdout
    assert f"{expected:.4f}"[:5] in r.stdout  # the network's row in the printed table
    assert "0.63475" in r.stdout  # the bundled chain still runs


def test_demo_fetch_images_offline_is_a_clear_error(tmp_path, monkeypatch):
    """--fetch-images goes through the data registry: offline and not cached, one exit-2 line
    naming the download and where to put it."""
    monkeypatch.setenv("ALIGNKIT_OFFLINE", "1")
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    r = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "d"), "--fetch-images"])
    assert r.exit_code == 2, r.output
    err = [ln for ln in r.output.splitlines() if ln.startswith("alignkit: error")]
    assert len(err) == 1 and "Traceback" not in r.output
    assert "offline" in err[0] and str(tmp_path / "cache") in err[0]
