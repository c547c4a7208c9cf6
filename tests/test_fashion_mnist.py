"""Tests for the Fashion-MNIST IDX loader: synthetic files, bad input, and the real data."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from auxlab.datasets._fashion_mnist import (
    CLASSES,
    DEFAULT_ROOT,
    FILES,
    FashionMNIST,
    fashion_mnist,
    read_idx,
    stratified_subset,
)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: 0, 0, type 0x08, ndim, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake(root: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for name, arr in zip(FILES[part], (images, labels), strict=True):
            data = idx_bytes(arr)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_reads_synthetic_idx_files(tmp_path: Path, gz: bool) -> None:
    write_fake(tmp_path, gz=gz)
    data = fashion_mnist(root=tmp_path)
    assert data.x_train.shape == (30, 28, 28)
    assert data.x_train.dtype == np.uint8
    assert data.y_train.dtype == np.int64
    assert data.x_test.shape == (10, 28, 28)
    assert data.y_test.tolist() == list(range(10))
    rng = np.random.default_rng(0)
    assert np.array_equal(data.x_train, rng.integers(0, 256, (30, 28, 28), dtype=np.uint8))


def test_read_idx_big_endian_ints(tmp_path: Path) -> None:
    values = np.array([[1, -2], [300, 70000]], dtype=">i4")
    raw = bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") * 2 + values.tobytes()
    (tmp_path / "x.idx").write_bytes(raw)
    out = read_idx(tmp_path / "x.idx")
    assert out.tolist() == [[1, -2], [300, 70000]]
    assert out.dtype.byteorder in ("=", "<", "|")


def test_missing_files_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist(root=tmp_path)
    msg = str(info.value)
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert "train-images-idx3-ubyte" in msg
    assert str(tmp_path) in msg
    assert "root=" in msg


def test_corrupt_files_are_errors(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(idx_bytes(np.zeros((4, 2), np.uint8))[:-3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(tmp_path / "short")


def test_stratified_subset() -> None:
    labels = np.repeat(np.arange(10), 20)
    idx = stratified_subset(labels, 35, seed=1)
    counts = np.bincount(labels[idx], minlength=10)
    assert counts.tolist() == [4] * 5 + [3] * 5
    assert np.array_equal(idx, np.sort(idx))
    assert np.array_equal(idx, stratified_subset(labels, 35, seed=1))
    assert not np.array_equal(idx, stratified_subset(labels, 35, seed=2))
    with pytest.raises(ValueError, match="size must be"):
        stratified_subset(labels, 0)


# ------------------------------------------------------------------------------ the real data

installed = pytest.mark.skipif(
    not all((DEFAULT_ROOT / f"{name}.gz").is_file() for pair in FILES.values() for name in pair),
    reason=(
        f"Fashion-MNIST is not installed under {DEFAULT_ROOT} "
        "(apt-get update && apt-get install -y dataset-fashion-mnist)"
    ),
)


@pytest.fixture(scope="module")
def real() -> FashionMNIST:
    return fashion_mnist()


@installed
def test_real_data_shapes_and_labels(real: FashionMNIST) -> None:
    assert real.x_train.shape == (60_000, 28, 28)
    assert real.x_test.shape == (10_000, 28, 28)
    assert np.bincount(real.y_train).tolist() == [6000] * 10
    assert np.bincount(real.y_test).tolist() == [1000] * 10
    # The first labels of the official files: ankle boot, T-shirt, T-shirt, dress, T-shirt.
    assert real.y_train[:5].tolist() == [9, 0, 0, 3, 0]
    assert real.y_test[:5].tolist() == [9, 2, 1, 1, 6]
    assert CLASSES[int(real.y_train[0])] == "Ankle boot"
    assert int(real.x_train[0].sum()) == 76_247
    assert int(real.x_test[0].sum()) == 33_456
    assert real.x_train.mean() / 255 == pytest.approx(FashionMNIST.MEAN, abs=1e-4)
    assert (real.x_train / 255).std() == pytest.approx(FashionMNIST.STD, abs=1e-4)


@installed
def test_real_data_tensors_and_subset(real: FashionMNIST) -> None:
    x, y = real.tensors("test")
    assert x.shape == (10_000, 1, 28, 28)
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64
    x_train, _ = real.tensors("train")
    assert float(x_train.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(x_train.std()) == pytest.approx(1.0, abs=1e-3)
    raw, _ = real.tensors("test", standardize=False)
    assert float(raw.min()) == 0.0
    assert float(raw.max()) == 1.0
    small = fashion_mnist(train_size=1000, seed=0)
    assert small.x_train.shape == (1000, 28, 28)
    assert np.bincount(small.y_train).tolist() == [100] * 10
    assert small.x_test.shape == (10_000, 28, 28)
    with pytest.raises(ValueError, match="part must be"):
        real.tensors("val")
