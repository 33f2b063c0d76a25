"""Networks for image distillation and cross-architecture evaluation.

ConvNet is the field's standard (DC, DSA, DM, MTT, ...): ``depth`` blocks of conv3x3 -> instance norm
(GroupNorm(C, C)) -> ReLU -> avg-pool 2x2, then a linear classifier; 28x28 single-channel inputs get padding 3 in
the first conv so features are computed as for 32x32 (VICO-UoE/DatasetCondensation networks.py). MLP, LeNet and a
ResNet-18-style net serve cross-architecture evaluation.

``ARCHITECTURE_DEFAULTS`` holds per-architecture defaults: evaluation and image learning rates that the papers
tuned per architecture (a ConvNet's image learning rate used with an MLP silently costs accuracy).
:func:`check_architecture_defaults` warns when a method
switches architecture but keeps another architecture's settings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from distill_core.errors import UnknownNameError

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURE_DEFAULTS",
    "MLP",
    "POOLS",
    "ConvNet",
    "LeNet",
    "ResNet18",
    "build_model",
    "check_architecture_defaults",
    "has_batchnorm",
    "convnet_search_space",
    "list_models",
    "register_model",
]

logger = logging.getLogger(__name__)
_MODELS: dict[str, Callable[..., nn.Module]] = {}

#: per-architecture defaults: evaluation learning rate, the DC/DSA image learning rate (DC readme: 0.01 for MLP)
#: and DM's (the reference's 1.0 for ConvNet; with BatchNorm, whose batch statistics rescale the embedding's
#: gradient, 1.0 diverges on digits at IPC 1 - 38.7 +- 15.4% - where 0.1 reaches 88.3%, measured here)
ARCHITECTURE_DEFAULTS: dict[str, dict[str, float]] = {
    "convnet": {"eval_lr": 0.01, "dc_lr_images": 0.1, "dm_lr_images": 1.0},
    "convnet-bn": {"eval_lr": 0.01, "dc_lr_images": 0.1, "dm_lr_images": 0.1},
    "mlp": {"eval_lr": 0.01, "dc_lr_images": 0.01},
    "lenet": {"eval_lr": 0.01, "dc_lr_images": 0.1},
    "resnet18": {"eval_lr": 0.01, "dc_lr_images": 0.1},
}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``f(*, in_channels, num_classes, image_size, **kwargs) -> nn.Module``; duplicates are
    refused."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def build_model(name: str, *, sample_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
    """Build architecture ``name`` for images of ``sample_shape = (C, H, W)``."""
    if name not in _MODELS:
        raise UnknownNameError("model", name, _MODELS)
    if len(sample_shape) != 3:
        raise ValueError(f"image models need samples shaped (C, H, W), got {sample_shape}")
    c, h, w = sample_shape
    if h != w:
        raise ValueError(f"square images expected, got {h}x{w}")
    return _MODELS[name](in_channels=c, num_classes=num_classes, image_size=h, **kwargs)


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` normalises with batch statistics (any BatchNorm layer)."""
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in net.modules())


def check_architecture_defaults(model: str, *, lr_images: float, reference_key: str = "dc_lr_images") -> None:
    """Warn when ``lr_images`` is another architecture's default rather than ``model``'s."""
    own = ARCHITECTURE_DEFAULTS.get(model, {}).get(reference_key)
    if own is None or math.isclose(lr_images, own):
        return
    others = [m for m, d in ARCHITECTURE_DEFAULTS.items() if m != model and math.isclose(d.get(reference_key, -1),
                                                                                          lr_images)]
    if others:
        logger.warning("model %r is used with lr_summary=%g, the default of %s; its own default is %g "
                       "(set lr_summary explicitly to silence this)", model, lr_images, others, own)


#: ConvNet's activations by name (``act=``)
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leakyrelu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "sigmoid": nn.Sigmoid,
}
#: ConvNet's pooling after each block (``pool=``)
POOLS = ("avgpool", "maxpool", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise UnknownNameError("norm", kind, ["instancenorm", "batchnorm", "none"])


class _FeaturesThenClassifier(nn.Module):
    """What every model here is: ``features`` (images -> ``(n, embed_dim)``) then ``classifier``; ``embed`` is the
    features, the space distribution matching compares."""

    features: nn.Module
    classifier: nn.Module
    embed_dim: int

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class ConvNet(_FeaturesThenClassifier):
    """ConvNet-D (Gidaris & Komodakis 2018; the DC/DSA/DM default, https://arxiv.org/abs/2006.05929).

    Args:
        in_channels: image channels.
        num_classes: output classes.
        image_size: input height = width.
        width: channels of every conv layer (128).
        depth: conv blocks (3); reduced so that the last feature map is at least 2x2 (8x8 digits: 2 blocks).
        norm: ``"instancenorm"`` (GroupNorm(C, C)), ``"batchnorm"`` or ``"none"``.
        pool: ``"avgpool"``, ``"maxpool"`` or ``"none"`` (no down-sampling; DC's architecture-search space).
        act: ``"relu"``, ``"leakyrelu"`` (slope 0.01) or ``"sigmoid"`` (the activations of DC's search space).

    Shapes:
        input ``(N, C, H, W)``; :meth:`embed` ``(N, width * s * s)``; output ``(N, num_classes)``.
    """

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int, width: int = 128, depth: int = 3,
                 norm: str = "instancenorm", pool: str = "avgpool", act: str = "relu") -> None:
        super().__init__()
        if pool not in POOLS:
            raise UnknownNameError("pool", pool, POOLS)
        if act not in ACTIVATIONS:
            raise UnknownNameError("act", act, ACTIVATIONS)
        size = 32 if image_size == 28 else image_size  # 28x28 is padded to 32x32 by the first conv
        # keep at least 2x2 feature maps: on 8x8 digits a third pooling to 1x1 throws away the layout that
        # distribution/gradient matching needs (measured on digits: DM IPC 1 64% -> 88% with depth 2 vs 3)
        depth = max(1, min(depth, int(math.log2(size)) - 1))
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(depth):
            padding = 3 if (i == 0 and image_size == 28) else 1
            layers += [nn.Conv2d(channels, width, 3, padding=padding), _norm(norm, width), ACTIVATIONS[act]()]
            if pool != "none":
                layers.append(nn.AvgPool2d(2) if pool == "avgpool" else nn.MaxPool2d(2))
                size //= 2
            channels = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.embed_dim = width * size * size
        self.classifier = nn.Linear(self.embed_dim, num_classes)


def convnet_search_space(image_size: int, *, depths: tuple[int, ...] = (1, 2, 3, 4),
                         widths: tuple[int, ...] = (16, 32, 64, 128),
                         norms: tuple[str, ...] = ("none", "instancenorm", "batchnorm"),
                         activations: tuple[str, ...] = ("relu", "leakyrelu", "sigmoid"),
                         pools: tuple[str, ...] = ("avgpool", "maxpool", "none")) -> list[dict[str, Any]]:
    """ConvNet variants for architecture search, after DC's space (Zhao et al., ICLR 2021, §4.4: depth, width,
    activation, normalisation and pooling; 720 ConvNets on CIFAR-10), as ``{"model": "convnet", "model_kwargs":
    {...}}`` rows. Depths that :class:`ConvNet` would reduce to the same network on ``image_size`` (8x8 digits keep
    at most 2 blocks) appear once, so no two rows build the same architecture.

    Returns:
        ``len(distinct depths) * len(widths) * len(norms) * len(activations) * len(pools)`` rows (8x8: 216;
        28x28 / 32x32: 432 with the defaults).
    """
    size = 32 if image_size == 28 else image_size
    cap = max(1, int(math.log2(size)) - 1)
    kept = sorted({max(1, min(d, cap)) for d in depths})
    return [{"model": "convnet", "model_kwargs": {"depth": d, "width": w, "norm": n, "act": a, "pool": p}}
            for d in kept for w in widths for n in norms for a in activations for p in pools]


class MLP(_FeaturesThenClassifier):
    """3-layer perceptron (width 128, ReLU), DC's MLP baseline architecture."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int, width: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, width),
                                      nn.ReLU(inplace=True), nn.Linear(width, width), nn.ReLU(inplace=True))
        self.embed_dim = width
        self.classifier = nn.Linear(width, num_classes)


class LeNet(_FeaturesThenClassifier):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling; 28x28 single-channel inputs are padded to 32x32."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        pad = 2 if image_size == 28 else 0
        size = image_size + 2 * pad
        s1 = (size - 4) // 2
        s2 = max(1, (s1 - 4) // 2) if s1 > 4 else 1
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad if size >= 12 else 2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=0 if s1 > 4 else 2), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(s2),
            nn.Flatten(),
        )
        self.embed_dim = 16 * s2 * s2
        self.classifier = nn.Sequential(nn.Linear(self.embed_dim, 120), nn.ReLU(inplace=True), nn.Linear(120, 84),
                                        nn.ReLU(inplace=True), nn.Linear(84, num_classes))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), _norm(norm, c_out),
                                  nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                                  _norm(norm, c_out))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(norm, c_out))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18(_FeaturesThenClassifier):
    """ResNet-18 (He et al. 2016) in the CIFAR layout used by DC's cross-architecture tables (3x3 stem, no
    max-pool, 64-128-256-512 channels), with instance norm by default."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int, norm: str = "instancenorm",
                 width: int = 64) -> None:
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), _norm(norm, widths[0]),
                                   nn.ReLU(inplace=True)]
        c = widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [_BasicBlock(c, w, stride, norm), _BasicBlock(w, w, 1, norm)]
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embed_dim = c
        self.classifier = nn.Linear(c, num_classes)


register_model("convnet")(ConvNet)
register_model("convnet-bn")(lambda **kw: ConvNet(norm="batchnorm", **kw))
register_model("mlp")(MLP)
register_model("lenet")(LeNet)
register_model("resnet18")(ResNet18)
