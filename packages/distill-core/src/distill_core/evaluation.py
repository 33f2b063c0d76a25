"""The evaluation protocol: train fresh models on a summary, test them on the real test set.

Follows ``evaluate_synset`` of the DC/DSA/DM reference implementation (VICO-UoE/DatasetCondensation, utils.py):
SGD with momentum 0.9 and weight decay 5e-4, learning rate x0.1 after half the epochs, batch 256, optional
(non-Siamese) augmentation, several fresh models, mean +- std. The protocol is a dataclass stored next to every
result, so a number is never separated from how it was obtained; results state the label kind, augmentation and
epochs, which change accuracies by several points between papers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .data import RealData
from .distributed import gather_indexed, shard
from .errors import DataValidationError, UnknownNameError
from .protocol import KRR_MODELS, EvalProtocol, EvalResult
from .runtime import retain_freed_memory
from .synset import Summary
from .training import INITS, accuracy, init_model_, train_classifier, xavier_init_

if TYPE_CHECKING:
    from .modality import Modality

__all__ = [
    "INITS", "KRR_MODELS", "EvalProtocol", "EvalResult", "accuracy", "evaluate_cross_architecture",
    "evaluate_summary", "init_model_", "train_classifier", "xavier_init_",
]

logger = logging.getLogger(__name__)
Augment = Callable[[Tensor, torch.Generator], Tensor]


def _evaluate_with_krr(summary: Summary, data: RealData, protocol: EvalProtocol, *, seed: int,
                       device: torch.device | str) -> EvalResult:
    """KRR test accuracy (deterministic: one number whatever ``n_models``) as an :class:`EvalResult`."""
    from .evaluation_krr import evaluate_krr

    if summary.summary_type not in ("dense", "parameterized") or not summary.x.is_floating_point():
        raise DataValidationError(f"--model {protocol.model} (kernel ridge regression) needs a summary of dense "
                                  f"feature vectors, not a {summary.summary_type!r} summary; use a trained model")
    kernel = protocol.model.partition(":")[2] or "fc_ntk"
    result = evaluate_krr(summary, data, kernel, device=device)
    return EvalResult([result.accuracy], protocol, summary.label_kind, result.wall_s, seed)


def evaluate_summary(
    summary: Summary,
    data: RealData,
    *,
    modality: Modality,
    protocol: EvalProtocol,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> EvalResult:
    """Train ``protocol.n_models`` fresh models on the summary and report test accuracy on ``data``.

    Raises:
        DataValidationError: when the summary's preprocessing differs from the test data's (e.g. a ZCA-whitened
            summary against un-whitened test data), or the sample shapes differ.
    """
    custom = modality.evaluate(summary, data, protocol=protocol, seed=seed, device=torch.device(device),
                               progress=progress)
    if custom is not None:
        return custom
    if protocol.n_models < 1:  # (epochs may be 0: closed-form learners such as recsys' train no epochs)
        raise DataValidationError(f"the protocol trains {protocol.n_models} models; ask for at least 1 (--models)")
    if not summary.preprocessing.same_as(data.preprocessing):
        raise DataValidationError(
            f"the summary was distilled in preprocessing {summary.preprocessing.kinds or ['none']} but the test "
            f"data uses {data.preprocessing.kinds or ['none']}; load the test data with the artifact's "
            "preprocessing (`distill eval DIR` does this automatically)"
        )
    if protocol.model in KRR_MODELS:
        return _evaluate_with_krr(summary, data, protocol, seed=seed, device=device)
    x_syn = summary.materialize()[0]
    if tuple(x_syn.shape[1:]) != data.sample_shape:
        raise DataValidationError(f"summary samples have shape {tuple(x_syn.shape[1:])} but the test data "
                                  f"{data.sample_shape}")
    if protocol.init not in INITS:
        raise UnknownNameError("init", protocol.init, INITS)
    device = torch.device(device)
    if device.type == "cpu":
        retain_freed_memory()
    lr = float(summary.lr.detach()) if protocol.use_learned_lr and summary.lr is not None else None
    augment = modality.augmenter(protocol.augment)
    start = time.perf_counter()
    local: dict[int, float] = {}  # model i is seeded by i alone, so spreading models over ranks changes nothing
    for i in tqdm(shard(protocol.n_models), desc=f"eval {protocol.model}", disable=not progress, leave=False):
        torch.manual_seed(seed * 10_007 + i)
        generator = torch.Generator().manual_seed(seed * 10_007 + i)
        local[i] = modality.fit_and_score(summary, data, protocol=protocol, lr=lr, augment=augment,
                                          generator=generator, device=device)
        logger.debug("eval model %d: %.2f%%", i, local[i])
    accs = gather_indexed(local, protocol.n_models)
    return EvalResult(accs, protocol, summary.label_kind, time.perf_counter() - start, seed)


def evaluate_cross_architecture(
    summary: Summary,
    data: RealData,
    *,
    modality: Modality,
    protocols: Sequence[EvalProtocol],
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[EvalResult]:
    """Evaluate the same summary under several protocols (usually one per architecture)."""
    return [evaluate_summary(summary, data, modality=modality, protocol=p, seed=seed, device=device)
            for p in protocols]
