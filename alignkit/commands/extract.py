"""``alignkit extract``: model features for an image set, into an embedding store.

Heavy imports (torch, torchvision, the extraction package) happen inside the
command body so that ``alignkit --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from alignkit.commands._options import SEED
from alignkit.errors import InputError

_HELP_EXAMPLES = """
\b
Examples:
  alignkit extract resnet50 images/ --store feats.zarr --layer penultimate --layer logits
  alignkit extract vgg16 things_images/ --layout things --store feats.zarr \\
      --weights ~/weights/vgg16-397923af.pth --dtype float16
  alignkit extract mypkg.nets:build images.csv --store feats.zarr --layer encoder.ln
  alignkit extract --list-layers vit_b_16
  alignkit extract resnet18 images/ --store feats.zarr --weights none --seed 3
  alignkit extract --list-layers nets.py:build --trust-code
"""


def _triple(option: str, value: str | None) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise InputError(f"{option} {value!r}: expected three comma-separated numbers") from None
    if len(parts) != 3:
        raise InputError(f"{option} {value!r}: expected three comma-separated numbers")
    return parts  # type: ignore[return-value]


def _emit(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        return
    cols = list(rows[0])
    if fmt == "csv":
        import csv

        w = csv.DictWriter(sys.stdout, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        return
    cells = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def layer_rows(model: str, weights: str, offline: bool, pool_maps: str, pool_tokens: str,
               seed: int, trust_code: bool, what: str = "--list-layers") -> list[dict[str, Any]]:
    """One row per layer of ``model``: name, type, output shape, pooled size, preset.

    Refuses (before importing torch) a model that runs its own code unless ``trust_code``.
    """
    from alignkit.extract.specs import require_trust

    require_trust(model, trust_code, what)
    import torch

    from alignkit.extract.layers import PRESETS, _preset, pooled_dim, probe_layers
    from alignkit.extract.models import load_model
    from alignkit.extract.sources import source_for

    # Weights change no layer name or shape: without a file, list a random-init copy.
    lm = load_model(*source_for(model).listing(model.strip(), weights), offline, seed)
    size = lm.input_size
    example = torch.zeros((1, 3, size, size))
    infos, order = probe_layers(lm.module, example)
    marks: dict[str, list[str]] = {}
    for preset in PRESETS:
        try:
            target = lm.presets.get(preset) or _preset(lm.module, preset, order)
        except Exception:  # a model without hooks has no penultimate preset, most no embedding
            continue
        marks.setdefault(target, []).append(preset)
    rows = []
    for info in infos:
        p = pooled_dim(info.shape, pool_maps, pool_tokens) if info.shape is not None else None
        rows.append({
            "layer": info.name,
            "type": info.type,
            "output": "x".join(map(str, info.shape)) if info.shape is not None else "-",
            "p": p if p is not None else "-",
            "preset": ",".join(marks.get(info.name, [])) or "",
        })
    return rows


def _help() -> str:
    from alignkit.extract.sources import spec_forms

    return (
        "Extract a model's features for an image set into an embedding store.\n\n"
        f"MODEL is {spec_forms()}. A factory, a TorchScript file or a hub: entry is code: "
        "alignkit imports and runs it with your permissions, so use only ones you trust "
        "(--list-layers asks for --trust-code; see docs/security.md). IMAGES is a folder "
        "(recursive; ids are relative paths without extension), a THINGS folder (--layout things / "
        "things-full) or a CSV of id,path (paths inside the CSV's folder unless "
        "--allow-outside-root). Random-init weights (--weights none) and factories are built "
        "after seeding with --seed. An interrupted run resumes when started again with the same "
        "command; a resume that would use another network (seed, weights) is refused.\n"
        + _HELP_EXAMPLES
    )


class _ExtractCommand(click.Command):
    """Help written when asked, so that it lists every model source registered by then."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.help = _help()
        super().format_help_text(ctx, formatter)


@click.command("extract", cls=_ExtractCommand, help=_help())
@click.argument("model")
@click.argument("images", required=False)
@click.option("--store", "store", type=click.Path(), help="Zarr store to write (created if missing).")
@click.option("--layer", "-l", "layers", multiple=True,
              help="Module name, 'penultimate', 'logits' or 'output'; repeatable (one pass). "
              "Default: penultimate.")
@click.option("--list-layers", is_flag=True, help="List MODEL's layers with output shapes and exit.")
@click.option("--weights", default="DEFAULT", show_default=True,
              help="none, a weights name (DEFAULT, IMAGENET1K_V1, ...) or a .pth/.pt file.")
@click.option("--seed", "seed", type=SEED, default=0, show_default=True,
              help="Seeds torch, Python and numpy right before the model is built: decides "
              "--weights none and factory weights (0 to 4294967295); recorded with the entry.")
@click.option("--trust-code", is_flag=True,
              help="Allow --list-layers to import and run a factory or TorchScript MODEL.")
@click.option("--allow-outside-root", is_flag=True,
              help="Let a CSV of images name files outside its folder (.., absolute paths, "
              "links pointing out).")
@click.option("--name", "model_name", help="Model name in the store (default: MODEL).")
@click.option("--layout", type=click.Choice(["auto", "folder", "csv", "things", "things-full"]),
              default="auto", show_default=True, help="How IMAGES is organised.")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loader processes (default: by device and cores).")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32",
              show_default=True, help="Storage dtype.")
@click.option("--pool-maps", type=click.Choice(["flatten", "avg", "max"]), default="flatten",
              show_default=True, help="Pooling of 4-D feature maps.")
@click.option("--pool-tokens", type=click.Choice(["cls", "mean", "flatten"]), default="cls",
              show_default=True, help="Pooling of token sequences (N, T, D).")
@click.option("--bf16", is_flag=True, help="Run the model under bfloat16 autocast (GPU).")
@click.option("--channels-last/--no-channels-last", default=None,
              help="Channels-last memory format (default: on for convolutional networks: "
              "faster convolutions, float32 rounding differs by ~1e-6 relative).")
@click.option("--exact", is_flag=True,
              help="Features equal to a plain torchvision forward pass bit for bit "
              "(contiguous memory format; slower on convolutional networks).")
@click.option("--resize", type=click.IntRange(min=1), help="Override: shorter side after resizing.")
@click.option("--crop", type=click.IntRange(min=1), help="Override: centre-crop size.")
@click.option("--interpolation",
              type=click.Choice(["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]),
              help="Override: resize interpolation.")
@click.option("--mean", help="Override: normalisation mean, e.g. 0.5,0.5,0.5.")
@click.option("--std", help="Override: normalisation std, e.g. 0.5,0.5,0.5.")
@click.option("--skip-bad", is_flag=True,
              help="Leave unreadable images out (recorded in the store) instead of stopping.")
@click.option("--overwrite", is_flag=True, help="Redo entries that are already complete.")
@click.option("--offline", is_flag=True, help="Never download weights (also ALIGNKIT_OFFLINE=1).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Format of the summary on stdout.")
def extract(
    model: str, images: str | None, store: str | None, layers: tuple[str, ...], list_layers: bool,
    weights: str, model_name: str | None, layout: str, batch_size: int, device: str,
    workers: int | None, dtype: str, pool_maps: str, pool_tokens: str, bf16: bool,
    channels_last: bool | None, exact: bool, resize: int | None, crop: int | None,
    interpolation: str | None,
    mean: str | None, std: str | None, skip_bad: bool, overwrite: bool, offline: bool,
    progress: bool | None, fmt: str, seed: int, trust_code: bool, allow_outside_root: bool,
) -> None:
    """Command body: see the click help above."""
    seed_n = seed
    if list_layers:
        if images is not None:
            raise InputError("--list-layers takes only MODEL (no IMAGES)")
        _emit(layer_rows(model, weights, offline, pool_maps, pool_tokens, seed_n, trust_code), fmt)
        return
    if images is None:
        raise InputError("missing argument IMAGES (a folder, a THINGS folder or a CSV of id,path)")
    if store is None:
        raise InputError("--store: give the Zarr store to write the features to")

    from alignkit.extract.images import Preprocess
    from alignkit.extract.models import load_model
    from alignkit.extract.runner import extract_features

    lm = load_model(model, weights, offline, seed_n)
    mean_t, std_t = _triple("--mean", mean), _triple("--std", std)
    transform = None
    if any(v is not None for v in (resize, crop, interpolation, mean_t, std_t)):
        base = lm.transform if isinstance(lm.transform, Preprocess) else Preprocess()
        transform = base.replace(resize=resize, crop=crop, interpolation=interpolation,
                                 mean=mean_t, std=std_t)
    res = extract_features(
        lm, images, list(layers) or ["penultimate"], transform=transform, store=store,
        model_name=model_name, batch_size=batch_size, device=device, num_workers=workers,
        dtype=dtype, pool_maps=pool_maps, pool_tokens=pool_tokens, bf16=bf16,
        channels_last=channels_last, exact=exact, skip_bad=skip_bad, overwrite=overwrite,
        offline=offline,
        layout=layout, progress=progress, allow_outside_root=allow_outside_root,
    )
    for s in res.skipped:
        click.echo(f"alignkit: skipped {s['error']}", err=True)
    rate = f"{res.images_per_second:.1f}" if res.images_done else "-"
    rows = [
        {
            "model": res.model,
            "layer": ln,
            "requested": req,
            "n": len(res.ids),
            "p": res.dims[ln],
            "status": res.status.get(ln, "written"),
            "images_per_s": rate,
        }
        for ln, req in zip(res.layers, res.requested, strict=True)
    ]
    _emit(rows, fmt)
