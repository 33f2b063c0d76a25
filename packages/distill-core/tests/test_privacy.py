"""Differential privacy parts (distill_core.applications.privacy): opacus' noise multiplier against its own
accountant, clipping, the Gaussian mechanism, the membership-inference metrics by hand and on toys, bad input."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

from distill_core.applications import privacy
from distill_core.applications.privacy import (
    PrivacyConfig,
    clip_rows,
    membership_auc,
    noise_multiplier,
    noisy_mean,
    per_sample_losses,
    run_privacy,
    spent_epsilon,
    tpr_at_fpr,
)
from distill_core.errors import DataValidationError, MissingDependencyError, UnknownNameError
from distill_core.protocol import EvalProtocol
from distill_core.testing import ToyModality, make_blobs
from distill_core.training import train_classifier


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize("epsilon", [1.0, 4.0, 10.0])
def test_noise_multiplier_spends_the_target(epsilon, accountant):
    """The accountant, asked again with the noise multiplier opacus chose, spends the target to within 1e-2."""
    sigma = noise_multiplier(epsilon=epsilon, delta=1e-5, sample_rate=0.25, steps=200, accountant=accountant)
    spent = spent_epsilon([(sigma, 0.25, 200)], delta=1e-5, accountant=accountant)
    assert sigma > 0
    assert spent <= epsilon + 1e-9 and epsilon - spent < 1e-2, (sigma, spent)


def test_noise_grows_as_epsilon_shrinks_and_inf_is_no_noise():
    sigmas = [noise_multiplier(epsilon=e, delta=1e-5, sample_rate=0.1, steps=100) for e in (1.0, 4.0, 10.0)]
    assert sigmas[0] > sigmas[1] > sigmas[2] > 0
    assert noise_multiplier(epsilon=None, delta=1e-5, sample_rate=0.1, steps=100) == 0.0
    assert spent_epsilon([(0.0, 0.1, 10)], delta=1e-5) == float("inf")
    assert spent_epsilon([], delta=1e-5) == 0.0
    # two segments spend more than either alone
    one = spent_epsilon([(sigmas[1], 0.1, 100)], delta=1e-5)
    assert spent_epsilon([(sigmas[1], 0.1, 100), (sigmas[1], 0.1, 50)], delta=1e-5) > one


def test_bad_privacy_targets_are_refused():
    for eps in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(DataValidationError, match="epsilon must be a finite number > 0"):
            noise_multiplier(epsilon=eps, delta=1e-5, sample_rate=0.1, steps=10)
    with pytest.raises(DataValidationError, match="delta must be in"):
        noise_multiplier(epsilon=1.0, delta=1.5, sample_rate=0.1, steps=10)
    with pytest.raises(UnknownNameError, match="accountant 'gdp2'"):
        noise_multiplier(epsilon=1.0, delta=1e-5, sample_rate=0.1, steps=10, accountant="gdp2")
    with pytest.raises(DataValidationError, match="sampling rate"):
        noise_multiplier(epsilon=1.0, delta=1e-5, sample_rate=1.5, steps=10)


def test_missing_opacus_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opacus", None)
    monkeypatch.setitem(sys.modules, "opacus.accountants", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'distill-core\[privacy\]'"):
        noise_multiplier(epsilon=1.0, delta=1e-5, sample_rate=0.1, steps=10)


def test_clip_rows_bounds_every_row():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(200, 16, generator=g) * torch.logspace(-2, 2, 200).unsqueeze(1)
    clipped = clip_rows(e, 1.5)
    norms = clipped.norm(dim=1)
    assert float(norms.max()) <= 1.5 + 1e-5
    small = e.norm(dim=1) < 1.0
    assert torch.allclose(clipped[small], e[small], atol=1e-5)  # rows within the bound stay as they are
    big = e.norm(dim=1) > 2.0
    assert torch.allclose(norms[big], torch.full_like(norms[big], 1.5), atol=1e-4)  # the others land on it
    assert torch.allclose(clipped[big] / norms[big, None], e[big] / e[big].norm(dim=1, keepdim=True), atol=1e-5)
    with pytest.raises(DataValidationError):
        clip_rows(e, 0.0)


def test_noisy_mean_has_the_stated_noise():
    total = torch.full((20000,), 3.0)
    assert torch.equal(noisy_mean(total, clip_norm=2.0, noise_multiplier=0.0, denominator=4.0), total / 4.0)
    out = noisy_mean(total, clip_norm=2.0, noise_multiplier=1.5, denominator=4.0,
                     generator=torch.Generator().manual_seed(0))
    assert float(out.mean()) == pytest.approx(0.75, abs=0.02)
    assert float(out.std()) == pytest.approx(1.5 * 2.0 / 4.0, rel=0.03)  # sigma * C / batch


def test_membership_metrics_by_hand():
    assert membership_auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert membership_auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert membership_auc([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert membership_auc([1.0, 3.0], [2.0]) == 0.5
    assert membership_auc([2.0, 3.0], [1.0, 2.0]) == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    # 100 non-members 0..99: at 1% FPR the threshold is 98 (only 99 may pass)
    others = torch.arange(100.0)
    assert tpr_at_fpr(torch.tensor([98.0, 98.5, 99.5, 120.0]), others, fpr=0.01) == 0.75
    assert tpr_at_fpr(torch.tensor([50.0]), others, fpr=0.0) == 0.0
    with pytest.raises(DataValidationError):
        membership_auc([], [1.0])


def _fit(x, y, *, epochs, width, seed=0):
    torch.manual_seed(seed)
    model = ToyModality().build_model("mlp", sample_shape=tuple(x.shape[1:]), num_classes=10, width=width)
    protocol = EvalProtocol(model="mlp", epochs=epochs, lr=0.1, batch_size=32, weight_decay=0.0,
                            schedule="constant")
    return train_classifier(model, x, F.one_hot(y, 10).float(), label_kind="hard", protocol=protocol,
                            generator=torch.Generator().manual_seed(seed))


def test_attack_finds_memorized_members():
    """Random labels can only be memorized: the loss attack separates the training points from fresh ones."""
    g = torch.Generator().manual_seed(0)
    x_in, y_in = torch.randn(60, 20, generator=g), torch.randint(0, 10, (60,), generator=g)
    x_out, y_out = torch.randn(60, 20, generator=g), torch.randint(0, 10, (60,), generator=g)
    model = _fit(x_in, y_in, epochs=300, width=256)
    auc = membership_auc(-per_sample_losses(model, x_in, y_in), -per_sample_losses(model, x_out, y_out))
    assert auc > 0.9, auc


def test_attack_is_chance_on_identical_distributions():
    """Two fresh samples of one distribution, neither trained on: the attack has nothing to find."""
    data = make_blobs(n_per_class=400, num_classes=10, dim=8, seed=3, spread=2.0)
    perm = torch.randperm(3000, generator=torch.Generator().manual_seed(1))  # blobs are stored class by class
    x, y = data.x_train[perm], data.y_train[perm]
    a, ya, b, yb = x[1000:2000], y[1000:2000], x[2000:3000], y[2000:3000]
    model = _fit(x[:1000], y[:1000], epochs=5, width=32)
    auc = membership_auc(-per_sample_losses(model, a, ya), -per_sample_losses(model, b, yb))
    assert 0.44 < auc < 0.56, auc


def test_audit_refuses_bad_input_before_compute():
    data = make_blobs(num_classes=3, n_per_class=20, dim=4)
    with pytest.raises(DataValidationError, match="not differentially private"):
        run_privacy(PrivacyConfig(method="random"), data, modality=ToyModality())
    with pytest.raises(DataValidationError, match="epsilon must be a finite number > 0"):
        privacy.check_config(PrivacyConfig(method="random", epsilons=[0.0]))
    with pytest.raises(UnknownNameError, match="private method 'nope'"):
        privacy.check_config(PrivacyConfig(method="nope"))
