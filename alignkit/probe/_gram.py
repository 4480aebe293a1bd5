"""Triplet gather and scatter over a Gram matrix: the core of the fast solver.

For transformed features ``Z`` (n x p) and the Gram matrix ``S = Z Z^T``, the
triplet loss only needs three entries of ``S`` per triplet, and its gradient
with respect to ``S`` is a sparse n x n matrix ``G`` holding, for every
triplet, ``softmax(s) - e_0`` at the triplet's three pairs. Then
``dL/dZ = (G + G^T) Z``: one gather, one scatter, two matmuls, whatever the
number of triplets.

Three backends compute ``(sum of NLL, correct count, G)``:

* ``numba``: two parallel CPU passes (:mod:`alignkit._kernels.probe_grad`):
  gather and per-triplet gradient coefficients into a flat array, then a
  scatter in which every row of ``G`` is owned by one thread, through the
  triplets grouped by their first and second object (a :class:`TripletIndex`,
  built once per triplet set and reused by every evaluation of a fit);
* ``numba-slabs``: the earlier one-pass kernel, every thread scattering into
  its own n x n slab, the slabs then summed (kept as a cross-check);
* ``torch``: vectorised torch indexing with ``index_put_(accumulate=True)``;
  used on GPUs and as the independent cross-check in tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["TripletIndex", "gram_nll", "gram_choices", "GramTripletNLL", "gram_triplet_nll"]

_NUMBA: dict[str, Any] = {}

#: Scatter slabs are only split across threads above this many triplets per slab.
_TRIPLETS_PER_SLAB = 32768
#: Upper bound on the memory (bytes) the per-thread slabs may take together.
_SLAB_BYTES = 1 << 30
#: Below this many triplets the multi-pass kernel runs on one thread: waking
#: the thread pool for a few microseconds of work costs more than it saves.
_SERIAL_BELOW = 65536


def _numba_kernels() -> dict[str, Any]:
    """Import (once, lazily) the Numba kernels; they compile on first call."""
    if not _NUMBA:
        from alignkit._kernels import probe_grad as _numba

        _NUMBA.update(nll_grad=_numba.nll_grad, reduce_slabs=_numba.reduce_slabs,
                      gather3=_numba.gather3, nll_coef=_numba.nll_coef, scatter_rows=_numba.scatter_rows,
                      row_order=_numba.row_order)
    return _NUMBA


class TripletIndex:
    """Triplets grouped for the two-pass gradient kernel (built once per triplet set).

    Attributes:
        triplets: the triplets reordered so that equal first objects are
            contiguous (a stable counting sort; sums over triplets do not depend
            on the order), int64 (N, 3).
        ptr_i: ``triplets[ptr_i[r]:ptr_i[r + 1]]`` have first object ``r``.
        ord_j, ptr_j: ``triplets[ord_j[ptr_j[r]:ptr_j[r + 1]]]`` have second object ``r``.
        n: number of objects.
    """

    def __init__(self, triplets: np.ndarray, n: int) -> None:
        k = _numba_kernels()
        t = np.ascontiguousarray(triplets, dtype=np.int64)
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= n):
            raise ValueError(f"triplet indices must lie in 0..{n - 1}")
        order, self.ptr_i = k["row_order"](np.ascontiguousarray(t[:, 0]), n)
        self.triplets = np.ascontiguousarray(t[order])
        self.ord_j, self.ptr_j = k["row_order"](np.ascontiguousarray(self.triplets[:, 1]), n)
        self.n = int(n)

    def __len__(self) -> int:
        return len(self.triplets)


def _as_index(triplets: np.ndarray | torch.Tensor, device: torch.device) -> Any:
    if isinstance(triplets, torch.Tensor):
        return triplets.to(device=device, dtype=torch.int64)
    return torch.as_tensor(np.asarray(triplets, dtype=np.int64), device=device)


def _n_slabs(n_tri: int, n: int, itemsize: int) -> int:
    import numba

    by_work = max(1, n_tri // _TRIPLETS_PER_SLAB)
    by_mem = max(1, _SLAB_BYTES // max(1, n * n * itemsize))
    return int(max(1, min(numba.get_num_threads(), by_work, by_mem)))


def _numba_slabs_nll(
    S: torch.Tensor, triplets: np.ndarray, want_grad: bool, scale: float
) -> tuple[float, int, torch.Tensor | None]:
    """The one-pass kernel with per-thread slabs (the cross-check of the two-pass one)."""
    k = _numba_kernels()
    s_np = S.detach().numpy()
    t_np = np.ascontiguousarray(triplets, dtype=np.int64)
    n = s_np.shape[0]
    if want_grad:
        n_parts = _n_slabs(len(t_np), n, s_np.itemsize)
        slabs = np.zeros((n_parts, n, n), dtype=s_np.dtype)
    else:
        import numba

        n_parts = int(numba.get_num_threads())
        slabs = np.zeros((1, 1, 1), dtype=s_np.dtype)
    loss, good = k["nll_grad"](s_np, t_np, scale, slabs, want_grad, n_parts)
    if not want_grad:
        return float(loss), int(good), None
    if slabs.shape[0] > 1:
        k["reduce_slabs"](slabs)
    return float(loss), int(good), torch.from_numpy(slabs[0])


def _numba_nll(
    S: torch.Tensor, triplets: np.ndarray | TripletIndex, want_grad: bool, scale: float
) -> tuple[float, int, torch.Tensor | None]:
    """The multi-pass kernel (gather; NLL and coefficients; a row-owned scatter)."""
    import numba

    k = _numba_kernels()
    s_np = S.detach().numpy()
    n = s_np.shape[0]
    n_tri = len(triplets)
    if n_tri < _SERIAL_BELOW and numba.get_num_threads() > 1:
        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return _numba_nll(S, triplets, want_grad, scale)
        finally:
            numba.set_num_threads(before)
    n_parts = int(numba.get_num_threads())
    if want_grad:
        idx = triplets if isinstance(triplets, TripletIndex) else TripletIndex(triplets, n)
        if idx.n != n:
            raise ValueError(f"the triplet index was built for {idx.n} objects, S has {n}")
        t_np = idx.triplets
    else:
        t_np = (triplets.triplets if isinstance(triplets, TripletIndex)
                else np.ascontiguousarray(triplets, dtype=np.int64))
    sims = np.empty((len(t_np), 3), dtype=s_np.dtype)
    k["gather3"](s_np, t_np, sims)
    loss, good = k["nll_coef"](sims, want_grad, n_parts)
    if not want_grad:
        return float(loss), int(good), None
    G = np.empty((n, n), dtype=s_np.dtype)
    k["scatter_rows"](t_np, sims, idx.ptr_i, idx.ord_j, idx.ptr_j, scale, G)
    return float(loss), int(good), torch.from_numpy(G)


def _torch_nll(
    S: torch.Tensor, triplets: torch.Tensor, want_grad: bool, scale: float
) -> tuple[float, int, torch.Tensor | None]:
    i, j, k = triplets[:, 0], triplets[:, 1], triplets[:, 2]
    s = torch.stack((S[i, j], S[i, k], S[j, k]), dim=1).to(torch.float64)
    lse = torch.logsumexp(s, dim=1)
    loss = float((lse - s[:, 0]).sum())
    good = int(((s[:, 0] > s[:, 1]) & (s[:, 0] > s[:, 2])).sum())
    if not want_grad:
        return loss, good, None
    g = torch.exp(s - lse[:, None])
    g[:, 0] -= 1.0
    g = (g * scale).to(S.dtype)
    G = torch.zeros_like(S)
    G.index_put_((i, j), g[:, 0], accumulate=True)
    G.index_put_((i, k), g[:, 1], accumulate=True)
    G.index_put_((j, k), g[:, 2], accumulate=True)
    return loss, good, G


def gram_nll(
    S: torch.Tensor,
    triplets: np.ndarray | torch.Tensor | TripletIndex,
    *,
    want_grad: bool = False,
    scale: float = 1.0,
    backend: str = "auto",
) -> tuple[float, int, torch.Tensor | None]:
    """Sum of triplet NLLs read from a Gram matrix, and optionally its gradient.

    Args:
        S: Gram matrix ``Z Z^T`` (n x n), float32 or float64, on any device.
        triplets: (N, 3) object indices, odd one out last, or a
            :class:`TripletIndex` of them (saves regrouping them at every call).
        want_grad: also return ``G = d(scale * sum NLL) / dS`` (not symmetrised).
        scale: factor applied to the gradient (e.g. ``1 / N`` for a mean).
        backend: ``numba`` (CPU only), ``numba-slabs`` (CPU only, the one-pass
            kernel), ``torch``, or ``auto`` (numba on CPU).

    Returns:
        ``(nll_sum, n_correct, G)``; ``n_correct`` counts triplets whose human
        pair is strictly the most similar (ties count as wrong); ``G`` is None
        without ``want_grad``.
    """
    if backend == "auto":
        backend = "numba" if S.device.type == "cpu" else "torch"
    if backend in ("numba", "numba-slabs"):
        if S.device.type != "cpu":
            raise ValueError(f"the {backend} backend needs a CPU tensor")
        if isinstance(triplets, torch.Tensor):
            triplets = triplets.cpu().numpy()
        if backend == "numba":
            return _numba_nll(S.contiguous(), triplets, want_grad, scale)
        if isinstance(triplets, TripletIndex):
            triplets = triplets.triplets
        return _numba_slabs_nll(S.contiguous(), triplets, want_grad, scale)
    if isinstance(triplets, TripletIndex):
        triplets = triplets.triplets
    return _torch_nll(S, _as_index(triplets, S.device), want_grad, scale)


def gram_choices(S: torch.Tensor, triplets: np.ndarray, ties: str = "paper") -> np.ndarray:
    """Position (0, 1, 2) of the odd one out by the largest pair similarity.

    Uses the shared odd-one-out kernel (:func:`alignkit._kernels.ooo.ooo_choices`).

    Args:
        S: Gram matrix (n x n).
        triplets: (N, 3) object indices.
        ties: a tie rule of :mod:`alignkit._kernels.ties` (``paper``: -1 only where all
            three similarities are equal; ``first``; ``any-tie-wrong``).

    Returns:
        int8 (N,): the position in each row of the object outside the most
        similar pair.
    """
    from alignkit._kernels.ooo import ooo_choices

    s_np = np.ascontiguousarray(S.detach().cpu().numpy())
    return np.asarray(ooo_choices(s_np, np.ascontiguousarray(triplets, dtype=np.int64), ties))


class GramTripletNLL(torch.autograd.Function):
    """Mean triplet NLL of ``Z`` through its Gram matrix, with the exact gradient.

    Forward: ``S = Z Z^T``, gather; backward: ``dZ = (G + G^T) Z``.
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, triplets: Any, backend: str) -> torch.Tensor:  # type: ignore[override]
        n_tri = len(triplets)
        S = z @ z.T
        loss, _, G = gram_nll(
            S, triplets, want_grad=ctx.needs_input_grad[0], scale=1.0 / n_tri, backend=backend
        )
        if G is not None:
            ctx.save_for_backward(z, G)
        return torch.tensor(loss / n_tri, dtype=z.dtype, device=z.device)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, None, None]:  # type: ignore[override]
        z, G = ctx.saved_tensors
        return grad_out * ((G + G.T) @ z), None, None


def gram_triplet_nll(
    z: torch.Tensor, triplets: np.ndarray | torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """Differentiable mean triplet NLL of ``z`` computed over objects (see module doc)."""
    return GramTripletNLL.apply(z, triplets, backend)
