"""Property-based fuzzing of the image loaders the CLI uses (``VisionModality.claims`` and ``load_dataset``) over
``npz:PATH`` archives and ``cifar10:DIR`` folders: whatever the bytes, shapes, dtypes or NaN placements, a load
either returns validated data or raises a DistillError, and writes nothing.

``ci`` profile (default) keeps the file to a few seconds; ``DISTILL_FUZZ_PROFILE=thorough`` tries many more cases.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from distill_core.data import RealData
from distill_core.errors import DistillError
from distill_core.fuzz import flip_bytes, load_profile, only_distill_errors, sandbox
from distill_vision.modality import VisionModality

load_profile()

MODALITY = VisionModality()


def _check(spec: str, folder: Path) -> RealData | DistillError:
    """Route and load ``spec`` the way the CLI does; only clean results or DistillErrors are allowed."""
    claimed = only_distill_errors(MODALITY.claims, spec)
    assert isinstance(claimed, bool), f"claims must answer True/False, got {claimed!r}"
    result = only_distill_errors(MODALITY.load_dataset, spec, root=str(folder))
    event(f"claims={claimed} -> {type(result).__name__}")  # shown by --hypothesis-show-statistics
    if isinstance(result, RealData):
        for x, y in ((result.x_train, result.y_train), (result.x_test, result.y_test)):
            assert torch.isfinite(x).all() and x.dtype == torch.float32 and len(x) == len(y) > 0
            assert int(y.min()) >= 0 and int(y.max()) < result.num_classes
    else:
        assert isinstance(result, DistillError) and "\n" not in str(result)
    return result


def _npz_bytes(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _valid_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 3, 4, 4)).astype(np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2])
    return {"x_train": x, "y_train": y, "x_test": x[:3], "y_test": y[:3]}


VALID_NPZ = {False: _npz_bytes(_valid_arrays()), True: _npz_bytes(_valid_arrays(), compressed=True)}
PREFIXES = [b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"\x80\x04\x95"]


def _load_npz(blob: bytes) -> RealData | DistillError:
    with sandbox() as folder:
        path = folder / "data.npz"
        path.write_bytes(blob)
        return _check(f"npz:{path}", folder)


@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=2048))
def test_fuzz_npz_random_bytes(prefix: bytes, body: bytes) -> None:
    assert isinstance(_load_npz(prefix + body), DistillError)


@given(compressed=st.booleans(), cut=st.floats(0, 1, exclude_max=True))
def test_fuzz_npz_truncations(compressed: bool, cut: float) -> None:
    blob = VALID_NPZ[compressed]
    assert isinstance(_load_npz(blob[: int(cut * len(blob))]), DistillError)


@given(compressed=st.booleans(), data=st.data())
def test_fuzz_npz_corrupted_bytes(compressed: bool, data: st.DataObject) -> None:
    _load_npz(flip_bytes(VALID_NPZ[compressed], data))


DTYPES = [np.uint8, np.int16, np.int64, np.uint64, np.float16, np.float32, np.float64, np.dtype(">f4"), np.bool_,
          np.complex64, np.dtype("<U2"), np.dtype("S3")]
KEYS = ["x_train", "y_train", "x_test", "y_test", "class_names"]


ARRAYS = hnp.arrays(dtype=st.sampled_from(DTYPES),
                    shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))


LABEL_ARRAYS = hnp.arrays(dtype=st.sampled_from([np.int64, np.uint8, np.int8, np.float32]),
                          shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6),
                          elements=st.integers(0, 5))


IMAGE_ARRAYS = hnp.arrays(dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int16]),
                          shape=hnp.array_shapes(min_dims=3, max_dims=4, min_side=0, max_side=4))


@given(arrays=st.fixed_dictionaries({"x_train": IMAGE_ARRAYS | ARRAYS, "y_train": LABEL_ARRAYS | ARRAYS,
                                     "x_test": IMAGE_ARRAYS | ARRAYS, "y_test": LABEL_ARRAYS | ARRAYS},
                                    optional={"class_names": ARRAYS}))
def test_fuzz_npz_random_shapes_and_dtypes(arrays: dict[str, np.ndarray]) -> None:
    _load_npz(_npz_bytes(arrays))


@st.composite
def _image_sets(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Image archives that are mostly well formed (NHWC/NCHW/NHW, uint8/int/float, every class in both splits),
    then damaged at random: NaN/Inf pixels, NaN, fractional, negative or too large labels, empty splits, object
    arrays, missing keys."""
    classes = draw(st.integers(2, 3))
    shape = draw(st.sampled_from([(3, 4, 4), (4, 4, 3), (4, 4), (1, 2, 2)]))
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64, np.int32]))
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        n = draw(st.sampled_from([classes, 2 * classes, 0, 1])) if draw(st.booleans()) else 2 * classes
        x = np.arange(n * int(np.prod(shape)), dtype=np.float64).reshape(n, *shape) * 7 % 251
        y = (np.arange(n) % classes).astype(draw(st.sampled_from([np.int64, np.float32, np.uint8])))
        if x.size and dtype in (np.float32, np.float64) and draw(st.booleans()):
            for flat in draw(st.lists(st.integers(0, x.size - 1), min_size=1, max_size=3)):
                x.reshape(-1)[flat] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        if y.size and draw(st.integers(0, 3)) == 0:
            y = y.astype(np.float64)
            y[draw(st.integers(0, y.size - 1))] = draw(st.sampled_from([np.nan, np.inf, 0.5, 1e300, -1.0, 99.0]))
        out[f"x_{split}"], out[f"y_{split}"] = x.astype(dtype), y
    if draw(st.booleans()):
        out["class_names"] = np.array([f"c{i}" for i in range(draw(st.integers(0, 4)))])
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.sampled_from(KEYS[:4]))] = np.array([None, {"a": 1}], dtype=object)
    if draw(st.integers(0, 9)) == 0:
        del out[draw(st.sampled_from(KEYS[:4]))]
    return out


@given(arrays=_image_sets(), compressed=st.booleans())
def test_fuzz_npz_images_with_nan_and_label_placements(arrays: dict[str, np.ndarray], compressed: bool) -> None:
    result = _load_npz(_npz_bytes(arrays, compressed))
    if isinstance(result, RealData):
        assert np.isfinite(arrays["x_train"].astype(np.float64)).all() and len(arrays["y_train"]) > 0


# --- CIFAR-10 folders ---------------------------------------------------------------------------------------------

def _batch(n: int, protocol: int = 4, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)],
             b"filenames": [b"img.png"] * n, b"batch_label": b"batch"}
    return pickle.dumps(batch, protocol=protocol)


VALID_BATCH = {protocol: _batch(10, protocol) for protocol in (2, 4, 5)}
TEST_BATCH = _batch(10, seed=1)


def _load_cifar(train_batch: bytes) -> RealData | DistillError:
    with sandbox() as folder:
        cifar = folder / "cifar-10-batches-py"
        cifar.mkdir()
        (cifar / "data_batch_1").write_bytes(train_batch)
        (cifar / "test_batch").write_bytes(TEST_BATCH)
        return _check(f"cifar10:{cifar}", folder)


@given(prefix=st.sampled_from([b"", b"\x80\x02", b"\x80\x04\x95", b"\x80\x05", b"(dp0\n", b"c__builtin__\neval\n"]),
       body=st.binary(max_size=2048))
def test_fuzz_cifar10_random_bytes(prefix: bytes, body: bytes) -> None:
    _load_cifar(prefix + body)


@given(protocol=st.sampled_from([2, 4, 5]), cut=st.floats(0, 1, exclude_max=True))
def test_fuzz_cifar10_truncations(protocol: int, cut: float) -> None:
    blob = VALID_BATCH[protocol]
    assert isinstance(_load_cifar(blob[: int(cut * len(blob))]), DistillError)


@given(protocol=st.sampled_from([2, 4, 5]), data=st.data())
def test_fuzz_cifar10_corrupted_bytes(protocol: int, data: st.DataObject) -> None:
    _load_cifar(flip_bytes(VALID_BATCH[protocol], data))


LABELS = st.one_of(
    st.lists(st.integers(-2, 11), max_size=12),
    st.lists(st.floats(allow_nan=True), max_size=12),
    st.lists(st.text(max_size=2), max_size=3),
    hnp.arrays(st.sampled_from([np.int64, np.uint8, np.float32, np.bool_]), st.integers(0, 12)),
    st.none(),
    st.just("valid"),  # one label per image, every class present
)


@given(data=hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.dtype(">u2")]),
                       st.sampled_from([(10, 3072), (0, 3072), (3, 3072), (10, 3071), (10, 3, 32, 32), (3072,)])),
       labels=LABELS, protocol=st.sampled_from([2, 4, 5]), key_style=st.sampled_from(["bytes", "str", "missing"]))
def test_fuzz_cifar10_random_batches(data: np.ndarray, labels: object, protocol: int, key_style: str) -> None:
    keys = {"bytes": (b"data", b"labels"), "str": ("data", "labels"), "missing": (b"data", b"label")}[key_style]
    if isinstance(labels, str) and labels == "valid":
        labels = [i % 10 for i in range(len(data))]
    batch = {keys[0]: data, keys[1]: labels}
    _load_cifar(pickle.dumps(batch, protocol=protocol))
