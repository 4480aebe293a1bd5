"""The fast solver's loss and gradient equal autograd on the per-triplet formulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignkit.probe._common import ObjectiveSpec, initial_params
from alignkit.probe._gram import gram_choices, gram_nll, gram_triplet_nll
from alignkit.probe.fast import FastObjective
from alignkit.probe.objectives import glocal_loss, paper_loss, triplet_nll


def _case(seed: int, n: int = 23, p: int = 6, n_tri: int = 400):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, p)))
    t = np.stack([rng.choice(n, 3, replace=False) for _ in range(n_tri)]).astype(np.int64)
    return rng, x, t


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("bias", [False, True])
def test_fast_paper_objective_equals_autograd(seed: int, bias: bool) -> None:
    rng, x, t = _case(seed)
    spec = ObjectiveSpec(objective="paper", lam=10.0 ** rng.uniform(-4, -1), bias=bias)
    p0 = [torch.tensor(rng.normal(size=(6, 6)) * 0.5)]
    if bias:
        p0.append(torch.tensor(rng.normal(size=6) * 0.1))
    ref = [a.clone().requires_grad_(True) for a in p0]
    loss_ref = paper_loss(x, ref[0], ref[1] if bias else None, torch.as_tensor(t), spec.lam)
    loss_ref.backward()
    fast = [a.clone().requires_grad_(True) for a in p0]
    loss, _, _ = FastObjective(x, t, spec).value_and_grad(fast)
    assert float(loss.detach()) == pytest.approx(float(loss_ref.detach()), rel=1e-12, abs=1e-12)
    for a, b in zip(fast, ref, strict=True):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_fast_glocal_objective_equals_autograd(seed: int) -> None:
    rng, x, t = _case(seed)
    refs = torch.tensor(rng.normal(size=(9, 6)))
    spec = ObjectiveSpec(objective="glocal", lam=0.3, bias=True, alpha=0.25, tau=0.5,
                         ref_batch=16)  # one reference batch: the minibatch loss is the same
    p0 = [torch.tensor(rng.normal(size=(6, 6))), torch.tensor(rng.normal(size=6))]
    ref_p = [a.clone().requires_grad_(True) for a in p0]
    lr = glocal_loss(x, ref_p[0], ref_p[1], torch.as_tensor(t), refs, lam=spec.lam,
                     alpha=spec.alpha, tau=spec.tau)
    lr.backward()
    fast = [a.clone().requires_grad_(True) for a in p0]
    loss, _, _ = FastObjective(x, t, spec, reference=refs).value_and_grad(fast)
    assert float(loss.detach()) == pytest.approx(float(lr.detach()), rel=1e-12)
    for a, b in zip(fast, ref_p, strict=True):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gram_triplet_nll_autograd_function(backend: str) -> None:
    _, x, t = _case(7, n=40, p=5, n_tri=3000)
    z1 = x.clone().requires_grad_(True)
    gram_triplet_nll(z1, t, backend=backend).backward()
    z2 = x.clone().requires_grad_(True)
    l2 = triplet_nll(z2, torch.as_tensor(t))
    l2.backward()
    np.testing.assert_allclose(z1.grad.numpy(), z2.grad.numpy(), rtol=1e-9, atol=1e-13)


def test_gram_nll_counts_and_ties_against_numpy() -> None:
    rng = np.random.default_rng(3)
    # integer features make exact ties frequent
    z = torch.tensor(rng.integers(-1, 2, size=(15, 2)).astype(np.float64))
    t = np.stack([rng.choice(15, 3, replace=False) for _ in range(2000)])
    s = (z @ z.T).numpy()
    a, b, c = s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]
    want_correct = int(((a > b) & (a > c)).sum())
    sims = np.stack((a, b, c), 1)
    want_nll = float((np.log(np.exp(sims).sum(1)) - a).sum())
    for backend in ("numba", "torch"):
        nll, good, _ = gram_nll(z @ z.T, t, backend=backend)
        assert good == want_correct
        assert nll == pytest.approx(want_nll, rel=1e-12)
    top = sims.max(1)
    n_top = (sims == top[:, None]).sum(1)
    ch = gram_choices(z @ z.T, t, ties="any-tie-wrong")
    assert np.array_equal(ch == -1, n_top > 1)
    assert np.array_equal(ch[n_top == 1], 2 - sims.argmax(1)[n_top == 1])
    assert (ch == -1).any()
    # the paper's rule (the default): only three-way ties are wrong, two-way go to the first pair
    ch = gram_choices(z @ z.T, t)
    assert np.array_equal(ch == -1, n_top == 3)
    assert np.array_equal(ch[n_top < 3], 2 - sims.argmax(1)[n_top < 3])
    assert (n_top == 2).any() and (n_top == 3).any()


def test_float32_scatter_with_many_slabs_matches_float64() -> None:
    rng, x, _ = _case(11, n=60, p=8)
    t = np.stack([rng.choice(60, 3, replace=False) for _ in range(200_000)])
    s64 = x @ x.T
    _, _, g64 = gram_nll(s64, t, want_grad=True, scale=1 / len(t), backend="torch")
    _, _, g32 = gram_nll(s64.float(), t, want_grad=True, scale=1 / len(t), backend="numba")
    np.testing.assert_allclose(g32.double().numpy(), g64.numpy(), atol=1e-7)


def test_initialisation_follows_the_protocol() -> None:
    g = torch.Generator().manual_seed(0)
    w, b = initial_params(300, ObjectiveSpec(bias=True), generator=g,
                          dtype=torch.float64, device=torch.device("cpu"))
    w, b = w.detach(), b.detach()
    assert w.shape == (300, 300) and b.shape == (300,)
    assert abs(float(w.mean())) < 1e-5 and float(w.std()) == pytest.approx(1e-3, rel=0.01)
    assert torch.all(b == 1e-3)
    (w2,) = initial_params(4, ObjectiveSpec(objective="glocal", sigma=0.1), generator=g,
                           dtype=torch.float64, device=torch.device("cpu"))
    assert torch.equal(w2.detach(), 0.1 * torch.eye(4, dtype=torch.float64))


def test_transform_module_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys; import alignkit.probe.transform; "
            "print('torch' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
