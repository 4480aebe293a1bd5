"""Benchmark of the Numba CPU kernels against numpy / scipy baselines measured in the same run.

Cases (``--scale full``; ``--scale small`` shrinks every size for a quick check):

0. odd-one-out end to end through :func:`alignkit.score.odd_one_out` against numpy (float64
   and float32) and torch on the CPU, and against the limit measured in the same run (BLAS
   rate, memory bandwidth, random reads from the n x n matrix: ``benches/_limits.py``),
   median and min of ``--repeat`` calls, the load average at start; then all 26,107 THINGS
   images as objects (the direct path) with its memory (``--only ooo`` runs this alone);
1. odd-one-out accuracy over 4,699,160 synthetic THINGS triplets with 1854 x 768 random
   features, cosine similarity (Gram matrix + gather), against the best vectorised numpy
   and against a per-triplet Python loop like the paper's analysis code (the loop is
   timed on a 20k subset and extrapolated; the table says so);
   also the direct path (per-triplet dot products, no ``n x n`` matrix) on 500k of the
   triplets for cosine and euclidean, against the Gram path on the same triplets;
2. 1,000 bootstrap resamples of the per-triplet correctness, against a numpy loop
   (``rng.integers`` + mean per resample, timed on a few resamples and extrapolated);
3. Spearman RSA of two 1854-stimulus RDMs (1.7M pairs) against ``scipy.stats.spearmanr``;
4. 10,000 stimulus permutations on 118 stimuli against a numpy/scipy loop (timed on a
   subset and extrapolated);
5. peak memory of case 1: numpy allocations (``tracemalloc``) and the process's maximum
   resident set size (``resource.getrusage``).

Every timing is the best of 3 after one untimed warm-up call (which also compiles).

Usage::

    python benches/bench_kernels.py --scale small
    python benches/bench_kernels.py              # full scale (minutes, several GB of RAM)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

SCALES: dict[str, dict[str, int]] = {
    "full": {
        "n_triplets": 4_699_160,
        "n_objects": 1854,
        "p": 768,
        "loop_subset": 20_000,
        "direct_subset": 500_000,
        "n_boot": 1000,
        "boot_subset": 5,
        "rsa_stimuli": 1854,
        "perm_stimuli": 118,
        "n_perm": 10_000,
        "perm_subset": 300,
        "n_images": 26_107,
    },
    "small": {
        "n_triplets": 200_000,
        "n_objects": 1854,
        "p": 768,
        "loop_subset": 5_000,
        "direct_subset": 50_000,
        "n_boot": 100,
        "boot_subset": 3,
        "rsa_stimuli": 400,
        "perm_stimuli": 118,
        "n_perm": 1000,
        "perm_subset": 100,
        "n_images": 26_107,
    },
}


def best_of(fn: Callable[[], Any], repeat: int = 3, warm: bool = True) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls (after one untimed warm-up call) and the last result."""
    if warm:
        fn()
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


# ----------------------------------------------------------------------------- baselines
def numpy_ooo_accuracy(X: np.ndarray, T: np.ndarray) -> tuple[int, int, int]:
    """Best vectorised numpy: normalised Gram, fancy-index gather, tie-aware argmax."""
    X = X.astype(np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    Xn = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    return numpy_counts(Xn @ Xn.T, T)


def numpy_counts(S: np.ndarray, T: np.ndarray) -> tuple[int, int, int]:
    """Vectorised numpy gather and the paper's tie rule from a similarity matrix:
    ``(n_correct, two-way ties, three-way ties)``."""
    i, j, k = T[:, 0], T[:, 1], T[:, 2]
    sims = np.stack([S[i, j], S[i, k], S[j, k]], axis=1)
    top = sims.max(axis=1, keepdims=True)
    n_max = (sims == top).sum(axis=1)
    correct = (sims[:, 0] == top[:, 0]) & (n_max < 3)
    return int(correct.sum()), int((n_max == 2).sum()), int((n_max == 3).sum())


def python_loop_ooo(X: np.ndarray, T: np.ndarray) -> int:
    """A per-triplet Python loop over a cosine matrix, as in the paper's analysis code."""
    X = X.astype(np.float64)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Xn @ Xn.T
    hits = 0
    for i, j, k in T:
        sims = np.array([S[i, j], S[i, k], S[j, k]])
        if np.count_nonzero(sims == sims.max()) < 3 and np.argmax(sims) == 0:
            hits += 1
    return hits


def numpy_bootstrap(correct: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    N = len(correct)
    return np.array([correct[rng.integers(0, N, N)].mean() for _ in range(n_boot)])


def scipy_permutations(A: np.ndarray, B: np.ndarray, n_perm: int, seed: int) -> np.ndarray:
    import scipy.stats
    from scipy.spatial.distance import squareform

    rng = np.random.default_rng(seed)
    a = squareform(A, checks=False)
    out = np.empty(n_perm)
    for p in range(n_perm):
        perm = rng.permutation(len(B))
        out[p] = scipy.stats.spearmanr(a, squareform(B[np.ix_(perm, perm)], checks=False))[0]
    return out


def numpy_f32_counts(X: np.ndarray, T: np.ndarray) -> tuple[int, int, int]:
    """:func:`numpy_ooo_accuracy` in float32 throughout (ties then differ from float64)."""
    X = X.astype(np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    Xn = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    return numpy_counts(Xn @ Xn.T, T)


def torch_counts(X: np.ndarray, T: np.ndarray) -> tuple[int, int, int]:
    """The same in torch on the CPU, float32 (its fastest form: the baseline a torch user
    writes)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    x = torch.nn.functional.normalize(x, dim=1)
    S = x @ x.T
    t = torch.from_numpy(np.ascontiguousarray(T, dtype=np.int64))
    i, j, k = t[:, 0], t[:, 1], t[:, 2]
    sims = torch.stack([S[i, j], S[i, k], S[j, k]], dim=1)
    top = sims.max(dim=1, keepdim=True).values
    n_max = (sims == top).sum(dim=1)
    correct = (sims[:, 0] == top[:, 0]) & (n_max < 3)
    return int(correct.sum()), int((n_max == 2).sum()), int((n_max == 3).sum())


def distinct_triplets(rng: np.random.Generator, n: int, N: int) -> np.ndarray:
    """``N`` uniformly random triplets of three different objects among ``n``."""
    T = rng.integers(0, n, size=(N, 3)).astype(np.int32)
    while True:
        bad = (T[:, 0] == T[:, 1]) | (T[:, 0] == T[:, 2]) | (T[:, 1] == T[:, 2])
        if not bad.any():
            return T
        T[bad] = rng.integers(0, n, size=(int(bad.sum()), 3))


def ooo_end_to_end(cfg: dict[str, int], seed: int, repeat: int) -> None:
    """Odd-one-out through the public API against numpy, torch and the machine's limit;
    then all 26,107 THINGS images as objects (the direct path)."""
    import torch
    from _limits import (
        blas_gflops,
        load_average,
        random_reads_per_s,
        stream_gbs,
        timings,
    )

    from alignkit.data import Triplets, synthetic_triplets
    from alignkit.score import odd_one_out

    rng = np.random.default_rng(seed)
    N, n, p = cfg["n_triplets"], cfg["n_objects"], cfg["p"]
    trip = synthetic_triplets(n=N, seed=seed)
    T = trip.array
    X = rng.normal(size=(n, p)).astype(np.float32)
    print(f"\n## odd-one-out end to end: {N:,} triplets, {n} x {p} float32 features, cosine; "
          f"load average at start {load_average()}; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; each case: median and min of {repeat}")
    gf, bw = blas_gflops(), stream_gbs()
    rr = random_reads_per_s(n, 3 * N)
    t_gram = n * n * p / (gf * 1e9)  # the Gram matrix as a syrk: n^2 p multiply-adds
    t_trip = T.nbytes / (bw * 1e9)
    t_reads = 3 * N / rr
    limit = t_gram + t_trip + t_reads
    print(f"limits: BLAS {gf:.1f} GFLOP/s, memory {bw:.1f} GB/s, random float64 reads from "
          f"the {n} x {n} matrix {rr / 1e6:.0f} M/s -> Gram {t_gram:.3f} s + triplets "
          f"{t_trip:.3f} s + 3N random reads {t_reads:.3f} s = limit {limit:.3f} s")

    def api():
        r = odd_one_out(X, trip, similarity="cosine", ties="paper")
        return r.n_correct, r.n_ties2, r.n_ties3

    med, best, res = timings(api, repeat)
    rows = [("alignkit.score.odd_one_out", med, best, res)]
    for name, fn in (("numpy float64", lambda: numpy_ooo_accuracy(X, T)),
                     ("numpy float32", lambda: numpy_f32_counts(X, T)),
                     ("torch CPU float32", lambda: torch_counts(X, T))):
        m, b, r = timings(fn, max(3, repeat // 2))
        rows.append((name, m, b, r))
    if rows[1][3] != res:
        raise SystemExit(f"mismatch: alignkit {res} vs numpy float64 {rows[1][3]}")
    print(f"{'':<28} {'median s':>9} {'min s':>8} {'/alignkit':>10}  counts (correct, ties2, ties3)")
    for name, m, b, r in rows:
        print(f"{name:<28} {m:>9.3f} {b:>8.3f} {m / med:>9.2f}x  {r}")
    print(f"alignkit / limit: {med / limit:.2f} (median), {best / limit:.2f} (min); target <= 1.5")

    # all THINGS images as objects: the n x n matrix (5.5 GB) exceeds the 2 GiB budget
    nb = cfg["n_images"]
    Xb = rng.normal(size=(nb, p)).astype(np.float32)
    Tb = Triplets.from_array(distinct_triplets(rng, nb, N), n_objects=nb)
    tracemalloc.start()
    rb = odd_one_out(Xb, Tb, similarity="dot")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    m, b, _ = timings(lambda: odd_one_out(Xb, Tb, similarity="dot"), max(3, repeat // 2),
                      warm=False)
    print(f"{nb:,} objects x {p} (the n x n matrix would take {8 * nb * nb / 2**30:.1f} GiB; "
          f"method {rb.method}): median {m:.3f} s, min {b:.3f} s (target < 1 s); numpy "
          f"allocations peak {peak / 2**20:.0f} MiB (features {Xb.nbytes / 2**20:.0f} MiB, "
          f"per-triplet similarities {24 * N / 2**20:.0f} MiB)")


# ----------------------------------------------------------------------------- main
def rdm_from(X: np.ndarray) -> np.ndarray:
    from alignkit._kernels import similarity as ksim

    return 1.0 - ksim.gram(X, "correlation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=7, help="Timed calls per case.")
    parser.add_argument("--only", choices=["ooo", "rest"], default=None,
                        help="Only the end-to-end odd-one-out section, or only the others.")
    args = parser.parse_args(argv)
    cfg = SCALES[args.scale]
    os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/alignkit-numba-cache")
    if args.only != "rest":
        ooo_end_to_end(cfg, args.seed, args.repeat)
        if args.only == "ooo":
            return 0

    import numba
    import scipy
    import scipy.stats

    from alignkit._kernels import bootstrap as kboot
    from alignkit._kernels import ooo as kooo
    from alignkit._kernels import rank as krank
    from alignkit._kernels import rsa as krsa
    from alignkit._kernels import similarity as ksim
    from alignkit.data import synthetic_triplets

    rng = np.random.default_rng(args.seed)
    N, n, p = cfg["n_triplets"], cfg["n_objects"], cfg["p"]
    print(
        f"alignkit kernel benchmark, scale={args.scale}: numba {numba.__version__}, "
        f"{numba.get_num_threads()} threads, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    rows: list[tuple[str, float, float, str, str]] = []

    # 1. odd-one-out --------------------------------------------------------------------------
    T = synthetic_triplets(n=N, seed=args.seed).array
    X = rng.normal(size=(n, p)).astype(np.float32)

    def ours() -> tuple[int, int, int]:
        return kooo.ooo_counts(ksim.gram(X, "cosine"), T, "paper")

    t_ours, res_ours = best_of(ours)
    t_np, res_np = best_of(lambda: numpy_ooo_accuracy(X, T))
    if res_ours != res_np:
        raise SystemExit(f"mismatch: kernels {res_ours} vs numpy {res_np}")
    sub = T[: cfg["loop_subset"]]
    t_loop_sub, hits_loop = best_of(lambda: python_loop_ooo(X, sub), repeat=1, warm=False)
    if hits_loop != kooo.ooo_counts(ksim.gram(X, "cosine"), sub)[0]:
        raise SystemExit("mismatch: kernels vs Python loop on the subset")
    t_loop = t_loop_sub * N / len(sub)
    rows.append(
        (
            f"odd-one-out, {N:,} triplets, {n}x{p} cosine",
            t_ours,
            t_np,
            "numpy vectorised",
            "-",
        )
    )
    rows.append(
        (
            f"odd-one-out, {N:,} triplets (loop EXTRAPOLATED from {len(sub):,})",
            t_ours,
            t_loop,
            "Python loop (paper)",
            "-",
        )
    )
    S = ksim.gram(X, "cosine")
    t_gather, res_g = best_of(lambda: kooo.ooo_counts(S, T, "paper"))
    t_gather_np, res_gnp = best_of(lambda: numpy_counts(S, T))
    if res_g != res_gnp:
        raise SystemExit(f"mismatch: gather {res_g} vs numpy {res_gnp}")
    rows.append(
        (
            f"odd-one-out gather only (Gram given), {N:,} triplets",
            t_gather,
            t_gather_np,
            "numpy fancy indexing",
            "-",
        )
    )
    # the direct path (no n x n matrix) per similarity, against the Gram path on the same
    # triplets; its counts must equal the Gram path's for these random float features
    Td = T[: cfg["direct_subset"]]
    for sim in ("cosine", "euclidean"):
        t_direct, res_d = best_of(
            lambda sim=sim: kooo.ooo_counts(ksim.triplet_sims_direct(X, Td, sim), None, "paper")
        )
        t_via_gram, res_vg = best_of(
            lambda sim=sim: kooo.ooo_counts(ksim.gram(X, sim), Td, "paper")
        )
        if res_d != res_vg:
            raise SystemExit(f"mismatch: direct {res_d} vs Gram {res_vg} ({sim})")
        rows.append(
            (
                f"odd-one-out direct path, {len(Td):,} triplets, {sim}",
                t_direct,
                t_via_gram,
                "Gram path (gram + counts)",
                "-",
            )
        )
    t_syn, _ = best_of(lambda: synthetic_triplets(n=N, seed=args.seed + 1), repeat=1)
    rows.append((f"synthetic triplets, {N:,}", t_syn, float("nan"), "-", "1-2 s for 4.7M"))

    # 5. peak memory of case 1 (numpy allocations are traced; Numba's are in the RSS) -------
    tracemalloc.start()
    tracemalloc.reset_peak()
    ours()
    peak_ours = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    numpy_ooo_accuracy(X, T)
    peak_np = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux

    # 2. bootstrap ----------------------------------------------------------------------------
    correct = kooo.ooo_correct(ksim.gram(X, "cosine"), T)
    n_boot = cfg["n_boot"]
    t_boot, means = best_of(lambda: kboot.bootstrap_means(correct, n_boot, args.seed))
    k = cfg["boot_subset"]
    t_boot_np_sub, _ = best_of(lambda: numpy_bootstrap(correct, k, args.seed), repeat=1)
    rows.append(
        (
            f"bootstrap {n_boot:,} x {N:,} (numpy EXTRAPOLATED from {k})",
            t_boot,
            t_boot_np_sub * n_boot / k,
            "numpy loop",
            "< 10 s for 1,000 x 4.7M on 2 cores",
        )
    )

    # 3. Spearman RSA -------------------------------------------------------------------------
    m = cfg["rsa_stimuli"]
    A = krank.condensed(rdm_from(rng.normal(size=(m, 64))))
    B = krank.condensed(rdm_from(rng.normal(size=(m, 64)) + 0.0))
    t_sp, r_ours = best_of(lambda: krank.spearman(A, B))
    t_sp_sc, r_sc = best_of(lambda: scipy.stats.spearmanr(A, B)[0])
    if abs(r_ours - r_sc) > 1e-12:
        raise SystemExit(f"mismatch: spearman {r_ours} vs scipy {r_sc}")
    rows.append(
        (
            f"Spearman RSA, {m} stimuli ({len(A):,} pairs)",
            t_sp,
            t_sp_sc,
            "scipy.stats.spearmanr",
            ">= 3x faster",
        )
    )

    # 4. permutations -------------------------------------------------------------------------
    mp, n_perm, n_sub = cfg["perm_stimuli"], cfg["n_perm"], cfg["perm_subset"]
    Pa = rdm_from(rng.normal(size=(mp, 20)))
    Pb = rdm_from(rng.normal(size=(mp, 20)))
    t_perm, _ = best_of(lambda: krsa.rsa_permutation(Pa, Pb, n_perm, args.seed))
    t_perm_sub, _ = best_of(lambda: scipy_permutations(Pa, Pb, n_sub, args.seed), repeat=1)
    rows.append(
        (
            f"{n_perm:,} permutations, {mp} stimuli (loop EXTRAPOLATED from {n_sub})",
            t_perm,
            t_perm_sub * n_perm / n_sub,
            "numpy/scipy loop",
            "< 2 s for 10,000",
        )
    )

    # table -----------------------------------------------------------------------------------
    w = max(len(r[0]) for r in rows)
    print(
        f"\n{'case':<{w}}  {'alignkit s':>10}  {'baseline s':>10}  {'ratio':>8}  baseline / target"
    )
    for name, ours_s, base_s, base, target in rows:
        if np.isnan(base_s):
            print(f"{name:<{w}}  {ours_s:>10.3f}  {'-':>10}  {'-':>8}  target: {target}")
            continue
        print(
            f"{name:<{w}}  {ours_s:>10.3f}  {base_s:>10.3f}  {base_s / ours_s:>7.1f}x  "
            f"{base} / target: {target}"
        )
    print(
        f"\npeak memory, odd-one-out case: numpy allocations (tracemalloc) alignkit "
        f"{peak_ours / 2**20:.1f} MiB vs numpy baseline {peak_np / 2**20:.1f} MiB; "
        f"process max RSS {max_rss / 2**20:.0f} MiB (triplets {T.nbytes / 2**20:.0f} MiB, "
        f"Gram {ksim.gram_bytes(n) / 2**20:.0f} MiB)"
    )
    print(
        f"accuracy {res_ours[0] / N:.5f}, ties two-way {res_ours[1]} three-way {res_ours[2]}, "
        f"bootstrap sd {means.std():.2e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
