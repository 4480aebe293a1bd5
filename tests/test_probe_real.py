"""On real data: a distorted SPoSE embedding loses accuracy; probing recovers it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _zero_shot(x: np.ndarray, t: np.ndarray) -> float:
    s = x @ x.T
    a, b, c = s[t[:, 0], t[:, 1]], s[t[:, 0], t[:, 2]], s[t[:, 1], t[:, 2]]
    return float(np.mean((a > b) & (a > c)))


def distort(x: np.ndarray, seed: int = 0, noise: float = 0.1) -> np.ndarray:
    """Gaussian noise (``noise`` x the sd), a random rotation, log-uniform(0.1, 10) scaling.

    The noise goes in before the linear map, so a linear probe can in principle
    undo everything but the noise.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(x.shape[1], x.shape[1])))
    scale = np.exp(rng.uniform(np.log(0.1), np.log(10.0), x.shape[1]))
    return ((x + rng.normal(size=x.shape) * noise * x.std()) @ q) * scale


@pytest.mark.slow
def test_probe_recovers_distorted_spose_accuracy() -> None:
    if not (DATA / "things").is_dir():
        pytest.skip(f"real data not found at {DATA}")
    from alignkit.data import load_embedding, load_triplets
    from alignkit.probe import cross_validate

    x = load_embedding("spose-49d").values
    t = load_triplets("things-test20k").array
    before = _zero_shot(x, t)
    assert before == pytest.approx(0.63475)  # the data README's figure
    xd = distort(x)
    after = _zero_shot(xd, t)
    lost = before - after
    assert lost > 0.05
    from alignkit.probe.cv import fold_splits

    res = cross_validate(xd, t, folds=3, lambdas=(1e-2, 1e-3), protocol="nested", seed=0)
    probed = res.probing_accuracy  # mean over held-out object folds
    after_folds = np.mean([_zero_shot(xd, t[te]) for _, te in fold_splits(t, len(x), 3)])
    before_folds = np.mean([_zero_shot(x, t[te]) for _, te in fold_splits(t, len(x), 3)])
    # held-out objects: the probe recovers a clear part of the loss on the same test triplets
    # (20,000 triplets leave ~5,300 per training fold for 2,401 parameters)
    assert probed - after_folds > (before_folds - after_folds) / 5
    # the transform refitted on all objects (in-sample for 90% of these triplets)
    # recovers most of the lost accuracy
    refit = _zero_shot(res.transform.apply(xd), t)
    assert refit - after > lost / 2
