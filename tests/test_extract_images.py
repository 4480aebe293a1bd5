"""Image sets, decoding and preprocessing for extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
from PIL import Image  # noqa: E402

from alignkit.errors import AlignkitError, DataError, FormatError, InputError  # noqa: E402
from alignkit.extract.images import (  # noqa: E402
    ImageDataset,
    Preprocess,
    collate,
    from_csv,
    from_folder,
    from_things,
    load_rgb,
    open_images,
    verify_images,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGES = DATA / "images"


def _png(path: Path, mode: str = "RGB", size: tuple[int, int] = (12, 10), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return path


def test_folder_ids_are_sorted_relative_paths_without_extension(tmp_path: Path) -> None:
    _png(tmp_path / "b.png")
    _png(tmp_path / "a.jpg".replace(".jpg", ".png"))
    _png(tmp_path / "sub" / "deeper" / "c.png")
    _png(tmp_path / "sub" / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    _png(tmp_path / ".hidden" / "x.png")
    s = from_folder(tmp_path)
    assert s.ids == ["a", "b", "sub/a", "sub/deeper/c"]
    assert [p.name for p in s.paths] == ["a.png", "b.png", "a.png", "c.png"]
    assert s.layout == "folder"
    assert s.describe()["n"] == 4


def test_folder_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        from_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image found"):
        from_folder(tmp_path / "empty")
    _png(tmp_path / "dup" / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "dup" / "a.jpg")
    with pytest.raises(DataError, match="'a'"):
        from_folder(tmp_path / "dup")


def test_checksum_changes_with_content_and_order(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png", seed=1)
    c1 = from_folder(tmp_path).checksum()
    assert c1 == from_folder(tmp_path).checksum()
    _png(tmp_path / "b.png", size=(30, 30), seed=2)
    assert from_folder(tmp_path).checksum() != c1


def test_csv_lists_images_in_file_order(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "x.png")
    _png(tmp_path / "img" / "y.png")
    f = tmp_path / "list.csv"
    f.write_text(f"id,path\nsecond,img/y.png\nfirst,{tmp_path / 'img' / 'x.png'}\n\n")
    s = open_images(f)
    assert s.layout == "csv"
    assert s.ids == ["second", "first"]
    assert s.paths[0] == tmp_path / "img" / "y.png"


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ("a,img/x.png\na,img/x.png\n", DataError, "row 2: id 'a' repeats row 1"),
        ("a,img/x.png\nb,img/nope.png\n", DataError, "row 2: image .*nope.png does not exist"),
        ("a,img/x.png,extra\n", FormatError, "row 1: expected 2 fields"),
        ("id,path\n", InputError, "no image listed"),
    ],
)
def test_csv_errors_name_the_row(tmp_path: Path, body: str, error: type, match: str) -> None:
    _png(tmp_path / "img" / "x.png")
    f = tmp_path / "list.csv"
    f.write_text(body)
    with pytest.raises(error, match=match):
        from_csv(f)


def test_things_reference_layout_uses_canonical_order(tmp_path: Path) -> None:
    order = ["aardvark", "bat1", "bat2", "zucchini"]
    for c in reversed(order):
        _png(tmp_path / f"{c}.png")
    _png(tmp_path / "unrelated.png")
    s = from_things(tmp_path, "reference", concept_ids=order)
    assert s.ids == order
    assert [p.stem for p in s.paths] == order
    (tmp_path / "bat2.png").unlink()
    with pytest.raises(DataError, match="1 of 4 THINGS concepts have no reference image.*bat2"):
        from_things(tmp_path, "reference", concept_ids=order)


def test_things_reference_defaults_to_the_1854_concepts(tmp_path: Path) -> None:
    _png(tmp_path / "aardvark.png")
    with pytest.raises(DataError, match="1853 of 1854 THINGS concepts"):
        open_images(tmp_path, layout="things")


def test_things_full_layout_records_concepts(tmp_path: Path) -> None:
    order = ["aardvark", "bat1", "zucchini"]
    _png(tmp_path / "zucchini" / "zucchini_01b.png")
    _png(tmp_path / "aardvark" / "aardvark_02s.png")
    _png(tmp_path / "aardvark" / "aardvark_01b.png")
    _png(tmp_path / "bat1" / "bat1_01b.png")
    s = from_things(tmp_path, "full", concept_ids=order)
    assert s.ids == ["aardvark/aardvark_01b", "aardvark/aardvark_02s", "bat1/bat1_01b",
                     "zucchini/zucchini_01b"]
    assert s.concepts.tolist() == [0, 0, 1, 2]
    assert s.describe()["concepts"] == [0, 0, 1, 2]
    _png(tmp_path / "unicorn" / "unicorn_01b.png")
    with pytest.raises(DataError, match="unicorn: folder is not a THINGS concept"):
        from_things(tmp_path, "full", concept_ids=order)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "I", "F", "1", "YCbCr"])
def test_every_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    src = Image.fromarray(np.random.default_rng(3).integers(0, 256, (9, 7, 3), dtype=np.uint8))
    if mode == "I;16":
        img = Image.fromarray(np.asarray(src.convert("L")).astype(np.uint16) * 257)
        expected = np.asarray(src.convert("L").convert("RGB"))
    elif mode == "I":
        img = src.convert("L").convert("I")
        expected = np.asarray(src.convert("L").convert("RGB"))
    elif mode == "F":
        img = Image.fromarray(np.asarray(src.convert("L")).astype(np.float32) / 255.0)
        expected = np.asarray(src.convert("L").convert("RGB"))
    else:
        img = src.convert(mode)
        expected = np.asarray(img.convert("RGBA").convert("RGB") if mode == "P" else img.convert("RGB"))
    path = tmp_path / ("x.tiff" if mode in ("I;16", "I", "F", "CMYK", "YCbCr") else "x.png")
    if mode == "YCbCr":
        path = tmp_path / "x.jpg"
        img.save(path, quality=100)
        expected = np.asarray(Image.open(path).convert("RGB"))
    else:
        img.save(path)
    out = load_rgb(path)
    assert out.mode == "RGB"
    assert out.size == (7, 9)
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_palette_with_transparency_and_real_rgba_image() -> None:
    if not IMAGES.is_dir():
        pytest.skip(f"sample images not found at {IMAGES}")
    for path in sorted(IMAGES.iterdir()):
        with Image.open(path) as raw:
            expected = np.asarray(raw.convert("RGB"))
        np.testing.assert_array_equal(np.asarray(load_rgb(path)), expected)


def test_corrupt_and_non_images_raise_data_error_with_path(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = tmp_path / "text.png"
    text.write_text("hello")
    for bad in (broken, text, tmp_path / "missing.png"):
        with pytest.raises(DataError, match=str(bad.name)):
            load_rgb(bad)


def test_verify_images_skips_and_records_bad_files(tmp_path: Path) -> None:
    for name in ("a", "c"):
        _png(tmp_path / f"{name}.png")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    s = from_folder(tmp_path)
    v = verify_images(s, workers=2)
    assert v.ids == ["a", "c"]
    assert [k["id"] for k in v.skipped] == ["b"]
    assert "b.jpg" in v.skipped[0]["path"]
    assert v.describe()["skipped"][0]["id"] == "b"
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "c.png").write_bytes(b"")
    with pytest.raises(InputError, match="none of the 3 images"):
        verify_images(from_folder(tmp_path))


@pytest.mark.parametrize("name", ["coffee.png", "rocket.jpg", "camera.png", "horse.png"])
def test_preprocess_equals_torchvision_preset_bit_for_bit(name: str) -> None:
    path = IMAGES / name
    if not path.is_file():
        pytest.skip(f"sample image {path} not found")
    preset = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()  # resize 232, crop 224
    pre = Preprocess.from_transform(preset)
    assert pre is not None and pre.resize == 232 and pre.crop == 224
    img = Image.open(path).convert("RGB")
    ours = pre.normalize(pre.pixels(img).unsqueeze(0))[0]
    assert torch.equal(ours, preset(img))


def test_preprocess_validation_and_attrs() -> None:
    with pytest.raises(InputError, match="interpolation"):
        Preprocess(interpolation="cubic-ish")
    with pytest.raises(InputError, match="--std"):
        Preprocess(std=(0.0, 1.0, 1.0))
    with pytest.raises(InputError, match="--crop"):
        Preprocess(crop=0)
    p = Preprocess().replace(crop=112, mean=None)
    assert p.crop == 112 and p.mean == Preprocess().mean
    attrs = p.to_attrs()
    assert attrs["crop"] == 112 and attrs["resize"] == 256 and attrs["interpolation"] == "bilinear"
    assert Preprocess.from_transform(lambda x: x) is None


def test_dataset_reports_errors_instead_of_raising(tmp_path: Path) -> None:
    a = _png(tmp_path / "a.png", size=(300, 280))
    b = tmp_path / "b.png"
    b.write_bytes(b"garbage")
    ds = ImageDataset([a, b], Preprocess(resize=64, crop=56))
    pos, t, err = ds[0]
    assert pos == 0 and err == "" and t.dtype == torch.uint8 and t.shape == (3, 56, 56)
    pos, t, err = ds[1]
    assert pos == 1 and "b.png" in err and t.shape == (3, 56, 56)
    positions, batch, errors = collate([ds[0], ds[1]])
    assert positions == [0, 1] and batch.shape == (2, 3, 56, 56) and errors[1]
    assert len(ImageDataset([a, b], Preprocess(), offset=1)) == 1


def test_collate_refuses_mixed_sizes() -> None:
    items = [(0, torch.zeros(3, 4, 4), ""), (1, torch.zeros(3, 5, 5), "")]
    with pytest.raises(AlignkitError, match="--crop"):
        collate(items)
