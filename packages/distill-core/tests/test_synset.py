"""The Summary: label kinds, the positive learned learning rate, serialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distill_core import ArtifactError, DataValidationError, Preprocessing, Summary, UnknownNameError, ZCAWhitening


def _summary(**kwargs) -> Summary:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    return Summary(x=torch.randn(6, 2, 3, generator=g), labels=torch.tensor([0, 0, 1, 1, 2, 2]), num_classes=3,
                   **kwargs)


class TestTargets:
    def test_hard(self) -> None:
        s = _summary()
        assert torch.equal(s.targets(), F.one_hot(s.labels, 3).float())
        assert s.label_values is None and s.lr is None
        assert [n for n, _ in s.named_parameters()] == ["x"]
        assert s.budget == 6 and s.ipc == 2

    def test_soft(self) -> None:
        s = _summary(label_kind="soft")
        t = s.targets()
        assert torch.allclose(t.sum(-1), torch.ones(6))
        assert torch.equal(t.argmax(-1), s.labels)
        # default logits are 3 * one-hot, so the true class gets e^3 / (e^3 + 2)
        assert torch.allclose(t.max(-1).values, torch.full((6,), torch.e**3 / (torch.e**3 + 2)))
        assert s.label_values is not None and s.label_values.requires_grad
        s.targets()[:, 0].sum().backward()  # soft targets are learnable
        assert s.label_values.grad is not None and s.label_values.grad.abs().sum() > 0

    def test_regression_centred_one_hot(self) -> None:
        s = _summary(label_kind="regression")
        expected = F.one_hot(s.labels, 3).float() - 1.0 / 3
        assert torch.allclose(s.targets(), expected)
        assert torch.allclose(s.targets().sum(-1), torch.zeros(6), atol=1e-6)

    def test_given_label_values(self) -> None:
        values = torch.arange(18.0).reshape(6, 3)
        s = _summary(label_kind="regression", label_values=values)
        assert torch.equal(s.targets().detach(), values)

    def test_ipc_is_smallest_class(self) -> None:
        s = Summary(x=torch.zeros(5, 2), labels=torch.tensor([0, 0, 0, 1, 1]), num_classes=2)
        assert s.ipc == 2 and s.budget == 5

    def test_bad_labels(self) -> None:
        with pytest.raises(DataValidationError, match=r"labels must be \(n,\) with n = 6"):
            Summary(x=torch.zeros(6, 2), labels=torch.zeros(5, dtype=torch.long), num_classes=2)
        with pytest.raises(DataValidationError, match="labels must be"):
            Summary(x=torch.zeros(6, 2), labels=torch.zeros(6, 2, dtype=torch.long), num_classes=2)
        with pytest.raises(UnknownNameError, match=r"'fuzzy'.*hard"):
            _summary(label_kind="fuzzy")


class TestLearnedLR:
    def test_initial_value(self) -> None:
        s = _summary(learn_lr=True, lr_init=0.01)
        assert s.lr is not None and s.lr.item() == pytest.approx(0.01, rel=1e-5)
        assert s.describe()["learned_lr"] == pytest.approx(0.01, rel=1e-5)

    @pytest.mark.parametrize("step", [1e2, 1e6, 1e30])
    def test_stays_positive_after_huge_negative_step(self, step: float) -> None:
        s = _summary(learn_lr=True, lr_init=0.01)
        assert s.raw_lr is not None
        opt = torch.optim.SGD([s.raw_lr], lr=1.0)
        (s.raw_lr * step).backward()  # gradient +step on raw_lr: SGD pushes it towards -infinity
        opt.step()
        assert s.raw_lr.item() < -step / 2  # softplus(-100) underflows float32 to 0
        lr = s.lr
        assert lr is not None and torch.isfinite(lr) and lr.item() > 0

    def test_lr_is_differentiable(self) -> None:
        s = _summary(learn_lr=True, lr_init=0.5)
        assert s.lr is not None and s.raw_lr is not None
        s.lr.backward()
        assert s.raw_lr.grad is not None and 0 < s.raw_lr.grad.item() < 1  # sigmoid(raw_lr)


class TestSerialisation:
    @pytest.mark.parametrize("label_kind", ["hard", "soft", "regression"])
    def test_round_trip(self, label_kind: str) -> None:
        prep = Preprocessing([ZCAWhitening.fit(torch.randn(50, 6, generator=torch.Generator().manual_seed(1)))])
        s = _summary(label_kind=label_kind, learn_lr=True, lr_init=0.03, preprocessing=prep)
        with torch.no_grad():
            s.x.add_(1.0)
            s.raw_lr.sub_(0.7)  # type: ignore[union-attr]
            if s.label_values is not None:
                s.label_values.mul_(0.5)
        tensors = s.tensors()
        assert all(t.is_contiguous() and not t.requires_grad for t in tensors.values())
        back = Summary.from_tensors({k: v.clone() for k, v in tensors.items()}, s.describe(), prep)
        assert torch.equal(back.x, s.x) and torch.equal(back.labels, s.labels)
        assert torch.equal(back.targets(), s.targets())
        assert back.lr is not None and torch.equal(back.lr, s.lr)  # type: ignore[arg-type]
        assert back.label_kind == label_kind and back.num_classes == 3
        assert back.preprocessing is prep
        assert back.describe() == s.describe()

    def test_hard_without_lr_has_only_x_and_labels(self) -> None:
        assert set(_summary().tensors()) == {"x", "labels"}

    def test_missing_tensor(self) -> None:
        s = _summary()
        tensors = s.tensors()
        del tensors["x"]
        with pytest.raises(ArtifactError, match="lacks 'x'"):
            Summary.from_tensors(tensors, s.describe(), Preprocessing())
        with pytest.raises(ArtifactError, match="lacks 'num_classes'"):
            Summary.from_tensors(s.tensors(), {"type": "dense"}, Preprocessing())

    def test_assert_finite(self) -> None:
        s = _summary(label_kind="soft")
        s.assert_finite()
        with torch.no_grad():
            s.label_values[0, 0] = float("inf")  # type: ignore[index]
        with pytest.raises(FloatingPointError, match="label_values"):
            s.assert_finite()
