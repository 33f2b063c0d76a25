from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.preprocessing import Preprocessing
from distill_vision.datasets import load
from distill_vision.modality import VisionModality


def test_digits_is_split_and_normalised_on_the_train_split(digits) -> None:
    assert digits.sample_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert abs(float(digits.x_train.mean())) < 1e-4 and float(digits.x_train.std()) == pytest.approx(1.0, abs=1e-3)
    # test statistics are NOT used: the test split is only approximately standardised
    assert float(digits.x_test.mean()) != pytest.approx(0.0, abs=1e-6)
    assert min(digits.class_counts()) >= 100


def _write_npz(path: Path, *, nhwc: bool, dtype: str, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    shape = (20, 6, 6, 3) if nhwc else (20, 3, 6, 6)
    x = rng.integers(0, 255, shape).astype(np.uint8) if dtype == "uint8" else rng.random(shape, dtype=np.float32)
    y = np.tile(np.arange(4), 5)
    arrays = {"x_train": x, "y_train": y, "x_test": x[:8], "y_test": y[:8], **extra}
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("nhwc", [True, False])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_user_npz_in_any_layout(tmp_path: Path, nhwc: bool, dtype: str) -> None:
    path = _write_npz(tmp_path / "mine.npz", nhwc=nhwc, dtype=dtype)
    data = load(f"npz:{path}")
    assert data.sample_shape == (3, 6, 6) and data.num_classes == 4 and len(data.x_test) == 8


def test_user_npz_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="not found"):
        load(f"npz:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 4, 4)))
    with pytest.raises(DataValidationError, match=r"lacks the arrays \['y_train', 'x_test', 'y_test'\]"):
        load(f"npz:{tmp_path / 'partial.npz'}")
    one_hot = np.eye(4)[np.tile(np.arange(4), 5)]
    path = _write_npz(tmp_path / "onehot.npz", nhwc=False, dtype="uint8")
    arrays = dict(np.load(path))
    arrays["y_train"] = one_hot
    np.savez(tmp_path / "onehot.npz", **arrays)
    with pytest.raises(DataValidationError, match="one-hot"):
        load(f"npz:{tmp_path / 'onehot.npz'}")
    arrays = dict(np.load(_write_npz(tmp_path / "nan.npz", nhwc=False, dtype="float32")))
    arrays["x_train"][3, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(DataValidationError, match="NaN"):
        load(f"npz:{tmp_path / 'nan.npz'}")


def test_empty_class_and_single_class_are_refused(tmp_path: Path) -> None:
    arrays = dict(np.load(_write_npz(tmp_path / "a.npz", nhwc=False, dtype="uint8")))
    arrays["y_train"] = np.where(arrays["y_train"] == 2, 3, arrays["y_train"])  # class 2 disappears from train
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(DataValidationError, match="no training sample"):
        load(f"npz:{tmp_path / 'a.npz'}")


def test_cifar10_folder_loader(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ["data_batch_1", "data_batch_2", "test_batch"]:
        batch = {b"data": rng.integers(0, 255, (10, 3072)).astype(np.uint8), b"labels": list(range(10))}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    data = load(f"cifar10:{folder}")
    assert data.sample_shape == (3, 32, 32) and len(data.x_train) == 20 and data.class_names[0] == "airplane"
    (folder / "test_batch").unlink()
    with pytest.raises(DataValidationError, match="test_batch"):
        load(f"cifar10:{folder}")


def test_missing_fashion_mnist_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="apt-get install -y dataset-fashion-mnist"):
        load("fashion-mnist", root=str(tmp_path))


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="digits"):
        load("imagenet")


def test_stored_preprocessing_is_applied_instead_of_refitting(digits) -> None:
    again = load("digits", preprocessing=digits.preprocessing)
    assert torch.equal(again.x_test, digits.x_test)
    other = load("digits", preprocessing=Preprocessing())
    assert not torch.allclose(other.x_test, digits.x_test)


def test_zca_suffix_whitens_and_inverts(digits) -> None:
    zca = load("digits+zca")
    assert zca.preprocessing.whitened and not digits.preprocessing.whitened
    back = zca.preprocessing.invert(zca.x_train[:5])
    raw = digits.preprocessing.invert(digits.x_train[:5])
    assert torch.allclose(back, raw, atol=1e-3)


def test_modality_claims_only_image_npz(tmp_path: Path) -> None:
    modality = VisionModality()
    np.savez(tmp_path / "graph.npz", x=np.zeros((3, 2)), edge_index=np.zeros((2, 1), dtype=np.int64))
    assert not modality.claims(f"npz:{tmp_path / 'graph.npz'}")
    assert modality.claims(f"npz:{_write_npz(tmp_path / 'img.npz', nhwc=False, dtype='uint8')}")
    assert modality.claims("digits") and modality.claims("fashion-mnist+zca")
