"""The vision modality: image datasets, ConvNet and friends, DSA augmentation, ConvNet features for coresets and
PNG grids of synthetic images."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from distill_core.data import RealData
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.evaluation import EvalProtocol
from distill_core.imaging import label_rows, make_grid, save_png
from distill_core.modality import Modality, SummaryInfo
from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary

from . import datasets
from .augment import DEFAULT_STRATEGY, DSA, MNIST_STRATEGY
from .models import ARCHITECTURE_DEFAULTS, build_model, convnet_search_space, list_models

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

    def render(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """A PNG grid: one row per class, labelled with the class index and name, its synthetic images left to right,
        preprocessing inverted."""
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
        names = info.class_names or [str(c) for c in range(summary.num_classes)]
        labels = [f"{c} {names[c]}" if str(names[c]) != str(c) else str(c) for c in range(summary.num_classes)]
        bases = _bases(summary)
        if bases is not None:  # a parameterized summary's shared components, after the classes, each min-max scaled
            lo, hi = bases.amin(dim=(1, 2, 3), keepdim=True), bases.amax(dim=(1, 2, 3), keepdim=True)
            bases = ((bases - lo) / (hi - lo).clamp_min(1e-8)).to(x.dtype)
            for row in range(math.ceil(len(bases) / columns)):
                chunk = list(bases[row * columns:(row + 1) * columns].split(1))
                tiles += chunk + [blank] * (columns - len(chunk))
                labels.append("bases")
        grid = make_grid(torch.cat(tiles), nrow=columns)
        if grid.shape[0] not in (1, 3):
            grid = grid[:3] if grid.shape[0] > 3 else grid[:1]
        grid = label_rows(grid, labels, tile=x.shape[-2])
        scale = max(1, math.ceil(64 / x.shape[-1]))
        return save_png(grid, path, scale=scale)

    def export(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """The samples a trainer sees, readable without distill: ``.npz`` (``x`` as stored in the model's input
        space, ``x_pixels`` with the preprocessing inverted, ``y`` the hard labels, ``label_values`` when the summary
        learned soft labels, ``lr`` when it learned its inner learning rate, ``class_names``) or ``.png`` (the grid
        of :meth:`render`). A parameterized summary exports its decoded samples."""
        path = Path(path)
        if path.suffix.lower() == ".png":
            return self.render(summary, info, path)
        if path.suffix.lower() != ".npz":
            raise DataValidationError(f"the vision modality exports .npz (arrays) or .png (a grid), not "
                                      f"{path.suffix or 'a file without suffix'!r}; name --out accordingly")
        with torch.no_grad():
            x = summary.x.detach().float().cpu()
            arrays = {"x": x.numpy(), "x_pixels": summary.preprocessing.invert(x).numpy(),
                      "y": summary.labels.cpu().numpy(),
                      "class_names": np.array(info.class_names or [str(c) for c in range(summary.num_classes)])}
            if summary.label_values is not None:
                arrays["label_values"] = summary.label_values.detach().float().cpu().numpy()
            if summary.lr is not None:
                arrays["lr"] = np.array(float(summary.lr))
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    def architecture_space(self, data: RealData) -> list[dict[str, Any]]:
        """ConvNet variants over depth, width, normalisation, activation and pooling
        (:func:`~distill_vision.models.convnet_search_space`, after DC's search space) for ``data``'s image size."""
        return convnet_search_space(data.sample_shape[-1])


def _bases(summary: Summary) -> Tensor | None:
    param = getattr(summary, "param", None)
    bases = param.bases() if param is not None else None
    return None if bases is None else bases.detach().float().cpu()
