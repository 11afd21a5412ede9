import gzip
import struct

import numpy as np
import pytest
import torch

from optbench import data
from optbench.errors import ConfigError, MissingInputError


def _write_idx(path, array, compress=True):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.fixture
def fake_fashion(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("t10k", 50)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n),
                   compress=False)
    return tmp_path


def test_read_idx_round_trips_gzip_and_raw(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    _write_idx(tmp_path / "b", arr, compress=False)
    assert (data.read_idx(tmp_path / "a.gz") == arr).all()
    assert (data.read_idx(tmp_path / "b") == arr).all()


def test_read_idx_rejects_bad_and_truncated_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="magic"):
        data.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ConfigError, match="truncated"):
        data.read_idx(tmp_path / "short")


def test_lookup_order_named_dir_then_env_then_debian(fake_fashion, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    for f in fake_fashion.glob("*-ubyte*"):
        (other / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("OPTBENCH_DATA_DIR", str(other))
    assert data.find_fashion_mnist(fake_fashion, download=False) == fake_fashion
    assert data.find_fashion_mnist(None, download=False) == other
    monkeypatch.delenv("OPTBENCH_DATA_DIR")
    monkeypatch.setattr(data, "DEBIAN_DIR", fake_fashion)
    assert data.find_fashion_mnist(None, download=False) == fake_fashion


def test_missing_everywhere_lists_all_four_sources_and_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.delenv("OPTBENCH_DATA_DIR", raising=False)

    def offline(target):
        raise OSError("no network")

    monkeypatch.setattr(data, "_torchvision_download", offline)
    with pytest.raises(MissingInputError) as err:
        data.find_fashion_mnist(tmp_path / "empty")
    message = str(err.value)
    for part in ("the directory you named", "$OPTBENCH_DATA_DIR", "dataset-fashion-mnist",
                 "torchvision download", "no network", "apt-get install"):
        assert part in message


def test_splits_are_disjoint_seeded_and_limited(fake_fashion):
    train = data.load_fashion_mnist("train", fake_fashion, val_fraction=0.2, download=False)
    val = data.load_fashion_mnist("val", fake_fashion, val_fraction=0.2, download=False)
    test = data.load_fashion_mnist("test", fake_fashion, download=False)
    assert (len(train), len(val), len(test)) == (160, 40, 50)
    rows = {img.numpy().tobytes() for img in train.images}
    assert not any(img.numpy().tobytes() in rows for img in val.images)
    again = data.load_fashion_mnist("val", fake_fashion, val_fraction=0.2, download=False)
    assert torch.equal(again.images, val.images)
    small = data.load_fashion_mnist("train", fake_fashion, limit=30, download=False)
    assert len(small) == 30
    with pytest.raises(ConfigError, match="split"):
        data.load_fashion_mnist("holdout", fake_fashion, download=False)


def test_transform_resizes_repeats_channels_and_normalizes():
    tf = data.ImageTransform(size=32, channels=3, mean=0.5, std=0.5)
    img = torch.full((28, 28), 255, dtype=torch.uint8)
    out = tf(img)
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out, torch.ones_like(out))
    assert tf(torch.zeros(4, 28, 28, dtype=torch.uint8)).shape == (4, 3, 32, 32)
    with pytest.raises(ConfigError, match="channels"):
        data.ImageTransform(channels=2)


def test_transform_round_trips_as_config():
    tf = data.ImageTransform(size=64, channels=3)
    assert data.ImageTransform.from_dict(tf.to_dict()) == tf
    with pytest.raises(ConfigError, match="unknown field"):
        data.ImageTransform.from_dict({"size": 3, "colour": "red"})


def test_synthetic_dataset_is_deterministic(synthetic):
    again = data.synthetic_dataset(n=512, num_classes=10, size=16, seed=0)
    assert torch.equal(again.images, synthetic.images)
    image, label = synthetic[0]
    assert image.shape == (1, 16, 16) and 0 <= int(label) < 10


def test_real_fashion_mnist(fashion_dir):
    train = data.load_fashion_mnist("train", fashion_dir, download=False)
    val = data.load_fashion_mnist("val", fashion_dir, download=False)
    test = data.load_fashion_mnist("test", fashion_dir, download=False)
    assert (len(train), len(val), len(test)) == (54000, 6000, 10000)
    assert train.classes[9] == "Ankle boot"
    counts = np.bincount(test.labels.numpy(), minlength=10)
    assert (counts == 1000).all()  # the official test split is balanced
    mean = test.images.float().mean().item() / 255
    assert mean == pytest.approx(data.FASHION_MEAN, abs=0.01)
