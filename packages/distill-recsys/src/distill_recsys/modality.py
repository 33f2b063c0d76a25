"""The recommender modality: implicit-feedback datasets, user-level summaries and their evaluation.

Recommender data has no classes and no trained classifier, so :meth:`RecsysModality.run` takes over the whole run
(:func:`distill_recsys.runner.run_recsys`) through distill-core's modality ``run`` hook; ``distill eval`` goes
through the core's :func:`~distill_core.evaluation.evaluate_summary`, which calls :meth:`fit_and_score` (test
nDCG@10 of the protocol's learner).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from distill_core.data import Budget
from distill_core.errors import DataValidationError
from distill_core.evaluation import EvalProtocol
from distill_core.modality import Modality
from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary

from . import datasets
from .data import InteractionData
from .evaluation import RecsysProtocol, evaluate_support

if TYPE_CHECKING:
    from distill_core.artifact import Artifact
    from distill_core.method import Method
    from distill_core.runner import RunOutcome

__all__ = ["RecsysModality"]

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

    def model_names(self) -> list[str]:
        from .learners import LEARNERS

        return list(LEARNERS)

    def default_protocol(self, dataset: dict[str, Any], summary: Summary) -> EvalProtocol:
        return RecsysProtocol().to_eval_protocol()

    def fit_and_score(self, summary: Summary, data: Any, *, protocol: EvalProtocol, lr: float | None,
                      augment: Callable[[Tensor, torch.Generator], Tensor] | None, generator: torch.Generator,
                      device: torch.device) -> float:
        """Test nDCG@10 (x100) of ``protocol.model`` (a learner name) fit on the summary."""
        if not isinstance(data, InteractionData):
            raise DataValidationError("recsys summaries are evaluated on implicit-feedback data")
        x, _ = summary.materialize()
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        result = evaluate_support(x, data, protocol=RecsysProtocol(learners=(protocol.model,), primary=protocol.model,
                                                                   seeds=1), seed=seed, device=device)
        return float(result.accuracies[0])

    def run(self, method: Method[Any], *, dataset: str, budget: Budget, seed: int = 0, root: str | None = None,
            out_dir: Any = None, resume: bool = False, evaluate: bool = True,
            protocol_overrides: dict[str, Any] | None = None, checkpoint_every: int = 100, progress: bool = True,
            device: Any = "cpu", data: Any = None) -> RunOutcome:
        """The whole run for recommender data (see :func:`distill_recsys.runner.run_recsys`).

        The core's ``random`` baseline maps to ``random-users``; ``protocol_overrides`` may set ``n_models``
        (seeds of ALS/BPR) and ``model`` (evaluate with one learner only).
        """
        from distill_core.registry import get_method

        from .runner import run_recsys

        if method.modality not in (None, self.name):
            raise DataValidationError(f"method {method.name!r} is a {method.modality} method; recommender data "
                                      f"works with {list(RECSYS_METHODS)}")
        if method.name == "random":
            method = get_method("random-users")()
        elif method.modality is None:
            raise DataValidationError(f"method {method.name!r} needs classes; recommender data has none. Use one of "
                                      f"{list(RECSYS_METHODS)}")
        protocol = RecsysProtocol()
        overrides = dict(protocol_overrides or {})
        if "n_models" in overrides:
            protocol.seeds = int(overrides.pop("n_models"))
        if "model" in overrides:
            name = overrides.pop("model")
            protocol.learners, protocol.primary = (name,), name
        overrides.pop("epochs", None)
        if overrides:
            raise DataValidationError(f"recsys evaluation has no options {sorted(overrides)}")
        return run_recsys(method, self, dataset=dataset, budget=budget, seed=seed, root=root, out_dir=out_dir,
                          resume=resume, evaluate=evaluate, protocol=protocol, checkpoint_every=checkpoint_every,
                          progress=progress, device=device, data=data)

    def export(self, artifact: Artifact, path: Path) -> Path:
        """``user,item,weight`` CSV (``.csv``) or a scipy ``.npz`` CSR matrix (``.npz``)."""
        from .runner import summary_of

        summary = summary_of(artifact)
        path = Path(path)
        if path.suffix == ".npz":
            import scipy.sparse as sp

            path.parent.mkdir(parents=True, exist_ok=True)
            sp.save_npz(path, summary.to_csr())
            return path
        return summary.to_csv(path)
