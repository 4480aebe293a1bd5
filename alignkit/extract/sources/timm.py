"""timm models: ``timm:NAME`` (when timm is installed).

Weights: ``none`` (random initialisation, decided by the seed), ``DEFAULT``
(timm's pretrained weights, from the Hugging Face cache; never downloaded when
offline) or a local weights file. Preprocessing: timm's
``resolve_data_config`` / ``create_transform`` for the model. Only timm's own
code runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignkit.errors import InputError, ModelError, WeightsUnavailableError
from alignkit.extract.sources import ModelSource, ResolvedWeights

if TYPE_CHECKING:
    from alignkit.extract.models import LoadedModel


def _timm(spec: str) -> Any:
    try:
        import timm
    except ImportError:
        raise ModelError(f"--model {spec}: timm is not installed (pip install timm)") from None
    return timm


class TimmSource(ModelSource):
    """A model of the timm zoo."""

    name = "timm"
    prefix = "timm"
    forms = ("timm:NAME",)
    help = "a timm model (when timm is installed)"

    def resolve_weights(self, spec: str, weights: str, offline: bool) -> ResolvedWeights:
        from alignkit.extract.models import suggest

        timm = _timm(spec)
        name = self.rest(spec)
        names = timm.list_models()
        if name not in names:
            raise ModelError(f"--model {spec}: unknown timm model{suggest(name, names)}")
        w = weights.strip()
        if w.lower() == "none":
            return ResolvedWeights("none", offline=offline)
        if w.upper() == "DEFAULT":
            return ResolvedWeights("DEFAULT", offline=offline)
        file = Path(w).expanduser()
        if not file.is_file():
            raise InputError(f"--weights {w}: file does not exist")
        return ResolvedWeights(f"file:{file.name}", file, offline)

    def build(self, spec: str, weights: ResolvedWeights) -> LoadedModel:
        from timm.data import create_transform, resolve_data_config

        from alignkit.extract.models import LoadedModel, hub_offline

        timm = _timm(spec)
        name = self.rest(spec)
        kwargs: dict[str, Any] = {}
        if weights.file is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": str(weights.file)}
        try:
            with hub_offline(weights.offline):
                module = timm.create_model(name, pretrained=weights.id != "none", **kwargs)
        except Exception as exc:
            if weights.file is not None:  # the user's own file: not a download to retry
                raise ModelError(f"--weights {weights.file}: {spec} cannot load it "
                                 f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})"
                                 ) from None
            raise WeightsUnavailableError(
                f"{spec}: weights not available ({str(exc).splitlines()[0][:120]}); pass --weights "
                "PATH to a local file, or --weights none for random initialisation"
            ) from None
        cfg = resolve_data_config({}, model=module)
        transform = create_transform(**cfg)
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        return LoadedModel(module.eval(), spec, self.name, weights.id,
                           str(weights.file.resolve()) if weights.file else None, transform, size,
                           attrs={"timm_version": timm.__version__})
