"""The artifact format: a directory holding ``manifest.json`` and ``tensors.safetensors``.

The manifest is self-describing (readable without this library): format version, library versions, method and its
full config, dataset, budget, preprocessing, seed, the summary's tensor shapes and every evaluation result with its
protocol. Writes are atomic (a temporary directory/file renamed into place), so an interrupted save never destroys an
older artifact. Loading validates everything and fails with :class:`ArtifactError` naming the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ArtifactError, UnknownNameError
from .files import apply_umask, atomic_write_text
from .modality import SummaryInfo
from .preprocessing import Preprocessing
from .synset import Summary, summary_type

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "Artifact", "atomic_write_text", "library_versions", "load_artifact"]

FORMAT_NAME = "distill-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TENSORS = "tensors.safetensors"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("distill-core", "distill-vision", "distill-graph", "distill-text", "distill-recsys"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


@dataclass
class Artifact:
    """A summary plus everything needed to reproduce and evaluate it.

    Args:
        summary: the learned summary.
        method: registered method name (``"dm"``, ``"random"``, ...).
        modality: the modality that owns the method (``"vision"``, ``"graph"``, ...).
        config: the method's full config as a JSON-able dict.
        dataset: ``RealData.describe()`` of the data it was distilled from.
        seed: the run's seed.
        steps: outer steps performed.
        evaluations: evaluation results, each with its protocol.
        extra: anything else JSON-able (wall time, budget resolution, ...).
    """

    summary: Summary
    method: str
    modality: str
    config: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    steps: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def preprocessing(self) -> Preprocessing:
        return self.summary.preprocessing

    @property
    def info(self) -> SummaryInfo:
        """The method and dataset description that pictures and exports label the summary with."""
        return SummaryInfo(method=self.method, dataset=self.dataset)

    def manifest(self, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": library_versions(),
            "method": self.method,
            "modality": self.modality,
            "config": self.config,
            "dataset": self.dataset,
            "budget": {"total": self.summary.budget, "ipc": self.summary.ipc},
            "summary": self.summary.describe(),
            "preprocessing": self.preprocessing.describe(),
            "seed": self.seed,
            "steps": self.steps,
            "evaluations": self.evaluations,
            "extra": self.extra,
            "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                        for k, v in tensors.items()},
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the artifact atomically; an existing artifact at ``directory`` is replaced only once the new one
        is complete."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tensors = {**self.summary.tensors(), **self.preprocessing.tensors()}
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
        try:
            apply_umask(staging)  # mkdtemp makes it 0700; an artifact is shared like any other folder
            save_file(tensors, str(staging / TENSORS))
            manifest = self.manifest(tensors)
            # ties the two files together: a save interrupted between the two renames below is detected on load
            manifest["tensors_sha256"] = _sha256(staging / TENSORS)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            for name in (TENSORS, MANIFEST):
                apply_umask(staging / name)
            if directory.exists():
                # keep whatever else lives there (checkpoints, PNGs): replace only our two files, each atomically
                for name in (TENSORS, MANIFEST):
                    os.replace(staging / name, directory / name)
                shutil.rmtree(staging)
            else:
                os.replace(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    def add_evaluation(self, directory: str | os.PathLike[str], result: dict[str, Any]) -> None:
        """Append an evaluation result and rewrite only the manifest (atomically)."""
        path = Path(directory) / MANIFEST
        manifest = json.loads(path.read_text(encoding="utf-8"))
        manifest["evaluations"] = [*self.evaluations, result]
        atomic_write_text(path, json.dumps(manifest, indent=2))
        self.evaluations.append(result)  # only once it is on disk, so memory and disk agree after a failure


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fail(directory: Path, problem: str) -> ArtifactError:
    return ArtifactError(f"{directory}: {problem}. Re-create it with `distill run ... --out {directory}` or point "
                         "to a directory written by distill (it holds manifest.json and tensors.safetensors)")


def load_artifact(directory: str | os.PathLike[str]) -> Artifact:
    """Load and validate an artifact directory.

    Raises:
        ArtifactError: missing files, a corrupt or foreign manifest, a truncated tensor file or shape mismatches.
    """
    directory = Path(directory)
    try:
        return _load_artifact(directory)
    except ArtifactError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # fields of the wrong type or shape
        raise _fail(directory, f"{MANIFEST} is malformed ({type(exc).__name__}: {exc})") from exc


def _load_artifact(directory: Path) -> Artifact:
    if not directory.is_dir():
        raise _fail(directory, "no such artifact directory")
    manifest_path, tensors_path = directory / MANIFEST, directory / TENSORS
    if not manifest_path.is_file():
        raise _fail(directory, f"{MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(directory, f"{MANIFEST} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise _fail(directory, f"{MANIFEST} was not written by distill (no 'format': '{FORMAT_NAME}')")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise _fail(directory, f"{MANIFEST} has no integer 'format_version' (got {version!r})")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{directory}: artifact format version {version!r} is newer than this distill-core "
                            f"understands ({FORMAT_VERSION}); upgrade with: pip install -U distill-core")
    for key in ("method", "modality", "summary", "tensors", "dataset"):
        if key not in manifest:
            raise _fail(directory, f"{MANIFEST} lacks the field {key!r}")
    if not tensors_path.is_file():
        raise _fail(directory, f"{TENSORS} is missing")
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _fail(directory, f"{TENSORS} is corrupt or truncated ({exc})") from exc
    expected = manifest["tensors"]
    if set(expected) != set(tensors):
        raise _fail(directory, f"{TENSORS} holds {sorted(tensors)} but the manifest lists {sorted(expected)}")
    for name, spec in expected.items():
        if list(tensors[name].shape) != list(spec.get("shape", [])):
            raise _fail(directory, f"tensor {name!r} has shape {list(tensors[name].shape)} but the manifest says "
                        f"{spec.get('shape')}")
    expected_digest = manifest.get("tensors_sha256")  # absent in artifacts written before it was added
    if expected_digest is not None and _sha256(tensors_path) != expected_digest:
        raise _fail(directory, f"{TENSORS} does not match {MANIFEST} (its checksum differs: an interrupted save, "
                    "or files copied from different artifacts)")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise _fail(directory, f"tensor {name!r} holds {bad} NaN/Inf values (a diverged or damaged run)")
    x = tensors.get("x")
    if x is not None and (x.dim() == 0 or len(x) == 0):
        raise _fail(directory, f"the summary holds no samples (x has shape {list(x.shape)})")
    labels, classes = tensors.get("labels"), manifest["summary"].get("num_classes")
    if labels is not None and not labels.is_floating_point() and labels.numel() and isinstance(classes, int):
        if int(labels.min()) < 0 or int(labels.max()) >= classes:
            raise _fail(directory, f"the summary's labels lie in [{int(labels.min())}, {int(labels.max())}] but it "
                        f"has {classes} classes (0..{classes - 1})")
    try:
        preprocessing = Preprocessing.restore(manifest.get("preprocessing", []), tensors)
        type_name = manifest["summary"].get("type", "dense")
        if type_name != "dense":
            # modality packages register their summary types and parameterizations on import: load the one that
            # wrote the artifact
            from .registry import get_modality

            try:
                get_modality(str(manifest["modality"]))
            except (UnknownNameError, ImportError):
                pass
        cls = summary_type(type_name)
        summary = cls.from_tensors({k: v for k, v in tensors.items() if not k.startswith("preprocessing.")},
                                   manifest["summary"], preprocessing)
    except UnknownNameError as exc:
        raise _fail(directory, f"{exc} (is the modality package that wrote it installed?)") from exc
    return Artifact(
        summary=summary,
        method=manifest["method"],
        modality=manifest["modality"],
        config=manifest.get("config", {}),
        dataset=manifest["dataset"],
        seed=int(manifest.get("seed", 0)),
        steps=int(manifest.get("steps", 0)),
        evaluations=list(manifest.get("evaluations", [])),
        extra=dict(manifest.get("extra", {})),
    )
