"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist``, read with numpy only.

Fashion-MNIST (Xiao, Rasul, Vollgraf, 2017, arXiv 1708.07747; MIT licence): 60,000 training
and 10,000 test images of 28x28 grey pixels in 10 classes, 6,000 and 1,000 per class. The
Debian package puts the four IDX files, gzipped, under ``/usr/share/datasets/fashion-mnist/``;
nothing is downloaded at run time.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CLASSES",
    "DEFAULT_ROOT",
    "FILES",
    "FashionMNIST",
    "fashion_mnist",
    "read_idx",
    "stratified_subset",
]

#: Where the Debian package ``dataset-fashion-mnist`` installs the files.
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")

#: The four IDX files: ``{part: (images, labels)}``.
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Class names by label (Fashion-MNIST's README).
CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_INSTALL = (
    "Install the Debian package with: sudo apt-get update && sudo apt-get install -y "
    "dataset-fashion-mnist (drop sudo as root), or pass root=<folder> to a folder with the "
    "four IDX files, gzipped or not: " + ", ".join(f for pair in FILES.values() for f in pair)
)

# IDX type codes (the third byte of the magic number) that Fashion-MNIST can use.
_IDX_TYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped when its name ends in ``.gz``) into a numpy array.

    The IDX format (LeCun's MNIST page): two zero bytes, a type code, the number of
    dimensions ``d``, then ``d`` big-endian 32-bit sizes and the data.

    Raises:
        ValueError: If the header is not IDX or the data are shorter or longer than it says.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: the header says {dims} values ({expected} bytes) but the file has "
            f"{len(data) - header} bytes of data; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True, eq=False)
class FashionMNIST:
    """Fashion-MNIST as numpy arrays.

    Attributes:
        x_train: ``(n, 28, 28)`` ``uint8`` training images (n = 60,000, or the subset asked
            for).
        y_train: ``(n,)`` ``int64`` training labels in 0..9.
        x_test: ``(10000, 28, 28)`` ``uint8`` test images.
        y_test: ``(10000,)`` ``int64`` test labels.
        classes: Class names by label.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...] = CLASSES

    #: Mean and standard deviation of the 60,000 training pixels scaled to [0, 1].
    MEAN = 0.2860
    STD = 0.3530

    def tensors(
        self, part: str = "train", standardize: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)`` as tensors: ``(n, 1, 28, 28)`` float32 and ``(n,)`` int64.

        Args:
            part: ``"train"`` or ``"test"``.
            standardize: Scale pixels to [0, 1], then subtract the training mean and divide
                by the training standard deviation (both of all 60,000 images); otherwise
                only scale to [0, 1].
        """
        if part not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        x, y = (self.x_train, self.y_train) if part == "train" else (self.x_test, self.y_test)
        images = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
        if standardize:
            images = (images - self.MEAN) / self.STD
        return images, torch.from_numpy(y.astype(np.int64))


def fashion_mnist(
    root: str | Path | None = None, train_size: int | None = None, seed: int = 0
) -> FashionMNIST:
    """Load Fashion-MNIST from the IDX files of the Debian package (or from ``root``).

    Args:
        root: Folder with the four IDX files (gzipped or not). Default
            ``/usr/share/datasets/fashion-mnist``.
        train_size: Keep a class-stratified random subset of this many training images
            (``train_size / 10`` per class when divisible; the remainder goes to the first
            classes). ``None`` keeps all 60,000. The test set is always whole.
        seed: Seed of the subset draw.

    Raises:
        FileNotFoundError: If a file is missing; the message says how to install the data.
        ValueError: If a file is not valid IDX, or the sizes disagree.

    Example (needs the installed data, so it is not run as a doctest)::

        data = fashion_mnist(train_size=1000)
        data.x_train.shape, data.x_test.shape  # ((1000, 28, 28), (10000, 28, 28))
        x, y = data.tensors("train")           # (1000, 1, 28, 28) float32, (1000,) int64
    """
    folder = Path(root) if root is not None else DEFAULT_ROOT
    paths: dict[str, Path] = {}
    missing = []
    for pair in FILES.values():
        for name in pair:
            found = _find(folder, name)
            if found is None:
                missing.append(name)
            else:
                paths[name] = found
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files not found in {folder}: missing {', '.join(missing)} "
            f"(.gz or plain). {_INSTALL}"
        )
    arrays = {}
    for part, (img_name, lab_name) in FILES.items():
        images, labels = read_idx(paths[img_name]), read_idx(paths[lab_name])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"Fashion-MNIST {part}: images {images.shape} and labels {labels.shape} do "
                "not match (expected (n, 28, 28) and (n,))"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"Fashion-MNIST {part}: labels outside 0..9")
        arrays[part] = (images, labels.astype(np.int64))
    x_train, y_train = arrays["train"]
    if train_size is not None:
        idx = stratified_subset(y_train, train_size, seed)
        x_train, y_train = x_train[idx], y_train[idx]
    return FashionMNIST(x_train, y_train, *arrays["test"])


def stratified_subset(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of ``size`` rows.

    Each class gets ``size // k`` rows, and the first ``size % k`` classes one more (``k``
    classes, in label order).

    >>> stratified_subset(np.array([0, 0, 0, 1, 1, 1]), 4, seed=0).size
    4
    """
    classes = np.unique(labels)
    if not 0 < size <= len(labels):
        raise ValueError(f"size must be in 1..{len(labels)}, got {size}")
    rng = np.random.default_rng(seed)
    base, extra = divmod(size, len(classes))
    chosen = []
    for i, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        n = base + (1 if i < extra else 0)
        if n > len(members):
            raise ValueError(f"class {c} has {len(members)} rows, fewer than the {n} asked for")
        chosen.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(chosen))
