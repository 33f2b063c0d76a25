"""The vision modality: image datasets, ConvNet and friends, DSA augmentation, ConvNet features for coresets and
PNG grids of synthetic images."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from distill_core.artifact import Artifact
from distill_core.data import RealData
from distill_core.errors import UnknownNameError
from distill_core.evaluation import EvalProtocol
from distill_core.imaging import label_rows, make_grid, save_png
from distill_core.modality import Modality
from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary

from . import datasets
from .augment import DEFAULT_STRATEGY, DSA, MNIST_STRATEGY
from .models import ARCHITECTURE_DEFAULTS, build_model, list_models

__all__ = ["VisionModality", "default_strategy"]

_DIGIT_SETS = ("digits", "mnist")


def default_strategy(dataset_name: str) -> str:
    """DSA strategy of the DSA readme: no flip on digit datasets."""
    base = datasets.parse_spec(dataset_name)[0]
    return MNIST_STRATEGY if base in _DIGIT_SETS else DEFAULT_STRATEGY


class VisionModality(Modality):
    """Images ``(N, C, H, W)``."""

    name = "vision"

    def dataset_names(self) -> list[str]:
        return [*datasets.DATASETS, "npz:PATH", "cifar10:PATH"]

    def claims(self, spec: str) -> bool:
        """Image specs, ``cifar10:PATH`` and ``npz:PATH`` archives holding ``x_train`` (or unreadable ones, so
        the image loader reports the problem); reads only the zip directory and never raises."""
        base, _ = datasets.parse_spec(spec)
        if base in datasets.DATASETS or base.startswith("cifar10:"):
            return True
        if base.startswith("npz:"):
            keys = datasets.npz_keys(base[4:])
            return keys is None or "x_train" in keys  # unreadable or missing: the loader says what is wrong
        return False

    def load_dataset(self, spec: str, *, root: str | None = None,
                     preprocessing: Preprocessing | None = None) -> RealData:
        return datasets.load(spec, root=root, preprocessing=preprocessing)

    def model_names(self) -> list[str]:
        return list_models()

    def build_model(self, name: str, *, sample_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        return build_model(name, sample_shape=sample_shape, num_classes=num_classes, **kwargs)

    def default_protocol(self, dataset: dict[str, Any], summary: Summary) -> EvalProtocol:
        """The DC protocol at a CPU-friendly length: ConvNet, SGD 0.01 momentum 0.9 wd 5e-4, x0.1 at half, 300
        epochs, no augmentation, 3 models (papers: 1000 epochs with DSA for DSA/DM, 20+ models; see the
        benchmark runner's paper profile)."""
        return EvalProtocol(model="convnet", epochs=300, lr=ARCHITECTURE_DEFAULTS["convnet"]["eval_lr"],
                            augment=None, n_models=3)

    def augmenter(self, name: str | None) -> Callable[[Tensor, torch.Generator], Tensor] | None:
        """``"dsa"`` (default strategy) or ``"dsa:<strategy>"``, non-Siamese (per-sample parameters)."""
        if name is None:
            return None
        kind, _, strategy = name.partition(":")
        if kind != "dsa":
            raise UnknownNameError("augmentation", name, ["dsa", "dsa:<strategy>"])
        dsa = DSA(strategy or DEFAULT_STRATEGY)
        return lambda x, g: dsa(x, generator=g)

    @torch.no_grad()
    @torch.no_grad()
    def features(self, data: RealData, indices: Tensor, *, seed: int) -> Tensor:
        """Embeddings of a randomly initialised ConvNet (seeded), the feature space of the DC paper's coresets
        (without autograd: a class of Fashion-MNIST would otherwise keep ~GBs of activations alive)."""
        torch.manual_seed(seed)
        net = self.build_model("convnet", sample_shape=data.sample_shape, num_classes=data.num_classes).eval()
        x = data.x_train[indices]
        return torch.cat([net.embed(x[i:i + 512]) for i in range(0, len(x), 512)])

    def render(self, artifact: Artifact, path: Path) -> Path:
        """A PNG grid: one row per class, labelled with the class index and name, its synthetic images left to right,
        preprocessing inverted."""
        summary = artifact.summary
        x = summary.preprocessing.invert(summary.x.detach().float())
        lo, hi = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
        in_range = bool((x.min() >= -0.05) & (x.max() <= 1.05))
        x = x.clamp(0, 1) if in_range else (x - lo) / (hi - lo).clamp_min(1e-8)
        per_class = [torch.nonzero(summary.labels == c).flatten() for c in range(summary.num_classes)]
        columns = max(len(idx) for idx in per_class)
        blank = torch.ones_like(x[:1])
        tiles = []
        for idx in per_class:
            tiles += [x[i:i + 1] for i in idx] + [blank] * (columns - len(idx))
        grid = make_grid(torch.cat(tiles), nrow=columns)
        if grid.shape[0] not in (1, 3):
            grid = grid[:3] if grid.shape[0] > 3 else grid[:1]
        names = list(artifact.dataset.get("class_names") or range(summary.num_classes))
        grid = label_rows(grid, [f"{c} {names[c]}" if str(names[c]) != str(c) else str(c)
                                 for c in range(summary.num_classes)], tile=x.shape[-2])
        scale = max(1, math.ceil(64 / x.shape[-1]))
        return save_png(grid, path, scale=scale)
