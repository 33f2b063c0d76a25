"""Image datasets, read from local files; Fashion-MNIST and MNIST are downloaded from their official sources when
they are not found and downloads are allowed (:mod:`distill_core.download`: checksummed, never overwriting).

Every loader returns raw images as float tensors ``(N, C, H, W)`` in [0, 1] and integer labels; :func:`load` then
fits the preprocessing on the training split only (channel mean/std, optionally ZCA) and applies it to both splits
(never on test data), or applies a given stored preprocessing (evaluation of an artifact).

Specs: ``digits`` (scikit-learn), ``fashion-mnist`` (the four official IDX files: Debian package
dataset-fashion-mnist, ``--root``, ``DISTILL_FASHION_MNIST_ROOT`` or the user's data folder), ``mnist`` (``--root``,
``DISTILL_MNIST_ROOT`` or the user's data folder: the four official IDX files, or train.npz and test.npz),
``cifar10:PATH`` (a ``cifar-10-batches-py`` folder),
``npz:PATH`` (your own data: keys x_train, y_train, x_test, y_test; uint8 or float; NHWC or NCHW). Append ``+zca``
to whiten (e.g. ``fashion-mnist+zca``).

Files are untrusted input: CIFAR-10 batches (pickles) go through a restricted unpickler that runs nothing from the
file, .npz archives are read member by member with their headers checked before anything is allocated (object
arrays are refused), and every damaged file fails with a :class:`DataValidationError` naming the file and the fix.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distill_core.data import RealData, validate_real_data
from distill_core.download import DatasetSpec, RemoteFile, ensure_dataset, register_dataset
from distill_core.errors import DataValidationError, UnknownNameError, require
from distill_core.paths import user_data_dir
from distill_core.preprocessing import ChannelNormalization, Preprocessing, ZCAWhitening
from distill_core.safe_numpy import (
    NUMPY_GLOBALS,
    ArrayStub,
    Bytes,
    FromBuffer,
    Refused,
    Scalar,
    is_dir,
    is_file,
    npz_keys,
    one_line,
    read_npz,
    restricted_unpickle,
)

__all__ = ["DATASETS", "RawImages", "load", "npz_keys", "parse_spec", "read_cifar_batch", "read_npz_images"]

RawImages = tuple[Tensor, Tensor, Tensor, Tensor, list[str]]
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

def _idx_files(mirrors: tuple[str, ...], checksums: dict[str, dict[str, Any]]) -> tuple[RemoteFile, ...]:
    """The four ``.gz`` IDX files of an MNIST-format dataset, each tried at ``mirror + name`` in mirror order, with
    ``checksums[name]`` (``sha256`` / ``md5``, ``size``, ``checksum_source``) for each of :data:`IDX_NAMES`."""
    return tuple(RemoteFile(f"{name}.gz", tuple(f"{url}{name}.gz" for url in mirrors), **checksums[name])
                 for name in IDX_NAMES)


# Checksums of the official .gz files. Fashion-MNIST publishes md5 only (its README's table, the same file as
# /usr/share/doc/dataset-fashion-mnist/README.md.gz; torchvision uses the same md5s). The two label files were
# verified here: the copies in github.com/zalandoresearch/fashion-mnist @ b2617bb (data/fashion/) have exactly these
# md5s, and their sha256 below was computed from those copies. The image files (over 4 MiB) could not be read
# offline: md5 only. (Debian's package recompresses the files: its .gz bytes differ, so it is no checksum source.)
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_FASHION_GITHUB = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
_FASHION_SOURCE = "md5 published in the Fashion-MNIST README (zalandoresearch/fashion-mnist)"
_FASHION_VERIFIED = ("sha256 of the copy in zalandoresearch/fashion-mnist @ b2617bb, whose md5 equals the README's "
                     "published md5")
FASHION_MNIST_SPEC = register_dataset(DatasetSpec(
    "fashion-mnist",
    _idx_files((_FASHION_URL, _FASHION_GITHUB), {
        "train-images-idx3-ubyte": {"md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "checksum_source": _FASHION_SOURCE},
        "train-labels-idx1-ubyte": {"sha256": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                    "size": 29515, "checksum_source": _FASHION_VERIFIED},
        "t10k-images-idx3-ubyte": {"md5": "bef4ecab320f06d8554ea6380940ec79", "checksum_source": _FASHION_SOURCE},
        "t10k-labels-idx1-ubyte": {"sha256": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                                   "size": 5148, "checksum_source": _FASHION_VERIFIED}}),
    layout="the four IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
           "t10k-labels-idx1-ubyte.gz (or unzipped) in one folder; on Debian/Ubuntu `apt-get install -y "
           "dataset-fashion-mnist` provides them in /usr/share/datasets/fashion-mnist",
    licence="MIT (Zalando SE)", source="https://github.com/zalandoresearch/fashion-mnist",
    root_hint="--root DIR (or set DISTILL_FASHION_MNIST_ROOT)", size="30 MB"))

# MNIST: the site publishes no checksums; these md5s are torchvision's (datasets.MNIST.resources). Three files were
# verified here: the copies in github.com/RahulBaboota/MNIST @ 0711541 (FLAGS.data_dir/) have exactly these md5s
# (their test images are byte-identical to the IDX payload of the MNIST copy this project's tests were checked
# against), and their sha256 below was computed from those copies. train-images (over 4 MiB) could
# not be read offline: torchvision's md5 only. yann.lecun.com often refuses downloads; torchvision's mirror follows.
_MNIST_URLS = ("https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
_MNIST_VERIFIED = "sha256 of the copy in RahulBaboota/MNIST @ 0711541, whose md5 equals torchvision's"
MNIST_SPEC = register_dataset(DatasetSpec(
    "mnist",
    _idx_files(_MNIST_URLS, {
        "train-images-idx3-ubyte": {"md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                    "checksum_source": "md5 of torchvision.datasets.MNIST"},
        "train-labels-idx1-ubyte": {"sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                    "size": 28881, "checksum_source": _MNIST_VERIFIED},
        "t10k-images-idx3-ubyte": {"sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                   "size": 1648877, "checksum_source": _MNIST_VERIFIED},
        "t10k-labels-idx1-ubyte": {"sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                   "size": 4542, "checksum_source": _MNIST_VERIFIED}}),
    layout="the four official IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
           "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, or train.npz and test.npz (keys x uint8 "
           "(N, 28, 28), y), in one folder",
    licence="no licence stated (LeCun, Cortes & Burges); research use", source="http://yann.lecun.com/exdb/mnist/",
    root_hint="--root DIR (or set DISTILL_MNIST_ROOT)", size="11 MB"))


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
    try:
        with opener(path, "rb") as handle:  # type: ignore[operator]
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataValidationError(f"cannot read the IDX file {path} ({exc}); replace it with the official file "
                                  "(remove it to download it again) or pass --root DIR") from None
    ndim = data[3] if len(data) >= 4 else 0
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]) if len(data) >= 4 + 4 * ndim else ()
    if data[:3] != b"\0\0\x08" or not dims or len(data) != 4 + 4 * ndim + math.prod(dims):
        raise DataValidationError(f"{path} is not a uint8 IDX file of the size its header claims (truncated or "
                                  "corrupt); replace it with the official file (remove it to download it again) or "
                                  "pass --root DIR")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()  # writable for torch


def _find_idx(folder: Path) -> list[Path] | None:
    """The four IDX files (``.gz`` or unzipped) in ``folder``, or ``None`` when any is missing."""
    paths = []
    for name in IDX_NAMES:
        found = [folder / (name + ext) for ext in (".gz", "") if is_file(folder / (name + ext))]
        if not found:
            return None
        paths.append(found[0])
    return paths


def _from_idx(paths: list[Path], classes: list[str]) -> RawImages:
    xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
    return _images(xtr), torch.from_numpy(ytr.astype(np.int64)), _images(xte), torch.from_numpy(yte.astype(np.int64)), \
        classes


def _fashion_mnist(root: str | None) -> RawImages:
    """The folder given (``--root``, else ``$DISTILL_FASHION_MNIST_ROOT``), else Debian's folder, else the user's
    data folder; when none holds the files they are downloaded into the given folder (else the user's)."""
    given = root or os.environ.get("DISTILL_FASHION_MNIST_ROOT")
    candidates = [Path(given)] if given else [Path(FASHION_MNIST_ROOT), user_data_dir("fashion-mnist")]
    for folder in candidates:
        paths = _find_idx(folder)
        if paths:
            return _from_idx(paths, FASHION_CLASSES)
    folder = ensure_dataset("fashion-mnist", candidates[-1])
    paths = _find_idx(folder)
    if not paths:  # pragma: no cover - ensure_dataset raises first
        raise DataValidationError(f"Fashion-MNIST files not found in {folder}")
    return _from_idx(paths, FASHION_CLASSES)


def _mnist(root: str | None) -> RawImages:
    """train.npz / test.npz or the four official IDX files in ``--root``, ``$DISTILL_MNIST_ROOT`` or the user's data
    folder; the IDX files are downloaded there when neither is found (and downloads are allowed)."""
    folder = Path(root or os.environ.get("DISTILL_MNIST_ROOT") or user_data_dir("mnist"))
    if not all(is_file(folder / f"{split}.npz") for split in ("train", "test")):
        paths = _find_idx(folder) or _find_idx(ensure_dataset("mnist", folder))
        if not paths:  # pragma: no cover - ensure_dataset raises first
            raise DataValidationError(f"MNIST files not found in {folder}")
        return _from_idx(paths, [str(c) for c in range(10)])
    out = []
    for split in ("train", "test"):
        path = folder / f"{split}.npz"
        arrays = read_npz(path, ("x", "y"), fix=_NPZ_FIX)
        y = arrays["y"].reshape(-1)
        integral = y.dtype.kind in "iu" or (y.dtype.kind == "f" and bool(np.all(np.isfinite(y) & (y == np.round(y)))))
        if not integral or not len(y) or y.min() < 0 or y.max() > 9:
            raise DataValidationError(f"{path}: y must hold integer class indices 0..9 (got {y.dtype}, {len(y)} "
                                      "labels); re-create it with np.savez(path, x=images_uint8, y=labels)")
        out += [_images(arrays["x"], f"{path}: x"), torch.from_numpy(y.astype(np.int64))]
    return out[0], out[1], out[2], out[3], [str(c) for c in range(10)]


def _cifar10(path: str) -> RawImages:
    folder = Path(path)
    if not is_dir(folder):
        raise DataValidationError(f"CIFAR-10 folder {folder} not found; pass cifar10:PATH to the extracted "
                                  "cifar-10-batches-py folder (data_batch_1..5, test_batch)")

    def read(names: list[str]) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for name in names:
            file = folder / name
            if not is_file(file):
                raise DataValidationError(f"CIFAR-10 batch {file} is missing; the folder must hold data_batch_1..5 "
                                          "and test_batch")
            x, y = read_cifar_batch(file)
            xs.append(x)
            ys.append(y)
        return torch.from_numpy(np.concatenate(xs)).float() / 255.0, torch.from_numpy(np.concatenate(ys))

    train_names = sorted(p.name for p in folder.glob("data_batch_*"))
    if not train_names:
        raise DataValidationError(f"no data_batch_* files in {folder}; is it the cifar-10-batches-py folder?")
    xtr, ytr = read(train_names)
    xte, yte = read(["test_batch"])
    return xtr, ytr, xte, yte, CIFAR10_CLASSES


# --- CIFAR-10 python batches ------------------------------------------------------------------------------------
# The batches are pickles: read with distill_core.safe_numpy's restricted unpickler, which resolves only the globals
# a CIFAR-10 batch uses (numpy array and dtype reconstruction, byte strings, sets), each to an inert stand-in.

_CIFAR_FIX = "use the cifar-10-batches-py folder extracted from the original cifar-10-python.tar.gz"
_CIFAR_GLOBALS: dict[tuple[str, str], object] = {
    **NUMPY_GLOBALS,
    **{(module, "scalar"): Scalar() for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): FromBuffer() for module in ("numpy.core.numeric", "numpy._core.numeric")},
    **{(module, "bytes"): Bytes() for module in ("builtins", "__builtin__")},
    **{(module, kind.__name__): kind for module in ("builtins", "__builtin__") for kind in (set, frozenset)},
}


def _unstub(value: object) -> object:
    if isinstance(value, ArrayStub):
        if value.array is None:
            raise Refused("an array without data")
        return value.array
    return value


def read_cifar_batch(file: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (a pickled dict with ``data`` uint8 ``(N, 3072)`` and ``labels``) without
    running code from the file.

    Returns:
        Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 in 0..9.

    Raises:
        DataValidationError: the file is unreadable, is not a pickle, references anything but numpy arrays and
            builtin containers (a planted file: it is refused before anything in it runs), or holds no valid batch.
    """
    file = Path(file)
    what = f"{file} is not a CIFAR-10 python batch"
    try:
        batch = restricted_unpickle(file.read_bytes(), _CIFAR_GLOBALS, encoding="bytes")
    except OSError as exc:
        raise DataValidationError(f"cannot read the CIFAR-10 batch {file} ({exc}); check its permissions, or "
                                  f"{_CIFAR_FIX}") from exc
    except Refused as exc:
        raise DataValidationError(f"{what}: {exc}; {_CIFAR_FIX}") from None
    except Exception as exc:  # a damaged pickle fails in many ways, all of them this one problem
        raise DataValidationError(f"{what} (unreadable pickle: {one_line(exc)}); "
                                  f"{_CIFAR_FIX}") from None
    if not isinstance(batch, dict):
        raise DataValidationError(f"{what}: it holds a {type(batch).__name__}, not a dict with b'data' and "
                                  f"b'labels'; {_CIFAR_FIX}")
    found = {key.decode("latin-1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    missing = [key for key in ("data", "labels") if key not in found]
    if missing:
        raise DataValidationError(f"{what}: its dict lacks {[k.encode() for k in missing]}; {_CIFAR_FIX}")
    try:
        data, labels = _unstub(found["data"]), np.asarray(_unstub(found["labels"]))
    except Refused as exc:
        raise DataValidationError(f"{what}: {exc}; {_CIFAR_FIX}") from None
    except (TypeError, ValueError, OverflowError, RecursionError, MemoryError) as exc:
        raise DataValidationError(f"{what}: its b'labels' are not a list of class indices ({one_line(exc)}); "
                                  f"{_CIFAR_FIX}") from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iu" or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32 or not len(data):
        shape = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataValidationError(f"{what}: b'data' must be a uint8 array (N, 3072), got {shape}; {_CIFAR_FIX}")
    if data.dtype != np.uint8 and (data.min() < 0 or data.max() > 255):
        raise DataValidationError(f"{what}: b'data' holds values outside 0..255; {_CIFAR_FIX}")
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise DataValidationError(f"{what}: b'labels' must be {len(data)} integer class indices (one per image), "
                                  f"got {labels.dtype} {labels.shape}; {_CIFAR_FIX}")
    if labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES):
        raise DataValidationError(f"{what}: b'labels' lie in [{labels.min()}, {labels.max()}], not 0..9; "
                                  f"{_CIFAR_FIX}")
    return data.astype(np.uint8).reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _images(array: np.ndarray, what: str = "images") -> Tensor:
    """uint8 or float images, NHWC, NCHW or NHW -> float (N, C, H, W) in [0, 1] (uint8) or as given (float)."""
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise DataValidationError(f"{what}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape "
                                  f"{array.shape}")
    if 0 in array.shape[1:]:
        raise DataValidationError(f"{what}: images of shape {array.shape} have an empty dimension; store "
                                  "(N, H, W), (N, H, W, C) or (N, C, H, W) with H, W, C >= 1")
    if array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
    if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer):
        raise DataValidationError(f"{what}: images must be uint8 or float, got dtype {array.dtype}")
    with np.errstate(over="ignore"):
        images = np.ascontiguousarray(array, dtype=np.float32)
    if array.dtype.itemsize > 4 and bool((np.isinf(images) & ~np.isinf(array)).any()):
        raise DataValidationError(f"{what}: images hold values beyond the float32 range (|x| > 3.4e38); rescale "
                                  "them (e.g. to [0, 1]) before saving")
    return torch.from_numpy(images)


# --- .npz archives ------------------------------------------------------------------------------------------------
# Read with distill_core.safe_numpy.read_npz: member by member, headers checked before anything is allocated.

_NPZ_FIX = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"


def read_npz_images(path: str) -> RawImages:
    """A user's .npz with x_train, y_train, x_test, y_test (optional class_names), validated with clear errors."""
    file = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test")
    if not is_file(file):
        raise DataValidationError(f"npz file {file} not found; pass npz:PATH to a .npz with x_train, y_train, x_test, "
                                  "y_test")
    arrays = read_npz(file, keys, optional={"class_names": "USbiuf"}, fix=_NPZ_FIX)
    ys = []
    for key in ("y_train", "y_test"):
        y = arrays[key]
        if y.ndim == 2 and y.shape[1] > 1:
            raise DataValidationError(f"{file}: {key} looks one-hot {y.shape}; store class indices (argmax)")
        y = y.reshape(-1)
        if not len(y):
            raise DataValidationError(f"{file}: {key} is empty; each split needs at least one labelled sample")
        if not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating):
                raise DataValidationError(f"{file}: {key} must hold integer class indices, got {y.dtype}")
            if not np.all(np.isfinite(y)):
                raise DataValidationError(f"{file}: {key} holds {int((~np.isfinite(y)).sum())} NaN/Inf labels; "
                                          "store integer class indices 0..K-1")
            if not np.all(y == np.round(y)):
                raise DataValidationError(f"{file}: {key} must hold integer class indices, got fractional "
                                          f"{y.dtype} values; store class indices 0..K-1 (argmax of soft labels)")
        if y.min() < 0:
            raise DataValidationError(f"{file}: {key} holds negative labels ({y.min()}); labels must be class "
                                      "indices 0..K-1")
        ys.append(y)
    biggest = max(float(ys[0].max()), float(ys[1].max()))
    if biggest >= len(ys[0]):
        raise DataValidationError(f"{file}: labels go up to {biggest:.0f} but y_train has {len(ys[0])} samples, so "
                                  "some classes have no training sample; relabel the classes as 0..K-1")
    labels = [torch.from_numpy(y.astype(np.int64)) for y in ys]
    x_train, x_test = (_images(arrays[key], f"{file}: {key}") for key in ("x_train", "x_test"))
    for split, x, y in (("train", x_train, labels[0]), ("test", x_test, labels[1])):
        if len(x) != len(y):
            raise DataValidationError(f"{file}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels; "
                                      "store one label per image")
    num = int(biggest) + 1
    names = [str(c) for c in range(num)]
    if "class_names" in arrays:
        names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n)
                 for n in arrays["class_names"].reshape(-1)[:len(ys[0])]]
    return x_train, labels[0], x_test, labels[1], names


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
