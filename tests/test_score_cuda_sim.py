"""The score API on ``device="cuda"`` equals the CPU path (under Numba's CUDA simulator)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from alignkit.score import odd_one_out, rsa, model_rdm

    rng = np.random.default_rng(0)
    X = rng.integers(-2, 3, size=(30, 4)).astype(np.float32)
    T = np.array([rng.choice(30, 3, replace=False) for _ in range(700)], dtype=np.int32)
    for ties in ("paper", "first", "any-tie-wrong"):
        for budget in (1 << 30, 0):  # Gram and direct paths
            c = odd_one_out(X, T, similarity="dot", ties=ties, bootstrap=20, seed=3,
                            per_triplet=True, device="cpu", memory_budget=budget)
            g = odd_one_out(X, T, similarity="dot", ties=ties, bootstrap=20, seed=3,
                            per_triplet=True, device="cuda", memory_budget=budget)
            assert g.device == "cuda" and c.device == "cpu"
            assert (c.n_correct, c.n_ties2, c.n_ties3) == (g.n_correct, g.n_ties2, g.n_ties3)
            assert np.array_equal(c.choices, g.choices)
            assert (c.ci_low, c.ci_high) == (g.ci_low, g.ci_high)
    A = model_rdm(rng.normal(size=(12, 3)), "euclidean")
    B = model_rdm(rng.normal(size=(12, 3)), "euclidean")
    rc = rsa(A, B, permutations=30, seed=5, device="cpu")
    rg = rsa(A, B, permutations=30, seed=5, device="cuda")
    assert np.allclose(rc.null, rg.null, atol=1e-12) and rc.p_value == rg.p_value
    print("ok")
    """
)


def test_score_on_simulated_cuda_matches_cpu(tmp_path):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
