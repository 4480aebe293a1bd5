"""Benchmark: the fast exact probe solver, its unit costs, and the paper's mini-batch step.

Synthetic THINGS-scale triplets (SPoSE-sampled choices) and SPoSE-derived features
(``e @ R + noise``, so that the triplets carry structure a probe can learn).

    python benches/bench_probe.py --scale micro               # unit costs, full dimensions
    python benches/bench_probe.py --grid --scale full         # the paper's grid for one model
    python benches/bench_probe.py --grid --scale small --warm-start none   # iterations, cold
    python benches/bench_probe.py --scale small               # one k = 3 fit, both solvers

``micro`` (a fold's 1.4M training triplets and 170k validation triplets, 1854 x 768):
one fast evaluation (value, gradient and validation NLL) in float32 and float64,
with the multi-pass kernel and the earlier one-pass kernel (``numba-slabs``); one
step of the mini-batch solver's own loop (``_epoch``, no end-of-fit objective, no
validation) and one minimal plain-torch Adam step on the same batch of 256
triplets. It then estimates the paper sweep (80 models x 2 layers) from these
unit costs and the iterations of a grid run (``--iters-per-fit``).

``--grid`` runs :func:`~alignkit.probe.cv.cross_validate` as for one model: 5
lambdas x k in {3, 4} (35 fits; under ``nested`` also the inner split and one
refit on all objects), and prints the wall time and every fit's iterations.

Every run prints ``os.getloadavg()`` at its start: the figures are only as quiet
as the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

SCALES = {"small": (200_000, 1854, 128, 300), "full": (4_700_000, 1854, 768, 600)}
SWEEP_MODELS, SWEEP_LAYERS = 80, 2


def synthetic(n_tri: int, seed: int = 0) -> np.ndarray:
    """SPoSE-sampled triplets (the protocol doc's stand-in for the full THINGS set)."""
    from alignkit.data import synthetic_triplets

    return np.asarray(synthetic_triplets(n=n_tri, seed=seed).array, dtype=np.int64)


def features(n: int, p: int, seed: int = 1) -> np.ndarray:
    """SPoSE 49d mixed into ``p`` dimensions plus noise (structure the probe can learn)."""
    from alignkit.data import load_embedding

    rng = np.random.default_rng(seed)
    e = load_embedding("spose-49d").values
    return e @ rng.normal(size=(e.shape[1], p)) + rng.normal(size=(n, p)) * e.std()


def header(what: str) -> None:
    import numba

    la = os.getloadavg()
    print(f"{what}: load average at start {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} "
          f"({os.cpu_count()} CPUs); torch threads {torch.get_num_threads()}, "
          f"numba threads {numba.get_num_threads()}")


def _median_time(f, reps: int, *a, **kw) -> float:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(*a, **kw)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def minibatch_steps(x: torch.Tensor, t: np.ndarray, steps: int, seed: int = 0) -> tuple[float, float]:
    """Seconds per step: the mini-batch solver's own loop, and a minimal plain-torch Adam step.

    The solver's loop is :func:`alignkit.probe.minibatch._epoch` (Adam, batch 256,
    clipping 1.0, the paper objective) run for ``steps`` steps, without the
    end-of-fit objective or validation of :func:`fit_minibatch`. The plain step
    gathers the batch's rows, forms the three dot products, ``logsumexp``, adds
    ``lam * ||W||_F``, backpropagates, clips and steps, nothing else.
    """
    from alignkit.probe import ObjectiveSpec
    from alignkit.probe._common import initial_params
    from alignkit.probe.estimator import SolverOptions
    from alignkit.probe.minibatch import _epoch
    from alignkit.probe.objectives import paper_loss

    spec = ObjectiveSpec()
    p = x.shape[1]
    gen = torch.Generator().manual_seed(seed)
    params = initial_params(p, spec, generator=gen, dtype=x.dtype, device=x.device)
    opt = torch.optim.Adam(params, lr=1e-3)
    t_all = torch.as_tensor(t)
    o = SolverOptions(solver="minibatch", max_steps=5)
    _epoch(t_all, gen, o, opt, params, lambda b: paper_loss(x, params[0], None, b, spec.lam), 0)
    o = SolverOptions(solver="minibatch", max_steps=steps)
    t0 = time.perf_counter()
    _epoch(t_all, gen, o, opt, params, lambda b: paper_loss(x, params[0], None, b, spec.lam), 0)
    solver_step = (time.perf_counter() - t0) / steps

    w = (torch.randn(p, p, generator=gen, dtype=x.dtype) * 1e-3).requires_grad_(True)
    adam = torch.optim.Adam([w], lr=1e-3)
    perm = torch.randperm(len(t_all), generator=gen)

    def plain(b: torch.Tensor) -> None:
        adam.zero_grad(set_to_none=True)
        zi, zj, zk = (x[b[:, c]] @ w for c in range(3))
        s = torch.stack(((zi * zj).sum(1), (zi * zk).sum(1), (zj * zk).sum(1)), 1)
        loss = (torch.logsumexp(s, 1) - s[:, 0]).mean() + spec.lam * torch.linalg.norm(w)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([w], 1.0)
        adam.step()

    batches = [t_all[perm[i * 256:(i + 1) * 256]] for i in range(steps + 5)]
    for b in batches[:5]:
        plain(b)
    t0 = time.perf_counter()
    for b in batches[5:]:
        plain(b)
    return solver_step, (time.perf_counter() - t0) / steps


def _products(x: torch.Tensor, w: torch.Tensor, G: torch.Tensor) -> None:
    z = x @ w
    _ = z @ z.T
    dz = (G + G.T) @ z
    _ = x.T @ dz


def _parts(x: torch.Tensor, w: torch.Tensor, t: np.ndarray, reps: int) -> None:
    """The two parts of one evaluation: the triplet term and the matrix products."""
    from alignkit.probe._gram import TripletIndex, gram_nll

    z = x @ w
    S = z @ z.T
    idx = TripletIndex(t, len(x))
    for backend, arg in (("numba", idx), ("numba-slabs", idx.triplets)):
        k = _median_time(gram_nll, reps, S, arg, want_grad=True, scale=1.0 / len(t),
                         backend=backend)
        print(f"  triplet term alone (train, with gradient) {backend:12s} {k:.3f} s")
    mm = _median_time(_products, reps, x, w, S)
    print(f"  the matrix products alone (X W, Z Z^T, (G + G^T) Z, X^T dZ) {mm:.3f} s")


def micro(args: argparse.Namespace) -> None:
    """Unit costs at full dimensions, and the paper sweep estimated from them."""
    from alignkit.probe import ObjectiveSpec
    from alignkit.probe._common import initial_params
    from alignkit.probe.fast import FastObjective

    header("micro")
    n, p, n_train, n_val = 1854, 768, 1_400_000, 170_000
    rng = np.random.default_rng(0)
    t = rng.integers(0, n, size=(n_train, 3))
    xs = rng.normal(size=(n, p))
    spec = ObjectiveSpec()
    print(f"n={n} p={p} train={n_train} val={n_val}")
    cost = {}
    for dt in (torch.float32, torch.float64):
        x = torch.tensor(xs, dtype=dt)
        params = initial_params(p, spec, generator=torch.Generator().manual_seed(0),
                                dtype=dt, device=torch.device("cpu"))
        for backend in ("numba", "numba-slabs"):
            obj = FastObjective(x, t, spec, val=t[:n_val], backend=backend)
            obj.value_and_grad(params)  # compile and warm up
            cost[(dt, backend)] = _median_time(obj.value_and_grad, args.reps, params)
            print(f"fast evaluation {str(dt)[6:]:8s} {backend:12s} {cost[(dt, backend)]:.3f} s "
                  f"(median of {args.reps})")
        if dt == torch.float32:
            _parts(x, params[0].detach(), t, args.reps)
    x = torch.tensor(xs, dtype=torch.float32)
    solver_step, plain_step = minibatch_steps(x, t, args.steps)
    per_epoch = -(-n_train // 256)
    fast = cost[(torch.float32, "numba")]
    print(f"minibatch solver step (its own loop, {args.steps} steps, no end-of-fit objective) "
          f"{solver_step * 1e3:.1f} ms; minimal plain-torch Adam step {plain_step * 1e3:.1f} ms")
    print(f"one epoch ({per_epoch} steps) = {solver_step * per_epoch:.0f} s (solver) / "
          f"{plain_step * per_epoch:.0f} s (plain) = "
          f"{solver_step * per_epoch / fast:.0f} / {plain_step * per_epoch / fast:.0f} "
          "fast evaluations")
    # the paper sweep: per model and layer 35 fits over k in {3, 4}; a k = 4 fold trains on
    # (3/4)^3 / (2/3)^3 = 1.42x the triplets of a k = 3 fold (the triplet term scales, the
    # matrix products do not; counted here at the k = 3 cost, a lower bound)
    fits = 5 * (3 + 4)
    evals = args.iters_per_fit * args.evals_per_iter
    fast_grid = fits * evals * fast
    steps_fold = {3: -(-int(4_700_000 * (2 / 3) ** 3) // 256), 4: -(-int(4_700_000 * 0.75 ** 3) // 256)}
    mb_grid = 5 * sum(k * steps_fold[k] for k in (3, 4)) * args.epochs * plain_step
    units = SWEEP_MODELS * SWEEP_LAYERS
    print(f"paper sweep estimate ({SWEEP_MODELS} models x {SWEEP_LAYERS} layers, {fits} fits "
          f"each; fast: {args.iters_per_fit} iterations x {args.evals_per_iter} evaluations a fit "
          f"at {fast:.3f} s; minibatch: {args.epochs} epochs of plain steps at "
          f"{plain_step * 1e3:.1f} ms):")
    print(f"  fast {fast_grid:.0f} s a model-layer, {fast_grid * units / 3600:.1f} h the sweep; "
          f"minibatch {mb_grid:.0f} s a model-layer, {mb_grid * units / 3600:.0f} h the sweep; "
          f"ratio {mb_grid / fast_grid:.0f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


def grid(args: argparse.Namespace) -> None:
    """The paper's grid for one model: 5 lambdas x k in {3, 4}, timed end to end."""
    from alignkit.probe.cv import PAPER_LAMBDAS, cross_validate

    n_tri, n, p, _ = SCALES[args.scale]
    t = synthetic(n_tri)
    feats = features(n, p)
    header(f"grid scale={args.scale}")
    print(f"triplets={n_tri} n={n} p={p} protocol={args.protocol} "
          f"warm_start={args.warm_start or 'default'} dtype=float32 lambdas={PAPER_LAMBDAS} k=(3, 4)")
    t0 = time.perf_counter()
    last = [t0]

    def tick(d: dict) -> None:
        now = time.perf_counter()
        print(f"  fit {d['done']}/{d['total']} (config {d['config']}, fold {d['fold']}) "
              f"{now - last[0]:.1f} s", flush=True)
        last[0] = now

    res = cross_validate(feats, t, lambdas=PAPER_LAMBDAS, folds=(3, 4), protocol=args.protocol,
                         warm_start=args.warm_start, progress=tick)
    wall = time.perf_counter() - t0
    grid_runs = [r for r in res.runs if r.fold >= 0]
    it = [r.steps for r in grid_runs]
    for s in res.summaries:
        rs = [r for r in grid_runs if r.config == res.summaries.index(s)]
        print(f"  {s.label:22s} selection NLL {s.selection_nll:.4f} acc {s.acc_mean:.4f} "
              f"iterations {[r.steps for r in rs]}{' (chosen)' if s.chosen else ''}"
              f"{'' if s.eligible else ' discarded: ' + str(s.discarded)}")
    refit = [r.steps for r in res.runs if r.fold < 0]
    print(f"grid: {len(grid_runs)} fits, {sum(it)} L-BFGS iterations (mean {np.mean(it):.1f}; "
          f"refit {refit}), warm_start={res.settings['warm_start']}; wall {wall:.1f} s; "
          f"chosen {res.summaries[res.chosen].label}; probing accuracy {res.probing_accuracy:.4f}")
    la = os.getloadavg()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average at end {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; peak RSS {peak:.0f} MiB")


def one_fit(args: argparse.Namespace) -> None:
    """One k = 3 cross-validated fit, fast solver to its early stop; mini-batch steps timed."""
    from alignkit.probe import ObjectiveSpec, fit_fast, fold_splits

    n_tri, n, p, steps = SCALES[args.scale]
    t = synthetic(n_tri)
    feats = features(n, p)
    x = torch.tensor((feats - feats.mean()) / feats.std(), dtype=torch.float32)
    header(f"scale={args.scale}")
    print(f"triplets={n_tri} n={n} p={p} lambda={args.lam}")
    spec = ObjectiveSpec(lam=args.lam)
    fast_s = mb_s = 0.0
    splits = fold_splits(t, n, 3)[: args.folds_run]
    for f, (tr, te) in enumerate(splits):
        t0 = time.perf_counter()
        rf = fit_fast(x, t[tr], spec, val=t[te], generator=torch.Generator().manual_seed(f))
        fast_s += time.perf_counter() - t0
        solver_step, plain_step = minibatch_steps(x, t[tr], steps, seed=f)
        per_epoch = -(-len(tr) // 256)
        mb_s += plain_step * per_epoch * args.epochs
        print(f"fold {f + 1}: train={len(tr)} test={len(te)} fast {rf.steps} iterations "
              f"val_nll={rf.val_nll:.4f} | minibatch step {solver_step * 1e3:.1f} ms (solver loop) "
              f"{plain_step * 1e3:.1f} ms (plain torch); {per_epoch} steps/epoch")
    if args.folds_run < 3:
        fast_s, mb_s = fast_s * 3 / args.folds_run, mb_s * 3 / args.folds_run
        print(f"(timed on {args.folds_run} of 3 folds; totals EXTRAPOLATED to 3)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"fast: {fast_s:.1f} s for 3 folds; minibatch ({args.epochs} epochs of plain steps, "
          f"extrapolated): {mb_s:.0f} s; ratio {mb_s / fast_s:.0f}x; peak RSS {peak:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", choices=[*SCALES, "micro"], default="small")
    ap.add_argument("--grid", action="store_true", help="the one-model grid (5 lambdas x k 3, 4)")
    ap.add_argument("--protocol", choices=["nested", "paper"], default="nested")
    ap.add_argument("--warm-start", choices=["none", "lambda"], default=None)
    ap.add_argument("--lam", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=30, help="epochs assumed for minibatch")
    ap.add_argument("--steps", type=int, default=200, help="minibatch steps timed (micro)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per timing (micro)")
    ap.add_argument("--iters-per-fit", type=float, default=40.0,
                    help="micro: L-BFGS iterations per fit assumed for the sweep estimate")
    ap.add_argument("--evals-per-iter", type=float, default=1.1,
                    help="micro: evaluations per L-BFGS iteration assumed (line search)")
    ap.add_argument("--folds-run", type=int, default=3, choices=(1, 2, 3),
                    help="time only the first folds and extrapolate both solvers to 3 (said so)")
    args = ap.parse_args()
    if args.scale == "micro":
        micro(args)
    elif args.grid:
        grid(args)
    else:
        one_fit(args)


if __name__ == "__main__":
    main()
