"""Up-front validation of real data and budgets: each failure is a DataValidationError that names the fix."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch

from distill_core import Budget, ClassIndex, DataValidationError, RealData, validate_budget, validate_real_data
from distill_core.testing import make_blobs


def _data(counts: list[int], *, dim: int = 3, **extra: object) -> RealData:
    y = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(counts)])
    g = torch.Generator().manual_seed(0)
    return RealData("toyset", torch.randn(len(y), dim, generator=g), y, torch.randn(len(y), dim, generator=g), y,
                    len(counts), extra=dict(extra))


def _invalid(data: RealData, *fragments: str) -> None:
    with pytest.raises(DataValidationError) as info:
        validate_real_data(data)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


class TestValidateRealData:
    def test_valid_data_passes(self) -> None:
        data = make_blobs()
        assert validate_real_data(data) is data
        assert data.class_counts() == [40, 40, 40] and data.sample_shape == (8,)
        assert data.class_names == ["0", "1", "2"]

    def test_x_without_batch_dimension(self) -> None:
        data = _data([3, 3])
        _invalid(replace(data, x_train=torch.zeros(6)), "x_train must be (N, ...)", "(6,)")

    def test_one_hot_labels(self) -> None:
        data = _data([3, 3])
        _invalid(replace(data, y_train=torch.eye(2)[data.y_train]), "y_train must be a 1-D vector",
                 "not one-hot rows")

    def test_length_mismatch(self) -> None:
        data = _data([3, 3])
        _invalid(replace(data, y_test=data.y_test[:4]), "x_test has 6 samples but y_test has 4 labels")

    def test_empty_split(self) -> None:
        data = _data([3, 3])
        _invalid(replace(data, x_test=torch.zeros(0, 3), y_test=torch.zeros(0, dtype=torch.long)),
                 "the test split is empty")

    def test_nan_in_x(self) -> None:
        data = _data([3, 3])
        x = data.x_train.clone()
        x[4, 1] = float("nan")
        x[5, 0] = float("inf")
        _invalid(replace(data, x_train=x), "2 samples with NaN/Inf", "first at index 4", "clean or drop them")

    @pytest.mark.parametrize("bad", [-1, 2, 7])
    def test_labels_out_of_range(self, bad: int) -> None:
        data = _data([3, 3])
        y = data.y_train.clone()
        y[0] = bad
        _invalid(replace(data, y_train=y), "num_classes is 2", "labels must be 0..1")

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
    def test_non_integer_labels(self, dtype: torch.dtype) -> None:
        data = _data([3, 3])
        _invalid(replace(data, y_train=data.y_train.to(dtype)), "must hold integer class indices", str(dtype))

    def test_empty_class(self) -> None:
        data = _data([3, 0, 3])
        data = replace(data, y_train=torch.tensor([0, 0, 0, 2, 2, 2]), y_test=torch.tensor([0, 0, 0, 2, 2, 2]),
                       class_names=["cat", "dog", "emu"])
        _invalid(data, "classes ['dog'] have no training sample", "relabel the rest as 0..K-1")

    def test_single_class(self) -> None:
        _invalid(_data([5]), "single class", "at least 2 classes")

    def test_mismatched_train_test_shapes(self) -> None:
        data = _data([3, 3])
        _invalid(replace(data, x_test=torch.zeros(6, 4)), "train samples have shape (3,) but test samples (4,)",
                 "must share one shape")

    @pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
    def test_non_float32_samples(self, dtype: torch.dtype) -> None:
        # numpy arrays default to float64; without this check the run fails deep inside a matmul
        data = _data([3, 3])
        _invalid(replace(data, x_test=data.x_test.to(dtype)), f"x_test has dtype {dtype}", "x_test.float()")

    def test_integer_samples_are_allowed(self) -> None:
        data = _data([3, 3])
        validate_real_data(replace(data, x_train=torch.zeros(6, 3, dtype=torch.uint8),
                                   x_test=torch.zeros(6, 3, dtype=torch.uint8)))


class TestBudget:
    def test_exactly_one_size(self) -> None:
        for kwargs in ({}, {"ipc": 1, "total": 5}, {"total": 5, "ratio": 0.1}):
            with pytest.raises(DataValidationError, match="exactly one of --ipc, --budget or --ratio"):
                Budget(**kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
    def test_ratio_range(self, ratio: float) -> None:
        with pytest.raises(DataValidationError, match=r"--ratio must be in \(0, 1\]"):
            Budget(ratio=ratio)

    def test_ipc(self) -> None:
        assert Budget(ipc=4).per_class(_data([5, 9, 4])) == [4, 4, 4]

    def test_ipc_larger_than_a_class(self) -> None:
        data = replace(_data([5, 2, 9]), class_names=["a", "b", "c"])
        with pytest.raises(DataValidationError, match=r"ipc=3 is larger than class 'b'.*only 2.*--ipc 2 or less"):
            Budget(ipc=3).per_class(data)
        with pytest.raises(DataValidationError, match="ipc must be >= 1"):
            validate_budget(data, 0)

    @pytest.mark.parametrize(("counts", "total"), [([40, 40, 40], 10), ([100, 5, 1], 10), ([7, 3], 2),
                                                   ([50, 30, 15, 5], 37), ([3, 3, 3], 9)])
    def test_total_is_spread_by_frequency(self, counts: list[int], total: int) -> None:
        sizes = Budget(total=total).per_class(_data(counts))
        assert sum(sizes) == total
        assert all(s >= 1 for s in sizes)
        assert all(s <= n for s, n in zip(sizes, counts))
        # larger classes never get fewer samples than smaller ones
        by_count = sorted(zip(counts, sizes))
        assert [s for _, s in by_count] == sorted(s for _, s in by_count)

    def test_every_feasible_total_resolves(self) -> None:
        for counts in itertools.product(range(1, 6), repeat=3):
            data = _data(list(counts))
            for total in range(3, sum(counts) + 1):
                sizes = Budget(total=total).per_class(data)
                assert sum(sizes) == total and all(1 <= s <= n for s, n in zip(sizes, counts)), (counts, total)

    def test_total_by_hand(self) -> None:
        # 100/106 * 10 = 9.4 -> 9, the two tiny classes are lifted to 1 each, then the largest gives one back
        assert Budget(total=10).per_class(_data([100, 5, 1])) == [8, 1, 1]
        assert Budget(total=10).per_class(_data([60, 40])) == [6, 4]

    def test_ratio(self) -> None:
        assert sum(Budget(ratio=0.1).per_class(_data([60, 40]))) == 10
        assert sum(Budget(ratio=0.1).per_class(_data([64, 42]))) == round(10.6)

    def test_ratio_base(self) -> None:
        # graphs: the ratio refers to all nodes (ratio_base), not only the labelled training nodes (as GCond)
        assert Budget(ratio=0.1).per_class(_data([20, 20])) == [2, 2]
        assert Budget(ratio=0.1).per_class(_data([20, 20], ratio_base=200)) == [10, 10]

    def test_budget_smaller_than_classes(self) -> None:
        with pytest.raises(DataValidationError, match="budget of 2 samples is smaller than the 3 classes"):
            Budget(total=2).per_class(_data([5, 5, 5]))

    def test_share_larger_than_class(self) -> None:
        data = replace(_data([3, 3], ratio_base=100), class_names=["x", "y"])
        with pytest.raises(DataValidationError, match="25 samples of class 'x', which has only 3; lower the budget"):
            Budget(ratio=0.5).per_class(data)


class TestClassIndex:
    def test_sampling_is_seeded_distinct_and_in_class(self) -> None:
        data = _data([5, 7, 4])
        index = ClassIndex(data.y_train, 3)
        a = index.sample_sizes([2, 3, 4], generator=torch.Generator().manual_seed(1))
        b = index.sample_sizes([2, 3, 4], generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b)
        assert data.y_train[a].tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
        assert len(set(a.tolist())) == 9
        # a class smaller than the request gives all its samples, each once
        assert sorted(index.sample(2, 10).tolist()) == index.indices[2].tolist()


def test_hold_out_validation_is_stratified_disjoint_and_leaves_the_test_set() -> None:
    from distill_core.data import hold_out_validation

    data = _data([40, 30, 6])
    train, val = hold_out_validation(data, n_val=30, seed=4)
    # 10 per class, except the 6-sample class, capped at half of it (3)
    assert torch.bincount(val.y_test, minlength=3).tolist() == [10, 10, 3]
    assert torch.bincount(train.y_train, minlength=3).tolist() == [30, 20, 3]
    # every training sample lands on exactly one side; the test set is untouched
    rows = {tuple(r.tolist()) for r in data.x_train}
    held = {tuple(r.tolist()) for r in val.x_test}
    kept = {tuple(r.tolist()) for r in train.x_train}
    assert held | kept == rows and not held & kept
    assert torch.equal(train.x_test, data.x_test) and torch.equal(val.x_train, train.x_train)
    again = hold_out_validation(data, n_val=30, seed=4)[1]
    other = hold_out_validation(data, n_val=30, seed=5)[1]
    assert torch.equal(again.x_test, val.x_test) and not torch.equal(other.x_test, val.x_test)


@pytest.mark.parametrize(("n_val", "max_fraction", "fragment"), [(2, 0.5, "n_val >= 3"), (30, 1.0, "(0, 1)"),
                                                                   (30, 0.1, "too few to hold out")])
def test_hold_out_validation_refuses_what_it_cannot_hold_out(n_val: int, max_fraction: float, fragment: str) -> None:
    from distill_core.data import hold_out_validation

    with pytest.raises(DataValidationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        hold_out_validation(_data([40, 30, 6]), n_val=n_val, seed=0, max_fraction=max_fraction)


def test_subsample_test_is_stratified_seeded_and_leaves_training_alone() -> None:
    from distill_core.data import subsample_test

    data = make_blobs(num_classes=3, n_per_class=40, dim=4, seed=1)
    test_counts = torch.bincount(data.y_test, minlength=3).tolist()
    small = subsample_test(data, 5, seed=0)
    assert torch.bincount(small.y_test, minlength=3).tolist() == [min(5, n) for n in test_counts]
    tests = {(tuple(x.tolist()), int(y)) for x, y in zip(data.x_test, data.y_test)}
    assert all((tuple(x.tolist()), int(y)) in tests for x, y in zip(small.x_test, small.y_test))  # real pairs
    assert torch.equal(small.x_train, data.x_train) and torch.equal(small.y_train, data.y_train)
    assert torch.equal(subsample_test(data, 5, seed=0).x_test, small.x_test)
    assert not torch.equal(subsample_test(data, 5, seed=1).x_test, small.x_test)
    assert subsample_test(data, None, seed=0) is data
    big = subsample_test(data, 10_000, seed=0)  # more than a class holds: all of it
    assert sorted(big.y_test.tolist()) == sorted(data.y_test.tolist())
    with pytest.raises(DataValidationError, match="test_per_class must be"):
        subsample_test(data, 0, seed=0)
