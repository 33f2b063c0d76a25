"""Safe by default: nothing is unpickled, nothing on disk is lost, every value is refused before compute."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from distill_core import Budget, DataValidationError, DistillError, distill, load_artifact
from distill_core.artifact import MANIFEST, TENSORS
from distill_core.checkpoint import CHECKPOINT, LEGACY_CHECKPOINT, load_state, save_state
from distill_core.cli import main
from distill_core.data import apportion, data_fingerprint
from distill_core.errors import ArtifactError
from distill_core.files import LOCK_NAME, OutputLock, check_new_file
from distill_core.method import DEFAULT_RANGES, config_from_dict, field_range
from distill_core.paths import user_cache_dir
from distill_core.testing import make_blobs

TOY = "test_toy_dm"  # registered in conftest.py
FAST = ["--steps", "2", "--no-progress", "--models", "1", "--eval-epochs", "2"]


class _Payload:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _plant(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"step": 1, "payload": _Payload(marker)}))
    return path


def _run(out: Path, *args: str) -> int:
    return main(["run", TOY, "--dataset", "blobs", "--ipc", "2", *FAST, "--out", str(out), *args])


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


class TestNoPickle:
    def test_legacy_pickle_checkpoint_is_never_loaded(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out, marker = tmp_path / "run", tmp_path / "pwned"
        out.mkdir()
        _plant(out / LEGACY_CHECKPOINT, marker)
        assert _run(out, "--resume") == 2
        assert not marker.exists()
        assert "pickle checkpoint" in capsys.readouterr().err

    def test_pickle_under_the_checkpoint_name_is_refused(self, tmp_path: Path) -> None:
        out, marker = tmp_path / "run", tmp_path / "pwned"
        out.mkdir()
        _plant(out / CHECKPOINT, marker)
        assert _run(out, "--resume") == 2
        assert not marker.exists()

    def test_state_round_trip(self, tmp_path: Path) -> None:
        state = {"step": 3, "betas": (0.5, 0.999), "state": {0: {"buf": torch.arange(4.0)}, 7: {}},
                 "flags": [True, None, float("nan")], "__tensor__": "not a tag", "half": torch.ones(2).half(),
                 "ids": torch.tensor([1, 2], dtype=torch.long), "nested": [{"x": (1, [2, torch.zeros(1)])}]}
        back = load_state(save_state(tmp_path / CHECKPOINT, state))
        assert back["step"] == 3 and back["betas"] == (0.5, 0.999) and back["__tensor__"] == "not a tag"
        assert set(back["state"]) == {0, 7} and torch.equal(back["state"][0]["buf"], torch.arange(4.0))
        assert back["flags"][:2] == [True, None] and back["flags"][2] != back["flags"][2]
        assert back["half"].dtype == torch.float16 and back["ids"].dtype == torch.long
        assert isinstance(back["nested"][0]["x"], tuple) and torch.equal(back["nested"][0]["x"][1][1], torch.zeros(1))

    def test_objects_are_not_checkpointed(self, tmp_path: Path) -> None:
        with pytest.raises(TypeError, match="cannot hold a _Payload"):
            save_state(tmp_path / CHECKPOINT, {"x": _Payload(tmp_path / "m")})
        assert not (tmp_path / CHECKPOINT).exists()

    def test_user_cache_dir_is_private(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        path = user_cache_dir("graph", "planetoid")
        assert path == tmp_path / "cache" / "distill" / "graph" / "planetoid"
        assert all(p.stat().st_mode & 0o777 == 0o700 for p in (path, path.parent, path.parent.parent))
        path.parent.chmod(0o777)  # another user could plant files in a world-writable cache
        with pytest.raises(DataValidationError, match="writable by other users"):
            user_cache_dir("graph", "planetoid")
        with pytest.raises(DataValidationError, match="single plain name"):
            user_cache_dir("..")


class TestNothingIsLost:
    def test_interrupted_checkpoint_is_kept(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "run"
        assert _run(out, "--no-eval") == 0
        before = (out / CHECKPOINT).read_bytes()
        assert _run(out, "--no-eval") == 2
        assert "--resume to continue it, --overwrite" in capsys.readouterr().err
        assert (out / CHECKPOINT).read_bytes() == before

    def test_artifact_and_foreign_files_are_kept(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = tmp_path / "mine"
        out.mkdir()
        (out / MANIFEST).write_text('{"mine": true}')
        (out / "notes.txt").write_text("keep")
        assert _run(out) == 2
        assert "already holds an artifact" in capsys.readouterr().err
        assert (out / MANIFEST).read_text() == '{"mine": true}'
        (out / MANIFEST).unlink()
        assert _run(out) == 2
        assert "did not write (notes.txt)" in capsys.readouterr().err

    def test_overwrite_replaces_own_files_and_keeps_others(self, tmp_path: Path) -> None:
        out = tmp_path / "run"
        assert _run(out, "--no-eval", "--steps", "3") == 0
        (out / "notes.txt").write_text("keep")
        assert _run(out, "--no-eval", "--overwrite", "--checkpoint-every", "1") == 0
        assert load_state(out / CHECKPOINT)["step"] == 2  # the new run's, not the old one's 3
        assert load_artifact(out).steps == 2 and (out / "notes.txt").read_text() == "keep"
        assert not (out / LOCK_NAME).exists()

    def test_out_at_a_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        (tmp_path / "f").write_text("x")
        assert _run(tmp_path / "f") == 2
        assert "is a file; give the path of a folder" in capsys.readouterr().err

    def test_second_writer_is_refused(self, tmp_path: Path) -> None:
        out = tmp_path / "run"
        with OutputLock(out), pytest.raises(DataValidationError, match=f"another distill process \\(pid {os.getpid()}"):
            distill(TOY, dataset="blobs", budget=Budget(ipc=2), overrides={"steps": 1}, out_dir=out, progress=False,
                    evaluate=False)
        assert not any(out.iterdir())  # nothing written, lock released and removed

    def test_resume_refuses_other_data_and_budget(self, tmp_path: Path) -> None:
        out = tmp_path / "run"
        kw: dict[str, Any] = {"overrides": {"steps": 2}, "out_dir": out, "progress": False, "evaluate": False}
        distill(TOY, dataset="blobs", budget=Budget(ipc=2), **kw)
        kw["overrides"] = {"steps": 4}
        other = make_blobs(seed=5)  # same name and shapes, other content
        assert data_fingerprint(other)["train_sha"] != data_fingerprint(make_blobs())["train_sha"]
        with pytest.raises(DataValidationError, match=r"another dataset.*train_sha"):
            distill(TOY, dataset="blobs", budget=Budget(ipc=2), resume=True, data=other, **kw)
        with pytest.raises(DataValidationError, match=r"summary of another size.*--ipc"):
            distill(TOY, dataset="blobs", budget=Budget(ipc=3), resume=True, **kw)
        assert distill(TOY, dataset="blobs", budget=Budget(ipc=2), resume=True, **kw).run.resumed_from == 2

    def test_files_follow_the_umask(self, tmp_path: Path, umask022: None) -> None:
        out = tmp_path / "run"
        assert _run(out, "--no-eval") == 0
        modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
        assert modes == {CHECKPOINT: 0o644, MANIFEST: 0o644, TENSORS: 0o644}, modes
        assert out.stat().st_mode & 0o777 == 0o755

    def test_export_and_show_never_overwrite(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        target = tmp_path / "summary.csv"
        target.write_text("precious")
        assert main(["export", str(tmp_path / "missing"), "--out", str(target)]) == 2
        assert "already exists; pass --overwrite" in capsys.readouterr().err and target.read_text() == "precious"
        assert main(["show", str(tmp_path / "missing"), "--out", str(target)]) == 2
        assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
        assert "is a folder; give a file path" in capsys.readouterr().err
        with pytest.raises(DataValidationError, match="already exists"):
            check_new_file(target, overwrite=False)
        assert check_new_file(target, overwrite=True) == target


class TestValuesRefusedBeforeCompute:
    @pytest.mark.parametrize("args", [["--steps", "-5"], ["--eval-epochs", "-1"], ["--eval-epochs", "0"],
                                      ["--max-seconds", "-1"], ["--max-seconds", "nan"], ["--checkpoint-every", "0"],
                                      ["--models", "0"], ["--seed", "-1"], ["--ipc", "0"], ["--steps", "1.5"]])
    def test_cli_numbers(self, tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        argv = ["run", TOY, "--dataset", "blobs", "--out", str(tmp_path / "o"), "--no-progress"]
        if "--ipc" not in args:
            argv += ["--ipc", "2"]
        with pytest.raises(SystemExit) as info:
            main([*argv, *args])
        assert info.value.code == 2 and args[0] in capsys.readouterr().err
        assert not (tmp_path / "o").exists()

    @pytest.mark.parametrize(("option", "message"), [
        ("lr_summary=-1", "'lr_summary' must be > 0"), ("lr_summary=true", "expects float, got True"),
        ("momentum=5", "'momentum' must be >= 0 and < 1"), ("batch_real=0", "'batch_real' must be >= 1"),
        ("width=-3", "'width' must be >= 1"), ("lr_summary=NaN", "'lr_summary' must be > 0"),
        ("steps=-5", "'steps' must be >= 0")])
    def test_config_ranges(self, tmp_path: Path, option: str, message: str,
                           capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        from distill_core.testing import ToyModality

        def no_load(*a: Any, **k: Any) -> None:
            raise AssertionError("data was loaded before the options were checked")

        monkeypatch.setattr(ToyModality, "load_dataset", no_load)
        assert main(["run", TOY, "--dataset", "blobs", "--ipc", "2", "--set", option, "--out",
                     str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "o").exists()

    @pytest.mark.parametrize(("args", "message"), [
        (["--device", "bogus"], "is not a device name"),
        (["--device", "cuda:7"], "CUDA device"),
        (["--eval-model", "nosuch"], "evaluation model 'nosuch'")])
    def test_device_and_eval_model_before_data(self, tmp_path: Path, args: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        from distill_core.testing import ToyModality

        def no_load(*a: Any, **k: Any) -> None:
            raise AssertionError("data was loaded before the options were checked")

        monkeypatch.setattr(ToyModality, "load_dataset", no_load)
        assert main(["run", TOY, "--dataset", "blobs", "--ipc", "2", "--out", str(tmp_path / "o"), *args]) == 2
        assert message in capsys.readouterr().err

    def test_every_method_default_is_in_its_range(self) -> None:
        import dataclasses

        from distill_core.registry import get_method, list_methods

        checked = 0
        for name in list_methods():
            try:
                cls = get_method(name).config_class
            except ImportError:  # a modality package that is not installed in this environment
                continue
            config_from_dict(cls, cls().to_dict())
            checked += sum(f.name in DEFAULT_RANGES or "range" in f.metadata for f in dataclasses.fields(cls))
        assert checked > 0

    def test_field_metadata_overrides_the_table(self) -> None:
        import dataclasses

        from distill_core.method import MethodConfig, Range

        @dataclasses.dataclass
        class Special(MethodConfig):
            width: int = dataclasses.field(default=0, metadata={"range": Range(0)})

        width = next(f for f in dataclasses.fields(Special) if f.name == "width")
        assert field_range(width).contains(0) and not DEFAULT_RANGES["width"].contains(0)
        assert config_from_dict(Special, {"width": 0}).width == 0


class TestBudgetSplit:
    def test_balanced_sizes_differ_by_at_most_one(self) -> None:
        for total in range(10, 60):
            sizes = apportion(total, [131, 138, 132, 136, 135, 134, 133, 137, 131, 135])
            assert sum(sizes) == total and max(sizes) - min(sizes) <= 1, (total, sizes)

    def test_digits_20_is_two_per_class(self) -> None:  # the old rule gave [1, 3, 1, 3, 3, 3, 3, 1, 1, 1]
        assert apportion(20, [132, 138, 131, 136, 135, 135, 133, 134, 131, 133]) == [2] * 10

    def test_follows_frequency_with_one_per_class(self) -> None:
        assert apportion(100, [5000, 3000, 1500, 400, 100]) == [50, 30, 15, 4, 1]
        assert apportion(12, [1000] + [10] * 9) == [3] + [1] * 9
        assert apportion(7, [500, 300, 200]) == [4, 2, 1]  # remainders .5 .1 .4

    def test_resolved_split_is_stored(self, tmp_path: Path) -> None:
        outcome = distill(TOY, dataset="blobs", budget=Budget(total=7), overrides={"steps": 1}, out_dir=tmp_path / "o",
                          progress=False, evaluate=False)
        assert json.loads((tmp_path / "o" / MANIFEST).read_text())["extra"]["budget_per_class"] == [3, 2, 2]
        assert outcome.artifact.summary.budget == 7


class TestBadArtifacts:
    def _artifact(self, tmp_path: Path) -> Path:
        out = tmp_path / "a"
        distill(TOY, dataset="blobs", budget=Budget(ipc=2), overrides={"steps": 1}, out_dir=out, progress=False,
                evaluate=False)
        return out

    def _rewrite(self, out: Path, change: Any) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(out / TENSORS))
        change(tensors)
        save_file(tensors, str(out / TENSORS))
        manifest = json.loads((out / MANIFEST).read_text())
        manifest.pop("tensors_sha256")
        (out / MANIFEST).write_text(json.dumps(manifest))

    def test_nan_tensors_are_refused(self, tmp_path: Path) -> None:
        out = self._artifact(tmp_path)
        self._rewrite(out, lambda t: t["x"].__setitem__((0, 0), float("nan")))
        with pytest.raises(ArtifactError, match="'x' holds 1 NaN/Inf"):
            load_artifact(out)
        assert main(["eval", str(out)]) == 2

    def test_out_of_range_labels_are_refused(self, tmp_path: Path) -> None:
        out = self._artifact(tmp_path)
        self._rewrite(out, lambda t: t["labels"].__setitem__(0, 9))
        with pytest.raises(ArtifactError, match=r"labels lie in \[0, 9\] but it has 3 classes"):
            load_artifact(out)


class TestRouting:
    def test_two_claimants_ask_for_modality(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from distill_core import registry
        from distill_core.testing import ToyModality

        class Other(ToyModality):
            name = "toy2"

        monkeypatch.setitem(registry._MODALITIES, "toy2", Other)
        with pytest.raises(DataValidationError, match=r"\['toy', 'toy2'\]; pass --modality toy\|toy2"):
            registry.modality_for_dataset("blobs")
        assert issubclass(DataValidationError, DistillError)
