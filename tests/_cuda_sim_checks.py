"""Checks of every CUDA kernel under Numba's CUDA simulator (run by ``test_cuda_sim.py``).

Run as a script in a fresh interpreter with ``NUMBA_ENABLE_CUDASIM=1`` set before Numba is
imported. Each check compares a CUDA host function with a plain numpy reference and with
the CPU kernel it twins; any mismatch raises ``AssertionError`` (non-zero exit status).
Sizes are small: every simulated thread is a Python thread.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":  # pragma: no cover - guarded by the test
    sys.exit("run with NUMBA_ENABLE_CUDASIM=1")

# Every simulated GPU thread is a Python thread. Do not shorten the interpreter's switch
# interval to speed this up: the simulator swaps per-thread state in shared module globals,
# and frequent preemption corrupts it (seen as wrong counts and impossible indices).
# the simulator runs the uint64 RNG arithmetic on numpy scalars, which warn on wrap-around
warnings.filterwarnings("ignore", message="overflow encountered", category=RuntimeWarning)

from numba import config  # noqa: E402

assert config.ENABLE_CUDASIM, "the CUDA simulator is not active"

from naive import MASK, G  # noqa: E402
from naive import splitmix64 as ref_splitmix64  # noqa: E402
from naive import splitmix64_vec as ref_splitmix64_vec  # noqa: E402
from naive import stream_key as ref_stream_key  # noqa: E402

from alignkit._kernels import bootstrap, ooo, rank, rsa, similarity  # noqa: E402
from alignkit._kernels import cuda as kc  # noqa: E402
from alignkit._kernels.device import resolve_device  # noqa: E402

# --------------------------------------------------------------------------- references


def ref_bootstrap_means(correct: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    N = correct.shape[0]
    out = np.empty(n_boot)
    i = np.arange(N, dtype=np.uint64)
    for b in range(n_boot):
        key = np.uint64(ref_stream_key(seed, b))
        with np.errstate(over="ignore"):
            u = ref_splitmix64_vec(key + i * np.uint64(G))
        idx = ((u >> np.uint64(32)) * np.uint64(N)) >> np.uint64(32)
        out[b] = correct[idx.astype(np.int64)].sum() / N
    return out


def ref_permutation(seed: int, p: int, m: int) -> np.ndarray:
    key = ref_stream_key(seed, p)
    perm = np.arange(m)
    for t in range(m - 1, 0, -1):
        u = ref_splitmix64((key + t * G) & MASK)
        j = ((u >> 32) * (t + 1)) >> 32
        perm[t], perm[j] = perm[j], perm[t]
    return perm


import naive  # noqa: E402
from naive import choices as ref_choices  # noqa: E402
from naive import tie_counts as ref_tie_counts  # noqa: E402


def ref_logprobs(sims: np.ndarray, temp: float) -> np.ndarray:
    z = temp * sims
    m = z.max(axis=1, keepdims=True)
    return z - (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))


def random_triplets(rng: np.random.Generator, n_obj: int, N: int, dtype: type) -> np.ndarray:
    T = np.empty((N, 3), dtype=np.int64)
    for r in range(N):
        T[r] = rng.choice(n_obj, size=3, replace=False)
    return T.astype(dtype)


# --------------------------------------------------------------------------- checks


def check_rng_and_device() -> None:
    for seed in (0, 1, 2**64 - 1, 12345):
        assert int(kc._K.seed_hash_host(seed)) == ref_splitmix64(seed)
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == "cpu", "auto must not pick the simulator unasked"
    assert resolve_device("auto", allow_simulator=True) == "cuda"
    assert resolve_device("cuda") == "cuda"


def check_gram(rng: np.random.Generator) -> None:
    n_obj = 40
    # integer features with duplicated rows: exact ties of every kind
    X = rng.integers(-2, 3, size=(n_obj, 5)).astype(np.float64)
    X[4] = X[5] = X[6] = rng.integers(1, 3, size=5)  # three identical rows
    for N, dtype in ((0, np.int32), (1, np.int64), (2500, np.int16), (1601, np.int32)):
        T = random_triplets(rng, n_obj, N, dtype)
        if N > 100:
            T[:50] = np.array([4, 5, 6], dtype=dtype)  # a three-way tie
            T[50:100] = np.array([6, 9, 4], dtype=dtype)  # s_ij == s_jk
        for S in (similarity.gram(X, "dot"), similarity.gram(X, "cosine").astype(np.float32)):
            S64 = S.astype(np.float64)
            t = T.astype(np.int64)
            sims = np.stack(
                [S64[t[:, 0], t[:, 1]], S64[t[:, 0], t[:, 2]], S64[t[:, 1], t[:, 2]]], 1
            )
            for ties in ("paper", "first", "any-tie-wrong"):
                want = ref_choices(sims, ties)
                got = kc.ooo_choices_cuda(S, T, ties)
                assert got.dtype == np.int8 and np.array_equal(got, want), (N, ties)
                assert np.array_equal(got, ooo.ooo_choices(S, T, ties))
                n2, n3 = ref_tie_counts(sims)
                counts = kc.ooo_counts_cuda(S, T, ties)
                assert counts == (int((want == 2).sum()), n2, n3), (counts, N, ties)
                assert counts == ooo.ooo_counts(S, T, ties)
                if N > 100:
                    assert n3 >= 50 and n2 > 0
            if N < 2000 or S.dtype != np.float64:
                continue
            for temp in (0.37, 1e150):  # 1e150: huge logits stay finite
                lp = kc.choice_logprobs_cuda(S, T, temp)
                assert np.isfinite(lp).all()
                np.testing.assert_allclose(
                    lp, ooo.choice_logprobs(S, T, temp), rtol=1e-13, atol=1e-13
                )
                if temp < 1e3:
                    np.testing.assert_allclose(lp, ref_logprobs(sims, temp), rtol=1e-12, atol=1e-12)
                nll = kc.triplet_nll_cuda(S, T, temp)
                np.testing.assert_allclose(nll, ooo.triplet_nll(S, T, temp), rtol=1e-12)
                np.testing.assert_allclose(nll, -lp[:, 0].mean(), rtol=1e-12)
    assert np.isnan(kc.triplet_nll_cuda(similarity.gram(X), np.empty((0, 3), np.int32)))


def check_direct(rng: np.random.Generator) -> None:
    n_obj = 24
    cases = {
        # integer features (exact ties, a zero row, a constant row) and p not a multiple of 8
        "int": rng.integers(-2, 3, size=(n_obj, 11)).astype(np.float32),
        # random float features, p a multiple of 8 plus a tail
        "float": rng.standard_normal((n_obj, 19)),
    }
    cases["int"][3] = 0.0
    cases["int"][8] = 2.0
    cases["int"][10] = cases["int"][9]
    N = 161
    n_ties = 0
    for label, X in cases.items():
        T = random_triplets(rng, n_obj, N, np.int64 if label == "int" else np.int32)
        T[:20] = np.array([1, 9, 10])  # identical rows 9 and 10: s_ij == s_ik
        T[20:30] = np.array([3, 1, 2])  # the zero row: s_ij == s_ik (dot, cosine)
        # every registered similarity: the CUDA direct and Gram paths equal the CPU's
        # bit for bit, and the naive reference wherever rounding cannot reorder a row
        checked = []
        for name in similarity.SIMILARITIES:
            ref = naive.triplet_sims(X, T, name)
            cpu_sims = similarity.triplet_sims_direct(X, T, name)
            np.testing.assert_allclose(cpu_sims, ref, rtol=1e-12, atol=1e-12)
            ok = naive.decided(ref)
            ok[:30] = True  # built from identical and zero rows: exact everywhere
            S = similarity.gram(X, name)
            for ties in ("paper", "first", "any-tie-wrong") if label == "int" else ("paper",):
                want = ref_choices(ref, ties)
                counts, choices = kc._direct(X, T, name, ties, want_choices=True)
                assert np.array_equal(choices, ooo.ooo_choices(cpu_sims, None, ties)), (label, name)
                assert tuple(counts) == ooo.ooo_counts(cpu_sims, None, ties), (label, name)
                assert np.array_equal(choices[ok], want[ok]), (label, name, ties)
                if ties == "paper":
                    gram_choices = kc.ooo_choices_cuda(S, T, ties)
                    assert np.array_equal(gram_choices, ooo.ooo_choices(S, T, ties)), (label, name)
                    assert np.array_equal(gram_choices[ok], want[ok]), (label, name)
            if label == "int":
                n_ties += sum(ooo.ooo_counts(cpu_sims, None, "paper")[1:])
            checked.append(name)
        print(f"similarities checked ({label}): {','.join(checked)}", flush=True)
    assert n_ties >= 20, n_ties
    X = cases["float"]
    # inputs already on the device are used in place
    from numba import cuda

    T = random_triplets(rng, n_obj, 40, np.int32)
    for name in ("dot", "cosine"):
        want = ooo.ooo_counts(similarity.triplet_sims_direct(X, T, name), None, "paper")
        assert kc.ooo_counts_direct_cuda(cuda.to_device(X), cuda.to_device(T), name) == want
    S = similarity.gram(X, "cosine")
    assert kc.ooo_counts_cuda(cuda.to_device(S), cuda.to_device(T)) == ooo.ooo_counts(S, T)
    T0 = np.empty((0, 3), np.int32)
    assert kc.ooo_counts_direct_cuda(X, T0, "cosine") == (0, 0, 0)
    assert kc.ooo_choices_direct_cuda(X, T0, "dot").shape == (0,)


def check_bootstrap(rng: np.random.Generator) -> None:
    for N, n_boot, seed in ((1, 3, 0), (777, 5, 42), (2049, 4, 2**64 - 1)):
        correct = (rng.random(N) < 0.6).astype(np.uint8)
        got = kc.bootstrap_means_cuda(correct, n_boot, seed)
        want = ref_bootstrap_means(correct, n_boot, seed)
        assert np.array_equal(got, want), (N, got, want)
        assert np.array_equal(got, bootstrap.bootstrap_means(correct, n_boot, seed))
    assert np.isnan(kc.bootstrap_means_cuda(np.zeros(0, np.uint8), 2, 0)).all()
    assert kc.bootstrap_means_cuda(np.ones(5, np.uint8), 0, 0).shape == (0,)


def check_correlation(rng: np.random.Generator) -> None:
    for n in (2, 999, 1500):
        a = rng.standard_normal(n)
        b = np.round(a + rng.standard_normal(n), 1)
        r = kc.pearson_cuda(a, b)
        np.testing.assert_allclose(r, np.corrcoef(a, b)[0, 1], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r, rank.pearson(a, b), rtol=1e-12, atol=1e-15)
    assert np.isnan(kc.pearson_cuda(np.ones(10), np.arange(10.0)))

    for m, n_perm in ((7, 9), (40, 12)):
        npairs = m * (m - 1) // 2
        da = rng.standard_normal(npairs)
        db = np.round(rng.standard_normal(npairs), 1)  # ties in the ranks
        ra, rb = rank.rank_pair(da, db)
        seed = 7
        null = kc.rsa_permutation_ranks_cuda(ra, rb, m, n_perm, seed)
        iu = np.triu_indices(m, k=1)
        square = np.zeros((m, m))
        square[iu] = rb
        square = square + square.T
        want = np.array(
            [
                np.corrcoef(ra, square[np.ix_(perm, perm)][iu])[0, 1]
                for perm in (ref_permutation(seed, p, m) for p in range(n_perm))
            ]
        )
        np.testing.assert_allclose(null, want, rtol=1e-12, atol=1e-14)
        _obs, cpu_null = rsa.rsa_permutation(da, db, n_perm, seed, method="spearman")
        np.testing.assert_allclose(null, cpu_null, rtol=1e-12, atol=1e-14)
    assert kc.rsa_permutation_ranks_cuda(ra, rb, m, 0, 1).shape == (0,)


def check_global_permutation_path(rng: np.random.Generator) -> None:
    """The global-scratch variant (used above ``PERM_SHARED_MAX`` stimuli) on a small case."""
    from numba import cuda

    from alignkit._kernels import _cuda_kernels as K

    m, n_perm, seed = 9, 5, 3
    a = rng.standard_normal(m * (m - 1) // 2)
    b = rng.standard_normal(m * (m - 1) // 2)
    ac, bc = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((ac @ ac) * (bc @ bc)))
    grid = 2
    null = cuda.device_array(n_perm, dtype=np.float64)
    scratch = cuda.device_array((grid, m), dtype=np.int32)
    K.perm_null_global[grid, 32](
        cuda.to_device(ac),
        cuda.to_device(bc),
        np.int64(m),
        np.int64(n_perm),
        K.seed_hash_host(seed),
        denom,
        null,
        scratch,
    )
    np.testing.assert_allclose(
        null.copy_to_host(), kc.rsa_permutation_ranks_cuda(a, b, m, n_perm, seed), rtol=1e-13
    )


def main() -> int:
    rng = np.random.default_rng(20231)
    only = set(sys.argv[1:])
    for check in (
        check_rng_and_device,
        check_bootstrap,
        check_correlation,
        check_global_permutation_path,
        check_gram,
        check_direct,
    ):
        if only and check.__name__ not in only:
            continue
        t0 = time.perf_counter()
        check(rng) if check is not check_rng_and_device else check()
        print(f"{check.__name__}: ok ({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
