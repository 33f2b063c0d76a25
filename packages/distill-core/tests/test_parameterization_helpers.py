"""The shared helpers a parameterization builds on: class labels, per-class real draws (``ClassIndex`` with
``replace``), option checks."""

from __future__ import annotations

import pytest
import torch

from distill_core.data import ClassIndex
from distill_core.errors import DataValidationError
from distill_core.parameterized import Parameterization


class _Toy(Parameterization):
    name = "toy"


def test_class_labels_repeat_each_class_by_its_count() -> None:
    assert Parameterization.class_labels([2, 0, 3]).tolist() == [0, 0, 2, 2, 2]


def test_draw_per_class_gives_distinct_samples_of_each_class_in_class_order() -> None:
    labels = torch.tensor([0, 1, 0, 1, 0, 2, 2, 0])
    pick = ClassIndex(labels, 3).sample_sizes([3, 2, 1], generator=torch.Generator().manual_seed(0), replace=True)
    assert labels[pick].tolist() == [0, 0, 0, 1, 1, 2]
    assert len(set(pick[:3].tolist())) == 3 and len(set(pick[3:5].tolist())) == 2
    again = ClassIndex(labels, 3).sample_sizes([3, 2, 1], generator=torch.Generator().manual_seed(0), replace=True)
    assert torch.equal(pick, again)


def test_draw_per_class_repeats_samples_of_a_class_smaller_than_asked() -> None:
    labels = torch.tensor([0, 0, 1])
    pick = ClassIndex(labels, 2).sample_sizes([1, 4], generator=torch.Generator().manual_seed(1), replace=True)
    assert labels[pick].tolist() == [0, 1, 1, 1, 1]
    assert set(pick[1:].tolist()) == {2}


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_check_positive_ints_names_the_parameterization_and_option(value: object) -> None:
    with pytest.raises(DataValidationError, match=r"toy option 'width' must be an integer >= 1"):
        _Toy.check_positive_ints({"width": value, "depth": 2}, ("depth", "width"))
    _Toy.check_positive_ints({"width": 3, "depth": 2}, ("depth", "width"))
