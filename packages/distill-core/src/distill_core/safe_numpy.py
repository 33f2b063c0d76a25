"""Numeric arrays from files of unknown origin, read without running code from them: a restricted unpickler for
pickled numpy arrays (CIFAR-10's python batches, the raw Planetoid files) and a checked reader of ``.npz`` archives.

Unpickling runs whatever callables a file names, and numpy trusts pickled array states (an object-dtype state can
crash the interpreter). :func:`restricted_unpickle` resolves only the globals it is given, each to an inert
stand-in: no numpy object is built from the file's own state while it is unpickled. An array becomes an
:class:`ArrayStub` whose ``array`` is made afterwards from a checked shape, a plain numeric dtype and a byte buffer of
exactly the right length. :data:`NUMPY_GLOBALS` are the stand-ins every pickled numpy array needs; a reader adds
those of its own format (numpy scalars, sets, scipy's ``csr_matrix``, ...), built on :class:`Global`.

:func:`read_npz` reads a ``.npz`` archive member by member with the zip and ``.npy`` headers checked first:
``np.load`` would pass on a bare ``.npy`` (or a pickle) as well as a zip, raise zipfile/EOF errors on damaged files
and allocate whatever shape a header claims. Every problem is one :class:`~distill_core.errors.DataValidationError`
line naming the file and how to write an accepted one.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataValidationError

__all__ = [
    "NUMERIC_KINDS",
    "NUMPY_GLOBALS",
    "ArrayStub",
    "Bytes",
    "FromBuffer",
    "Global",
    "Refused",
    "Scalar",
    "Stub",
    "as_bytes",
    "is_dir",
    "is_file",
    "npz_keys",
    "one_line",
    "read_npz",
    "restricted_unpickle",
]

#: dtype kinds of the arrays that are read: bool, signed and unsigned integers, floats
NUMERIC_KINDS = "biuf"


class Refused(pickle.UnpicklingError):
    """Raised inside the unpickler (and by the checks after it); the reader turns it into a
    :class:`~distill_core.errors.DataValidationError` naming the file."""


def one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line, at most ~200 characters (it is quoted inside our errors)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def as_bytes(raw: object) -> bytes:
    """Array data as bytes: Python 2 byte strings come back as latin-1 text under ``encoding="latin1"``."""
    if isinstance(raw, str):
        try:
            return raw.encode("latin-1")
        except UnicodeEncodeError:
            raise Refused("array data that is not a byte string") from None
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    raise Refused("array data that is not a byte string")


def _plain_dtype(spec: object, byteorder: object = "=") -> np.dtype:
    """A non-structured numeric dtype from a dtype string (``"u1"``, ``"<f4"``); anything else is refused."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str) or len(spec) > 8:
        raise Refused(f"an array dtype {spec!r:.40} that is not a numeric dtype string")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError):
        raise Refused(f"an unknown array dtype {spec!r}") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise Refused(f"an array of dtype {dtype} (only numeric arrays are read)")
    if byteorder in ("<", ">"):
        dtype = dtype.newbyteorder(byteorder)  # type: ignore[arg-type]
    return dtype


def _buffer_array(raw: object, dtype: object, shape: object, fortran: bool) -> np.ndarray:
    """An array over ``raw`` after checking that its length is exactly ``shape`` x ``dtype``."""
    if not isinstance(dtype, _DtypeStub):
        raise Refused("an array whose dtype is not a numpy dtype")
    data = as_bytes(raw)
    if not isinstance(shape, tuple) or len(shape) > 8 or any(
            isinstance(dim, bool) or not isinstance(dim, int) or dim < 0 for dim in shape):
        raise Refused(f"an array shape {shape!r:.60} that is not a tuple of sizes")
    count = math.prod(shape)
    if count * dtype.dtype.itemsize != len(data):
        raise Refused(f"an array of shape {shape} ({dtype.dtype}) over {len(data)} bytes of data")
    flat = np.frombuffer(data, dtype=dtype.dtype, count=count) if count else np.empty(0, dtype.dtype)
    return flat.reshape(shape, order="F" if fortran else "C")


class Stub:
    """Base of the stand-ins: no attributes a pickle can set (``BUILD`` goes through ``__setstate__``)."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise Refused(f"state for a {type(self).__name__.strip('_')}")


class _DtypeStub(Stub):
    """What ``numpy.dtype(...)`` yields while a file is unpickled."""

    __slots__ = ("dtype",)

    def __init__(self, spec: object) -> None:
        self.dtype = _plain_dtype(spec)

    def __setstate__(self, state: object) -> None:
        # numpy writes (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
            raise Refused("a structured or subarray dtype (only plain numeric arrays are read)")
        order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]  # Python 2 files
        self.dtype = _plain_dtype(self.dtype.str[1:], order)


class ArrayStub(Stub):
    """What ``numpy.core.multiarray._reconstruct(...)`` yields; ``__setstate__`` receives numpy's array state and
    ``array`` is the checked array once the pickle has set it (``None`` before)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray | None = None) -> None:
        self.array = array

    def __setstate__(self, state: object) -> None:
        # numpy writes (version, shape, dtype, is_fortran, raw bytes); very old versions omit the version
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise Refused("an array state that numpy does not write")
        shape, dtype, fortran, raw = state
        self.array = _buffer_array(raw, dtype, shape, bool(fortran))


class Global(Stub):
    """A stand-in for one allowed global: a callable instance that refuses every call it does not expect
    (``NEWOBJ`` needs a class and refuses it). Subclasses override ``__call__`` for the calls a format makes."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        raise Refused(f"a call of {type(self).__name__.strip('_')}")


class _NdarrayType(Global):
    __slots__ = ()


class _Reconstruct(Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 3 or not isinstance(args[0], _NdarrayType) or args[1] != (0,):
            raise Refused("an array reconstruction that numpy does not write")
        return ArrayStub()


class _Dtype(Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if not 1 <= len(args) <= 3:
            raise Refused("a dtype call that numpy does not write")
        return _DtypeStub(args[0])


class _Encode(Global):
    """``_codecs.encode(text, "latin1")``: how Python 3 writes bytes at protocol 2."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
            raise Refused("a text encoding other than latin-1")
        return as_bytes(args[0])


class Scalar(Global):
    """``numpy.core.multiarray.scalar(dtype, bytes)``: a numpy scalar, returned as a Python number."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 2:
            raise Refused("a scalar that numpy does not write")
        return _buffer_array(args[1], args[0], (), False).item()  # a Python number, never a numpy object


class FromBuffer(Global):
    """``numpy.core.numeric._frombuffer(buffer, dtype, shape, order)``: an array at pickle protocol 5."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 4 or args[3] not in ("C", "F"):
            raise Refused("an array (protocol 5) that numpy does not write")
        return ArrayStub(_buffer_array(args[0], args[1], args[2], args[3] == "F"))


class Bytes(Global):
    """``bytes()`` / ``bytes(b"...")``: how Python 3 writes an empty byte string at protocol 2."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if args and not (len(args) == 1 and isinstance(args[0], (bytes, bytearray))):
            raise Refused("a bytes() call other than an empty or copied byte string")
        return bytes(args[0]) if args else b""


_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")
#: the globals every pickled numpy array refers to (module, name) -> stand-in; numpy 2 writes ``numpy._core``
NUMPY_GLOBALS: Mapping[tuple[str, str], object] = {
    **{(module, "_reconstruct"): _Reconstruct() for module in _MULTIARRAY},
    ("numpy", "ndarray"): _NdarrayType(),
    ("numpy", "dtype"): _Dtype(),
    ("_codecs", "encode"): _Encode(),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals it is given, each to its inert stand-in."""

    def __init__(self, data: bytes, allowed: Mapping[tuple[str, str], object], encoding: str) -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except (KeyError, TypeError):
            reference = " ".join(f"{module}.{name}".split())[:100]  # any text a crafted STACK_GLOBAL names
            raise Refused(f"it references {reference} (refused, never imported or run)") from None

    def persistent_load(self, pid: object) -> Any:
        raise Refused("it references an external object")


def restricted_unpickle(data: bytes, allowed: Mapping[tuple[str, str], object], *, encoding: str) -> object:
    """Unpickle ``data`` resolving only the globals of ``allowed`` (``(module, name)`` -> stand-in), after checking
    every length in the stream.

    Args:
        data: the pickle's bytes.
        allowed: the stand-ins, usually :data:`NUMPY_GLOBALS` plus those of the format.
        encoding: how Python 2 byte strings are decoded (``"bytes"`` keeps them bytes, ``"latin1"`` makes text).

    Raises:
        Refused: the pickle references anything else, or claims lengths beyond the file. A damaged pickle raises
            whatever the unpickler raises; callers turn both into one-line errors.
    """
    # pickletools walks the opcodes without running them and checks each length against the bytes left, so the
    # unpickler never allocates what a crafted length or memo index claims (the C unpickler sizes its memo by the
    # largest index: 10 bytes asking for index 2**30 cost 16 GB)
    for opcode, arg, pos in pickletools.genops(data):
        if opcode.name == "FRAME" and isinstance(arg, int) and arg > len(data) - (pos or 0):
            raise Refused(f"a frame of {arg} bytes in a {len(data)}-byte file")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and (not isinstance(arg, int) or arg > len(data)):
            raise Refused(f"a memo index {arg!r:.20} beyond the size of the file")
    return _RestrictedUnpickler(data, allowed, encoding).load()


# -- .npz archives -------------------------------------------------------------------------------------------------
_DEFLATE_MAX_RATIO = 1100  # deflate expands at most ~1032x; a member claiming more is corrupt or crafted
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error, zlib.error,
               NotImplementedError, RuntimeError, OverflowError, MemoryError, KeyError, IndexError, UnicodeError)


def is_file(path: Path) -> bool:
    """``path.is_file()``, False for a path that cannot be asked (a folder we may not stat, an embedded NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a path that cannot be asked."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _npz_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> member (``x.npy`` -> ``x``), as np.load names them."""
    return {info.filename.removesuffix(".npy"): info for info in archive.infolist()}


def npz_keys(path: str | Path) -> list[str] | None:
    """The array names in a .npz archive, read from its zip directory only; ``None`` when it is not a readable zip
    (never raises)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return list(_npz_members(archive))
    except Exception:
        return None


def _read_npz_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, where: str, kinds: str, disk_size: int,
                     fix: str) -> np.ndarray:
    """One .npy member, its header checked against the member's size before any array is allocated."""
    if info.flag_bits & 0x1:
        raise DataValidationError(f"{where} is encrypted; {fix} (no password)")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataValidationError(f"{where} uses zip compression method {info.compress_type}; {fix} or "
                                  "np.savez_compressed")
    if info.compress_size > disk_size or (info.compress_type == zipfile.ZIP_STORED
                                          and info.compress_size != info.file_size) \
            or info.file_size > _DEFLATE_MAX_RATIO * info.compress_size + 4096:
        raise DataValidationError(f"{where}: the zip directory claims {info.file_size} bytes from "
                                  f"{info.compress_size} stored in a {disk_size}-byte file, so the archive is "
                                  f"corrupt, truncated or crafted; {fix}")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise DataValidationError(f"{where} uses .npy format {version} (structured arrays); {fix} with "
                                          "plain numeric arrays")
        except (ValueError, TypeError, SyntaxError) as exc:  # header parse errors, all one problem
            raise DataValidationError(f"{where} is not a .npy array ({one_line(exc)}); {fix}") from None
        if dtype.hasobject:
            raise DataValidationError(f"{where} holds Python objects (dtype {dtype}), which are not loaded (loading "
                                      f"them would run pickled code); {fix} with numeric arrays "
                                      "(e.g. np.asarray(x, dtype=np.float32))")
        if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None or not dtype.itemsize:
            raise DataValidationError(f"{where} has dtype {dtype}; {fix} with "
                                      f"{'numeric' if 'f' in kinds else 'string'} arrays")
        nbytes = math.prod(shape) * dtype.itemsize
        offset = member.tell()
        if nbytes != info.file_size - offset:
            raise DataValidationError(f"{where}: its header claims shape {shape} of {dtype} ({nbytes} bytes) but "
                                      f"the member holds {info.file_size - offset} bytes of data, so the file is "
                                      f"corrupt, truncated or crafted; {fix}")
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
                                      f"truncated or corrupt; {fix}")
    return out.view(dtype).reshape(shape, order="F" if fortran else "C")


def read_npz(file: Path, required: Sequence[str], *, optional: Mapping[str, str] | None = None,
             label: str | None = None, fix: str) -> dict[str, np.ndarray]:
    """The ``required`` arrays (numeric) and those of ``optional`` present (name -> allowed dtype kinds) of a .npz
    archive, each checked before it is allocated.

    Args:
        file: the archive.
        required: names of numeric arrays it must hold.
        optional: names it may hold, with the dtype kinds allowed for each (``"USbiuf"``: text too).
        label: how errors name the file (default: its path).
        fix: what the user should do instead, ending every error (``"save it with np.savez(path, x=..., y=...)"``).

    Raises:
        DataValidationError: the file is missing, not a zip, damaged, lacks a required array, or an array is an
            object array, has a header that disagrees with its size, or is truncated.
    """
    label = label or str(file)
    if not is_file(file):
        raise DataValidationError(f"{label}: no such file; {fix}")
    head = b""
    try:
        disk_size = file.stat().st_size
        with file.open("rb") as handle:
            head = handle.read(6)
        if head == b"\x93NUMPY":
            raise DataValidationError(f"{label} is a single .npy array, not a .npz archive; {fix}")
        with zipfile.ZipFile(file) as archive:
            members = _npz_members(archive)
            missing = [key for key in required if key not in members]
            if missing:
                raise DataValidationError(f"{label} lacks the arrays {missing} (it holds {sorted(members)[:20]}); "
                                          f"{fix}")
            wanted = {**dict.fromkeys(required, NUMERIC_KINDS), **(optional or {})}
            return {key: _read_npz_member(archive, members[key], where=f"{label}: array {key!r}", kinds=kinds,
                                          disk_size=disk_size, fix=fix)
                    for key, kinds in wanted.items() if key in members}
    except DataValidationError:
        raise
    except PermissionError as exc:
        raise DataValidationError(f"cannot read {label} ({exc}); check its permissions") from None
    except _ZIP_ERRORS as exc:
        empty = " (the file is empty)" if not head else ""
        raise DataValidationError(f"{label} is not a readable .npz archive{empty} ({one_line(exc)}); it may be "
                                  f"truncated or corrupt: {fix}") from None
