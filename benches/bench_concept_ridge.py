"""``concept-ridge`` against scikit-learn's RidgeCV on the same object folds, in the same run.

Features are ``n x p`` (ReLU of the SPoSE 49d embedding through a random map, plus noise);
targets the SPoSE 49d dimensions. Both fit, on each of the outer folds, the ridge whose alpha
per dimension has the least leave-one-out error (``RidgeCV(alphas, alpha_per_target=True)``),
and predict the held-out objects. Prints seconds for each and the largest R² difference.

Example::

    python benches/bench_concept_ridge.py --p 4096
    python benches/bench_concept_ridge.py --n 1000 --p 512 --folds 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1854, help="objects (at most 1854)")
    ap.add_argument("--p", type=int, default=4096, help="features")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold

    from alignkit.data import load_embedding
    from alignkit.measures.concept_ridge import DEFAULT_ALPHAS, concept_ridge, parse_alphas

    emb = load_embedding("spose-49d")
    Y = emb.values[: args.n]
    rng = np.random.default_rng(0)
    X = np.maximum(Y @ rng.normal(size=(49, args.p)) + rng.normal(size=(args.n, args.p)), 0)
    alphas = parse_alphas(DEFAULT_ALPHAS)
    concept_ridge(X[:60, :20], Y[:60], folds=2, bootstrap=0)  # warm-up (compiled kernels)

    best_a = best_s = np.inf
    for _ in range(args.repeats):
        t = time.perf_counter()
        r = concept_ridge(X, Y, folds=args.folds, seed=0, bootstrap=0)
        best_a = min(best_a, time.perf_counter() - t)
        t = time.perf_counter()
        P = np.empty_like(Y)
        for train, test in KFold(args.folds, shuffle=True, random_state=0).split(X):
            P[test] = RidgeCV(alphas=alphas, alpha_per_target=True).fit(X[train],
                                                                        Y[train]).predict(X[test])
        best_s = min(best_s, time.perf_counter() - t)
    diff = np.max(np.abs(np.array([d["r2"] for d in r.dimensions])
                         - r2_score(Y, P, multioutput="raw_values")))
    print(f"n={args.n} p={args.p} folds={args.folds} ({r.method} form), best of {args.repeats}")
    print(f"alignkit concept-ridge  {best_a:8.2f} s   mean R2 {r.mean_r2:.6f}")
    print(f"sklearn RidgeCV         {best_s:8.2f} s   ratio {best_s / best_a:.1f}x")
    print(f"max |R2 difference|     {diff:.2e}")


if __name__ == "__main__":
    main()
