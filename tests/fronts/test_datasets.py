"""ncps.datasets: official layouts read from small generated files, download handling without the
network, and the generated tasks."""

import hashlib
import io
import urllib.error
import zipfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from ncps import datasets
from ncps.datasets import atari_cloning, utils
from ncps.datasets import icra2020_lidar_collision_avoidance as icra


@pytest.fixture
def no_network(monkeypatch):
    """Every download attempt fails as it would offline."""

    def fail(url, *args, **kwargs):
        raise urllib.error.URLError(f"no network in tests ({url})")

    monkeypatch.setattr(utils, "urlopen", fail)


def _serve(monkeypatch, payload: bytes, seen: list):
    def fake_urlopen(url, *args, **kwargs):
        seen.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(utils, "urlopen", fake_urlopen)


# -- Atari cloning ---------------------------------------------------------------------------
def _atari_chunks(root: Path, env="breakout", n_train=5, n_val=2, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "data_atari_seq" / env
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            obs = rng.integers(0, 256, size=(32, 84, 84, 4), dtype=np.uint8)
            actions = rng.integers(0, 4, size=32).astype(np.int64)
            atari_cloning.write_chunk(folder / f"{split}_{i}.npz", obs, actions)
    return folder


def test_atari_reads_official_layout_from_root_dir(tmp_path, no_network):
    folder = _atari_chunks(tmp_path)
    ds = datasets.AtariCloningDataset("breakout", split="train", root_dir=tmp_path, download=False, batch_size=2)
    assert len(ds) == 5 and ds.num_batches == 3 and ds.shuffle
    x, y = ds[0]
    with np.load(sorted(folder.glob("train_*.npz"))[0]) as raw:
        assert np.allclose(np.array(x), raw["obs"].astype(np.float32) / 255.0)
        assert np.array_equal(np.array(y), raw["actions"])
    assert x.shape == (32, 84, 84, 4) and x.dtype == mx.float32 and y.dtype == mx.int32
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(2, 32, 84, 84, 4), (2, 32, 84, 84, 4), (1, 32, 84, 84, 4)]
    assert [b[1].shape for b in batches] == [(2, 32), (2, 32), (1, 32)]
    assert all(0.0 <= float(b[0].min()) and float(b[0].max()) <= 1.0 for b in batches)
    assert 1 < ds.num_actions() <= 4


def test_atari_val_split_is_ordered_and_seeded_shuffle_repeats(tmp_path):
    _atari_chunks(tmp_path, n_train=4, n_val=3)
    val = datasets.AtariCloningDataset("breakout", split="val", root_dir=tmp_path, download=False, batch_size=3)
    assert not val.shuffle and len(val) == 3
    ((xb, yb),) = list(val)
    assert np.array_equal(np.array(yb[1]), np.array(val[1][1]))
    a = datasets.AtariCloningDataset("breakout", root_dir=tmp_path, download=False, batch_size=1, seed=3)
    b = datasets.AtariCloningDataset("breakout", root_dir=tmp_path, download=False, batch_size=1, seed=3)
    assert [np.array(y).tolist() for _, y in a] == [np.array(y).tolist() for _, y in b]
    with pytest.raises(ValueError, match="split"):
        datasets.AtariCloningDataset("breakout", split="test", root_dir=tmp_path, download=False)


def test_atari_missing_files_error_says_where_to_put_them(tmp_path, no_network):
    with pytest.raises(datasets.DatasetNotFoundError) as err:
        datasets.AtariCloningDataset("pong", root_dir=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "data_atari_seq" / "pong") in msg
    assert "https://people.csail.mit.edu/mlechner/datasets/pong.zip" in msg and "download=False" in msg
    with pytest.raises(datasets.DatasetNotFoundError, match="download failed") as err:
        datasets.AtariCloningDataset("pong", root_dir=tmp_path, download=True)
    assert "pong.zip" in str(err.value) and isinstance(err.value, FileNotFoundError)


def test_atari_download_unzips_into_root_dir(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _atari_chunks(src, env="fake", n_train=2, n_val=1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(src.rglob("*.npz")):
            zf.write(f, f.relative_to(src).as_posix())
    seen = []
    _serve(monkeypatch, buf.getvalue(), seen)
    root = tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path)
    ds = datasets.AtariCloningDataset("fake", root_dir=root, download=True)
    assert seen == ["https://people.csail.mit.edu/mlechner/datasets/fake.zip"]
    assert len(ds) == 2 and (root / "data_atari_seq" / "fake" / "val_0.npz").is_file()
    assert not (tmp_path / "data_atari_seq").exists()  # the official loader would have put it here
    assert not list(root.glob(".download.*"))


def test_unzip_refuses_paths_outside_target(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", "x")
    _serve(monkeypatch, buf.getvalue(), [])
    with pytest.raises(ValueError, match="outside"):
        utils.download_and_unzip("http://example/evil.zip", tmp_path / "t")
    assert not (tmp_path / "evil.txt").exists()


def test_write_chunk_validates():
    with pytest.raises(ValueError, match="uint8"):
        atari_cloning.write_chunk("x.npz", np.zeros((2, 84, 84, 4), np.float32), np.zeros(2))


# -- ICRA 2020 lidar -------------------------------------------------------------------------
def _icra_file(path: Path, beams=12, n=29, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for i in range(n):
        T = 40 + 3 * i
        arrays[f"x_{i}"] = rng.uniform(0, 5, size=(T, beams)).astype(np.float32)
        arrays[f"y_{i}"] = rng.normal(size=T).astype(np.float32)
    np.savez(path, **arrays)
    return arrays


def _icra_reference(arrays, seq_len):
    """The official loader's steps, written out independently."""
    files = [(arrays[f"x_{i}"], arrays[f"y_{i}"]) for i in range(29)]
    np.random.default_rng(20200822).shuffle(files)
    test, train = files[:7], files[7:]

    def prep(data):
        aug = []
        for x, y in data:
            aug += [(x, y), (x[:, ::-1], -y)]
        xs, ys = [], []
        for x, y in aug:
            for i in range(0, x.shape[0] - seq_len, seq_len // 2):
                xs.append(x[i : i + seq_len])
                ys.append(y[i : i + seq_len])
        return np.stack(xs)[..., None], np.stack(ys)[..., None]

    return prep(train), prep(test)


@pytest.mark.parametrize("seq_len", [8, 16])
def test_icra_matches_official_processing(tmp_path, no_network, seq_len):
    path = tmp_path / "icra.npz"
    arrays = _icra_file(path)
    (tx, ty), (vx, vy) = datasets.load_icra2020_lidar(local_path=path, seq_len=seq_len, download=False)
    (rtx, rty), (rvx, rvy) = _icra_reference(arrays, seq_len)
    for got, want in ((tx, rtx), (ty, rty), (vx, rvx), (vy, rvy)):
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.array_equal(got, want)
    assert tx.shape[1:] == (seq_len, 12, 1) and ty.shape[1:] == (seq_len, 1)
    # mirror augmentation: every window has a mirrored twin with the steering negated
    assert abs(float(ty.sum())) < 1e-3 and abs(float(vy.sum())) < 1e-3
    assert icra.load_data is datasets.load_icra2020_lidar


def test_icra_default_path_under_root_dir(tmp_path, no_network):
    (tmp_path / "datasets").mkdir()
    _icra_file(tmp_path / "datasets" / "icra2020_imitation_data_packed.npz")
    (tx, _), (vx, _) = datasets.load_icra2020_lidar(root_dir=tmp_path, seq_len=8)
    assert tx.shape[0] > vx.shape[0] > 0


def test_icra_missing_file_and_failed_download(tmp_path, no_network):
    with pytest.raises(datasets.DatasetNotFoundError) as err:
        datasets.load_icra2020_lidar(root_dir=tmp_path, download=False)
    msg = str(err.value)
    assert icra.URL in msg and str(tmp_path / "datasets" / icra.FILENAME) in msg
    with pytest.raises(datasets.DatasetNotFoundError, match="download failed"):
        datasets.load_icra2020_lidar(root_dir=tmp_path)


def test_icra_download_checks_md5(tmp_path, monkeypatch):
    src = tmp_path / "src.npz"
    _icra_file(src)
    payload = src.read_bytes()
    seen = []
    _serve(monkeypatch, payload, seen)
    dest = tmp_path / "dl" / "data.npz"
    with pytest.raises(datasets.DatasetNotFoundError, match="md5"):
        datasets.load_icra2020_lidar(local_path=dest)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))
    monkeypatch.setattr(icra, "MD5", hashlib.md5(payload).hexdigest())
    (tx, _), _ = datasets.load_icra2020_lidar(local_path=dest, seq_len=8)
    assert dest.read_bytes() == payload and seen == [icra.URL, icra.URL] and tx.shape[0] > 0
    assert utils.md5sum(dest) == icra.MD5


def test_icra_rejects_bad_files(tmp_path):
    path = tmp_path / "few.npz"
    _icra_file(path, n=5)
    with pytest.raises(ValueError, match="found 5"):
        datasets.load_icra2020_lidar(local_path=path, download=False)
    _icra_file(path)
    with pytest.raises(ValueError, match="shorter seq_len"):
        datasets.load_icra2020_lidar(local_path=path, seq_len=500, download=False)


# -- generated tasks -------------------------------------------------------------------------
def _xor_reference(size, seed, pad_size):
    """The CfC paper's XORData.create_event_based_sample, transcribed."""
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(size):
        label = 0
        events = np.zeros([pad_size, 1], np.float32)
        elapsed = np.zeros([pad_size], np.float32)
        mask = np.zeros([pad_size], bool)
        last_char, write_index, counter = -1, 0, 0
        for _ in range(rng.randint(low=2, high=pad_size)):
            counter += 1
            char = int(rng.randint(low=0, high=2))
            label += char
            if last_char != char:
                events[write_index], elapsed[write_index], mask[write_index] = char, counter, True
                write_index += 1
                counter = 0
                if write_index >= pad_size - 1:
                    break
            last_char = char
        if counter > 0:
            events[write_index], elapsed[write_index], mask[write_index] = char, counter, True
        out.append((events, elapsed / pad_size, mask, label % 2))
    return [np.stack(a) for a in zip(*out)]


@pytest.mark.parametrize("pad_size", [32, 6])
def test_bitstream_xor_matches_the_paper_encoding(pad_size):
    data = datasets.bitstream_xor(500, pad_size=pad_size, seed=datasets.XOR_TEST_SEED)
    ref = _xor_reference(500, datasets.XOR_TEST_SEED, pad_size)
    for got, want in zip(data, ref):
        assert np.array_equal(got, want.astype(got.dtype))
    assert data.x.shape == (500, pad_size, 1) and data.timespans.shape == (500, pad_size)
    assert data.mask.dtype == bool and data.y.dtype == np.int32
    # padding follows the events; elapsed times are positive exactly on events
    m = data.mask
    assert np.all(m[:, :-1] | ~m[:, 1:])
    assert np.array_equal(data.timespans > 0, m)


def test_bitstream_xor_label_is_recoverable_from_events():
    data = datasets.bitstream_xor(300, seed=1)
    steps = np.rint(data.timespans * 32).astype(int)
    for x, e, m, y in zip(data.x[..., 0], steps, data.mask, data.y):
        n = int(m.sum())
        closing = n >= 2 and x[n - 1] == x[n - 2]  # a final event without a change closes the last run
        last_change = n - 2 if closing else n - 1
        # the run of the bit changed to at event k lasts until the next change event
        ones = sum(e[k + 1] for k in range(last_change) if x[k] == 1)
        if x[last_change] == 1:
            ones += 1 + (e[n - 1] if closing else 0)
        assert ones % 2 == y


def test_bitstream_xor_dense_encoding():
    data = datasets.bitstream_xor(50, pad_size=10, event_based=False, seed=2)
    lengths = data.mask.sum(axis=1)
    assert np.all((lengths >= 2) & (lengths <= 9))
    assert np.array_equal(data.x[..., 0].sum(axis=1).astype(int) % 2, data.y)
    assert np.allclose(data.timespans[data.mask], 0.1)


def test_sine_cosine_is_the_official_example_data():
    x, y = datasets.sine_cosine()
    N = 48
    ref_x = np.stack([np.sin(np.linspace(0, 3 * np.pi, N)), np.cos(np.linspace(0, 3 * np.pi, N))], axis=1)[None]
    ref_y = np.sin(np.linspace(0, 6 * np.pi, N)).reshape(1, N, 1)
    assert np.allclose(x, ref_x.astype(np.float32)) and np.allclose(y, ref_y.astype(np.float32))
    xs, ys = datasets.sine_cosine(seq_len=20, n=4, random_phase=True, noise=0.1, seed=0)
    assert xs.shape == (4, 20, 2) and ys.shape == (4, 20, 1) and not np.allclose(xs[0], xs[1])


def test_irregular_classification_shapes_and_determinism():
    a = datasets.irregular_sine_classification(n=64, seq_len=10, n_classes=4, seed=5)
    b = datasets.irregular_sine_classification(n=64, seq_len=10, n_classes=4, seed=5)
    assert a.x.shape == (64, 10, 1) and a.timespans.shape == (64, 10) and a.y.shape == (64,)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert a.timespans.min() >= 0.05 and a.timespans.max() <= 0.6
    # each sample has its own sampling rate
    means = a.timespans.mean(axis=1)
    assert means.max() - means.min() > 0.1
    assert set(np.unique(a.y)) <= {0, 1, 2, 3}
    with pytest.raises(ValueError):
        datasets.irregular_sine_classification(n_classes=1)
