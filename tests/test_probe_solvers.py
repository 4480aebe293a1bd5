"""The two solvers, early stopping and the estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignkit.errors import DeviceError, InputError, MismatchError
from alignkit.probe import LinearProbe, ObjectiveSpec, fit_fast, fit_minibatch
from alignkit.probe._common import EarlyStopper, initial_params
from alignkit.probe.objectives import paper_loss


def _planted(seed: int = 0, n: int = 80, p: int = 4, n_tri: int = 4000):
    """Triplets labelled by a hidden embedding; features = a skewed linear map of it."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, p))
    t = rng.integers(0, n, size=(n_tri * 2, 3))
    t = t[(t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2])][:n_tri]
    s = truth @ truth.T
    sims = np.stack((s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]), 1)
    order = np.array([[0, 1, 2], [0, 2, 1], [1, 2, 0]])[sims.argmax(1)]
    t = np.take_along_axis(t, order, axis=1)
    x = truth @ (rng.normal(size=(p, p)) * np.array([0.1, 4.0, 1.0, 0.3])[:p])
    return x, t


def _zero_shot(z: np.ndarray, t: np.ndarray) -> float:
    s = z @ z.T
    a, b, c = s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]
    return float(np.mean((a > b) & (a > c)))


def test_early_stopper_follows_lightning_rule() -> None:
    es = EarlyStopper(patience=3, min_delta=0.1)
    out = [es.update(v) for v in (1.0, 0.95, 0.85, 0.84, 0.80, 0.79)]
    assert [o[0] for o in out] == [True, False, True, False, False, False]
    assert [o[1] for o in out] == [False] * 5 + [True]
    es = EarlyStopper(patience=1, min_delta=0.0, min_steps=4)
    assert [es.update(1.0)[1] for _ in range(5)] == [False, False, False, True, True]
    assert EarlyStopper(5, 0.0).update(float("nan")) == (False, True)


def test_minibatch_first_step_is_the_papers_adam_step() -> None:
    x, t = _planted(n_tri=500)
    xt = torch.tensor((x - x.mean()) / x.std())
    spec = ObjectiveSpec(lam=1e-2, bias=True)
    lr = 1e-3
    res = fit_minibatch(xt, t, spec, generator=torch.Generator().manual_seed(5), lr=lr,
                        batch_size=len(t), min_epochs=1, max_epochs=1, clip=None)
    w0, b0 = initial_params(4, spec, generator=torch.Generator().manual_seed(5),
                            dtype=torch.float64, device=torch.device("cpu"))
    paper_loss(xt, w0, b0, torch.as_tensor(t), spec.lam).backward()
    # Adam's first update is lr * g / (|g| + eps) (bias-corrected moments)
    for new, old in ((res.weights, w0), (res.bias, b0)):
        g = old.grad.numpy()
        want = old.detach().numpy() - lr * g / (np.abs(g) + 1e-8)
        np.testing.assert_allclose(new, want, rtol=1e-10, atol=1e-12)


def test_fast_reaches_minibatch_validation_loss() -> None:
    x, t = _planted(seed=1)
    xt = torch.tensor((x - x.mean()) / x.std(), dtype=torch.float32)
    spec = ObjectiveSpec(lam=1e-3)
    tr, va = t[:3200], t[3200:]
    fast = fit_fast(xt, tr, spec, val=va, generator=torch.Generator().manual_seed(0))
    mb = fit_minibatch(xt, tr, spec, val=va, generator=torch.Generator().manual_seed(0),
                       max_epochs=15)
    assert not fast.diverged and not mb.diverged
    assert fast.val_nll <= mb.val_nll + 1e-3
    assert fast.val_nll < np.log(3) - 0.1


def test_estimator_fit_transform_predict_score() -> None:
    x, t = _planted(seed=2)
    probe = LinearProbe(lam=1e-3, seed=0).fit(x, t[:3000])
    z = probe.transform(x)
    tr = probe.transform_
    np.testing.assert_allclose(z, ((x - tr.mean) / tr.std) @ tr.weights, rtol=1e-12)
    assert tr.mean == pytest.approx(x.mean()) and tr.std == pytest.approx(x.std())
    test = t[3000:]
    choices = probe.predict(x, test)
    s = z @ z.T
    sims = np.stack((s[test[:, 0], test[:, 1]], s[test[:, 0], test[:, 2]],
                     s[test[:, 1], test[:, 2]]), 1)
    assert np.array_equal(choices, 2 - sims.argmax(1))
    assert probe.score(x, test) == pytest.approx(_zero_shot(z, test))
    assert probe.score(x, test) > _zero_shot(x, test)  # the probe undoes the skew


def test_glocal_fit_and_errors() -> None:
    x, t = _planted(seed=3)
    rng = np.random.default_rng(0)
    ref = x[rng.permutation(len(x))] + rng.normal(size=x.shape) * 0.01
    for solver in ("fast", "minibatch"):
        p = LinearProbe("glocal", lam=0.1, alpha=0.25, tau=1.0, sigma=1.0, ref_batch=32,
                        solver=solver, max_epochs=3, min_epochs=1).fit(x, t, reference=ref)
        assert not p.result_.diverged and np.isfinite(p.result_.val_nll)
    with pytest.raises(InputError, match="reference"):
        LinearProbe("glocal").fit(x, t)
    with pytest.raises(MismatchError, match="row"):
        LinearProbe().fit(x, np.array([[0, 1, len(x)]]))
    with pytest.raises(InputError, match="solver"):
        LinearProbe(solver="sgd").fit(x, t)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            LinearProbe(device="cuda").fit(x, t)
