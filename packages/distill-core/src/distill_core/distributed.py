"""Running on several processes with ``torch.distributed`` (launched by ``torchrun``: gloo on CPUs, NCCL on GPUs).

Nothing here starts processes or talks to other machines by itself: ``torchrun`` sets ``RANK`` / ``WORLD_SIZE`` /
``MASTER_ADDR`` and :func:`init_from_env` joins that group. Without a process group every function is the
one-process identity, so single-process users pay nothing.

What is shared today:

- **Class-wise objectives** (methods with ``shards_classes``: DM, DC, DSA, text-DM, text-GM; not DM with a
  BatchNorm network, whose statistics span every class, nor DCC, whose loss mixes the classes, nor the graph
  methods, whose step is one GNN pass over the whole graph): each rank computes the loss of its classes
  (:meth:`~distill_core.method.StepContext.classes`, ``c mod W == rank``) with draws that do not depend on the
  process layout (DM: keyed by ``(seed, step, class)``; DC and the text methods: every rank draws every class's
  batch indices from the step's generator and gathers only its own,
  :meth:`~distill_core.method.StepContext.class_indices`), and :meth:`~distill_core.method.StepContext.update` sums the
  summary's gradient and the loss over the ranks before the step: the result equals the one-process run up to the
  order of float sums. What follows the step on the summary (DC's inner network training) is computed by every
  rank alike, from the same summary and the same generator.
- **Kernel blocks** (methods with ``shards_targets``: KIP, RFAD, Distill-CF): every rank draws the whole real
  target batch's indices (Distill-CF: the step's user batch), computes the kernel and the loss terms of its
  contiguous block of target rows (:meth:`~distill_core.method.StepContext.own_rows`, :func:`row_block`) against
  the whole support, whose kernel and solve every rank computes alike, and the gradients of every optimized tensor
  (RFAD's Platt scale included) and the loss are summed the same way. Distill-CF's λ, re-picked on validation, is a
  discrete choice every rank makes alike; where two λ score within float rounding of each other it may differ
  from the one-process run's choice.
- **Expert trajectories** (:func:`distill_core.experts.build_experts`): the missing experts are shared out (the
  i-th on rank ``i mod W``), each rank writes its own experts into the one store, and all ranks wait until the
  store is complete; experts are seeded by their index, so the files equal a one-process build.
- **Evaluation**: the protocol's N fresh models are spread over the ranks (model ``i`` on rank ``i mod W``); each
  model is seeded by its index, not by its rank, so the gathered accuracies equal the one-process list exactly.
- **Writes**: only rank 0 writes checkpoints, artifacts and pictures (:func:`is_writer`); before evaluating, every
  rank takes rank 0's summary (:func:`broadcast_tensors`). On ``--resume`` rank 0 reads the checkpoint and sends
  its state to every rank (:func:`broadcast_bytes`, in the checkpoint's own format), so all ranks continue from the
  same step with the same summary. A rank that dies mid-run leaves the last checkpoint and no artifact (the
  artifact is written after the loop); since no draw depends on the process layout, a resume may use another
  process count.

Other methods run their whole loop on every rank (the same computation; nothing is summed for them).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CommStats", "all_reduce_sum", "barrier", "broadcast_bytes", "broadcast_tensors", "comm_stats",
           "close_group", "gather_indexed", "init_from_env", "is_writer", "row_block", "shard", "shard_items", "world"]

logger = logging.getLogger(__name__)
_STARTED_HERE = False  # whether init_from_env created the group (close_group leaves other groups alone)


@dataclass
class CommStats:
    """What :func:`all_reduce_sum` has sent in this process: calls, bytes of the summed tensors (the payload, before
    the backend's ring or tree multiplies it) and wall seconds spent inside the collectives (waiting for the slower
    ranks included). Reset with :meth:`reset`; read by the distributed benchmark."""

    calls: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def reset(self) -> None:
        self.calls, self.bytes, self.seconds = 0, 0, 0.0


_STATS = CommStats()


def comm_stats() -> CommStats:
    """This process's :class:`CommStats` (counted only while a process group is active)."""
    return _STATS


def _group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _comm_device() -> torch.device:
    """Where a collective's own buffers live: NCCL only moves CUDA tensors, gloo CPU ones."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


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
    if backend == "nccl" and torch.device(device).index is None:  # one GPU per local rank: "cuda" is that one
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend)
    global _STARTED_HERE
    _STARTED_HERE = True
    rank, size = world()
    logger.info("process group: rank %d of %d (%s)", rank, size, backend)
    return True


def close_group(*, wait: bool = True) -> None:
    """Leave the process group :func:`init_from_env` joined, before the interpreter exits (a no-op without one; a
    group the caller started itself is left to the caller).

    A gloo group left alive at exit may abort the process (``terminate called without an active exception``) while
    its background threads are torn down, so commands close it explicitly. ``wait`` first waits for every rank, so
    no rank leaves while another still sends; pass ``False`` on an error path, where a peer may never arrive.
    """
    global _STARTED_HERE
    if not (_STARTED_HERE and _group_ready()):
        return
    _STARTED_HERE = False
    if wait and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def barrier() -> None:
    """Wait until every rank reaches this point (a no-op for one process)."""
    if _group_ready() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()


def shard(n: int) -> list[int]:
    """The indices among ``0..n-1`` this rank handles (``i mod W == rank``)."""
    return shard_items(range(n))


def shard_items(items: Iterable[int]) -> list[int]:
    """The items at this rank's positions (``position mod W == rank``)."""
    rank, size = world()
    return list(items)[rank::size]


def row_block(n: int) -> slice:
    """This rank's contiguous block of ``n`` rows (``[n·r/W, n·(r+1)/W)``; all of them for one process): the
    real-side rows of a kernel computation split over the ranks."""
    rank, size = world()
    return slice(n * rank // size, n * (rank + 1) // size)


def all_reduce_sum(value: float, tensors: Iterable[Tensor]) -> float:
    """Sum ``tensors`` (in place) and ``value`` over the ranks; returns the summed value (identity for one
    process)."""
    if not _group_ready():
        return value
    start = time.perf_counter()
    for tensor in tensors:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        _STATS.calls += 1
        _STATS.bytes += tensor.numel() * tensor.element_size()
    total = torch.tensor([value], dtype=torch.float64, device=_comm_device())
    torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    _STATS.calls += 1
    _STATS.bytes += 8
    _STATS.seconds += time.perf_counter() - start
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
    device = _comm_device()
    with torch.no_grad():
        for tensor in tensors:
            if tensor.device == device:
                torch.distributed.broadcast(tensor.data, src=src)
            else:  # NCCL sends CUDA tensors only: a CPU artifact goes through the GPU
                buffer = tensor.data.to(device)
                torch.distributed.broadcast(buffer, src=src)
                tensor.data.copy_(buffer)


def broadcast_bytes(data: bytes | None, src: int = 0) -> bytes:
    """Rank ``src``'s ``data`` on every rank (the others pass ``None``); for one process, ``data`` itself.

    Used for states in the checkpoint format (no pickling): the length goes first, then the bytes.
    """
    if not _group_ready():
        return data or b""
    device = _comm_device()
    mine = world()[0] == src
    length = torch.tensor([len(data or b"") if mine else 0], dtype=torch.int64, device=device)
    torch.distributed.broadcast(length, src=src)
    if mine:
        payload = torch.frombuffer(bytearray(data or b""), dtype=torch.uint8).to(device) if length.item() else \
            torch.empty(0, dtype=torch.uint8, device=device)
    else:
        payload = torch.empty(int(length.item()), dtype=torch.uint8, device=device)
    if int(length.item()):
        torch.distributed.broadcast(payload, src=src)
    return bytes(payload.cpu().numpy().tobytes())
