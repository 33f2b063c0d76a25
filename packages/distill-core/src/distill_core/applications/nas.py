"""Architecture-search proxy: does a summary rank architectures the way the full data does?

The protocol of DC (Zhao et al., ICLR 2021, https://arxiv.org/abs/2006.05929, §4.4; also FTD, Du et al., CVPR 2023,
Table 5): every architecture of a search space is trained on the proxy set and on the full training set, the
architectures are ranked by test accuracy, and the proxy is scored by the Spearman rank correlation of its
accuracies with the full-data ones, over all architectures and over the top 5 / 10 / 20 of the full-data ranking,
next to the training time it saves. Here the proxies are a distilled summary (any registered method) and, as the
yardstick, a random real subset of the same size; the search space comes from the modality
(:meth:`~distill_core.modality.Modality.architecture_space`; vision: ConvNets over depth, width, normalisation,
activation and pooling), so this module is modality-free.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..data import Budget, ClassIndex, RealData, subsample_test
from ..errors import DataValidationError, UnknownNameError
from ..modality import Modality
from ..protocol import EvalProtocol
from ..synset import Summary

__all__ = ["NASConfig", "NASResult", "rank_correlation", "run_nas", "sample_space"]

logger = logging.getLogger(__name__)

TOPS = (5, 10, 20)


@dataclass
class NASConfig:
    """Settings of one architecture-search proxy run (the CLI's ``distill apply nas``)."""

    method: str = field(default="dm", metadata={"help": "the method that distills the proxy summary"})
    ipc: int = field(default=10, metadata={"help": "summary (and random subset) samples per class"})
    steps: int | None = field(default=None, metadata={"help": "outer steps of the method (None: its own)"})
    method_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the method's options"})
    variants: int | None = field(default=None, metadata={
        "help": "architectures drawn (seeded, without replacement) from the modality's space; None: all of them"})
    epochs: int | None = field(default=None, metadata={
        "help": "training epochs on the summary and on the random subset (None: the modality's protocol)"})
    full_epochs: int = field(default=30, metadata={"help": "training epochs on the full data"})
    full_per_class: int | None = field(default=None, metadata={
        "help": "the 'full data' reference as this many training samples per class (a CPU stand-in); None: all"})
    test_per_class: int | None = field(default=None, metadata={
        "help": "test every variant on this many seeded test samples per class (a CPU stand-in); None: all"})
    seed: int = field(default=0, metadata={"help": "seeds the summary, the subset, the variant draw and the models"})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NASResult:
    """One accuracy (%) per variant for each training set, the rank correlations and the training times."""

    config: NASConfig
    variants: list[dict[str, Any]]
    summary_accuracies: list[float]
    random_accuracies: list[float]
    full_accuracies: list[float]
    train_s: dict[str, float]
    distill_s: float
    full_size: int
    protocol: EvalProtocol

    def correlations(self, proxy: Sequence[float]) -> dict[str, float | None]:
        out: dict[str, float | None] = {"all": rank_correlation(proxy, self.full_accuracies)}
        for k in TOPS:
            out[f"top{k}"] = rank_correlation(proxy, self.full_accuracies, top=k) if k <= len(proxy) else None
        return out

    def summary(self) -> dict[str, Any]:
        full_s = self.train_s["full"]
        best_full = max(self.full_accuracies)

        def picked(proxy: Sequence[float]) -> float:  # full-data accuracy of the proxy's favourite architecture
            return self.full_accuracies[max(range(len(proxy)), key=lambda i: proxy[i])]

        def rounded(values: dict[str, float | None]) -> dict[str, float | None]:
            return {k: None if v is None else round(v, 4) for k, v in values.items()}

        return {
            "application": "nas",
            "method": self.config.method,
            "ipc": self.config.ipc,
            "n_variants": len(self.variants),
            "spearman_summary": rounded(self.correlations(self.summary_accuracies)),
            "spearman_random": rounded(self.correlations(self.random_accuracies)),
            "best_full_accuracy": round(best_full, 3),
            "full_accuracy_of_summary_pick": round(picked(self.summary_accuracies), 3),
            "full_accuracy_of_random_pick": round(picked(self.random_accuracies), 3),
            "train_s": {k: round(v, 2) for k, v in self.train_s.items()},
            "distill_s": round(self.distill_s, 2),
            "time_saved_summary": round(1 - (self.train_s["summary"] + self.distill_s) / full_s, 4) if full_s else None,
            "time_saved_random": round(1 - self.train_s["random"] / full_s, 4) if full_s else None,
            "full_size": self.full_size,
            "variants": self.variants,
            "summary_accuracies": [round(a, 3) for a in self.summary_accuracies],
            "random_accuracies": [round(a, 3) for a in self.random_accuracies],
            "full_accuracies": [round(a, 3) for a in self.full_accuracies],
            "protocol": self.protocol.to_dict(),
            "config": self.config.to_dict(),
        }


# -- metric --------------------------------------------------------------------------------------------------------
def rank_correlation(proxy: Sequence[float], reference: Sequence[float], *, top: int | None = None) -> float | None:
    """Spearman's rank correlation (``scipy.stats.spearmanr``, average ranks for ties) of ``proxy`` with
    ``reference``, over all entries or over the ``top`` entries of ``reference`` (highest first; ties broken by
    index). ``None`` when it is undefined (fewer than 2 entries, or one side constant).
    """
    from scipy.stats import spearmanr

    if len(proxy) != len(reference):
        raise DataValidationError(f"proxy has {len(proxy)} accuracies but the reference {len(reference)}")
    index = list(range(len(reference)))
    if top is not None:
        if top < 2:
            raise DataValidationError(f"a top-k rank correlation needs k >= 2, got {top}")
        index = sorted(index, key=lambda i: (-reference[i], i))[:top]
    a = [float(proxy[i]) for i in index]
    b = [float(reference[i]) for i in index]
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    rho = float(spearmanr(a, b).statistic)
    return None if math.isnan(rho) else rho


def sample_space(space: Sequence[dict[str, Any]], n: int | None, *, seed: int) -> list[dict[str, Any]]:
    """``n`` variants of ``space`` drawn without replacement (seeded), in space order; all when ``n`` is None."""
    if n is None or n >= len(space):
        return list(space)
    pick = torch.randperm(len(space), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return [space[i] for i in pick.tolist()]


# -- validation ----------------------------------------------------------------------------------------------------
def check_config(config: NASConfig) -> None:
    """Refuse bad settings before any data is loaded."""
    from ..registry import list_methods

    if config.method not in list_methods():
        raise UnknownNameError("method", config.method, list_methods())
    for name in ("ipc", "full_epochs"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise DataValidationError(f"{name} must be an integer >= 1, got {value!r}")
    for name in ("variants", "epochs", "full_per_class", "test_per_class"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < (2 if name == "variants" else 1)):
            raise DataValidationError(f"{name} must be an integer >= {2 if name == 'variants' else 1}, got {value!r}"
                                      + (" (a ranking needs at least 2 architectures)" if name == "variants" else ""))


# -- the protocol --------------------------------------------------------------------------------------------------
def _train_all(variants: Sequence[dict[str, Any]], summary: Summary, data: RealData, *, modality: Modality,
               protocol: EvalProtocol, seed: int, device: torch.device, what: str) -> tuple[list[float], float]:
    accs: list[float] = []
    start = time.perf_counter()
    augment = modality.augmenter(protocol.augment)
    for i, variant in enumerate(variants):
        p = protocol.with_(model=variant["model"], model_kwargs=dict(variant.get("model_kwargs", {})))
        torch.manual_seed(seed * 10_007 + i)
        generator = torch.Generator().manual_seed(seed * 10_007 + i)
        accs.append(modality.fit_and_score(summary, data, protocol=p, lr=None, augment=augment, generator=generator,
                                           device=device))
        logger.info("%s variant %d/%d %s: %.2f%%", what, i + 1, len(variants), variant.get("model_kwargs"), accs[-1])
    return accs, time.perf_counter() - start


def run_nas(config: NASConfig, data: RealData, *, modality: Modality, device: torch.device | str = "cpu") -> NASResult:
    """Train every variant on the summary, on a random real subset of the same size and on the full data (or
    ``full_per_class`` samples per class), and return the accuracies and times (see the module docstring)."""
    from ..runner import distill

    check_config(config)
    data = subsample_test(modality.validate_data(data), config.test_per_class, seed=config.seed)
    device = torch.device(device)
    try:
        space = modality.architecture_space(data)
    except NotImplementedError as exc:
        raise DataValidationError(f"{exc}; architecture search needs a modality that defines one (vision)") from exc
    if len(space) < 2:
        raise DataValidationError(f"the {modality.name} modality's search space has {len(space)} architecture(s); "
                                  "a ranking needs at least 2")
    variants = sample_space(space, config.variants, seed=config.seed)
    budget = Budget(ipc=config.ipc)
    budget.per_class(data)  # refuses an ipc larger than a class before any compute
    overrides = dict(config.method_options)
    if config.steps is not None:
        overrides["steps"] = config.steps
    outcome = distill(config.method, dataset=data.name, budget=budget, seed=config.seed, overrides=overrides,
                      evaluate=False, progress=False, device=device, data=data, modality_name=modality.name)
    summary, distill_s = outcome.artifact.summary, outcome.run.wall_s
    subset = distill("random", dataset=data.name, budget=budget, seed=config.seed, evaluate=False, progress=False,
                     device=device, data=data, modality_name=modality.name).artifact.summary
    index = ClassIndex(data.y_train, data.num_classes)
    if config.full_per_class is None:
        full_idx = torch.arange(len(data.y_train))
    else:
        full_idx = index.sample_balanced(config.full_per_class, generator=torch.Generator().manual_seed(config.seed))
    full = modality.subset_summary(data, full_idx, label_kind="hard")
    protocol = modality.default_protocol(data.describe(), summary).with_(n_models=1)
    if config.epochs is not None:
        protocol = protocol.with_(epochs=config.epochs)
    common = {"modality": modality, "seed": config.seed, "device": device}
    summary_accs, summary_s = _train_all(variants, summary, data, protocol=protocol, what="summary", **common)
    random_accs, random_s = _train_all(variants, subset, data, protocol=protocol, what="random", **common)
    full_accs, full_s = _train_all(variants, full, data, protocol=protocol.with_(epochs=config.full_epochs),
                                   what="full", **common)
    return NASResult(config, variants, summary_accs, random_accs, full_accs,
                     {"summary": summary_s, "random": random_s, "full": full_s}, distill_s, len(full_idx), protocol)
