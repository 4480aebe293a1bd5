"""Every CUDA kernel compiles to PTX for sm_80 and sm_90, without a GPU.

``numba.cuda.compile_ptx`` needs only NVVM (shipped with the CUDA wheels). Device functions
called from a kernel are compiled through their dispatcher, which asks the current device
for its compute capability; without a GPU the test answers with the target's.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

cuda = pytest.importorskip("numba.cuda")
from numba import config  # noqa: E402
from numba import types as nt  # noqa: E402

if config.ENABLE_CUDASIM:  # pragma: no cover
    pytest.skip("PTX cannot be generated under the CUDA simulator", allow_module_level=True)


def _nvvm_missing() -> str | None:
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
    except Exception as exc:  # noqa: BLE001 - any failure to load NVVM means "missing"
        return f"NVVM is not available: {exc}"
    return None


pytestmark = pytest.mark.skipif(_nvvm_missing() is not None, reason=str(_nvvm_missing()))

CCS = [(8, 0), (9, 0)]
I32, I64, U64, F64 = nt.int32, nt.int64, nt.uint64, nt.float64


def _signatures(bits: int) -> dict[str, list[tuple[Any, ...]]]:
    n = I32 if bits == 32 else I64
    sigs: dict[str, list[tuple[Any, ...]]] = {
        "ooo_counts_gram": [],
        "ooo_choices_gram": [],
        "nll_gram": [],
        "logprobs_gram": [],
        "ooo_direct": [],
    }
    for fdt in (nt.float32, nt.float64):
        for idt in (nt.int32, nt.int64):
            S, T = fdt[:, ::1], idt[:, ::1]
            sigs["ooo_counts_gram"].append((S, T, n, I64, I64[::1]))
            sigs["ooo_choices_gram"].append((S, T, n, I64, nt.int8[::1]))
            sigs["nll_gram"].append((S, T, n, F64, F64[::1]))
            sigs["logprobs_gram"].append((S, T, n, F64, F64[:, ::1]))
            sigs["ooo_direct"].append((S, F64[::1], T, n, I64, I64, nt.int8[::1], I64[::1]))
    sigs["bootstrap_counts"] = [(nt.uint32[::1], n, I64, I64, I64, U64, U64[::1])]
    sigs["sums2"] = [(F64[::1], F64[::1], n, F64[:, ::1])]
    sigs["moments"] = [(F64[::1], F64[::1], n, F64, F64, F64[:, ::1])]
    return sigs


@pytest.fixture
def fake_device(monkeypatch: pytest.MonkeyPatch) -> Any:
    import numba.cuda.dispatcher as dispatcher

    def use(cc: tuple[int, int]) -> None:
        monkeypatch.setattr(
            dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=cc)
        )

    return use


def _compile(func: Any, sig: tuple[Any, ...], cc: tuple[int, int]) -> str:
    ptx, _ = cuda.compile_ptx(func.py_func, sig, cc=cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert ".entry" in ptx
    return ptx


@pytest.mark.slow
@pytest.mark.parametrize("cc", CCS, ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
def test_kernels_compile_main_signatures(fake_device: Any, cc: tuple[int, int]) -> None:
    """int32-indexed family: every kernel, float32/float64 S x int32/int64 triplets."""
    from alignkit._kernels import _cuda_kernels as K

    fake_device(cc)
    family = K.kernels(32)
    for name, sigs in _signatures(32).items():
        for sig in sigs:
            _compile(getattr(family, name), sig, cc)


@pytest.mark.slow
def test_int64_family_compiles(fake_device: Any) -> None:
    """int64-indexed family (more than 2**31 items): one signature per kernel, sm_90."""
    from alignkit._kernels import _cuda_kernels as K

    fake_device((9, 0))
    family = K.kernels(64)
    for name, sigs in _signatures(64).items():
        ptx = _compile(getattr(family, name), sigs[-1], (9, 0))
        assert ptx


@pytest.mark.parametrize("cc", CCS, ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
def test_permutation_kernels_compile(fake_device: Any, cc: tuple[int, int]) -> None:
    from alignkit._kernels import _cuda_kernels as K

    fake_device(cc)
    base = (F64[::1], F64[::1], I64, I64, U64, F64, F64[::1])
    ptx = _compile(K.perm_null_shared, base, cc)
    # the permutation lives in shared memory: 4096 int32
    assert re.search(r"\.shared \.align \d+ \.b8 \S+\[16384\]", ptx)
    _compile(K.perm_null_global, (*base, nt.int32[:, ::1]), cc)


def test_direct_kernel_never_fuses_products(fake_device: Any) -> None:
    """The direct path must round each product on its own, as the CPU does (no FMA)."""
    from alignkit._kernels import _cuda_kernels as K

    fake_device((9, 0))
    sig = (nt.float32[:, ::1], F64[::1], nt.int32[:, ::1], I32, I64, I64, nt.int8[::1], I64[::1])
    ptx = _compile(K.kernels(32).ooo_direct, sig, (9, 0))
    assert "mul.rn.f64" in ptx
    assert "fma.rn.f64" not in ptx
