"""The CUDA kernels checked under Numba's CUDA simulator, in a subprocess.

``NUMBA_ENABLE_CUDASIM`` must be set before Numba is first imported, so the checks
(``tests/_cuda_sim_checks.py``) run in a fresh interpreter; this test asserts that it exits 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "_cuda_sim_checks.py"


@pytest.mark.slow
def test_cuda_kernels_match_numpy_and_cpu_under_simulator(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    env.setdefault("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    env["PYTHONWARNINGS"] = "ignore::RuntimeWarning"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    for name in ("check_bootstrap", "check_correlation", "check_gram", "check_direct"):
        assert f"{name}: ok" in proc.stdout
    # the direct check iterated the whole similarity registry, on both feature cases
    from alignkit._kernels.similarity import SIMILARITIES

    for label in ("int", "float"):
        assert f"similarities checked ({label}): {','.join(SIMILARITIES)}" in proc.stdout


def test_resolve_device_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from alignkit._kernels import device
    from alignkit.errors import DeviceError, InputError

    monkeypatch.setattr(device, "gpu_available", lambda: False)
    assert device.resolve_device("cpu") == "cpu"
    assert device.resolve_device("AUTO") == "cpu"
    with pytest.raises(DeviceError, match="--device cuda: no CUDA GPU is available"):
        device.resolve_device("cuda")
    with pytest.raises(InputError, match="--device 'tpu'"):
        device.resolve_device("tpu")


def test_resolve_device_with_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from alignkit._kernels import device

    monkeypatch.setattr(device, "gpu_available", lambda: True)
    monkeypatch.setattr(device, "simulator_enabled", lambda: False)
    assert device.resolve_device("auto") == "cuda"
    assert device.resolve_device("cuda") == "cuda"
    assert device.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(device, "simulator_enabled", lambda: True)
    assert device.resolve_device("auto") == "cpu"
    assert device.resolve_device("auto", allow_simulator=True) == "cuda"


def test_host_validation_needs_no_gpu() -> None:
    """Bad arguments are refused on the host, before any device is touched."""
    import numpy as np

    from alignkit._kernels import cuda as kc

    S = np.eye(4)
    T = np.array([[0, 1, 2]], dtype=np.int32)
    with pytest.raises(ValueError, match="unknown tie rule"):
        kc.ooo_counts_cuda(S, T, "random")
    with pytest.raises(ValueError, match="unknown similarity"):
        kc.ooo_counts_direct_cuda(S, T, "manhattan")
    with pytest.raises(ValueError, match="temperature must be finite"):
        kc.triplet_nll_cuda(S, T, float("inf"))
    with pytest.raises(ValueError, match="1-D"):
        kc.bootstrap_means_cuda(np.ones((2, 2), np.uint8), 3, 0)
    with pytest.raises(ValueError, match="seed"):
        kc.bootstrap_means_cuda(np.ones(3, np.uint8), 3, -1)
    with pytest.raises(ValueError, match="need 6 entries"):
        kc.rsa_permutation_ranks_cuda(np.arange(6.0), np.arange(5.0), 4, 10, 0)
    with pytest.raises(ValueError, match="different lengths"):
        kc.pearson_cuda(np.arange(3.0), np.arange(4.0))


def test_bit_packing_and_seed_hash_match_references() -> None:
    import numpy as np

    from alignkit._kernels import _cuda_kernels as K
    from alignkit._kernels import _rng
    from alignkit._kernels import cuda as kc

    rng = np.random.default_rng(5)
    for n in (1, 31, 32, 33, 1000):
        correct = (rng.random(n) < 0.5).astype(np.uint8)
        words = kc._pack_bits32(correct)
        assert words.dtype == np.uint32 and words.size >= -(-n // 32)
        bits = (words[np.arange(n) >> 5] >> (np.arange(n) & 31).astype(np.uint32)) & 1
        assert np.array_equal(bits, correct)
    for seed in (0, 1, 2**63, 2**64 - 1):
        assert int(K.seed_hash_host(seed)) == int(_rng.splitmix64(np.uint64(seed)))
