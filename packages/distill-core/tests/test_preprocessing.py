"""Preprocessing fitted on the training split, applied, inverted, compared and restored from a manifest."""

from __future__ import annotations

import json

import pytest
import torch

from distill_core import ArtifactError, ChannelNormalization, Preprocessing, UnknownNameError, ZCAWhitening


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # 3 channels with different means and scales
    return torch.randn(n, 3, 4, 4, generator=g) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1) + torch.tensor(
        [0.0, 5.0, -2.0]).view(1, 3, 1, 1)


def _correlated(n: int, seed: int, dim: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return (torch.randn(n, dim, generator=g, dtype=torch.float64) @ mix + 3.0).float()


class TestChannelNormalization:
    def test_fit_on_train_and_apply(self) -> None:
        train, test = _images(200, 0), _images(50, 1)
        norm = ChannelNormalization.fit(train)
        out = norm.apply(train)
        assert out.shape == train.shape
        assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
        assert torch.allclose(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5)
        # test data uses the training statistics, not its own
        mean = train.mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
        std = train.std(dim=(0, 2, 3)).view(1, 3, 1, 1)
        assert torch.allclose(norm.apply(test), (test - mean) / std, atol=1e-5)
        assert not torch.allclose(norm.apply(test), ChannelNormalization.fit(test).apply(test), atol=1e-3)

    def test_invert_round_trip(self) -> None:
        train = _images(100, 0)
        norm = ChannelNormalization.fit(train)
        assert torch.allclose(norm.invert(norm.apply(train)), train, atol=1e-5)

    def test_constant_channel_does_not_divide_by_zero(self) -> None:
        x = torch.ones(10, 2, 3, 3)
        out = ChannelNormalization.fit(x).apply(x)
        assert torch.isfinite(out).all()


class TestZCA:
    def test_whitens_up_to_the_regulariser(self) -> None:
        x = _correlated(2000, 0).double()
        reg = 0.1
        zca = ZCAWhitening.fit(x, reg=reg)
        w = zca.apply(x.float()).double()
        cov_w = (w - w.mean(0)).T @ (w - w.mean(0)) / len(w)
        # expected: U diag(s / (s + reg * mean(s))) U^T from the training covariance's eigenpairs
        centred = x - x.mean(0)
        s, u = torch.linalg.eigh(centred.T @ centred / len(x))
        expected = u @ torch.diag(s / (s + reg * s.mean())) @ u.T
        assert torch.allclose(cov_w, expected, atol=1e-4)

    def test_tiny_regulariser_gives_identity_covariance(self) -> None:
        x = _correlated(2000, 1)
        zca = ZCAWhitening.fit(x, reg=1e-6)
        w = zca.apply(x).double()
        cov_w = (w - w.mean(0)).T @ (w - w.mean(0)) / len(w)
        assert torch.allclose(cov_w, torch.eye(6, dtype=torch.float64), atol=1e-3)
        original = (x - x.mean(0)).double()
        assert not torch.allclose(original.T @ original / len(x), torch.eye(6, dtype=torch.float64), atol=0.1)

    def test_zca_is_symmetric_and_centres(self) -> None:
        zca = ZCAWhitening.fit(_correlated(500, 2), reg=0.1)
        assert torch.allclose(zca.whiten, zca.whiten.T, atol=1e-5)  # ZCA, not PCA whitening
        assert torch.allclose(zca.whiten @ zca.unwhiten, torch.eye(6), atol=1e-4)
        assert torch.allclose(zca.apply(_correlated(500, 2)).mean(0), torch.zeros(6), atol=1e-4)

    def test_invert_round_trip_on_images(self) -> None:
        train, test = _images(300, 0), _images(20, 1)
        zca = ZCAWhitening.fit(train, reg=0.1)
        out = zca.apply(test)
        assert out.shape == test.shape
        assert torch.allclose(zca.invert(out), test, atol=1e-3)


class TestPreprocessing:
    def test_apply_in_order_and_invert_in_reverse(self) -> None:
        train = _images(300, 0)
        norm = ChannelNormalization.fit(train)
        zca = ZCAWhitening.fit(norm.apply(train), reg=0.1)
        prep = Preprocessing([norm, zca])
        assert torch.allclose(prep.apply(train), zca.apply(norm.apply(train)))
        assert torch.allclose(prep.invert(prep.apply(train)), train, atol=1e-3)
        assert prep.kinds == ["channel_normalization", "zca"] and prep.whitened
        assert not Preprocessing([norm]).whitened

    def test_same_as(self) -> None:
        a, b = _images(100, 0), _images(100, 1)
        norm_a = ChannelNormalization.fit(a)
        assert Preprocessing().same_as(Preprocessing())
        assert Preprocessing([norm_a]).same_as(Preprocessing([ChannelNormalization.fit(a.clone())]))
        assert not Preprocessing([norm_a]).same_as(Preprocessing([ChannelNormalization.fit(b)]))
        assert not Preprocessing([norm_a]).same_as(Preprocessing())
        zca_a, zca_b = ZCAWhitening.fit(a, reg=0.1), ZCAWhitening.fit(b, reg=0.1)
        assert Preprocessing([zca_a]).same_as(Preprocessing([ZCAWhitening.fit(a, reg=0.1)]))
        assert not Preprocessing([zca_a]).same_as(Preprocessing([zca_b]))  # same description, other tensors
        assert not Preprocessing([zca_a]).same_as(Preprocessing([ZCAWhitening.fit(a, reg=0.2)]))
        assert not Preprocessing([norm_a, zca_a]).same_as(Preprocessing([zca_a, norm_a]))

    def test_restore_from_describe_and_tensors(self) -> None:
        train, test = _images(300, 0), _images(10, 1)
        norm = ChannelNormalization.fit(train)
        prep = Preprocessing([norm, ZCAWhitening.fit(norm.apply(train), reg=0.1)])
        described = json.loads(json.dumps(prep.describe()))  # as it comes back from a manifest
        tensors = {k: v.clone() for k, v in prep.tensors().items()}
        assert set(tensors) == {"preprocessing.1.mean", "preprocessing.1.whiten", "preprocessing.1.unwhiten"}
        restored = Preprocessing.restore(described, tensors)
        assert restored.same_as(prep)
        assert torch.equal(restored.apply(test), prep.apply(test))

    def test_restore_unknown_kind(self) -> None:
        with pytest.raises(UnknownNameError, match="'sharpen'"):
            Preprocessing.restore([{"kind": "sharpen"}], {})

    def test_restore_missing_tensor(self) -> None:
        prep = Preprocessing([ZCAWhitening.fit(_correlated(100, 0), reg=0.1)])
        tensors = prep.tensors()
        del tensors["preprocessing.0.whiten"]
        with pytest.raises(ArtifactError, match=r"'whiten'.*re-create"):
            Preprocessing.restore(prep.describe(), tensors)
