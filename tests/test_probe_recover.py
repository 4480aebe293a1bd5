"""Probe validity: model recovery and the random-features control."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binom

from alignkit.cli import cli
from alignkit.errors import InputError, MismatchError
from alignkit.probe.recover import model_recovery, random_features

N_OBJ, P = 90, 6


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _candidates(kind: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    base = rng.normal(size=(N_OBJ, P))
    if kind == "different":  # independent representations of the objects
        return {"a": base, "b": rng.normal(size=(N_OBJ, P)), "c": rng.normal(size=(N_OBJ, P))}
    # the same representation up to a perturbation far below what the data can resolve
    return {n: base + 1e-6 * rng.normal(size=base.shape) for n in ("a", "b", "c")}


def test_clearly_different_candidates_are_recovered():
    res = model_recovery(_candidates("different"), n_triplets=1000, repeats=3, seed=3,
                         max_iter=100)
    assert res.n_simulations == 9 and res.confusion.sum() == 9
    assert (res.confusion.sum(axis=1) == 3).all()
    assert res.recovery_rate > 0.9
    assert res.ci_low <= res.recovery_rate <= res.ci_high
    # the generating candidate's own probe predicts its held-out triplets best on average
    assert (np.argmin(res.heldout_nll, axis=1) == np.arange(3)).all()


def test_near_identical_candidates_are_at_chance():
    res = model_recovery(_candidates("same"), n_triplets=1000, repeats=3, seed=3, max_iter=50)
    assert res.chance == pytest.approx(1 / 3)
    # a 99% two-sided binomial band around chance for 9 simulations
    lo, hi = binom.ppf([0.005, 0.995], 9, 1 / 3) / 9
    assert lo <= res.recovery_rate <= hi
    assert res.recovery_rate < 0.9
    # nobody wins everything: the winner is not a fixed column
    assert (res.confusion.sum(axis=0) < 9).all()


def test_recovery_is_seeded_and_validated():
    c = _candidates("different")
    two = {"a": c["a"], "b": c["b"]}
    a = model_recovery(two, n_triplets=400, repeats=1, seed=5, max_iter=50)
    b = model_recovery(two, n_triplets=400, repeats=1, seed=5, max_iter=50)
    assert a.confusion.tolist() == b.confusion.tolist()
    assert np.allclose(a.heldout_nll, b.heldout_nll)
    with pytest.raises(InputError, match="at least two candidates"):
        model_recovery({"a": c["a"]})
    with pytest.raises(MismatchError, match="different numbers of objects"):
        model_recovery({"a": c["a"], "b": c["b"][:50]})
    with pytest.raises(InputError, match="criterion"):
        model_recovery(c, criterion="auc")


def test_random_features_are_seeded_gaussian():
    a, b = random_features(500, 40, seed=1), random_features(500, 40, seed=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, random_features(500, 40, seed=2))
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two entries of one synthetic object set and triplets simulated from the first."""
    from alignkit.data import synthetic_triplets
    from alignkit.store import EmbeddingStore

    root = tmp_path_factory.mktemp("pr")
    c = _candidates("different")
    ids = np.array([f"obj{i:03d}" for i in range(N_OBJ)])
    st = EmbeddingStore(str(root / "s.zarr"), mode="a")
    st.write("a", "l", (2.0 * c["a"]).astype(np.float32), ids)
    st.write("b", "l", c["b"].astype(np.float32), ids)
    trip = synthetic_triplets(2.0 * c["a"], n=3000, seed=4)
    np.savetxt(root / "t.txt", trip.array, fmt="%d")
    (root / "ids.txt").write_text("\n".join(ids) + "\n")
    return root


def test_cli_recover(store):
    r = run("probe", "recover", str(store / "s.zarr"), "--triplets", "1000", "--repeats", "2",
            "--max-iter", "100", "--format", "json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["candidates"] == ["a/l", "b/l"]
    assert res["n_simulations"] == 4 and res["recovery_rate"] == 1.0
    assert res["provenance"]["n_objects"] == N_OBJ
    r = run("probe", "recover", str(store / "s.zarr"), "--model", "a")
    assert r.exit_code == 2 and "at least two entries" in r.output


def test_cli_random_control(store):
    from alignkit.probe.cv import CVOptions, cross_validate
    from alignkit.results import ResultsTable

    r = run("probe", str(store / "s.zarr"), "--model", "a", "--layer", "l", "--triplets",
            str(store / "t.txt"), "--object-ids", str(store / "ids.txt"), "--lambdas", "1e-3",
            "--control", "random", "--no-save", "--seed", "2")
    assert r.exit_code == 0, r.output
    assert "random-features control (90 x 6 standard normal, seed 2)" in r.output
    (rec,) = ResultsTable.for_store(store / "s.zarr").records("probe")
    ctl = rec["result"]["control"]
    assert ctl["kind"] == "random" and ctl["shape"] == [N_OBJ, P] and ctl["seed"] == 2
    # the control is the same cross-validation on the documented random features
    from alignkit.data import load_ids, load_triplets

    trip = load_triplets(str(store / "t.txt"), object_ids=load_ids(str(store / "ids.txt")))
    X = random_features(N_OBJ, P, 2)
    try:
        want = cross_validate(X, trip, options=CVOptions(lambdas=(1e-3,), seed=2))
    except InputError as exc:  # nothing to learn from noise: every fit stayed at chance
        assert "every configuration was discarded" in str(exc)
        assert ctl["accuracy"] is None and "stayed at chance" in ctl["note"]
        # then the zero-shot accuracy is over all triplets, in plain numpy
        T = trip.array
        s = np.stack([np.einsum("ij,ij->i", X[T[:, a]], X[T[:, b]])
                      for a, b in ((0, 1), (0, 2), (1, 2))], axis=1)
        assert ctl["zero_shot_accuracy"] == pytest.approx(np.mean(np.argmax(s, axis=1) == 0))
    else:
        assert ctl["accuracy"] == pytest.approx(want.probing_accuracy)
        assert ctl["zero_shot_accuracy"] == pytest.approx(want.zero_shot_accuracy)
        assert rec["result"]["accuracy"] > ctl["accuracy"] + 0.2
    # features the triplets came from beat random ones by far, even zero-shot
    assert rec["result"]["zero_shot_accuracy"] > ctl["zero_shot_accuracy"] + 0.2
    assert abs(ctl["zero_shot_accuracy"] - 1 / 3) < 0.1
