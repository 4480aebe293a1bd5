"""``alignkit data fetch``: public data sets by name, offline.

A local HTTP server on 127.0.0.1 (in a thread) serves files the tests write; it
honours ``Range`` (206) and can cut a connection half-way or ignore ``Range``.
``ALIGNKIT_DATA_MIRROR`` points at it and ``ALIGNKIT_DATA`` at a tmp cache. Test
entries are registered with ``register_public``, never the real hosts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _http_server import FileServer, mirror_server
from click.testing import CliRunner

from alignkit.cli import cli
from alignkit.data.public import (
    PASSWORD_ENV,
    PublicDataset,
    get_public,
    public_datasets,
    register_public,
    unregister_public,
)
from alignkit.data.remote import RemoteFile, cached_path, part_path, resolve_url

BASE = "https://example.org/pub"


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    yield from mirror_server(tmp_path, monkeypatch)


@pytest.fixture
def registered():
    names: list[str] = []

    def add(name: str, files: list[tuple[str, str | None]], **kw) -> PublicDataset:
        kw.setdefault("kind", "triplets")
        kw.setdefault("format", "text")
        kw.setdefault("description", "test data")
        kw.setdefault("convention", "test convention")
        kw.setdefault("licence", "test licence")
        kw.setdefault("citation", "test citation")
        rfs = tuple(RemoteFile(f"test/{rel}", f"{BASE}/{rel}", sha) for rel, sha in files)
        ds = register_public(PublicDataset(name=name, files=rfs, **kw), replace=True)
        names.append(name)
        return ds

    yield add
    for n in names:
        unregister_public(n)


def _invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def _one_line(r) -> str:
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    return lines[0]


def _sidecar(path: Path) -> dict:
    return json.loads(Path(str(path) + ".json").read_text())


# ---- download, checksum, cache
def test_download_verifies_a_known_sha256_and_then_uses_the_cache(server, registered):
    data = os.urandom(5000)
    sha = server.put("a/trip.bin", data)
    ds = registered("test-known", [("a/trip.bin", sha)])
    r = _invoke("data", "fetch", "test-known")
    assert r.exit_code == 0, r.output
    assert "sha256 known; verified" in r.output
    path = cached_path(ds.files[0])
    assert path.read_bytes() == data and _sidecar(path)["checksum"] == "known"
    assert server.requests == [("/pub/a/trip.bin", None)]
    assert not part_path(ds.files[0]).exists()
    for extra in ([], ["--offline"]):  # from the cache, not asked again
        r = _invoke("data", "fetch", "test-known", *extra)
        assert r.exit_code == 0, r.output
    assert len(server.requests) == 1
    r = _invoke("data", "fetch", "test-known", "--force")
    assert r.exit_code == 0 and len(server.requests) == 2
    listed = {d["name"]: d for d in json.loads(_invoke("data", "fetch", "--list", "--format",
                                                        "json").output)}
    assert listed["test-known"]["state"] == "cached" and listed["test-known"]["checksum"] == "known"


def test_an_unknown_sha256_is_recorded_then_enforced(server, registered):
    server.put("b/emb.bin", b"first version\n")
    ds = registered("test-tofu", [("b/emb.bin", None)])
    assert ds.checksum_status() == "not known (recorded on first download)"
    r = _invoke("data", "fetch", "test-tofu")
    assert r.exit_code == 0 and "recorded on first download" in r.output, r.output
    path = cached_path(ds.files[0])
    assert _sidecar(path)["sha256"] == hashlib.sha256(b"first version\n").hexdigest()
    r = _invoke("data", "fetch", "--list")
    assert r.exit_code == 0
    row = next(ln for ln in r.output.splitlines() if ln.startswith("test-tofu "))
    assert "recorded on first download" in row and "cached" in row
    server.put("b/emb.bin", b"changed upstream\n")
    r = _invoke("data", "fetch", "test-tofu", "--force")
    assert r.exit_code == 2
    assert "recorded on first download" in _one_line(r) and ".corrupt" in _one_line(r)


def test_a_cut_connection_resumes_with_range_and_the_file_is_byte_identical(server, registered):
    data = os.urandom(400_000)
    sha = server.put("big/file.bin", data)
    ds = registered("test-resume", [("big/file.bin", sha)])
    server.cut.add("/pub/big/file.bin")
    r = _invoke("data", "fetch", "test-resume")
    assert r.exit_code == 0, r.output
    assert [p for p, _ in server.requests] == ["/pub/big/file.bin"] * 2
    assert server.requests[0][1] is None
    first_half = len(data) // 2
    assert server.requests[1][1] == f"bytes={first_half}-"
    assert cached_path(ds.files[0]).read_bytes() == data
    assert not part_path(ds.files[0]).exists()


def test_a_part_left_by_an_earlier_run_is_resumed_or_restarted(server, registered):
    data = os.urandom(50_000)
    sha = server.put("c/f.bin", data)
    ds = registered("test-part", [("c/f.bin", sha)])
    part = part_path(ds.files[0])
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:12_345])  # an earlier run cut short
    r = _invoke("data", "fetch", "test-part")
    assert r.exit_code == 0, r.output
    assert server.requests == [("/pub/c/f.bin", "bytes=12345-")]
    assert cached_path(ds.files[0]).read_bytes() == data
    # a server that ignores Range answers 200: the download starts over
    ds2 = registered("test-restart", [("c/f.bin", sha)])
    cached_path(ds2.files[0]).unlink()
    part.write_bytes(b"junk that is not the start of the file")
    server.no_range.add("/pub/c/f.bin")
    r = _invoke("data", "fetch", "test-restart")
    assert r.exit_code == 0, r.output
    assert server.requests[-1] == ("/pub/c/f.bin", "bytes=38-")
    assert cached_path(ds2.files[0]).read_bytes() == data
    # a part that is already complete: the server answers 416 and the file is verified
    cached_path(ds2.files[0]).unlink()
    server.no_range.clear()
    part.write_bytes(data)
    r = _invoke("data", "fetch", "test-restart")
    assert r.exit_code == 0, r.output
    assert cached_path(ds2.files[0]).read_bytes() == data


def test_a_206_that_does_not_start_at_the_offset_restarts_the_file(server, registered):
    """A server may answer a Range request with 206 but a Content-Range that starts elsewhere
    (here: the whole file); appending that to the part would corrupt the download."""
    data = os.urandom(30_000)
    server.put("c/g.bin", data)
    ds = registered("test-range-zero", [("c/g.bin", None)])  # trust on first use: no digest
    part = part_path(ds.files[0])
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    server.range_from_zero.add("/pub/c/g.bin")
    r = _invoke("data", "fetch", "test-range-zero")
    assert r.exit_code == 0, r.output
    assert cached_path(ds.files[0]).read_bytes() == data
    assert _sidecar(cached_path(ds.files[0]))["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_forced_download_that_fails_its_check_keeps_the_verified_copy(server, registered):
    server.put("b/keep.bin", b"first version\n")
    ds = registered("test-keep", [("b/keep.bin", None)])
    assert _invoke("data", "fetch", "test-keep").exit_code == 0
    path = cached_path(ds.files[0])
    server.put("b/keep.bin", b"changed upstream\n")
    r = _invoke("data", "fetch", "test-keep", "--force")
    assert r.exit_code == 2 and ".corrupt" in _one_line(r)
    assert path.read_bytes() == b"first version\n"  # the verified copy is still in place
    assert Path(str(path) + ".corrupt").read_bytes() == b"changed upstream\n"
    r = _invoke("data", "fetch", "test-keep", "--offline")
    assert r.exit_code == 0, r.output


def test_a_part_from_one_address_is_not_resumed_from_another(server, registered, monkeypatch):
    """A download cut short at the first address and continued at an alternative one must not
    join the two servers' bytes (with no known digest the mix would be recorded as trusted)."""
    monkeypatch.delenv("ALIGNKIT_DATA_MIRROR")  # alternative addresses are tried without a mirror
    first, other = os.urandom(20_000), os.urandom(20_000)  # two different copies of the file
    server.put("alt/one.zip", first)
    server.put("alt/two.zip", other)
    server.always_cut.add("/pub/alt/one.zip")  # every answer of the first address is cut short
    rf = RemoteFile("test/alt/f.zip", f"{server.base}/pub/alt/one.zip")
    ds = register_public(PublicDataset(
        name="test-alt", description="d", files=(rf,), kind="archive", format="zip",
        convention="c", licence="l", citation="c", alt_urls=(f"{server.base}/pub/alt/two.zip",)),
        replace=True)
    try:
        r = _invoke("data", "fetch", "test-alt")
        assert r.exit_code == 0, r.output
        assert server.requests[-1][0] == "/pub/alt/two.zip"
        assert cached_path(ds.files[0]).read_bytes() == other
    finally:
        unregister_public("test-alt")


def test_a_mirror_password_is_sent_to_the_server_and_written_nowhere(server, registered,
                                                                     monkeypatch):
    import base64

    secret = "pw-s3cret"
    server.auth = "Basic " + base64.b64encode(f"alice:{secret}".encode()).decode()
    host = server.base.split("://", 1)[1]
    monkeypatch.setenv("ALIGNKIT_DATA_MIRROR", f"http://alice:{secret}@{host}")
    data = os.urandom(3000)
    server.put("m/f.bin", data)
    ds = registered("test-mirror-auth", [("m/f.bin", None), ("m/missing.bin", None)])
    r = _invoke("data", "fetch", "test-mirror-auth")
    assert r.exit_code == 2 and secret not in r.output and "HTTP 404" in r.output, r.output
    path = cached_path(ds.files[0])
    assert path.read_bytes() == data  # sent as basic authentication
    cache = Path(os.environ["ALIGNKIT_DATA"])
    for f in cache.rglob("*"):
        if f.is_file() and f != path:
            assert secret.encode() not in f.read_bytes(), f
    assert _sidecar(path)["fetched_from"] == f"http://alice:***@{host}/pub/m/f.bin"
    info = _invoke("data", "info", "test-mirror-auth", "--format", "json")
    assert secret not in info.output
    # a redirect elsewhere does not take the credentials along
    other = FileServer(server.root)
    try:
        server.redirect["/pub/m/moved.bin"] = f"{other.base}/pub/m/f.bin"
        moved = registered("test-mirror-moved", [("m/moved.bin", None)])
        assert _invoke("data", "fetch", "test-mirror-moved").exit_code == 0
        assert cached_path(moved.files[0]).read_bytes() == data
        assert other.auth_seen == [None] and server.auth_seen[-1] == server.auth
    finally:
        other.close()


def test_a_checksum_mismatch_is_refused_and_set_aside(server, registered):
    server.put("d/bad.bin", b"not what the registry says")
    ds = registered("test-bad", [("d/bad.bin", "0" * 64)])
    r = _invoke("data", "fetch", "test-bad")
    assert r.exit_code == 2
    line = _one_line(r)
    assert "0" * 64 in line and ".corrupt" in line and "is not the known" in line
    path = cached_path(ds.files[0])
    assert not path.exists() and Path(str(path) + ".corrupt").is_file()
    assert not part_path(ds.files[0]).exists()


def test_offline_refusal_names_url_and_path(server, registered, monkeypatch):
    sha = server.put("e/off.bin", b"offline test")
    ds = registered("test-off", [("e/off.bin", sha)])
    r = _invoke("data", "fetch", "test-off", "--offline")
    assert r.exit_code == 2
    line = _one_line(r)
    assert resolve_url(ds.files[0].url) in line and str(cached_path(ds.files[0])) in line
    monkeypatch.setenv("ALIGNKIT_OFFLINE", "1")
    r = _invoke("data", "fetch", "test-off")
    assert r.exit_code == 2 and "offline" in _one_line(r)
    assert server.requests == []


def test_a_connection_error_says_what_to_download_by_hand(tmp_path, registered, monkeypatch):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("ALIGNKIT_DATA_MIRROR", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("ALIGNKIT_OFFLINE", raising=False)
    ds = registered("test-noconn", [("f/x.bin", None)])
    r = _invoke("data", "fetch", "test-noconn")
    assert r.exit_code == 2
    line = _one_line(r)
    assert "by hand" in line and str(cached_path(ds.files[0])) in line
    assert f"127.0.0.1:{port}/pub/f/x.bin" in line


def test_unknown_names_and_no_names_are_refused(server, registered):
    registered("test-near", [("g/x.bin", None)])
    r = _invoke("data", "fetch", "test-nea")
    assert r.exit_code == 2 and "did you mean 'test-near'" in _one_line(r)
    r = _invoke("data", "fetch")
    assert r.exit_code == 2
    assert server.requests == []


# ---- a URL that is not confirmed
def test_an_unconfirmed_url_is_never_guessed_and_a_copy_by_hand_is_recorded(tmp_path, registered,
                                                                            monkeypatch):
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("ALIGNKIT_DATA_MIRROR", raising=False)
    monkeypatch.delenv("ALIGNKIT_OFFLINE", raising=False)
    ds = registered("test-unconfirmed", [("h/split.txt", None)], url_confirmed=False,
                    page="https://example.org/landing")
    r = _invoke("data", "fetch", "test-unconfirmed")
    assert r.exit_code == 2
    line = _one_line(r)
    path = cached_path(ds.files[0])
    assert "not confirmed" in line and "https://example.org/landing" in line and str(path) in line
    r = _invoke("data", "fetch", "--list")
    row = next(ln for ln in r.output.splitlines() if ln.startswith("test-unconfirmed "))
    assert "not confirmed" in row
    path.parent.mkdir(parents=True)
    path.write_text("0 1 2\n3 4 5\n")
    r = _invoke("data", "fetch", "test-unconfirmed")
    assert r.exit_code == 0, r.output
    assert _sidecar(path)["checksum"] == "recorded on first download"


# ---- archives: a member data set, a password-protected zip
def _zip(tmp_path: Path, members: dict[str, bytes], password: str | None = None) -> bytes:
    src = tmp_path / "zipsrc"
    if src.exists():
        shutil.rmtree(src)
    for rel, data in members.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    out = tmp_path / "out.zip"
    out.unlink(missing_ok=True)
    if password is None:
        import zipfile

        with zipfile.ZipFile(out, "w") as zf:
            for rel, data in members.items():
                zf.writestr(rel, data)
    else:
        from _zipcrypto import write_zipcrypto

        write_zipcrypto(out, members, password)
    return out.read_bytes()


def test_a_member_of_an_archive_is_fetched_through_the_archive(tmp_path, server, registered):
    trip = b"0 1 2\n3 4 5\n6 7 8\n"
    sha = server.put("arch/folder.zip", _zip(tmp_path, {"triplet_dataset/trainset.txt": trip,
                                                         "__MACOSX/._junk": b"x"}))
    registered("test-archive", [("arch/folder.zip", sha)], kind="archive", format="zip",
               unpack="test/arch")
    member = register_public(PublicDataset(
        name="test-member", description="d", kind="triplets", format="text", convention="c",
        licence="l", citation="c", url_confirmed=False, from_archive="test-archive",
        files=(RemoteFile("test/arch/triplet_dataset/trainset.txt",
                          "https://unknown.invalid/x"),)))
    try:
        r = _invoke("data", "fetch", "test-member")
        assert r.exit_code == 0, r.output
        path = cached_path(member.files[0])
        assert path.read_bytes() == trip
        assert _sidecar(path)["checksum"] == "recorded on first download"
        assert not (path.parents[1] / "__MACOSX").exists()
        assert "/pub/arch/folder.zip" in [p for p, _ in server.requests]
        r = _invoke("data", "info", "test-member", "--format", "json")
        info = json.loads(r.output)
        assert info["state"] == "cached" and info["read_as"]["shape"] == [3, 3]
    finally:
        unregister_public("test-member")


def test_a_password_protected_zip_is_read_with_the_password_never_stored(tmp_path, server,
                                                                        registered, monkeypatch):
    secret = "pw-Zq81-never-stored"
    img = os.urandom(3000)
    sha = server.put("img/images.zip", _zip(tmp_path, {"images/aardvark/aardvark_01b.jpg": img,
                                                       "images/zebra/zebra_02s.jpg": img[::-1]},
                                            password=secret))
    ds = registered("test-images", [("img/images.zip", sha)], kind="images", format="images-zip",
                    password=True, unpack="test/images", page="https://example.org/images")
    r = _invoke("data", "fetch", "test-images")
    assert r.exit_code == 2
    assert "password-protected" in _one_line(r) and "--password" in _one_line(r)
    assert cached_path(ds.files[0]).is_file()  # downloaded, not unpacked
    r = _invoke("data", "fetch", "test-images", "--password", "wrong-one")
    assert r.exit_code == 2 and "wrong password" in _one_line(r)
    assert "wrong-one" not in r.output
    r = _invoke("data", "fetch", "test-images", "--password", secret)
    assert r.exit_code == 0, r.output
    assert secret not in r.output
    folder = tmp_path / "cache" / "test" / "images"
    assert (folder / "images" / "aardvark" / "aardvark_01b.jpg").read_bytes() == img
    assert (folder / "images" / "zebra" / "zebra_02s.jpg").read_bytes() == img[::-1]
    assert len(server.requests) == 1  # the zip was downloaded once
    # from the environment, unpacked again
    monkeypatch.setenv(PASSWORD_ENV, secret)
    r = _invoke("data", "fetch", "test-images", "--force")
    assert r.exit_code == 0, r.output
    # the password is in no file under the cache, nor in any file name
    for f in (tmp_path / "cache").rglob("*"):
        assert secret not in f.name
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    listed = {d["name"]: d for d in json.loads(_invoke("data", "ls", "--format", "json").output)}
    assert listed["test-images"]["state"] == "cached" and listed["test-images"]["path"] == str(folder)


# ---- fetched names wherever a file is expected
def _things_store(tmp_path: Path) -> Path:
    from alignkit.data import load_embedding
    from alignkit.store import EmbeddingStore

    e = load_embedding("spose-49d")
    st = EmbeddingStore(tmp_path / "s.zarr", mode="a")
    st.write("spose", "49d", e.values.astype(np.float32), list(e.ids))
    return tmp_path / "s.zarr"


def test_triplets_by_a_fetched_name_through_score_ooo(tmp_path, server, registered):
    from alignkit.data import load_triplets

    arr = load_triplets("things-test20k").array[:500]
    text = "".join(f"{a} {b} {c}\n" for a, b, c in arr).encode()
    sha = server.put("things/trainset.txt", text)
    registered("test-things-train", [("things/trainset.txt", sha)], format="things-2023-split",
               things=True)
    store = _things_store(tmp_path)
    args = ["score", "ooo", str(store), "--format", "json", "--no-record"]
    r = _invoke(*args, "--triplets", "test-things-train")
    assert r.exit_code == 2
    assert _one_line(r).endswith("not fetched: run alignkit data fetch test-things-train")
    assert server.requests == []
    r = _invoke("data", "fetch", "test-things-train")
    assert r.exit_code == 0, r.output
    r = _invoke(*args, "--triplets", "test-things-train")
    assert r.exit_code == 0, r.output
    by_name = json.loads(r.stdout)
    (tmp_path / "same.txt").write_bytes(text)
    r = _invoke(*args, "--triplets", str(tmp_path / "same.txt"), "--object-ids", "things")
    assert r.exit_code == 0, r.output
    by_file = json.loads(r.stdout)
    acc = [d["accuracy"] for d in by_name], [d["accuracy"] for d in by_file]
    assert acc[0] == acc[1] and 0.5 < acc[0][0] < 0.8
    t = load_triplets("test-things-train")
    assert t.n_objects == 1854 and len(t) == 500 and t.is_things
    r = _invoke("data", "info", "test-things-train", "--format", "json")
    info = json.loads(r.output)
    assert info["files"][0]["cached"] and info["checksum"] == "known"
    assert info["read_as"]["n_triplets"] == 500 and info["read_as"]["n_objects"] == 1854


def test_store_import_takes_a_bundled_or_fetched_embedding_name(tmp_path, server, registered):
    from alignkit.store import EmbeddingStore

    r = _invoke("store", "import", "spose-49d", "--store", str(tmp_path / "a.zarr"),
                "--model", "spose", "--layer", "49d")
    assert r.exit_code == 0, r.output
    entry = EmbeddingStore(tmp_path / "a.zarr").entry("spose", "49d")
    assert entry.n == 1854 and entry.p == 49
    assert entry.attrs["source_name"] == "spose-49d" and entry.attrs["ids_source"] == "things"
    x = np.random.default_rng(0).random((1854, 5)).astype(np.float32)
    f = tmp_path / "emb.npy"
    np.save(f, x)
    sha = server.put("emb/final_embedding.npy", f.read_bytes())
    registered("test-emb", [("emb/final_embedding.npy", sha)], kind="embedding",
               format="vice-npy", things=True)
    args = ["store", "import", "test-emb", "--store", str(tmp_path / "b.zarr"), "--model", "vice",
            "--layer", "5d"]
    r = _invoke(*args)
    assert r.exit_code == 2 and "not fetched: run alignkit data fetch test-emb" in _one_line(r)
    assert _invoke("data", "fetch", "test-emb").exit_code == 0
    r = _invoke(*args)
    assert r.exit_code == 0, r.output
    got = EmbeddingStore(tmp_path / "b.zarr").entry("vice", "5d").features()
    np.testing.assert_array_equal(got, x)
    attrs = EmbeddingStore(tmp_path / "b.zarr").entry("vice", "5d").attrs
    assert attrs["source_name"] == "test-emb" and attrs["source_checksum"] == f"sha256:{sha}"
    r = _invoke("store", "import", "things-2020-test10", "--store", str(tmp_path / "c.zarr"),
                "--model", "m", "--layer", "l")
    assert r.exit_code == 2 and "not an embedding" in _one_line(r)


# ---- listing and info
def test_data_ls_lists_bundled_fetchable_and_sample_images_with_paths(tmp_path, monkeypatch):
    from alignkit.data.bundled import BUNDLED, SAMPLE_IMAGES, bundled_path

    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    rows = json.loads(_invoke("data", "ls", "--format", "json").output)
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    assert {r["name"] for r in by_source["bundled"]} == set(BUNDLED)
    assert all(r["path"] == str(bundled_path(r["name"])) for r in by_source["bundled"])
    images = {Path(r["path"]) for r in by_source["sample image"]}
    assert images == {p for p in SAMPLE_IMAGES.iterdir() if p.is_file()} and len(images) == 9
    fetchable = {r["name"]: r for r in by_source["fetchable"]}
    assert "things-2023-train" in fetchable and "glocal:resnet18" in fetchable
    assert fetchable["vice-things"]["state"] == "not fetched"
    assert fetchable["vice-things"]["path"].startswith(str(tmp_path / "cache"))
    table = _invoke("data", "ls").output
    assert str(SAMPLE_IMAGES / "astronaut.jpg") in table and "things-2020-test10" in table


def test_data_info_shows_the_entry_for_fetchable_and_bundled_names(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    r = _invoke("data", "info", "things-2020-test10")
    assert r.exit_code == 0, r.output
    for text in ("https://osf.io/download/sd3f7/", "789fb927c87538d2", "CC-BY 4.0",
                 "odd one out", "Nature Human Behaviour", "not fetched",
                 str(tmp_path / "cache" / "things" / "2020" / "data1854_batch5_test10.txt")):
        assert text in r.output, text
    info = json.loads(_invoke("data", "info", "spose-66d", "--format", "json").output)
    assert info["url_confirmed"] is False and info["checksum"].startswith("not known")
    assert "URL not confirmed" in _invoke("data", "info", "spose-66d").output
    info = json.loads(_invoke("data", "info", "rdm48", "--format", "json").output)
    assert info["shape"] == [48, 48] and info["licence"] == "CC-BY 4.0"
    assert info["file"].endswith("RDM48_triplet.mat") and "Hebart" in info["citation"]


def test_the_registry_entries():
    names = [d.name for d in public_datasets()]
    assert len(names) == len(set(names))
    need = {"things-2023-raw", "things-2023-train", "things-2023-validation", "things-2023-test1",
            "things-2023-test2", "things-2023-test2-repeat", "things-2023-test3",
            "things-2020-test10", "spose-49d-text", "spose-66d", "vice-things", "rdm48-mat",
            "rdm48-splithalf", "brainscore-validation", "thingsplus-images", "things-images",
            "rdm92-behaviour", "rdm92-brain", "rdm92-models", "cichy2019", "king2019",
            "peterson2018", "alignet-valid", "levels"}
    assert need <= set(names)
    glocal = [d for d in public_datasets() if d.kind == "transform"]
    assert len(glocal) == 12 and all(d.format == "glocal-npz" for d in glocal)
    from alignkit.probe.published import get_published

    assert glocal[0].files[0] == get_published(glocal[0].name).remote()  # the same entry
    for d in public_datasets():
        assert d.description and d.convention and d.licence and d.citation and d.format, d.name
        for f in d.files:
            assert f.sha256 is None or len(f.sha256) == 64
            if "unknown.invalid" in f.url:
                assert not d.url_confirmed, d.name
    assert get_public("things-images").password and not get_public("thingsplus-images").password
    assert get_public("thingsplus-images").licence.startswith("CC0")
    assert get_public("things-2023-train").from_archive == "things-2023-triplet-dataset"


def test_the_docs_list_every_registry_entry():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "data-formats.md").read_text()
    section = docs.split("## Public data sets", 1)[1].split("\n## ", 1)[0]
    for d in public_datasets():
        assert f"`{d.name}`" in section, d.name
        if not d.url_confirmed:
            row = next(ln for ln in section.splitlines() if ln.startswith(f"| `{d.name}` |"))
            assert "URL not confirmed" in row, d.name


def test_known_digests_match_real_copies_put_by_hand(tmp_path, monkeypatch, shared_data):
    """The registry's digests for files we hold copies of: rsatoolbox's 92_modelRDMs.mat (shared
    data) and RDM48_triplet.mat (bundled byte-for-byte); offline, by hand, then read by name."""
    from alignkit.data.bundled import bundled_path

    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("ALIGNKIT_DATA_MIRROR", raising=False)
    for name, src in (("rdm92-models", shared_data / "rdm" / "92_modelRDMs.mat"),
                      ("rdm48-mat", bundled_path("rdm48"))):
        dest = cached_path(get_public(name).files[0])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        r = _invoke("data", "fetch", name, "--offline")
        assert r.exit_code == 0 and "sha256 known; verified" in r.output, r.output
    info = json.loads(_invoke("data", "info", "rdm92-models", "--key", "monkeyIT", "--format",
                              "json").output)
    assert info["state"] == "cached" and info["read_as"]["shape"] == [92, 92]
    r = _invoke("data", "info", "rdm48-mat", "--format", "json")
    assert json.loads(r.output)["read_as"]["shape"] == [48, 48]


def test_raw_2023_csv_by_a_fetched_name_reads_with_its_own_reader(tmp_path, server, registered):
    """A fetched name whose format has a reader of its own (the raw 2023 CSV: 1-based canonical
    indices, choice = position of the odd one out) reads through that reader everywhere."""
    from alignkit.data import load_triplets

    arr = load_triplets("things-test20k").array[:300]
    rng = np.random.default_rng(1)
    lines = ["image1\timage2\timage3\tchoice\tRT\tnoise_ceiling\tsubject_id\tHIT_nr\ttrial_nr\t"
             "age\tgender\tdate\ttime\tdataset"]
    for i, (a, b, c) in enumerate(arr):
        order = rng.permutation(3)
        items = [(a, b, c)[k] for k in order]
        choice = int(np.flatnonzero(order == 2)[0]) + 1  # where the odd one out went
        lines.append("\t".join(map(str, [items[0] + 1, items[1] + 1, items[2] + 1, choice, 1500,
                                         0, f"s{i % 4}", 1, i, 30, "f", "d", "t", 1])))
    sha = server.put("things/raw.csv", ("\n".join(lines) + "\n").encode())
    registered("test-things-raw", [("things/raw.csv", sha)], format="things-2023-raw", things=True)
    assert _invoke("data", "fetch", "test-things-raw").exit_code == 0
    t = load_triplets("test-things-raw")
    # the same judgments, odd one out last (the first two in either order)
    got = np.sort(t.array[:, :2], axis=1), t.array[:, 2]
    assert np.array_equal(got[0], np.sort(arr[:, :2], axis=1)) and np.array_equal(got[1], arr[:, 2])
    assert set(t.subjects) == {"s0", "s1", "s2", "s3"}
    store = _things_store(tmp_path)
    args = ["score", "ooo", str(store), "--format", "json", "--no-record"]
    r = _invoke(*args, "--triplets", "test-things-raw")
    assert r.exit_code == 0, r.output
    (tmp_path / "canon.txt").write_text("".join(f"{a} {b} {c}\n" for a, b, c in arr))
    ref = _invoke(*args, "--triplets", str(tmp_path / "canon.txt"), "--object-ids", "things")
    assert json.loads(r.stdout)[0]["accuracy"] == json.loads(ref.stdout)[0]["accuracy"]


def test_an_rdm_by_a_fetched_name_reads_like_the_file(tmp_path, server, registered, shared_data):
    """A fetched RDM name (the real 92-image model RDMs, MATLAB struct array) reads as the file."""
    from alignkit.data import load_rdm

    raw = (shared_data / "rdm" / "92_modelRDMs.mat").read_bytes()
    sha = server.put("rdm/92_modelRDMs.mat", raw)
    registered("test-rdm92", [("rdm/92_modelRDMs.mat", sha)], kind="rdm", format="mat-rdm")
    r = _invoke("data", "info", "test-rdm92", "--key", "monkeyIT", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["state"] == "not fetched"
    assert _invoke("data", "fetch", "test-rdm92").exit_code == 0
    by_name = load_rdm("test-rdm92", key="monkeyIT")
    by_file = load_rdm(shared_data / "rdm" / "92_modelRDMs.mat", key="monkeyIT")
    assert np.array_equal(by_name.matrix, by_file.matrix) and by_name.matrix.shape == (92, 92)
    info = json.loads(_invoke("data", "info", "test-rdm92", "--key", "monkeyIT",
                              "--format", "json").output)
    assert info["state"] == "cached" and info["read_as"]["shape"] == [92, 92]


def test_a_fetched_name_with_its_own_reader_also_reads_with_object_ids_given(server, registered):
    """Giving object_ids (--object-ids) with a fetched raw 2023 name still reads it with the raw
    reader (1-based, choice = position of the odd one out), not the generic table reader."""
    from alignkit.data import load_triplets, things_ids

    lines = ["image1\timage2\timage3\tchoice\tRT\tnoise_ceiling\tsubject_id\tHIT_nr\ttrial_nr\t"
             "age\tgender\tdate\ttime\tdataset",
             "10\t20\t30\t1\t900\t0\ts1\t1\t1\t30\tf\td\tt\t1",
             "40\t50\t60\t3\t900\t0\ts2\t1\t2\t30\tf\td\tt\t1"]
    sha = server.put("things/raw-ids.csv", ("\n".join(lines) + "\n").encode())
    registered("test-raw-ids", [("things/raw-ids.csv", sha)], format="things-2023-raw", things=True)
    assert _invoke("data", "fetch", "test-raw-ids").exit_code == 0
    t = load_triplets("test-raw-ids", object_ids="things")
    assert t.array.tolist() == [[19, 29, 9], [39, 49, 59]]
    assert list(t.object_ids) == list(things_ids().astype(str)) and list(t.subjects) == ["s1", "s2"]
