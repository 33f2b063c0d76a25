"""Parameterized summaries: what is stored is a set of parameters plus a decoder, and the samples every objective
sees are decoded from them (the survey's factorization family: IDC's multi-formation, LinBa's bases and addressing
coefficients, HaBa's hallucinators, generator latents).

A :class:`ParameterizedSummary` is a :class:`~distill_core.synset.Summary` whose ``x`` is not a parameter but the
decoded samples ``param.decode()``, differentiable in the stored parameters. Every method that reads
``summary.x``, ``summary.labels`` and ``summary.targets()`` therefore works with every parameterization unchanged;
the outer optimizer updates :meth:`~distill_core.synset.Summary.sample_parameters` (the stored tensors).

Budgets are counted in **stored floats** (every learned tensor of the summary's samples), so summaries of different
parameterizations are compared at equal storage: by default a parameterized run gets the floats of the requested
dense budget (IPC x classes x floats per sample), or ``budget_floats`` when given. The manifest records the floats
and bytes of each stored tensor, the decoded samples per class and the IPC-equivalent (stored floats / floats of
one real sample).

A modality package adds parameterizations with :func:`register_parameterization` (distill-vision: ``idc``,
``linba``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import RealData
from .errors import ArtifactError, DataValidationError, UnknownNameError
from .preprocessing import Preprocessing
from .synset import LabelKind, Summary, register_summary_type

__all__ = ["Parameterization", "ParameterizedSummary", "check_floats", "list_parameterizations", "parameterization",
           "register_parameterization", "upsample"]

_PARAMETERIZATIONS: dict[str, type[Parameterization]] = {}


def register_parameterization(cls: type[Parameterization]) -> type[Parameterization]:
    """Class decorator: make a :class:`Parameterization` available as ``--param NAME`` and loadable from artifacts."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    _PARAMETERIZATIONS[cls.name] = cls
    return cls


def list_parameterizations() -> list[str]:
    return ["dense", *sorted(_PARAMETERIZATIONS)]


def parameterization(name: str) -> type[Parameterization]:
    """The parameterization class registered as ``name``."""
    if name not in _PARAMETERIZATIONS:
        raise UnknownNameError("parameterization", name, list_parameterizations())
    return _PARAMETERIZATIONS[name]


class Parameterization(nn.Module):
    """Stored parameters and the decoder that turns them into samples.

    Subclasses set ``name``, keep their options in ``self.options`` and their layout (shapes, decoded samples per
    class) in ``self.layout`` (both JSON, stored in the manifest), and implement :meth:`plan`, :meth:`init_from`,
    :meth:`decode` and :meth:`decoded_labels`.

    Args:
        sample_shape: shape of one decoded sample.
        num_classes: number of classes.
        options: the parameterization's options (``param_options``), validated by :meth:`plan`.
        layout: what :meth:`plan` returned for this budget.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, sample_shape: tuple[int, ...], num_classes: int, options: dict[str, Any],
                 layout: dict[str, Any]) -> None:
        super().__init__()
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.num_classes = num_classes
        self.options = dict(options)
        self.layout = dict(layout)

    # -- to implement ---------------------------------------------------------------------------------------------
    @classmethod
    def plan(cls, *, sample_shape: tuple[int, ...], sizes: list[int], floats: int,
             options: dict[str, Any]) -> dict[str, Any]:
        """The layout that fits ``floats`` stored floats for a dense budget of ``sizes[c]`` samples per class.

        Raises:
            DataValidationError: an unknown option, or a budget too small for one decoded sample per class.
        """
        raise NotImplementedError

    def init_from(self, data: RealData, *, generator: torch.Generator, noise: bool) -> None:
        """Initialise the stored parameters from real training samples (or noise)."""
        raise NotImplementedError

    def decode(self) -> Tensor:
        """The decoded samples ``(n, *sample_shape)``, differentiable in the stored parameters."""
        raise NotImplementedError

    def decoded_labels(self) -> Tensor:
        """The class of each decoded sample ``(n,)``."""
        raise NotImplementedError

    def lr_scales(self) -> dict[str, float]:
        """Factors on ``lr_summary`` per stored parameter (default 1): a shared tensor that every decoded sample
        reads gets the gradients of all of them and needs a smaller step for the same change of a sample."""
        return {}

    def bases(self) -> Tensor | None:
        """Shared components to show beside the decoded samples (``(k, *sample_shape)``), if any."""
        return None

    def regularizer(self) -> Tensor | None:
        """An extra outer-loss term (0-d, differentiable in the stored parameters) that every objective's outer step
        adds to its loss (:meth:`StepContext.update <distill_core.method.StepContext.update>`), or ``None`` (the
        default: no term). Called once per summary update, after the objective's backward pass; it may train
        auxiliary state of its own (e.g. HaBa's adversarial feature extractor) before returning its term. Such state
        is not a stored tensor: keep it out of the module's parameters and buffers (it is not counted, not saved
        and not restored on resume)."""
        return None

    # -- shared ---------------------------------------------------------------------------------------------------
    @staticmethod
    def check_options(name: str, options: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
        """``known`` defaults updated by ``options``; unknown keys are refused with the valid ones."""
        for key in options:
            if key not in known:
                raise UnknownNameError(f"{name} option", key, known)
        return {**known, **options}

    @classmethod
    def check_positive_ints(cls, options: dict[str, Any], keys: Iterable[str]) -> None:
        """Refuse any ``options[key]`` that is not an integer >= 1 (booleans included), naming the option."""
        for key in keys:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DataValidationError(f"{cls.name} option {key!r} must be an integer >= 1, got {value!r}")

    @staticmethod
    def class_labels(per_class: Sequence[int]) -> Tensor:
        """The class of each stored row, ``(sum(per_class),)``: class ``c`` repeated ``per_class[c]`` times."""
        return torch.repeat_interleave(torch.arange(len(per_class)), torch.tensor(list(per_class), dtype=torch.long))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options, "layout": self.layout}

    @classmethod
    def create(cls, data: RealData, *, sizes: list[int], floats: int, options: dict[str, Any],
               generator: torch.Generator, noise: bool = False) -> Parameterization:
        layout = cls.plan(sample_shape=data.sample_shape, sizes=sizes, floats=floats, options=options)
        param = cls(sample_shape=data.sample_shape, num_classes=data.num_classes, options=options, layout=layout)
        param.init_from(data, generator=generator, noise=noise)
        return param


@register_summary_type
class ParameterizedSummary(Summary):
    """A summary whose samples are decoded from a :class:`Parameterization` (see the module docstring).

    Args:
        param: the parameterization holding the stored tensors.
        num_classes, label_kind, label_values, learn_lr, lr_init, preprocessing: as :class:`Summary`; labels are
            the decoded samples' classes.

    Shapes:
        ``x``: ``(n, *sample_shape)`` decoded; ``labels``: ``(n,)``.
    """

    summary_type: ClassVar[str] = "parameterized"

    def __init__(self, *, param: Parameterization, num_classes: int, label_kind: LabelKind = "hard",
                 label_values: Tensor | None = None, learn_lr: bool = False, lr_init: float = 0.01,
                 preprocessing: Preprocessing | None = None) -> None:
        labels = param.decoded_labels()
        nn.Module.__init__(self)
        self.param = param
        self._init_labels(n=len(labels), labels=labels, num_classes=num_classes, label_kind=label_kind,
                          label_values=label_values, learn_lr=learn_lr, lr_init=lr_init, preprocessing=preprocessing)

    @property  # type: ignore[override]
    def x(self) -> Tensor:
        return self.param.decode()

    def sample_parameters(self) -> list[nn.Parameter]:
        return list(self.param.parameters())

    def sample_parameter_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        scales = self.param.lr_scales()
        return [([p], float(scales.get(name, 1.0))) for name, p in self.param.named_parameters()]

    def regularizer(self) -> Tensor | None:
        """The parameterization's extra outer-loss term, if any (:meth:`Parameterization.regularizer`)."""
        return self.param.regularizer()

    def stored_tensors(self) -> dict[str, Tensor]:
        return {f"param.{k}": v for k, v in self.param.named_parameters()}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sample_shape": list(self.param.sample_shape),
                "parameterization": self.param.describe(), "storage": self.storage()}

    def tensors(self) -> dict[str, Tensor]:
        out = {k: v.detach().cpu().contiguous() for k, v in self.param.state_dict().items()}
        return {**{f"param.{k}": v for k, v in out.items()}, **self.label_tensors()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any],
                     preprocessing: Preprocessing) -> ParameterizedSummary:
        info = meta.get("parameterization") or {}
        try:
            param_cls = parameterization(str(info["name"]))
            shape = tuple(int(s) for s in meta["sample_shape"])
            param = param_cls(sample_shape=shape, num_classes=int(meta["num_classes"]),
                              options=dict(info.get("options") or {}), layout=dict(info.get("layout") or {}))
            state = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
            param.load_state_dict(state)
            summary = cls(param=param, num_classes=int(meta["num_classes"]), label_kind=meta.get("label_kind", "hard"),
                          label_values=tensors.get("label_values"), learn_lr="raw_lr" in tensors,
                          preprocessing=preprocessing)
        except KeyError as exc:
            raise ArtifactError(f"the parameterized summary lacks {exc}; it is incomplete, re-create it with "
                                "`distill run`") from exc
        except RuntimeError as exc:  # load_state_dict: shapes that do not fit the layout
            raise ArtifactError(f"the parameterized summary's tensors do not fit its layout ({exc})") from exc
        if "raw_lr" in tensors and summary.raw_lr is not None:
            summary.raw_lr.data.copy_(tensors["raw_lr"].reshape(()))
        if "labels" in tensors and not torch.equal(tensors["labels"].long(), summary.labels):
            raise ArtifactError("the stored labels differ from the labels the parameterization decodes")
        return summary


def upsample(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(n, C, h, w)`` images to ``size`` (the decoders' shared upsampling)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def check_floats(floats: int, need: int, what: str) -> None:
    if floats < need:
        raise DataValidationError(f"a budget of {floats} stored floats is too small for {what} ({need} floats "
                                  "needed); raise --budget-floats or --ipc, or choose smaller param_options")

