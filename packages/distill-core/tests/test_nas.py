"""Architecture-search proxy (distill_core.applications.nas): Spearman by hand (all and top-k), the variant draw,
the protocol end to end on the toy modality, and bad input refused."""

from __future__ import annotations

from typing import Any

import pytest

from distill_core.applications.nas import NASConfig, rank_correlation, run_nas, sample_space
from distill_core.data import RealData
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.testing import ToyModality, make_blobs


def test_rank_correlation_by_hand():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([4, 3, 2, 1], [10, 20, 30, 40]) == pytest.approx(-1.0)
    # one swapped pair: d = (0, 1, 1, 0), rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert rank_correlation([1, 3, 2, 4], [1, 2, 3, 4]) == pytest.approx(0.8)
    # all four: proxy ranks (3, 2, 1, 4) vs reference ranks (4, 3, 2, 1): d^2 = 12, rho = 1 - 72 / 60 = -0.2
    proxy, reference = [3, 2, 1, 4], [10, 9, 8, 1]
    assert rank_correlation(proxy, reference) == pytest.approx(-0.2)
    # the top 3 of the reference (indices 0, 1, 2) are ranked the same way by the proxy
    assert rank_correlation(proxy, reference, top=3) == pytest.approx(1.0)
    # ties get average ranks (scipy): proxy (1, 1, 2) vs (1, 2, 3) -> ranks (1.5, 1.5, 3): rho = 0.866
    assert rank_correlation([1, 1, 2], [1, 2, 3]) == pytest.approx(3 ** 0.5 / 2)


def test_rank_correlation_undefined_and_bad():
    assert rank_correlation([5, 5, 5], [1, 2, 3]) is None
    assert rank_correlation([1], [1]) is None
    with pytest.raises(DataValidationError, match="k >= 2"):
        rank_correlation([1, 2], [1, 2], top=1)
    with pytest.raises(DataValidationError, match="3 accuracies but the reference 2"):
        rank_correlation([1, 2, 3], [1, 2])


def test_sample_space_is_seeded_and_distinct():
    space = [{"model": "mlp", "model_kwargs": {"width": w}} for w in range(100)]
    picked = sample_space(space, 10, seed=0)
    assert picked == sample_space(space, 10, seed=0) and picked != sample_space(space, 10, seed=1)
    widths = [v["model_kwargs"]["width"] for v in picked]
    assert len(set(widths)) == 10 and widths == sorted(widths)
    assert sample_space(space, None, seed=0) == space and sample_space(space, 500, seed=0) == space


class _SearchableToy(ToyModality):
    def architecture_space(self, data: RealData) -> list[dict[str, Any]]:
        return [{"model": "mlp", "model_kwargs": {"width": w}} for w in (2, 4, 8, 16, 32)] + [{"model": "linear"}]


def test_runs_end_to_end_on_toy():
    data = make_blobs(num_classes=3, n_per_class=30, dim=6, seed=2)
    config = NASConfig(method="random", ipc=3, variants=4, epochs=10, full_epochs=5, full_per_class=20)
    result = run_nas(config, data, modality=_SearchableToy())
    assert len(result.variants) == 4
    assert len(result.summary_accuracies) == len(result.random_accuracies) == len(result.full_accuracies) == 4
    assert result.full_size == 60
    report = result.summary()
    assert set(report["spearman_summary"]) == {"all", "top5", "top10", "top20"}
    assert report["spearman_summary"]["top5"] is None  # only 4 variants
    assert set(report["train_s"]) == {"summary", "random", "full"}


@pytest.mark.parametrize(("changes", "error", "match"), [
    ({"method": "no-such-method"}, UnknownNameError, "method 'no-such-method'"),
    ({"variants": 1}, DataValidationError, "at least 2 architectures"),
    ({"ipc": 0}, DataValidationError, "ipc must be"),
    ({"ipc": 31}, DataValidationError, "ipc=31 is larger than class"),
    ({"test_per_class": 0}, DataValidationError, "test_per_class must be"),
])
def test_bad_input_refused(changes, error, match):
    data = make_blobs(num_classes=3, n_per_class=30, dim=6)
    with pytest.raises(error, match=match):
        run_nas(NASConfig(**{"method": "random", "ipc": 2, **changes}), data, modality=_SearchableToy())


def test_modality_without_space_refused():
    with pytest.raises(DataValidationError, match="defines no architecture-search space"):
        run_nas(NASConfig(method="random", ipc=2), make_blobs(), modality=ToyModality())


def test_test_per_class_scores_on_the_subset():
    data = make_blobs(num_classes=3, n_per_class=30, dim=6, seed=2)
    config = NASConfig(method="random", ipc=3, variants=3, epochs=5, full_epochs=5, full_per_class=10,
                       test_per_class=2)
    result = run_nas(config, data, modality=_SearchableToy())
    # 6 test samples: every accuracy is a multiple of 1/6
    for acc in (*result.summary_accuracies, *result.random_accuracies, *result.full_accuracies):
        assert abs(acc * 6 / 100 - round(acc * 6 / 100)) < 1e-6
