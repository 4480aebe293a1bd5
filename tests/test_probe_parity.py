"""Parity with the published probing code, against references written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignkit.probe._common import EarlyStopper, ObjectiveSpec, evaluate, paper_rule_correct
from alignkit.probe.cv import cross_validate


def _paper_rule_loop(sims: np.ndarray) -> list[bool]:
    """The published rule, one triplet at a time, on float32 softmax probabilities."""
    out = []
    for row in sims.astype(np.float32):
        e = np.exp(row - row.max(), dtype=np.float32)
        p = (e / e.sum(dtype=np.float32)).astype(np.float32)
        if len(set(p.tolist())) != 3 or len({round(float(v) * 100) for v in p}) == 1:
            out.append(False)
        else:
            out.append(int(np.argmax(p)) == 0)
    return out


def _argmax_loop(sims: np.ndarray) -> list[bool]:
    return [bool(r[0] > r[1] and r[0] > r[2]) for r in sims]


def test_paper_accuracy_rule_differs_from_argmax_where_expected() -> None:
    sims = np.array([
        [5.0, 0.0, 0.0],      # two equal probabilities: paper wrong, argmax right
        [0.004, 0.0, 0.002],  # all round to 0.33: paper wrong, argmax right
        [200.0, 0.0, 1.0],    # saturated: both small ones underflow to 0: paper wrong
        [2.0, 1.0, 0.0],      # clear: both right
        [0.0, 1.0, 0.0],      # both wrong
        [1.0, 1.0, 0.0],      # top tie: both wrong
    ])
    paper = paper_rule_correct(torch.tensor(sims)).tolist()
    assert paper == _paper_rule_loop(sims) == [False, False, False, True, False, False]
    assert _argmax_loop(sims) == [True, True, True, True, False, False]
    rng = np.random.default_rng(0)
    rand = rng.normal(scale=3.0, size=(500, 3))
    assert paper_rule_correct(torch.tensor(rand)).tolist() == _paper_rule_loop(rand)


def test_evaluate_with_both_rules_against_a_loop() -> None:
    rng = np.random.default_rng(1)
    n, p = 40, 3
    x = np.round(rng.normal(size=(n, p)), 1)  # quantised: exact ties and near-uniform triplets
    x[5] = x[6]
    t = np.array([rng.choice(n, 3, replace=False) for _ in range(3000)])
    t[:50, 0], t[:50, 1] = 5, 6  # duplicated objects: tied pairs
    sims = np.array([[x[i] @ x[j], x[i] @ x[k], x[j] @ x[k]] for i, j, k in t])
    xt = torch.tensor(x)
    acc_paper = evaluate(xt, None, None, t, "paper")[1]
    acc_arg = evaluate(xt, None, None, t, "argmax")[1]
    assert acc_paper == pytest.approx(np.mean(_paper_rule_loop(sims)), abs=0)
    assert acc_arg == pytest.approx(np.mean(_argmax_loop(sims)), abs=0)
    assert acc_paper != acc_arg


def _planted(seed: int = 0, n: int = 90, p: int = 4, n_tri: int = 4000, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, p))
    t = np.array([rng.choice(n, 3, replace=False) for _ in range(n_tri)])
    s = truth @ truth.T
    sims = np.stack((s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]), 1)
    g = sims + rng.gumbel(size=sims.shape) * noise  # noisy choices, like human data
    odd = 2 - g.argmax(1)
    order = np.array([[1, 2, 0], [0, 2, 1], [0, 1, 2]])[odd]
    t = np.take_along_axis(t, order, axis=1)
    return truth @ rng.normal(size=(p, p)), t


def _folds_by_hand(n: int, k: int) -> list[np.ndarray]:
    idx = np.arange(n)
    np.random.RandomState(42).shuffle(idx)
    return np.array_split(idx, k)


def test_paper_grid_over_lambda_and_k_zero_shot_and_checksum() -> None:
    from alignkit.data.triplets import Triplets

    x, t = _planted()
    trip = Triplets.from_array(t, n_objects=len(x))
    res = cross_validate(x, trip, lambdas=(1e-2, 1e4), protocol="paper", seed=0,
                         accuracy_rule="argmax")
    assert res.folds_grid == (3, 4)
    assert sorted((s.config.lam, s.config.k) for s in res.summaries) == sorted(
        (la, k) for la in (1e-2, 1e4) for k in (3, 4))
    # reference selection from the runs: published discard rule, then lowest mean test CE
    best, disc = None, {}
    for c, s in enumerate(res.summaries):
        rs = [r for r in res.runs if r.config == c]
        ce = sum(r.test_nll for r in rs) / len(rs)
        acc = sum(r.test_acc for r in rs) / len(rs)
        reason = ("nan" if not math.isfinite(ce) else "ln3" if np.float32(ce) == np.float32(math.log(3))
                  else "accuracy=1" if acc == 1.0 else None)
        assert s.eligible == (reason is None)
        if reason:
            disc[reason] = disc.get(reason, 0) + 1
        elif best is None or ce < best[0]:
            best = (ce, c)
    assert best is not None and res.chosen == best[1] and res.discarded == disc
    assert res.summary()["n_discarded"] == sum(disc.values())
    # zero-shot: standardised features, dot products, the chosen k's held-out folds
    k = res.folds
    z = (x - x.mean()) / x.std()
    accs = []
    for held in _folds_by_hand(len(x), k):
        inside = np.isin(t, held).all(1)
        tt = t[inside]
        accs.append(np.mean([z[i] @ z[j] > max(z[i] @ z[o], z[j] @ z[o]) for i, j, o in tt]))
    assert res.zero_shot_accuracy == pytest.approx(np.mean(accs), abs=1e-12)
    assert res.summary()["zero_shot_accuracy"] == res.zero_shot_accuracy
    assert res.train_triplets_checksum == trip.checksum
    assert res.transform.attrs["train_triplets_checksum"] == trip.checksum


def test_paper_discard_rule_cases() -> None:
    from alignkit.probe.cv import _paper_discard_reason

    assert _paper_discard_reason(math.nan, 0.5) == "nan"
    assert _paper_discard_reason(math.inf, 0.5) == "nan"
    assert _paper_discard_reason(math.log(3), 0.4) == "ln3"
    assert _paper_discard_reason(math.log(3) - 1e-3, 0.4) is None
    assert _paper_discard_reason(0.3, 1.0) == "accuracy=1"
    assert _paper_discard_reason(0.3, 0.99) is None


def _lightning_rule(values: list[float], patience: int, min_delta: float,
                    min_epochs_per_fit: list[int]) -> list[int]:
    """Checks run in each fit under one never-reset early-stopping state."""
    best, wait, out, pos = math.inf, 0, [], 0
    for n_max in min_epochs_per_fit:
        n = 0
        while pos < len(values):
            v = values[pos]
            pos += 1
            n += 1
            if v + min_delta < best:
                best, wait = v, 0
            else:
                wait += 1
            if wait >= patience and n >= n_max:
                break
        out.append(n)
    return out


def test_shared_early_stopping_state_is_never_reset() -> None:
    vals = [1.0, 0.9, 0.8, 0.85, 0.86, 0.87, 0.88,     # fit 1 stops after 3 bad checks
            0.95, 0.94, 0.93, 0.92, 0.7, 0.71, 0.72, 0.73, 0.74]  # fit 2 never beats 0.8 early
    st = EarlyStopper(patience=3, min_delta=1e-4, min_steps=2)
    got, pos = [], 0
    for _ in range(2):
        st.start_fit()
        n = 0
        while pos < len(vals):
            n += 1
            _, stop = st.update(vals[pos])
            pos += 1
            if stop:
                break
        got.append(n)
    assert got == _lightning_rule(vals, 3, 1e-4, [2, 2]) == [6, 2]


def test_minibatch_with_an_exhausted_shared_state_stops_at_min_epochs() -> None:
    from alignkit.probe.minibatch import fit_minibatch

    x, t = _planted(n_tri=600)
    xs = torch.tensor((x - x.mean()) / x.std())
    st = EarlyStopper(patience=2, min_delta=1e-4, min_steps=3)
    st.best, st.wait = -1.0, 5  # an earlier fold's state: unbeatable best, patience spent
    res = fit_minibatch(xs, t[:400], ObjectiveSpec(lam=1e-3), val=t[400:],
                        generator=torch.Generator().manual_seed(0), min_epochs=3,
                        max_epochs=50, patience=2, stopper=st)
    assert res.steps == 3 and res.stopped_early
    res2 = fit_minibatch(xs, t[:400], ObjectiveSpec(lam=1e-3), val=t[400:],
                         generator=torch.Generator().manual_seed(0), min_epochs=3,
                         max_epochs=50, patience=2)
    assert res2.steps > 3


def test_data_parallel_step_equals_the_average_of_rank_batches() -> None:
    from alignkit.probe.minibatch import fit_minibatch

    rng = np.random.default_rng(2)
    n, p, N, R, B, lr, lam = 12, 3, 10, 4, 2, 0.1, 1e-2
    x = torch.tensor(rng.normal(size=(n, p)))
    t = np.array([rng.choice(n, 3, replace=False) for _ in range(N)])
    res = fit_minibatch(x, t, ObjectiveSpec(lam=lam), generator=torch.Generator().manual_seed(7),
                        lr=lr, batch_size=B, min_epochs=1, max_epochs=1, clip=None,
                        max_steps=1, data_parallel=R, optimizer="sgd", momentum=0.0)
    # reference: the same draws, then DistributedSampler's padding and dealing by hand
    gen = torch.Generator().manual_seed(7)
    w0 = (torch.randn(p, p, generator=gen, dtype=torch.float64) * 1e-3).numpy()
    perm = torch.randperm(N, generator=gen).tolist()
    perm = perm + perm[: (-N) % R]
    shards = [perm[r::R] for r in range(R)]
    w = torch.tensor(w0, requires_grad=True)
    loss = 0.0
    for sh in shards:
        nll = 0.0
        for row in sh[:B]:
            i, j, k = t[row]
            z = [x[o] @ w for o in (i, j, k)]
            s = torch.stack([z[0] @ z[1], z[0] @ z[2], z[1] @ z[2]])
            nll = nll + (torch.log(torch.exp(s).sum()) - s[0])
        loss = loss + (nll / len(sh[:B]) + lam * torch.sqrt((w * w).sum()))
    (loss / R).backward()
    want = w0 - lr * w.grad.numpy()
    np.testing.assert_allclose(res.weights, want, rtol=1e-10, atol=1e-14)


def test_linear_lr_schedule_is_glocals() -> None:
    from alignkit.probe.minibatch import fit_minibatch

    x, t = _planted(n_tri=300)
    xs = torch.tensor((x - x.mean()) / x.std())
    res = fit_minibatch(xs, t, ObjectiveSpec(lam=1e-3), generator=torch.Generator().manual_seed(0),
                        lr=0.03, min_epochs=6, max_epochs=6, lr_schedule="linear")
    want = [0.03 * (1 / 3 + (2 / 3) * e / 6) for e in range(6)]
    assert [h["lr"] for h in res.history] == pytest.approx(want, rel=1e-12)


def _local_loop(ref: np.ndarray, w: np.ndarray, b: np.ndarray | None, tau: float) -> float:
    """gLocal's local term on one batch, written out."""
    zs = ref @ w + (0 if b is None else b)
    m = len(ref)
    tot = 0.0
    for a in range(m):
        tc = [ref[a] @ ref[c] / np.linalg.norm(ref[a]) / np.linalg.norm(ref[c])
              for c in range(m) if c != a]
        sc = [zs[a] @ zs[c] / np.linalg.norm(zs[a]) / np.linalg.norm(zs[c])
              for c in range(m) if c != a]
        tp = np.exp(np.array(tc) / tau)
        tp /= tp.sum()
        ls = np.array(sc) / tau - np.log(np.exp(np.array(sc) / tau).sum())
        tot += -(tp * ls).sum()
    return tot / m


@pytest.mark.parametrize("regulariser", ["identity", "l2"])
def test_glocal_reference_enters_unstandardised(regulariser: str) -> None:
    from alignkit.probe import LinearProbe

    x, t = _planted(n_tri=300)
    rng = np.random.default_rng(3)
    ref = rng.normal(loc=2.0, scale=5.0, size=(12, x.shape[1]))
    sigma, lam, alpha, tau = 0.5, 0.1, 0.25, 0.5
    pr = LinearProbe("glocal", lam=lam, bias=True, sigma=sigma, alpha=alpha, tau=tau,
                     regulariser=regulariser, val_fraction=0.0, dtype="float64", max_iter=0)
    pr.fit(x, t, reference=ref)
    z = (x - x.mean()) / x.std()
    p = x.shape[1]
    w, b = np.eye(p) * sigma, np.full(p, sigma)
    zz = z @ w + b
    nll = np.mean([np.log(sum(np.exp([zz[i] @ zz[j], zz[i] @ zz[k], zz[j] @ zz[k]])))
                   - zz[i] @ zz[j] for i, j, k in t])
    reg = sigma * math.sqrt(p) if regulariser == "l2" else 0.0  # W = sigma I: identity penalty 0
    want = (1 - alpha) * nll + alpha * _local_loop(ref, w, b, tau) + lam * reg
    assert pr.result_.train_loss == pytest.approx(want, rel=1e-10)
    # the earlier behaviour stays available and differs
    pr2 = LinearProbe("glocal", lam=lam, bias=True, sigma=sigma, alpha=alpha, tau=tau,
                      regulariser=regulariser, val_fraction=0.0, dtype="float64", max_iter=0,
                      standardize_reference=True).fit(x, t, reference=ref)
    assert abs(pr2.result_.train_loss - want) > 1e-6


def test_glocal_early_stopping_watches_nll_plus_local() -> None:
    from alignkit.probe.minibatch import fit_minibatch

    x, t = _planted(n_tri=400)
    xs = torch.tensor((x - x.mean()) / x.std())
    rng = np.random.default_rng(4)
    ref = rng.normal(loc=1.0, scale=3.0, size=(10, x.shape[1]))
    spec = ObjectiveSpec(objective="glocal", lam=0.1, alpha=0.25, tau=1.0, sigma=0.1,
                         ref_batch=1024)
    res = fit_minibatch(xs, t[:300], spec, val=t[300:], reference=torch.tensor(ref),
                        val_reference=torch.tensor(ref), generator=torch.Generator().manual_seed(0),
                        min_epochs=1, max_epochs=1, clip=None)
    w = res.weights
    zz = ((x - x.mean()) / x.std()) @ w
    nll = np.mean([np.log(sum(np.exp([zz[i] @ zz[j], zz[i] @ zz[k], zz[j] @ zz[k]])))
                   - zz[i] @ zz[j] for i, j, k in t[300:]])
    assert res.history[0]["val_nll"] == pytest.approx(nll + _local_loop(ref, w, None, 1.0), rel=1e-9)
