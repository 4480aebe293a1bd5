"""torch hub entry points: ``hub:OWNER/REPO[@REF]:ENTRY`` and ``hub:/local/folder:ENTRY``.

``hub:facebookresearch/dino:dino_vitb16`` is ``torch.hub.load(
"facebookresearch/dino", "dino_vitb16")``; ``hub:OWNER/REPO@REF:ENTRY`` pins a
branch or tag (``torch.hub.load("OWNER/REPO:REF", ...)``); ``hub:/path:ENTRY``
is a local folder holding a ``hubconf.py`` (``torch.hub.load(path, ENTRY,
source="local")``). The spec is split on its last ``:``, so folder names may
hold one. The repository's ``hubconf.py`` and whatever it imports run with the
user's permissions: the source declares ``runs_code`` (``docs/security.md``).

Weights: ``DEFAULT`` (the entry's own default; ``pretrained=True`` where the
entry takes a ``pretrained`` argument), ``none`` (``pretrained=False``; refused
for entries without that argument) or a local state-dict file (read with
``weights_only=True`` into the entry's model built with ``pretrained=False``).

Offline (``offline=True`` or ``ALIGNKIT_OFFLINE=1``) a GitHub repository is
read from the torch hub cache, ``torch.hub.get_dir()/OWNER_REPO_REF`` (``REF``
``main`` or ``master`` when none is given), and checkpoints only from
``torch.hub.get_dir()/checkpoints``: a download the entry asks for stops with a
:class:`~alignkit.errors.WeightsUnavailableError` naming the file.

Preprocessing: ImageNet defaults (resize 256, centre crop 224, ImageNet mean
and std; :class:`~alignkit.extract.images.Preprocess`), which is what every
entry of :data:`KNOWN` was trained and evaluated with. Presets: the known
self-supervised entries declare theirs (:func:`known_presets`); other entries
follow the paper's rule.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import InputError, ModelError, WeightsUnavailableError
from alignkit.extract.sources import ModelSource, ResolvedWeights

if TYPE_CHECKING:
    from alignkit.extract.models import LoadedModel

_GITHUB_RE = re.compile(r"^([A-Za-z0-9][\w.-]*)/([\w.-]+)(?:@([\w./-]+))?$")

_VIT = {"penultimate": "output", "logits": "output", "embedding": "output"}
_RESNET = {"penultimate": "avgpool", "logits": "output", "embedding": "avgpool"}

#: Known self-supervised entries: (repository, entry pattern) -> presets. Their
#: heads are removed: ViT-style entries return the class-token embedding (the
#: model's ``output``), ResNet-style ones the pooled features (``avgpool``).
KNOWN: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("facebookresearch/dino", r"dino_(vit[sb](8|16)|xcit_\w+)", _VIT),
    ("facebookresearch/dino", r"dino_resnet50", _RESNET),
    ("facebookresearch/dinov2", r"dinov2_vit[sblg]14(_reg)?", _VIT),
    ("facebookresearch/barlowtwins", r"resnet50", _RESNET),
    ("facebookresearch/vicreg", r"resnet(50|50x2|200x2)", _RESNET),
    ("facebookresearch/swav", r"resnet50(w2|w4|w5)?", _RESNET),
)


def known_presets(repo: str, entry: str) -> dict[str, str]:
    """The layer presets of a known self-supervised hub entry, or ``{}``.

    Args:
        repo: ``OWNER/REPO`` (any ``@REF`` is ignored; case-insensitive), or ``""``
            for a local folder: then only the entry names that no other repository
            uses (DINO's and DINOv2's ``dino_*``, ``dinov2_*``) are recognised.
        entry: the entry point's name.
    """
    repo = repo.split("@", 1)[0].lower()
    for known_repo, pattern, presets in KNOWN:
        if not re.fullmatch(pattern, entry):
            continue
        if repo == known_repo or (not repo and entry.startswith("dino")):
            return dict(presets)
    return {}


def parse(spec_rest: str) -> tuple[str, str]:
    """``(repo or folder, entry)`` of the part of a spec after ``hub:`` (split on the last ``:``)."""
    target, sep, entry = spec_rest.rpartition(":")
    if not sep or not target.strip() or not entry.strip():
        raise InputError(f"hub:{spec_rest}: expected hub:OWNER/REPO[@REF]:ENTRY or "
                         "hub:/local/folder:ENTRY")
    return target.strip(), entry.strip()


def _is_folder(target: str) -> bool:
    if target.startswith(("/", "./", "../", "~", ".\\", "..\\")) or re.match(r"^[A-Za-z]:[\\/]", target):
        return True
    return _GITHUB_RE.match(target) is None or Path(target).expanduser().is_dir()


def cache_dirs(target: str) -> list[Path]:
    """Where the torch hub cache keeps GitHub repository ``OWNER/REPO[@REF]``."""
    import torch

    m = _GITHUB_RE.match(target)
    if m is None:
        raise InputError(f"hub:{target}: not OWNER/REPO[@REF]")
    owner, repo, ref = m.groups()
    refs = [ref.replace("/", "_")] if ref else ["main", "master"]
    return [Path(torch.hub.get_dir()) / f"{owner}_{repo}_{r}" for r in refs]


def _offline_env() -> bool:
    return os.environ.get("ALIGNKIT_OFFLINE", "") not in ("", "0")


class HubSource(ModelSource):
    """A torch hub entry point of a GitHub repository or a local folder (runs its hubconf.py)."""

    name = "hub"
    prefix = "hub"
    forms = ("hub:OWNER/REPO[@REF]:ENTRY", "hub:/local/folder:ENTRY")
    help = "a torch hub entry point (torch.hub.load); runs the repository's hubconf.py"
    runs_code = True

    def check(self, spec: str, weights: str) -> str | None:
        try:
            target, _ = parse(self.rest(spec))
        except InputError as exc:
            return str(exc)
        if _is_folder(target):
            folder = Path(target).expanduser()
            if not (folder / "hubconf.py").is_file():
                return f"{spec!r}: no hubconf.py in folder {target!r}"
        return None

    def code_kind(self, spec: str) -> str:
        target, _ = parse(self.rest(spec))
        if _is_folder(target):
            return f"a torch hub folder ({target}/hubconf.py)"
        return f"a torch hub repository ({target}, its hubconf.py)"

    def seed_decides_weights(self, spec: str, weights: str) -> bool:
        # Entries may leave any part randomly initialised; only a file names all weights.
        w = weights.strip()
        return w.lower() == "none" or w.upper() == "DEFAULT"

    def rebase(self, spec: str, base: Path) -> str:
        target, entry = parse(self.rest(spec))
        folder = Path(target).expanduser()
        if not folder.is_absolute() and (_is_folder(target) or (base / folder).is_dir()):
            return f"hub:{os.path.abspath(base / folder)}:{entry}"
        return spec

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        target, entry = parse(self.rest(spec))
        offline = offline or _offline_env()
        w = weights.strip()
        if w.lower() == "none":
            wid, file = "none", None
        elif w.upper() == "DEFAULT":
            wid, file = "DEFAULT", None
        else:
            file = Path(w).expanduser()
            if not file.is_file():
                raise InputError(f"--weights {w!r}: not none, DEFAULT nor an existing file")
            wid = f"file:{file.name}"
        folder = self._folder(spec, target, entry, offline)  # before building: fail fast
        return ResolvedWeights(wid, file, offline, (folder, target, entry))

    def _folder(self, spec: str, target: str, entry: str, offline: bool) -> Path | None:
        """The local folder of ``target``; None: a GitHub repository to download when building."""
        if _is_folder(target):
            folder = Path(target).expanduser()
            if not (folder / "hubconf.py").is_file():
                raise ModelError(f"--model {spec}: no hubconf.py in folder {folder}")
            return folder.resolve()
        dirs = cache_dirs(target)
        for d in dirs:
            if (d / "hubconf.py").is_file():
                return d
        if not offline:
            return None
        raise WeightsUnavailableError(
            f"{spec}: torch hub repository {target} is not in the cache ({' or '.join(map(str, dirs))}) "
            f"and alignkit is offline: run once online to download it, or pass a local folder "
            f"hub:/path/to/repo:{entry}, or put the repository at {dirs[0]} (or set TORCH_HOME); "
            "--weights none builds no checkpoint but still needs the repository"
        )

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        import torch

        from alignkit.extract.images import Preprocess
        from alignkit.extract.models import (
            LoadedModel,
            apply_state_dict,
            input_size,
            load_state_dict_file,
        )

        folder, target, entry = weights.handle
        state = load_state_dict_file(weights.file) if weights.file else None  # fail fast
        if folder is None:
            folder = _download(spec, target)
        with _on_sys_path(folder), _no_downloads(spec, weights.offline):
            fn = _entry(spec, folder, entry)
            kwargs: dict[str, Any] = {}
            takes_pretrained = _takes(fn, "pretrained")
            if weights.id == "DEFAULT":
                if takes_pretrained:
                    kwargs["pretrained"] = True
            elif takes_pretrained:
                kwargs["pretrained"] = False
            elif weights.id == "none":
                raise InputError(
                    f"--weights none: hub entry {entry!r} takes no pretrained argument, so "
                    "alignkit cannot build it without its weights; use --weights DEFAULT or a file"
                )
            try:
                module = fn(**kwargs)
            except (WeightsUnavailableError, InputError):
                raise
            except (Exception, SystemExit) as exc:
                msg = str(exc).splitlines()[0][:160] if str(exc) else ""
                raise ModelError(f"--model {spec}: entry {entry!r} failed: "
                                 f"{type(exc).__name__}: {msg}") from None
        if isinstance(module, tuple) and module and isinstance(module[0], torch.nn.Module):
            module = module[0]  # entries returning (model, extra)
        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"--model {spec}: entry {entry!r} returned {type(module).__name__}, "
                             "not an nn.Module")
        if state is not None:
            apply_state_dict(module, state, weights.file)
        transform = Preprocess()
        attrs: dict[str, Any] = {"hub_entry": entry}
        if _GITHUB_RE.match(target) and not _is_folder(target):
            attrs["hub_repo"] = target
        else:
            attrs["hub_folder"] = str(folder)
        repo = target if "hub_repo" in attrs else ""
        return LoadedModel(module.eval(), spec, self.name, weights.id,
                           str(weights.file.resolve()) if weights.file else None, transform,
                           input_size(transform), presets=known_presets(repo, entry), attrs=attrs)


def _download(spec: str, target: str) -> Path:
    import torch

    m = _GITHUB_RE.match(target)
    assert m is not None
    owner, repo, ref = m.groups()
    github = f"{owner}/{repo}" + (f":{ref}" if ref else "")
    try:
        torch.hub.list(github, trust_repo=True, verbose=False)
    except Exception as exc:
        dirs = cache_dirs(target)
        raise WeightsUnavailableError(
            f"{spec}: cannot download torch hub repository {github} "
            f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}): pass a local "
            f"folder hub:/path/to/repo:ENTRY, or put the repository at {dirs[0]} (or set TORCH_HOME)"
        ) from None
    for d in cache_dirs(target):
        if (d / "hubconf.py").is_file():
            return d
    raise ModelError(f"{spec}: torch hub did not leave {github} in {torch.hub.get_dir()}")


def _entry(spec: str, folder: Path, entry: str) -> Any:
    """The entry point ``entry`` of ``folder/hubconf.py`` (imported as torch.hub does)."""
    path = folder / "hubconf.py"
    sp = importlib.util.spec_from_file_location("hubconf", path)
    if sp is None or sp.loader is None:
        raise ModelError(f"--model {spec}: cannot import {path}")
    module = importlib.util.module_from_spec(sp)
    try:
        sp.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a hubconf calling sys.exit() is not alignkit's exit
        raise ModelError(f"--model {spec}: {path} fails to import: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    deps = getattr(module, "dependencies", None) or []
    if isinstance(deps, str):
        deps = [deps]
    if not isinstance(deps, (list, tuple)) or not all(isinstance(d, str) and d.strip()
                                                      for d in deps):
        raise ModelError(f"--model {spec}: {path}: dependencies must be a list of module "
                         f"names, got {deps!r}"[:300])

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name.strip()) is None
        except (ImportError, ValueError):  # a dotted name whose parent is missing
            return True

    missing = [d for d in deps if absent(d)]
    if missing:
        raise ModelError(f"--model {spec}: the hub repository needs {', '.join(missing)} "
                         "(pip install them)")
    fn = getattr(module, entry, None)
    if fn is None or not callable(fn) or entry.startswith("_"):
        names = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_") and not inspect.isclass(v)
                       and getattr(v, "__module__", None) == module.__name__)
        raise ModelError(f"--model {spec}: {path} has no entry point {entry!r} "
                         f"(entries: {', '.join(names) or 'none'})")
    return fn


def _takes(fn: Any, arg: str) -> bool:
    try:
        return arg in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@contextmanager
def _on_sys_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        try:
            sys.path.remove(str(folder))
        except ValueError:
            pass


@contextmanager
def _no_downloads(spec: str, offline: bool) -> Iterator[None]:
    """When offline, a checkpoint the entry asks torch hub for must already be cached."""
    if not offline:
        yield
        return
    import torch.hub as hub

    real = hub.download_url_to_file

    def refuse(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        raise WeightsUnavailableError(
            f"{spec}: checkpoint {url.rsplit('/', 1)[-1]} is not in the torch hub cache and "
            f"alignkit is offline: put it at {dst} (or set TORCH_HOME), or pass --weights PATH "
            "to a local file, or --weights none"
        )

    hub.download_url_to_file = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        hub.download_url_to_file = real  # type: ignore[assignment]
