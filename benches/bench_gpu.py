"""CUDA vs CPU kernels: correctness and speed in one run (for a machine with a GPU).

Usage::

    python benches/bench_gpu.py --out results.json            # THINGS scale, < 3 min on an H200
    NUMBA_ENABLE_CUDASIM=1 python benches/bench_gpu.py --scale tiny --out tiny.json

Cases (``full``): 4,699,160 synthetic triplets over 1854 x 768 random float32 features
(cosine): odd-one-out counts on the Gram path (gather from the n x n matrix) and on the
direct path (per-triplet dot products, no matrix); 1,000 bootstrap resamples of the 4.7M
correctness vector; 10,000 RSA permutations on 118 stimuli (Spearman). Every GPU result is
checked against the CPU kernel (identical counts and bootstrap accuracies, permutation null
to 1e-12); the script exits 1 on any mismatch. Timings are warm (one untimed call first),
best of 5, wall clock around the host function (numpy in, numpy out: transfers included);
for the odd-one-out paths also with the inputs already on the GPU ("resident").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SCALES: dict[str, dict[str, int]] = {
    "full": {"n": 1854, "p": 768, "N": 4_699_160, "n_boot": 1000, "m": 118, "n_perm": 10_000},
    "small": {"n": 1854, "p": 768, "N": 200_000, "n_boot": 100, "m": 118, "n_perm": 1000},
    "tiny": {"n": 60, "p": 20, "N": 600, "n_boot": 3, "m": 12, "n_perm": 6},
}


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls after one untimed warm-up call, and the result."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def synthetic_triplets(rng: np.random.Generator, n: int, N: int) -> np.ndarray:
    """``N`` triplets of distinct objects drawn uniformly (int32, odd one out last)."""
    T = rng.integers(0, n, size=(N, 3), dtype=np.int32)
    while True:
        bad = (T[:, 0] == T[:, 1]) | (T[:, 0] == T[:, 2]) | (T[:, 1] == T[:, 2])
        if not bad.any():
            return T
        T[bad] = rng.integers(0, n, size=(int(bad.sum()), 3), dtype=np.int32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/alignkit-numba-cache")
    warnings.filterwarnings("ignore", message="overflow encountered", category=RuntimeWarning)

    from numba import config, cuda

    from alignkit._kernels import bootstrap, ooo, rank, rsa, similarity
    from alignkit._kernels import cuda as kc

    if not kc.cuda_available():
        print("bench_gpu: no CUDA GPU (and no simulator) available", file=sys.stderr)
        return 2
    sc = SCALES[args.scale]
    repeats = args.repeats if args.repeats is not None else (1 if config.ENABLE_CUDASIM else 5)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((sc["n"], sc["p"]), dtype=np.float32)
    T = synthetic_triplets(rng, sc["n"], sc["N"])
    rows: list[dict[str, Any]] = []
    mismatches: list[str] = []

    def record(case: str, cpu_s: float, gpu_s: float, same: bool, **extra: Any) -> None:
        rows.append(
            {
                "case": case,
                "cpu_s": cpu_s,
                "gpu_s": gpu_s,
                "ratio": cpu_s / gpu_s,
                "identical": same,
                **extra,
            }
        )
        if not same:
            mismatches.append(case)

    # odd-one-out, Gram path (the Gram matrix itself is built once, on the CPU, as in `score`)
    S = similarity.gram(X, "cosine")
    cpu_t, cpu_counts = best_of(lambda: ooo.ooo_counts(S, T, "paper"), repeats)
    gpu_t, gpu_counts = best_of(lambda: kc.ooo_counts_cuda(S, T, "paper"), repeats)
    dS, dT = cuda.to_device(S), cuda.to_device(T)
    res_t, res_counts = best_of(lambda: kc.ooo_counts_cuda(dS, dT, "paper"), repeats)
    record(
        "ooo counts, Gram (cosine)",
        cpu_t,
        gpu_t,
        cpu_counts == gpu_counts == res_counts,
        gpu_resident_s=res_t,
        counts=list(cpu_counts),
    )

    # odd-one-out, direct path
    def cpu_direct() -> tuple[int, int]:
        return ooo.ooo_counts(similarity.triplet_sims_direct(X, T, "cosine"), None, "paper")

    cpu_t, cpu_counts = best_of(cpu_direct, repeats)
    gpu_t, gpu_counts = best_of(lambda: kc.ooo_counts_direct_cuda(X, T, "cosine"), repeats)
    dX = cuda.to_device(X)
    res_t, res_counts = best_of(lambda: kc.ooo_counts_direct_cuda(dX, dT, "cosine"), repeats)
    record(
        "ooo counts, direct (cosine)",
        cpu_t,
        gpu_t,
        cpu_counts == gpu_counts == res_counts,
        gpu_resident_s=res_t,
        counts=list(cpu_counts),
    )

    # bootstrap of the accuracy
    correct = ooo.ooo_correct(S, T, "paper")
    cpu_t, cpu_b = best_of(lambda: bootstrap.bootstrap_means(correct, sc["n_boot"], 1), repeats)
    gpu_t, gpu_b = best_of(lambda: kc.bootstrap_means_cuda(correct, sc["n_boot"], 1), repeats)
    record(f"bootstrap x{sc['n_boot']}", cpu_t, gpu_t, bool(np.array_equal(cpu_b, gpu_b)))

    # RSA permutation test (Spearman) on m stimuli
    m = sc["m"]
    Y = rng.standard_normal((m, 32))
    da = rank.condensed(1.0 - np.corrcoef(Y))
    db = rank.condensed(1.0 - np.corrcoef(Y + rng.standard_normal((m, 32))))
    cpu_t, (_obs, cpu_null) = best_of(
        lambda: rsa.rsa_permutation(da, db, sc["n_perm"], 3, method="spearman"), repeats
    )
    ra, rb = rank.rank_pair(da, db)
    gpu_t, gpu_null = best_of(
        lambda: kc.rsa_permutation_ranks_cuda(ra, rb, m, sc["n_perm"], 3), repeats
    )
    err = float(np.max(np.abs(cpu_null - gpu_null)))
    record(
        f"RSA permutations x{sc['n_perm']} (m={m})", cpu_t, gpu_t, err <= 1e-12, max_abs_diff=err
    )

    device = "CUDA simulator" if config.ENABLE_CUDASIM else cuda.get_current_device().name
    if isinstance(device, bytes):
        device = device.decode()
    print(
        f"\nalignkit CUDA vs CPU ({args.scale}: N={sc['N']:,}, n={sc['n']}, p={sc['p']}; "
        f"device {device}; {os.cpu_count()} CPU cores; warm, best of {repeats})"
    )
    print(f"{'case':<36} {'CPU s':>10} {'GPU s':>10} {'CPU/GPU':>9} {'resident s':>11}  same")
    for r in rows:
        res = f"{r['gpu_resident_s']:.4f}" if "gpu_resident_s" in r else "-"
        print(
            f"{r['case']:<36} {r['cpu_s']:>10.4f} {r['gpu_s']:>10.4f} {r['ratio']:>9.1f} "
            f"{res:>11}  {'yes' if r['identical'] else 'NO'}"
        )
    payload = {
        "scale": args.scale,
        "sizes": sc,
        "repeats": repeats,
        "device": str(device),
        "simulator": bool(config.ENABLE_CUDASIM),
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
        "results": rows,
        "mismatches": mismatches,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    if mismatches:
        print(f"MISMATCH in: {', '.join(mismatches)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
