"""xarray reads an entry group as a Dataset whose stimulus coordinate is the entry's ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from alignkit.errors import CorruptEntryError
from alignkit.store import EmbeddingStore


def _write(tmp_path: Path, n: int = 7, p: int = 5, **kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, p)).astype(np.float32)
    ids = np.array([f"stim-{i:02d}" for i in range(n)][::-1])  # not in sorted order
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    entry = st.write("vgg16", "classifier.3", x, ids, chunk_rows=3, **kw)
    return entry, x, ids


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_open_zarr_gives_ids_as_the_stimulus_coordinate(tmp_path: Path, dtype: str) -> None:
    entry, x, ids = _write(tmp_path, dtype=dtype)
    ds = xr.open_zarr(tmp_path / "s.zarr", group="vgg16/classifier.3", consolidated=False,
                      zarr_format=3)
    assert ds.features.dims == ("stimulus", "feature")
    assert "stimulus" in ds.indexes
    assert ds.stimulus.values.tolist() == ids.tolist()
    np.testing.assert_array_equal(ds.features.values.astype(np.float32), entry.features())
    if dtype == "float32":
        np.testing.assert_array_equal(ds.features.values, x)
    picked = ds.features.sel(stimulus=[ids[3], ids[0]]).values.astype(np.float32)
    np.testing.assert_array_equal(picked, entry.features()[[3, 0]])
    assert ds.attrs["alignkit"]["complete"] is True
    assert entry.verify() == ds.attrs["alignkit"]["features_checksum"]


def test_entry_without_stimulus_array_still_reads_and_verifies(tmp_path: Path) -> None:
    """An entry written before the coordinate was added (no ``stimulus`` array)."""
    entry, x, ids = _write(tmp_path)
    zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")["vgg16/classifier.3"].__delitem__(
        "stimulus")
    e = EmbeddingStore(tmp_path / "s.zarr").entry("vgg16", "classifier.3")
    assert e.ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(e.features(), x)
    assert e.verify() == entry.verify()


def test_verify_refuses_a_stimulus_coordinate_that_differs_from_the_ids(tmp_path: Path) -> None:
    _write(tmp_path)
    arr = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")["vgg16/classifier.3/stimulus"]
    arr[0] = "someone-else"
    e = EmbeddingStore(tmp_path / "s.zarr").entry("vgg16", "classifier.3")
    with pytest.raises(CorruptEntryError, match="stimulus coordinate"):
        e.verify()
