"""Published probes, by name: the gLocal transforms and any registered later.

Each :class:`PublishedProbe` names one published transform ``.npz`` (keys
``weights``, ``bias``, ``mean``, ``std``), where it is published, its sha256
when known, its width ``p``, and the alignkit model spec and layer whose
features it applies to. ``alignkit probe import STORE glocal:NAME`` fetches
it (:mod:`alignkit.data.remote`), checks it and stores it on that entry.

The twelve gLocal transforms (Muttenthaler et al., NeurIPS 2023) are those of
github.com/LukasMut/gLocal at commit 635fdaa, folder
``transforms/<model>/<module>/transform.npz``; a name is ``glocal:`` and the
model folder's name with ``/`` replaced by ``_``. Nine digests were computed
from the repository's blobs; the other three (resnet50, alexnet, vgg16) are
recorded on first download and checked ever after. In the repository the
``dinov2-vit-base-p14`` file is byte-identical to ``dino-vit-base-p16`` (one git
blob), and the ``clip_ViT-L/14`` file has no ``bias``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alignkit.data.remote import RemoteFile, checksum_status
from alignkit.errors import InputError

__all__ = [
    "GLOCAL_CITATION",
    "GLOCAL_COMMIT",
    "PublishedProbe",
    "get_published",
    "is_published_name",
    "published_probes",
    "register_published",
    "unregister_published",
]

GLOCAL_REPO = "https://github.com/LukasMut/gLocal"
GLOCAL_COMMIT = "635fdaa5b36e810f626125104fb9eb11ea89a75d"
GLOCAL_LICENCE = "MIT (github.com/LukasMut/gLocal, Copyright (c) 2022 Lukas Muttenthaler)"
GLOCAL_CITATION = (
    "Muttenthaler, L., Linhardt, L., Dippel, J., Vandermeulen, R. A., Hermann, K., Lampinen, "
    "A. K., Kornblith, S. (2023). Improving neural network representations using human "
    "similarity judgments. NeurIPS 2023."
)


@dataclass(frozen=True)
class PublishedProbe:
    """One published transform and the features it applies to.

    Attributes:
        name: registry name, ``family:model`` (``glocal:clip_RN50``).
        url: where the ``.npz`` is published.
        sha256: its hex sha256, or None (recorded on first download).
        size: its size in bytes, or None.
        p: the feature width it takes (weights are ``p x p``).
        model: the alignkit model spec whose features it was fitted on.
        layer: the layer (as extracted by alignkit) it applies to.
        licence, citation: terms and reference.
        weights: the model's pretrained weights tag (``openai``), or None.
        source_path: the file's path in the publishing repository.
        has_bias: False where the published file holds no ``bias``.
        same_as: the name of another entry with byte-identical published bytes.
        note: anything else a user should know.
    """

    name: str
    url: str
    sha256: str | None
    size: int | None
    p: int
    model: str
    layer: str
    licence: str
    citation: str
    weights: str | None = None
    source_path: str = ""
    has_bias: bool = True
    same_as: str | None = None
    note: str = field(default="")

    @property
    def spec(self) -> str:
        """The model spec with its weights tag: ``open_clip:RN50:openai``."""
        return f"{self.model}:{self.weights}" if self.weights else self.model

    def remote(self) -> RemoteFile:
        """The file, for :func:`alignkit.data.remote.fetch` (cached under ``probes/``)."""
        return RemoteFile(name=f"probes/{self.name.replace(':', '/')}/transform.npz",
                          url=self.url, sha256=self.sha256, size=self.size,
                          licence=self.licence, citation=self.citation)

    def checksum_status(self) -> str:
        """``published``, ``recorded on first download`` or ``not known (...)``."""
        return checksum_status(self.remote())


_REGISTRY: dict[str, PublishedProbe] = {}


def register_published(entry: PublishedProbe, *, replace: bool = False) -> PublishedProbe:
    """Add a published probe to the registry (``replace`` to redefine a name).

    Raises:
        InputError: the name is taken (without ``replace``), has no ``family:``
            prefix, or ``p`` is not positive.
    """
    if ":" not in entry.name or entry.name.startswith(":") or entry.name.endswith(":"):
        raise InputError(f"published probe {entry.name!r}: a name is 'family:model'")
    if not isinstance(entry.p, int) or entry.p < 1:
        raise InputError(f"published probe {entry.name!r}: p must be a positive int, got {entry.p!r}")
    if entry.name in _REGISTRY and not replace:
        raise InputError(f"published probe {entry.name!r} is registered already")
    entry.remote()  # validates the url and digest
    _REGISTRY[entry.name] = entry
    return entry


def unregister_published(name: str) -> PublishedProbe:
    """Remove a published probe by name (and return it)."""
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise InputError(f"no published probe {name!r}") from None


def published_probes() -> tuple[PublishedProbe, ...]:
    """Every registered published probe, in registration order."""
    return tuple(_REGISTRY.values())


def is_published_name(text: str) -> bool:
    """Whether ``text`` is a registered name or has a registered family's prefix."""
    if text in _REGISTRY:
        return True
    head = text.split(":", 1)[0] if ":" in text else None
    return head is not None and any(n.split(":", 1)[0] == head for n in _REGISTRY)


def get_published(name: str) -> PublishedProbe:
    """A registered published probe by name.

    Raises:
        InputError: no such name (the message lists the registered ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"no published probe {name!r}{hint} "
                         f"(registered: {', '.join(_REGISTRY) or 'none'})") from None


def _glocal(folder: str, module: str, sha256: str | None, size: int | None, p: int,
            model: str, layer: str, weights: str | None = None, **extra: object) -> PublishedProbe:
    path = f"transforms/{folder}/{module}/transform.npz"
    return PublishedProbe(
        name="glocal:" + folder.replace("/", "_"), url=f"{GLOCAL_REPO}/raw/{GLOCAL_COMMIT}/{path}",
        sha256=sha256, size=size, p=p, model=model, layer=layer, weights=weights,
        licence=GLOCAL_LICENCE, citation=GLOCAL_CITATION, source_path=path, **extra)  # type: ignore[arg-type]


_DINO_NORM = "the published 'norm' features: the final norm's CLS token (alignkit's 'embedding')"

for _e in (
    _glocal("OpenCLIP_ViT-L-14_laion2b_s32b_b82k", "visual",
            "38ac3e412c0b42fcdc1e545383ca6c1363472809b2611d0e4f4bf8d5878f7365", 2200626, 768,
            "open_clip:ViT-L-14", "embedding", "laion2b_s32b_b82k"),
    _glocal("OpenCLIP_ViT-L-14_laion400m_e32", "visual",
            "1c34c877528ea375836a2f1a8b8559070a3eadf5a5f8064bb970c1526751a915", 2198001, 768,
            "open_clip:ViT-L-14", "embedding", "laion400m_e32"),
    _glocal("clip_RN50", "visual",
            "81fc831f60c43ded3508f36803e48d105560fb4992bbbe7b1db1745c83af1c4b", 3930470, 1024,
            "open_clip:RN50", "embedding", "openai", note="mean and std stored as float64"),
    _glocal("clip_ViT-L/14", "visual",
            "4d9f969b1cac5334e87c93a6743a50e0f7d38cb41d7e8fb701584bc29d2fe25a", 2195315, 768,
            "open_clip:ViT-L-14", "embedding", "openai", has_bias=False,
            note="the published file has no bias (applied as bias = 0)"),
    _glocal("dino-vit-base-p16", "norm",
            "2bcb2d77346fbaec29326edc54bc03060145ecbb1fb5d80c3c7733241a71dd69", 2204195, 768,
            "hub:facebookresearch/dino:dino_vitb16", "embedding", note=_DINO_NORM),
    _glocal("dino-vit-base-p8", "norm",
            "583ff8178d769e687f7444be935e444e831bf501c8c5343debe69b57cef660cc", 2202295, 768,
            "hub:facebookresearch/dino:dino_vitb8", "embedding", note=_DINO_NORM),
    _glocal("dinov2-vit-base-p14", "norm",
            "2bcb2d77346fbaec29326edc54bc03060145ecbb1fb5d80c3c7733241a71dd69", 2204195, 768,
            "hub:facebookresearch/dinov2:dinov2_vitb14", "embedding",
            same_as="glocal:dino-vit-base-p16",
            note="byte-identical to glocal:dino-vit-base-p16 in the published repository (one "
                 "git blob): it cannot be told apart from the DINO ViT-B/16 transform"),
    _glocal("dinov2-vit-large-p14", "norm",
            "b3da393252d7d8407a745762b06863333793e002970d2a143f121f75e626d694", 3907196, 1024,
            "hub:facebookresearch/dinov2:dinov2_vitl14", "embedding", note=_DINO_NORM),
    _glocal("resnet18", "avgpool",
            "7a2bb20c8662eff5b3c0e27e5614b56be782479ec99d26d1ffd01a01777d7d3c", 977954, 512,
            "resnet18", "avgpool"),
    _glocal("resnet50", "avgpool", None, None, 2048, "resnet50", "avgpool"),
    _glocal("alexnet", "classifier.4", None, None, 4096, "alexnet", "classifier.4"),
    _glocal("vgg16", "classifier.3", None, None, 4096, "vgg16", "classifier.3"),
):
    register_published(_e)
del _e
