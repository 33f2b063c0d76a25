"""DP-DM (distill_vision.methods.dp_dm) and the privacy and federated applications on digits (CPU, seconds):
epsilon=None is exactly DM, clipping bounds every per-sample embedding, the manifest records the accounting,
bad input is refused, and `distill apply privacy | federated` end to end."""

from __future__ import annotations

import json

import pytest
import torch

from distill_core.applications import FederatedConfig, PrivacyConfig, run_federated, run_privacy
from distill_core.applications.federated import dirichlet_split
from distill_core.applications.privacy import spent_epsilon
from distill_core.cli import main
from distill_core.data import Budget, ClassIndex
from distill_core.errors import DataValidationError
from distill_core.method import StepContext
from distill_core.runner import build_method, distill
from distill_vision.modality import VisionModality
from distill_vision.testing import QUICK_OBJECTIVES, ConvNetDigitsContract


def _run(method, digits, **overrides):
    return distill(method, dataset="digits", budget=Budget(ipc=2), seed=3, overrides={"steps": 3, **overrides},
                   evaluate=False, progress=False, data=digits)


@pytest.mark.parametrize("init", ["real", "noise"])
def test_epsilon_none_is_exactly_dm(digits, init):
    dm = _run("dm", digits, init=init, batch_real=32)
    dp = _run("dp-dm", digits, init=init, batch_real=32, epsilon=None)
    assert torch.equal(dm.artifact.summary.x, dp.artifact.summary.x)
    assert dp.artifact.extra["privacy"]["private"] is False and dp.artifact.extra["privacy"]["noise_multiplier"] == 0


def test_private_run_records_its_accounting(digits):
    out = _run("dp-dm", digits, batch_real=32, epsilon=4.0, clip_norm=0.5)
    facts = out.artifact.extra["privacy"]
    rate = 32 / min(digits.class_counts())
    assert facts["private"] is True and facts["epsilon"] == 4.0 and facts["delta"] == 1e-5
    assert facts["accountant"] == "rdp" and facts["clip_norm"] == 0.5 and facts["steps_run"] == 3
    assert facts["sample_rate"] == pytest.approx(rate)
    assert facts["noise_multiplier"] > 0
    # all steps run: the accountant spends the target (to opacus' search tolerance), never more
    assert 4.0 - 1e-2 < facts["epsilon_spent"] <= 4.0
    assert facts["epsilon_spent"] == pytest.approx(spent_epsilon([(facts["noise_multiplier"], rate, 3)], delta=1e-5))
    plain = _run("dp-dm", digits, batch_real=32, epsilon=None)
    assert not torch.equal(out.artifact.summary.x, plain.artifact.summary.x)  # the noise changed the summary


def test_private_run_refuses_real_initialisation(digits):
    with pytest.raises(DataValidationError, match="start its summary from noise"):
        _run("dp-dm", digits, init="real", epsilon=10.0)
    with pytest.raises(DataValidationError, match="epsilon"):
        build_method("dp-dm", {"epsilon": 0.0})


def test_clipping_bounds_every_per_sample_embedding(digits):
    method = build_method("dp-dm", {"clip_norm": 0.05, "batch_real": 64})
    modality = VisionModality()
    method.prepare(digits, modality=modality, device=torch.device("cpu"), progress=False)
    summary = method.init_summary(digits, budget=Budget(ipc=1), modality=modality,
                                  generator=torch.Generator().manual_seed(0))
    method.setup(summary, digits, torch.device("cpu"))
    ctx = StepContext(step=0, seed=0, data=digits, class_index=ClassIndex(digits.y_train, digits.num_classes),
                      modality=modality, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                      optimizer=method.make_optimizer(summary), summary=summary, method=method)
    net = method.embedder(ctx)
    x = digits.x_train[:200]
    raw = net.embed(x)
    assert float(raw.norm(dim=1).min()) > 0.05  # the bound binds for every sample
    clipped = method.clipped_embeddings(net, x, seed=7)
    assert clipped.shape == raw.shape
    assert float(clipped.norm(dim=1).max()) <= 0.05 * (1 + 1e-5)
    method.config.clip_norm = 1e6  # a bound that never binds leaves the (augmented) embeddings as they are
    loose = method.clipped_embeddings(net, x, seed=7)
    assert torch.allclose(loose, net.embed(method._augment(x, 7)), atol=1e-5)


def test_privacy_audit_on_digits(digits):
    config = PrivacyConfig(epsilons=[4.0, None], ipc=2, steps=3, epochs=5, full_per_class=10, full_epochs=3,
                           method_options={"batch_real": 32})
    report = run_privacy(config, digits, modality=VisionModality()).summary()
    assert set(report["cells"]) == {"eps=4", "eps=inf", "random", "full"}
    assert report["cells"]["eps=4"]["train_size"] == report["cells"]["random"]["train_size"] == 20
    assert report["cells"]["full"]["train_size"] == 100
    assert report["cells"]["eps=4"]["privacy"][0]["noise_multiplier"] > 0
    for cell in report["cells"].values():
        assert 0.0 <= cell["auc_mean"] <= 1.0 and 0.0 <= cell["accuracy_mean"] <= 100.0


def test_privacy_audit_with_a_validation_split(digits, capsys):
    """--validation N: one stratified split is held out; every training set is made from
    the rest (the full data: all of it), and each model's accuracy on the split is reported next to test accuracy."""
    config = PrivacyConfig(epsilons=[4.0], ipc=2, steps=3, epochs=5, full_epochs=1, validation=100,
                           method_options={"batch_real": 32})
    report = run_privacy(config, digits, modality=VisionModality()).summary()
    assert report["validation_size"] == 100 and report["protected_size"] == len(digits.y_train) - 100
    assert report["cells"]["full"]["train_size"] == report["protected_size"]
    for cell in report["cells"].values():
        assert 0.0 <= cell["val_accuracy_mean"] <= 100.0
    # the sampling rate of the private run is taken on the protected set
    per_class = torch.bincount(digits.y_train, minlength=10) - 10
    assert report["cells"]["eps=4"]["privacy"][0]["sample_rate"] == pytest.approx(32 / int(per_class.min()))
    assert main(["apply", "privacy", "--dataset", "digits", "--epsilons", "inf", "--ipc", "1", "--steps", "1",
                 "--epochs", "1", "--no-baselines", "--validation", "50", "--first-seed", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["seeds"] == [2] and report["validation_size"] == 50
    assert "val_accuracy_mean" in report["cells"]["eps=inf"]
    with pytest.raises(DataValidationError, match="validation must be an integer"):
        run_privacy(PrivacyConfig(validation=-1), digits, modality=VisionModality())


def test_federated_one_shot_on_digits(digits):
    config = FederatedConfig(method="dm", clients=10, alpha=0.5, ipc=2, steps=2, rounds=2, epochs=5,
                             method_options={"batch_real": 16})
    result = run_federated(config, digits, modality=VisionModality())
    row = result.per_seed[0]
    parts = dirichlet_split(digits.y_train, clients=10, alpha=0.5, seed=0)
    expected = sum(min(2, int(n)) for p in parts for n in torch.bincount(digits.y_train[p], minlength=10) if n > 0)
    assert row["summary_size"] == expected and sum(row["client_sizes"]) == len(digits.y_train)
    assert row["summary_upload_bytes"] == expected * (64 + 1) * 4
    assert len(row["fedavg_accuracy"]) == 2


def test_cli_apply_privacy_and_federated(capsys):
    assert main(["apply", "privacy", "--dataset", "digits", "--epsilons", "10", "inf", "--ipc", "1", "--steps", "2",
                 "--epochs", "2", "--full-per-class", "5", "--set", "batch_real=16", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["application"] == "privacy" and report["epsilons"] == ["10", "inf"]
    assert main(["apply", "federated", "random", "--dataset", "digits", "--clients", "4", "--ipc", "1",
                 "--rounds", "1", "--epochs", "2", "--model-kwargs", '{"width": 8}', "--test-per-class", "3",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["application"] == "federated" and report["clients"] == 4
    assert report["protocol"]["model_kwargs"] == {"width": 8} and report["config"]["test_per_class"] == 3
    for bad in ("[8]", "{width: 8}"):
        with pytest.raises(SystemExit):
            main(["apply", "federated", "random", "--dataset", "digits", "--model-kwargs", bad])
        assert "a JSON object such as" in capsys.readouterr().err
    # a misspelt option fails before any client distills, with the model named
    assert main(["apply", "federated", "dm", "--dataset", "digits", "--model-kwargs", '{"widht": 8}']) == 2
    assert "do not fit the model 'convnet'" in capsys.readouterr().err
    assert main(["apply", "privacy", "dm", "--dataset", "digits"]) == 2
    assert "not differentially private" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["apply", "privacy", "--dataset", "digits", "--epsilons", "0"])


class TestDPDMContract(ConvNetDigitsContract):
    """The method contract at a private setting (epsilon 10, from noise): the summary still beats random real
    images (no margin: the noise costs accuracy at 40 steps)."""

    method = "dp-dm"
    overrides = {"steps": 40, **QUICK_OBJECTIVES["dm"], "epsilon": 10.0}
    beats_random_margin = 0.0
