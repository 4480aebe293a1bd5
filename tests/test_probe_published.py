"""Published probes by name: the gLocal format, download, cache, checksums, offline, widths.

Offline: a local HTTP server on 127.0.0.1 serves a tmp folder, ALIGNKIT_DATA_MIRROR
points at it and ALIGNKIT_DATA at a tmp cache. Test entries are registered with
``register_published`` (pointing at files the tests write), not the real twelve.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from _http_server import FileServer, mirror_server
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.data.remote import RemoteFile, cached_path, fetch, resolve_url
from alignkit.errors import ChecksumError, DownloadError
from alignkit.probe.published import (
    PublishedProbe,
    get_published,
    published_probes,
    register_published,
    unregister_published,
)
from alignkit.probe.transform import Transform
from alignkit.store import EmbeddingStore

N, P = 24, 6
URL = "https://example.org/LukasMut/gLocal/raw/0000/transforms/{}/transform.npz"


@pytest.fixture
def server(tmp_path, monkeypatch):
    yield from mirror_server(tmp_path, monkeypatch)


@pytest.fixture
def registered():
    names: list[str] = []

    def add(**kw) -> PublishedProbe:
        kw.setdefault("licence", "test")
        kw.setdefault("citation", "test")
        entry = register_published(PublishedProbe(**kw), replace=True)
        names.append(entry.name)
        return entry

    yield add
    for n in names:
        unregister_published(n)


def _glocal_npz(path: Path, p: int, *, seed: int = 0, bias: bool = True) -> dict[str, np.ndarray]:
    """A transform in the published gLocal layout: float32 weights/bias, 0-d mean/std."""
    rng = np.random.default_rng(seed)
    d = {"weights": rng.normal(scale=0.3, size=(p, p)).astype(np.float32),
         "mean": np.asarray(0.25, dtype=np.float32), "std": np.asarray(1.75, dtype=np.float64)}
    if bias:
        d["bias"] = rng.normal(size=p).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **d)
    return d


def _formula(x: np.ndarray, d: dict[str, np.ndarray]) -> np.ndarray:
    x = x.astype(np.float64)
    out = ((x - float(d["mean"])) / float(d["std"])) @ d["weights"].astype(np.float64)
    return out + d["bias"].astype(np.float64) if "bias" in d else out


def _serve(srv: FileServer, folder: str, p: int, **kw) -> tuple[dict[str, np.ndarray], Path, str]:
    """Write the transform under the server's root at the path the registry URL names."""
    path = srv.root / "LukasMut/gLocal/raw/0000/transforms" / folder / "transform.npz"
    d = _glocal_npz(path, p, **kw)
    return d, path, hashlib.sha256(path.read_bytes()).hexdigest()


def _store(tmp_path: Path, model: str = "m", layer: str = "l", p: int = P,
           attrs: dict | None = None) -> tuple[Path, np.ndarray]:
    x = np.random.default_rng(9).normal(size=(N, p)).astype(np.float32)
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    st.write(model, layer, x, [f"o{i}" for i in range(N)], attrs=attrs or {})
    return tmp_path / "s.zarr", x


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["probe", *args])


def _one_line(r) -> str:
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    return lines[0]


# ---- the format
@pytest.mark.parametrize("bias", [True, False])
def test_glocal_npz_applies_the_published_formula(tmp_path, bias) -> None:
    d = _glocal_npz(tmp_path / "t.npz", P, seed=1, bias=bias)
    x = np.random.default_rng(2).normal(size=(15, P)).astype(np.float32)
    tr = Transform.from_npz(tmp_path / "t.npz")
    np.testing.assert_allclose(tr.apply(x), _formula(x, d), rtol=1e-12, atol=1e-12)
    assert (tr.bias is None) == (not bias)
    assert tr.attrs.get("bias_in_file", True) is bias


def test_no_bias_file_round_trips_through_the_store_and_apply(tmp_path) -> None:
    d = _glocal_npz(tmp_path / "nb.npz", P, seed=3, bias=False)
    store, x = _store(tmp_path)
    r = _invoke("import", str(store), str(tmp_path / "nb.npz"), "--model", "m", "--layer", "l",
                "--name", "nb")
    assert r.exit_code == 0, r.output
    r = _invoke("apply", str(store), "--model", "m", "--layer", "l", "--probe", "nb")
    assert r.exit_code == 0, r.output
    got = EmbeddingStore(store).entry("m", "l+nb").features()
    np.testing.assert_allclose(got, _formula(x, d), rtol=1e-5, atol=1e-5)


# ---- by name, through the server
def test_import_by_name_downloads_verifies_caches_and_applies(tmp_path, server, registered) -> None:
    d, _, sha = _serve(server, "mod_a", P, seed=4)
    pub = registered(name="test:mod_a", url=URL.format("mod_a"), sha256=sha, size=None, p=P,
                     model="m", layer="l")
    store, x = _store(tmp_path)
    r = _invoke("import", str(store), "test:mod_a")
    assert r.exit_code == 0, r.output
    assert "known sha256 verified" in r.output
    assert server.hits == ["/LukasMut/gLocal/raw/0000/transforms/mod_a/transform.npz"]
    cached = cached_path(pub.remote())
    assert cached.is_file() and str(cached).startswith(str(tmp_path / "cache"))
    side = json.loads(Path(str(cached) + ".json").read_text())
    assert side["sha256"] == sha and side["checksum"] == "known"
    entry = EmbeddingStore(store).entry("m", "l")
    assert "test:mod_a" in entry.probes()
    tr = Transform.from_entry(entry, "test:mod_a")
    pa = tr.attrs["published"]
    assert pa["sha256"] == f"sha256:{sha}" and pa["url"] == pub.url and pa["checksum"] == "known"
    np.testing.assert_allclose(tr.apply(x), _formula(x, d), rtol=1e-6, atol=1e-6)
    r = _invoke("apply", str(store), "--model", "m", "--layer", "l", "--probe", "test:mod_a",
                "--out-layer", "l+g")
    assert r.exit_code == 0, r.output
    got = EmbeddingStore(store).entry("m", "l+g").features()
    np.testing.assert_allclose(got, _formula(x, d), rtol=1e-5, atol=1e-5)
    # a second import takes the cache: the server is not asked again (nor offline)
    r = _invoke("import", str(store), "test:mod_a", "--overwrite")
    assert r.exit_code == 0, r.output
    r = _invoke("import", str(store), "test:mod_a", "--name", "again", "--offline")
    assert r.exit_code == 0, r.output
    assert len(server.hits) == 1
    # the name exists: refused without --overwrite
    r = _invoke("import", str(store), "test:mod_a")
    assert r.exit_code == 2 and "exists" in _one_line(r)


def test_no_bias_by_name(tmp_path, server, registered) -> None:
    d, _, sha = _serve(server, "nobias", P, seed=5, bias=False)
    registered(name="test:nobias", url=URL.format("nobias"), sha256=sha, size=None, p=P,
               model="m", layer="l", has_bias=False)
    store, x = _store(tmp_path)
    r = _invoke("import", str(store), "test:nobias")
    assert r.exit_code == 0, r.output
    tr = Transform.from_entry(EmbeddingStore(store).entry("m", "l"), "test:nobias")
    assert tr.bias is None and tr.attrs["bias_in_file"] is False
    np.testing.assert_allclose(tr.apply(x), _formula(x, d), rtol=1e-6, atol=1e-6)


def test_wrong_bytes_are_refused_and_set_aside(tmp_path, server, registered) -> None:
    _serve(server, "bad", P, seed=6)
    pub = registered(name="test:bad", url=URL.format("bad"), sha256="0" * 64, size=None, p=P,
                     model="m", layer="l")
    store, _ = _store(tmp_path)
    r = _invoke("import", str(store), "test:bad")
    assert r.exit_code == 2
    line = _one_line(r)
    assert "sha256" in line and "0" * 64 in line and ".corrupt" in line
    cached = cached_path(pub.remote())
    assert not cached.exists() and Path(str(cached) + ".corrupt").is_file()
    assert "test:bad" not in EmbeddingStore(store).entry("m", "l").probes()
    # a cached copy damaged later is refused too
    d, _, sha = _serve(server, "later", P, seed=7)
    pub = registered(name="test:later", url=URL.format("later"), sha256=sha, size=None, p=P,
                     model="m", layer="l")
    assert fetch(pub.remote()).is_file()
    cached = cached_path(pub.remote())
    cached.write_bytes(cached.read_bytes()[:-1] + b"x")
    with pytest.raises(ChecksumError, match="is not the known"):
        fetch(pub.remote())
    assert Path(str(cached) + ".corrupt").is_file() and not cached.exists()


def test_unknown_digest_is_recorded_then_enforced(tmp_path, server, registered) -> None:
    _, served, sha = _serve(server, "tofu", P, seed=8)
    pub = registered(name="test:tofu", url=URL.format("tofu"), sha256=None, size=None, p=P,
                     model="m", layer="l")
    assert pub.checksum_status() == "not known (recorded on first download)"
    store, _ = _store(tmp_path)
    r = _invoke("import", str(store), "test:tofu")
    assert r.exit_code == 0, r.output
    assert "recorded on first download" in r.output
    cached = cached_path(pub.remote())
    side = json.loads(Path(str(cached) + ".json").read_text())
    assert side["sha256"] == sha and side["checksum"] == "recorded on first download"
    assert pub.checksum_status() == "recorded on first download"
    r = _invoke("published")
    assert r.exit_code == 0 and "recorded on first download" in r.output
    # the published file changes; a fresh download is checked against the record
    _glocal_npz(served, P, seed=99)
    cached.unlink()
    r = _invoke("import", str(store), "test:tofu", "--overwrite")
    assert r.exit_code == 2
    line = _one_line(r)
    assert "recorded on first download" in line and sha in line
    assert Path(str(cached) + ".corrupt").is_file() and not cached.exists()
    assert len(server.hits) == 2


def test_offline_with_an_empty_cache_names_url_and_path(tmp_path, server, registered,
                                                        monkeypatch) -> None:
    _, _, sha = _serve(server, "off", P, seed=10)
    pub = registered(name="test:off", url=URL.format("off"), sha256=sha, size=None, p=P,
                     model="m", layer="l")
    store, _ = _store(tmp_path)
    r = _invoke("import", str(store), "test:off", "--offline")
    assert r.exit_code == 2
    line = _one_line(r)
    assert resolve_url(pub.url) in line and str(cached_path(pub.remote())) in line
    monkeypatch.setenv("ALIGNKIT_OFFLINE", "1")
    r = _invoke("import", str(store), "test:off")
    assert r.exit_code == 2 and "offline" in _one_line(r)
    with pytest.raises(DownloadError, match="by hand"):
        fetch(pub.remote())
    assert server.hits == []
    # put where the message says, by hand: then it is used (and verified) offline
    cached = cached_path(pub.remote())
    cached.parent.mkdir(parents=True)
    cached.write_bytes((server.root / "LukasMut/gLocal/raw/0000/transforms/off/transform.npz")
                       .read_bytes())
    r = _invoke("import", str(store), "test:off")
    assert r.exit_code == 0, r.output
    assert server.hits == []


def test_width_mismatch_is_refused_naming_both(tmp_path, server, registered) -> None:
    _, _, sha = _serve(server, "wide", 8, seed=11)
    registered(name="test:wide", url=URL.format("wide"), sha256=sha, size=None, p=8,
               model="m", layer="l")
    store, _ = _store(tmp_path)
    r = _invoke("import", str(store), "test:wide")
    assert r.exit_code == 2
    line = _one_line(r)
    assert "8-wide" in line and "6-wide" in line and "m/l" in line
    assert server.hits == []  # refused before downloading
    # a file whose width is not the registered one is refused after the download
    _, _, sha = _serve(server, "lies", 5, seed=12)
    registered(name="test:lies", url=URL.format("lies"), sha256=sha, size=None, p=P,
               model="m", layer="l")
    r = _invoke("import", str(store), "test:lies")
    assert r.exit_code == 2
    line = _one_line(r)
    assert "5-wide" in line and "6-wide" in line


def test_entry_found_by_spec_and_preset_or_listed(tmp_path, server, registered) -> None:
    d, _, sha = _serve(server, "clipish", P, seed=13)
    registered(name="test:clipish", url=URL.format("clipish"), sha256=sha, size=None, p=P,
               model="open_clip:X", weights="w1", layer="embedding")
    # how extract names it: the spec without the weights tag, the module the preset resolves to
    store, x = _store(tmp_path, model="open_clip:X", layer="output",
                      attrs={"model": {"name": "open_clip:X", "weights": "w1"},
                             "requested_layer": "embedding"})
    EmbeddingStore(store, mode="a").write("open_clip:X", "other", x, [f"o{i}" for i in range(N)],
                                          attrs={"model": {"weights": "w2"}})
    r = _invoke("import", str(store), "test:clipish")
    assert r.exit_code == 0, r.output
    assert "open_clip:X/output" in r.output
    tr = Transform.from_entry(EmbeddingStore(store).entry("open_clip:X", "output"), "test:clipish")
    np.testing.assert_allclose(tr.apply(x), _formula(x, d), rtol=1e-6, atol=1e-6)
    # other weights: no such entry, and the message lists the store's entries
    registered(name="test:clipish2", url=URL.format("clipish"), sha256=sha, size=None, p=P,
               model="open_clip:X", weights="w3", layer="embedding")
    r = _invoke("import", str(store), "test:clipish2")
    assert r.exit_code == 2
    line = _one_line(r)
    assert "open_clip:X:w3" in line and "open_clip:X/output" in line and "open_clip:X/other" in line


def test_identical_bytes_warn(tmp_path, server, registered) -> None:
    _, _, sha = _serve(server, "twin", P, seed=14)
    registered(name="test:twin", url=URL.format("twin"), sha256=sha, size=None, p=P,
               model="m", layer="l", same_as="test:original")
    store, _ = _store(tmp_path)
    r = _invoke("import", str(store), "test:twin")
    assert r.exit_code == 0, r.output
    assert "byte-identical to test:original" in r.stderr and "cannot be told apart" in r.stderr
    tr = Transform.from_entry(EmbeddingStore(store).entry("m", "l"), "test:twin")
    assert tr.attrs["published"]["same_bytes_as"] == "test:original"


# ---- the registry
def test_the_glocal_registry(tmp_path) -> None:
    glocal = [p for p in published_probes() if p.name.startswith("glocal:")]
    assert len(glocal) == 12
    assert {p.name for p in glocal} >= {"glocal:clip_ViT-L_14", "glocal:resnet18",
                                          "glocal:dinov2-vit-base-p14"}
    vit = get_published("glocal:clip_ViT-L_14")
    assert not vit.has_bias and vit.spec == "open_clip:ViT-L-14:openai"
    assert vit.url.endswith("/transforms/clip_ViT-L/14/visual/transform.npz")
    twin, dino = get_published("glocal:dinov2-vit-base-p14"), get_published("glocal:dino-vit-base-p16")
    assert twin.sha256 == dino.sha256 and twin.same_as == dino.name
    assert [p.name for p in glocal if p.sha256 is None] == [
        "glocal:resnet50", "glocal:alexnet", "glocal:vgg16"]
    assert all("NeurIPS 2023" in p.citation for p in glocal)
    r = _invoke("import", "--list")
    assert r.exit_code == 0 and "glocal:vgg16" in r.output and "classifier.3" in r.output
    r = _invoke("published", "--format", "json")
    rows = {d["name"]: d for d in json.loads(r.output)}
    assert rows["glocal:alexnet"]["checksum"].startswith("not known")
    assert rows["glocal:resnet18"]["p"] == 512 and rows["glocal:resnet18"]["checksum"] == "known"
    store, _ = _store(tmp_path)
    r = _invoke("import", str(store), "glocal:clip_RN5")
    assert r.exit_code == 2 and "did you mean 'glocal:clip_RN50'" in _one_line(r)


def test_mirror_and_remote_file_checks(monkeypatch) -> None:
    monkeypatch.setenv("ALIGNKIT_DATA_MIRROR", "http://127.0.0.1:9/base/")
    assert resolve_url("https://github.com/a/b/raw/c/f.npz") == "http://127.0.0.1:9/base/a/b/raw/c/f.npz"
    monkeypatch.delenv("ALIGNKIT_DATA_MIRROR")
    assert resolve_url("https://github.com/a/f.npz") == "https://github.com/a/f.npz"
    from alignkit.errors import InputError

    with pytest.raises(InputError):
        RemoteFile("../x", "https://e.org/x")
    with pytest.raises(InputError):
        RemoteFile("x", "https://e.org/x", sha256="abc")


def test_file_mirror(tmp_path, monkeypatch) -> None:
    src = tmp_path / "mirror" / "a" / "f.npz"
    _glocal_npz(src, 3)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("ALIGNKIT_DATA_MIRROR", (tmp_path / "mirror").as_uri())
    rf = RemoteFile("x/f.npz", "https://example.org/a/f.npz", sha256=sha)
    got = fetch(rf, progress=False)
    assert got == tmp_path / "cache" / "x" / "f.npz" and got.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("bad", ["html", "truncated", "empty"])
def test_a_broken_first_download_is_refused_and_not_trusted(tmp_path, server, registered,
                                                           bad) -> None:
    registered(name="glocal:broken", url=URL.format("broken"), sha256=None, size=None, p=P,
               model="m", layer="l")
    store, _ = _store(tmp_path)
    _, path, _ = _serve(server, "broken", P)
    good = path.read_bytes()
    path.write_bytes({"html": b"<html><body>sign in</body></html>", "truncated": good[:200],
                      "empty": b""}[bad])
    r = _invoke("import", str(store), "glocal:broken")
    assert r.exit_code == 2, r.output
    line = _one_line(r)
    assert "not a .npz archive" in line or "cannot read as .npz" in line, line
    assert "removed it from the cache" in line
    path.write_bytes(good)  # the real file, served once the server is fixed
    r = _invoke("import", str(store), "glocal:broken")
    assert r.exit_code == 0, r.output


def test_a_file_put_in_the_cache_by_hand_is_kept_when_unreadable(tmp_path, server,
                                                                 registered) -> None:
    entry = registered(name="glocal:byhand", url=URL.format("byhand"), sha256=None, size=None,
                       p=P, model="m", layer="l")
    store, _ = _store(tmp_path)
    cached = cached_path(entry.remote())
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"not an npz")
    r = _invoke("import", str(store), "glocal:byhand")
    assert r.exit_code == 2 and "not a .npz archive" in _one_line(r)
    assert cached.read_bytes() == b"not an npz"


def test_an_empty_name_is_refused_not_replaced_by_the_default(tmp_path, server,
                                                              registered) -> None:
    registered(name="glocal:named", url=URL.format("named"), sha256=None, size=None, p=P,
               model="m", layer="l")
    store, _ = _store(tmp_path)
    _serve(server, "named", P)
    r = _invoke("import", str(store), "glocal:named", "--name", "")
    assert r.exit_code == 2 and "non-empty" in _one_line(r), r.output
    assert "glocal:named" not in EmbeddingStore(store).entry("m", "l").probes()
