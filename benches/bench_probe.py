"""Benchmark: one cross-validated probe fit (k = 3, one lambda), minibatch vs fast.

Synthetic THINGS-scale triplets (SPoSE-sampled choices) and random features
(n x p). The mini-batch solver (the paper's way) is timed on a fraction of an
epoch and extrapolated to the epochs it needs (stated in the output); the fast
solver runs to its early stop. Both report the validation NLL they reach.

    python benches/bench_probe.py --scale small     # quick
    python benches/bench_probe.py --scale full      # 4.7M triplets, 1854 x 768
    python benches/bench_probe.py --scale micro     # full dimensions, cost per unit only

``micro`` times, at full dimensions (a fold's 1.4M training triplets, p = 768),
one evaluation of the fast objective (value and gradient, plus the validation
NLL) against one mini-batch step, and extrapolates the latter to an epoch.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from alignkit.probe import ObjectiveSpec, fit_fast, fit_minibatch, fold_splits

SCALES = {"small": (200_000, 1854, 128, 300), "full": (4_700_000, 1854, 768, 600)}


def synthetic(n_tri: int, seed: int = 0) -> np.ndarray:
    """SPoSE-sampled triplets (the protocol doc's stand-in for the full THINGS set)."""
    from alignkit.data import synthetic_triplets

    return np.asarray(synthetic_triplets(n=n_tri, seed=seed).array, dtype=np.int64)


def micro(seed: int = 0) -> None:
    """Cost of one fast evaluation against one paper mini-batch step, full dimensions."""
    from alignkit.probe._common import initial_params
    from alignkit.probe.fast import FastObjective
    from alignkit.probe.objectives import paper_loss

    n, p, n_train, n_val = 1854, 768, 1_400_000, 170_000
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, p)), dtype=torch.float32)
    t = rng.integers(0, n, size=(n_train, 3))
    spec = ObjectiveSpec()
    params = initial_params(p, spec, generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float32, device=torch.device("cpu"))
    obj = FastObjective(x, t, spec, val=t[:n_val])
    obj.value_and_grad(params)  # compile and warm up
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        obj.value_and_grad(params)
        ts.append(time.perf_counter() - t0)
    fast = float(np.median(ts))
    opt = torch.optim.Adam(params, lr=1e-3)
    tt = torch.as_tensor(t)
    ts = []
    for i in range(35):
        batch = tt[i * 256 : (i + 1) * 256]
        t0 = time.perf_counter()
        opt.zero_grad()
        paper_loss(x, params[0], None, batch, spec.lam).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if i >= 5:
            ts.append(time.perf_counter() - t0)
    step = float(np.median(ts))
    per_epoch = -(-n_train // 256)
    print(f"micro: n={n} p={p} train={n_train} val={n_val} threads={torch.get_num_threads()}")
    print(f"fast: one evaluation (loss, gradient, validation NLL) {fast:.3f} s")
    print(f"minibatch: one step {step * 1e3:.1f} ms; one epoch ({per_epoch} steps, "
          f"extrapolated) {step * per_epoch:.0f} s = {step * per_epoch / fast:.0f} fast evaluations")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", choices=[*SCALES, "micro"], default="small")
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=30, help="epochs assumed for minibatch")
    ap.add_argument("--folds-run", type=int, default=3, choices=(1, 2, 3),
                    help="time only the first folds and extrapolate both solvers to 3 (said so)")
    args = ap.parse_args()
    if args.scale == "micro":
        micro()
        return
    n_tri, n, p, steps = SCALES[args.scale]
    t = synthetic(n_tri)
    from alignkit.data import load_embedding

    rng = np.random.default_rng(1)
    e = load_embedding("spose-49d").values  # features that carry the triplets' structure
    feats = e @ rng.normal(size=(e.shape[1], p)) + rng.normal(size=(n, p)) * e.std()
    x = torch.tensor((feats - feats.mean()) / feats.std(), dtype=torch.float32)
    spec = ObjectiveSpec(lam=args.lam)
    splits = fold_splits(t, n, 3)
    print(f"scale={args.scale} triplets={n_tri} n={n} p={p} threads={torch.get_num_threads()}")
    fast_s = mb_s = 0.0
    for f, (tr, te) in enumerate(splits[: args.folds_run]):
        g = torch.Generator().manual_seed(f)
        t0 = time.perf_counter()
        rf = fit_fast(x, t[tr], spec, val=t[te], generator=g)
        fast_s += time.perf_counter() - t0
        g = torch.Generator().manual_seed(f)
        t0 = time.perf_counter()
        rm = fit_minibatch(x, t[tr], spec, val=t[te], generator=g, max_steps=steps,
                           min_epochs=1, max_epochs=1)
        dt = time.perf_counter() - t0
        steps_per_epoch = -(-len(tr) // 256)
        mb_s += dt / steps * steps_per_epoch * args.epochs
        print(f"fold {f + 1}: train={len(tr)} test={len(te)} fast {rf.steps} it val_nll="
              f"{rf.val_nll:.4f} | minibatch {steps} steps in {dt:.2f}s "
              f"(val_nll after them {rm.val_nll:.4f}; {steps_per_epoch} steps/epoch)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.folds_run < 3:
        scale = 3 / args.folds_run
        fast_s, mb_s = fast_s * scale, mb_s * scale
        print(f"(both solvers timed on {args.folds_run} of 3 folds; totals EXTRAPOLATED to 3)")
    print(f"fast: {fast_s:.1f} s for 3 folds; minibatch (extrapolated, {args.epochs} epochs): "
          f"{mb_s:.0f} s; ratio {mb_s / fast_s:.0f}x; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
