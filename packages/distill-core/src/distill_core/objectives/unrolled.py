"""Unrolled inner loops: the meta-gradient of DD (Wang et al. 2018, https://arxiv.org/abs/1811.10959) and of
text/graph variants.

:func:`unrolled_sgd` trains a model *functionally* (``torch.func.functional_call``) for ``steps`` plain SGD steps on
a (synthetic) set and returns the final parameters as a differentiable function of the set, its targets and the
inner learning rate(s). Truncated back-propagation through time (TBPTT) keeps only the last ``truncate`` steps on
the autograd graph (earlier steps run detached, without a graph), so memory grows with the truncation window, not
with ``steps``. ``checkpoint=True`` additionally recomputes each kept step during the backward pass
(``torch.utils.checkpoint``), trading compute for memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..errors import DataValidationError

__all__ = ["init_params", "unrolled_sgd"]

LossFn = Callable[[Tensor, Tensor], Tensor]


def init_params(model: nn.Module, *, reinit: bool = True, generator: torch.Generator | None = None,
                requires_grad: bool = True) -> dict[str, Tensor]:
    """Fresh initial parameters of ``model`` as a detached dict usable with :func:`unrolled_sgd`.

    Args:
        model: the architecture; with ``reinit`` every submodule's ``reset_parameters()`` is called first (under
            ``torch.random.fork_rng`` seeded from ``generator`` when given, so the global RNG is untouched).
        reinit: re-draw the parameters instead of copying the current ones.
        generator: seeds the re-draw.
        requires_grad: mark the returned tensors as requiring grad (the inner loop differentiates through them).

    Returns:
        ``{name: tensor}`` for every parameter (buffers are not included; pass them through ``model`` itself).
    """
    if reinit:
        seed = None if generator is None else int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            for module in model.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
    return {name: p.detach().clone().requires_grad_(requires_grad) for name, p in model.named_parameters()}


def _lr_at(lr: Tensor | float, step: int, steps: int) -> Tensor | float:
    if isinstance(lr, Tensor) and lr.dim() == 1:
        if len(lr) != steps:
            raise DataValidationError(f"a per-step learning rate needs {steps} values, got {len(lr)}")
        return lr[step]
    return lr


def unrolled_sgd(
    model: nn.Module,
    params: dict[str, Tensor],
    x: Tensor,
    targets: Tensor,
    *,
    steps: int,
    lr: Tensor | float,
    loss_fn: LossFn,
    batch_size: int | None = None,
    truncate: int | None = None,
    checkpoint: bool = False,
    generator: torch.Generator | None = None,
    schedule: Sequence[Tensor] | None = None,
) -> dict[str, Tensor]:
    """``steps`` functional SGD steps ``θ ← θ − lr_t ∇_θ loss_fn(model_θ(x_b), targets_b)`` from ``params``.

    Args:
        model: the architecture (its own parameters are not used or changed; buffers are).
        params: initial parameters ``{name: tensor}`` (e.g. from :func:`init_params`).
        x: inner training samples ``(n, ...)`` (usually the summary, requiring grad).
        targets: their targets ``(n, ...)`` as ``loss_fn`` expects them.
        steps: number of inner steps ``T``.
        lr: inner learning rate: a float, a 0-d tensor or a ``(T,)`` tensor with one rate per step (DD); tensors
            may require grad.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.
        batch_size: minibatch size per step (drawn with ``generator``, without replacement within a step);
            ``None``: the full set every step.
        truncate: back-propagate through the last ``truncate`` steps only (TBPTT); earlier steps are computed
            without a graph. ``None``: through all steps.
        checkpoint: recompute every kept step in the backward pass instead of storing its activations.
        generator: random minibatch draws.
        schedule: optional fixed minibatches, one index tensor per step (``len(schedule) == steps``), e.g. DD's
            cycling over groups of one image per class; overrides ``batch_size``.

    Returns:
        The final parameters ``{name: tensor}``, differentiable w.r.t. ``x``, ``targets``, ``lr`` (through the kept
        steps) and ``params`` (when nothing was truncated).

    Shapes:
        x: ``(n, *sample_shape)``; targets: ``(n, ...)``.
    """
    if steps < 0:
        raise DataValidationError(f"steps must be >= 0, got {steps}")
    if truncate is not None and truncate < 0:
        raise DataValidationError(f"truncate must be >= 0 or None, got {truncate}")
    if batch_size is not None and batch_size < 1:
        raise DataValidationError(f"batch_size must be >= 1 or None, got {batch_size}")
    if len(x) != len(targets):
        raise DataValidationError(f"x has {len(x)} samples but targets {len(targets)}")
    if schedule is not None and len(schedule) != steps:
        raise DataValidationError(f"schedule must hold one index tensor per step ({steps}), got {len(schedule)}")
    names = list(params)
    kept_from = 0 if truncate is None else max(0, steps - truncate)
    current = [params[k] for k in names]

    def step_fn(lr_t: Tensor | float, xb: Tensor, tb: Tensor, *theta: Tensor) -> tuple[Tensor, ...]:
        with torch.enable_grad():
            theta = tuple(p if p.requires_grad else p.detach().requires_grad_(True) for p in theta)
            loss = loss_fn(functional_call(model, dict(zip(names, theta)), (xb,)), tb)
            grads = torch.autograd.grad(loss, theta, create_graph=True, allow_unused=True)
        return tuple(p - lr_t * g if g is not None else p for p, g in zip(theta, grads))

    for t in range(steps):
        if schedule is not None:
            idx = schedule[t].to(x.device)
            xb, tb = x[idx], targets[idx]
        elif batch_size is None or batch_size >= len(x):
            xb, tb = x, targets
        else:
            idx = torch.randperm(len(x), generator=generator)[:batch_size].to(x.device)
            xb, tb = x[idx], targets[idx]
        lr_t = _lr_at(lr, t, steps)
        if t < kept_from:  # outside the TBPTT window: no graph
            lr_d = lr_t.detach() if isinstance(lr_t, Tensor) else lr_t
            theta = [p.detach().requires_grad_(True) for p in current]
            with torch.enable_grad():
                loss = loss_fn(functional_call(model, dict(zip(names, theta)), (xb.detach(),)), tb.detach())
                grads = torch.autograd.grad(loss, theta, allow_unused=True)
            current = [(p - lr_d * g if g is not None else p).detach() for p, g in zip(theta, grads)]
            continue
        if t == kept_from and kept_from > 0:
            current = [p.detach().requires_grad_(True) for p in current]
        if checkpoint:
            current = list(_checkpoint(step_fn, lr_t, xb, tb, *current, use_reentrant=False))
        else:
            current = list(step_fn(lr_t, xb, tb, *current))
    return dict(zip(names, current))
