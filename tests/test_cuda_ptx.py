"""Every CUDA kernel compiles to PTX for sm_80 and sm_90, without a GPU, and the PTX holds
what the CPU twin's definitions promise.

``numba.cuda.compile_ptx`` needs only NVVM (shipped with the CUDA wheels). Device functions
called from a kernel are compiled through their dispatcher, which asks the current device
for its compute capability; without a GPU the test answers with the target's.

Optimised PTX inlines every device function; compiled with ``opt=False`` each stays a
``.func`` whose mangled name carries the module and name of its Python source, which shows
that the tie rules, the tally, the pair functions and the RNG are the CPU modules' own.
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
SIMILARITY_NAMES = ("dot", "cosine", "euclidean", "correlation")


def _signatures(bits: int) -> dict[str, list[tuple[Any, ...]]]:
    n = I32 if bits == 32 else I64
    sigs: dict[str, list[tuple[Any, ...]]] = {
        "ooo_counts_gram": [],
        "ooo_choices_gram": [],
        "nll_gram": [],
        "logprobs_gram": [],
    }
    for fdt in (nt.float32, nt.float64):
        for idt in (nt.int32, nt.int64):
            S, T = fdt[:, ::1], idt[:, ::1]
            sigs["ooo_counts_gram"].append((S, T, n, I64, I64[::1]))
            sigs["ooo_choices_gram"].append((S, T, n, I64, nt.int8[::1]))
            sigs["nll_gram"].append((S, T, n, F64, F64[::1]))
            sigs["logprobs_gram"].append((S, T, n, F64, F64[:, ::1]))
    sigs["bootstrap_counts"] = [(nt.uint32[::1], n, I64, I64, I64, U64, U64[::1])]
    sigs["sums2"] = [(F64[::1], F64[::1], n, F64[:, ::1])]
    sigs["moments"] = [(F64[::1], F64[::1], n, F64, F64, F64[:, ::1])]
    return sigs


def _direct_sigs(bits: int) -> list[tuple[Any, ...]]:
    n = I32 if bits == 32 else I64
    return [
        (fdt[:, ::1], F64[::1], idt[:, ::1], n, I64, nt.int8[::1], I64[::1])
        for fdt in (nt.float32, nt.float64)
        for idt in (nt.int32, nt.int64)
    ]


@pytest.fixture
def fake_device(monkeypatch: pytest.MonkeyPatch) -> Any:
    import numba.cuda.dispatcher as dispatcher

    def use(cc: tuple[int, int]) -> None:
        monkeypatch.setattr(
            dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=cc)
        )

    return use


def _entries(ptx: str) -> list[str]:
    return re.findall(r"\.entry\s+(\S+?)\(", ptx)


def _compile(func: Any, sig: tuple[Any, ...], cc: tuple[int, int], name: str, **kw: Any) -> str:
    """PTX of one kernel: for the target asked, with exactly one entry, the kernel's own."""
    ptx, _ = cuda.compile_ptx(func.py_func, sig, cc=cc, **kw)
    assert re.search(rf"^\.target sm_{cc[0]}{cc[1]}\b", ptx, re.M), ptx[:400]
    assert re.search(r"^\.address_size 64", ptx, re.M)
    entries = _entries(ptx)
    assert len(entries) == 1, entries
    # Numba mangles the qualified Python name: <length><name> as in C++
    assert f"{len(name)}{name}" in entries[0], (name, entries[0])
    return ptx


def _device_funcs(ptx: str) -> set[str]:
    """``module.name`` of every ``.func`` in (unoptimised) PTX, from the mangled names."""
    out = set()
    for mangled in re.findall(r"\.func\s+(?:\([^)]*\)\s*)?(_ZN\S+?)\(", ptx):
        parts = []
        rest = mangled[3:]
        while rest and rest[0].isdigit():
            m = re.match(r"(\d+)", rest)
            size = int(m.group(1))
            rest = rest[m.end() :]
            parts.append(rest[:size])
            rest = rest[size:]
        out.add(".".join(parts))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cc", CCS, ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
def test_kernels_compile_main_signatures(fake_device: Any, cc: tuple[int, int]) -> None:
    """int32-indexed family: every kernel, float32/float64 S x int32/int64 triplets, and the
    direct kernel of every registered similarity."""
    from alignkit._kernels import _cuda_kernels as K
    from alignkit._kernels.similarity import SIMILARITIES

    fake_device(cc)
    family = K.kernels(32)
    for name, sigs in _signatures(32).items():
        for sig in sigs:
            _compile(getattr(family, name), sig, cc, name)
    assert tuple(SIMILARITIES) == SIMILARITY_NAMES
    for sim in SIMILARITIES:
        for sig in _direct_sigs(32):
            _compile(K.direct_kernel(sim, 32), sig, cc, "ooo_direct")


@pytest.mark.slow
def test_int64_family_compiles(fake_device: Any) -> None:
    """int64-indexed family (more than 2**31 items): one signature per kernel, sm_90; the
    loop counters are 64-bit there."""
    from alignkit._kernels import _cuda_kernels as K

    fake_device((9, 0))
    family = K.kernels(64)
    for name, sigs in _signatures(64).items():
        _compile(getattr(family, name), sigs[-1], (9, 0), name)
    ptx = _compile(K.direct_kernel("cosine", 64), _direct_sigs(64)[-1], (9, 0), "ooo_direct")
    assert ".s64" in ptx


@pytest.mark.parametrize("cc", CCS, ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
def test_permutation_kernels_compile(fake_device: Any, cc: tuple[int, int]) -> None:
    from alignkit._kernels import _cuda_kernels as K

    fake_device(cc)
    base = (F64[::1], F64[::1], I64, I64, U64, F64, F64[::1])
    ptx = _compile(K.perm_null_shared, base, cc, "perm_null_shared")
    # the permutation lives in shared memory: 4096 int32
    assert re.search(r"\.shared \.align \d+ \.b8 \S+\[16384\]", ptx)
    ptx = _compile(K.perm_null_global, (*base, nt.int32[:, ::1]), cc, "perm_null_global")
    assert not re.search(r"\.shared \.align \d+ \.b8 \S+\[16384\]", ptx)


def test_direct_kernels_never_fuse_products_and_differ_by_pair_function(fake_device: Any) -> None:
    """The direct path must round each product on its own, as the CPU does (no FMA); only
    the euclidean pair function takes a square root."""
    from alignkit._kernels import _cuda_kernels as K

    fake_device((9, 0))
    sig = (nt.float32[:, ::1], F64[::1], nt.int32[:, ::1], I32, I64, nt.int8[::1], I64[::1])
    for sim in SIMILARITY_NAMES:
        ptx = _compile(K.direct_kernel(sim, 32), sig, (9, 0), "ooo_direct")
        assert "mul.rn.f64" in ptx, sim
        assert "fma.rn.f64" not in ptx, sim
        assert ("sqrt.rn.f64" in ptx) == (sim == "euclidean"), sim


def test_device_functions_are_the_cpu_definitions(fake_device: Any) -> None:
    """Unoptimised PTX keeps each device function: the tie rules, the tally, the pair
    functions and the RNG are compiled from the CPU modules' own Python functions."""
    from alignkit._kernels import _cuda_kernels as K

    fake_device((9, 0))
    ties_and_tally = {"alignkit._kernels.ties.hit", "alignkit._kernels.ties.top_count",
                      "alignkit._kernels.ooo.tally"}
    S, T = F64[:, ::1], nt.int32[:, ::1]
    ptx = _compile(K.kernels(32).ooo_counts_gram, (S, T, I32, I64, I64[::1]), (9, 0),
                   "ooo_counts_gram", opt=False)
    assert ties_and_tally <= _device_funcs(ptx)
    ptx = _compile(K.kernels(32).ooo_choices_gram, (S, T, I32, I64, nt.int8[::1]), (9, 0),
                   "ooo_choices_gram", opt=False)
    assert "alignkit._kernels.ties.choice" in _device_funcs(ptx)
    pair_of = {"dot": "dot_pair", "cosine": "scaled_pair", "correlation": "scaled_pair",
               "euclidean": "negative_distance_pair"}
    sig = (nt.float32[:, ::1], F64[::1], T, I32, I64, nt.int8[::1], I64[::1])
    for sim, pair in pair_of.items():
        funcs = _device_funcs(_compile(K.direct_kernel(sim, 32), sig, (9, 0), "ooo_direct",
                                       opt=False))
        assert f"alignkit._kernels.similarity.{pair}" in funcs, (sim, funcs)
        others = {f"alignkit._kernels.similarity.{p}" for p in pair_of.values()} - {
            f"alignkit._kernels.similarity.{pair}"}
        assert not funcs & others, (sim, funcs)
        assert ties_and_tally | {"alignkit._kernels.ties.choice"} <= funcs
    boot = _compile(K.kernels(32).bootstrap_counts,
                    (nt.uint32[::1], I32, I64, I64, I64, U64, U64[::1]), (9, 0),
                    "bootstrap_counts", opt=False)
    assert {"alignkit._kernels._rng.splitmix64", "alignkit._kernels._rng.bounded"} <= (
        _device_funcs(boot))
    perm = _compile(K.perm_null_shared, (F64[::1], F64[::1], I64, I64, U64, F64, F64[::1]),
                    (9, 0), "perm_null_shared", opt=False)
    assert {"alignkit._kernels._rng.shuffle_index", "alignkit._kernels._rng.draw",
            "alignkit._kernels._rng.splitmix64"} <= _device_funcs(perm)
