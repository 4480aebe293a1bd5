"""The fast solver's multi-pass triplet kernel against plain numpy and the one-pass kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignkit.probe._common import ObjectiveSpec
from alignkit.probe._gram import TripletIndex, gram_nll
from alignkit.probe.fast import FastObjective


def _numpy_reference(S: np.ndarray, t: np.ndarray, scale: float):
    """Sum of NLLs, correct count and ``G = scale * d(sum NLL)/dS`` from the formulas."""
    i, j, k = t[:, 0], t[:, 1], t[:, 2]
    s = np.stack((S[i, j], S[i, k], S[j, k]), axis=1).astype(np.float64)
    m = s.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    nll = float((lse - s[:, 0]).sum())
    good = int(((s[:, 0] > s[:, 1]) & (s[:, 0] > s[:, 2])).sum())
    g = np.exp(s - lse[:, None])
    g[:, 0] -= 1.0
    G = np.zeros(S.shape, dtype=np.float64)
    np.add.at(G, (i, j), scale * g[:, 0])
    np.add.at(G, (i, k), scale * g[:, 1])
    np.add.at(G, (j, k), scale * g[:, 2])
    return nll, good, G


def _problem(seed: int, n: int, p: int, n_tri: int):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, p)) * rng.uniform(0.3, 2.0)
    # with repeats (the same triplet many times) and with objects that never occur
    t = np.stack([rng.choice(n - 2, 3, replace=False) for _ in range(n_tri)]).astype(np.int64)
    t = np.concatenate([t, np.repeat(t[:5], 7, axis=0)])
    return rng, z @ z.T, t[rng.permutation(len(t))]


@pytest.mark.parametrize("seed", range(5))
def test_two_pass_kernel_equals_numpy_float64(seed: int) -> None:
    _, S, t = _problem(seed, n=31 + seed, p=4, n_tri=3000)
    want_nll, want_good, want_G = _numpy_reference(S, t, 1.0 / len(t))
    for arg in (t, TripletIndex(t, len(S))):
        nll, good, G = gram_nll(torch.tensor(S), arg, want_grad=True, scale=1.0 / len(t),
                                backend="numba")
        assert good == want_good
        assert nll == pytest.approx(want_nll, rel=1e-12)
        np.testing.assert_allclose(G.numpy(), want_G, rtol=1e-12, atol=1e-15)
        nll2, good2, none = gram_nll(torch.tensor(S), arg, backend="numba")
        assert none is None and good2 == want_good and nll2 == pytest.approx(want_nll, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_two_pass_kernel_equals_one_pass_kernel(seed: int) -> None:
    _, S, t = _problem(100 + seed, n=80, p=6, n_tri=70_000)  # several slabs in the old kernel
    St = torch.tensor(S)
    new = gram_nll(St, TripletIndex(t, 80), want_grad=True, scale=1e-3, backend="numba")
    old = gram_nll(St, t, want_grad=True, scale=1e-3, backend="numba-slabs")
    assert new[1] == old[1]
    assert new[0] == pytest.approx(old[0], rel=1e-12)
    np.testing.assert_allclose(new[2].numpy(), old[2].numpy(), rtol=1e-12, atol=1e-15)


def test_two_pass_kernel_float32_within_tolerance() -> None:
    _, S, t = _problem(7, n=120, p=8, n_tri=40_000)
    want_nll, want_good, want_G = _numpy_reference(S, t, 1.0 / len(t))
    S32 = torch.tensor(S, dtype=torch.float32)
    nll, good, G = gram_nll(S32, TripletIndex(t, 120), want_grad=True, scale=1.0 / len(t))
    assert G.dtype == torch.float32
    # the float32 rounding of S itself moves the NLL sum by about 1e-7 relative
    assert nll == pytest.approx(want_nll, rel=1e-6)
    assert abs(good - want_good) <= len(t) * 1e-3
    np.testing.assert_allclose(G.double().numpy(), want_G, rtol=0,
                               atol=1e-6 * float(np.abs(want_G).max()))


def test_triplet_index_groups_rows() -> None:
    _, _, t = _problem(3, n=25, p=3, n_tri=500)
    idx = TripletIndex(t, 25)
    srt = idx.triplets
    assert sorted(map(tuple, srt)) == sorted(map(tuple, t))  # a permutation of the rows
    for r in range(25):
        assert np.all(srt[idx.ptr_i[r]:idx.ptr_i[r + 1], 0] == r)
        assert np.all(srt[idx.ord_j[idx.ptr_j[r]:idx.ptr_j[r + 1]], 1] == r)
    assert idx.ptr_i[-1] == len(t) and idx.ptr_j[-1] == len(t)
    with pytest.raises(ValueError, match="0..24"):
        TripletIndex(np.array([[0, 1, 25]]), 25)


def test_fast_objective_float32_value_agrees_with_float64() -> None:
    rng = np.random.default_rng(5)
    n, p = 300, 48
    x = rng.normal(size=(n, p))
    x = (x - x.mean()) / x.std()
    t = rng.integers(0, n, size=(200_000, 3))
    w = rng.normal(size=(p, p)) * 0.08
    spec = ObjectiveSpec(lam=1e-3)
    out = {}
    for dt in (torch.float64, torch.float32):
        params = [torch.tensor(w, dtype=dt).requires_grad_(True)]
        loss, vn, _ = FastObjective(torch.tensor(x, dtype=dt), t, spec,
                                    val=t[:5000]).value_and_grad(params)
        out[dt] = (float(loss), vn, params[0].grad.double().numpy())
    l64, v64, g64 = out[torch.float64]
    l32, v32, g32 = out[torch.float32]
    assert abs(l32 - l64) <= 1e-6 * abs(l64)
    assert abs(v32 - v64) <= 1e-6 * abs(v64)
    assert np.linalg.norm(g32 - g64) <= 1e-4 * np.linalg.norm(g64)
