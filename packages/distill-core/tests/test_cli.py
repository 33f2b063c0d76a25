"""The ``distill`` command line, run in-process on the toy modality (registered by conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from distill_core import load_artifact
from distill_core.cli import main

TOY_DM = "test_toy_dm"
FAST = ["--no-progress", "--models", "2", "--eval-epochs", "20"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "methods:" and "modalities and datasets:" in lines
    method_line = next(line for line in lines if line.split()[:1] == [TOY_DM])
    assert "toy" in method_line and "Test-only DM" in method_line
    assert any(line.split()[:3] == ["random", "any", "Random"] for line in lines)  # modality-free baseline
    assert any(line.split() == ["toy", "blobs"] for line in lines)


def test_run_then_eval_reproduces(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "art"
    code, out, _ = _run(capsys, "run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--steps", "5",
                        "--out", str(out_dir), "--json", *FAST)
    assert code == 0, out
    report = _last_json(out)
    assert report["method"] == TOY_DM and report["dataset"] == "blobs"
    assert report["budget"] == [2, 2, 2] and report["total"] == 6 and report["steps"] == 5
    assert 0 <= report["accuracy_std"] <= report["accuracy_mean"] <= 100
    assert report["protocol"]["model"] == "mlp" and report["protocol"]["n_models"] == 2
    assert report["protocol"]["epochs"] == 20 and report["labels"] == "hard"
    assert report["distill_wall_s"] >= 0 and report["eval_wall_s"] >= 0
    assert Path(report["artifact"]) == out_dir
    art = load_artifact(out_dir)
    assert art.steps == 5 and art.config["steps"] == 5 and art.evaluations[0]["accuracy_mean"] == report[
        "accuracy_mean"]

    code, out, _ = _run(capsys, "eval", str(out_dir), "--json")
    assert code == 0
    again = _last_json(out)
    assert again["accuracy_mean"] == report["accuracy_mean"]
    assert again["accuracy_std"] == report["accuracy_std"]
    assert again["protocol"] == report["protocol"] and again["budget"] == 6
    assert f"stored: {report['accuracy_mean']:.2f}" in out


def test_compare_random(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--steps", "3", "--out",
                        str(tmp_path), "--compare-random", "--json", *FAST)
    assert code == 0
    report = _last_json(out)
    assert "random real  test accuracy" in out
    assert 0 <= report["random_accuracy_mean"] <= 100 and report["random_accuracy_std"] >= 0


def test_eval_with_another_protocol_says_so_and_saves(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "art"
    assert main(["run", "random", "--dataset", "blobs", "--ipc", "2", "--out", str(out_dir), *FAST]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "eval", str(out_dir), "--model", "linear", "--epochs", "10", "--save", "--json")
    assert code == 0
    assert "note: evaluating with a protocol different from the stored one" in out
    assert _last_json(out)["protocol"]["model"] == "linear"
    evaluations = load_artifact(out_dir).evaluations
    assert [e["protocol"]["model"] for e in evaluations] == ["mlp", "linear"]


@pytest.mark.parametrize(("argv", "fragments"), [
    (["run", "dmm", "--dataset", "blobs", "--ipc", "2"], ["method 'dmm'", "'random'", f"'{TOY_DM}'"]),
    (["run", TOY_DM, "--dataset", "bolbs", "--ipc", "2"], ["cannot read dataset 'bolbs'", "['blobs']"]),
    (["run", "random", "--dataset", "bolbs", "--ipc", "2"], ["dataset 'bolbs'", "'blobs'"]),
    (["run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--set", "unknown_option=1"],
     ["ToyDMConfig option 'unknown_option'", "'lr_summary'", "'batch_real'", "'steps'"]),
    (["run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--set", "init=zeros"],
     ["option 'init' value 'zeros' among choices ['herding', 'kcenter', 'noise', 'real']"]),
    (["run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--set", "lr_summary=fast"],
     ["option 'lr_summary' expects float, got 'fast'"]),
    (["run", TOY_DM, "--dataset", "blobs", "--ipc", "50"], ["ipc=50 is larger than class", "--ipc 40 or less"]),
    (["run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--set", "lr_summary"], ["--set expects KEY=VALUE"]),
    (["eval", "/nonexistent/artifact"], ["no such artifact directory", "distill run"]),
])
def test_bad_input_exits_2_with_the_choices(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                                            fragments: list[str]) -> None:
    code, _, err = _run(capsys, *argv, *(["--out", str(tmp_path / "o")] if argv[0] == "run" else []))
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "o").exists()  # validated before any compute or output


def test_set_and_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"lr_summary": 0.25, "batch_real": 8}))
    code, _, _ = _run(capsys, "run", TOY_DM, "--dataset", "blobs", "--ipc", "1", "--steps", "2", "--config",
                      str(config), "--set", "batch_real=4", "--set", "optimizer=adam", "--out", str(tmp_path / "a"),
                      "--no-eval", "--no-progress")
    assert code == 0
    stored = load_artifact(tmp_path / "a").config
    assert (stored["lr_summary"], stored["batch_real"], stored["optimizer"], stored["steps"]) == (0.25, 4, "adam", 2)
    assert load_artifact(tmp_path / "a").evaluations == []


def test_resume_continues(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    common = ["--dataset", "blobs", "--ipc", "2", "--no-eval", "--no-progress", "--checkpoint-every", "2"]
    assert main(["run", TOY_DM, "--steps", "6", "--out", str(tmp_path / "full"), *common]) == 0
    assert main(["run", TOY_DM, "--steps", "3", "--out", str(tmp_path / "part"), *common]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "run", TOY_DM, "--steps", "6", "--resume", "--out", str(tmp_path / "part"),
                        "--json", *common)
    assert code == 0 and _last_json(out)["steps"] == 6
    part, full = load_artifact(tmp_path / "part"), load_artifact(tmp_path / "full")
    assert part.extra["resumed_from"] == 3 and part.steps == 6
    assert torch.equal(part.summary.x, full.summary.x)


def test_run_with_budget_and_ratio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["run", "random", "--dataset", "blobs", "--no-eval", "--no-progress", "--json"]
    code, out, _ = _run(capsys, *base, "--budget", "7", "--out", str(tmp_path / "b"))
    assert code == 0 and sum(_last_json(out)["budget"]) == 7
    code, out, _ = _run(capsys, *base, "--ratio", "0.1", "--out", str(tmp_path / "r"))
    assert code == 0 and _last_json(out)["total"] == 12  # 10 % of 120 training samples


def test_show_without_renderer_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "random", "--dataset", "blobs", "--ipc", "1", "--out", str(tmp_path), "--no-eval",
                 "--no-progress"]) == 0
    code, _, err = _run(capsys, "show", str(tmp_path))
    assert code == 2 and "cannot draw" in err


def test_compare_random_is_stored_and_is_the_random_baseline(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    code, out, _ = _run(capsys, "run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--steps", "3", "--out",
                        str(tmp_path / "a"), "--compare-random", "--json", *FAST)
    report = _last_json(out)
    stored = load_artifact(tmp_path / "a").extra["random_subset_evaluation"]
    assert stored["accuracy_mean"] == report["random_accuracy_mean"] and stored["metric"] == "accuracy"
    # the same subset as `distill run random` with the same seed, judged by the same protocol
    assert main(["run", "random", "--dataset", "blobs", "--ipc", "2", "--out", str(tmp_path / "r"), *FAST]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "eval", str(tmp_path / "r"), "--protocol-from", str(tmp_path / "a"), "--json")
    assert code == 0 and _last_json(out)["accuracies"] == stored["accuracies"]
    assert out.count("random real") == 0 and "test accuracy" in out


def test_protocol_from_evaluates_like_the_other_artifact(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--steps", "3", "--out", str(tmp_path / "a"),
                 *FAST]) == 0
    assert main(["run", "random", "--dataset", "blobs", "--ipc", "2", "--out", str(tmp_path / "b"), "--no-progress",
                 "--eval-model", "linear", "--models", "1", "--eval-epochs", "5", "--seed", "3"]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "eval", str(tmp_path / "a"), "--protocol-from", str(tmp_path / "b"), "--json")
    report = _last_json(out)
    other = load_artifact(tmp_path / "b").evaluations[0]
    assert code == 0 and report["protocol"] == other["protocol"] and report["protocol"]["model"] == "linear"
    assert "(1 x linear)" in out
    code, _, err = _run(capsys, "eval", str(tmp_path / "a"), "--protocol-from", str(tmp_path / "missing"))
    assert code == 2 and "no such artifact directory" in err


def test_krr_is_an_evaluation_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from distill_core import evaluate_krr

    assert main(["run", TOY_DM, "--dataset", "blobs", "--ipc", "2", "--steps", "3", "--out", str(tmp_path / "a"),
                 *FAST]) == 0
    capsys.readouterr()
    code, out, _ = _run(capsys, "eval", str(tmp_path / "a"), "--model", "krr", "--json")
    report = _last_json(out)
    artifact = load_artifact(tmp_path / "a")
    from distill_core import get_modality

    direct = evaluate_krr(artifact.summary, get_modality("toy").load_dataset("blobs"), "fc_ntk")
    assert code == 0 and report["protocol"]["model"] == "krr" and report["accuracies"] == [round(direct.accuracy, 3)]
    code, _, err = _run(capsys, "eval", str(tmp_path / "a"), "--model", "krr:rbf")
    assert code == 2 and "'krr:fc_nngp'" in err


def test_list_a_method_documents_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list", TOY_DM)
    assert code == 0 and out.startswith(f"{TOY_DM} (toy)")
    assert "Test-only DM" in out and "A few fast steps of distribution matching" in out  # class and config docs
    assert "  lr_summary = 1.0  [float; > 0]" in out and "  batch_real = 16  [int; >= 1]" in out
    assert "momentum = 0.5  [float; >= 0 and < 1]" in out and "real samples per class and step" in out
    assert "  optimizer = \"sgd\"  [Literal['sgd', 'adam']]" in out and "  steps = 20  [int; >= 0]" in out
    code, _, err = _run(capsys, "list", "nosuch")
    assert code == 2 and "Could not resolve method 'nosuch'" in err
