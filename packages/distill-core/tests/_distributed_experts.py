"""What each rank of test_distributed's expert test runs (a module of its own so that spawned ranks import it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_core import experts
from distill_core.distributed import world
from distill_core.experts import ExpertProtocol, build_experts, open_store
from distill_core.registry import get_modality
from distill_core.testing import make_blobs

PROTOCOL = ExpertProtocol(model="mlp", lr=0.05, batch_size=16, seed=4)


def build(root: str, n: int = 3, epochs: int = 2) -> dict[str, Any]:
    """Open (or create) the store at ``root`` and build ``n`` experts of ``epochs`` epochs; report the experts
    this process trained (``mine``), what the store holds afterwards and the build's count of trained epochs."""
    data, modality = make_blobs(), get_modality("toy")
    store = open_store(Path(root), data=data, modality=modality, protocol=PROTOCOL)
    mine: list[int] = []
    train = experts.train_expert

    def spy(store: experts.ExpertStore, expert: int, **kwargs: Any) -> None:
        mine.append(expert)
        train(store, expert, **kwargs)

    experts.train_expert = spy  # type: ignore[assignment]
    try:
        report = build_experts(store, n=n, epochs=epochs, data=data, modality=modality, progress=False)
    finally:
        experts.train_expert = train
    return {"world": list(world()), "mine": mine, "held": [store.epochs_of(k) for k in range(n)],
            "trained": report["expert_epochs_trained"]}
