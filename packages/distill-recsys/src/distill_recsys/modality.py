"""The recommender modality: implicit-feedback datasets, user-level summaries and their evaluation.

Recommender runs take distill-core's one path (:func:`distill_core.runner.distill`) like every other modality. The
data has no classes and no trained classifier, so the modality says what differs: the core's class-based methods
are refused and ``random`` becomes ``random-users`` (:meth:`RecsysModality.method_name`), the budget is a number of
users (:meth:`RecsysModality.resolve_budget`), and a summary is evaluated by the recommender learners
(:meth:`RecsysModality.evaluate`: test nDCG@10 of the primary learner, every learner's metrics beside it), in a run
and in ``distill eval`` alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from distill_core.data import Budget
from distill_core.errors import DataValidationError
from distill_core.modality import Modality, SummaryInfo
from distill_core.preprocessing import Preprocessing
from distill_core.protocol import EvalProtocol
from distill_core.synset import Summary

from . import datasets
from .data import InteractionData
from .evaluation import RecsysEvalResult, RecsysProtocol, evaluate_support
from .summary import SparseUserSummary, summary_of

__all__ = ["RecsysModality"]

logger = logging.getLogger(__name__)

RECSYS_METHODS = ("distill-cf", "random-users", "head-users", "kcenter-users")


class RecsysModality(Modality):
    """Implicit-feedback user x item data (CSR), Distill-CF and user coresets, four learners for evaluation."""

    name = "recsys"

    def dataset_names(self) -> list[str]:
        return list(datasets.DATASETS)

    def claims(self, spec: str) -> bool:
        """The named sets and the ``ml-100k:`` / ``sparse:`` / ``tsv:`` / ``csv:`` paths, except a ``csv:`` file
        whose header names ``text`` and ``label`` columns (labelled texts, which distill-text reads).

        ``csv:`` is shared with distill-text, so the file's first line decides: an interaction header
        ``user,item[,rating]`` or a header-less row of integer ids is ours, a ``text,label`` header is not. A file
        that is missing, unreadable or starts with any other line is claimed too: its loader then names the
        expected header (with both modalities claiming it, ``distill run`` asks for ``--modality``). Never raises.
        """
        try:
            if spec in datasets.DATASETS or spec.startswith(("tsv:", "sparse:", "ml-100k:")):
                return True
            if not spec.startswith("csv:"):
                return False
            path = Path(spec[len("csv:"):])
            if not path.exists() and "?" in str(path):  # distill-text's options follow a '?'
                path = Path(str(path).partition("?")[0])
            return datasets.csv_header_kind(path) != "text"
        except Exception:  # a claim is a yes/no question; the loader reports what is wrong with the file
            return spec.startswith(datasets.PREFIXES)

    def load_dataset(self, spec: str, *, root: str | None = None,  # type: ignore[override]
                     preprocessing: Preprocessing | None = None) -> InteractionData:
        return datasets.load(spec, root=root)

    def method_name(self, name: str, owner: str | None) -> str:
        """The core's ``random`` becomes ``random-users``; the other class-based methods (herding, kcenter, ...) and
        other modalities' methods are refused."""
        if owner not in (None, self.name):
            raise DataValidationError(f"method {name!r} is a {owner} method; recommender data works with "
                                      f"{list(RECSYS_METHODS)}")
        if name == "random":
            return "random-users"
        if owner is None:
            raise DataValidationError(f"method {name!r} needs classes; recommender data has none. Use one of "
                                      f"{list(RECSYS_METHODS)}")
        return name

    def validate_data(self, data: Any) -> InteractionData:  # type: ignore[override]
        """Recommender methods need implicit-feedback data; its loaders have checked it already."""
        if not isinstance(data, InteractionData):
            raise DataValidationError(f"recommender methods need implicit-feedback data (an InteractionData, e.g. "
                                      f"--dataset ml-1m or csv:PATH), got a {type(data).__name__}")
        return data

    def resolve_budget(self, budget: Budget, data: Any) -> list[int]:
        """``[synthetic users]``: ``--budget N`` users or ``--ratio R`` of the real users (``--ipc`` is refused)."""
        from .methods._common import resolve_user_budget

        n = resolve_user_budget(budget, data)
        logger.info("budget %s resolves to %d synthetic users (of %d real users, %d items)", budget.describe(), n,
                    data.n_users, data.n_items)
        return [n]

    def model_names(self) -> list[str]:
        from .learners import LEARNERS

        return list(LEARNERS)

    def default_protocol(self, dataset: dict[str, Any], summary: Summary) -> EvalProtocol:
        """Every learner, three seeds of ALS and BPR; a run's ``--models N`` sets those seeds and ``--eval-model
        NAME`` keeps one learner (:meth:`RecsysProtocol.to_eval_protocol`)."""
        return RecsysProtocol().to_eval_protocol()

    def evaluate(self, summary: Summary, data: Any, *, protocol: EvalProtocol, seed: int,  # type: ignore[override]
                 device: torch.device, progress: bool) -> RecsysEvalResult:
        """Fit every learner of the protocol on the summary and test it (:func:`evaluate_support`): the primary
        learner's test nDCG@10 per seed, every learner's metrics in ``metrics``."""
        if not isinstance(data, InteractionData):
            raise DataValidationError("recsys summaries are evaluated on implicit-feedback data")
        support = summary.to_csr() if isinstance(summary, SparseUserSummary) else summary.materialize()[0]
        return evaluate_support(support, data, protocol=RecsysProtocol.from_eval_protocol(protocol), seed=seed,
                                device=device)


    def export(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """``user,item,weight`` CSV (``.csv``) or a scipy ``.npz`` CSR matrix (``.npz``)."""
        summary = summary_of(summary)
        path = Path(path)
        if path.suffix == ".npz":
            import scipy.sparse as sp

            path.parent.mkdir(parents=True, exist_ok=True)
            sp.save_npz(path, summary.to_csr())
            return path
        return summary.to_csv(path)
