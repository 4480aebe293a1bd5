"""Throughput of ``alignkit extract`` against the loop a user would write.

For each model, in the same run and on the same images:

* **plain**: the torchvision loop a user writes: a dataset that opens each file
  with PIL and applies the weights' ``transforms()``, a default ``DataLoader``
  (no workers), ``torch.no_grad()``, a forward hook on the penultimate layer
  collecting ``.cpu().numpy()`` rows;
* **alignkit**: :func:`alignkit.extract.extract_features` with its defaults
  (uint8 batches scaled and normalised in one step, inference mode, channels-last
  for convolutional networks, early exit after the last requested layer) writing
  into a Zarr store; also with ``--exact`` (**alignkit-exact**: the contiguous
  layout, features equal to the plain loop's bit for bit). Two default runs must
  give identical features (determinism is checked);
* **thingsvision**: its ``get_extractor(...).extract_features`` when the
  package is importable (skipped otherwise; torchvision models only);
* **decode**: the plain loop's data loading alone (files opened, decoded and
  preprocessed, no model), the ceiling any extractor with that loader has.

Models: torchvision names (``mobilenet_v2``, ``resnet50``, ``vit_b_16``: its
class token of ``encoder.ln``) and ``open_clip:ARCH`` (the image embedding,
``encode_image``, with open_clip's own preprocessing; needs open_clip). Weights
are random (nothing is downloaded): throughput does not depend on them.

Images are JPEGs cut from the sample photographs in ``shared/data/images`` at
THINGS-like sizes. Prints images/s and the ratio to the plain loop.

Example::

    python benches/bench_extract.py --n-images 320 --batch-size 64 --models mobilenet_v2 resnet50
    python benches/bench_extract.py --models vit_b_16 open_clip:ViT-B-16 --n-images 128
    python benches/bench_extract.py --device cuda --n-images 2048 --batch-size 128 \\
        --models resnet50 open_clip:ViT-B-16 --workers 8
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
PENULTIMATE = {"mobilenet_v2": "features.18.1", "resnet50": "avgpool", "vgg16": "classifier.3",
               "alexnet": "classifier.4", "efficientnet_b0": "avgpool", "vit_b_16": "encoder.ln",
               "vit_b_32": "encoder.ln"}


def build(name: str) -> tuple[object, object, str, object]:
    """(module, preprocessing, layer, row function) of a benchmark model, random weights.

    The row function turns the hooked layer's output (or the model's, for
    ``output``) into one row per image, as alignkit stores it.
    """
    import torch
    import torchvision

    torch.manual_seed(0)
    if name.startswith("open_clip:"):
        import open_clip

        from alignkit.extract.models import ClipImageEncoder

        model, _, preprocess = open_clip.create_model_and_transforms(name.split(":", 1)[1])
        return ClipImageEncoder(model).eval(), preprocess, "output", lambda o: o
    weights = torchvision.models.get_model_weights(name).DEFAULT
    model = torchvision.models.get_model(name, weights=None).eval()
    layer = PENULTIMATE[name]
    rows = (lambda o: o[:, 0]) if name.startswith("vit_") else (lambda o: o.flatten(1))
    return model, weights.transforms(), layer, rows


def _files(root: Path, tf: object) -> object:
    import torch
    from PIL import Image

    paths = sorted(root.iterdir())

    class Files(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            return tf(Image.open(paths[i]).convert("RGB"))  # type: ignore[operator]

    return Files()


def decode_only(name: str, root: Path, batch_size: int, workers: int) -> float:
    """Seconds to open, decode and preprocess every image in batches, no model."""
    import torch

    _, tf, _, _ = build(name)
    t0 = time.perf_counter()
    for _ in torch.utils.data.DataLoader(_files(root, tf), batch_size=batch_size,
                                         num_workers=workers):
        pass
    return time.perf_counter() - t0


def make_images(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` JPEGs (quality 90) of 400-800 px cut from the sample photographs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = [Image.open(p).convert("RGB") for p in sorted(SAMPLES.iterdir())]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = sources[i % len(sources)]
        w, h = img.size
        side = int(rng.integers(min(w, h) // 2, min(w, h) + 1))
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        out = int(rng.integers(400, 801))
        img.crop((x0, y0, x0 + side, y0 + side)).resize((out, int(out * 0.75))).save(
            root / f"img{i:05d}.jpg", quality=90)
    return root


def plain_loop(name: str, root: Path, batch_size: int, device: str) -> tuple[float, np.ndarray]:
    """The straightforward loop a user writes; returns (seconds, features)."""
    import torch

    model, tf, layer, to_rows = build(name)
    model = model.to(device)  # type: ignore[attr-defined]
    rows: list[np.ndarray] = []

    def keep(o: torch.Tensor) -> None:
        rows.append(to_rows(o).float().cpu().numpy())  # type: ignore[operator]

    handle = None
    if layer != "output":
        handle = dict(model.named_modules())[layer].register_forward_hook(  # type: ignore[attr-defined]
            lambda m, i, o: keep(o))
    t0 = time.perf_counter()
    with torch.no_grad():
        for x in torch.utils.data.DataLoader(_files(root, tf), batch_size=batch_size):
            out = model(x.to(device))  # type: ignore[operator]
            if handle is None:
                keep(out)
    seconds = time.perf_counter() - t0
    if handle is not None:
        handle.remove()
    return seconds, np.concatenate(rows)


def alignkit_run(name: str, root: Path, batch_size: int, device: str, workers: int | None,
                 store: Path, exact: bool = False) -> tuple[float, np.ndarray]:
    """alignkit's extraction into a fresh store; returns (seconds, features)."""
    from alignkit.extract import extract_features
    from alignkit.store import EmbeddingStore

    if name.startswith("open_clip:"):
        model, layer, kw = name, "embedding", {"weights": "none"}
    else:
        from alignkit.extract import Preprocess

        model, tf, layer, _ = build(name)
        # the weights' own preprocessing, as the plain loop uses (an nn.Module carries none)
        kw = {"transform": Preprocess.from_transform(tf)}
    shutil.rmtree(store, ignore_errors=True)
    t0 = time.perf_counter()
    res = extract_features(model, root, [layer], store=store, model_name=name.replace(":", "_"),
                           batch_size=batch_size, device=device, num_workers=workers,
                           exact=exact, progress=False, **kw)
    seconds = time.perf_counter() - t0
    return seconds, EmbeddingStore(store).entry(name.replace(":", "_"), res.layers[0]).features()


def thingsvision_run(name: str, root: Path, batch_size: int, device: str) -> float | None:
    """thingsvision's extractor, if installed; returns seconds or None."""
    if name not in PENULTIMATE:
        return None
    import numpy as _np
    import torchvision  # noqa: F401 - imported before thingsvision pulls in TensorFlow

    if not hasattr(_np, "AxisError"):  # thingsvision 2.7 still names numpy 1's alias
        setattr(_np, "AxisError", _np.exceptions.AxisError)  # noqa: B010
    try:
        from thingsvision import get_extractor
        from thingsvision.utils.data import DataLoader, ImageDataset
    except ImportError:
        return None
    extractor = get_extractor(model_name=name, source="torchvision", device=device, pretrained=False)
    out = Path(tempfile.mkdtemp(prefix="tv-"))
    dataset = ImageDataset(root=str(root), out_path=str(out), backend=extractor.get_backend(),
                           transforms=extractor.get_transformations())
    batches = DataLoader(dataset=dataset, batch_size=batch_size, backend=extractor.get_backend())
    t0 = time.perf_counter()
    extractor.extract_features(batches=batches, module_name=PENULTIMATE[name], flatten_acts=True)
    seconds = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per model and method."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-images", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet50"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=None, help="alignkit's loader workers")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method (median and best)")
    args = ap.parse_args(argv)
    if not SAMPLES.is_dir():
        print(f"sample images not found at {SAMPLES}", file=sys.stderr)
        return 2
    os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.gettempdir() + "/alignkit-numba-cache")
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="alignkit-bench-"))
    try:
        root = make_images(tmp / "images", args.n_images)
        n = args.n_images
        print(f"# {n} JPEGs 400-800 px, batch {args.batch_size}, device {args.device}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{os.cpu_count()} cores, load average at start "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; rates are medians of "
              f"{args.repeat} runs")
        for name in args.models:
            # warm-up (allocator, oneDNN/cuDNN kernels, page cache)
            plain_loop(name, make_images(tmp / "warm", args.batch_size, seed=1), args.batch_size,
                       args.device)
            plain = [plain_loop(name, root, args.batch_size, args.device)
                     for _ in range(args.repeat)]
            ours = [alignkit_run(name, root, args.batch_size, args.device, args.workers,
                                 tmp / "s.zarr") for _ in range(max(2, args.repeat))]
            plain_x, ours_x = plain[0][1], ours[0][1]
            if plain_x.shape != ours_x.shape:
                raise SystemExit(f"{name}: shapes differ {plain_x.shape} vs {ours_x.shape}")
            if not np.array_equal(ours[0][1], ours[1][1]):
                raise SystemExit(f"{name}: two default runs gave different features")
            exact = [alignkit_run(name, root, args.batch_size, args.device, args.workers,
                                  tmp / "s.zarr", exact=True) for _ in range(args.repeat)]
            dev = float(np.abs(ours_x - plain_x).max() / max(np.abs(plain_x).max(), 1e-30))
            dev_exact = float(np.abs(exact[0][1] - plain_x).max())
            dec_s = decode_only(name, root, args.batch_size, args.workers or 0)
            med = {k: float(np.median([r[0] for r in v]))
                   for k, v in (("plain", plain), ("ours", ours), ("exact", exact))}
            low = {k: min(r[0] for r in v)
                   for k, v in (("plain", plain), ("ours", ours), ("exact", exact))}
            print(f"{name:14s} decode         {n / dec_s:8.1f} img/s  (data loading alone, "
                  f"{args.workers or 0} workers)")
            print(f"{name:14s} plain          {n / med['plain']:8.1f} img/s  (best "
                  f"{n / low['plain']:.1f})")
            print(f"{name:14s} alignkit       {n / med['ours']:8.1f} img/s  x{med['plain'] / med['ours']:.2f}"
                  f"  (best {n / low['ours']:.1f}; max deviation from plain {dev:.1e} of the "
                  f"largest feature; deterministic)")
            print(f"{name:14s} alignkit-exact {n / med['exact']:8.1f} img/s  "
                  f"x{med['plain'] / med['exact']:.2f}  (--exact; max |difference| from plain "
                  f"{dev_exact:.1e})")
            tv = [thingsvision_run(name, root, args.batch_size, args.device)
                  for _ in range(args.repeat)]
            if tv[0] is None:
                print(f"{name:14s} thingsvision        n/a (not installed or not a torchvision "
                      "model)")
            else:
                tv_s = float(np.median(tv))
                print(f"{name:14s} thingsvision   {n / tv_s:8.1f} img/s  alignkit "
                      f"x{tv_s / med['ours']:.2f}  (best {n / min(tv):.1f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
