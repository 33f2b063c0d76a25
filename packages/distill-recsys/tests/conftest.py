from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
torch.set_num_threads(1)


def block_interactions(n_users: int = 48, n_items: int = 36, groups: int = 3, p_in: float = 0.5,
                       p_out: float = 0.03, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Users in ``groups`` taste clusters that mostly consume their cluster's items (seeded)."""
    rng = np.random.default_rng(seed)
    ug = np.arange(n_users) % groups
    ig = np.arange(n_items) % groups
    prob = np.where(ug[:, None] == ig[None, :], p_in, p_out)
    mask = rng.random((n_users, n_items)) < prob
    mask[np.arange(n_users), (np.arange(n_users) % groups)] = True  # every user has >= 1 in-cluster item
    for u in range(n_users):  # at least 4 interactions per user so the split keeps everyone
        while mask[u].sum() < 4:
            mask[u, rng.integers(n_items)] = True
    users, items = np.nonzero(mask)
    return users, items


@pytest.fixture
def tiny_csv(tmp_path):
    users, items = block_interactions()
    path = tmp_path / "inter.csv"
    lines = ["user,item,rating"] + [f"u{u},i{i},{1 + (u + i) % 5}" for u, i in zip(users, items)]
    path.write_text("\n".join(lines) + "\n")
    return path
