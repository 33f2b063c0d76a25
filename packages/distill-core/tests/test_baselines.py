"""Coreset baselines: herding and k-center on hand-made points, and artifacts of the requested budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_core import Budget, RealData, distill, herding_select, k_center_select, load_artifact
from distill_core.testing import ArtifactContract


class TestKCenter:
    def test_hand_made_points(self) -> None:
        points = torch.tensor([[0.0], [1.0], [2.0], [10.0], [-10.0]])  # mean 0.6: nearest is 1.0
        # then the farthest from {1}: -10; farthest from {1, -10}: 10; then 0 and 2 tie at distance 1
        assert k_center_select(points, 3).tolist() == [1, 4, 3]
        assert k_center_select(points, 5).tolist() == [1, 4, 3, 0, 2]

    def test_distinct_even_with_duplicate_rows(self) -> None:
        """Duplicates leave every remaining distance at 0; the chosen rows must still be distinct (a budget equal
        to the class size selects the whole class)."""
        points = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
        chosen = k_center_select(points, 4)
        assert sorted(chosen.tolist()) == [0, 1, 2, 3]

    def test_picks_the_outliers_of_a_cluster(self) -> None:
        g = torch.Generator().manual_seed(0)
        cluster = torch.randn(50, 2, generator=g) * 0.1
        corners = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
        chosen = k_center_select(torch.cat([cluster, corners]), 5)
        assert set(chosen[1:].tolist()) == {50, 51, 52, 53}  # after the central start: the four corners
        assert chosen[0].item() < 50

    def test_covering_radius_beats_random(self) -> None:
        g = torch.Generator().manual_seed(1)
        points = torch.rand(300, 2, generator=g)

        def radius(idx: torch.Tensor) -> float:
            return torch.cdist(points, points[idx]).min(1).values.max().item()

        ours = radius(k_center_select(points, 10))
        randoms = [radius(torch.randperm(300, generator=g)[:10]) for _ in range(20)]
        assert ours < min(randoms)

    def test_distinct_and_capped(self) -> None:
        points = torch.randn(7, 3, generator=torch.Generator().manual_seed(2))
        chosen = k_center_select(points, 20)
        assert sorted(chosen.tolist()) == list(range(7))


class TestHerding:
    def test_hand_made_points(self) -> None:
        points = torch.tensor([[-1.0], [1.0], [-3.0], [3.0], [0.0]])  # mean 0
        # 0 first; then -1 or 1 (tie: the first); then 1 restores the mean; then -3 / 3 likewise
        assert herding_select(points, 5).tolist() == [4, 0, 1, 2, 3]

    def test_running_mean_approaches_the_mean(self) -> None:
        g = torch.Generator().manual_seed(3)
        points = torch.randn(400, 3, generator=g) + torch.tensor([2.0, -1.0, 0.5])
        mean = points.mean(0)
        order = herding_select(points, 40)
        errors = [(points[order[:k]].mean(0) - mean).norm().item() for k in (5, 10, 20, 40)]
        randoms = [(points[torch.randperm(400, generator=g)[:10]].mean(0) - mean).norm().item() for _ in range(50)]
        # herding's 10-point mean is closer to the mean than every one of 50 random 10-point subsets
        assert errors[1] < min(randoms)
        assert max(errors) < 0.1 * sum(randoms) / len(randoms), errors  # O(1/k) against O(1/sqrt(k))

    def test_all_points_give_the_mean_and_distinct(self) -> None:
        points = torch.randn(9, 2, generator=torch.Generator().manual_seed(4))
        chosen = herding_select(points, 15)
        assert sorted(chosen.tolist()) == list(range(9))
        assert torch.allclose(points[chosen].mean(0), points.mean(0), atol=1e-6)


def _rows(data: RealData) -> dict[tuple[float, ...], int]:
    return {tuple(x.tolist()): int(y) for x, y in zip(data.x_train, data.y_train)}


@pytest.mark.parametrize("name", ["random", "herding", "kcenter"])
class TestCoresetArtifacts:
    def test_ipc_budget(self, name: str, blobs: RealData, tmp_path: Path) -> None:
        outcome = distill(name, dataset="blobs", budget=Budget(ipc=3), seed=1, out_dir=tmp_path, evaluate=False,
                          progress=False, data=blobs)
        art = load_artifact(tmp_path)
        assert art.method == name and art.steps == 0 and outcome.run.losses == []
        assert art.summary.budget == 9 and art.extra["budget_per_class"] == [3, 3, 3]
        assert torch.bincount(art.summary.labels, minlength=3).tolist() == [3, 3, 3]
        rows = _rows(blobs)
        picked = [tuple(x.tolist()) for x in art.summary.x]
        assert all(rows[p] == int(y) for p, y in zip(picked, art.summary.labels))  # real rows, right labels
        assert len(set(picked)) == 9  # distinct samples

    def test_total_budget(self, name: str, blobs: RealData) -> None:
        outcome = distill(name, dataset="blobs", budget=Budget(total=7), evaluate=False, progress=False, data=blobs)
        summary = outcome.artifact.summary
        assert summary.budget == 7 and sum(outcome.artifact.extra["budget_per_class"]) == 7
        assert torch.bincount(summary.labels, minlength=3).min() >= 2


@pytest.mark.parametrize(("name", "select"), [("herding", herding_select), ("kcenter", k_center_select)])
def test_selection_uses_the_features(name: str, select, blobs: RealData) -> None:  # type: ignore[no-untyped-def]
    """The toy modality's features are the samples themselves, so the coreset equals the selection on each class."""
    summary = distill(name, dataset="blobs", budget=Budget(ipc=4), evaluate=False, progress=False,
                      data=blobs).artifact.summary
    for c in range(3):
        feats = blobs.x_train[blobs.y_train == c]
        expected = {tuple(r.tolist()) for r in feats[select(feats, 4)]}
        assert {tuple(r.tolist()) for r in summary.x[summary.labels == c]} == expected


class TestRandomContract(ArtifactContract):
    """The coreset baselines are registered methods without outer steps: the artifact contract (round trip,
    determinism) on the toy modality's blobs."""

    method = "random"
    dataset = "blobs"
    protocol_overrides = {"n_models": 1, "epochs": 5}


class TestHerdingContract(TestRandomContract):
    method = "herding"


class TestKCenterContract(TestRandomContract):
    method = "kcenter"


@pytest.mark.parametrize("init", ["herding", "kcenter"])
def test_a_method_can_start_from_the_coreset(init: str, blobs: RealData) -> None:
    """``init="herding"`` / ``"kcenter"``: the summary a method distils starts from the samples that coreset
    picks (per class, in the modality's features), not from a random subset; ``init="real"`` keeps its draws."""
    from distill_core.coreset import initial_indices
    from distill_core.data import ClassIndex
    from distill_core.registry import get_method, get_modality

    from .conftest import TOY_DM

    toy = get_modality("toy")
    method = get_method(TOY_DM)(config=get_method(TOY_DM).config_class(init=init))
    summary = method.init_summary(blobs, budget=Budget(ipc=4), modality=toy,
                                  generator=torch.Generator().manual_seed(0))
    for c in range(3):
        feats = blobs.x_train[blobs.y_train == c]
        expected = {tuple(r.tolist()) for r in feats[dict(herding=herding_select, kcenter=k_center_select)[init](
            feats, 4)]}
        assert {tuple(r.tolist()) for r in summary.x[summary.labels == c]} == expected
    # the default draw is unchanged: random real samples, exactly as ClassIndex draws them
    real = initial_indices("real", blobs, [4, 4, 4], modality=toy, generator=torch.Generator().manual_seed(0))
    drawn = ClassIndex(blobs.y_train, 3).sample_sizes([4, 4, 4], generator=torch.Generator().manual_seed(0))
    assert torch.equal(real, drawn)
