"""Benchmark of linear CKA and the Procrustes distance at THINGS-image scale.

Cases (``--scale full``, the default; ``--scale small`` divides n by 8 and p by 4):

1. features 26,107 x 4,096 (float32 and float64) against an embedding-size
   representation 26,107 x 49;
2. features 26,107 x 4,096 against another 26,107 x 4,096 (float32).

alignkit (:mod:`alignkit._kernels.cka`: feature-space cross-products in float64 by row
blocks, no n x n matrix) against the straightforward numpy implementations:

* CKA: the n x n Gram form (``K = X X^T``, ``L = Y Y^T``, both centred, ``sum(Kc * Lc)``).
  At n = 26,107 each n x n float64 matrix takes 5.5 GB and the form needs at least three,
  so the Gram baseline runs at ``--gram-n`` rows (default 4,000) with alignkit on the same
  rows, and the table says so;
* Procrustes: the plain SVD form at full size (centre, zero-pad, ``U, s, Vt = svd(Xc^T Yc)``,
  ``R = U Vt``, ``||Xc R - Yc||`` on unit-norm copies), in the inputs' dtype.

Timings are the median of ``--repeats`` runs (one run for the full-n linear CKA, the numpy
Procrustes baseline and the 4,096 x 4,096 case at full scale). Memory is
the peak of numpy's allocations during the call (``tracemalloc``: BLAS work buffers and the
inputs themselves are not counted).

Usage::

    python benches/bench_cka.py               # the sizes above (minutes on a busy machine)
    python benches/bench_cka.py --scale small
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np


def gram_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """CKA in the n x n Gram form, as plain numpy."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)

    def centred(K: np.ndarray) -> np.ndarray:
        return K - K.mean(axis=0)[None, :] - K.mean(axis=1)[:, None] + K.mean()

    Kc = centred(X @ X.T)
    Lc = centred(Y @ Y.T)
    return float(np.sum(Kc * Lc) / np.sqrt(np.sum(Kc * Kc) * np.sum(Lc * Lc)))


def numpy_procrustes(X: np.ndarray, Y: np.ndarray) -> float:
    """Unit-norm orthogonal Procrustes distance by the plain SVD form (inputs' dtype)."""
    w = max(X.shape[1], Y.shape[1])
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    if Xc.shape[1] < w:
        Xc = np.pad(Xc, ((0, 0), (0, w - Xc.shape[1])))
    if Yc.shape[1] < w:
        Yc = np.pad(Yc, ((0, 0), (0, w - Yc.shape[1])))
    Xc = Xc / np.linalg.norm(Xc)
    Yc = Yc / np.linalg.norm(Yc)
    U, _, Vt = np.linalg.svd(Xc.T @ Yc)
    return float(np.linalg.norm(Xc @ (U @ Vt) - Yc))


def measure(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(median seconds, peak traced MiB, value)."""
    times = []
    peak = 0
    value = None
    for _ in range(repeats):
        tracemalloc.start()
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(times), peak / 2**20, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=("full", "small"), default="full")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gram-n", type=int, default=4000)
    args = ap.parse_args()
    from alignkit._kernels import cka as k

    n, p, q = 26_107, 4_096, 49
    if args.scale == "small":
        n, p = n // 8, p // 4
    gram_n = min(args.gram_n, n)
    rs = np.random.default_rng(0)
    # features with structure: a shared 49-d signal, mixed into p columns, plus noise
    Z = rs.standard_normal((n, q))
    X64 = Z @ rs.standard_normal((q, p)) + 3.0 * rs.standard_normal((n, p)) + 1.0
    X32 = X64.astype(np.float32)
    Yemb = np.abs(Z + 0.5 * rs.standard_normal((n, q)))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; n = {n}, p = {p}, embedding d = {q}")
    rows: list[tuple[str, ...]] = []

    def row(case: str, what: str, t_ak: float, m_ak: float, t_np: float | None,
            m_np: float | None, v_ak: float, v_np: float | None, reps: int) -> None:
        ratio = f"{t_np / t_ak:.1f}x" if t_np else "-"
        rows.append((case, what, f"{t_ak:.2f}", f"{m_ak:.0f}",
                     f"{t_np:.2f}" if t_np else "-", f"{m_np:.0f}" if m_np else "-", ratio,
                     f"{v_ak:.6f}", f"{v_np:.6f}" if v_np is not None else "-", str(reps)))
        print(" | ".join(rows[-1]), flush=True)

    # 1. features vs an embedding-size representation
    for name, X in (("float32", X32), ("float64", X64)):
        reps = 1 if args.scale == "full" else args.repeats
        t, m, v = measure(lambda X=X: k.linear_cka(X, Yemb), reps)
        row(f"{n} x {p} {name} vs {n} x {q}", "linear CKA (alignkit, full n)", t, m, None,
            None, v, None, reps)
        Xs, Ys = X[:gram_n], Yemb[:gram_n]
        ta, ma, va = measure(lambda Xs=Xs, Ys=Ys: k.linear_cka(Xs, Ys), args.repeats)
        tb, mb, vb = measure(lambda Xs=Xs, Ys=Ys: gram_cka(Xs, Ys), args.repeats)
        row(f"{gram_n} x {p} {name} vs {gram_n} x {q}", "linear CKA vs n x n Gram form",
            ta, ma, tb, mb, va, vb, args.repeats)
        ta, ma, va = measure(lambda X=X: k.shape_distance(X, Yemb, metric="procrustes"),
                             args.repeats)
        tb, mb, vb = measure(lambda X=X: numpy_procrustes(X, Yemb), reps)
        row(f"{n} x {p} {name} vs {n} x {q}", "Procrustes vs numpy SVD form", ta, ma, tb, mb,
            va, vb, reps)

    # 2. features vs features of the same width
    X2 = (Z @ rs.standard_normal((q, p)) + 3.0 * rs.standard_normal((n, p))).astype(np.float32)
    reps = 1 if args.scale == "full" else args.repeats
    ta, ma, va = measure(lambda: k.shape_distance(X32, X2, metric="procrustes"), reps)
    tb, mb, vb = measure(lambda: numpy_procrustes(X32, X2), reps)
    row(f"{n} x {p} float32 vs {n} x {p}", "Procrustes vs numpy SVD form", ta, ma, tb, mb, va,
        vb, reps)
    t, m, v = measure(lambda: k.linear_cka(X32, X2), reps)
    row(f"{n} x {p} float32 vs {n} x {p}", "linear CKA (alignkit, full n)", t, m, None, None,
        v, None, reps)
    Xs, Ys = X32[:gram_n], X2[:gram_n]
    ta, ma, va = measure(lambda: k.linear_cka(Xs, Ys), args.repeats)
    tb, mb, vb = measure(lambda: gram_cka(Xs, Ys), args.repeats)
    row(f"{gram_n} x {p} float32 vs {gram_n} x {p}", "linear CKA vs n x n Gram form", ta, ma,
        tb, mb, va, vb, args.repeats)

    print()
    print("| case | what | alignkit s | alignkit MiB | numpy s | numpy MiB | ratio | "
          "alignkit value | numpy value | repeats |")
    print("|" + "---|" * 10)
    for r in rows:
        print("| " + " | ".join(r) + " |")
    gram_full = 3 * n * n * 8 / 2**30
    print(f"\nThe Gram form at n = {n} would need at least {gram_full:.1f} GiB for its three "
          "n x n float64 matrices; it ran at n = {gram_n}.".replace("{gram_n}", str(gram_n)))


if __name__ == "__main__":
    main()
