"""Hostile stores: damaged data is refused, writers never tear readers, locks hold.

Each damage case damages one entry (``m/l``) of a store that also holds a
sound entry (``m/ok``, with a probe), then checks that scoring and
``alignkit store verify`` exit with status 2 and one line naming the store,
the entry and the fault, while the sound entry still verifies.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

import alignkit.store as store_mod
from alignkit.cli import cli
from alignkit.errors import CorruptEntryError, StoreInUseError
from alignkit.store import EmbeddingStore

N, P, CR = 40, 6, 10


def _x(seed: int = 0, n: int = N, p: int = P) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, p)).astype(np.float32)


def _ids(prefix: str = "s", n: int = N) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alignkit.cli", *args], capture_output=True,
                          text=True, timeout=300, **kw)


def _one_line(stderr: str, *parts: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("alignkit: error: ") and "Traceback" not in stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _make_store(path: Path, old_format: bool, monkeypatch) -> None:
    """``m/l`` (to be damaged) and ``m/ok`` (with a probe), chunked by 10 rows."""
    if old_format:  # as written before crc32c chunks and ids_checksum existed
        monkeypatch.setattr(store_mod, "_chunk_codecs", lambda: {})
    st = EmbeddingStore(path, mode="a")
    for layer in ("l", "ok"):
        st.write("m", layer, _x(), _ids(), chunk_rows=CR)
    st.entry("m", "ok").save_probe("pr", weights=np.ones((P, 2)), mean=0.0, std=1.0)
    if old_format:
        g = zarr.open_group(str(path), mode="r+")
        for layer in ("l", "ok"):
            meta = dict(g[f"m/{layer}"].attrs["alignkit"])
            meta.pop("ids_checksum")
            g[f"m/{layer}"].attrs["alignkit"] = meta
        pmeta = dict(g["m/ok/probes/pr"].attrs["alignkit"])
        pmeta.pop("arrays_checksum")
        g["m/ok/probes/pr"].attrs["alignkit"] = pmeta
        monkeypatch.undo()
    np.save(path.parent / "trip.npy", np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]]))


def _flip_byte(path: Path) -> None:
    f = path / "m" / "l" / "features" / "c" / "1" / "0"
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0xFF
    f.write_bytes(bytes(b))


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])


def _edit_features(path: Path) -> None:
    zarr.open_group(str(path), mode="r+")["m/l/features"][5, 2] = 3.0


def _rewrite_features(path: Path) -> None:
    g = zarr.open_group(str(path), mode="r+")["m/l"]
    x = g["features"][:]
    g.create_array("features", shape=x.shape, dtype=x.dtype, overwrite=True)[:] = x[::-1]


def _delete_ids_chunk(path: Path) -> None:
    (path / "m" / "l" / "ids" / "c" / "0").unlink()


def _duplicate_id(path: Path) -> None:
    a = zarr.open_group(str(path), mode="r+")["m/l/ids"]
    v = a[:]
    v[3] = v[4]
    a[:] = v


def _shorten_ids(path: Path) -> None:
    g = zarr.open_group(str(path), mode="r+")["m/l"]
    v = g["ids"][:]
    g.create_array("ids", shape=(N - 1,), dtype=str, overwrite=True)[:] = v[:-1]


DAMAGE = {
    "flipped byte in a features chunk": (_flip_byte, "m/l", "features"),
    "truncated features chunk": (
        lambda p: _truncate(p / "m" / "l" / "features" / "c" / "2" / "0"), "m/l", "features"),
    "features edited with zarr": (_edit_features, "m/l", "does not match the recorded"),
    "features rewritten with zarr": (_rewrite_features, "m/l", "does not match the recorded"),
    "ids chunk deleted": (_delete_ids_chunk, "m/l", "empty"),
    "duplicated id": (_duplicate_id, "m/l", "occurs more than once"),
    "ids of the wrong length": (_shorten_ids, "m/l", "holds 39 ids for n=40 rows"),
    "entry zarr.json truncated": (
        lambda p: _truncate(p / "m" / "l" / "zarr.json"), "m/l", "zarr.json cannot be read"),
    "features zarr.json truncated": (
        lambda p: _truncate(p / "m" / "l" / "features" / "zarr.json"), "m/l",
        "features/zarr.json cannot be read"),
    "ids zarr.json truncated": (
        lambda p: _truncate(p / "m" / "l" / "ids" / "zarr.json"), "m/l",
        "ids/zarr.json cannot be read"),
}


@pytest.mark.parametrize("old_format", [False, True], ids=["current", "old-format"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["score ooo", "store verify"])
def test_damage_exits_2_naming_the_entry(
    tmp_path: Path, monkeypatch, case: str, command: str, old_format: bool
) -> None:
    path = tmp_path / "s.zarr"
    _make_store(path, old_format, monkeypatch)
    damage, entry, what = DAMAGE[case]
    damage(path)
    if command == "score ooo":
        res = _run("score", "ooo", str(path), "--triplets", str(tmp_path / "trip.npy"),
                   "--model", "m", "--layer", "l")
        assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
        _one_line(res.stderr, str(path), entry, what)
    else:
        res = _run("store", "verify", str(path))
        assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
        _one_line(res.stderr, str(path), entry, "damaged")
        lines = res.stdout.strip().splitlines()
        assert any(ln.startswith(f"{entry}: DAMAGED: ") and what in ln for ln in lines), lines
        assert any(ln.startswith("m/ok: ok: sha256:") for ln in lines), lines
        assert "m/ok probe pr: ok" in lines


@pytest.mark.parametrize("old_format", [False, True], ids=["current", "old-format"])
def test_damaged_probe_and_sound_store(tmp_path: Path, monkeypatch, old_format: bool) -> None:
    path = tmp_path / "s.zarr"
    _make_store(path, old_format, monkeypatch)
    res = _run("store", "verify", str(path))
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert res.stdout.count(": ok") == 3
    zarr.open_group(str(path), mode="r+")["m/ok/probes/pr/weights"][0, 0] = np.nan
    res = _run("store", "verify", str(path))
    assert res.exit_code == 2
    _one_line(res.stderr, str(path), "m/ok probe pr")
    with pytest.raises(CorruptEntryError, match="m/ok probe 'pr': damaged probe"):
        EmbeddingStore(path).entry("m", "ok").load_probe("pr")


def test_features_iter_and_verify_refuse_damage(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.zarr"
    _make_store(path, True, monkeypatch)
    _edit_features(path)
    e = EmbeddingStore(path).entry("m", "l")
    with pytest.raises(CorruptEntryError, match="does not match"):
        for _ in e.features_iter(block_rows=10):
            pass
    with pytest.raises(CorruptEntryError, match="does not match") as info:
        e.verify()
    assert info.value.entry == "m/l" and info.value.store == str(path)
    np.testing.assert_array_equal(e.features(verify=False)[0], _x()[0])  # the opt-out reads


# --------------------------------------------------------------------------- overwrite swap
_READER = """
import json, os, sys
import numpy as np
import alignkit.errors
from alignkit.store import EmbeddingStore
REPLACED = getattr(alignkit.errors, "EntryReplacedError", ())
path, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
versions = {k: (np.load(f"{path}.{k}.npy"), open(f"{path}.{k}.ids").read().split())
            for k in ("a", "b")}
seen = []
def read():
    try:
        e = EmbeddingStore(path).entry("m", "l")
        x = e.features()
        ids = e.ids.tolist()
    except Exception as exc:
        if isinstance(exc, REPLACED):
            return "replaced"
        return f"BAD {type(exc).__name__}: {exc}"
    for k, (vx, vids) in versions.items():
        if x.shape == vx.shape and np.array_equal(x, vx) and ids == vids:
            return k
    return "BAD mixed rows"
while not os.path.exists(stop):
    seen.append(read())
seen.append("final:" + read())
json.dump(seen, open(out, "w"))
"""


def test_reader_never_sees_a_torn_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    n, p = 384, 8192  # two chunks of 256 rows (about 8 MiB each)
    for k, seed in (("a", 1), ("b", 2)):
        np.save(f"{path}.{k}.npy", _x(seed, n, p))
        Path(f"{path}.{k}.ids").write_text("\n".join(_ids(k, n)) + "\n")

    def imp(k: str) -> None:
        proc = _cli("store", "import", f"{path}.{k}.npy", "--ids", f"{path}.{k}.ids",
                    "--store", str(path), "--model", "m", "--layer", "l", "--overwrite")
        assert proc.returncode == 0, proc.stderr

    imp("a")
    stop, out = tmp_path / "stop", tmp_path / "seen.json"
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_READER), str(path),
                               str(stop), str(out)])
    try:
        for k in ("b", "a", "b", "a", "b"):
            imp(k)
    finally:
        stop.touch()
        assert reader.wait(timeout=300) == 0
    seen = json.loads(out.read_text())
    assert [s for s in seen if s.startswith("BAD")][:3] == []
    assert seen[-1] == "final:b"
    assert not [d for d in (path / ".alignkit" / "staging").iterdir() if d.is_dir()]
    assert not [d for d in (path / ".alignkit" / "trash").iterdir() if d.is_dir()]


_KILLED = """
import os, signal, sys
import numpy as np
import alignkit.store as sm
from alignkit.store import EmbeddingStore
path, where = sys.argv[1], sys.argv[2]
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "before-swap":
    sm._exchange = die
elif where == "after-swap":
    sm._rmtree = die
st = EmbeddingStore(path, mode="a")
x = np.full((40, 6), 7.0, dtype=np.float32)
w = st.create("m", "l", n=40, p=6, ids=[f"t{i}" for i in range(40)], chunk_rows=10, overwrite=True)
w.write_rows(0, x[:20])
if where == "mid-write":
    die()
w.write_rows(20, x[20:])
w.finalize()
"""


@pytest.mark.parametrize(("where", "survivor"),
                         [("mid-write", "old"), ("before-swap", "old"), ("after-swap", "new")])
def test_sigkill_during_overwrite(tmp_path: Path, monkeypatch, where: str, survivor: str) -> None:
    path = tmp_path / "s.zarr"
    _make_store(path, False, monkeypatch)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED), str(path), where],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    e = EmbeddingStore(path).entry("m", "l")
    if survivor == "old":
        np.testing.assert_array_equal(e.features(), _x())
        assert e.ids.tolist() == _ids()
    else:
        np.testing.assert_array_equal(e.features(), np.full((N, P), 7.0, dtype=np.float32))
        assert e.ids.tolist() == _ids("t")
    res = _run("store", "verify", str(path))
    assert res.exit_code == 0, (res.stdout, res.stderr)
    # the next writer takes the dead writer's lock over and clears what it left
    with pytest.warns(UserWarning, match="taking over the lock left by process .* no longer running"):
        EmbeddingStore(path, mode="a").write("m", "l", _x(5), _ids(), overwrite=True)
    np.testing.assert_array_equal(EmbeddingStore(path).entry("m", "l").features(), _x(5))
    internal = path / ".alignkit"
    assert not [d for d in (internal / "staging").iterdir() if d.is_dir()]
    assert not [d for d in (internal / "trash").iterdir() if d.is_dir()]
    assert not (internal / "locks" / "entries" / "m" / "l.lock").exists()


# --------------------------------------------------------------------------- locks
_HOLDER = """
import sys
from alignkit.store import EmbeddingStore, _Lock
path, what = sys.argv[1], sys.argv[2]
if what == "store creation":
    from pathlib import Path
    import alignkit.store as sm
    Path(path).mkdir()
    sm._ensure_internal(Path(path))
    held = _Lock(Path(path) / ".alignkit" / "locks" / "store.lock", "store creation", path).acquire()
else:
    st = EmbeddingStore(path, mode="a")
    held = st.create("m", "l", n=4, p=2, ids=list("abcd"), overwrite=True)
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize(("case", "what"), [
    ("new store, same entry", "entry m/l"),
    ("existing entry, --overwrite", "entry m/l"),
    ("store being created", "store creation"),
])
def test_second_writer_gets_in_use(tmp_path: Path, case: str, what: str) -> None:
    path = tmp_path / "s.zarr"
    np.save(tmp_path / "x.npy", _x(0, 4, 2))
    (tmp_path / "ids.txt").write_text("a\nb\nc\nd\n")
    if case.startswith("existing"):
        EmbeddingStore(path, mode="a").write("m", "l", _x(1, 4, 2), list("abcd"))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), str(path),
         "store creation" if what == "store creation" else "entry"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        args = ("store", "import", str(tmp_path / "x.npy"), "--ids", str(tmp_path / "ids.txt"),
                "--store", str(path), "--model", "m", "--layer", "l", "--overwrite")
        proc = _cli(*args)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        _one_line(proc.stderr, str(path), f"{what} is in use", f"process {holder.pid} on host")
        with pytest.raises(StoreInUseError):
            if what == "store creation":
                EmbeddingStore(path, mode="a")
            else:
                EmbeddingStore(path, mode="a").create("m", "l", n=4, p=2, ids=list("abcd"),
                                                       overwrite=True)
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(timeout=120) == 0
    proc = _cli(*args)  # the holder is gone: the same import now works
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(EmbeddingStore(path).entry("m", "l").features(), _x(0, 4, 2))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("which", ["entry lock with a staging folder", "store creation lock"])
def test_stale_lock_is_taken_over(tmp_path: Path, which: str) -> None:
    path = tmp_path / "s.zarr"
    np.save(tmp_path / "x.npy", _x(0, 4, 2))
    (tmp_path / "ids.txt").write_text("a\nb\nc\nd\n")
    pid = _dead_pid()
    record = {"pid": pid, "host": socket.gethostname(), "process_start": None,
              "acquired": "2020-01-01T00:00:00+00:00", "what": "x", "argv": []}
    if which.startswith("entry"):
        EmbeddingStore(path, mode="a").write("m", "l", _x(1, 4, 2), list("abcd"))
        staging = path / ".alignkit" / "staging" / "deadbeef"
        staging.mkdir(parents=True)
        (staging / "zarr.json").write_text("{}")
        record["staging"] = ".alignkit/staging/deadbeef"
        lock = path / ".alignkit" / "locks" / "entries" / "m" / "l.lock"
    else:
        lock = path / ".alignkit" / "locks" / "store.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps(record))
    proc = _cli("store", "import", str(tmp_path / "x.npy"), "--ids", str(tmp_path / "ids.txt"),
                "--store", str(path), "--model", "m", "--layer", "l", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert f"taking over the lock left by process {pid} on host" in proc.stderr
    assert not lock.exists()
    if which.startswith("entry"):
        assert not staging.exists()
    np.testing.assert_array_equal(EmbeddingStore(path).entry("m", "l").features(), _x(0, 4, 2))


def test_lock_of_a_live_process_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    EmbeddingStore(path, mode="a").write("m", "l", _x(1, 4, 2), list("abcd"))
    lock = path / ".alignkit" / "locks" / "entries" / "m" / "l.lock"
    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(StoreInUseError, match=f"process {os.getppid()} on host"):
        EmbeddingStore(path, mode="a").write("m", "l", _x(2, 4, 2), list("abcd"), overwrite=True)
    other = json.dumps({"pid": 1, "host": "another-host.example"})
    lock.write_text(other)
    with pytest.raises(StoreInUseError, match="another-host.example"):
        EmbeddingStore(path, mode="a").delete("m", "l")
    np.testing.assert_array_equal(EmbeddingStore(path).entry("m", "l").features(), _x(1, 4, 2))


def test_lock_held_by_children_of_a_killed_writer_is_taken_over_once_they_exit(tmp_path):
    """Data-loader workers forked by a writer inherit its flock; after the writer is killed
    they keep it for a moment. The next writer waits for them instead of reporting 'in use'."""
    import signal
    import subprocess
    import sys
    import time
    import warnings

    from alignkit.store import _Lock

    lock_path = tmp_path / "entry.lock"
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from alignkit.store import _Lock\n"
        "lock = _Lock(Path(sys.argv[1]), 'entry m/l', 's.zarr').acquire()\n"
        "if os.fork() == 0:\n"
        "    time.sleep(3)\n"
        "    os._exit(0)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(lock_path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    t0 = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lock = _Lock(lock_path, "entry m/l", "s.zarr").acquire()
    waited = time.monotonic() - t0
    lock.release()
    assert 0.5 < waited < 30
    assert any("no longer running" in str(w.message) for w in caught)
