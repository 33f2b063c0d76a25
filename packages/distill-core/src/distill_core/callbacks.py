"""The callback interface of the outer loop, below the loop itself so that methods can bring callbacks without
knowing the loop's implementation (:class:`~distill_core.distiller.Distiller` satisfies :class:`Loop`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from .data import RealData
    from .synset import Summary

__all__ = ["Callback", "Loop"]


class Loop(Protocol):
    """What a callback sees of the running outer loop."""

    method: Any
    data: RealData
    summary: Summary
    optimizer: torch.optim.Optimizer
    seed: int
    step: int
    losses: list[float]
    should_stop: bool

    @property
    def checkpoint_path(self) -> Path | None: ...

    def save_checkpoint(self, state: dict[str, Any] | None = None) -> None: ...


class Callback:
    """Hooks fired by the outer loop (``before_run`` / ``after_step`` / ``after_run``); ``step`` counts from 0.

    A callback with state (a kept candidate, a history) returns it from :meth:`state_dict`; it is checkpointed with
    the run and restored on resume and on a divergence rollback.
    """

    def before_run(self, distiller: Loop) -> None: ...

    def after_step(self, distiller: Loop, step: int, loss: float) -> None: ...

    def after_run(self, distiller: Loop) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint with the run (a resumed run continues with it); stateless callbacks return ``{}``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
