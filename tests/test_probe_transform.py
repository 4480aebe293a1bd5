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
    (tmp_path / "ids.txt").write_text("".join(f"o{i}\n" for i in range(n)))
    t = rng.integers(0, n, size=(4000, 3))
    t = t[(t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])]
    sm = feats.astype(np.float64) @ feats.T  # label every triplet by the features themselves
    sims = np.stack((sm[t[:, 0], t[:, 1]], sm[t[:, 0], t[:, 2]], sm[t[:, 1], t[:, 2]]), 1)
    order = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])[sims.argmax(1)]
    t = np.take_along_axis(t, order, axis=1)
    np.savetxt(tmp_path / "t.txt", t, fmt="%d")
    runner = CliRunner()
    r = runner.invoke(cli, ["probe", str(tmp_path / "s.zarr"), "--model", "m", "--layer", "l",
                            "--triplets", str(tmp_path / "t.txt"),
                            "--object-ids", str(tmp_path / "ids.txt"), "--lambdas", "1e-3",
                            "--folds", "3", "--no-progress", "--name", "pr"])
    assert r.exit_code == 0, r.output
    assert "*lambda=0.001" in r.output and "protocol: nested" in r.output
    r = runner.invoke(cli, ["probe", str(tmp_path / "s.zarr"), "--model", "m", "--layer", "l",
                            "--triplets", str(tmp_path / "t.txt"),
                            "--object-ids", str(tmp_path / "ids.txt"), "--lambdas", "1e-2,1e-3",
                            "--protocol", "paper", "--no-save", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["protocol"] == "paper" and d["saved_as"] is None and len(d["configs"]) == 4  # lambda x k in {3, 4}
    from alignkit.results import ResultsTable

    recs = ResultsTable.for_store(tmp_path / "s.zarr").records("probe")
    assert [r["result"]["protocol"] for r in recs] == ["nested", "paper"]
    assert recs[1]["result"]["accuracy"] == pytest.approx(d["probing_accuracy"])
    assert recs[1]["result"]["lambda"] in (1e-2, 1e-3) and recs[1]["result"]["k"] in (3, 4)
    assert 0 <= recs[1]["result"]["zero_shot_accuracy"] <= 1
    r = runner.invoke(cli, ["probe", str(tmp_path / "s.zarr"), "--model", "m", "--layer", "l",
                            "--triplets", str(tmp_path / "t.txt"),
                            "--object-ids", str(tmp_path / "ids.txt"), "--name", "pr"])
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
    # the training triplets' checksum (the loader's sha256) is in the stored probe and the record
    from alignkit.data import load_triplets

    cs = load_triplets(str(tmp_path / "t.txt"), n_objects=n).checksum
    assert tr.attrs["train_triplets_checksum"] == cs
    assert all(r["result"]["train_triplets_checksum"] == cs for r in recs)


# ---- the paper's .npy layout [W | b] and validation on import and before use
def test_npy_round_trip_of_paper_layout(tmp_path) -> None:
    rng = np.random.default_rng(4)
    p = 6
    w, b = rng.normal(size=(p, p)), rng.normal(size=p)
    np.save(tmp_path / "t.npy", np.concatenate((w, b[:, None]), axis=1))  # the paper's save
    x = rng.normal(loc=0.3, scale=2.0, size=(9, p))
    # mean and std given
    got = load_transform(tmp_path / "t.npy", mean=0.5, std=1.5).apply(x)
    want = np.empty((9, p))
    for r in range(9):  # plain loop: z_r = ((x_r - mean) / std) W + b
        for c in range(p):
            want[r, c] = sum((x[r, i] - 0.5) / 1.5 * w[i, c] for i in range(p)) + b[c]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # taken from the features: global scalar mean and population std
    tr = Transform.from_npy(tmp_path / "t.npy", features=x)
    m = sum(x.ravel()) / x.size
    sd = (sum((v - m) ** 2 for v in x.ravel()) / x.size) ** 0.5
    assert tr.mean == pytest.approx(m, rel=1e-12) and tr.std == pytest.approx(sd, rel=1e-12)
    assert np.array_equal(tr.weights, w) and np.array_equal(tr.bias, b)


@pytest.mark.parametrize(("arr", "match"), [
    (np.zeros((4, 4)), r"p x \(p \+ 1\)"),
    (np.zeros((4, 6)), r"expected \(4, 5\)"),
    (np.zeros(5), r"p x \(p \+ 1\)"),
    (np.full((3, 4), np.nan), "NaN"),
    (np.full((3, 4), 1e300), "beyond float32"),
    (np.zeros((0, 1)), r"p x \(p \+ 1\)"),
])
def test_npy_refusals(tmp_path, arr, match) -> None:
    from alignkit.errors import InputError

    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(InputError, match=match) as exc:
        load_transform(tmp_path / "bad.npy", mean=0.0, std=1.0)
    assert "bad.npy" in str(exc.value)


def test_npy_without_mean_std_or_features_is_refused(tmp_path) -> None:
    from alignkit.errors import InputError

    np.save(tmp_path / "t.npy", np.zeros((2, 3)))
    with pytest.raises(InputError, match="no mean and std"):
        load_transform(tmp_path / "t.npy")


@pytest.mark.parametrize(("kw", "match"), [
    ({"weights": np.zeros((49, 0))}, "p and q must both be >= 1"),
    ({"weights": np.full((3, 3), 1e300)}, "beyond float32"),
    ({"weights": np.full((3, 3), np.inf)}, "NaN or infinity"),
    ({"weights": np.eye(3), "std": 0.0}, "std must be > 0"),
    ({"weights": np.eye(3), "std": -1.0}, "std must be > 0"),
    ({"weights": np.eye(3), "mean": np.nan}, "mean holds NaN"),
    ({"weights": np.eye(3), "bias": np.ones(2)}, "bias has shape"),
])
def test_transform_validation(kw, match) -> None:
    from alignkit.errors import InputError

    args = {"weights": np.eye(3), "bias": None, "mean": 0.0, "std": 1.0, **kw}
    with pytest.raises(InputError, match=match):
        Transform(**args)


def test_apply_refuses_overflowing_similarities_and_wrong_width() -> None:
    from alignkit.errors import DataError

    tr = Transform(weights=np.eye(3) * 1e30, bias=None, mean=0.0, std=1.0, label="probe 'x'")
    with pytest.raises(DataError, match="probe 'x'.*overflow float32"):
        tr.apply(np.ones((4, 3)))
    with pytest.raises(MismatchError, match=r"expects \(n, 3\)"):
        tr.apply(np.ones((4, 2)))


def _one_layer_store(tmp_path, n: int = 30, p: int = 4):
    store_mod = pytest.importorskip("alignkit.store")
    rng = np.random.default_rng(5)
    feats = rng.normal(loc=1.0, scale=3.0, size=(n, p)).astype(np.float32)
    st = store_mod.EmbeddingStore(tmp_path / "s.zarr", mode="a")
    st.write("m", "l", feats, [f"o{i}" for i in range(n)])
    return store_mod, feats


def test_cli_npy_import_apply_and_refusals(tmp_path) -> None:
    from alignkit.cli import cli

    store_mod, feats = _one_layer_store(tmp_path)
    rng = np.random.default_rng(6)
    p = feats.shape[1]
    w, b = rng.normal(size=(p, p)), rng.normal(size=p)
    np.save(tmp_path / "good.npy", np.concatenate((w, b[:, None]), axis=1))
    runner = CliRunner()
    base = ["--model", "m", "--layer", "l"]
    r = runner.invoke(cli, ["probe", "import", str(tmp_path / "s.zarr"), str(tmp_path / "good.npy"),
                            *base, "--name", "pa"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["probe", "apply", str(tmp_path / "s.zarr"), *base, "--probe",
                            str(tmp_path / "good.npy"), "--mean", "0.25", "--std", "2"])
    assert r.exit_code == 0, r.output
    st = store_mod.EmbeddingStore(tmp_path / "s.zarr", mode="r")
    x = feats.astype(np.float64)
    np.testing.assert_allclose(st.entry("m", "l+good").features(), ((x - 0.25) / 2) @ w + b,
                               rtol=1e-5, atol=1e-5)
    tr = load_transform(st.entry("m", "l"), "pa")  # mean/std from the layer's features
    assert tr.mean == pytest.approx(float(x.mean())) and tr.std == pytest.approx(float(x.std()))
    for arr, what in [(np.zeros((p, p)), "p x (p + 1)"), (np.full((p, p + 1), np.nan), "NaN"),
                      (np.full((p, p + 1), 1e300), "beyond float32"),
                      (np.zeros((p + 1, p + 2)), "expects"), (np.zeros((49, 0)), "p x (p + 1)")]:
        np.save(tmp_path / "bad.npy", arr)
        for cmd in (["import", str(tmp_path / "s.zarr"), str(tmp_path / "bad.npy"), *base,
                     "--name", "bad"],
                    ["apply", str(tmp_path / "s.zarr"), *base, "--probe", str(tmp_path / "bad.npy")]):
            r = runner.invoke(cli, ["probe", *cmd])
            assert r.exit_code == 2, (arr.shape, r.output)
            lines = [ln for ln in r.output.splitlines() if ln.strip()]
            assert len(lines) == 1 and what in lines[0] and "bad.npy" in lines[0], r.output
    np.savez(tmp_path / "empty.npz", weights=np.zeros((p, 0)), mean=0.0, std=1.0)
    r = runner.invoke(cli, ["probe", "import", str(tmp_path / "s.zarr"), str(tmp_path / "empty.npz"),
                            *base, "--name", "e"])
    assert r.exit_code == 2 and "p and q must both be >= 1" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_score_transform_npy_uses_the_entrys_mean_and_std(tmp_path) -> None:
    _, feats = _one_layer_store(tmp_path)
    from alignkit.score.stores import load_probe_transform
    from alignkit.store import EmbeddingStore

    p = feats.shape[1]
    np.save(tmp_path / "t.npy", np.concatenate((np.eye(p), np.zeros((p, 1))), axis=1))
    entry = EmbeddingStore(tmp_path / "s.zarr", mode="r").entry("m", "l")
    tr = load_probe_transform(entry, str(tmp_path / "t.npy"))
    x = feats.astype(np.float64)
    assert tr.mean == pytest.approx(float(x.mean())) and tr.std == pytest.approx(float(x.std()))
    tr2 = load_probe_transform(entry, str(tmp_path / "t.npy"), mean=1.0, std=2.0)
    assert (tr2.mean, tr2.std) == (1.0, 2.0)
    from alignkit.errors import InputError

    with pytest.raises(InputError, match="only to a .npy"):
        load_probe_transform(entry, "some-probe", mean=1.0)
