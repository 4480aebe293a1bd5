"""Layer lookup, the paper's presets, hooks and pooling."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torch import nn  # noqa: E402

from alignkit.errors import InputError, ModelError  # noqa: E402
from alignkit.extract.layers import (  # noqa: E402
    OUTPUT,
    StopForward,
    capture,
    pool,
    pooled_dim,
    probe_layers,
    resolve_layers,
)

# The layers the paper's rule names (protocol document, "Features"), worked out by
# hand from each architecture: logits = last module; penultimate = last leaf before
# it that is not an activation, Dropout or a shape-only module.
PAPER_LAYERS = {
    "resnet50": ("avgpool", "fc", 2048),
    "vgg16": ("classifier.3", "classifier.6", 4096),
    "alexnet": ("classifier.4", "classifier.6", 4096),
    "vit_b_16": ("encoder.ln", "heads.head", 768),  # class token of the encoder output
    "convnext_tiny": ("classifier.0", "classifier.2", 768),
    "efficientnet_b0": ("avgpool", "classifier.1", 1280),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPER_LAYERS))
def test_presets_follow_the_paper_rule(name: str) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    infos, order = probe_layers(model, torch.zeros(1, 3, 224, 224))
    pen, logits, p = PAPER_LAYERS[name]
    assert resolve_layers(model, ["penultimate"], infos, order) == [pen]
    assert resolve_layers(model, ["logits"], infos, order) == [logits]
    shape = next(i.shape for i in infos if i.name == pen)
    assert pooled_dim(shape, "flatten", "cls") == p


class Net(nn.Module):
    """Registers its head before its body, so registration order != execution order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.drop = nn.Dropout(0.5)
        self.act = nn.GELU()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flat(self.pool(self.body(x)))
        return self.head(self.drop(self.act(self.proj(x))))


def test_presets_use_execution_order_and_skip_activation_dropout_flatten() -> None:
    m = Net().eval()
    infos, order = probe_layers(m, torch.zeros(1, 3, 8, 8))
    assert order[-1] == "head"
    assert resolve_layers(m, ["logits", "penultimate"], infos, order) == ["head", "proj"]
    by = {i.name: i for i in infos}
    assert by["body.0"].shape == (8, 8, 8) and by["body"].leaf is False
    assert by[OUTPUT].shape == (3,)


def test_unknown_layer_suggests_close_names() -> None:
    m = Net().eval()
    infos, order = probe_layers(m, torch.zeros(1, 3, 8, 8))
    with pytest.raises(ModelError, match=r"'body\.2'.*did you mean body\.1, body\.0"):
        resolve_layers(m, ["body.2"], infos, order)
    with pytest.raises(ModelError, match="no such module"):
        resolve_layers(m, ["zzzzzz"], infos, order)


def test_module_that_never_runs_is_refused() -> None:
    m = Net().eval()
    m.unused = nn.Linear(2, 2)
    infos, order = probe_layers(m, torch.zeros(1, 3, 8, 8))
    with pytest.raises(ModelError, match="does not run"):
        resolve_layers(m, ["unused"], infos, order)


def test_probe_failure_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="forward pass fails"):
        probe_layers(nn.Linear(5, 2), torch.zeros(1, 3, 8, 8))


def test_pool_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((4, 5, 3, 2)).astype(np.float32)
    toks = rng.standard_normal((4, 7, 6)).astype(np.float32)
    t_maps, t_toks = torch.from_numpy(maps), torch.from_numpy(toks)
    np.testing.assert_array_equal(pool(t_maps, "flatten").numpy(), maps.reshape(4, -1))
    np.testing.assert_allclose(pool(t_maps, "avg").numpy(), maps.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pool(t_maps, "max").numpy(), maps.max(axis=(2, 3)))
    np.testing.assert_array_equal(pool(t_toks, tokens="cls").numpy(), toks[:, 0])
    np.testing.assert_allclose(pool(t_toks, tokens="mean").numpy(), toks.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pool(t_toks, tokens="flatten").numpy(), toks.reshape(4, -1))
    flat = torch.from_numpy(maps[:, :, 0, 0])
    assert pool(flat, "avg") is flat
    five = torch.zeros(2, 1, 2, 3, 4)
    assert pool(five).shape == (2, 24)
    with pytest.raises(InputError, match="--pool-maps"):
        pool(t_maps, "median")
    assert pooled_dim((5, 3, 2), "avg", "cls") == 5
    assert pooled_dim((7, 6), "flatten", "mean") == 6


def test_capture_collects_pooled_outputs_and_can_stop_early() -> None:
    torch.manual_seed(0)
    m = Net().eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.inference_mode():
        ref_body = m.body(x)
        ref_out = m(x)
        with capture(m, ["body", "proj"], maps="avg") as got:
            out = m(x)
        assert torch.equal(out, ref_out)
        assert torch.allclose(got["body"], ref_body.mean(dim=(2, 3)))
        assert got["proj"].shape == (3, 8)
        with capture(m, ["body"], stop_early=True) as got:
            with pytest.raises(StopForward):
                m(x)
        assert torch.equal(got["body"], ref_body.reshape(3, -1))
    assert not m.body._forward_hooks  # hooks removed on exit


def test_capture_is_safe_from_later_in_place_modules() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    m.eval()
    x = torch.randn(5, 4)
    with torch.inference_mode():
        ref = m[1](m[0](x))
        assert (ref < 0).any()
        with capture(m, ["1", "0"]) as got:
            m(x)
    assert torch.equal(got["1"], ref)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_scripted_model_only_offers_output() -> None:
    scripted = torch.jit.script(nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval())
    infos, order = probe_layers(scripted, torch.zeros(1, 4))
    assert resolve_layers(scripted, ["logits"], infos, order) == [OUTPUT]
    with pytest.raises(ModelError, match="TorchScript"):
        resolve_layers(scripted, ["penultimate"], infos, order)
    with pytest.raises(ModelError, match="TorchScript"):
        resolve_layers(scripted, ["0"], infos, order)
