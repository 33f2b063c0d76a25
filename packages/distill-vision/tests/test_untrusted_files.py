"""Dataset files are untrusted input: a planted CIFAR-10 folder must never run code (directly or through
``distill eval``), and damaged or crafted files fail with one DataValidationError naming the file and the fix."""

from __future__ import annotations

import gzip
import io
import os
import pathlib
import pickle
import shlex
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from distill_core import Artifact, Summary
from distill_core.artifact import load_artifact
from distill_core.cli import main as cli_main
from distill_core.errors import DataValidationError, DistillError
from distill_core.runner import evaluate_artifact
from distill_vision.datasets import load
from distill_vision.modality import VisionModality

CIFAR_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


# --- CIFAR-10: planted pickles ----------------------------------------------------------------------------------

class _Touch:
    """Unpickling calls ``Path(marker).touch()``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


class _Eval(_Touch):
    def __reduce__(self) -> tuple[object, ...]:
        return eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)


class _System(_Touch):
    def __reduce__(self) -> tuple[object, ...]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _plant(folder: Path, payload: object, *, nested: bool, protocol: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    batch = {b"data": payload, b"labels": [0]} if nested else payload
    for name in CIFAR_FILES:
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("kind", [_Touch, _Eval, _System])
def test_planted_cifar10_folder_never_runs_code(tmp_path: Path, kind: type[_Touch], nested: bool,
                                                protocol: int) -> None:
    marker = tmp_path / "pwned"
    folder = _plant(tmp_path / "cifar-10-batches-py", kind(marker), nested=nested, protocol=protocol)
    with pytest.raises(DataValidationError, match=r"data_batch_1 is not a CIFAR-10 python batch: it references") \
            as info:
        load(f"cifar10:{folder}")
    assert "cifar-10-batches-py" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def _vision_artifact(directory: Path, dataset: str) -> Path:
    summary = Summary(x=torch.zeros(10, 3, 32, 32), labels=torch.arange(10), num_classes=10)
    Artifact(summary=summary, method="random", modality="vision", dataset={"name": dataset, "num_classes": 10},
             evaluations=[{"accuracy_mean": 10.0, "accuracy_std": 0.0, "seed": 0,
                           "protocol": {"model": "convnet", "epochs": 1, "n_models": 1}}]).save(directory)
    return directory


def test_distill_eval_of_an_artifact_naming_a_planted_folder_never_runs_code(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    folder = _plant(tmp_path / "planted", _Eval(marker), nested=True, protocol=4)
    directory = _vision_artifact(tmp_path / "artifact", f"cifar10:{folder}")
    with pytest.raises(DistillError, match="not a CIFAR-10 python batch"):
        evaluate_artifact(load_artifact(directory))
    assert not marker.exists()
    assert cli_main(["eval", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "not a CIFAR-10 python batch" in err and "Traceback" not in err
    assert not marker.exists()


def _py2_batch(data: np.ndarray, labels: list[int], dtype: bytes = b"u1", order: bytes = b"|") -> bytes:
    """A batch as Python 2's cPickle wrote the original files: py2 strings (SHORT_BINSTRING/BINSTRING),
    numpy.core.multiarray._reconstruct, dtype(b'u1', 0, 1) with a byte-string byte order."""
    def text(value: bytes) -> bytes:
        return b"U" + bytes([len(value)]) + value

    raw = data.astype(np.dtype(order.decode().replace("|", "=") + dtype.decode())).tobytes()
    return (b"\x80\x02}q\x01(" + text(b"data") + b"cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03"
            + b"K\x00\x85" + text(b"b") + b"\x87Rq\x04(K\x01M" + struct.pack("<H", len(data)) + b"M\x00\x0c\x86"
            + b"cnumpy\ndtype\nq\x05" + text(dtype) + b"K\x00K\x01\x87Rq\x06(K\x03" + text(order)
            + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89T" + struct.pack("<i", len(raw)) + raw + b"tb"
            + text(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu.")


def _genuine_batches(folder: Path, protocol: int | str, *, n: int = 4,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i, name in enumerate(["data_batch_1", "data_batch_2", "test_batch"]):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n)
        labels[: min(n, 10)] = np.arange(min(n, 10))
        batch = {b"batch_label": f"batch {i}".encode(), b"data": data, b"filenames": [b"a.png"] * n,
                 b"labels": [int(v) for v in labels] if i % 2 else labels.astype(np.int64),
                 b"empty": b"", b"tags": {1, 2}, b"scale": np.float32(1.5)}
        if isinstance(protocol, str):  # "py2" / "py2>": as the original files were written
            blob = _py2_batch(data, [int(v) for v in labels], *((b"u2", b">") if protocol == "py2>" else ()))
        else:
            blob = pickle.dumps(batch, protocol=protocol)
        (folder / name).write_bytes(blob)
        xs.append(data)
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("protocol", [2, 4, 5, "py2", "py2>"])
def test_genuine_cifar10_batches_load_without_pickle_load(tmp_path: Path, protocol: int | str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _genuine_batches(tmp_path / "cifar-10-batches-py", protocol, n=10)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CIFAR-10 loader must not call pickle.load / pickle.loads")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    modality = VisionModality()
    spec = f"cifar10:{tmp_path / 'cifar-10-batches-py'}"
    assert modality.claims(spec)
    data = modality.load_dataset(spec, preprocessing=None)
    raw = data.preprocessing.invert(torch.cat([data.x_train, data.x_test]))
    assert torch.allclose(raw, torch.from_numpy(x).float().reshape(-1, 3, 32, 32) / 255.0, atol=1e-5)
    assert torch.equal(torch.cat([data.y_train, data.y_test]), torch.from_numpy(y))
    assert data.class_names[:2] == ["airplane", "automobile"]


def _object_array() -> bytes:
    return pickle.dumps({b"data": np.array(["a", 1], dtype=object), b"labels": [0, 1]}, protocol=2)


def _valid_batch(protocol: int = 4, **changes: object) -> bytes:
    batch: dict[bytes, object] = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    batch.update({k.encode(): v for k, v in changes.items()})
    return pickle.dumps(batch, protocol=protocol)


MALFORMED = {
    "a list": (pickle.dumps([1, 2, 3]), "holds a list, not a dict"),
    "no labels": (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), r"lacks \[b'labels'\]"),
    "wrong data shape": (_valid_batch(data=np.zeros((2, 100), np.uint8)), r"must be a uint8 array \(N, 3072\)"),
    "float data": (_valid_batch(data=np.zeros((2, 3072), np.float32)), "must be a uint8 array"),
    "data out of range": (_valid_batch(data=np.full((2, 3072), 300, np.int64)), "outside 0..255"),
    "labels of another length": (_valid_batch(labels=[0, 1, 2]), "must be 2 integer class indices"),
    "labels out of range": (_valid_batch(labels=[0, 10]), "not 0..9"),
    "text labels": (_valid_batch(labels=["cat", "dog"]), "integer class indices"),
    "object array": (_object_array(), "only numeric arrays"),
    "structured array": (_valid_batch(2, data=np.zeros(2, dtype=[("a", "u1")])), "only numeric arrays"),
    "truncated": (_valid_batch()[:100], "a frame of 6315 bytes in a 100-byte file"),
    "truncated at protocol 2": (_valid_batch(2)[:100], "unreadable pickle"),
    "empty file": (b"", "unreadable pickle"),
    "not a pickle": (b"GIF89a" + bytes(100), "unreadable pickle"),
    "a 1 TB bytes field": (b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc.", "unreadable pickle"),
    "a 1 TB frame": (b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"N.", "frame"),
    "a memo index of 2**24": (b"\x80\x02Nr" + struct.pack("<I", 1 << 24) + b".", "a memo index 16777216 beyond"),
    "an array state that lies": (_valid_batch(2).replace(b"M\x00\x0c", b"M\x01\x0c", 1), r"shape \(2, 3073\)"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_cifar10_batch_is_one_clear_error(tmp_path: Path, case: str) -> None:
    payload, message = MALFORMED[case]
    folder = tmp_path / "cifar-10-batches-py"
    _genuine_batches(folder, 4)
    (folder / "data_batch_2").write_bytes(payload)
    with pytest.raises(DataValidationError, match=message) as info:
        load(f"cifar10:{folder}")
    text = str(info.value)
    assert f"{folder / 'data_batch_2'} is not a CIFAR-10 python batch" in text and "cifar-10-batches-py" in text


# --- npz: damaged and crafted archives --------------------------------------------------------------------------

def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (12, 3, 5, 5)).astype(np.uint8)
    y = np.tile(np.arange(3), 4)
    return {"x_train": x, "y_train": y, "x_test": x[:6], "y_test": y[:6]}


def _npz_bytes(arrays: dict[str, np.ndarray], *, compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _npy_member(header: dict[str, object], data: bytes, version: tuple[int, int] = (1, 0)) -> bytes:
    out = io.BytesIO()
    write = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
    write(out, header)  # type: ignore[operator]
    return out.getvalue() + data


def _crafted_npz(member: bytes, key: str = "x_train") -> bytes:
    """A valid archive whose ``key`` member is replaced by raw .npy bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in _arrays().items():
            if name == key:
                archive.writestr(f"{name}.npy", member)
            else:
                with archive.open(f"{name}.npy", "w") as handle:
                    np.lib.format.write_array(handle, array)
    return buffer.getvalue()


def _flip_middle(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes(b ^ 0xFF for b in blob[middle:middle + 64]) + blob[middle + 64:]


def _bare_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 3)))
    return buffer.getvalue()


def _object_member() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{**_arrays(), "x_train": np.array([{"a": 1}, None], dtype=object)})
    return buffer.getvalue()


HUGE = {"descr": "|u1", "fortran_order": False, "shape": (200_000, 3, 100, 100)}  # 6 GB claimed, 10 bytes held
NPZ_DAMAGE = {
    "empty file": (b"", "the file is empty"),
    "truncated": (_npz_bytes(_arrays())[:300], "not a readable .npz archive"),
    "truncated compressed": (_npz_bytes(_arrays(), compressed=True)[:-40], "not a readable .npz archive"),
    "corrupt compressed data": (_flip_middle(_npz_bytes(_arrays(), compressed=True)), "truncated or corrupt"),
    "zip magic then noise": (b"PK\x03\x04" + bytes(range(256)) * 2, "not a readable .npz archive"),
    "a bare .npy": (_bare_npy(), "a single .npy array, not a .npz archive"),
    "huge header shape": (_crafted_npz(_npy_member(HUGE, bytes(10))), r"claims shape \(200000, 3, 100, 100\)"),
    "header beyond memory": (_crafted_npz(_npy_member({**HUGE, "shape": (1 << 50,)}, bytes(10))), "claims shape"),
    "header smaller than data": (_crafted_npz(_npy_member({**HUGE, "shape": (2, 2)}, bytes(300))), "claims shape"),
    "object array": (_object_member(), "holds Python objects"),
    "structured array": (_crafted_npz(_npy_member({**HUGE, "descr": [("a", "|u1")], "shape": (4,)}, bytes(4))),
                         "has dtype"),
    "bad .npy magic": (_crafted_npz(b"not an array at all"), "is not a .npy array"),
    "bad .npy header": (_crafted_npz(b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n"), "is not a .npy array"),
}


@pytest.mark.parametrize("case", list(NPZ_DAMAGE))
def test_damaged_npz_is_one_clear_error_naming_the_file(tmp_path: Path, case: str) -> None:
    blob, message = NPZ_DAMAGE[case]
    path = tmp_path / "mine.npz"
    path.write_bytes(blob)
    modality = VisionModality()
    assert modality.claims(f"npz:{path}") in (True, False)  # a route, never an exception
    with pytest.raises(DataValidationError, match=message) as info:
        modality.load_dataset(f"npz:{path}")
    text = str(info.value)
    assert str(path) in text and "np.savez" in text and "\n" not in text


@pytest.mark.parametrize("blob", [b"", b"PK\x03\x04garbage", _npz_bytes(_arrays())[:200], _bare_npy()])
def test_claims_routes_unreadable_npz_to_the_image_loader(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(blob)
    assert VisionModality().claims(f"npz:{path}") is True
    assert VisionModality().claims(f"npz:{tmp_path}") is True  # a folder: the loader says "not found"
    assert VisionModality().claims("npz:bad\0name.npz") is True


LABEL_PROBLEMS = {
    "NaN labels": ({"y_train": np.where(np.arange(12) == 3, np.nan, np.tile(np.arange(3), 4))}, "1 NaN/Inf labels"),
    "empty test split": ({"y_test": np.zeros(0, np.int64), "x_test": np.zeros((0, 3, 5, 5), np.uint8)},
                         "y_test is empty"),
    "negative labels": ({"y_test": -np.ones(6, np.int64)}, "negative labels"),
    "a label beyond the samples": ({"y_test": np.full(6, 10**12)}, "labels go up to 1000000000000"),
    "text images": ({"x_train": np.full((12, 5, 5), "a")}, r"x_train.*has dtype <U1.*numeric"),
    "complex images": ({"x_train": np.zeros((12, 5, 5), np.complex64)}, "has dtype complex64"),
    "bool images": ({"x_train": np.zeros((12, 5, 5), bool)}, "x_train: images must be uint8 or float"),
    "images beyond float32": ({"x_test": np.full((6, 3, 5, 5), 1e300)}, "x_test: images hold values beyond"),
    "images with an empty dimension": ({"x_train": np.zeros((12, 3, 0, 5), np.uint8)}, "empty dimension"),
    "more labels than images": ({"y_train": np.tile(np.arange(3), 5)}, "x_train has 12 images but y_train has 15"),
}


@pytest.mark.parametrize("case", list(LABEL_PROBLEMS))
def test_bad_npz_contents_name_the_file_and_fix(tmp_path: Path, case: str) -> None:
    changes, message = LABEL_PROBLEMS[case]
    path = tmp_path / "mine.npz"
    path.write_bytes(_npz_bytes({**_arrays(), **changes}))
    with pytest.raises(DataValidationError, match=message) as info:
        load(f"npz:{path}")
    assert str(path) in str(info.value)


def test_npz_class_names_and_compressed_archives_still_load(tmp_path: Path) -> None:
    path = tmp_path / "mine.npz"
    arrays = {**_arrays(), "class_names": np.array([b"cat", b"dog", b"emu"])}
    arrays["x_train"] = np.asfortranarray(arrays["x_train"].astype(">f4") / 255)
    path.write_bytes(_npz_bytes(arrays, compressed=True))
    data = load(f"npz:{path}")
    assert data.class_names == ["cat", "dog", "emu"] and data.sample_shape == (3, 5, 5)
    raw = data.preprocessing.invert(data.x_train)
    assert torch.allclose(raw, torch.from_numpy(_arrays()["x_train"].astype(np.float32) / 255), atol=1e-5)


def test_damaged_mnist_and_fashion_mnist_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "train.npz").write_bytes(_npz_bytes({"x": np.zeros((4, 28, 28), np.uint8), "y": np.arange(4)})[:99])
    (tmp_path / "test.npz").write_bytes(b"")
    with pytest.raises(DataValidationError, match=r"train\.npz is not a readable \.npz archive"):
        load("mnist", root=str(tmp_path))
    images = struct.pack(">IIII", 0x803, 60000, 28, 28) + bytes(100)  # header claims 60000 images
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(images)
    for name in ["train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
        (tmp_path / name).write_bytes(b"\0\0\x08")
    with pytest.raises(DataValidationError, match=r"train-images-idx3-ubyte\.gz is not a uint8 IDX file"):
        load("fashion-mnist", root=str(tmp_path))
