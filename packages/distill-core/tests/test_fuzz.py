"""Fuzz the artifact and checkpoint loaders: random bytes, truncations, mutated manifests, random tensors.

Only distill's own errors may come out (never another exception) and nothing is written outside the input folder.
``DISTILL_FUZZ_PROFILE=thorough`` runs many more cases; ``--hypothesis-show-statistics`` prints how many ran.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from distill_core import Artifact, Summary, load_artifact
from distill_core.artifact import MANIFEST, TENSORS
from distill_core.checkpoint import CHECKPOINT, load_state, save_state
from distill_core.fuzz import load_profile, only_distill_errors, sandbox

load_profile()

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def valid_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("valid") / "artifact"
    summary = Summary(x=torch.randn(6, 4, generator=torch.Generator().manual_seed(0)),
                      labels=torch.arange(3).repeat(2), num_classes=3)
    Artifact(summary=summary, method="random", modality="toy", dataset={"name": "blobs"}).save(out)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@given(manifest=st.binary(max_size=300), tensors=st.binary(max_size=300))
def test_random_bytes(manifest: bytes, tensors: bytes) -> None:
    with sandbox() as folder:
        (folder / MANIFEST).write_bytes(manifest)
        (folder / TENSORS).write_bytes(tensors)
        assert isinstance(only_distill_errors(load_artifact, folder), Exception)


@given(which=st.sampled_from([MANIFEST, TENSORS]), cut=st.floats(0, 1, exclude_max=True))
def test_truncations(valid_artifact: Path, which: str, cut: float) -> None:
    with sandbox() as folder:
        art = _copy(valid_artifact, folder / "a")
        data = (art / which).read_bytes()
        (art / which).write_bytes(data[: int(cut * len(data))])
        assert isinstance(only_distill_errors(load_artifact, art), Exception)


@given(key=st.sampled_from(["format", "format_version", "method", "modality", "summary", "tensors", "dataset",
                            "preprocessing", "seed", "steps", "evaluations", "extra", "budget"]), value=_json)
def test_mutated_manifest_fields(valid_artifact: Path, key: str, value: Any) -> None:
    with sandbox() as folder:
        art = _copy(valid_artifact, folder / "a")
        manifest = json.loads((art / MANIFEST).read_text())
        manifest[key] = value
        (art / MANIFEST).write_text(json.dumps(manifest))
        only_distill_errors(load_artifact, art)


@given(shape=st.lists(st.integers(0, 5), min_size=0, max_size=4),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.int64, torch.uint8, torch.bool]),
       nan_at=st.integers(0, 50), label_shape=st.lists(st.integers(0, 7), max_size=2),
       label_value=st.integers(-3, 9))
def test_random_tensors(valid_artifact: Path, shape: list[int], dtype: torch.dtype, nan_at: int,
                        label_shape: list[int], label_value: int) -> None:
    with sandbox() as folder:
        art = _copy(valid_artifact, folder / "a")
        x = torch.ones(shape).to(dtype)
        if x.is_floating_point() and x.numel():
            x.view(-1)[nan_at % x.numel()] = float("nan")
        labels = torch.full(label_shape, label_value, dtype=torch.long)
        save_file({"x": x, "labels": labels}, str(art / TENSORS))
        manifest = json.loads((art / MANIFEST).read_text())
        manifest.pop("tensors_sha256")
        manifest["tensors"] = {"x": {"shape": shape}, "labels": {"shape": label_shape}}
        (art / MANIFEST).write_text(json.dumps(manifest))
        result = only_distill_errors(load_artifact, art)
        if not isinstance(result, Exception):  # only a well-formed summary may load
            assert torch.isfinite(result.summary.x).all() and result.summary.labels.min() >= 0


@given(data=st.binary(max_size=400), cut=st.floats(0, 1, exclude_max=True), meta=_json)
def test_checkpoint_loader(data: bytes, cut: float, meta: Any) -> None:
    with sandbox() as folder:
        (folder / "random.safetensors").write_bytes(data)
        only_distill_errors(load_state, folder / "random.safetensors")
        good = save_state(folder / CHECKPOINT, {"step": 1, "summary": {"x": torch.ones(3)}})
        raw = good.read_bytes()
        good.write_bytes(raw[: int(cut * len(raw))])
        only_distill_errors(load_state, good)
        save_file({}, str(folder / "meta.safetensors"), metadata={"distill_state": json.dumps(meta)})
        only_distill_errors(load_state, folder / "meta.safetensors")
