"""Paired odd-one-out comparison: identical models, a clearly better one, the pairing and the
exact McNemar test against plain numpy/scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from alignkit._kernels import bootstrap as kboot
from alignkit.data import load_embedding, load_triplets
from alignkit.errors import InputError
from alignkit.score import compare_models_ooo, odd_one_out


@pytest.fixture(scope="module")
def data():
    e = load_embedding("spose-49d")
    noisy = e.values + np.random.default_rng(0).normal(scale=0.15, size=e.values.shape)
    return e, noisy, load_triplets("things-test20k")


def test_identical_models_differ_by_nothing(data) -> None:
    e, _, t = data
    r = compare_models_ooo(e.values, e.values.copy(), t, bootstrap=200, similarity="dot")
    assert r.difference == 0.0 and r.p_value == 1.0 and r.p_mcnemar == 1.0
    assert r.ci_low == 0.0 and r.ci_high == 0.0 and r.a_only == r.b_only == 0
    assert r.accuracy_a == r.accuracy_b == 0.63475


def test_a_clearly_better_model_and_the_references(data) -> None:
    e, noisy, t = data
    r = compare_models_ooo(e.values, noisy, t, bootstrap=500, seed=3, similarity="dot",
                           model_a="spose", model_b="noisy")
    # plain numpy: per-triplet correctness under the dot product, no ties here
    T = t.array
    def correct(X):
        S = X @ X.T
        s = np.stack([S[T[:, 0], T[:, 1]], S[T[:, 0], T[:, 2]], S[T[:, 1], T[:, 2]]], 1)
        return (s[:, 0] > s[:, 1]) & (s[:, 0] > s[:, 2])
    ca, cb = correct(e.values), correct(noisy)
    assert r.accuracy_a == pytest.approx(ca.mean(), abs=0) and r.accuracy_b == cb.mean()
    assert r.difference == pytest.approx(ca.mean() - cb.mean(), abs=1e-15)
    assert r.a_only == int((ca & ~cb).sum()) and r.b_only == int((cb & ~ca).sum())
    want_p = scipy.stats.binomtest(r.a_only, r.a_only + r.b_only, 0.5).pvalue
    assert r.p_mcnemar == pytest.approx(want_p, rel=1e-12)
    # paired: each resample's difference is the difference of the two models' accuracies
    # on the very same drawn triplets (same seed, same stream)
    ma = kboot.bootstrap_means(ca.astype(np.uint8), 500, 3)
    mb = kboot.bootstrap_means(cb.astype(np.uint8), 500, 3)
    np.testing.assert_allclose(r.differences, ma - mb, rtol=0, atol=1e-15)
    assert r.difference > 0.01 and r.ci_low > 0 and r.p_value < 0.01 and r.p_mcnemar < 1e-6
    # a paired interval is narrower than the unpaired one from independent resamples
    mb_other = kboot.bootstrap_means(cb.astype(np.uint8), 500, 4)
    assert np.std(r.differences) < np.std(ma - mb_other)
    assert r.to_dict()["provenance"]["ties"] == "paper"


def test_bad_arguments(data) -> None:
    e, _, t = data
    with pytest.raises(InputError, match="bootstrap must be an integer >= 1"):
        compare_models_ooo(e.values, e.values, t, bootstrap=0)
    with pytest.raises(InputError, match="ci_level"):
        compare_models_ooo(e.values, e.values, t, ci_level=1.0)


def test_protocol_is_the_ooo_one(data) -> None:
    e, noisy, t = data
    r = compare_models_ooo(e.values, noisy, t, bootstrap=10, preset="paper2023")
    ref = odd_one_out(noisy, t, preset="paper2023")
    assert r.accuracy_b == ref.accuracy and r.similarity == ref.similarity


def test_compare_ooo_and_rsa_commands(data, tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from alignkit.cli import cli
    from alignkit.store import EmbeddingStore

    e, noisy, t = data
    store = tmp_path / "f.zarr"
    st = EmbeddingStore(store, mode="a")
    st.write("spose", "49d", e.values.astype(np.float32), e.ids)
    st.write("noisy", "49d", noisy.astype(np.float32), e.ids)
    run = CliRunner().invoke
    out = run(cli, ["compare", "ooo", str(store), "--triplets", "things-test20k", "--a",
                    "spose/49d", "--b", "noisy/49d", "--similarity", "dot", "--bootstrap", "200",
                    "--format", "json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    want = compare_models_ooo(e.values.astype(np.float32), noisy.astype(np.float32), t,
                              similarity="dot", bootstrap=200)
    assert got["difference"] == want.difference and got["p_mcnemar"] == want.p_mcnemar
    assert got["ci_low"] == want.ci_low > 0
    assert got["provenance"]["entries"][0]["entry"] == "spose/49d"
    bad = run(cli, ["compare", "ooo", str(store), "--triplets", "things-test20k", "--a",
                    "nope/49d", "--b", "noisy/49d"])
    assert bad.exit_code == 2 and "nope/49d" in bad.output
    rsa = run(cli, ["compare", "rsa", str(store), "--rdm", "rdm48", "--a", "spose/49d", "--b",
                    "noisy/49d", "--rdm-method", "dot", "--bootstrap", "50", "--format", "json"])
    assert rsa.exit_code == 0, rsa.output
    assert json.loads(rsa.stdout)[0]["difference"] > 0
