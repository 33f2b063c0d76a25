"""What a modality package supplies to the modality-free core: datasets, models, augmentation, features for
coresets and a way to show a summary. Registered under the entry-point group ``distill.modalities``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from .data import RealData
from .errors import UnknownNameError
from .preprocessing import Preprocessing
from .protocol import EvalProtocol, EvalResult
from .synset import Summary

if TYPE_CHECKING:
    from .data import Budget

__all__ = ["Modality", "ModelFit", "SummaryInfo"]


@dataclass(frozen=True)
class SummaryInfo:
    """Where a summary came from, for pictures and exports: the method's registered name and the dataset's
    description (``RealData.describe()``: name, class names, ...)."""

    method: str
    dataset: Mapping[str, Any]

    @property
    def class_names(self) -> list[str]:
        """The dataset's class names (empty when it has none)."""
        return [str(n) for n in self.dataset.get("class_names") or []]


@dataclass(frozen=True)
class ModelFit:
    """How one evaluation model is trained: the protocol, the learning rate (``None``: the protocol's), the
    augmentation, the seeded generator of its batches and the device."""

    protocol: EvalProtocol
    lr: float | None
    augment: Callable[[Tensor, torch.Generator], Tensor] | None
    generator: torch.Generator
    device: torch.device


class Modality:
    """Base class of a modality (vision, graph, text, recsys). Subclasses override what they support."""

    name: ClassVar[str] = ""

    # -- data ---------------------------------------------------------------------------------------------------
    def dataset_names(self) -> list[str]:
        """Named datasets this modality loads (besides prefixed specs such as ``npz:PATH``)."""
        return []

    def claims(self, spec: str) -> bool:
        """True when this modality can load the dataset ``spec``."""
        return spec in self.dataset_names()

    def load_dataset(self, spec: str, *, root: str | None = None,
                     preprocessing: Preprocessing | None = None) -> RealData:
        """Load ``spec``; when ``preprocessing`` is given apply it instead of fitting a new one (evaluation of a
        stored artifact)."""
        raise UnknownNameError("dataset", spec, self.dataset_names())

    def method_name(self, name: str, owner: str | None) -> str:
        """The registered name of the method to run on this modality's data when ``name`` (a method of modality
        ``owner``; ``None``: any modality) is asked for: ``name`` itself (default), or the modality's own version of
        an any-modality baseline (recommender data maps ``random`` to ``random-users``). Methods that cannot run on
        this data are refused with a :class:`~distill_core.errors.DataValidationError`."""
        return name

    def validate_data(self, data: RealData) -> RealData:
        """Check loaded data before any compute (default: :func:`~distill_core.data.validate_real_data`)."""
        from .data import validate_real_data

        return validate_real_data(data)

    def evaluate(self, summary: Summary, data: RealData, *, protocol: EvalProtocol, seed: int,
                 device: torch.device, progress: bool) -> EvalResult | None:
        """A whole evaluation of the modality's own (e.g. several recommender learners at once); ``None`` (the
        default) trains ``protocol.n_models`` models through :meth:`fit_and_score`."""
        return None

    def resolve_budget(self, budget: Budget, data: RealData) -> list[int]:
        """Summary samples per class for ``budget`` (stored in the manifest); recommender data has one "class" of
        users and overrides it."""
        return budget.per_class(data)

    # -- models -------------------------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return []

    def build_model(self, name: str, *, sample_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        raise UnknownNameError("model", name, self.model_names())

    def default_protocol(self, dataset: dict[str, Any], summary: Summary) -> EvalProtocol:
        return EvalProtocol()

    def fit_and_score(
        self,
        summary: Summary,
        data: RealData,
        *,
        protocol: EvalProtocol,
        lr: float | None,
        augment: Callable[[Tensor, torch.Generator], Tensor] | None,
        generator: torch.Generator,
        device: torch.device,
    ) -> float:
        """Train one fresh ``protocol.model`` on the summary and return its test accuracy in percent (what
        :func:`~distill_core.evaluation.evaluate_summary` calls once per model). Modalities override
        :meth:`train_and_test`, which receives these settings as one :class:`ModelFit`."""
        return self.train_and_test(summary, data, ModelFit(protocol=protocol, lr=lr, augment=augment,
                                                           generator=generator, device=device))

    def train_and_test(self, summary: Summary, data: RealData, fit: ModelFit) -> float:
        """:meth:`fit_and_score`'s work. The default trains on ``summary.materialize()`` with
        :func:`~distill_core.training.train_classifier` and tests on ``data.x_test``; modalities whose models need
        more than samples (graphs) override it."""
        from .training import accuracy, init_model_, train_classifier

        protocol, device = fit.protocol, fit.device
        x_syn, targets = (t.to(device) for t in summary.materialize())
        model = self.build_model(protocol.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                                 **protocol.model_kwargs).to(device)
        init_model_(model, protocol.init)
        train_classifier(model, x_syn, targets, label_kind=summary.label_kind, protocol=protocol, lr=fit.lr,
                         augment=fit.augment, generator=fit.generator)
        return accuracy(model, data.x_test.to(device), data.y_test.to(device))

    def augmenter(self, name: str | None) -> Callable[[Tensor, torch.Generator], Tensor] | None:
        if name is None:
            return None
        raise UnknownNameError("augmentation", name, [])

    # -- coresets -----------------------------------------------------------------------------------------------
    def features(self, data: RealData, indices: Tensor, *, seed: int) -> Tensor:
        """Feature vectors ``(n, d)`` of the training samples at ``indices`` for herding / k-center (default: the
        flattened samples)."""
        x = data.x_train[indices]
        return x.reshape(len(x), -1).float()

    def subset_summary(self, data: RealData, indices: Tensor, **kwargs: Any) -> Summary:
        """A summary made of the real training samples at ``indices``."""
        return Summary(x=data.x_train[indices], labels=data.y_train[indices], num_classes=data.num_classes,
                       preprocessing=data.preprocessing, **kwargs)

    # -- display ------------------------------------------------------------------------------------------------
    def render(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """Write a picture of ``summary`` to ``path`` and return it."""
        raise NotImplementedError(f"the {self.name} modality cannot draw its summaries")

    def render_suffix(self) -> str:
        """File suffix of :meth:`render`'s output."""
        return ".png"

    def export(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """Export ``summary`` in the modality's interchange format (JSON lines, CSV, ...)."""
        raise NotImplementedError(f"the {self.name} modality has no export format; use the artifact's "
                                  "tensors.safetensors directly")

    # -- applications -------------------------------------------------------------------------------------------
    def architecture_space(self, data: RealData) -> list[dict[str, Any]]:
        """The architecture-search space of :mod:`distill_core.applications.nas` for ``data``: one ``{"model":
        name, "model_kwargs": {...}}`` row per variant, built through :meth:`build_model`."""
        raise NotImplementedError(f"the {self.name} modality defines no architecture-search space "
                                  "(Modality.architecture_space)")
