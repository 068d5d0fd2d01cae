"""Tests for minigrad.io: checkpoint round trips, atomic writes, and refusing pickles."""

import os
import pickle
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigrad import io
from minigrad.io import flatten, load, save, unflatten


def assert_same(got: np.ndarray, expected) -> None:
    """Same dtype, shape and bytes (so NaNs and signed zeros count too)."""
    expected = np.asarray(expected)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_round_trip_nested(tmp_path):
    rng = np.random.default_rng(0)
    state = {
        "conv1.W": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "affine": {"W": rng.standard_normal((5, 3)), "b": np.zeros(3, np.float64)},
        "opt": {"lr": 0.01, "step": 7, "nesterov": True,
                "m": {"0": np.arange(6, dtype=np.int32).reshape(2, 3), "1": np.int64(-3)}},
        "mask": np.array([True, False]),
    }
    save(state, tmp_path / "ckpt.npz")
    loaded = load(tmp_path / "ckpt.npz")

    expected = {
        "conv1.W": state["conv1.W"], "affine.W": state["affine"]["W"],
        "affine.b": state["affine"]["b"], "opt.lr": 0.01, "opt.step": 7,
        "opt.nesterov": True, "opt.m.0": state["opt"]["m"]["0"], "opt.m.1": np.int64(-3),
        "mask": state["mask"],
    }
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        assert_same(loaded[key], value)
    assert unflatten(loaded)["opt"]["m"]["0"].dtype == np.int32


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet="abcxyz_0123", min_size=1, max_size=6),
        hnp.arrays(st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(),
                             hnp.unsigned_integer_dtypes(), hnp.floating_dtypes()),
                   hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)),
        max_size=5,
    )
)
def test_round_trip_any_dtype(state):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.npz"
        save({"group": state}, path)
        loaded = load(path)
    assert sorted(loaded) == sorted(f"group.{key}" for key in state)
    for key, value in state.items():
        assert_same(loaded[f"group.{key}"], value)


def test_path_kept_exactly_and_str_paths(tmp_path):
    save({"a": np.ones(2)}, str(tmp_path / "checkpoint"))
    assert leftovers(tmp_path, set()) == ["checkpoint"]
    assert_same(load(str(tmp_path / "checkpoint"))["a"], np.ones(2))


def test_empty_state_round_trips(tmp_path):
    save({}, tmp_path / "empty.npz")
    assert load(tmp_path / "empty.npz") == {}


def test_new_file_has_default_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save({"a": np.ones(1)}, tmp_path / "ckpt.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "ckpt.npz").stat().st_mode & 0o777 == 0o644


def test_reserved_savez_names_are_plain_keys(tmp_path):
    state = {"file": np.ones(1), "allow_pickle": np.zeros(1), "arr_0": np.full(1, 2.0)}
    save(state, tmp_path / "ckpt.npz")
    loaded = load(tmp_path / "ckpt.npz")
    for key, value in state.items():
        assert_same(loaded[key], value)


@pytest.mark.parametrize(
    "state, error, message",
    [
        ({"a": {1: np.ones(1)}}, TypeError, "int key 1 under 'a'"),
        ({2: np.ones(1)}, TypeError, "int key 2"),
        ({"a": {"b": np.array([object()])}}, TypeError, "'a.b' is an object array"),
        ({"ragged": [[1, 2], [3]]}, TypeError, "'ragged'"),
        ({"a.b": np.ones(1), "a": {"b": np.ones(1)}}, ValueError, "same name 'a.b'"),
        ({"": np.ones(1)}, ValueError, "empty key"),
        ({"w\x00a": np.ones(1), "w\x00b": np.ones(1)}, ValueError, r"'w\\x00a' contains"),
        ({"a": {"b/c": np.ones(1)}}, ValueError, "'b/c' under 'a' contains '/'"),
        ({"when": np.datetime64("2026-01-01")}, TypeError, "'when' has dtype datetime64"),
        ({"z": np.ones(2, complex)}, TypeError, "'z' has dtype complex128"),
        ({"raw": b"bytes"}, TypeError, "'raw' has dtype |S5"),
    ],
)
def test_save_rejects_bad_state(tmp_path, state, error, message):
    with pytest.raises(error, match=message):
        save(state, tmp_path / "ckpt.npz")
    assert leftovers(tmp_path, set()) == []


def test_flatten_and_unflatten():
    flat = flatten({"opt": {"m": {"0": 1, "1": 2}}, "step": 3})
    assert list(flat) == ["opt.m.0", "opt.m.1", "step"]
    assert unflatten(flat) == {"opt": {"m": {"0": 1, "1": 2}}, "step": 3}
    for flat in [{"a": 1, "a.b": 2}, {"a.b": 1, "a": 2}]:
        with pytest.raises(ValueError, match="'a' is a value and also the prefix"):
            unflatten(flat)


@pytest.mark.parametrize("failing", ["write_array", "fsync", "replace"])
def test_failed_save_leaves_old_checkpoint(tmp_path, monkeypatch, failing):
    path = tmp_path / "ckpt.npz"
    save({"w": np.arange(3.0)}, path)
    before = path.read_bytes()

    def write_partly_then_fail(file, array, **kwargs):
        file.write(b"\x93NUMPY partial bytes")
        raise OSError("disk full")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    if failing == "write_array":
        monkeypatch.setattr(np.lib.format, "write_array", write_partly_then_fail)
    else:
        monkeypatch.setattr(io.os, failing, fail)
    with pytest.raises(OSError, match="disk full"):
        save({"w": np.zeros(1000)}, path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert leftovers(tmp_path, {"ckpt.npz"}) == []
    assert_same(load(path)["w"], np.arange(3.0))


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save({"a": np.ones(1)}, tmp_path / "nowhere" / "ckpt.npz")


class CreatesMarker:
    """Unpickling this runs ``Path(marker).touch()``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_load_refuses_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"w": CreatesMarker(marker)}))
    with pytest.raises(ValueError, match="not a minigrad checkpoint.*pickles are never loaded"):
        load(path)
    assert not marker.exists()


def test_load_refuses_object_arrays_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    payload = np.array([CreatesMarker(marker)], dtype=object)

    npy = tmp_path / "objects.npy"
    np.save(npy, payload, allow_pickle=True)
    with pytest.raises(ValueError, match=r"not a minigrad checkpoint.*\.npy"):
        load(npy)

    npz = tmp_path / "objects.npz"
    np.savez(npz, fine=np.ones(2), w=payload)
    with pytest.raises(ValueError, match="entry 'w' is an object array") as info:
        load(npz)
    assert str(npz) in str(info.value)
    assert not marker.exists()


def test_load_refuses_zip_of_other_things(tmp_path):
    import zipfile

    path = tmp_path / "notes.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="'readme.txt' is not a .npy array"):
        load(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_load_truncated_checkpoint(tmp_path, keep):
    path = tmp_path / "ckpt.npz"
    save({"a": np.arange(2000.0), "b": np.ones((40, 40))}, path)
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep)])
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        load(path)
    assert str(path) in str(info.value)


def test_load_corrupt_member(tmp_path):
    path = tmp_path / "ckpt.npz"
    save({"a": np.arange(2000.0)}, path)
    content = bytearray(path.read_bytes())
    content[500] ^= 0xFF  # inside the array data: the CRC check fails
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.npz")


def write_zip(path: Path, members: list[tuple[str, bytes]], compression=None) -> Path:
    """A zip of the given (name, content) members, duplicates and all, as an attacker writes."""
    import warnings
    import zipfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression or zipfile.ZIP_STORED) as zf:
            for name, content in members:
                zf.writestr(name, content)
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    import io as pyio

    buffer = pyio.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.mark.parametrize("value", [
    np.array(["2026-01-01", "NaT"], dtype="datetime64[D]"),
    np.array([1, 2], dtype="timedelta64[s]"),
    np.array([b"raw"]),
    np.array([1 + 2j]),
    np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
])
def test_load_refuses_entries_that_are_not_numbers_or_text(tmp_path, value):
    path = tmp_path / "ckpt.npz"
    np.savez(path, fine=np.ones(2), weird=value)
    message = f"entry 'weird' of {path} has dtype {value.dtype}"
    with pytest.raises(TypeError, match=re.escape(message)):
        load(path)


def test_load_refuses_duplicate_members(tmp_path):
    path = write_zip(tmp_path / "dup.npz", [("w.npy", npy_bytes(np.zeros(2))),
                                            ("w.npy", npy_bytes(np.ones(2)))])
    with pytest.raises(ValueError, match="two members named 'w.npy'"):
        load(path)


def test_load_refuses_a_fifo_instead_of_waiting(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "ckpt.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a FIFO, not a regular file"):
        load(fifo)  # returns at once: nobody ever writes to it
    with pytest.raises(ValueError, match="is a folder, not a regular file"):
        load(tmp_path)


def test_load_caps_the_decompressed_size(tmp_path, monkeypatch):
    import zipfile

    # 16 MiB of zeros deflate to about 16 KB: a small zip bomb.
    bomb = write_zip(tmp_path / "bomb.npz",
                     [("small.npy", npy_bytes(np.ones(4))),
                      ("big.npy", npy_bytes(np.zeros(2**21)))], zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ValueError, match=r"more than max_bytes=1,048,576 .*member 'big.npy'"):
        load(bomb, max_bytes=2**20)
    monkeypatch.setattr(io, "MAX_LOAD_BYTES", 2**20)
    with pytest.raises(ValueError, match="member 'big.npy'"):
        load(bomb)
    assert load(bomb, max_bytes=2**25)["big"].shape == (2**21,)
    monkeypatch.undo()
    assert io.MAX_LOAD_BYTES == 2**30
    assert load(bomb)["big"].nbytes == 2**24


def test_load_refuses_a_header_larger_than_its_member(tmp_path):
    import io as pyio

    # A 10**13-element shape over 8 bytes of data: np.load would try to allocate 80 TB.
    buffer = pyio.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**13,)})
    absurd = buffer.getvalue() + b"\0" * 8
    path = write_zip(tmp_path / "absurd.npz", [("w.npy", absurd)])
    with pytest.raises(ValueError, match=r"member 'w.npy' declares shape \(10000000000000,\)"):
        load(path, max_bytes=2**40)
    honest = write_zip(tmp_path / "empty.npz", [("w.npy", npy_bytes(np.zeros((0, 3))))])
    assert load(honest)["w"].shape == (0, 3)


KILLED_SAVE = """
import sys, time
import numpy as np
from minigrad import io

def write_then_hang(file, array, **kwargs):
    file.write(b"half a checkpoint")
    file.flush()
    print("writing", flush=True)
    time.sleep(60)

np.lib.format.write_array = write_then_hang
io.save({"w": np.zeros(10)}, sys.argv[1])
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process ids as used on POSIX")
def test_next_save_removes_the_tmp_file_of_a_killed_save(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "ckpt.npz"
    save({"w": np.arange(3.0)}, path)
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    child = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        orphans = leftovers(tmp_path, {"ckpt.npz"})
        assert len(orphans) == 1 and orphans[0].startswith(f".ckpt.npz.{child.pid}.")
        save({"w": np.ones(2)}, path)  # the writer is alive: its file stays
        assert leftovers(tmp_path, {"ckpt.npz"}) == orphans
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert leftovers(tmp_path, {"ckpt.npz"}) == orphans  # what kill -9 leaves behind
    (tmp_path / ".other.npz.1.0123456789ab.tmp").write_bytes(b"another path's")
    save({"w": np.full(2, 2.0)}, path)
    assert leftovers(tmp_path, {"ckpt.npz"}) == [".other.npz.1.0123456789ab.tmp"]
    assert_same(load(path)["w"], np.full(2, 2.0))


def test_text_settings_round_trip(tmp_path):
    """Text entries (a schedule's settings) are kept as fixed-width characters, no pickle."""
    save({"anneal_strategy": "cos", "modes": np.array(["min", "max"])}, tmp_path / "s.npz")
    loaded = load(tmp_path / "s.npz")
    assert loaded["anneal_strategy"] == "cos" and loaded["anneal_strategy"].dtype.kind == "U"
    assert list(loaded["modes"]) == ["min", "max"]
