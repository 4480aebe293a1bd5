"""Transforms: .npz round trip, the published formula, the store, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from alignkit.errors import FormatError, MismatchError
from alignkit.probe.transform import Transform, load_transform


def _transform(rng: np.random.Generator, p: int = 7, bias: bool = True) -> Transform:
    return Transform(weights=rng.normal(size=(p, p)), bias=rng.normal(size=p) if bias else None,
                     mean=0.37, std=2.5, attrs={"protocol": "nested"})


def test_npz_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    tr = _transform(rng)
    path = tr.to_npz(tmp_path / "t.npz")
    with np.load(path) as z:
        assert {"weights", "bias", "mean", "std"} <= set(z.files)
    back = load_transform(path)
    assert np.array_equal(back.weights, tr.weights) and np.array_equal(back.bias, tr.bias)
    assert back.mean == tr.mean and back.std == tr.std and back.attrs["protocol"] == "nested"


def test_published_format_applies_the_formula(tmp_path) -> None:
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    np.savez(tmp_path / "pub.npz", weights=w, bias=b, mean=np.float64(1.5), std=np.float64(0.25))
    x = rng.normal(size=(11, 5)).astype(np.float32)
    got = Transform.from_npz(tmp_path / "pub.npz").apply(x)
    want = ((x.astype(np.float64) - 1.5) / 0.25) @ w + b
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_bad_npz_and_shapes(tmp_path) -> None:
    np.savez(tmp_path / "bad.npz", weights=np.eye(2))
    with pytest.raises(FormatError, match="missing key"):
        Transform.from_npz(tmp_path / "bad.npz")
    with pytest.raises(MismatchError):
        _transform(np.random.default_rng(2), p=4).apply(np.zeros((3, 5)))


def test_store_and_cli_round_trip(tmp_path) -> None:
    store_mod = pytest.importorskip("alignkit.store")
    from alignkit.cli import cli

    rng = np.random.default_rng(3)
    n, p = 60, 4
    feats = rng.normal(size=(n, p)).astype(np.float32)
    st = store_mod.EmbeddingStore(tmp_path / "s.zarr", mode="a")
    st.write("m", "l", feats, [f"o{i}" for i in range(n)])
    t = rng.integers(0, n, size=(4000, 3))
    t = t[(t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])]
    sm = feats.astype(np.float64) @ feats.T  # label every triplet by the features themselves
    sims = np.stack((sm[t[:, 0], t[:, 1]], sm[t[:, 0], t[:, 2]], sm[t[:, 1], t[:, 2]]), 1)
    order = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])[sims.argmax(1)]
    t = np.take_along_axis(t, order, axis=1)
    np.savetxt(tmp_path / "t.txt", t, fmt="%d")
    runner = CliRunner()
    r = runner.invoke(cli, ["probe", str(tmp_path / "s.zarr"), "--model", "m", "--layer", "l",
                            "--triplets", str(tmp_path / "t.txt"), "--lambdas", "1e-3",
                            "--folds", "3", "--no-progress", "--name", "pr"])
    assert r.exit_code == 0, r.output
    assert "*lambda=0.001" in r.output and "protocol: nested" in r.output
    r = runner.invoke(cli, ["probe", str(tmp_path / "s.zarr"), "--model", "m", "--layer", "l",
                            "--triplets", str(tmp_path / "t.txt"), "--lambdas", "1e-2,1e-3",
                            "--protocol", "paper", "--no-save", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["protocol"] == "paper" and d["saved_as"] is None and len(d["configs"]) == 2
    from alignkit.results import ResultsTable

    recs = ResultsTable.for_store(tmp_path / "s.zarr").records("probe")
    assert [r["result"]["protocol"] for r in recs] == ["nested", "paper"]
    assert recs[1]["result"]["accuracy"] == pytest.approx(d["probing_accuracy"])
    assert recs[1]["result"]["lambda"] in (1e-2, 1e-3) and recs[1]["result"]["k"] == 3
    assert 0 <= recs[1]["result"]["zero_shot_accuracy"] <= 1
    r = runner.invoke(cli, ["probe", str(tmp_path / "s.zarr"), "--model", "m", "--layer", "l",
                            "--triplets", str(tmp_path / "t.txt"), "--name", "pr"])
    assert r.exit_code == 2 and "exists" in r.output
    r = runner.invoke(cli, ["probe", "export", str(tmp_path / "s.zarr"), str(tmp_path / "o.npz"),
                            "--model", "m", "--layer", "l", "--probe", "pr"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["probe", "import", str(tmp_path / "s.zarr"), str(tmp_path / "o.npz"),
                            "--model", "m", "--layer", "l", "--name", "pr2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["probe", "apply", str(tmp_path / "s.zarr"), "--model", "m",
                            "--layer", "l", "--probe", "pr2"])
    assert r.exit_code == 0, r.output
    st = store_mod.EmbeddingStore(tmp_path / "s.zarr", mode="r")
    entry = st.entry("m", "l")
    tr = load_transform(entry, "pr")
    np.testing.assert_allclose(st.entry("m", "l+pr2").features(), tr.apply(feats), rtol=1e-5,
                               atol=1e-5)
    assert tr.attrs["protocol"] == "nested" and tr.mean == pytest.approx(float(feats.astype(np.float64).mean()))
