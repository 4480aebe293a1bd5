"""The RSA section's RDM heatmaps and measure-vs-measure scatter."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from alignkit.report import build_report
from alignkit.report._rdm_figures import category_order


@pytest.fixture()
def scored_store(tmp_path, shared_data):
    from alignkit.commands.score import record_results
    from alignkit.data import load_rdm, load_triplets
    from alignkit.score import score_store_ooo, score_store_rsa
    from alignkit.store import EmbeddingStore

    X = np.loadtxt(shared_data / "things" / "spose_embedding_49d_sorted.txt")
    ids = np.loadtxt(shared_data / "things" / "unique_id.txt", dtype=str)
    path = tmp_path / "s.zarr"
    st = EmbeddingStore(str(path), mode="a")
    rng = np.random.default_rng(0)
    st.write("spose", "49d", X.astype(np.float32), ids)
    st.write("noisy", "49d", (X + rng.normal(scale=X.std(), size=X.shape)).astype(np.float32), ids)
    st.write("noisier", "49d", (X + rng.normal(scale=3 * X.std(), size=X.shape)).astype(np.float32),
             ids)
    record_results(str(path), "rsa", score_store_rsa(str(path), load_rdm("rdm48"), rdm_method="dot"))
    record_results(str(path), "ooo", score_store_ooo(str(path), load_triplets("things-test20k")))
    return path


def _records(path):
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]


def test_heatmap_and_scatter_are_drawn(scored_store, tmp_path):
    files = build_report(_records(scored_store), tmp_path / "rep")
    names = {p.name for p in files.figures}
    assert {"rdm-rdm48.png", "rdm-rdm48.svg", "scatter-ooo-rsa.png"} <= names
    md = files.markdown.read_text()
    assert "Human RDM (rdm48) and the RDM of spose (49d)" in md
    assert "rows grouped by THINGS category" in md
    assert "3 entries have both" in md


def test_heatmap_skipped_with_a_note_without_the_store(scored_store, tmp_path):
    records = _records(scored_store)
    shutil.rmtree(scored_store)
    files = build_report(records, tmp_path / "rep")
    names = {p.name for p in files.figures}
    assert "rdm-rdm48.png" not in names and "scatter-ooo-rsa.png" in names
    assert "embedding store it was scored from is not available" in files.markdown.read_text()


def test_category_order_groups_things_ids_and_keeps_other_ids():
    order, cats = category_order(["banana", "aardvark", "apple", "alligator"])
    assert cats is not None and cats == sorted(cats)
    ordered = [["banana", "aardvark", "apple", "alligator"][k] for k in order]
    assert ordered.index("aardvark") + 1 == ordered.index("alligator") or \
        cats[ordered.index("aardvark")] != cats[ordered.index("alligator")]
    order, cats = category_order(["x1", "aardvark"])
    assert cats is None and order.tolist() == [0, 1]
