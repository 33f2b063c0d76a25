"""Image datasets, read from local files only (no downloads).

Every loader returns raw images as float tensors ``(N, C, H, W)`` in [0, 1] and integer labels; :func:`load` then
fits the preprocessing on the training split only (channel mean/std, optionally ZCA) and applies it to both splits
(never on test data), or applies a given stored preprocessing (evaluation of an artifact).

Specs: ``digits`` (scikit-learn), ``fashion-mnist`` (Debian package dataset-fashion-mnist), ``mnist``
(``--root`` or ``DISTILL_MNIST_ROOT``: train.npz and test.npz), ``cifar10:PATH`` (a ``cifar-10-batches-py`` folder),
``npz:PATH`` (your own data: keys x_train, y_train, x_test, y_test; uint8 or float; NHWC or NCHW). Append ``+zca``
to whiten (e.g. ``fashion-mnist+zca``).

Files are untrusted input: CIFAR-10 batches (pickles) go through a restricted unpickler that runs nothing from the
file, .npz archives are read member by member with their headers checked before anything is allocated (object
arrays are refused), and every damaged file fails with a :class:`DataValidationError` naming the file and the fix.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from distill_core.data import RealData, validate_real_data
from distill_core.errors import DataValidationError, UnknownNameError, require
from distill_core.paths import user_data_dir
from distill_core.preprocessing import ChannelNormalization, Preprocessing, ZCAWhitening

__all__ = ["DATASETS", "RawImages", "load", "npz_keys", "parse_spec", "read_cifar_batch", "read_npz_images"]

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
    try:
        with opener(path, "rb") as handle:  # type: ignore[operator]
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataValidationError(f"cannot read the IDX file {path} ({exc}); reinstall it with "
                                  "`apt-get install --reinstall dataset-fashion-mnist` or pass --root DIR") from None
    ndim = data[3] if len(data) >= 4 else 0
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]) if len(data) >= 4 + 4 * ndim else ()
    if data[:3] != b"\0\0\x08" or not dims or len(data) != 4 + 4 * ndim + math.prod(dims):
        raise DataValidationError(f"{path} is not a uint8 IDX file of the size its header claims (truncated or "
                                  "corrupt); reinstall it with `apt-get install --reinstall dataset-fashion-mnist` "
                                  "or pass --root DIR")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()  # writable for torch


def _fashion_mnist(root: str | None) -> RawImages:
    folder = Path(root or os.environ.get("DISTILL_FASHION_MNIST_ROOT", FASHION_MNIST_ROOT))
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = []
    for name in names:
        found = [folder / (name + ext) for ext in (".gz", "") if _is_file(folder / (name + ext))]
        if not found:
            raise DataValidationError(f"Fashion-MNIST file {name}(.gz) not found in {folder}; install it with "
                                      "`apt-get install -y dataset-fashion-mnist` or pass --root DIR")
        paths.append(found[0])
    xtr, ytr, xte, yte = (_read_idx(p) for p in paths)
    return _images(xtr), torch.from_numpy(ytr.astype(np.int64)), _images(xte), torch.from_numpy(yte.astype(np.int64)), \
        FASHION_CLASSES


def _mnist(root: str | None) -> RawImages:
    folder = Path(root or os.environ.get("DISTILL_MNIST_ROOT") or user_data_dir("mnist"))
    out = []
    for split in ("train", "test"):
        path = folder / f"{split}.npz"
        if not _is_file(path):
            raise DataValidationError(f"MNIST file {path} not found; put train.npz and test.npz (keys x uint8 "
                                      f"(N, 28, 28), y) in {folder}, or pass --root DIR, or set DISTILL_MNIST_ROOT")
        arrays = _read_npz(path, ("x", "y"), {}, "MNIST file")
        y = arrays["y"].reshape(-1)
        integral = y.dtype.kind in "iu" or (y.dtype.kind == "f" and bool(np.all(np.isfinite(y) & (y == np.round(y)))))
        if not integral or not len(y) or y.min() < 0 or y.max() > 9:
            raise DataValidationError(f"{path}: y must hold integer class indices 0..9 (got {y.dtype}, {len(y)} "
                                      "labels); re-create it with np.savez(path, x=images_uint8, y=labels)")
        out += [_images(arrays["x"], f"{path}: x"), torch.from_numpy(y.astype(np.int64))]
    return out[0], out[1], out[2], out[3], [str(c) for c in range(10)]


def _cifar10(path: str) -> RawImages:
    folder = Path(path)
    if not _is_dir(folder):
        raise DataValidationError(f"CIFAR-10 folder {folder} not found; pass cifar10:PATH to the extracted "
                                  "cifar-10-batches-py folder (data_batch_1..5, test_batch)")

    def read(names: list[str]) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for name in names:
            file = folder / name
            if not _is_file(file):
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
# The batches are pickles, and unpickling runs whatever callables a file names. A batch is read by an unpickler
# that resolves only the globals a CIFAR-10 batch uses (numpy array and dtype reconstruction, byte strings, sets)
# and resolves each of them to an inert stand-in: no numpy object is built from the file's own state while it is
# unpickled (numpy trusts pickled array states: an object-dtype state can crash the interpreter). The stand-ins
# are turned into arrays afterwards, from validated shapes, numeric dtypes and byte buffers.

_CIFAR_FIX = "use the cifar-10-batches-py folder extracted from the original cifar-10-python.tar.gz"
_NUMERIC_KINDS = "biuf"


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler; turned into a DataValidationError naming the file."""


def _one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line, at most ~200 characters (it is quoted inside our errors)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _plain_dtype(spec: object, byteorder: object = "=") -> np.dtype:
    """A non-structured numeric dtype from a dtype string (``"u1"``, ``"<f4"``); anything else is refused."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str) or len(spec) > 8:
        raise _Refused(f"an array dtype {spec!r:.40} that is not a numeric dtype string")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError) as exc:
        raise _Refused(f"an unknown array dtype {spec!r}") from exc
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"an array of dtype {dtype} (only numeric arrays are read)")
    if byteorder in ("<", ">"):
        dtype = dtype.newbyteorder(byteorder)  # type: ignore[arg-type]
    return dtype


def _buffer_array(raw: object, dtype: object, shape: object, fortran: bool) -> np.ndarray:
    """An array over ``raw`` (bytes) after checking that its length is exactly ``shape`` x ``dtype``."""
    if not isinstance(dtype, _DtypeStub):
        raise _Refused("an array whose dtype is not a numpy dtype")
    if not isinstance(raw, (bytes, bytearray)):
        raise _Refused("an array whose data is not a byte string")
    if not isinstance(shape, tuple) or len(shape) > 8:
        raise _Refused(f"an array shape {shape!r:.60} that is not a tuple of sizes")
    dims = []
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise _Refused(f"an array shape {shape!r:.60} that is not a tuple of sizes")
        dims.append(dim)
    count = math.prod(dims)
    if count * dtype.dtype.itemsize != len(raw):
        raise _Refused(f"an array of shape {tuple(dims)} ({dtype.dtype}) over {len(raw)} bytes of data")
    flat = np.frombuffer(raw, dtype=dtype.dtype, count=count) if count else np.empty(0, dtype.dtype)
    return flat.reshape(dims, order="F" if fortran else "C")


class _Stub:
    """Base of the stand-ins: no attributes a pickle can set (``BUILD`` goes through ``__setstate__``)."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise _Refused(f"state for a {type(self).__name__.strip('_')}")


class _DtypeStub(_Stub):
    """What ``numpy.dtype(...)`` yields while a batch is unpickled."""

    __slots__ = ("dtype",)

    def __init__(self, spec: object) -> None:
        self.dtype = _plain_dtype(spec)

    def __setstate__(self, state: object) -> None:
        # numpy writes (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
            raise _Refused("a structured or subarray dtype (only plain numeric arrays are read)")
        order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]  # Python 2 files
        self.dtype = _plain_dtype(self.dtype.str[1:], order)


class _ArrayStub(_Stub):
    """What ``numpy.core.multiarray._reconstruct(...)`` yields; ``__setstate__`` receives numpy's array state."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray | None = None) -> None:
        self.array = array

    def __setstate__(self, state: object) -> None:
        # numpy writes (version, shape, dtype, is_fortran, raw bytes); very old versions omit the version
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Refused("an array state that numpy does not write")
        shape, dtype, fortran, raw = state
        self.array = _buffer_array(raw, dtype, shape, bool(fortran))


class _Global(_Stub):
    """A stand-in for one allowed global: a callable instance (``NEWOBJ`` needs a class and refuses it)."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        raise _Refused(f"a call of {type(self).__name__.strip('_')}")


class _NdarrayType(_Global):
    __slots__ = ()


class _Reconstruct(_Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 3 or not isinstance(args[0], _NdarrayType) or args[1] != (0,):
            raise _Refused("an array reconstruction that numpy does not write")
        return _ArrayStub()


class _Dtype(_Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if not 1 <= len(args) <= 3:
            raise _Refused("a dtype call that numpy does not write")
        return _DtypeStub(args[0])


class _Scalar(_Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 2:
            raise _Refused("a scalar that numpy does not write")
        return _buffer_array(args[1], args[0], (), False).item()  # a Python number, never a numpy object


class _FromBuffer(_Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 4 or args[3] not in ("C", "F"):
            raise _Refused("an array (protocol 5) that numpy does not write")
        return _ArrayStub(_buffer_array(args[0], args[1], args[2], args[3] == "F"))


class _Encode(_Global):
    """``_codecs.encode(text, "latin1")``: how Python 3 writes bytes at protocol 2."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
            raise _Refused("a text encoding other than latin-1")
        return args[0].encode("latin-1")


class _Bytes(_Global):
    """``bytes()`` / ``bytes(b"...")``: how Python 3 writes an empty byte string at protocol 2."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if args and not (len(args) == 1 and isinstance(args[0], (bytes, bytearray))):
            raise _Refused("a bytes() call other than an empty or copied byte string")
        return bytes(args[0]) if args else b""


_CIFAR_GLOBALS: dict[tuple[str, str], object] = {
    **{(module, "_reconstruct"): _Reconstruct() for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _Scalar() for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): _FromBuffer() for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NdarrayType(),
    ("numpy", "dtype"): _Dtype(),
    ("_codecs", "encode"): _Encode(),
    **{(module, "bytes"): _Bytes() for module in ("builtins", "__builtin__")},
    **{(module, kind.__name__): kind for module in ("builtins", "__builtin__") for kind in (set, frozenset)},
}


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only the globals of :data:`_CIFAR_GLOBALS`, each to its inert stand-in."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            reference = " ".join(f"{module}.{name}".split())[:100]  # any text a crafted STACK_GLOBAL names
            raise _Refused(f"it references {reference} (refused, never imported or run)") from None

    def persistent_load(self, pid: object) -> Any:
        raise _Refused("it references an external object")


def _unpickle_cifar_batch(file: Path) -> object:
    """Unpickle a CIFAR-10 batch with :class:`_CifarUnpickler` after checking every length in the stream."""
    data = file.read_bytes()
    # pickletools walks the opcodes without running them and checks each length against the bytes left, so the
    # unpickler below never allocates what a crafted length or memo index claims (the C unpickler sizes its memo
    # by the largest index: 10 bytes asking for index 2**30 cost 16 GB)
    for opcode, arg, pos in pickletools.genops(data):
        if opcode.name == "FRAME" and isinstance(arg, int) and arg > len(data) - (pos or 0):
            raise _Refused(f"a frame of {arg} bytes in a {len(data)}-byte file")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and (not isinstance(arg, int) or arg > len(data)):
            raise _Refused(f"a memo index {arg!r:.20} beyond the size of the file")
    return _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()


def _unstub(value: object) -> object:
    if isinstance(value, _ArrayStub):
        if value.array is None:
            raise _Refused("an array without data")
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
        batch = _unpickle_cifar_batch(file)
    except OSError as exc:
        raise DataValidationError(f"cannot read the CIFAR-10 batch {file} ({exc}); check its permissions, or "
                                  f"{_CIFAR_FIX}") from exc
    except _Refused as exc:
        raise DataValidationError(f"{what}: {exc}; {_CIFAR_FIX}") from None
    except Exception as exc:  # a damaged pickle fails in many ways, all of them this one problem
        raise DataValidationError(f"{what} (unreadable pickle: {_one_line(exc)}); "
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
    except _Refused as exc:
        raise DataValidationError(f"{what}: {exc}; {_CIFAR_FIX}") from None
    except (TypeError, ValueError, OverflowError, RecursionError, MemoryError) as exc:
        raise DataValidationError(f"{what}: its b'labels' are not a list of class indices ({_one_line(exc)}); "
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
# Read member by member with the zip and .npy headers checked first: np.load would pass on a bare .npy (or a pickle)
# as well as a zip, raise zipfile/EOF errors on damaged files and allocate whatever shape a header claims.

_NPZ_FIX = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
_DEFLATE_MAX_RATIO = 1100  # deflate expands at most ~1032x; a member claiming more is corrupt or crafted
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error, zlib.error,
               NotImplementedError, RuntimeError, OverflowError, MemoryError, KeyError, IndexError)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a folder we may not stat, an embedded NUL byte
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _npz_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> member (``x_train.npy`` -> ``x_train``), as np.load names them."""
    return {info.filename.removesuffix(".npy"): info for info in archive.infolist()}


def npz_keys(path: str | os.PathLike[str]) -> list[str] | None:
    """The array names in a .npz archive, read from its zip directory only; ``None`` when it is not a readable zip
    (never raises)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return list(_npz_members(archive))
    except _ZIP_ERRORS:
        return None


def _read_npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file: Path, key: str, kinds: str,
                     disk_size: int) -> np.ndarray:
    """One .npy member, its header checked against the member's size before any array is allocated."""
    where = f"{file}: array {key!r}"
    if info.flag_bits & 0x1:
        raise DataValidationError(f"{where} is encrypted; {_NPZ_FIX} (no password)")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataValidationError(f"{where} uses zip compression method {info.compress_type}; {_NPZ_FIX} or "
                                  "np.savez_compressed")
    if info.compress_size > disk_size or (info.compress_type == zipfile.ZIP_STORED
                                          and info.compress_size != info.file_size) \
            or info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 4096:
        raise DataValidationError(f"{where}: the zip directory claims {info.file_size} bytes from "
                                  f"{info.compress_size} stored in a {disk_size}-byte file, so the archive is "
                                  f"corrupt, truncated or crafted; {_NPZ_FIX}")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
        except ValueError as exc:
            raise DataValidationError(f"{where} is not a .npy array ({_one_line(exc)}); {_NPZ_FIX}") from None
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise DataValidationError(f"{where} uses .npy format {version} (structured arrays); {_NPZ_FIX} with "
                                      "plain numeric arrays")
        if dtype.hasobject:
            raise DataValidationError(f"{where} holds Python objects (dtype {dtype}), which are not loaded (loading "
                                      f"them would run pickled code); {_NPZ_FIX} with numeric arrays "
                                      "(e.g. np.asarray(x, dtype=np.float32))")
        if dtype.kind not in kinds or dtype.fields is not None or not dtype.itemsize:
            raise DataValidationError(f"{where} has dtype {dtype}; {_NPZ_FIX} with "
                                      f"{'numeric' if 'f' in kinds else 'string'} arrays")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        offset = member.tell()
        if nbytes != info.file_size - offset:
            raise DataValidationError(f"{where}: its header claims shape {shape} of {dtype} ({nbytes} bytes) but "
                                      f"the member holds {info.file_size - offset} bytes of data, so the file is "
                                      f"corrupt, truncated or crafted; {_NPZ_FIX}")
        out = np.empty(nbytes, dtype=np.uint8)
        done = 0
        while done < nbytes:
            chunk = member.read(min(1 << 24, nbytes - done))
            if not chunk:
                break
            out[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
        if done != nbytes or member.read(1):
            raise DataValidationError(f"{where} holds {done} bytes of data instead of {nbytes}: the file is "
                                      f"truncated or corrupt; {_NPZ_FIX}")
    return out.view(dtype).reshape(shape, order="F" if fortran else "C")


def _read_npz(file: Path, required: tuple[str, ...], optional: dict[str, str], what: str) -> dict[str, np.ndarray]:
    """The ``required`` arrays (numeric) and any of ``optional`` (name -> allowed dtype kinds) of a .npz archive.

    Raises:
        DataValidationError: the file is missing, not a zip, damaged, lacks a required array, or an array is an
            object array, has a header that disagrees with its size, or is truncated.
    """
    if not _is_file(file):
        raise DataValidationError(f"{what} {file} not found; pass the path of an existing .npz file")
    head = b""
    try:
        disk_size = file.stat().st_size
        with file.open("rb") as handle:
            head = handle.read(6)
        if head == b"\x93NUMPY":
            raise DataValidationError(f"{file} is a single .npy array, not a .npz archive; {_NPZ_FIX}")
        with zipfile.ZipFile(file) as archive:
            members = _npz_members(archive)
            missing = [key for key in required if key not in members]
            if missing:
                raise DataValidationError(f"{file} lacks {missing}; it must hold {list(required)} (found "
                                          f"{sorted(members)[:20]})")
            wanted = {**dict.fromkeys(required, _NUMERIC_KINDS), **optional}
            return {key: _read_npz_member(archive, members[key], file, key, kinds, disk_size)
                    for key, kinds in wanted.items() if key in members}
    except DataValidationError:
        raise
    except PermissionError as exc:
        raise DataValidationError(f"cannot read {file} ({exc}); check its permissions") from None
    except _ZIP_ERRORS as exc:
        empty = " (the file is empty)" if not head else ""
        raise DataValidationError(f"{file} is not a readable .npz archive{empty} ({_one_line(exc)}); it may be "
                                  f"truncated or corrupt: {_NPZ_FIX}") from None


def read_npz_images(path: str) -> RawImages:
    """A user's .npz with x_train, y_train, x_test, y_test (optional class_names), validated with clear errors."""
    file = Path(path)
    keys = ("x_train", "y_train", "x_test", "y_test")
    if not _is_file(file):
        raise DataValidationError(f"npz file {file} not found; pass npz:PATH to a .npz with x_train, y_train, x_test, "
                                  "y_test")
    arrays = _read_npz(file, keys, {"class_names": "USbiuf"}, "npz file")
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
