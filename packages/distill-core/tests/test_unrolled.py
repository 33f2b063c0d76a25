"""The unrolled inner loop: meta-gradients against finite differences (float64), TBPTT equal to an explicit
detach-then-unroll reference, checkpointing identical to plain back-propagation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.errors import DataValidationError
from distill_core.objectives import init_params, unrolled_sgd


def _problem(seed: int = 0) -> tuple[nn.Module, dict[str, Tensor], Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    params = init_params(model, generator=g)
    x_syn = torch.randn(4, 3, dtype=torch.float64, generator=g)
    y_syn = torch.tensor([0, 1, 0, 1])
    x_real = torch.randn(10, 3, dtype=torch.float64, generator=g)
    y_real = (x_real[:, 0] > 0).long()
    return model, params, x_syn, y_syn, x_real, y_real


def _outer(model: nn.Module, final: dict[str, Tensor], x_real: Tensor, y_real: Tensor) -> Tensor:
    return F.cross_entropy(torch.func.functional_call(model, final, (x_real,)), y_real)


@pytest.mark.parametrize("per_step_lr", [False, True])
def test_meta_gradient_matches_finite_differences(per_step_lr: bool) -> None:
    model, params, x_syn, y_syn, x_real, y_real = _problem()
    steps = 4
    lr0 = torch.full((steps,), 0.3, dtype=torch.float64) if per_step_lr else torch.tensor(0.3, dtype=torch.float64)

    def meta(x: Tensor, lr: Tensor) -> Tensor:
        final = unrolled_sgd(model, params, x, y_syn, steps=steps, lr=lr, loss_fn=F.cross_entropy)
        return _outer(model, final, x_real, y_real)

    assert torch.autograd.gradcheck(meta, (x_syn.clone().requires_grad_(True), lr0.clone().requires_grad_(True)))


def test_meta_gradient_wrt_soft_targets_and_initial_params() -> None:
    model, params, x_syn, _, x_real, y_real = _problem(1)
    soft = torch.randn(4, 2, dtype=torch.float64).softmax(-1)

    def inner_loss(out: Tensor, t: Tensor) -> Tensor:
        return -(t * out.log_softmax(-1)).sum(-1).mean()

    names = list(params)

    def meta(t: Tensor, *theta: Tensor) -> Tensor:
        final = unrolled_sgd(model, dict(zip(names, theta)), x_syn, t, steps=3, lr=0.5, loss_fn=inner_loss)
        return _outer(model, final, x_real, y_real)

    assert torch.autograd.gradcheck(meta, (soft.requires_grad_(True), *params.values()))


def _grads(truncate: int | None, checkpoint: bool = False, steps: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    model, params, x_syn, y_syn, x_real, y_real = _problem(2)
    x = x_syn.clone().requires_grad_(True)
    lr = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    final = unrolled_sgd(model, params, x, y_syn, steps=steps, lr=lr, loss_fn=F.cross_entropy, truncate=truncate,
                         checkpoint=checkpoint)
    loss = _outer(model, final, x_real, y_real)
    gx, glr = torch.autograd.grad(loss, (x, lr))
    return loss.detach(), gx, glr


def test_truncation_equals_detached_prefix_then_full_unroll() -> None:
    model, params, x_syn, y_syn, x_real, y_real = _problem(2)
    # reference: 3 steps on constants, then 2 differentiable steps from the detached parameters
    prefix = unrolled_sgd(model, params, x_syn, y_syn, steps=3, lr=0.4, loss_fn=F.cross_entropy)
    start = {k: v.detach() for k, v in prefix.items()}
    x = x_syn.clone().requires_grad_(True)
    lr = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    final = unrolled_sgd(model, start, x, y_syn, steps=2, lr=lr, loss_fn=F.cross_entropy)
    ref_loss = _outer(model, final, x_real, y_real)
    ref = torch.autograd.grad(ref_loss, (x, lr))
    loss, gx, glr = _grads(truncate=2)
    torch.testing.assert_close(loss, ref_loss.detach())
    torch.testing.assert_close(gx, ref[0])
    torch.testing.assert_close(glr, ref[1])
    # and the truncated gradient differs from the full one (the test can fail)
    _, gx_full, _ = _grads(truncate=None)
    assert not torch.allclose(gx, gx_full)
    _, gx_all, _ = _grads(truncate=5)
    torch.testing.assert_close(gx_all, gx_full)


@pytest.mark.parametrize("truncate", [None, 2])
def test_checkpointing_gives_identical_gradients(truncate: int | None) -> None:
    plain = _grads(truncate, checkpoint=False)
    ckpt = _grads(truncate, checkpoint=True)
    for a, b in zip(plain, ckpt):
        torch.testing.assert_close(a, b)


def test_minibatches_follow_the_generator() -> None:
    model, params, x_syn, y_syn, _, _ = _problem(3)

    def run(seed: int) -> Tensor:
        out = unrolled_sgd(model, params, x_syn, y_syn, steps=3, lr=0.1, loss_fn=F.cross_entropy, batch_size=2,
                           generator=torch.Generator().manual_seed(seed))
        return torch.cat([v.flatten() for v in out.values()])

    torch.testing.assert_close(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_fixed_schedule_equals_manual_steps() -> None:
    model, params, x_syn, y_syn, _, _ = _problem(4)
    groups = [torch.tensor([0, 1]), torch.tensor([2, 3])]
    out = unrolled_sgd(model, params, x_syn, y_syn, steps=3, lr=0.2, loss_fn=F.cross_entropy,
                       schedule=[groups[0], groups[1], groups[0]])
    manual = params
    for g in (groups[0], groups[1], groups[0]):
        manual = unrolled_sgd(model, manual, x_syn[g], y_syn[g], steps=1, lr=0.2, loss_fn=F.cross_entropy)
    for k in out:
        torch.testing.assert_close(out[k], manual[k])
    with pytest.raises(DataValidationError, match="schedule"):
        unrolled_sgd(model, params, x_syn, y_syn, steps=2, lr=0.2, loss_fn=F.cross_entropy, schedule=groups[:1])


def test_init_params_is_seeded_and_leaves_the_global_rng_alone() -> None:
    model = nn.Linear(3, 2)
    state = torch.random.get_rng_state()
    a = init_params(model, generator=torch.Generator().manual_seed(5))
    b = init_params(model, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) and a[k].requires_grad for k in a)


def test_bad_arguments() -> None:
    model, params, x_syn, y_syn, _, _ = _problem()
    with pytest.raises(DataValidationError, match="per-step"):
        unrolled_sgd(model, params, x_syn, y_syn, steps=3, lr=torch.ones(2), loss_fn=F.cross_entropy)
    with pytest.raises(DataValidationError, match="samples"):
        unrolled_sgd(model, params, x_syn, y_syn[:2], steps=1, lr=0.1, loss_fn=F.cross_entropy)
