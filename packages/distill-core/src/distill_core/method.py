"""The method interface: a method supplies its summary initialisation and its outer loss; the loop is shared.

A method module reads like its paper's algorithm box::

    @register_method("dm")
    class DM(Method[DMConfig]):
        modality = "vision"
        config_class = DMConfig

        def outer_loss(self, summary, ctx):
            ...
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import torch
from torch import Tensor

from .coreset import initial_indices
from .data import Budget, ClassIndex, RealData
from .distributed import all_reduce_sum, row_block, shard_items, world
from .errors import DataValidationError, DistillError, UnknownNameError
from .parameterized import ParameterizedSummary
from .protocol import EvalProtocol
from .synset import Summary

if TYPE_CHECKING:
    from .callbacks import Callback
    from .modality import Modality

__all__ = ["DEFAULT_RANGES", "Method", "MethodConfig", "Range", "StepContext", "config_from_dict", "field_range"]


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric option: ``low``/``high`` bounds (``None``: unbounded), each inclusive unless
    ``low_open``/``high_open``. Declared with a config field as ``metadata={"range": Range(...)}``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts) or "finite"


_FINITE = Range()
_COUNT = Range(1)  # a size or a number of things: at least one
_NONNEG = Range(0)  # 0 switches the option off or means "the method's default", as its help says
_POSITIVE = Range(0, low_open=True)
_FRACTION = Range(0, 1)

#: Ranges of the options that many methods share, by name. A field's own ``metadata["range"]`` takes precedence;
#: every other number must be finite. One table, so a new method's ``batch_real`` or ``lr_net`` is checked too.
DEFAULT_RANGES: dict[str, Range] = {
    "steps": _NONNEG, "init_seed": _NONNEG, "depth": _NONNEG,
    "lr_summary": _POSITIVE, "lr_init": _POSITIVE, "lr_model": _POSITIVE, "lr_net": _POSITIVE,
    "lr_platt": _POSITIVE, "lr_labels": _NONNEG, "lr_lr": _NONNEG, "lr_adj": _NONNEG, "sparse_refine_lr": _NONNEG,
    "momentum": Range(0, 1, high_open=True), "betas": Range(0, 1, high_open=True),
    "divergence_factor": Range(1, low_open=True),
    **dict.fromkeys((
        "batch_real", "batch_train", "n_batches", "n_models", "num_models", "nlayers", "conv_depth", "width",
        "hidden", "embedding_dim", "rf_width", "rf_models", "generator_hidden", "generator_layers", "distill_epochs",
        "structure_epochs", "structure_period", "outer", "inner_steps", "block_size", "block_pairs", "candidates",
        "candidates_per_class", "target_batch", "online_batch", "max_online_updates", "user_chunk", "real_chunk",
        "gumbel_chunk", "num_per_user", "n_inits"), _COUNT),
    **dict.fromkeys((
        "inner", "inner_batch", "outer_loop", "inner_loop", "truncate", "keep_every", "validate_every", "log_freq",
        "gumbel_draws", "sparse_refine_steps", "validate_dense_until", "reg", "b_var", "cardinality_reg",
        "sparsity_weight"), _NONNEG),
    "batch_users": Range(-1), "sparse_k": Range(-1),
    **dict.fromkeys(("w_var", "gumbel_tau", "temperature", "reg_grid"), _POSITIVE),
    "threshold": _FRACTION, "target_density": Range(0, 1, low_open=True),
}


def field_range(f: dataclasses.Field[Any]) -> Range:
    """The declared range of a config field: its ``metadata["range"]``, else :data:`DEFAULT_RANGES`, else finite."""
    declared = f.metadata.get("range")
    return declared if isinstance(declared, Range) else DEFAULT_RANGES.get(f.name, _FINITE)


@dataclass
class MethodConfig:
    """Options every method shares. Subclasses add their paper's hyper-parameters with the paper's defaults.

    A subclass changes the default of an option it inherits by naming it in :attr:`defaults` (the option keeps the
    type, help and range of its declaration); it re-declares the option only where its help must say something
    else. Example::

        @dataclass
        class MyConfig(MethodConfig):
            defaults = {"steps": 200, "optimizer": "adam", "lr_summary": 0.01}
            width: int = field(default=128, metadata={"help": "channels of the network"})
    """

    #: inherited options whose default this class changes, ``{name: default}`` (a class attribute, not an option)
    defaults: ClassVar[dict[str, Any]] = {}

    steps: int = field(default=1000, metadata={"help": "outer iterations", "range": _NONNEG})
    lr_summary: float = field(default=0.1, metadata={"help": "learning rate of the synthetic samples"})
    optimizer: Literal["sgd", "adam"] = field(default="sgd", metadata={"help": "optimizer over the summary"})
    momentum: float = field(default=0.5, metadata={"help": "SGD momentum of the summary optimizer"})
    init: Literal["real", "noise", "herding", "kcenter"] = field(default="real", metadata={
        "help": "initialise from random real samples, noise, or the samples the herding / k-center coreset picks "
                "(distillation then starts from the best coreset instead of a random subset)"})
    label_kind: Literal["hard", "soft", "regression"] = field(default="hard", metadata={"help": "label type"})
    lr_labels: float = field(default=0.0, metadata={"help": "learning rate of learnable labels (0: lr_summary)"})
    learn_lr: bool = field(default=False, metadata={"help": "learn a (positive) inner learning rate"})
    lr_init: float = field(default=0.01, metadata={"help": "initial inner learning rate"})
    lr_lr: float = field(default=1e-3, metadata={"help": "learning rate of the learned inner learning rate"})
    divergence_factor: float = field(default=1e3, metadata={
        "help": "stop when |summary| exceeds this factor times its initial scale"})
    param: str | None = field(default=None, metadata={
        "help": "parameterization of the summary's samples ('dense'/None: free samples; e.g. 'idc', 'linba')"})
    param_options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "options of the parameterization, e.g. {\"factor\": 2} for idc"})
    budget_floats: int | None = field(default=None, metadata={
        "help": "stored floats of a parameterized summary (None: the floats of the requested dense budget)",
        "range": Range(1)})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _apply_defaults(cls)


C = TypeVar("C", bound=MethodConfig)


def _apply_defaults(cls: type[MethodConfig]) -> None:
    """Turn ``cls.defaults`` into re-declared dataclass fields (same type and metadata, new default) before
    ``@dataclass`` processes ``cls``; an option that no base declares, or that ``cls`` also declares, is refused."""
    changed = cls.__dict__.get("defaults")
    if not changed:
        return
    own: dict[str, Any] = dict(inspect.get_annotations(cls))
    inherited: dict[str, dataclasses.Field[Any]] = {}  # every base's fields, in the order @dataclass collects them
    hints: dict[str, Any] = {}  # resolved in each declaring class's module (the declared text may not resolve here)
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            inherited.update({f.name: f for f in dataclasses.fields(base)})
            try:
                hints.update(typing.get_type_hints(base))
            except Exception:  # pragma: no cover - an annotation that cannot be resolved: keep the declared text
                pass
    for name, value in changed.items():
        if name in own:
            raise TypeError(f"{cls.__name__} both declares option {name!r} and changes its default in `defaults`; "
                            "keep one")
        if name not in inherited:
            raise TypeError(f"{cls.__name__}.defaults names {name!r}, which no base config declares; declare it "
                            f"as a field (inherited options: {', '.join(sorted(inherited))})")
        declared = inherited[name]
        if isinstance(value, (dict, list, set)):
            setattr(cls, name, field(default_factory=functools.partial(copy.deepcopy, value),
                                     metadata=declared.metadata))
        else:
            setattr(cls, name, field(default=value, metadata=declared.metadata))
        own[name] = hints.get(name, declared.type)
    cls.__annotations__ = own


def _checked_option(owner: str, name: str, value: Any, hint: Any) -> Any:
    """``value`` if it fits the annotation ``hint`` (ints widened to float, lists to tuples), else a clear error.
    Annotations this does not understand are accepted as they are."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise UnknownNameError(f"{owner} option {name!r} value", str(value), [str(a) for a in args])
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _checked_option(owner, name, value, arg)
                except DistillError:
                    continue
    elif hint is bool and isinstance(value, bool):
        return value
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif hint is str and isinstance(value, str):
        return value
    elif origin in (list, tuple) and isinstance(value, (list, tuple)):
        return tuple(value) if origin is tuple else list(value)
    elif hint not in (bool, int, float, str) and origin not in (list, tuple):
        return value
    expected = getattr(hint, "__name__", None) or str(hint)
    raise DataValidationError(f"{owner} option {name!r} expects {expected}, got {value!r} ({type(value).__name__}); "
                              f"pass a JSON value of that type, e.g. --set {name}=...")


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build a config, refusing unknown keys with the list of valid ones, values of the wrong type (a ``Literal``
    option outside its choices, text for a number, a boolean for a number, ...) with the expected type, and numbers
    outside their field's :class:`Range` (:func:`field_range`) -- all before any compute."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise UnknownNameError(f"{cls.__name__} option", key, fields)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved at run time: nothing to check against
        hints = {}
    checked = dict(values)
    for key, value in values.items():
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        try:  # ``True == 1.0``: a boolean is never taken for a numeric default
            is_default = type(value) is type(default) and bool(value == default)
        except Exception:
            is_default = False
        if key in hints and not is_default:  # defaults are the method author's business
            checked[key] = _checked_option(cls.__name__, key, value, hints[key])
        _check_range(cls.__name__, f, checked[key])
    return cls(**checked)


def _check_range(owner: str, f: dataclasses.Field[Any], value: Any) -> None:
    numbers = list(value) if isinstance(value, (list, tuple)) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return
    allowed = field_range(f)
    bad = [v for v in numbers if not allowed.contains(float(v))]
    if bad:
        help_text = f.metadata.get("help")
        raise DataValidationError(f"{owner} option {f.name!r} must be {allowed.describe()}, got {value!r}"
                                  + (f" ({help_text})" if help_text else "") + f"; pass e.g. --set {f.name}=...")


@dataclass
class StepContext:
    """What one outer step of a method sees. Randomness is derived from ``(seed, step)`` only, which makes resumed
    runs identical to uninterrupted ones."""

    step: int
    seed: int
    data: RealData
    class_index: ClassIndex
    modality: Modality
    device: torch.device
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    summary: Summary
    method: Method[Any]
    losses: list[float] = field(default_factory=list)

    def sample_real(self, c: int, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` real training samples of class ``c`` (fewer if the class is smaller), on the device, drawn with
        ``generator`` (default: the step's)."""
        idx = self.class_index.sample(c, n, generator=generator or self.generator)
        return self.data.x_train[idx].to(self.device, non_blocking=True)

    def classes(self) -> list[int]:
        """The classes this process computes the loss of: all of them, or, under ``torch.distributed`` for a method
        with ``shards_classes``, its share (``c mod W == rank``); the summary's gradient is then summed over the
        ranks in :meth:`update`."""
        if not self.method.shards_classes:
            return list(range(self.data.num_classes))
        return shard_items(range(self.data.num_classes))

    def own_rows(self, idx: Tensor) -> Tensor:
        """This process's contiguous block of a drawn target batch's indices ``idx`` (``(n,)``): all of them, or,
        under ``torch.distributed`` for a method with ``shards_targets``, the block
        :func:`~distill_core.distributed.row_block` gives it. Every rank draws the whole ``idx`` first (the same
        generator use as one process); the method normalises its share of the loss by ``len(idx)``, so the ranks'
        shares sum to the one-process loss."""
        if not self.method.shards_targets:
            return idx
        return idx[row_block(len(idx))]

    def class_indices(self, n: int) -> dict[int, Tensor]:
        """Real batch indices (``n`` per class, fewer for a smaller class) of the classes this process computes
        (:meth:`classes`): ``c -> (n_c,)``. Every class is drawn, in class order, from the step's generator whatever
        the share, so the draws (and the generator's state afterwards) are those of one process visiting the
        classes in order with :meth:`sample_real`."""
        mine = set(self.classes())
        drawn = {c: self.class_index.sample(c, n, generator=self.generator) for c in range(self.data.num_classes)}
        return {c: idx for c, idx in drawn.items() if c in mine}

    def class_generator(self, c: int) -> torch.Generator:
        """A generator keyed by ``(seed, step, class)`` alone, so that a class's draws do not depend on which
        process handles it or on the other classes (what sharding classes over processes needs)."""
        return torch.Generator().manual_seed(((self.seed * 1_000_003 + self.step) * 10_007 + c) % (2**63 - 1))

    def sample_real_balanced(self, n_per_class: int) -> tuple[Tensor, Tensor]:
        idx = self.class_index.sample_balanced(n_per_class, generator=self.generator)
        return self.data.x_train[idx].to(self.device), self.data.y_train[idx].to(self.device)

    def fresh_model(self, name: str, **kwargs: Any) -> torch.nn.Module:
        """A newly initialised model (seeded by the step) of the modality's architecture ``name``."""
        return self.modality.build_model(name, sample_shape=self.data.sample_shape,
                                         num_classes=self.data.num_classes, **kwargs).to(self.device)

    def new_seed(self) -> int:
        """A seed drawn from the step's generator (e.g. one augmentation draw shared by real and synthetic)."""
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))

    def sample_uniform(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` training samples drawn uniformly with replacement (not class-balanced) and their labels, on the
        device: the real targets of the kernel and unrolled methods (KIP, RFAD, FRePO, DD). For a method with
        ``shards_targets`` under ``torch.distributed``, this process's block of the ``n`` drawn rows
        (:meth:`own_rows`)."""
        idx = self.own_rows(torch.randint(0, len(self.data.y_train), (n,), generator=self.generator))
        return self.data.x_train[idx].to(self.device), self.data.y_train[idx].to(self.device)

    def update(self, loss: Tensor | float, *, backward: Callable[[], None] | None = None) -> float:
        """One optimizer step on the summary from ``loss``; raises ``FloatingPointError`` on non-finite values.

        Args:
            loss: the outer loss (a 0-d tensor), or its value when ``backward`` computes the gradients.
            backward: fills the summary parameters' ``.grad`` itself (called after ``zero_grad``), for methods whose
                gradient is not one ``loss.backward()``, e.g. Distill-CF's chunked vector-Jacobian products.

        A parameterized summary's :meth:`~distill_core.parameterized.Parameterization.regularizer` term, when it has
        one, is added to the gradient; the recorded loss is the objective's alone.
        """
        value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
        size = world()[1] if self.method.shards_classes or self.method.shards_targets else 1
        if not math.isfinite(value) and size == 1:  # sharded: checked on the sum, so that every rank stops alike
            raise FloatingPointError(f"the outer loss is {value}")
        self.optimizer.zero_grad(set_to_none=True)
        if backward is not None:
            backward()
        elif isinstance(loss, Tensor):
            loss.backward()
        else:
            raise TypeError("update() needs a loss tensor, or a backward function with a float loss")
        if size > 1:  # each rank holds the gradient of its share of the loss: the sum is the whole loss's gradient
            value = all_reduce_sum(value, self._shared_grads())
            if not math.isfinite(value):
                raise FloatingPointError(f"the outer loss is {value}")
        extra = self.summary.regularizer() if isinstance(self.summary, ParameterizedSummary) else None
        if extra is not None:
            extra.backward()
        for name, p in self.summary.named_parameters():
            if p.grad is not None and not torch.isfinite(p.grad).all():
                raise FloatingPointError(f"the gradient of summary parameter {name!r} is not finite")
        self.optimizer.step()
        self.losses.append(value)
        return value

    def _shared_grads(self) -> list[Tensor]:
        """The gradients every rank sums: of every parameter the optimizer steps (the summary's and a method's own,
        such as RFAD's Platt scale), in the optimizer's order, which is the same on every rank. A parameter that
        this rank's share of the loss did not reach gets a zero gradient, so that all ranks send the same list."""
        grads = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                grads.append(p.grad)
        return grads


class Method(Generic[C]):
    """Base class of a distillation method.

    Subclasses set ``modality`` and implement :meth:`outer_loss`; methods with inner loops override
    :meth:`run_step`. ``config_class`` is the config named in the base, ``class DM(Method[DMConfig])``, unless the
    subclass sets it; ``name`` is its entry-point name (group ``distill.methods``) or the one
    :func:`~distill_core.registry.register_method` gives.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str | None] = None
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    paper: ClassVar[str] = ""
    #: the loss is a sum over classes computed for :meth:`StepContext.classes` only (sharded under torch.distributed)
    shards_classes: ClassVar[bool] = False
    #: the loss is a sum over real target rows computed for this process's block of them only
    #: (:meth:`StepContext.own_rows`; the kernel blocks of KIP, RFAD and Distill-CF), summed over the ranks like the
    #: above
    shards_targets: ClassVar[bool] = False
    #: the fewest classes the method's loss can learn from (2 for gradient matching: the cross-entropy of a network
    #: with one output is constant, so its gradients are zero)
    min_classes: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_class" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            args = typing.get_args(base)
            if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], MethodConfig):
                cls.config_class = args[0]
                return

    def __init__(self, *, config: C | None = None) -> None:
        self.config: C = config if config is not None else self.config_class()  # type: ignore[assignment]

    # -- summary ------------------------------------------------------------------------------------------------
    def init_summary(self, data: RealData, *, budget: Budget, modality: Modality,
                     generator: torch.Generator) -> Summary:
        """Initial summary: ``budget.per_class(data)`` real samples per class (random, or the herding / k-center
        coreset's with ``init="herding"`` / ``"kcenter"``), or Gaussian noise."""
        sizes = budget.per_class(data)
        chosen = initial_indices(self.config.init, data, sizes, modality=modality, generator=generator)
        return self.make_summary(data, chosen, sizes=sizes, modality=modality, generator=generator)

    def make_summary(self, data: RealData, indices: Tensor, *, sizes: list[int], modality: Modality,
                     generator: torch.Generator, label_kind: str | None = None) -> Summary:
        """The initial summary: the real samples at ``indices`` (noise when ``init="noise"``), or, with ``param``
        set, a :class:`~distill_core.parameterized.ParameterizedSummary` of ``budget_floats`` stored floats (default:
        the floats of ``sizes``) that initialises itself from real samples."""
        cfg = self.config
        kind = label_kind or cfg.label_kind
        if cfg.param in (None, "dense"):
            if cfg.budget_floats is not None:
                raise DataValidationError("budget_floats sizes parameterized summaries; a dense summary is sized by "
                                          "--ipc / --budget / --ratio (or pass --param)")
            summary = modality.subset_summary(data, indices, label_kind=kind, learn_lr=cfg.learn_lr,
                                              lr_init=cfg.lr_init)
            if cfg.init == "noise":
                summary.x.data.normal_(generator=generator)
            return summary
        from .parameterized import parameterization

        cls = parameterization(cfg.param)
        floats = cfg.budget_floats or sum(sizes) * math.prod(data.sample_shape)
        param = cls.create(data, sizes=sizes, floats=floats, options=cfg.param_options, generator=generator,
                           noise=cfg.init == "noise")
        return ParameterizedSummary(param=param, num_classes=data.num_classes, label_kind=kind,  # type: ignore[arg-type]
                                    learn_lr=cfg.learn_lr, lr_init=cfg.lr_init, preprocessing=data.preprocessing)

    def param_groups(self, summary: Summary) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [{"params": params, "lr": self.config.lr_summary * scale}
                                        for params, scale in summary.sample_parameter_groups()]
        if summary.label_values is not None:
            groups.append({"params": [summary.label_values], "lr": self.config.lr_labels or self.config.lr_summary})
        if summary.raw_lr is not None:
            groups.append({"params": [summary.raw_lr], "lr": self.config.lr_lr})
        return groups

    def make_optimizer(self, summary: Summary) -> torch.optim.Optimizer:
        groups = self.param_groups(summary)
        if self.config.optimizer == "adam":
            return torch.optim.Adam(groups)
        if self.config.optimizer == "sgd":
            return torch.optim.SGD(groups, momentum=self.config.momentum)
        raise UnknownNameError("optimizer", self.config.optimizer, ["sgd", "adam"])

    def prepare(self, data: RealData, *, modality: Modality, device: torch.device, progress: bool = True) -> None:
        """Called once by the runner before :meth:`init_summary`, on fresh and resumed runs alike: build what the
        method needs from the real data outside the loop (trajectory matching's expert store). Default: nothing."""

    def eval_protocol(self, protocol: EvalProtocol, summary: Summary) -> EvalProtocol:
        """The modality's default evaluation protocol as this method's summaries must be evaluated (e.g. with the
        learned learning rate and the distillation's augmentation); user overrides apply after it. Default: as is."""
        return protocol

    # -- the step -----------------------------------------------------------------------------------------------
    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:
        """Called once before the loop (precompute what does not change across steps)."""

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """The outer loss of one step, differentiable in the summary's parameters.

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement outer_loss or run_step")

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        """One outer iteration; the default is one optimizer step on :meth:`outer_loss`."""
        return ctx.update(self.outer_loss(summary, ctx))

    def callbacks(self, data: RealData, device: torch.device) -> list[Callback]:
        """Callbacks the method brings to its own run (e.g. a :class:`~distill_core.selection.ModelSelection` that
        keeps the best candidate by validation). Their state is checkpointed with the run's."""
        return []

    def finalize(self, summary: Any, data: RealData) -> Summary:
        """The summary to save, from the final summary or the candidate a model selection kept (the default returns
        it unchanged; Distill-CF turns its kept sample into a sparse summary)."""
        return summary

    def extra_metadata(self) -> dict[str, Any]:
        """Method-specific facts for the manifest's ``extra``, asked after :meth:`finalize` (default: none)."""
        return {}

    def extra_evaluations(self) -> dict[str, tuple[Summary, Any]]:
        """Other summaries of the run that the runner evaluates after the saved one, when it evaluates, each stored
        as ``extra[key]``: ``key -> (summary, protocol)``, a ``None`` protocol meaning the run's (default: none)."""
        return {}

    # -- extra state (e.g. a model pool) ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise DataValidationError(f"{type(self).__name__} has no state to restore, got keys {sorted(state)}")
