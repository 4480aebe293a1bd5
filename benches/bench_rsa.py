"""Benchmark of the RDM comparison methods: alignkit's kernels against the straightforward
numpy/scipy computation and against rsatoolbox (when importable), measured in the same run.

Sizes: ``m = 1854`` stimuli (THINGS; 1,717,731 pairs) and ``m = 92`` (Kriegeskorte et al.
2008; 4,186 pairs). The RDMs are correlation distances of random features (the human side
rounded to 2 decimals, so that it has ties). The numpy/scipy baselines:

=================  ==========================================================================
spearman           ``scipy.stats.spearmanr``
pearson            ``numpy.corrcoef``
kendall-tau-b      ``scipy.stats.kendalltau``
tau-a              ``scipy.stats.kendalltau`` rescaled by the tie counts (``numpy.unique``)
rho-a              ``scipy.stats.rankdata`` and a dot product
cosine             ``numpy.dot``
whitened-*         double centring of the square matrices (``H D H``) and a Frobenius product
=================  ==========================================================================

Also the inference cost per method (``--permutations`` and ``--bootstrap`` resamples, m = 92).
Every timing is the median of ``--repeats`` runs after one untimed warm-up (which compiles).

Usage::

    python benches/bench_rsa.py                 # both sizes
    python benches/bench_rsa.py --sizes 92 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np

METHODS = ("spearman", "pearson", "kendall-tau-b", "tau-a", "rho-a", "cosine",
           "whitened-cosine", "whitened-pearson")
RSATOOLBOX = {"spearman": "spearman", "pearson": "corr", "kendall-tau-b": "kendall",
              "tau-a": "tau-a", "rho-a": "rho-a", "cosine": "cosine",
              "whitened-cosine": "cosine_cov", "whitened-pearson": "corr_cov"}


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _tie_pairs(x: np.ndarray) -> int:
    _, c = np.unique(x, return_counts=True)
    return int((c * (c - 1) // 2).sum())


def _double_centred_cosine(a: np.ndarray, b: np.ndarray, centred: bool) -> float:
    from scipy.spatial.distance import squareform

    out = []
    for v in (a, b):
        if centred:
            v = v - v.mean()
        D = squareform(v)
        m = D.shape[0]
        H = np.eye(m) - 1.0 / m
        out.append(H @ D @ H)
    return float((out[0] * out[1]).sum() / np.sqrt((out[0] ** 2).sum() * (out[1] ** 2).sum()))


def baseline(method: str) -> Callable[[np.ndarray, np.ndarray], float]:
    import scipy.stats as ss

    if method == "spearman":
        return lambda a, b: ss.spearmanr(a, b).statistic
    if method == "pearson":
        return lambda a, b: np.corrcoef(a, b)[0, 1]
    if method == "kendall-tau-b":
        return lambda a, b: ss.kendalltau(a, b).statistic
    if method == "tau-a":
        def tau_a(a: np.ndarray, b: np.ndarray) -> float:
            n0 = a.size * (a.size - 1) // 2
            tb = ss.kendalltau(a, b).statistic
            return tb * np.sqrt(float(n0 - _tie_pairs(a)) * float(n0 - _tie_pairs(b))) / n0
        return tau_a
    if method == "rho-a":
        def rho_a(a: np.ndarray, b: np.ndarray) -> float:
            ra, rb = ss.rankdata(a), ss.rankdata(b)
            n = float(a.size)
            return 12.0 * np.dot(ra - ra.mean(), rb - rb.mean()) / (n**3 - n)
        return rho_a
    if method == "cosine":
        return lambda a, b: np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b))
    return lambda a, b: _double_centred_cosine(a, b, method == "whitened-pearson")


def rdms(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, 64))
    Y = X + rng.normal(scale=2.0, size=X.shape)
    return pdist(X, "correlation"), np.round(pdist(Y, "correlation"), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1854,92", help="comma-separated numbers of stimuli")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()

    from alignkit._kernels import compare as kc

    try:
        from rsatoolbox.rdm import compare as rsa_compare
    except ImportError:
        rsa_compare = None
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"numba threads {os.environ.get('NUMBA_NUM_THREADS', 'default')}; median of "
          f"{args.repeats} after a warm-up")
    for m in (int(s) for s in args.sizes.split(",")):
        a, b = rdms(m)
        print(f"\n## m = {m} stimuli, {a.size:,} pairs\n")
        print("| method | alignkit | numpy/scipy | ratio | rsatoolbox | ratio | |value diff| |")
        print("|---|---|---|---|---|---|---|")
        for method in METHODS:
            ours = kc.compare(a, b, method)
            t_ours = _median_time(lambda a=a, b=b, mt=method: kc.compare(a, b, mt), args.repeats)
            base = baseline(method)
            ref = base(a, b)
            t_base = _median_time(lambda a=a, b=b, f=base: f(a, b), args.repeats)
            cells = [f"{t_ours * 1e3:.2f} ms", f"{t_base * 1e3:.2f} ms", f"{t_base / t_ours:.1f}x"]
            diff = abs(ours - ref)
            if rsa_compare is not None:
                name = RSATOOLBOX[method]
                t_rt = _median_time(lambda a=a, b=b, nm=name: rsa_compare(a[None], b[None], method=nm),
                                    args.repeats)
                rt = float(rsa_compare(a[None], b[None], method=name)[0, 0])
                diff = max(diff, abs(ours - rt))
                cells += [f"{t_rt * 1e3:.2f} ms", f"{t_rt / t_ours:.1f}x"]
            else:
                cells += ["-", "-"]
            print(f"| {method} | " + " | ".join(cells) + f" | {diff:.1e} |")
    m = 92
    a, b = rdms(m, seed=1)
    print(f"\n## inference, m = {m}: {args.permutations} permutations, {args.bootstrap} "
          "stimulus resamples (alignkit)\n")
    print("| method | permutations | bootstrap |")
    print("|---|---|---|")
    for method in METHODS:
        t_p = _median_time(lambda mt=method: kc.permutation_null(a, b, args.permutations, 0, mt),
                           args.repeats)
        t_b = _median_time(lambda mt=method: kc.bootstrap_stimuli(a, b, args.bootstrap, 0, mt),
                           args.repeats)
        print(f"| {method} | {t_p * 1e3:.1f} ms | {t_b * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
