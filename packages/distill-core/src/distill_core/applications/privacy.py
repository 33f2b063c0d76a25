"""Differential privacy of summaries: the mechanism's parts, its accounting, and a membership-inference audit.

**Mechanism** (what a differentially private distillation method such as vision's ``dp-dm`` does with these parts):
at every outer step each class's real batch is drawn by Poisson sampling (each training sample of class ``c`` joins
with probability ``q_c``), every sample's embedding is clipped to L2 norm ``C`` (:func:`clip_rows`), and the class
mean is released as ``(sum of clipped embeddings + N(0, (sigma C)^2 I)) / (q_c n_c)`` (:func:`noisy_mean`): one
sample changes the sum by at most ``C`` (the mean by ``C / batch``), and a sample belongs to one class, so one step
is the subsampled Gaussian mechanism with noise multiplier ``sigma`` and sampling rate ``q = max_c q_c``. The
privacy loss over the steps is accounted by opacus (Yousefpour et al. 2021, https://arxiv.org/abs/2109.12298): its
RDP accountant (Mironov 2017, https://arxiv.org/abs/1702.07476; Mironov, Talwar & Zhang 2019,
https://arxiv.org/abs/1908.10530) or PRV accountant (Gopi, Lee & Wutschitz 2021, https://arxiv.org/abs/2106.02848);
:func:`noise_multiplier` asks opacus' ``get_noise_multiplier`` for the ``sigma`` of a target ``(epsilon, delta)``,
:func:`spent_epsilon` asks the accountant what a history of steps spent. Nothing here accounts by hand.

**Audit** (:func:`run_privacy`, ``distill apply privacy``): the method distills a summary at each target epsilon;
one model per seed is trained on it, on a random real subset of the same size and on the full training set (or a
stated subset), and reported are each model's test accuracy and a loss-threshold membership-inference attack (Yeom
et al., CSF 2018, https://arxiv.org/abs/1709.01604): the score of a sample is the negative cross-entropy of the
trained model on it; members are the real training samples the training set was made from (for a summary: all of
the training set, which the method sampled from; for the subset and the full data: the samples trained on),
non-members the held-out test samples; the attack's ROC AUC (:func:`membership_auc`, 0.5 = no better than chance)
and its true-positive rate at 1% false positives (:func:`tpr_at_fpr`, the low-FPR view of Carlini et al. 2022,
https://arxiv.org/abs/2112.03570) are reported. This audits one attack; it is no proof of privacy, which only the
accounting gives.

**Selection** (``validation=N``): ``N`` training samples (stratified, seeded by ``validation_seed``, the same split
for every seed and setting: :func:`~distill_core.data.hold_out_validation`) are held out as public data outside the
protected set. Summaries, subsets and the full-data model are made from the rest, which is the set the accounted
epsilon covers (and the attack's members), and every model's accuracy on the held-out samples (``val_accuracy``) is
reported next to its test accuracy, so that steps, batch sizes or clip norms are picked without the test set and
without spending privacy budget on the protected data (tuning on the private data itself costs budget: Papernot &
Steinke, ICLR 2022, https://arxiv.org/abs/2110.03620).

The published debate this measures into: Dong, Zhao & Lyu ("Privacy for free: how does dataset condensation help
privacy?", ICML 2022, https://arxiv.org/abs/2206.00240) find that models trained on condensed data resist
loss-based and likelihood-ratio membership inference; Carlini et al. ("No free lunch in 'privacy for free'", 2022,
https://arxiv.org/abs/2209.14987) answer that those results give no statistically significant evidence of a privacy
gain over a naive baseline at the same accuracy, and that DP-SGD offers better accuracy with a proven bound.

opacus is optional: ``pip install 'distill-core[privacy]'``.
"""

from __future__ import annotations

import functools
import logging
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Budget, ClassIndex, RealData, hold_out_validation
from ..errors import DataValidationError, MissingDependencyError, UnknownNameError
from ..modality import Modality
from ..protocol import EvalProtocol

__all__ = ["ACCOUNTANTS", "PrivacyConfig", "PrivacyResult", "clip_rows", "membership_auc", "noise_multiplier",
           "noisy_mean", "per_sample_losses", "run_privacy", "spent_epsilon", "tpr_at_fpr"]

logger = logging.getLogger(__name__)

#: opacus accountants that may account the privacy loss
ACCOUNTANTS = ("rdp", "prv")
PRIVACY_EXTRA = "pip install 'distill-core[privacy]'"


def _opacus_accountants() -> Any:
    try:
        import opacus.accountants as accountants
        import opacus.accountants.utils  # noqa: F401  (get_noise_multiplier)
    except ImportError as exc:
        raise MissingDependencyError(f"differential-privacy accounting needs opacus, which is not installed; run: "
                                     f"{PRIVACY_EXTRA}") from exc
    return accountants


def check_privacy_budget(epsilon: float | None, delta: float, accountant: str = "rdp") -> None:
    """Refuse a target ``(epsilon, delta)`` that no mechanism can meet. ``epsilon=None`` means no privacy (inf)."""
    if epsilon is not None and not (isinstance(epsilon, (int, float)) and epsilon > 0 and math.isfinite(epsilon)):
        raise DataValidationError(f"epsilon must be a finite number > 0 (or None / 'inf' for no privacy), got "
                                  f"{epsilon!r}")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise DataValidationError(f"delta must be in (0, 1), got {delta!r} (commonly below 1 / training samples, "
                                  "e.g. 1e-5)")
    if accountant not in ACCOUNTANTS:
        raise UnknownNameError("accountant", accountant, ACCOUNTANTS)


def noise_multiplier(*, epsilon: float | None, delta: float, sample_rate: float, steps: int,
                     accountant: str = "rdp", tolerance: float = 0.01) -> float:
    """The noise multiplier ``sigma`` of the subsampled Gaussian mechanism that spends ``(epsilon, delta)`` in
    ``steps`` steps at ``sample_rate`` (opacus' ``get_noise_multiplier``, binary search to ``tolerance`` in epsilon,
    the spent epsilon at most the target). ``epsilon=None`` (no privacy) gives 0.

    Raises:
        DataValidationError: on a target no noise can meet, a sample rate outside (0, 1] or no steps.
    """
    check_privacy_budget(epsilon, delta, accountant)
    if epsilon is None:
        return 0.0
    if not 0 < sample_rate <= 1:
        raise DataValidationError(f"the sampling rate must be in (0, 1], got {sample_rate}")
    if steps < 1:
        raise DataValidationError(f"a private run needs at least one step, got {steps}")
    try:
        return _searched_noise(float(epsilon), float(delta), float(sample_rate), int(steps), accountant,
                               float(tolerance))
    except ValueError as exc:  # opacus: "The privacy budget is too low."
        raise DataValidationError(f"opacus finds no noise multiplier for epsilon={epsilon}, delta={delta} over "
                                  f"{steps} steps at sampling rate {sample_rate:.4g} ({exc}); raise epsilon or "
                                  "delta, or take fewer steps or smaller batches") from exc


@functools.lru_cache(maxsize=64)
def _searched_noise(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str,
                    tolerance: float) -> float:
    """opacus' binary search (seconds of RDP evaluations), remembered per target: runs and evaluations that ask
    for the same target in one process search once."""
    return float(_opacus_accountants().utils.get_noise_multiplier(
        target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant=accountant,
        epsilon_tolerance=tolerance))


def spent_epsilon(history: Sequence[tuple[float, float, int]], *, delta: float, accountant: str = "rdp") -> float:
    """Epsilon spent (at ``delta``) by a history of ``(noise_multiplier, sample_rate, steps)`` segments of the
    subsampled Gaussian mechanism, by opacus' accountant; ``inf`` when a segment had no noise."""
    check_privacy_budget(None, delta, accountant)
    segments = [(float(s), float(q), int(n)) for s, q, n in history if int(n) > 0]
    if not segments:
        return 0.0
    if any(s <= 0 for s, _, _ in segments):
        return math.inf
    acc = _opacus_accountants().create_accountant(mechanism=accountant)
    acc.history = segments  # what opacus' own get_noise_multiplier does
    return float(acc.get_epsilon(delta=float(delta)))


def clip_rows(e: Tensor, clip_norm: float) -> Tensor:
    """Every row of ``e`` scaled to L2 norm at most ``clip_norm`` (opacus' per-sample factor
    ``min(1, C / (norm + 1e-6))``).

    Shapes:
        e: ``(n, d)`` (or ``(n, *)``, flattened per row for the norm); returns the same shape.
    """
    if not clip_norm > 0:
        raise DataValidationError(f"clip_norm must be > 0, got {clip_norm}")
    norms = e.reshape(len(e), -1).norm(dim=1)
    factor = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
    return e * factor.view(-1, *[1] * (e.dim() - 1))


def noisy_mean(clipped_sum: Tensor, *, clip_norm: float, noise_multiplier: float, denominator: float,
               generator: torch.Generator | None = None) -> Tensor:
    """The Gaussian mechanism on a sum of clipped rows: ``(sum + N(0, (sigma C)^2 I)) / denominator``; the
    denominator must not depend on the data (the expected batch size ``q n_c`` under Poisson sampling).

    Shapes:
        clipped_sum: ``(d,)``; returns ``(d,)``.
    """
    if not denominator > 0:
        raise DataValidationError(f"the denominator of a noisy mean must be > 0, got {denominator}")
    noise = torch.randn(clipped_sum.shape, generator=generator, dtype=clipped_sum.dtype)
    return (clipped_sum + noise.to(clipped_sum.device) * (noise_multiplier * clip_norm)) / denominator


# -- membership inference ------------------------------------------------------------------------------------------
def membership_auc(member_scores: Tensor | Sequence[float], nonmember_scores: Tensor | Sequence[float]) -> float:
    """ROC AUC of a membership score (higher = "member"): the probability that a random member outscores a random
    non-member, ties counting half (the Mann-Whitney U statistic over ``n_members * n_nonmembers``,
    ``scipy.stats.mannwhitneyu``)."""
    from scipy.stats import mannwhitneyu

    members = torch.as_tensor(member_scores, dtype=torch.float64).flatten().numpy()
    others = torch.as_tensor(nonmember_scores, dtype=torch.float64).flatten().numpy()
    if len(members) == 0 or len(others) == 0:
        raise DataValidationError("a membership AUC needs at least one member and one non-member score")
    u = mannwhitneyu(members, others, alternative="two-sided").statistic
    return float(u) / (len(members) * len(others))


def tpr_at_fpr(member_scores: Tensor | Sequence[float], nonmember_scores: Tensor | Sequence[float], *,
               fpr: float = 0.01) -> float:
    """True-positive rate of the threshold attack whose false-positive rate on the non-members is at most ``fpr``
    (the threshold: the smallest score above all but ``floor(fpr * n)`` non-member scores)."""
    members = torch.as_tensor(member_scores, dtype=torch.float64).flatten()
    others = torch.as_tensor(nonmember_scores, dtype=torch.float64).flatten().sort(descending=True).values
    allowed = math.floor(fpr * len(others))
    threshold = others[allowed] if allowed < len(others) else -math.inf  # members must score above it
    return float((members > threshold).double().mean())


@torch.no_grad()
def per_sample_losses(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1024) -> Tensor:
    """Cross-entropy of ``model`` (eval mode) on every sample of ``(x, y)``.

    Shapes:
        x: ``(n, *sample_shape)``; y: ``(n,)`` class indices; returns ``(n,)``.
    """
    model.eval()
    out = [F.cross_entropy(model(x[s:s + batch_size]), y[s:s + batch_size], reduction="none")
           for s in range(0, len(x), batch_size)]
    return torch.cat(out).cpu() if out else torch.zeros(0)


# -- the audit -----------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class PrivacyConfig:
    """Settings of one privacy audit (the CLI's ``distill apply privacy``)."""

    method: str = field(default="dp-dm", metadata={
        "help": "a differentially private method (its config has epsilon, delta, accountant), e.g. dp-dm"})
    epsilons: list[float | None] = field(default_factory=lambda: [1.0, 4.0, 10.0, None], metadata={
        "help": "target epsilons; None is no privacy (epsilon = inf: the method without clipping or noise)"})
    delta: float = field(default=1e-5, metadata={"help": "target delta"})
    accountant: str = field(default="rdp", metadata={"help": "opacus accountant: rdp or prv"})
    ipc: int = field(default=10, metadata={"help": "summary (and random subset) samples per class"})
    steps: int | None = field(default=None, metadata={"help": "outer steps of the method (None: its own)"})
    method_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the method's options"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={
        "help": "one summary per epsilon, one subset and one model per training set for each seed"})
    epochs: int | None = field(default=None, metadata={
        "help": "training epochs on the summaries and the subset (None: the modality's protocol)"})
    full_epochs: int | None = field(default=None, metadata={
        "help": "training epochs on the full data (None: as epochs)"})
    full_per_class: int | None = field(default=None, metadata={
        "help": "the 'full data' model trained on this many samples per class (members: those); None: all"})
    baselines: bool = field(default=True, metadata={
        "help": "also train and attack the random subset and the full-data model"})
    validation: int = field(default=0, metadata={
        "help": "hold out this many training samples (stratified) as a public validation split: every training "
                "set is made from the rest (the protected set), and accuracy on the split is reported; 0: none"})
    validation_seed: int = field(default=0, metadata={"help": "seed of the validation split (one split for all seeds)"})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PrivacyResult:
    """Per training set (``"eps=1"``, ..., ``"eps=inf"``, ``"random"``, ``"full"``) and seed: accuracy (%), attack
    AUC and TPR at 1% FPR (and ``val_accuracy`` (%) with a validation split); the privacy facts each summary's
    manifest recorded; the sizes of the protected training set and of the validation split (0: none)."""

    config: PrivacyConfig
    protocol: EvalProtocol
    rows: dict[str, dict[str, list[float]]]
    privacy: dict[str, list[dict[str, Any]]]
    sizes: dict[str, int]
    wall_s: float
    protected_size: int = 0
    validation_size: int = 0

    def summary(self) -> dict[str, Any]:
        cells = {}
        for name, values in self.rows.items():
            cells[name] = {**{f"{k}_mean": round(statistics.fmean(v), 4) for k, v in values.items()},
                           **{f"{k}_std": round(_std(v), 4) for k, v in values.items()},
                           "per_seed": {k: [round(x, 4) for x in v] for k, v in values.items()},
                           "train_size": self.sizes[name],
                           **({"privacy": self.privacy[name]} if name in self.privacy else {})}
        return {"application": "privacy", "method": self.config.method, "ipc": self.config.ipc,
                "delta": self.config.delta, "accountant": self.config.accountant, "seeds": self.config.seeds,
                "epsilons": [_eps_name(e) for e in self.config.epsilons], "cells": cells,
                "protected_size": self.protected_size, "validation_size": self.validation_size,
                "protocol": self.protocol.to_dict(), "config": self.config.to_dict(),
                "wall_s": round(self.wall_s, 2)}


def _std(values: Sequence[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def _eps_name(epsilon: float | None) -> str:
    return "inf" if epsilon is None else f"{epsilon:g}"


def check_config(config: PrivacyConfig) -> None:
    """Refuse bad settings before any data is loaded: unknown or non-private methods, epsilon <= 0, bad counts."""
    from ..registry import list_methods
    from ..runner import build_method

    if config.method not in list_methods():
        raise UnknownNameError("private method", config.method, list_methods())
    if not config.epsilons:
        raise DataValidationError("give at least one target epsilon")
    for eps in config.epsilons:
        check_privacy_budget(eps, config.delta, config.accountant)
    method = build_method(config.method, dict(config.method_options))
    if not all(hasattr(method.config, k) for k in ("epsilon", "delta", "accountant")):
        raise DataValidationError(f"method {config.method!r} is not differentially private (its options have no "
                                  "epsilon / delta / accountant); use a private method such as dp-dm")
    for name in ("ipc",):
        if not isinstance(getattr(config, name), int) or getattr(config, name) < 1:
            raise DataValidationError(f"{name} must be an integer >= 1, got {getattr(config, name)!r}")
    if not isinstance(config.validation, int) or isinstance(config.validation, bool) or config.validation < 0:
        raise DataValidationError(f"validation must be an integer >= 0 (held-out samples), got "
                                  f"{config.validation!r}")
    for name in ("epochs", "full_epochs", "full_per_class", "steps"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < (0 if name == "steps" else 1)):
            raise DataValidationError(f"{name} must be an integer >= {0 if name == 'steps' else 1}, got {value!r}")
    if not config.seeds or any(not isinstance(s, int) or s < 0 for s in config.seeds):
        raise DataValidationError(f"seeds must be integers >= 0 (at least one), got {config.seeds!r}")


def _train(modality: Modality, data: RealData, x: Tensor, targets: Tensor, label_kind: str, *,
           protocol: EvalProtocol, seed: int, device: torch.device) -> nn.Module:
    from ..training import init_model_, train_classifier

    torch.manual_seed(seed)
    model = modality.build_model(protocol.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                                 **protocol.model_kwargs).to(device)
    init_model_(model, protocol.init)
    return train_classifier(model, x.to(device), targets.to(device), label_kind=label_kind, protocol=protocol,
                            augment=modality.augmenter(protocol.augment),
                            generator=torch.Generator().manual_seed(seed))


def _audit(model: nn.Module, data: RealData, members: Tensor, device: torch.device,
           val: RealData | None = None) -> dict[str, float]:
    """Test accuracy, the attack on ``data.x_train[members]`` against the test set, and accuracy on ``val``'s
    held-out samples (its test split) when given."""
    from ..training import accuracy

    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    member_scores = -per_sample_losses(model, data.x_train[members].to(device), data.y_train[members].to(device))
    nonmember_scores = -per_sample_losses(model, x_test, y_test)
    result = {"accuracy": accuracy(model, x_test, y_test), "auc": membership_auc(member_scores, nonmember_scores),
              "tpr_at_1pct_fpr": tpr_at_fpr(member_scores, nonmember_scores, fpr=0.01)}
    if val is not None:
        result["val_accuracy"] = accuracy(model, val.x_test.to(device), val.y_test.to(device))
    return result


def run_privacy(config: PrivacyConfig, data: RealData, *, modality: Modality,
                device: torch.device | str = "cpu") -> PrivacyResult:
    """Run the audit of the module docstring: per seed, the private method at every target epsilon, a random real
    subset of the same size and the full data, each trained once and attacked. The modality must train on
    ``summary.materialize()`` samples (the default :meth:`~distill_core.modality.Modality.train_and_test` path).
    With ``config.validation``, all of it uses the training data minus the held-out split (the protected set)."""
    from ..runner import distill

    check_config(config)
    data = modality.validate_data(data)
    val = None
    if config.validation:
        data, val = hold_out_validation(data, n_val=config.validation, seed=config.validation_seed)
    device = torch.device(device)
    budget = Budget(ipc=config.ipc)
    budget.per_class(data)  # an ipc larger than a class is refused before any compute
    if len(data.y_test) == 0:
        raise DataValidationError(f"{data.name} has no test samples, which are the attack's non-members")
    start = time.perf_counter()
    index = ClassIndex(data.y_train, data.num_classes)
    all_train = torch.arange(len(data.y_train))
    rows: dict[str, dict[str, list[float]]] = {}
    privacy: dict[str, list[dict[str, Any]]] = {}
    sizes: dict[str, int] = {}
    protocol = None
    for seed in config.seeds:
        for eps in config.epsilons:
            name = f"eps={_eps_name(eps)}"
            overrides = {**config.method_options, "epsilon": eps, "delta": config.delta,
                         "accountant": config.accountant}
            if config.steps is not None:
                overrides["steps"] = config.steps
            outcome = distill(config.method, dataset=data.name, budget=budget, seed=seed, overrides=overrides,
                              evaluate=False, progress=False, device=device, data=data, modality_name=modality.name)
            summary = outcome.artifact.summary
            if protocol is None:
                protocol = modality.default_protocol(data.describe(), summary).with_(n_models=1)
                if config.epochs is not None:
                    protocol = protocol.with_(epochs=config.epochs)
            x, targets = summary.materialize()
            model = _train(modality, data, x.detach(), targets.detach(), summary.label_kind, protocol=protocol,
                           seed=seed, device=device)
            # members: every training sample, since the method may have drawn any of them
            result = _audit(model, data, all_train, device, val)
            for k, v in result.items():
                rows.setdefault(name, {}).setdefault(k, []).append(v)
            facts = dict(outcome.artifact.extra.get("privacy", {}))
            facts["distill_wall_s"] = round(outcome.run.wall_s, 2)
            privacy.setdefault(name, []).append(facts)
            sizes[name] = summary.budget
            logger.info("seed %d %s: accuracy %.2f%%, attack AUC %.3f", seed, name, result["accuracy"], result["auc"])
        assert protocol is not None
        if not config.baselines:
            continue
        subset = index.sample_balanced(config.ipc, generator=torch.Generator().manual_seed(seed))
        if config.full_per_class is None:
            full = all_train
        else:
            full = index.sample_balanced(config.full_per_class, generator=torch.Generator().manual_seed(seed + 1))
        full_protocol = protocol.with_(epochs=config.full_epochs) if config.full_epochs else protocol
        for name, members, p in (("random", subset, protocol), ("full", full, full_protocol)):
            x, y = data.x_train[members], data.y_train[members]
            model = _train(modality, data, x, F.one_hot(y, data.num_classes).float(), "hard", protocol=p, seed=seed,
                           device=device)
            result = _audit(model, data, members, device, val)
            for k, v in result.items():
                rows.setdefault(name, {}).setdefault(k, []).append(v)
            sizes[name] = len(members)
            logger.info("seed %d %s: accuracy %.2f%%, attack AUC %.3f", seed, name, result["accuracy"], result["auc"])
    assert protocol is not None
    return PrivacyResult(config, protocol, rows, privacy, sizes, time.perf_counter() - start,
                         protected_size=len(data.y_train), validation_size=0 if val is None else len(val.y_test))
