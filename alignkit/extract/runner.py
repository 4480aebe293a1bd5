"""The extraction loop and its Python API, :func:`extract_features`.

One forward pass per batch fills every requested layer. Images are decoded,
resized and cropped as ``uint8`` in data-loader workers (prefetching ahead of
the model) and normalised on the whole batch; the model runs under
``torch.inference_mode`` in channels-last memory format, optionally with
bfloat16 autocast. Rows are gathered into chunk-sized buffers and written to
the store in chunk-aligned blocks.

Resuming: chunk sizes are multiples of the batch size and batches are aligned
to absolute row positions, so a run that continues an interrupted entry feeds
the model exactly the batches the uninterrupted run would have fed it; on the
CPU in float32 the stored features are then bit-identical.

A resume continues an entry only when it would be made by the very same job:
the entry's *fingerprint* (the SHA-256 of the model record, with its weights id,
weights file checksum, seed and, for random-init models and factories, the
checksum of the built weights; the image set; preprocessing; pooling; dtype;
layer) must match. Otherwise :class:`~alignkit.errors.EntryExistsError` names
what differs and ``--overwrite``; two networks are never mixed in one entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from alignkit._options import options_from
from alignkit._torchio import resolve_device
from alignkit.errors import (
    DataError,
    EntryExistsError,
    InputError,
    MismatchError,
    StoreError,
)
from alignkit.extract.images import (
    ImageDataset,
    ImageSet,
    Preprocess,
    collate,
    open_images,
    verify_images,
)
from alignkit.extract.layers import (
    MAP_POOLS,
    OUTPUT,
    TOKEN_POOLS,
    StopForward,
    _first_tensor,
    capture,
    pool,
    pooled_dim,
    probe_layers,
    resolve_layers,
)
from alignkit.extract.models import LoadedModel, load_model

__all__ = ["ExtractOptions", "ExtractionResult", "extract_features", "resolve_device",
           "default_workers"]

_DTYPES = ("float32", "float16")


@dataclass
class ExtractionResult:
    """What an extraction produced.

    Attributes:
        model: the model's name (as stored).
        layers: the module names extracted, in the order requested.
        requested: the layer names or presets as given, parallel to ``layers``.
        ids: the stimulus ids, one per row.
        dims: ``layer -> p``, the number of features per row.
        features: ``layer -> (n, p)`` arrays (of the storage dtype) when no store was given.
        store: the store path, when one was given.
        status: ``layer -> "written" | "resumed" | "complete"`` (already done).
        images_done: images run through the model in this call.
        seconds: wall time of the extraction loop.
        skipped: unreadable images left out (``--skip-bad``).
        attrs: the provenance recorded with every layer.
    """

    model: str
    layers: list[str]
    requested: list[str]
    ids: list[str]
    dims: dict[str, int] = field(default_factory=dict)
    features: dict[str, np.ndarray] | None = None
    store: str | None = None
    status: dict[str, str] = field(default_factory=dict)
    images_done: int = 0
    seconds: float = 0.0
    skipped: list[dict[str, str]] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        """Throughput of this call (0 when nothing was computed)."""
        return self.images_done / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ExtractOptions:
    """How :func:`extract_features` runs: everything but the model, the images and the layers.

    The options are checked once, when the dataclass is made.

    Attributes:
        ids: stimulus ids for in-memory images (default: file stems or positions).
        weights: weights for a model given by name (``DEFAULT``, ``none``,
            ``IMAGENET1K_V1``, a file).
        transform: preprocessing; defaults to the weights' own transforms.
        store: a Zarr store path; ``None`` returns the features in memory.
        model_name: the name to store the model under (default: its spec).
        batch_size: images per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        num_workers: data-loader processes (default: by device and cores).
        dtype: storage dtype, ``float32`` or ``float16``.
        pool_maps: 4-D maps: ``flatten``, ``avg`` or ``max``.
        pool_tokens: token sequences: ``cls``, ``mean`` or ``flatten``.
        bf16: run the model under bfloat16 autocast.
        channels_last: channels-last memory format (default: on for convolutional
            networks, :func:`is_convnet`, unless ``exact``; off for vision transformers). It
            makes CPU convolutions 1.2-1.9x faster; float32 results then differ from a
            contiguous forward pass by rounding (about 1e-6 relative, see docs/extract.md).
        exact: features equal to a plain torchvision forward pass bit for bit: the
            contiguous memory format, no autocast (``channels_last=True`` or ``bf16`` with
            it is refused).
        skip_bad: leave out unreadable images (found before extraction) and
            record them, instead of stopping at the first one.
        overwrite: redo entries that are already complete (or unresumable).
        offline: never download weights.
        layout: image layout for a path (``auto``, ``folder``, ``csv``,
            ``things``, ``things-full``).
        progress: show a progress bar on stderr (default: when stderr is a terminal).
        chunk_rows: rows per store chunk for new entries, rounded up to a
            multiple of ``batch_size`` (default: about 8 MiB, at most ~1024 rows).
        seed: for a model given as a specification, seeds torch, Python and
            numpy right before it is built (random-init weights, factories);
            recorded in the fingerprint. 0 to 2**32 - 1.
        allow_outside_root: a CSV of images may name files outside its folder
            (``..``, absolute paths, links pointing out); refused by default.

    Raises:
        InputError: a bad batch size, dtype, pooling or number of workers.
    """

    ids: Sequence[str] | None = None
    weights: str = "DEFAULT"
    transform: Preprocess | Callable[..., torch.Tensor] | None = None
    store: str | os.PathLike[str] | None = None
    model_name: str | None = None
    batch_size: int = 64
    device: str = "auto"
    num_workers: int | None = None
    dtype: str = "float32"
    pool_maps: str = "flatten"
    pool_tokens: str = "cls"
    bf16: bool = False
    channels_last: bool | None = None
    exact: bool = False
    skip_bad: bool = False
    overwrite: bool = False
    offline: bool = False
    layout: str = "auto"
    progress: bool | None = None
    chunk_rows: int | None = None
    seed: int = 0
    allow_outside_root: bool = False

    def __post_init__(self) -> None:
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise InputError(f"--batch-size {b!r}: expected a positive integer")
        if self.dtype not in _DTYPES:
            raise InputError(f"--dtype {self.dtype!r}: expected float32 or float16")
        if self.pool_maps not in MAP_POOLS:
            raise InputError(f"--pool-maps {self.pool_maps!r}: expected one of {', '.join(MAP_POOLS)}")
        if self.pool_tokens not in TOKEN_POOLS:
            raise InputError(f"--pool-tokens {self.pool_tokens!r}: expected one of "
                             f"{', '.join(TOKEN_POOLS)}")
        if self.exact and (self.channels_last or self.bf16):
            raise InputError("--exact runs the plain contiguous float32 forward pass: drop "
                             + ("--channels-last" if self.channels_last else "--bf16"))
        if self.num_workers is not None and self.num_workers < 0:
            raise InputError(f"--workers {self.num_workers}: expected 0 or more")


def default_workers(device: torch.device) -> int:
    """Data-loader workers: most cores on GPU; on CPU leave the cores to the model.

    On the CPU the forward pass already uses every core (torch's intra-op
    threads); a decoding worker beside it oversubscribes the cores and stalls
    those threads at their barriers, which on small machines costs more than
    the overlap gains (measured on 2 cores: half the throughput). Decoding then
    runs in the main process, where alignkit's 8-bit preprocessing keeps it cheap.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cuda":
        return max(1, min(16, cores - 1))
    return 0 if cores < 8 else min(4, cores // 8)


# --------------------------------------------------------------------------- inputs


class _ItemDataset(torch.utils.data.Dataset):
    """In-memory images (PIL, tensors) or any map-style dataset."""

    def __init__(self, items: Any, transform: Preprocess | Callable[..., torch.Tensor], offset: int = 0):
        self.items = items
        self.transform = transform
        self.offset = offset

    def __len__(self) -> int:
        return len(self.items) - self.offset

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, str]:
        pos = i + self.offset
        item = self.items[pos]
        if isinstance(item, (tuple, list)) and item and not isinstance(item, torch.Tensor):
            item = item[0]  # (image, label) pairs of a classification dataset
        if isinstance(item, (str, os.PathLike)):
            from alignkit.extract.images import load_rgb

            try:
                item = load_rgb(item)
            except DataError as exc:
                return pos, torch.zeros(0), str(exc)
        if isinstance(item, Image.Image):
            from alignkit.extract.images import _to_rgb

            img = _to_rgb(item)
            if isinstance(self.transform, Preprocess):
                return pos, self.transform.pixels(img), ""
            return pos, self.transform(img), ""
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(item)
        if isinstance(item, torch.Tensor):
            if item.dim() != 3:
                return pos, torch.zeros(0), f"item {pos + 1}: expected a (C, H, W) tensor, got shape {tuple(item.shape)}"
            return pos, item, ""
        return pos, torch.zeros(0), f"item {pos + 1}: unsupported image type {type(item).__name__}"


@dataclass
class _Source:
    ids: list[str]
    make: Callable[[int], torch.utils.data.Dataset]
    describe: dict[str, Any]
    files: bool
    skipped: list[dict[str, str]]


def _source(
    images: Any,
    ids: Sequence[str] | None,
    transform: Preprocess | Callable[..., torch.Tensor],
    skip_bad: bool,
    layout: str,
    allow_outside_root: bool = False,
) -> _Source:
    if isinstance(images, (str, os.PathLike)):
        images = open_images(images, layout, allow_outside_root=allow_outside_root)
    if isinstance(images, ImageSet):
        if ids is not None:
            raise InputError("ids are given by the image set; do not pass ids= with it")
        if skip_bad:
            images = verify_images(images, workers=max(2, min(16, os.cpu_count() or 1)))
        s = images
        return _Source(list(s.ids), lambda off: ImageDataset(s.paths, transform, off, s.where()),
                       s.describe(), True, list(s.skipped))
    if isinstance(images, torch.utils.data.Dataset) and hasattr(images, "__len__"):
        items: Any = images
    elif isinstance(images, Iterable):
        items = list(images)
    else:
        raise InputError(f"images: expected a folder, an ImageSet, a dataset or images, got {type(images).__name__}")
    n = len(items)
    if n == 0:
        raise InputError("images: no image given")
    if ids is None:
        if isinstance(items, list) and all(isinstance(x, (str, os.PathLike)) for x in items):
            stems = [Path(x).stem for x in items]
            ids = stems if len(set(stems)) == n else [str(i) for i in range(n)]
        else:
            ids = [str(i) for i in range(n)]
    ids = [str(x) for x in ids]
    if len(ids) != n:
        raise MismatchError(f"{len(ids)} ids for {n} images")
    if len(set(ids)) != n:
        dup = next(x for i, x in enumerate(ids) if x in ids[:i])
        raise DataError(f"ids: {dup!r} repeats")
    desc = {"layout": "in-memory", "n": n, "type": type(images).__name__}
    return _Source(ids, lambda off: _ItemDataset(items, transform, off), desc, False, [])


# --------------------------------------------------------------------------- main loop


def _fingerprint(record: dict[str, Any]) -> str:
    blob = json.dumps(record, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


_SHORT = 40  # longer values (checksums, lists) are named, not shown


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flat(v, key))
        else:
            out[key] = v
    return out


def _differences(stored: dict[str, Any], job: dict[str, Any]) -> str:
    """How the job differs from the one that made an entry, for a one-line message.

    ``"by another model (model.seed 0 then, 1 now; model.state_checksum differs)"``.
    """
    old = _flat({k: stored.get(k) for k in job})
    new = _flat(json.loads(json.dumps(job, default=str)))
    parts = []
    for key in sorted(set(old) | set(new), key=lambda k: (not k.startswith("model."), k)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        shown = [json.dumps(v) if isinstance(v, str) else str(v) for v in (a, b)]
        if a is None:
            parts.append(f"{key} not recorded then, {shown[1]} now"
                         if len(shown[1]) <= _SHORT else f"{key} not recorded then")
        elif b is None:
            parts.append(f"{key} {shown[0]} then, none now" if len(shown[0]) <= _SHORT
                         else f"{key} not given now")
        elif max(map(len, shown)) <= _SHORT:
            parts.append(f"{key} {shown[0]} then, {shown[1]} now")
        else:
            parts.append(f"{key} differs")
    if not parts:
        return "with other settings"
    who = "by another model" if all(p.startswith("model.") for p in parts) else "with other settings"
    more = f"; and {len(parts) - 4} more" if len(parts) > 4 else ""
    return f"{who} ({'; '.join(parts[:4])}{more})"


def _chunk_rows(n: int, p: int, dtype: str, batch: int) -> int:
    from alignkit.store import default_chunk_rows

    rows = max(batch, (default_chunk_rows(n, p, dtype) // batch) * batch)
    # At most ~1024 rows, so that an interrupted run loses little work.
    return min(rows, max(batch, (1024 // batch) * batch))


def _progress(total: int, initial: int, enabled: bool | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if enabled is None else not enabled
    return tqdm(total=total, initial=initial, unit="img", desc=desc, disable=disable,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def _store_os_errors(store: str | os.PathLike[str] | None) -> Iterator[None]:
    """Report a full disk or an unwritable store as a :class:`StoreError` naming the store."""
    try:
        yield
    except OSError as exc:
        if store is None or exc.errno not in _DISK_FULL + _NOT_WRITABLE:
            raise
        if exc.errno in _DISK_FULL:
            raise StoreError(
                f"{os.fspath(store)}: disk full while writing features ({exc.strerror}); the "
                "entry is left incomplete and resumable: free some space and rerun the same "
                "command to resume it"
            ) from None
        raise StoreError(
            f"{os.fspath(store)}: cannot write to the store ({exc.strerror}"
            + (f": {exc.filename}" if exc.filename else "") + ")"
        ) from None


# --------------------------------------------------------------------------- the forward pass


def is_convnet(module: nn.Module) -> bool:
    """Whether a network is convolutional beyond a patch embedding (more than one ``Conv2d``).

    Channels-last pays for convolution stacks; a vision transformer's single
    patch-embedding convolution gains nothing from it.
    """
    if isinstance(module, torch.jit.ScriptModule):
        return False
    n = 0
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            n += 1
            if n > 1:
                return True
    return False


def default_channels_last(dev: torch.device, module: nn.Module, exact: bool = False) -> bool:
    """The ``channels_last`` default: convolutional networks, on any device, unless ``exact``
    (features equal to a plain contiguous forward pass, bit for bit)."""
    return not exact and is_convnet(module)


@dataclass
class _Forward:
    """The model on its device: how a batch is prepared and run, and how outputs are pooled."""

    module: nn.Module
    dev: torch.device
    channels_last: bool
    autocast: Any
    normalize: Callable[[torch.Tensor], torch.Tensor] | None
    pool_maps: str
    pool_tokens: str

    @classmethod
    def build(cls, lm: LoadedModel, tf: Any, dev: torch.device, opts: ExtractOptions) -> _Forward:
        use_cl = default_channels_last(dev, lm.module, opts.exact) \
            if opts.channels_last is None else opts.channels_last
        module = lm.module.eval().to(dev)
        if use_cl and not isinstance(module, torch.jit.ScriptModule):
            module = module.to(memory_format=torch.channels_last)
        return cls(
            module=module, dev=dev, channels_last=bool(use_cl),
            autocast=torch.autocast(dev.type, dtype=torch.bfloat16) if opts.bf16 else None,
            normalize=tf.normalize if isinstance(tf, Preprocess) else None,
            pool_maps=opts.pool_maps, pool_tokens=opts.pool_tokens,
        )

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """A collated batch on the device: pixels scaled and normalised, channels last."""
        x = batch.to(self.dev, non_blocking=True)
        if x.dtype == torch.uint8:  # pixels: scale and normalise
            x = self.normalize(x) if self.normalize is not None else x.to(torch.float32).div(255.0)
        elif not x.is_floating_point():
            x = x.to(torch.float32)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def run(self, x: torch.Tensor, got: dict[str, torch.Tensor], want_output: bool,
            name: str) -> None:
        """One forward pass; the hooks fill ``got`` (and ``OUTPUT`` when ``want_output``)."""
        try:
            if self.autocast is not None:
                with self.autocast:
                    out = self.module(x)
            else:
                out = self.module(x)
            if want_output:
                t = _first_tensor(out)
                if t is None:
                    raise MismatchError(f"{name}: the model returned no tensor")
                got[OUTPUT] = pool(t, self.pool_maps, self.pool_tokens)
        except StopForward:
            pass


# --------------------------------------------------------------------------- the layer plan


@dataclass
class _LayerPlan:
    """The modules to extract (presets resolved), their widths and provenance, in order."""

    names: list[str]
    requested: list[str]
    p_of: dict[str, int]
    calls: dict[str, int]
    jobs: dict[str, dict[str, Any]]  # what the fingerprint is of, per layer
    attrs_of: dict[str, dict[str, Any]]


def _plan_layers(fwd: _Forward, lm: LoadedModel, layers: list[str], src: _Source, tf: Any,
                 opts: ExtractOptions) -> _LayerPlan:
    """Probe pass on the first image: layer names, output shapes, execution order; provenance."""
    _, first, err = src.make(0)[0]
    if err:
        raise DataError(f"{err} (pass --skip-bad to leave unreadable images out)")
    infos, order = probe_layers(fwd.module, fwd.prepare(first.unsqueeze(0)))
    req_of: dict[str, str] = {}
    for spec in layers:  # several specs may name one module ("logits" and "fc")
        req_of.setdefault(resolve_layers(fwd.module, [spec], infos, order, lm.presets)[0], spec)
    names = list(req_of)
    shape_of = {i.name: i.shape for i in infos}
    p_of = {ln: pooled_dim(shape_of[ln] or (), opts.pool_maps, opts.pool_tokens) for ln in names}

    preprocessing = tf.to_attrs() if isinstance(tf, Preprocess) else {"kind": "callable", "repr": repr(tf)}
    base = {
        "model": lm.describe(),
        "pooling": {"maps": opts.pool_maps, "tokens": opts.pool_tokens},
        "preprocessing": preprocessing,
        "images": src.describe,
        "dtype": opts.dtype,
        "bf16": bool(opts.bf16),
    }
    from alignkit.provenance import base_provenance, versions

    run_info = {
        "device": str(fwd.dev),
        "batch_size": opts.batch_size,
        "channels_last": fwd.channels_last,
        "exact": bool(opts.exact),
        "versions": versions(("torch", "torchvision", "pillow")),
    }
    jobs = {ln: dict(base, layer=ln, requested_layer=req_of[ln], p=p_of[ln]) for ln in names}
    attrs_of = {ln: base_provenance(**job, fingerprint=_fingerprint(job), extraction=run_info)
                for ln, job in jobs.items()}
    return _LayerPlan(names=names, requested=[req_of[ln] for ln in names], p_of=p_of,
                      calls={i.name: i.calls for i in infos}, jobs=jobs, attrs_of=attrs_of)


def _existing_entry(st: Any, name: str, ln: str, job: dict[str, Any], overwrite: bool) -> Any:
    """The store's entry for ``name/ln`` when it can be kept or resumed, else None.

    Raises:
        EntryExistsError: it was made by another job (fingerprint) and not ``overwrite``.
    """
    existing = st.entry(name, ln) if st.has(name, ln) else None
    if existing is None or overwrite:
        return existing
    if existing.attrs.get("fingerprint") != _fingerprint(job):
        what = _differences(existing.attrs, job)
        if existing.complete:
            raise EntryExistsError(
                f"{st.name}: {name}/{ln} exists, made {what}; pass --overwrite to replace it"
            )
        raise EntryExistsError(
            f"{st.name}: {name}/{ln}: cannot resume the interrupted entry "
            f"({existing.rows_done} of {existing.n} rows), it was made {what}; "
            "pass --overwrite to start it again"
        )
    return existing


# --------------------------------------------------------------------------- the resumable sink


def _open_writers(st: Any, name: str, plan: _LayerPlan, ids: list[str],
                  opts: ExtractOptions) -> tuple[dict[str, Any], dict[str, str]]:
    """Store entries: skip complete ones, resume interrupted ones; ``(writers, status)``."""
    writers: dict[str, Any] = {}
    status: dict[str, str] = {}
    n, batch = len(ids), opts.batch_size
    for ln in plan.names:
        existing = _existing_entry(st, name, ln, plan.jobs[ln], opts.overwrite)
        if existing is not None and existing.complete and not opts.overwrite:
            status[ln] = "complete"
            continue
        resuming = existing is not None and not existing.complete
        if resuming:
            cr = None  # keep the entry's own chunking
        elif opts.chunk_rows is not None:
            cr = -(-max(1, opts.chunk_rows) // batch) * batch
        else:
            cr = _chunk_rows(n, plan.p_of[ln], opts.dtype, batch)
        w = st.create(name, ln, n=n, p=plan.p_of[ln], ids=ids, dtype=opts.dtype,
                      attrs=plan.attrs_of[ln], chunk_rows=cr, overwrite=opts.overwrite, resume=True)
        writers[ln] = w
        status[ln] = "resumed" if resuming and w.rows_done > 0 else "written"
    return writers, status


class _Sink:
    """Where the rows of each layer go, by absolute row position.

    With store writers: one chunk-sized buffer per layer, written in chunk-aligned
    blocks from the layer's own resume point (rows before it are already stored).
    Without: one whole ``(n, p)`` array per layer, kept in memory.
    """

    def __init__(self, todo: list[str], n: int, p_of: dict[str, int], dtype: str,
                 writers: dict[str, Any] | None) -> None:
        self.np_dtype = np.float16 if dtype == "float16" else np.float32
        self.torch_dtype = torch.float16 if dtype == "float16" else torch.float32
        self.writers = writers
        if writers is None:
            self.start = 0
            self.chunk = {ln: n for ln in todo}
            self.buf_start = {ln: 0 for ln in todo}
        else:
            self.start = min(writers[ln].rows_done for ln in todo)
            self.chunk = {ln: writers[ln].chunk_rows for ln in todo}
            self.buf_start = {ln: writers[ln].rows_done for ln in todo}
        self.bufs = {ln: np.empty((self.chunk[ln], p_of[ln]), dtype=self.np_dtype) for ln in todo}
        self.fill = {ln: 0 for ln in todo}

    def add(self, ln: str, row0: int, rows: np.ndarray) -> None:
        """Rows ``row0 ..`` of layer ``ln``."""
        b = len(rows)
        if self.writers is None:
            self.bufs[ln][row0:row0 + b] = rows
            return
        r = max(0, self.buf_start[ln] + self.fill[ln] - row0)  # already stored
        while r < b:
            take = min(b - r, self.chunk[ln] - self.fill[ln])
            self.bufs[ln][self.fill[ln]:self.fill[ln] + take] = rows[r:r + take]
            self.fill[ln] += take
            r += take
            self._flush(ln, final=False)

    def _flush(self, ln: str, final: bool) -> None:
        k = self.fill[ln]
        if self.writers is None or k == 0 or (k < self.chunk[ln] and not final):
            return
        self.writers[ln].write_rows(self.buf_start[ln], self.bufs[ln][:k])
        self.buf_start[ln] += k
        self.fill[ln] = 0

    def finish(self) -> dict[str, np.ndarray] | None:
        """Write what is left and mark the entries complete; the in-memory arrays, if any."""
        if self.writers is None:
            return dict(self.bufs)
        for ln in self.bufs:
            self._flush(ln, final=True)
            self.writers[ln].finalize()
        return None


# --------------------------------------------------------------------------- the loop


def _loader(src: _Source, start: int, dev: torch.device,
            opts: ExtractOptions) -> torch.utils.data.DataLoader:
    workers = default_workers(dev) if opts.num_workers is None else opts.num_workers
    if not src.files:
        workers = 0 if opts.num_workers is None else workers
    return torch.utils.data.DataLoader(
        src.make(start), batch_size=opts.batch_size, shuffle=False, num_workers=workers,
        collate_fn=collate, pin_memory=dev.type == "cuda",
        prefetch_factor=4 if workers > 0 else None, persistent_workers=False,
    )


def _layer_rows(got: dict[str, torch.Tensor], ln: str, b: int, p: int, dtype: torch.dtype,
                first_id: str) -> np.ndarray:
    """Layer ``ln``'s pooled rows of a batch of ``b`` images as ``(b, p)`` (storage dtype)."""
    rows = got[ln].to(dtype).cpu().numpy()
    if rows.shape != (b, p):
        rows = rows.reshape(b, -1)
        if rows.shape[1] != p:
            raise MismatchError(
                f"layer {ln!r}: {rows.shape[1]} features for image "
                f"{first_id!r}, {p} for the first image; "
                "images must give outputs of one size (set --crop)"
            )
    return rows


def _forward_loop(fwd: _Forward, loader: Any, sink: _Sink, plan: _LayerPlan, todo: list[str],
                  ids: list[str], name: str, bar: Any) -> int:
    """Every batch through the model once, its layers' rows into ``sink``; images done."""
    hooked = [ln for ln in todo if ln != OUTPUT]
    stop_early = OUTPUT not in todo and all(plan.calls.get(ln) == 1 for ln in hooked)
    done = 0
    with torch.inference_mode(), capture(fwd.module, hooked, fwd.pool_maps, fwd.pool_tokens,
                                         stop_early) as got:
        for positions, batch, errors in loader:
            bad = next((e for e in errors if e), None)
            if bad is not None or batch is None:
                raise DataError(
                    f"{bad or 'unreadable image'} (pass --skip-bad to leave unreadable images out)"
                )
            x = fwd.prepare(batch)
            got.clear()
            fwd.run(x, got, OUTPUT in todo, name)
            b, row0 = len(positions), positions[0]
            for ln in todo:
                sink.add(ln, row0, _layer_rows(got, ln, b, plan.p_of[ln], sink.torch_dtype,
                                               ids[row0]))
            done += b
            bar.update(b)
    return done


def extract_features(
    model: str | nn.Module | LoadedModel,
    images: Any,
    layers: Sequence[str] | str = ("penultimate",),
    *,
    options: ExtractOptions | None = None,
    **kwargs: Any,
) -> ExtractionResult:
    """Extract features of one or more layers for a set of images.

    Args:
        model: a model specification (see :func:`~alignkit.extract.models.load_model`),
            an ``nn.Module``, or a :class:`LoadedModel`.
        images: a folder or CSV path, an :class:`ImageSet`, a map-style dataset
            (items: PIL images, paths, ``(C, H, W)`` tensors, or ``(image, label)``
            pairs), or an iterable of such images. PIL images and files go
            through ``transform``; float tensors are used as given (already
            preprocessed); ``uint8`` tensors are scaled and normalised only.
        layers: module names, ``penultimate``, ``logits`` or ``output``.
        options: an :class:`ExtractOptions` (store, batch size, device, pooling, ...).
        **kwargs: fields of :class:`ExtractOptions` (``store=``, ``batch_size=``,
            ...), replacing those of ``options``.

    Returns:
        An :class:`ExtractionResult`.

    Raises:
        InputError, DataError: bad options, images or ids.
        ModelError, WeightsUnavailableError: the model, weights or a layer.
        EntryExistsError: an entry (complete, or interrupted and to be resumed)
            made by another model (seed, weights) or with other settings,
            without ``overwrite``; the message says what differs.
        StoreError: the disk filled up (the entry stays resumable) or the store
            is not writable.
    """
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise InputError("--layer: give at least one layer")
    opts = options_from(ExtractOptions, options, kwargs, "extract_features")
    with _store_os_errors(opts.store):
        return _extract(model, images, layers, opts)


def _extract(model: Any, images: Any, layers: list[str], opts: ExtractOptions) -> ExtractionResult:
    dev = resolve_device(opts.device)
    lm = model if isinstance(model, LoadedModel) else load_model(model, opts.weights, opts.offline,
                                                                  opts.seed)
    name = opts.model_name or lm.name
    tf: Preprocess | Callable[..., torch.Tensor] = opts.transform or lm.transform or Preprocess()
    src = _source(images, opts.ids, tf, opts.skip_bad, opts.layout, opts.allow_outside_root)
    if not src.ids:
        raise InputError("no image to extract")
    fwd = _Forward.build(lm, tf, dev, opts)
    plan = _plan_layers(fwd, lm, layers, src, tf, opts)

    writers: dict[str, Any] | None = None
    status: dict[str, str] = {}
    if opts.store is not None:
        from alignkit.store import EmbeddingStore

        writers, status = _open_writers(EmbeddingStore(opts.store, "a"), name, plan, src.ids, opts)
    todo = [ln for ln in plan.names if writers is None or ln in writers]
    result = ExtractionResult(
        model=name, layers=plan.names, requested=plan.requested, ids=list(src.ids),
        dims=dict(plan.p_of), store=None if opts.store is None else os.fspath(opts.store),
        status=status, skipped=src.skipped,
        attrs=plan.attrs_of[plan.names[0]] if plan.names else {},
    )
    if not todo:
        return result

    sink = _Sink(todo, len(src.ids), plan.p_of, opts.dtype, writers)
    loader = _loader(src, sink.start, dev, opts)
    bar = _progress(len(src.ids), sink.start, opts.progress, f"{name} ({', '.join(todo)})")
    t0 = time.perf_counter()
    try:
        result.images_done = _forward_loop(fwd, loader, sink, plan, todo, src.ids, name, bar)
        result.features = sink.finish()
    finally:
        bar.close()
    result.seconds = time.perf_counter() - t0
    return result
