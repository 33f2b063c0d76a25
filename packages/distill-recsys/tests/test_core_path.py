"""Recommender runs take distill-core's one path: Distill-CF passes the core's MethodContract, its model selection is
the core's ModelSelection (checkpointed, so a resumed run keeps the same sample), and the run's evaluation options
mean what they meant for recommender data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill_core.data import Budget
from distill_core.errors import DataValidationError
from distill_core.evaluation import EvalProtocol
from distill_core.modality import Modality
from distill_core.registry import get_modality
from distill_core.runner import build_method, distill
from distill_core.selection import ModelSelection
from distill_core.testing import ArtifactContract, InterruptAt, MethodContract
from distill_recsys.data import build_interaction_data
from distill_recsys.evaluation import RecsysProtocol

from .conftest import block_interactions

# as test_distill_cf.FAST, with the saved form the default (the dense sample)
FAST = {"steps": 24, "num_per_user": 5, "validate_every": 6, "lr_summary": 0.1, "select_metric": "nDCG@10"}
USERS = 6


def _write_blocks(path: Path) -> Path:
    users, items = block_interactions(n_users=240, n_items=60, groups=6, p_in=0.5, p_out=0.02, seed=7)
    path.write_text("user,item\n" + "".join(f"u{u},i{i}\n" for u, i in zip(users, items)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def blocks_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Six taste clusters of 40 users over 60 items, as a ``csv:`` dataset (written once per module)."""
    return f"csv:{_write_blocks(tmp_path_factory.mktemp('blocks') / 'blocks.csv')}"


@pytest.fixture(scope="module")
def blocks():  # type: ignore[no-untyped-def]
    users, items = block_interactions(n_users=240, n_items=60, groups=6, p_in=0.5, p_out=0.02, seed=7)
    return build_interaction_data("blocks", users, items)


@pytest.fixture(autouse=True)
def _contract_dataset(request: pytest.FixtureRequest, blocks_spec: str) -> None:
    """The contract classes read ``dataset`` from the class; point it at the fixture's file."""
    if request.cls is not None and issubclass(request.cls, ArtifactContract):
        request.cls.dataset = blocks_spec


class TestDistillCFContract(MethodContract):
    """distill-core's contract, judged by infinity-AE; the random baseline is the core's ``random``, which the
    recommender modality runs as ``random-users``."""

    method = "distill-cf"
    overrides = FAST
    protocol_overrides = {"model": "infinite-ae"}

    budget = Budget(total=USERS)


class TestRandomUsersContract(ArtifactContract):
    """The user coresets (no outer steps): round trip and determinism of their artifacts."""

    method = "random-users"
    budget = Budget(total=USERS)
    protocol_overrides = {"model": "infinite-ae"}


class TestHeadUsersContract(TestRandomUsersContract):
    method = "head-users"


class TestKCenterUsersContract(TestRandomUsersContract):
    method = "kcenter-users"


def test_one_path_through_the_core(blocks) -> None:  # type: ignore[no-untyped-def]
    assert not hasattr(Modality, "run") and not hasattr(get_modality("recsys"), "run")
    method = build_method("distill-cf", FAST)
    selection = method.callbacks(blocks, torch.device("cpu"))
    assert len(selection) == 1 and isinstance(selection[0], ModelSelection)
    out = distill("distill-cf", dataset="csv:unused", budget=Budget(total=USERS), data=blocks, progress=False,
                  overrides=FAST, modality_name="recsys", evaluate=False)
    extra = out.artifact.extra
    assert extra["kept_step"] == extra["best_step"] > 0 and extra["selection_metric"] == "val_nDCG@10"
    kept = next(h for h in extra["val_history"] if h["step"] == extra["best_step"] and "support" not in h)
    assert extra["kept_score"] == kept["val_nDCG@10"] and extra["lambda"] == kept["lambda"]
    assert extra["best_val_HR@100"] == kept["val_HR@100"] and extra["budget_per_class"] == [USERS]
    assert extra["s_per_step"] > 0 and extra["validate_s"] >= 0 and extra["sparse_k"] == blocks.n_items


def test_resumed_run_keeps_the_same_sample(blocks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The kept sample and the validations are checkpointed with the run (the core's ModelSelection state)."""
    def run(out: Path, **kw):  # type: ignore[no-untyped-def]
        return distill("distill-cf", dataset="csv:unused", budget=Budget(total=USERS), data=blocks, progress=False,
                       overrides=FAST, modality_name="recsys", evaluate=False, out_dir=out, checkpoint_every=4, **kw)

    full = run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", callbacks=[InterruptAt(15)])  # last checkpoint: step 12 (validations 0, 6, 12)
    resumed = run(tmp_path / "cut", resume=True)
    assert resumed.run.resumed_from == 12
    assert (resumed.artifact.summary.to_csr() != full.artifact.summary.to_csr()).nnz == 0
    strip = [{k: v for k, v in h.items() if k != "validate_s"} for h in full.artifact.extra["val_history"]]
    assert [{k: v for k, v in h.items() if k != "validate_s"} for h in resumed.artifact.extra["val_history"]] == strip


def test_legacy_checkpoint_state_moves_into_the_selection(blocks) -> None:  # type: ignore[no-untyped-def]
    """Checkpoints written when Distill-CF kept its history and sample itself still resume."""
    method = build_method("distill-cf", FAST)
    (selection,) = method.callbacks(blocks, torch.device("cpu"))
    sample = torch.rand(USERS, blocks.n_items)
    method.load_state_dict({"reg": 0.1, "history": [{"step": 0, "val_keep": 1.0, "support": "initial"},
                                                    {"step": 6, "val_keep": 2.0}],
                            "best": {"step": 6, "val_select": 2.0, "val_keep": 2.0, "sample": sample}})
    assert method.reg == 0.1 and selection.best == {"step": 6, "score": 2.0} and selection.kept is sample
    assert [h.get("candidate", True) for h in selection.history] == [False, True]


def test_time_budget_ends_the_run_and_keeps_its_last_sample(blocks) -> None:  # type: ignore[no-untyped-def]
    out = distill("distill-cf", dataset="csv:unused", budget=Budget(total=USERS), data=blocks, progress=False,
                  overrides=FAST, modality_name="recsys", evaluate=False, max_seconds=1e-6)
    assert out.run.steps == 1 and out.artifact.extra["max_seconds"] == 1e-6
    history = out.artifact.extra["val_history"]
    assert [h["step"] for h in history] == [0, 1] and out.artifact.extra["best_step"] == 1
    assert "keep_only" not in history[1]  # the last step's validation re-picks λ, as every scheduled one


@pytest.mark.parametrize(("overrides", "learners", "seeds"), [
    ({"n_models": 1, "epochs": 7}, ["infinite-ae", "ease", "als", "bpr"], 1),  # epochs do not apply
    ({"model": "infinite-ae"}, ["infinite-ae"], 3),  # --eval-model keeps that learner, even the primary one
    ({"model": "ease", "n_models": 2}, ["ease"], 2),
])
def test_protocol_overrides_mean_what_they_meant(overrides, learners, seeds) -> None:  # type: ignore[no-untyped-def]
    protocol = get_modality("recsys").default_protocol({}, None).with_(**overrides)
    recsys = RecsysProtocol.from_eval_protocol(protocol)
    assert list(recsys.learners) == learners and recsys.primary == learners[0] and recsys.seeds == seeds
    assert protocol.epochs == 0 and protocol.model == learners[0] and protocol.n_models == seeds


def test_unknown_protocol_overrides_are_refused() -> None:
    with pytest.raises(DataValidationError, match=r"recsys evaluation has no options \['lr'\]"):
        get_modality("recsys").default_protocol({}, None).with_(lr=0.1)


def test_a_changed_stored_protocol_evaluates_that_learner() -> None:
    """``distill eval DIR --model ease`` / ``--models 2`` change a stored (plain) protocol record."""
    stored = EvalProtocol.from_dict(RecsysProtocol().to_eval_protocol().to_dict())
    assert RecsysProtocol.from_eval_protocol(stored) == RecsysProtocol()
    assert RecsysProtocol.from_eval_protocol(stored.with_(model="ease")).learners == ("ease",)
    assert RecsysProtocol.from_eval_protocol(stored.with_(n_models=2)).seeds == 2


def test_compare_random_evaluates_random_users(blocks) -> None:  # type: ignore[no-untyped-def]
    out = distill("distill-cf", dataset="csv:unused", budget=Budget(total=USERS), data=blocks, progress=False,
                  overrides=dict(FAST, steps=2), modality_name="recsys", compare_random=True,
                  protocol_overrides={"model": "infinite-ae"})
    base = distill("random-users", dataset="csv:unused", budget=Budget(total=USERS), data=blocks, progress=False,
                   protocol_overrides={"model": "infinite-ae"})
    stored = out.artifact.extra["random_subset_evaluation"]
    assert stored["metric"] == "nDCG@10" and stored["accuracy_mean"] == round(base.evaluation.mean, 3)
    assert out.random_evaluation is not None and out.random_evaluation.metric == "nDCG@10"


def test_the_other_form_of_the_kept_sample_is_evaluated(blocks) -> None:  # type: ignore[no-untyped-def]
    """The dense sample's run judges its top-k form and the top-k run its dense sample (the same kept sample:
    same seed, same trajectory), so each extra evaluation is the other run's own."""
    k = round(blocks.mean_interactions)

    def run(sparse_k: int):  # type: ignore[no-untyped-def]
        return distill("distill-cf", dataset="csv:unused", budget=Budget(total=USERS), data=blocks, progress=False,
                       overrides=dict(FAST, steps=2, sparse_k=sparse_k), modality_name="recsys",
                       protocol_overrides={"model": "infinite-ae"})

    dense, sparse = run(-1), run(k)
    assert dense.artifact.extra["sparse_top_k"] == k and "sparse_top_k" not in sparse.artifact.extra
    assert dense.artifact.extra["sparse_sample_evaluation"]["accuracies"] == sparse.artifact.evaluations[0][
        "accuracies"]
    assert sparse.artifact.extra["dense_sample_evaluation"]["accuracies"] == dense.artifact.evaluations[0][
        "accuracies"]
    assert set(dense.artifact.extra["sparse_sample_evaluation"]["metrics"]) == {"infinite-ae"}
