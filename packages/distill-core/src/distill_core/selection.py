"""Model selection on a held-out split: validate the summary at chosen steps and keep the best candidate.

Any method can use it (Distill-CF keeps its best Gumbel sample by validation nDCG@10 or HR@100 this way): the
method returns a :class:`ModelSelection` from :meth:`~distill_core.method.Method.callbacks`, the outer loop
checkpoints its state with the run's (so a resumed run keeps the same candidate), and the runner saves the kept
candidate (through :meth:`~distill_core.method.Method.finalize`) and records the rule, the metric, the kept step
and every validation in the manifest. Selection never looks at the test split.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .callbacks import Callback, Loop

if TYPE_CHECKING:
    from .synset import Summary

__all__ = ["TIES", "ModelSelection"]

#: how :class:`ModelSelection` breaks a tie between equally scored candidates
TIES = ("earlier", "later")


def _summary_state(distiller: Loop) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in distiller.summary.state_dict().items()}


class ModelSelection(Callback):
    """Validate at the steps ``due`` says and keep the candidate with the best ``metric``.

    Args:
        validate: ``(distiller, step) -> scores`` on the validation split (``step`` counts completed steps).
        metric: the score that decides (higher is better unless ``higher_is_better=False``).
        due: ``step -> bool`` (completed steps), or an int ``k`` for every ``k`` steps; the last step always is.
        candidate: ``distiller -> what to keep`` (default: a copy of the summary's tensors); it must be made of
            tensors, numbers, strings, lists and dicts, since it is checkpointed.
        initial: an optional validation before the first step, recorded but not a candidate (Distill-CF picks its
            first ridge on the initial rows this way).
        rule: how the manifest describes the selection.
        start_is_candidate: also validate the summary before the first step as a candidate (so the kept summary
            never validates worse than the starting one, e.g. real samples).
        ties: which of two equally scored candidates is kept: ``"earlier"`` (default) or ``"later"`` (the method's
            further-trained summary, unless an earlier one validates strictly better; for a saturated validation
            split, where every candidate scores the same).
    """

    def __init__(
        self,
        *,
        validate: Callable[[Loop, int], Mapping[str, float]],
        metric: str,
        due: Callable[[int], bool] | int,
        candidate: Callable[[Loop], Any] | None = None,
        initial: Callable[[Loop], Mapping[str, Any]] | None = None,
        rule: str = "",
        higher_is_better: bool = True,
        start_is_candidate: bool = False,
        ties: str = "earlier",
    ) -> None:
        if ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
        self.validate = validate
        self.metric = metric
        self.due = due if callable(due) else (lambda step, k=int(due): k > 0 and step % k == 0)
        self.candidate = candidate or _summary_state
        self.initial = initial
        self.rule = rule or f"best validation {metric}"
        self.sign = 1.0 if higher_is_better else -1.0
        self.start_is_candidate = start_is_candidate
        self.ties = ties
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.kept: Any = None
        self._total = 0

    # -- hooks --------------------------------------------------------------------------------------------------
    def before_run(self, distiller: Loop) -> None:
        self._total = distiller.method.config.steps
        if self.initial is not None and not self.history:
            self.history.append({"step": distiller.step, "candidate": False, **self.initial(distiller)})
        if self.start_is_candidate and distiller.step == 0 and not self.best:  # not again when resumed
            self.consider(distiller, 0)

    def after_step(self, distiller: Loop, step: int, loss: float) -> None:
        done = step + 1
        if self.due(done) or done == self._total:
            self.consider(distiller, done)

    def after_run(self, distiller: Loop) -> None:
        if self.kept is None:  # no step was validated (e.g. zero steps): the final state is the only candidate
            self.consider(distiller, distiller.step)

    def consider(self, distiller: Loop, step: int) -> bool:
        """Validate now; keep the candidate when it beats the best so far (or ties it, with ``ties="later"``).
        Returns whether it was kept."""
        scores = dict(self.validate(distiller, step))
        if self.metric not in scores:
            raise KeyError(f"the validation returned {sorted(scores)}, not the selection metric {self.metric!r}")
        self.history.append({"step": step, **scores})
        new, old = self.sign * scores[self.metric], self.sign * self.best.get("score", 0.0)
        better = not self.best or new > old or (self.ties == "later" and new == old)
        if better:
            self.best = {"step": step, "score": float(scores[self.metric])}
            self.kept = self.candidate(distiller)
        return better

    # -- results ------------------------------------------------------------------------------------------------
    def chosen(self, summary: Summary) -> Any:
        """The kept candidate: with the default candidate, ``summary`` with the kept tensors loaded."""
        if self.kept is None:
            return summary
        if self.candidate is _summary_state:
            summary.load_state_dict(self.kept)
            return summary
        return self.kept

    def describe(self) -> dict[str, Any]:
        """What the manifest records: the rule, the metric, the kept step and score, and every validation."""
        return {"selection": self.rule, "selection_metric": self.metric, "kept_step": self.best.get("step"),
                "kept_score": self.best.get("score"), "val_history": copy.deepcopy(self.history)}

    # -- checkpoint ---------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": copy.deepcopy(self.history), "best": dict(self.best), "kept": copy.deepcopy(self.kept)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
        self.best = dict(state.get("best", {}))
        self.kept = state.get("kept")
