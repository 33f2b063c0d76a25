"""Running on several processes with ``torch.distributed`` (launched by ``torchrun``: gloo on CPUs, NCCL on GPUs).

Nothing here starts processes or talks to other machines by itself: ``torchrun`` sets ``RANK`` / ``WORLD_SIZE`` /
``MASTER_ADDR`` and :func:`init_from_env` joins that group. Without a process group every function is the
one-process identity, so single-process users pay nothing.

What is shared today:

- **Class-wise objectives** (methods with ``shards_classes``: DM): each rank computes the loss of its classes
  (:meth:`~distill_core.method.StepContext.classes`, ``c mod W == rank``) with draws keyed by ``(seed, step,
  class)``, and :meth:`~distill_core.method.StepContext.update` sums the summary's gradient and the loss over the
  ranks before the step: the result equals the one-process run up to the order of float sums.
- **Evaluation**: the protocol's N fresh models are spread over the ranks (model ``i`` on rank ``i mod W``); each
  model is seeded by its index, not by its rank, so the gathered accuracies equal the one-process list exactly.
- **Writes**: only rank 0 writes checkpoints, artifacts and pictures (:func:`is_writer`); before evaluating, every
  rank takes rank 0's summary (:func:`broadcast_tensors`).

Other methods run their whole loop on every rank (the same computation; nothing is summed for them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["all_reduce_sum", "broadcast_tensors", "gather_indexed", "init_from_env", "is_writer", "shard",
           "shard_items", "world"]

logger = logging.getLogger(__name__)


def _group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` without a process group."""
    if not _group_ready():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def is_writer() -> bool:
    """Whether this process writes files (rank 0, or the only process)."""
    return world()[0] == 0


def init_from_env(device: str | torch.device = "cpu") -> bool:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1): gloo for CPU runs,
    NCCL for CUDA ones. Returns whether a group is active; does nothing for a single process."""
    if _group_ready():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend)
    rank, size = world()
    logger.info("process group: rank %d of %d (%s)", rank, size, backend)
    return True


def shard(n: int) -> list[int]:
    """The indices among ``0..n-1`` this rank handles (``i mod W == rank``)."""
    return shard_items(range(n))


def shard_items(items: Iterable[int]) -> list[int]:
    """The items at this rank's positions (``position mod W == rank``)."""
    rank, size = world()
    return list(items)[rank::size]


def all_reduce_sum(value: float, tensors: Iterable[Tensor]) -> float:
    """Sum ``tensors`` (in place) and ``value`` over the ranks; returns the summed value (identity for one
    process)."""
    if not _group_ready():
        return value
    for tensor in tensors:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    total = torch.tensor([value], dtype=torch.float64)
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return float(total.item())


def gather_indexed(local: dict[int, float], n: int) -> list[float]:
    """Every rank's ``{index: value}`` pieces joined into the list ``[value_0, ..., value_{n-1}]`` on all ranks.

    Raises:
        RuntimeError: an index is missing or given twice (a rank skipped or repeated work).
    """
    if not _group_ready():
        pieces: list[dict[int, float]] = [local]
    else:
        pieces = [{} for _ in range(world()[1])]
        torch.distributed.all_gather_object(pieces, local)
    joined: dict[int, float] = {}
    for piece in pieces:
        for index, value in piece.items():
            if index in joined:
                raise RuntimeError(f"index {index} was computed by two ranks")
            joined[index] = value
    missing = sorted(set(range(n)) - set(joined))
    if missing:
        raise RuntimeError(f"indices {missing} were computed by no rank")
    return [joined[i] for i in range(n)]


def broadcast_tensors(tensors: Iterable[Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values (a no-op for one process)."""
    if not _group_ready():
        return
    with torch.no_grad():
        for tensor in tensors:
            torch.distributed.broadcast(tensor.data, src=src)
