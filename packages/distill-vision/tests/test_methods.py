"""Contract tests (save/load round trip, determinism, loss decreases, beats random on digits) for DC, DSA and DM,
plus the divergence guard and the DC/DSA/DM specifics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_core.artifact import load_artifact
from distill_core.checkpoint import CHECKPOINT, load_state, save_state
from distill_core.data import Budget
from distill_core.errors import DivergenceError
from distill_core.runner import distill
from distill_vision.methods.dc import loop_schedule
from distill_vision.testing import QUICK_OBJECTIVES, ConvNetDigitsContract

SMALL_NET = {"width": 32}


class TestDM(ConvNetDigitsContract):
    method = "dm"
    overrides = {"steps": 40, **QUICK_OBJECTIVES["dm"]}


class TestDC(ConvNetDigitsContract):
    method = "dc"


class TestDSA(ConvNetDigitsContract):
    method = "dsa"


def test_absurd_image_learning_rate_stops_cleanly(tmp_path: Path) -> None:
    with pytest.raises(DivergenceError, match="lr_summary"):
        distill("dm", dataset="digits", budget=Budget(ipc=1), out_dir=tmp_path / "run", progress=False,
                overrides={"steps": 20, "lr_summary": 1e12, "model_kwargs": SMALL_NET}, checkpoint_every=1)
    state = load_state(tmp_path / "run" / CHECKPOINT)
    assert torch.isfinite(state["summary"]["x"]).all()
    assert float(state["summary"]["x"].abs().max()) < 1e3


def test_dc_loop_schedule_follows_the_reference() -> None:
    assert loop_schedule(1) == (1, 1)
    assert loop_schedule(10) == (10, 50)
    assert loop_schedule(50) == (50, 10)
    assert loop_schedule(12) == (10, 50)


def test_dsa_resolves_the_strategy_by_dataset(tmp_path: Path) -> None:
    outcome = distill("dsa", dataset="digits", budget=Budget(ipc=1), out_dir=tmp_path / "a", progress=False,
                      evaluate=False, overrides={"steps": 1, "model_kwargs": SMALL_NET, "batch_real": 16})
    assert outcome.artifact.config["dsa_strategy"] == "color_crop_cutout_scale_rotate"  # no flip on digits
    assert load_artifact(tmp_path / "a").config["dsa_strategy"] == "color_crop_cutout_scale_rotate"


def test_resume_continues_to_the_same_summary(tmp_path: Path) -> None:
    cfg = {"steps": 6, "model_kwargs": SMALL_NET, "batch_real": 32}
    full = distill("dm", dataset="digits", budget=Budget(ipc=1), progress=False, evaluate=False, overrides=cfg)
    distill("dm", dataset="digits", budget=Budget(ipc=1), out_dir=tmp_path / "r", progress=False, evaluate=False,
            overrides={**cfg, "steps": 6}, checkpoint_every=3)
    # simulate an interruption after step 3: rewind the checkpoint by re-running 3 steps into a fresh dir
    part = tmp_path / "p"
    distill("dm", dataset="digits", budget=Budget(ipc=1), out_dir=part, progress=False, evaluate=False,
            overrides={**cfg, "steps": 3})
    state = load_state(part / CHECKPOINT)
    state["config"]["steps"] = 6
    save_state(part / CHECKPOINT, state)
    resumed = distill("dm", dataset="digits", budget=Budget(ipc=1), out_dir=part, resume=True, progress=False,
                      evaluate=False, overrides=cfg)
    assert resumed.run.resumed_from == 3
    assert torch.equal(resumed.artifact.summary.x, full.artifact.summary.x)


def test_dm_real_branch_builds_no_graph(digits) -> None:
    from distill_core.registry import get_method

    dm = get_method("dm")()
    dm.setup(None, digits, torch.device("cpu"))  # type: ignore[arg-type]
    from distill_vision.models import build_model

    net = build_model("convnet", sample_shape=(1, 8, 8), num_classes=10, width=8)
    emb = dm.real_mean_embedding(net, digits.x_train[:40], seed=3)
    assert not emb.requires_grad and emb.shape == (net.embed_dim,)
    with torch.no_grad():
        direct = net.embed(dm._augment(digits.x_train[:40], 3)).mean(0)
    assert torch.allclose(emb, direct, atol=1e-5)
