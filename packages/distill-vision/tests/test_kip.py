"""KIP on scikit-learn digits: the shared method contract, KRR accuracy over its random-real initialisation, and
label learning on/off."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from distill_core import Budget, distill
from distill_core.evaluation_krr import evaluate_krr, one_hot_centred
from distill_vision.testing import DigitsContract

torch.set_num_threads(1)  # tiny problems on shared CI machines



class TestKIPContract(DigitsContract):
    method = "kip"
    overrides: ClassVar[dict[str, Any]] = {"steps": 25, "target_batch": 200}


def _kip(steps: int, **overrides: Any):  # type: ignore[no-untyped-def]
    return distill("kip", dataset="digits", budget=Budget(ipc=1), seed=1, evaluate=False, progress=False,
                   overrides={"steps": steps, "target_batch": 300, **overrides})


def test_kip_improves_krr_accuracy_over_its_random_real_init() -> None:
    init = _kip(0)
    trained = _kip(30, lr_summary=0.02)
    before = evaluate_krr(init.artifact.summary, init.data).accuracy
    after = evaluate_krr(trained.artifact.summary, trained.data).accuracy
    assert torch.equal(init.artifact.summary.labels, trained.artifact.summary.labels)
    assert after > before + 5.0, (before, after)


def test_labels_are_fixed_unless_learned() -> None:
    fixed = _kip(3)
    learned = _kip(3, learn_labels=True, lr_labels=0.05)
    init = _kip(0).artifact.summary.targets()
    assert torch.equal(fixed.artifact.summary.targets(), init)
    assert not torch.allclose(learned.artifact.summary.targets(), init)


def test_conv_random_feature_kernel_runs_and_lowers_the_loss() -> None:
    out = _kip(8, kernel="conv_rf", rf_models=2, rf_width=16, lr_summary=0.05)
    assert out.run.losses[-1] < out.run.losses[0]


def test_conv_empirical_ntk_kernel_matches_core_and_improves_krr() -> None:
    from distill_core.kernels import empirical_ntk
    from distill_vision.methods.kip import KIP, KIPConfig
    from distill_vision.modality import VisionModality

    init = _kip(0)
    trained = _kip(20, kernel="conv_entk", rf_width=16, lr_summary=0.02)
    assert trained.run.losses[-1] < trained.run.losses[0]
    before = evaluate_krr(init.artifact.summary, init.data).accuracy
    after = evaluate_krr(trained.artifact.summary, trained.data).accuracy
    assert after > before + 3.0, (before, after)

    class Ctx:  # the two attributes kernel_matrices reads
        modality, data, device = VisionModality(), init.data, torch.device("cpu")

    x_s, x_t = init.artifact.summary.x[:4], init.data.x_test[:6]
    torch.manual_seed(3)
    k_ss, k_ts = KIP(config=KIPConfig(kernel="conv_entk", rf_width=8)).kernel_matrices(Ctx(), x_s, x_t)  # type: ignore[arg-type]
    torch.manual_seed(3)
    net = VisionModality().build_model("convnet", sample_shape=init.data.sample_shape, num_classes=1, width=8).eval()
    torch.testing.assert_close(k_ss, empirical_ntk(net, x_s), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(k_ts, empirical_ntk(net, x_t, x_s), rtol=1e-4, atol=1e-5)


def test_zca_whitened_kip_is_stored_and_refused_on_unwhitened_data() -> None:
    import pytest

    from distill_core.errors import DataValidationError
    from distill_vision.datasets import load

    out = distill("kip", dataset="digits+zca", budget=Budget(ipc=1), seed=0, evaluate=False, progress=False,
                  overrides={"steps": 3, "target_batch": 100})
    summary = out.artifact.summary
    assert "zca" in " ".join(summary.preprocessing.kinds)
    assert evaluate_krr(summary, out.data).accuracy > 10.0  # whitened test data: accepted
    with pytest.raises(DataValidationError, match="preprocessing"):
        evaluate_krr(summary, load("digits"))



def test_analytic_conv_ntk_kernel_lowers_the_loss() -> None:
    # digits are 8x8: three pooled blocks reach a 1x1 map, as KIP's ConvNet does on 28x28 -> 3x3. The per-step
    # losses are on different random target batches, so the check is the CNTK-KRR loss on one fixed test batch.
    from distill_core.objectives import krr_loss
    from distill_vision.cntk import cntk

    init = _kip(0, kernel="cntk")
    trained = _kip(4, kernel="cntk", target_batch=40, lr_summary=0.05)
    assert all(torch.isfinite(torch.tensor(trained.run.losses)))
    x_t, y_t = init.data.x_test[:100], one_hot_centred(init.data.y_test[:100], 10)

    def fixed_loss(summary) -> float:  # type: ignore[no-untyped-def]
        x_s = summary.x.detach()
        with torch.no_grad():
            k = cntk(torch.cat([x_t, x_s]), x_s, depth=3, pool=True, readout="flatten")
            return float(krr_loss(k[:len(x_t)], k[len(x_t):], summary.targets(), y_t, float64=True))

    before, after = fixed_loss(init.artifact.summary), fixed_loss(trained.artifact.summary)
    assert after < 0.95 * before, (before, after)
