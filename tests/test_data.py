"""Tests for minigrad.data: IDX parsing, MNIST lookup and download, the subset, DataLoader."""

import functools
import gzip
import hashlib
import http.server
import socket
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from minigrad import data
from minigrad.data import FILES, DataLoader, find_mnist, load_mnist, read_idx

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
N_TRAIN, N_TEST = 12, 5


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def fixture_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Small MNIST-shaped arrays, keyed by file name, whose labels cover all ten digits."""
    rng = np.random.default_rng(seed)
    return {
        FILES["train_images"]: rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        FILES["train_labels"]: np.arange(N_TRAIN, dtype=np.uint8) % 10,
        FILES["test_images"]: rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        FILES["test_labels"]: np.array([3, 1, 4, 1, 5], dtype=np.uint8),
    }


def write_mnist(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = fixture_arrays(seed)
    for name, array in arrays.items():
        write_idx(folder / name, array)
    return arrays


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Keep every test away from the real cache and $MINIGRAD_DATA, and off the network."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MINIGRAD_DATA", raising=False)
    monkeypatch.setattr(data, "MIRRORS", ())
    return home


# ----------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 28, 28)])
def test_read_idx_reads_good_files(tmp_path, gz, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "f-idx", array, gz=gz))
    assert got.dtype == np.uint8
    assert got.shape == shape
    np.testing.assert_array_equal(got, array)
    got[...] = 0  # writable, not a view of an immutable buffer


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
CORRUPT = {
    "bad magic": (b"\x01\x00" + GOOD[2:], "two zero bytes"),
    "float dtype": (GOOD[:2] + b"\x0d" + GOOD[3:], "0x0D"),
    "unknown dtype": (GOOD[:2] + b"\x42" + GOOD[3:], "0x42"),
    "zero dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    "short header": (GOOD[:2], "too short"),
    "truncated dims": (GOOD[:9], "truncated inside its header"),
    "truncated payload": (GOOD[:-5], "need 24 bytes of data, got 19"),
    "trailing bytes": (GOOD + b"\x00\x00", "need 24 bytes of data, got 26"),
    "truncated gzip": (gzip.compress(GOOD)[:-10], "gzip"),
    "gzip trailing garbage": (gzip.compress(GOOD) + b"garbage", "gzip"),
}


@pytest.mark.parametrize("content, message", CORRUPT.values(), ids=CORRUPT.keys())
def test_read_idx_rejects_corrupt_files(tmp_path, content, message):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_rejects_corrupt_payload_inside_valid_gzip(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(GOOD[:-1]))
    with pytest.raises(ValueError, match="truncated") as info:
        read_idx(path)
    assert "short.gz" in str(info.value)


# ----------------------------------------------------------------------------------------------
# load_mnist from disk


def test_load_mnist_from_root(tmp_path):
    arrays = write_mnist(tmp_path / "mnist")
    (x_train, t_train), (x_test, t_test) = load_mnist(tmp_path / "mnist", download=False,
                                                      verify=False)

    assert x_train.shape == (N_TRAIN, 1, 28, 28) and x_train.dtype == np.float32
    assert x_test.shape == (N_TEST, 1, 28, 28) and x_test.dtype == np.float32
    assert t_train.shape == (N_TRAIN,) and t_train.dtype == np.int64
    assert t_test.shape == (N_TEST,) and t_test.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    np.testing.assert_allclose(x_train[:, 0] * 255, arrays[FILES["train_images"]], atol=1e-4)
    np.testing.assert_array_equal(t_test, arrays[FILES["test_labels"]])


def test_load_mnist_flatten_and_one_hot(tmp_path):
    arrays = write_mnist(tmp_path)
    (x_train, t_train), (x_test, t_test) = load_mnist(tmp_path, flatten=True, one_hot=True,
                                                      verify=False)

    assert x_train.shape == (N_TRAIN, 784) and x_test.shape == (N_TEST, 784)
    assert t_train.shape == (N_TRAIN, 10) and t_train.dtype == np.float32
    np.testing.assert_array_equal(t_train.sum(axis=1), 1)
    np.testing.assert_array_equal(t_test.argmax(axis=1), arrays[FILES["test_labels"]])


def test_load_mnist_reads_decompressed_files(tmp_path):
    for name, array in fixture_arrays().items():
        write_idx(tmp_path / name.removesuffix(".gz"), array, gz=False)
    (x_train, _), _ = load_mnist(tmp_path, download=False, verify=False)
    assert x_train.shape == (N_TRAIN, 1, 28, 28)


def test_load_mnist_rejects_mismatched_counts(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / FILES["test_labels"], np.zeros(N_TEST + 1, dtype=np.uint8))
    with pytest.raises(ValueError, match="test files"):
        load_mnist(tmp_path, verify=False)


def test_files_found_on_disk_are_verified(tmp_path, monkeypatch, isolated_home):
    root = tmp_path / "mnist"
    write_mnist(root)  # well-formed IDX files, but not MNIST's
    with pytest.raises(ValueError, match="is not the published MNIST") as info:
        load_mnist(root, download=False)
    assert str(root / FILES["train_images"]) in str(info.value)
    assert "verify=False" in str(info.value)
    (x_train, _), _ = load_mnist(root, download=False, verify=False)
    assert x_train.shape == (N_TRAIN, 1, 28, 28)


def test_verdicts_are_cached_by_size_and_mtime(tmp_path, fixture_checksums, monkeypatch):
    root = tmp_path / "mnist"
    write_mnist(root)
    hashed = []
    real = data._idx_sha256
    monkeypatch.setattr(data, "_idx_sha256", lambda raw: hashed.append(1) or real(raw))
    load_mnist(root, download=False)
    assert len(hashed) == 4
    load_mnist(root, download=False)
    assert len(hashed) == 4  # nothing hashed again

    labels = root / FILES["test_labels"]
    write_idx(labels, np.array([3, 1, 4, 1, 6], dtype=np.uint8))  # same size, new content
    with pytest.raises(ValueError, match=f"{labels} is not the published MNIST"):
        load_mnist(root, download=False)
    assert len(hashed) == 5  # only the changed file

    data._verdicts_path().write_text("{garbled")  # a broken cache only costs a re-hash
    write_idx(labels, fixture_arrays()[FILES["test_labels"]])
    load_mnist(root, download=False)
    assert len(hashed) == 9


def test_lookup_order_root_then_env_then_cache(tmp_path, monkeypatch, isolated_home):
    root, env = tmp_path / "root", tmp_path / "env"
    cache = isolated_home / ".cache" / "minigrad" / "mnist"

    assert find_mnist() is None
    write_mnist(cache, seed=3)
    assert find_mnist() == cache
    assert find_mnist(root) == cache  # root lacks the files, so the search goes on

    write_mnist(env, seed=2)
    monkeypatch.setenv("MINIGRAD_DATA", str(env))
    assert find_mnist() == env

    write_mnist(root, seed=1)
    assert find_mnist(root) == root

    for folder, seed in [(root, 1), (None, 2)]:
        expected = fixture_arrays(seed)[FILES["train_images"]]
        (x_train, _), _ = load_mnist(folder, download=False, verify=False)
        np.testing.assert_allclose(x_train[:, 0] * 255, expected, atol=1e-4)


def test_load_mnist_missing_without_download(tmp_path, monkeypatch, isolated_home):
    monkeypatch.setenv("MINIGRAD_DATA", str(tmp_path / "env"))
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "root", download=False)
    message = str(info.value)
    for place in [tmp_path / "root", tmp_path / "env", isolated_home / ".cache"]:
        assert str(place) in message
    assert "MINIGRAD_DATA" in message and "subset=True" in message


# ----------------------------------------------------------------------------------------------
# The embedded subset and the pinned checksums


def test_subset(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("subset=True must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    (x_train, t_train), (x_test, t_test) = load_mnist(subset=True)

    assert x_train.shape == (10_000, 1, 28, 28) and x_test.shape == (2_000, 1, 28, 28)
    assert x_train.dtype == x_test.dtype == np.float32
    assert t_train.shape == (10_000,) and t_test.shape == (2_000,)
    assert t_train.dtype == t_test.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    assert set(np.unique(t_train)) == set(range(10)) == set(np.unique(t_test))
    assert np.bincount(t_train).min() > 800  # every digit well represented
    assert data.SUBSET_PATH.stat().st_size <= 2.5e6

    (x_flat, t_hot), _ = load_mnist(subset=True, flatten=True, one_hot=True)
    assert x_flat.shape == (10_000, 784) and t_hot.shape == (10_000, 10)


needs_shared = pytest.mark.skipif(
    not SHARED_MNIST.is_dir(), reason=f"full MNIST files not available at {SHARED_MNIST}"
)


@needs_shared
def test_pinned_checksums_match_published_files():
    for name in FILES.values():
        raw = (SHARED_MNIST / name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == data.MNIST_GZ_SHA256[name], name
        content = gzip.decompress(raw)
        assert hashlib.sha256(content).hexdigest() == data.MNIST_SHA256[name], name


@needs_shared
def test_the_published_files_verify_once(monkeypatch, isolated_home):
    hashed = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(data.hashlib, "sha256", lambda *a: hashed.append(1) or real_sha256(*a))
    data.verify_mnist(SHARED_MNIST)
    assert len(hashed) == 4  # the .gz hashes match: nothing decompressed
    assert (isolated_home / ".cache" / "minigrad" / "verified.json").is_file()
    data.verify_mnist(SHARED_MNIST)
    assert len(hashed) == 4  # remembered


@needs_shared
def test_subset_is_the_start_of_mnist():
    with np.load(data.SUBSET_PATH, allow_pickle=False) as subset:
        np.testing.assert_array_equal(
            subset["x_test"], read_idx(SHARED_MNIST / FILES["test_images"])[:2_000]
        )
        np.testing.assert_array_equal(
            subset["t_train"], read_idx(SHARED_MNIST / FILES["train_labels"])[:10_000]
        )


# ----------------------------------------------------------------------------------------------
# Downloading from a local server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1: good files under good/, a corrupt copy under bad/."""
    www = tmp_path / "www"
    arrays = write_mnist(www / "good")
    write_mnist(www / "bad")
    name = FILES["train_images"]
    tampered = arrays[name].copy()
    tampered[0, 0, 0] ^= 1
    write_idx(www / "bad" / name, tampered)

    handler = functools.partial(QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", arrays
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 whose port was just freed, so connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture
def fixture_checksums(monkeypatch):
    sums = {
        name: hashlib.sha256(idx_bytes(array)).hexdigest()
        for name, array in fixture_arrays().items()
    }
    monkeypatch.setattr(data, "MNIST_SHA256", sums)


def test_download_tries_mirrors_in_turn_and_caches(tmp_path, server, dead_url,
                                                   fixture_checksums):
    base, arrays = server
    root = tmp_path / "downloaded"
    mirrors = (dead_url, base + "missing/", base + "good")
    (x_train, t_train), (x_test, t_test) = load_mnist(root, mirrors=mirrors)

    assert sorted(p.name for p in root.iterdir()) == sorted(FILES.values())
    assert x_train.shape == (N_TRAIN, 1, 28, 28) and t_test.shape == (N_TEST,)
    np.testing.assert_array_equal(t_train, arrays[FILES["train_labels"]])

    # Cached: a second call needs neither the mirrors nor permission to download.
    (x_again, _), _ = load_mnist(root, download=False, mirrors=())
    np.testing.assert_array_equal(x_again, x_train)


def test_download_goes_to_cache_by_default(server, fixture_checksums, isolated_home):
    base, _ = server
    load_mnist(mirrors=(base + "good/",))
    assert find_mnist() == isolated_home / ".cache" / "minigrad" / "mnist"


def test_download_rejects_checksum_mismatch(tmp_path, server, fixture_checksums):
    base, _ = server
    root = tmp_path / "downloaded"
    with pytest.raises(RuntimeError, match="SHA-256 mismatch") as info:
        load_mnist(root, mirrors=(base + "bad/",))
    assert FILES["train_images"] in str(info.value)
    assert not root.exists() or list(root.iterdir()) == []


def test_download_offline_says_where_it_looked(tmp_path, dead_url, isolated_home):
    with pytest.raises(RuntimeError) as info:
        load_mnist(tmp_path / "root", mirrors=(dead_url,))
    message = str(info.value)
    assert str(tmp_path / "root") in message
    assert str(isolated_home / ".cache" / "minigrad" / "mnist") in message
    assert dead_url in message
    assert "MINIGRAD_DATA" in message and "subset=True" in message
    assert not (tmp_path / "root").exists() or list((tmp_path / "root").iterdir()) == []


def test_download_keeps_nothing_when_writing_fails(tmp_path, server, fixture_checksums,
                                                   monkeypatch):
    base, _ = server
    root = tmp_path / "downloaded"

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(data.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        load_mnist(root, mirrors=(base + "good/",))
    assert list(root.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# DataLoader


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
def test_dataloader_visits_every_sample_once(shuffle, drop_last):
    n, batch_size = 23, 5
    x = np.arange(n)
    t = x * 10
    loader = DataLoader(x, t, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                        seed=0)
    assert len(loader) == (4 if drop_last else 5)

    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader)
        for xb, tb in batches:
            np.testing.assert_array_equal(tb, xb * 10)  # rows stay paired
        sizes = [len(xb) for xb, _ in batches]
        seen = np.concatenate([xb for xb, _ in batches])
        assert len(np.unique(seen)) == len(seen)
        if drop_last:
            assert sizes == [5, 5, 5, 5]
        else:
            assert sizes == [5, 5, 5, 5, 3]
            assert sorted(seen) == list(range(n))
        if not shuffle:
            assert list(seen) == list(range(len(seen)))


def test_dataloader_single_array_yields_bare_batches():
    loader = DataLoader(np.arange(6), batch_size=4, shuffle=False)
    batches = list(loader)
    assert all(isinstance(b, np.ndarray) for b in batches)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5]]


def test_dataloader_without_shuffle_yields_views():
    x = np.zeros((10, 3))
    for xb in DataLoader(x, batch_size=4, shuffle=False):
        assert np.shares_memory(xb, x)


def test_dataloader_reshuffles_and_seed_reproduces_epochs():
    def epochs(loader, count=3):
        return [np.concatenate(list(loader)).tolist() for _ in range(count)]

    x = np.arange(50)
    first = epochs(DataLoader(x, batch_size=8, seed=42))
    assert first == epochs(DataLoader(x, batch_size=8, seed=42))
    assert first != epochs(DataLoader(x, batch_size=8, seed=43))
    assert first[0] != first[1] != first[2]


def test_dataloader_empty_and_repr():
    assert list(DataLoader(np.zeros((0, 2)))) == []
    text = repr(DataLoader(np.zeros((5, 2), np.float32), np.zeros(5, np.int64), batch_size=2))
    assert "(5, 2) float32" in text and "batch_size=2" in text and "3 batches" in text


@pytest.mark.parametrize(
    "arrays, kwargs, error, message",
    [
        ((np.zeros(5), np.zeros(4)), {}, ValueError, r"lengths \[5, 4\]"),
        ((), {}, ValueError, "at least one array"),
        ((np.float64(1.0),), {}, ValueError, "scalar"),
        ((np.zeros(5),), {"batch_size": 0}, ValueError, "got 0"),
        ((np.zeros(5),), {"batch_size": -2}, ValueError, "got -2"),
        ((np.zeros(5),), {"batch_size": 2.5}, TypeError, "got 2.5"),
        ((np.zeros(5),), {"batch_size": True}, TypeError, "got True"),
    ],
)
def test_dataloader_rejects_bad_arguments(arrays, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        DataLoader(*arrays, **kwargs)
    assert "DataLoader" in str(info.value)


def test_dataloader_state_dict_restores_the_batch_order(tmp_path):
    import minigrad

    x = np.arange(20)
    a = DataLoader(x, batch_size=6, seed=7)
    next(iter(a))  # one epoch's permutation drawn: the state has moved on
    minigrad.save({"loader": a.state_dict()}, tmp_path / "ckpt.npz")
    b = DataLoader(x, batch_size=6, seed=99)
    b.load_state_dict({"rng": minigrad.load(tmp_path / "ckpt.npz")["loader.rng"]})
    for _ in range(3):
        assert [xb.tolist() for xb in a] == [xb.tolist() for xb in b]


@pytest.mark.parametrize("state, message", [
    ({}, "'rng'"),
    ({"rng": np.zeros(3)}, "expected a 1-d uint8 array"),
    ({"rng": np.frombuffer(b"{not json", np.uint8)}, "bad 'rng' entry"),
    ({"rng": np.frombuffer(b'{"bit_generator": "MT19937"}', np.uint8)},
     "not the state of a PCG64 generator"),
])
def test_dataloader_load_state_dict_refuses_bad_states(state, message):
    loader = DataLoader(np.arange(4), batch_size=2, seed=0)
    before = loader.rng.bit_generator.state
    with pytest.raises((KeyError, ValueError), match=message):
        loader.load_state_dict(state)
    assert loader.rng.bit_generator.state == before
