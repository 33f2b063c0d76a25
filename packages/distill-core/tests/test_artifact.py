"""The artifact directory: exact round trip, atomic writes, and a clear ArtifactError for every kind of damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import distill_core.artifact as artifact_module
from distill_core import Artifact, ArtifactError, Preprocessing, Summary, ZCAWhitening, load_artifact
from distill_core.artifact import FORMAT_VERSION, MANIFEST, TENSORS

FIX = "Re-create it with `distill run"


def _artifact(seed: int = 0, *, label_kind: str = "soft", n: int = 6) -> Artifact:
    g = torch.Generator().manual_seed(seed)
    prep = Preprocessing([ZCAWhitening.fit(torch.randn(40, 4, generator=g), reg=0.1)])
    summary = Summary(x=torch.randn(n, 4, generator=g), labels=torch.arange(n) % 3, num_classes=3,
                      label_kind=label_kind, learn_lr=True, lr_init=0.02, preprocessing=prep)  # type: ignore[arg-type]
    return Artifact(summary=summary, method="test_toy_dm", modality="toy", config={"steps": 5, "lr_summary": 0.5},
                    dataset={"name": "blobs", "num_classes": 3}, seed=seed, steps=5,
                    evaluations=[{"accuracy_mean": 91.5, "accuracy_std": 1.25, "protocol": {"model": "mlp"}}],
                    extra={"budget_per_class": [2, 2, 2]})


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def _manifest(directory: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((directory / MANIFEST).read_text())


def _write_manifest(directory: Path, manifest: object) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest))


class TestRoundTrip:
    @pytest.mark.parametrize("label_kind", ["hard", "soft", "regression"])
    def test_same_tensors_config_and_evaluations(self, tmp_path: Path, label_kind: str) -> None:
        art = _artifact(label_kind=label_kind)
        out = art.save(tmp_path / "art")
        assert sorted(p.name for p in out.iterdir()) == [MANIFEST, TENSORS]
        back = load_artifact(out)
        for name, value in art.summary.tensors().items():
            assert torch.equal(back.summary.tensors()[name], value), name
        assert torch.equal(back.summary.targets(), art.summary.targets())
        assert torch.equal(back.summary.lr, art.summary.lr)  # type: ignore[arg-type]
        assert back.summary.label_kind == label_kind
        assert back.preprocessing.same_as(art.preprocessing) and back.preprocessing.whitened
        assert (back.method, back.modality, back.seed, back.steps) == ("test_toy_dm", "toy", 0, 5)
        assert back.config == art.config and back.dataset == art.dataset
        assert back.evaluations == art.evaluations and back.extra == art.extra

    def test_manifest_is_self_describing(self, tmp_path: Path) -> None:
        _artifact().save(tmp_path / "art")
        m = _manifest(tmp_path / "art")
        assert m["format"] == "distill-artifact" and m["format_version"] == FORMAT_VERSION
        assert m["budget"] == {"total": 6, "ipc": 2}
        assert m["summary"]["label_kind"] == "soft" and m["summary"]["learned_lr"] == pytest.approx(0.02, rel=1e-5)
        assert m["preprocessing"] == [{"kind": "zca", "reg": 0.1}]
        assert m["tensors"]["x"] == {"shape": [6, 4], "dtype": "float32"}
        assert "preprocessing.0.whiten" in m["tensors"] and "torch" in m["versions"]

    def test_overwrite_keeps_other_files(self, tmp_path: Path) -> None:
        out = _artifact(0).save(tmp_path / "art")
        (out / "checkpoint.pt").write_bytes(b"keep me")
        _artifact(1).save(out)
        assert (out / "checkpoint.pt").read_bytes() == b"keep me"
        assert torch.equal(load_artifact(out).summary.x, _artifact(1).summary.x)
        assert _leftovers(tmp_path) == [] and _leftovers(out) == []


class TestAtomicWrites:
    def test_failing_tensor_write_keeps_previous_artifact(self, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        out = _artifact(0).save(tmp_path / "art")
        before = {p.name: p.read_bytes() for p in out.iterdir()}

        def broken_save_file(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

        monkeypatch.setattr(artifact_module, "save_file", broken_save_file)
        with pytest.raises(OSError, match="disk full"):
            _artifact(1).save(out)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert torch.equal(load_artifact(out).summary.x, _artifact(0).summary.x)
        assert _leftovers(tmp_path) == []

    def test_failing_manifest_write_keeps_previous_artifact(self, tmp_path: Path) -> None:
        out = _artifact(0).save(tmp_path / "art")
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        bad = _artifact(1)
        bad.config = {"not json": object()}
        with pytest.raises(TypeError):
            bad.save(out)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
        assert _leftovers(tmp_path) == []

    def test_failing_first_save_leaves_nothing(self, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setattr(artifact_module, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
        with pytest.raises(OSError):
            _artifact().save(tmp_path / "art")
        assert list(tmp_path.iterdir()) == []

    def test_save_interrupted_between_the_two_renames_is_detected(self, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        out = _artifact(0).save(tmp_path / "art")
        real_replace, calls = artifact_module.os.replace, []

        def replace_then_die(src, dst):  # type: ignore[no-untyped-def]
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt  # after the new tensors, before the new manifest
            real_replace(src, dst)

        monkeypatch.setattr(artifact_module.os, "replace", replace_then_die)
        with pytest.raises(KeyboardInterrupt):
            _artifact(1).save(out)  # same shapes: without a checksum the mix would load silently
        monkeypatch.undo()
        assert _leftovers(tmp_path) == []
        with pytest.raises(ArtifactError, match=r"does not match manifest\.json"):
            load_artifact(out)

    def test_add_evaluation_rewrites_only_the_manifest(self, tmp_path: Path) -> None:
        out = _artifact().save(tmp_path / "art")
        tensors_before = (out / TENSORS).read_bytes()
        art = load_artifact(out)
        art.add_evaluation(out, {"accuracy_mean": 50.0, "accuracy_std": 0.0, "protocol": {"model": "linear"}})
        back = load_artifact(out)
        assert [e["accuracy_mean"] for e in back.evaluations] == [91.5, 50.0]
        assert (out / TENSORS).read_bytes() == tensors_before
        assert _leftovers(out) == [] and _leftovers(tmp_path) == []

    def test_failing_add_evaluation_keeps_manifest(self, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        out = _artifact().save(tmp_path / "art")
        manifest_before = (out / MANIFEST).read_bytes()
        art = load_artifact(out)

        def broken_replace(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise OSError("rename failed")

        monkeypatch.setattr(artifact_module.os, "replace", broken_replace)
        with pytest.raises(OSError, match="rename failed"):
            art.add_evaluation(out, {"accuracy_mean": 1.0})
        monkeypatch.undo()
        assert (out / MANIFEST).read_bytes() == manifest_before
        assert _leftovers(out) == []
        # the in-memory artifact still matches the disk: a failed write did not record the evaluation
        assert art.evaluations == load_artifact(out).evaluations


class TestDamage:
    @pytest.fixture
    def saved(self, tmp_path: Path) -> Path:
        return _artifact().save(tmp_path / "art")

    def _fails(self, directory: Path, *fragments: str) -> str:
        with pytest.raises(ArtifactError) as info:
            load_artifact(directory)
        message = str(info.value)
        for fragment in fragments:
            assert fragment in message, message
        return message

    def test_no_directory(self, tmp_path: Path) -> None:
        self._fails(tmp_path / "nowhere", "no such artifact directory", FIX)

    def test_missing_manifest(self, saved: Path) -> None:
        (saved / MANIFEST).unlink()
        self._fails(saved, "manifest.json is missing", FIX)

    def test_missing_tensors(self, saved: Path) -> None:
        (saved / TENSORS).unlink()
        self._fails(saved, "tensors.safetensors is missing", FIX)

    def test_invalid_json(self, saved: Path) -> None:
        (saved / MANIFEST).write_text('{"format": "distill-artifact", ')
        self._fails(saved, "not valid JSON", FIX)

    def test_binary_manifest(self, saved: Path) -> None:
        (saved / MANIFEST).write_bytes(b"\xff\xfe\x00garbage")
        self._fails(saved, "not valid JSON", FIX)

    @pytest.mark.parametrize("foreign", [{"name": "some other tool"}, [1, 2, 3], "distill-artifact", None])
    def test_foreign_json(self, saved: Path, foreign: object) -> None:
        _write_manifest(saved, foreign)
        self._fails(saved, "was not written by distill", FIX)

    def test_newer_format_version(self, saved: Path) -> None:
        manifest = _manifest(saved)
        manifest["format_version"] = FORMAT_VERSION + 1
        _write_manifest(saved, manifest)
        self._fails(saved, f"format version {FORMAT_VERSION + 1}", "pip install -U distill-core")

    @pytest.mark.parametrize("version", [None, "1", 1.0])
    def test_malformed_format_version(self, saved: Path, version: object) -> None:
        manifest = _manifest(saved)
        manifest["format_version"] = version
        _write_manifest(saved, manifest)
        message = self._fails(saved, "no integer 'format_version'", FIX)
        assert "newer" not in message

    @pytest.mark.parametrize("field", ["method", "modality", "summary", "tensors", "dataset"])
    def test_missing_field(self, saved: Path, field: str) -> None:
        manifest = _manifest(saved)
        del manifest[field]
        _write_manifest(saved, manifest)
        self._fails(saved, f"lacks the field {field!r}", FIX)

    @pytest.mark.parametrize(("path", "value"), [
        (("tensors",), ["x", "labels"]),            # a list instead of {name: spec}
        (("tensors", "x"), "6x4"),                  # a spec that is not an object
        (("summary",), "dense"),                    # summary meta that is not an object
        (("summary", "num_classes"), "three"),      # a number that is not a number
        (("seed",), "zero"),
        (("evaluations",), 5),
        (("preprocessing",), [{"kind": "zca"}, 3]),
    ])
    def test_malformed_fields(self, saved: Path, path: tuple[str, ...], value: object) -> None:
        manifest = _manifest(saved)
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        _write_manifest(saved, manifest)
        with pytest.raises(ArtifactError) as info:  # never a bare TypeError / AttributeError
            load_artifact(saved)
        assert "re-create it with `distill run" in str(info.value).lower()

    def test_summary_meta_incomplete(self, saved: Path) -> None:
        manifest = _manifest(saved)
        del manifest["summary"]["num_classes"]
        _write_manifest(saved, manifest)
        self._fails(saved, "num_classes", "distill run")

    @pytest.mark.parametrize("keep", [0.5, 0.05, 0.0])
    def test_truncated_tensors(self, saved: Path, keep: float) -> None:
        data = (saved / TENSORS).read_bytes()
        (saved / TENSORS).write_bytes(data[: int(len(data) * keep)])
        self._fails(saved, "corrupt or truncated", FIX)

    def test_garbage_tensors(self, saved: Path) -> None:
        (saved / TENSORS).write_bytes(b"this is not a safetensors file at all" * 3)
        self._fails(saved, "corrupt or truncated", FIX)

    def test_shape_mismatch(self, saved: Path) -> None:
        manifest = _manifest(saved)
        manifest["tensors"]["x"]["shape"] = [7, 4]
        _write_manifest(saved, manifest)
        self._fails(saved, "tensor 'x' has shape [6, 4] but the manifest says [7, 4]", FIX)

    def test_tensors_from_another_artifact(self, saved: Path, tmp_path: Path) -> None:
        other = _artifact(seed=7).save(tmp_path / "other")
        (saved / TENSORS).write_bytes((other / TENSORS).read_bytes())  # valid file, same shapes, other values
        self._fails(saved, "does not match manifest.json", "checksum", FIX)

    def test_flipped_value(self, saved: Path) -> None:
        data = bytearray((saved / TENSORS).read_bytes())
        data[-3] ^= 0xFF  # inside the last tensor's values: the header stays valid
        (saved / TENSORS).write_bytes(bytes(data))
        self._fails(saved, "checksum", FIX)

    def test_artifact_without_checksum_still_loads(self, saved: Path) -> None:
        manifest = _manifest(saved)
        assert len(manifest.pop("tensors_sha256")) == 64
        _write_manifest(saved, manifest)
        assert torch.equal(load_artifact(saved).summary.x, _artifact().summary.x)

    def test_tensor_set_mismatch(self, saved: Path) -> None:
        manifest = _manifest(saved)
        manifest["tensors"]["extra_tensor"] = {"shape": [1], "dtype": "float32"}
        _write_manifest(saved, manifest)
        self._fails(saved, "extra_tensor", FIX)

    def test_unknown_summary_type(self, saved: Path) -> None:
        manifest = _manifest(saved)
        manifest["summary"]["type"] = "hypergraph"
        _write_manifest(saved, manifest)
        self._fails(saved, "'hypergraph'", "modality package", FIX)

    def test_unknown_preprocessing(self, saved: Path) -> None:
        manifest = _manifest(saved)
        manifest["preprocessing"] = [{"kind": "sharpen"}]
        _write_manifest(saved, manifest)
        self._fails(saved, "'sharpen'", FIX)
