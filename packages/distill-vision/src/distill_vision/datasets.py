"""Image datasets, read from local files only (no downloads; see ../shared/DATA.md).

Every loader returns raw images as float tensors ``(N, C, H, W)`` in [0, 1] and integer labels; :func:`load` then
fits the preprocessing on the training split only (channel mean/std, optionally ZCA) and applies it to both splits
(lesson 2), or applies a given stored preprocessing (evaluation of an artifact).

Specs: ``digits`` (scikit-learn), ``fashion-mnist`` (Debian package dataset-fashion-mnist), ``mnist``
(../shared/data/mnist), ``cifar10:PATH`` (a ``cifar-10-batches-py`` folder), ``npz:PATH`` (your own data: keys
x_train, y_train, x_test, y_test; uint8 or float; NHWC or NCHW). Append ``+zca`` to whiten (e.g.
``fashion-mnist+zca``).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from distill_core.data import RealData, validate_real_data
from distill_core.errors import DataValidationError, UnknownNameError, require
from distill_core.preprocessing import ChannelNormalization, Preprocessing, ZCAWhitening

__all__ = ["DATASETS", "RawImages", "load", "parse_spec", "read_npz_images"]

RawImages = tuple[Tensor, Tensor, Tensor, Tensor, list[str]]
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _digits(root: str | None) -> RawImages:
    """scikit-learn's 8x8 digits (1,797 images, values 0..16), split 75/25 stratified with a fixed seed."""
    datasets = require("sklearn.datasets", "scikit-learn", purpose="the digits dataset")
    bunch = datasets.load_digits()  # type: ignore[attr-defined]
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    test_mask = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        test_mask[idx[: len(idx) // 4]] = True
    return x[~test_mask], y[~test_mask], x[test_mask], y[test_mask], [str(c) for c in range(10)]


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:  # type: ignore[operator]
        data = handle.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()  # writable for torch


def _fashion_mnist(root: str | None) -> RawImages:
    folder = Path(root or os.environ.get("DISTILL_FASHION_MNIST_ROOT", FASHION_MNIST_ROOT))
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = []
    for name in names:
        found = [folder / (name + ext) for ext in (".gz", "") if (folder / (name + ext)).is_file()]
        if not found:
            raise DataValidationError(f"Fashion-MNIST file {name}(.gz) not found in {folder}; install it with "
                                      "`apt-get install -y dataset-fashion-mnist` or pass --root DIR")
        paths.append(found[0])
    xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
    return _images(xtr), torch.from_numpy(ytr.astype(np.int64)), _images(xte), torch.from_numpy(yte.astype(np.int64)), \
        FASHION_CLASSES


def _mnist(root: str | None) -> RawImages:
    folder = Path(root or os.environ.get("DISTILL_MNIST_ROOT", "../shared/data/mnist"))
    out = []
    for split in ("train", "test"):
        path = folder / f"{split}.npz"
        if not path.is_file():
            raise DataValidationError(f"MNIST file {path} not found; pass --root DIR with train.npz and test.npz "
                                      "(keys x uint8 (N, 28, 28), y) or set DISTILL_MNIST_ROOT")
        with np.load(path) as npz:
            out += [_images(npz["x"]), torch.from_numpy(npz["y"].astype(np.int64))]
    return out[0], out[1], out[2], out[3], [str(c) for c in range(10)]


def _cifar10(path: str) -> RawImages:
    folder = Path(path)
    if not folder.is_dir():
        raise DataValidationError(f"CIFAR-10 folder {folder} not found; pass cifar10:PATH to the extracted "
                                  "cifar-10-batches-py folder (data_batch_1..5, test_batch)")

    def read(names: list[str]) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for name in names:
            file = folder / name
            if not file.is_file():
                raise DataValidationError(f"CIFAR-10 batch {file} is missing; the folder must hold data_batch_1..5 "
                                          "and test_batch")
            with open(file, "rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)).float() / 255.0, torch.from_numpy(np.concatenate(ys))

    train_names = sorted(p.name for p in folder.glob("data_batch_*"))
    if not train_names:
        raise DataValidationError(f"no data_batch_* files in {folder}; is it the cifar-10-batches-py folder?")
    xtr, ytr = read(train_names)
    xte, yte = read(["test_batch"])
    return xtr, ytr, xte, yte, CIFAR10_CLASSES


def _images(array: np.ndarray) -> Tensor:
    """uint8 or float images, NHWC, NCHW or NHW -> float (N, C, H, W) in [0, 1] (uint8) or as given (float)."""
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise DataValidationError(f"images must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {array.shape}")
    if array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise DataValidationError(f"images must be uint8 or float, got dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def read_npz_images(path: str) -> RawImages:
    """A user's .npz with x_train, y_train, x_test, y_test (optional class_names), validated with clear errors."""
    file = Path(path)
    if not file.is_file():
        raise DataValidationError(f"npz file {file} not found; pass npz:PATH to a .npz with x_train, y_train, x_test, "
                                  "y_test")
    try:
        npz = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataValidationError(f"{file} is not a readable .npz file ({exc})") from exc
    with npz:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz.files]
        if missing:
            raise DataValidationError(f"{file} lacks {missing}; it must hold x_train, y_train, x_test, y_test "
                                      f"(found {npz.files})")
        ys = []
        for key in ("y_train", "y_test"):
            y = npz[key]
            if y.ndim == 2 and y.shape[1] > 1:
                raise DataValidationError(f"{file}: {key} looks one-hot {y.shape}; store class indices (argmax)")
            y = y.reshape(-1)
            if not np.issubdtype(y.dtype, np.integer):
                if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                    y = y.astype(np.int64)
                else:
                    raise DataValidationError(f"{file}: {key} must hold integer class indices, got {y.dtype}")
            ys.append(torch.from_numpy(y.astype(np.int64)))
        x_train, x_test = _images(npz["x_train"]), _images(npz["x_test"])
        num = int(max(int(ys[0].max()), int(ys[1].max())) + 1)
        names = [str(n) for n in npz["class_names"]] if "class_names" in npz.files else [str(c) for c in range(num)]
    return x_train, ys[0], x_test, ys[1], names


DATASETS: dict[str, Callable[[str | None], RawImages]] = {
    "digits": _digits,
    "fashion-mnist": _fashion_mnist,
    "mnist": _mnist,
}
PREFIXES: dict[str, Callable[[str], RawImages]] = {"npz": read_npz_images, "cifar10": _cifar10}


def parse_spec(spec: str) -> tuple[str, bool]:
    """Split a ``+zca`` suffix off a dataset spec."""
    if spec.endswith("+zca"):
        return spec[: -len("+zca")], True
    return spec, False


def load(spec: str, *, root: str | None = None, preprocessing: Preprocessing | None = None) -> RealData:
    """Load an image dataset by spec and preprocess it (fitted on its training split unless given)."""
    base, zca = parse_spec(spec)
    prefix, _, rest = base.partition(":")
    if base in DATASETS:
        raw = DATASETS[base](root)
    elif rest and prefix in PREFIXES:
        raw = PREFIXES[prefix](rest)
    else:
        raise UnknownNameError("dataset", spec, [*DATASETS, *(f"{p}:PATH" for p in PREFIXES), "<any>+zca"])
    x_train, y_train, x_test, y_test, names = raw
    num_classes = max(len(names), int(y_train.max()) + 1, int(y_test.max()) + 1)
    for split, x in (("train", x_train), ("test", x_test)):
        if not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x.reshape(len(x), -1))).any(1).sum())
            raise DataValidationError(f"{spec}: x_{split} has {bad} images with NaN/Inf pixels; clean them first")
    if preprocessing is None:
        steps = [ChannelNormalization.fit(x_train)]
        if zca:
            steps.append(ZCAWhitening.fit(steps[0].apply(x_train)))
        preprocessing = Preprocessing(steps)
    data = RealData(spec, preprocessing.apply(x_train), y_train, preprocessing.apply(x_test), y_test, num_classes,
                    names[:num_classes] + [str(c) for c in range(len(names), num_classes)], preprocessing)
    return validate_real_data(data)
