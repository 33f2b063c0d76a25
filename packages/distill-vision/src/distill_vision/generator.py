"""A small class-conditional DCGAN (Radford et al., ICLR 2016, https://arxiv.org/abs/1511.06434), trained once per
dataset and cached: the frozen generator behind the ``gan`` parameterization (:mod:`distill_vision.params.gan`).

The generator maps a latent ``z`` and a class ``y`` to a sample in the dataset's *preprocessed* space::

    h = Linear([z, embed(y)]) -> (4·width, H/4, W/4) -> BN-ReLU
    h = 2 x [ConvTranspose 4x4 stride 2 -> BN-ReLU]   (channels halve, size doubles)
    x = tanh(Conv 3x3 (h)) · scale + shift              (per-channel scale/shift: the training data's range)

(fewer upsampling stages when ``H`` or ``W`` is not divisible by 4). The discriminator mirrors it with strided
convolutions, LeakyReLU 0.2 and a class projection (Miyato & Koyama, 2018) of its whole flattened last feature map.
Training follows DCGAN (Adam lr 2e-4, betas (0.5, 0.999), batches of 64, the non-saturating loss) with the
discriminator's learning rate 4x the generator's (``lr_d_ratio``; two time-scale updates, Heusel et al., 2017), plus
a reconstruction term (recipe 3, ``recon_weight`` 10): an encoder :class:`ConditionalEncoder` maps each real image of
the batch to a code on the sphere the generator samples from, and the generator pays ``recon_weight`` times the mean
squared error of ``G(code, y)`` against the image (an autoencoder term beside the adversarial one, as in VAE-GAN,
Larsen et al., ICML 2016, without the KL term). The term keeps every real image within reach of some code, which is
what the ``gan`` parameterization needs: its codes start from inversions of real images (IT-GAN).

Why those two: a first version summed the discriminator's last map over positions, so it judged local patches only,
and both networks learned at 2e-4. Its generator collapsed within each class: on Fashion-MNIST (width 16, 10 epochs)
the samples of one class differed by a pixel std of 0.009 across codes (real images of a class: 0.55, in the
preprocessed space), every code giving the same picture. On 6,000 Fashion-MNIST images (width 16) that std was 0.12
after 6 epochs with the old discriminator, 0.11 after 12 with the 4x rate alone, and 0.21 after 12 with the
flattened projection plus the 4x rate. The fix is partial: on all 60,000 images the std still falls, from 0.22 after
the first epoch to 0.10 after the fourth (old recipe: 0.09 after the first, 0.02 after the fifth), and inverting
real images through the 10-epoch generator left most of their pixel variance unexplained. Hence recipe 3's
reconstruction term. On the same 6,000 Fashion-MNIST images (width 16, 4 epochs, 300 Adam steps of inversion on 200
training images) it raised the explained variance of inverted real images from 0.73 to 0.85 and the spread across
codes from 0.28 to 0.37, at 1.5x the time per epoch; on digits (2 epochs) the unexplained variance fell from 0.22 to
0.12 (seed 0) and 0.42 to 0.24 (seed 1). On all 60,000 Fashion-MNIST images (width 16) the spread across codes
rose over the epochs instead of collapsing: 0.30 / 0.34 / 0.39 / 0.39 / 0.41 / 0.42 after epochs 1-6, 0.36 after
10 (recipe 2: 0.10 after 4); inverting 200 real training images through the 10-epoch generators (300 Adam steps, lr
0.05) explains 89% of their pixel variance with recipe 3 and 7% with recipe 2. ``recon_weight=0`` trains recipe 2's
plain DCGAN (a cache entry of its own). Use a generator trained longer (or your own, the ``gan`` parameterization's
``generator`` option) where sample quality matters.

A :class:`GeneratorStore` is a folder in the user's cache keyed by the dataset fingerprint and the
:class:`GANConfig` (epochs excepted)::

    manifest.json                     format, dataset fingerprint, config, generator floats, versions
    generator-epoch-003.safetensors   the generator after every epoch (with its config as metadata)
    state.safetensors                 generator, discriminator and both Adam states after the last epoch

Every file is written atomically, so a killed build resumes at its last finished epoch, and a longer ``epochs``
continues the same run (each epoch's order and noise are seeded by ``(seed, epoch)``). Opening a store with another
dataset or config is refused. Generator files of one's own are read with :func:`load_generator` (safetensors only).

Cost, measured with one CPU thread on a 2-core machine that was running other work (``OMP_NUM_THREADS=1``), at the
defaults (width 32, batches of 64): digits (1,352 training images, 8x8) 1.0 s per epoch, the default 20 epochs in
20 s, 231,715 generator floats; Fashion-MNIST (60,000, 28x28) about 400 s per epoch (timed on 6,000 images: 40 s),
974,755 floats, so 20 epochs would take about 2 h on such a CPU; width 16 costs about 126 s per epoch (446,739
floats). These times are recipe 2's; recipe 3's reconstruction term costs about 1.5x per epoch (20.3 s against 13.2
s on 6,000 Fashion-MNIST images). On Fashion-MNIST choose ``gan_epochs`` and ``width`` for the time you have, or
use a GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from distill_core.data import RealData, data_fingerprint
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.files import atomic_write_with
from distill_core.stores import default_store_root, open_store_manifest

__all__ = ["ARCHITECTURES", "FORMAT", "ConditionalDCGAN", "ConditionalDiscriminator", "ConditionalEncoder", "GANConfig",
           "GeneratorStore", "build_generator", "cached_generator", "floats_of", "freeze", "load_generator",
           "read_generator_header", "save_generator", "to_sphere", "train_gan"]

logger = logging.getLogger(__name__)

FORMAT = "distill-generator/1"
_EPOCH_FILE = re.compile(r"^generator-epoch-(\d{3,})\.safetensors$")

def _up_stages(height: int, width: int) -> int:
    """Upsampling stages: 2 when H and W are divisible by 4 (8x8 -> from 2x2, 28x28 -> from 7x7), else 1 or 0."""
    for k in (2, 1):
        if height % 2**k == 0 and width % 2**k == 0:
            return k
    return 0


class ConditionalDCGAN(nn.Module):
    """Class-conditional DCGAN generator ``G(z, y)`` (see the module docstring).

    Args:
        latent_dim: length of ``z``.
        num_classes: number of classes.
        sample_shape: ``(C, H, W)`` of one generated sample.
        width: channels of the last hidden stage (the first has ``width · 2^stages``).

    Shapes:
        ``z``: ``(n, latent_dim)``; ``y``: ``(n,)``; output ``(n, C, H, W)``.
    """

    def __init__(self, *, latent_dim: int, num_classes: int, sample_shape: tuple[int, ...], width: int = 32) -> None:
        super().__init__()
        if len(sample_shape) != 3:
            raise DataValidationError(f"the dcgan generator makes images (C, H, W), got sample shape "
                                      f"{tuple(sample_shape)}")
        c, h, w = (int(s) for s in sample_shape)
        self.latent_dim, self.num_classes, self.sample_shape, self.width = latent_dim, num_classes, (c, h, w), width
        stages = _up_stages(h, w)
        self.start = (width * 2**stages, h // 2**stages, w // 2**stages)
        self.embed = nn.Embedding(num_classes, latent_dim)
        self.project = nn.Linear(2 * latent_dim, math.prod(self.start))
        self.project_norm = nn.BatchNorm2d(self.start[0])
        blocks: list[nn.Module] = []
        ch = self.start[0]
        for _ in range(stages):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(ch // 2),
                       nn.ReLU()]
            ch //= 2
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(ch, c, 3, padding=1)
        self.register_buffer("scale", torch.ones(c))
        self.register_buffer("shift", torch.zeros(c))

    def unit(self, z: Tensor, y: Tensor) -> Tensor:
        """The sample in ``[-1, 1]`` (before the data range is applied): what the discriminator sees."""
        h = self.project(torch.cat([z, self.embed(y)], dim=1)).reshape(-1, *self.start)
        h = self.blocks(F.relu(self.project_norm(h)))
        return torch.tanh(self.out(h))

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        return self.unit(z, y) * self.scale.view(1, -1, 1, 1) + self.shift.view(1, -1, 1, 1)  # type: ignore[operator]

    def to_unit(self, x: Tensor) -> Tensor:
        """Data-space samples mapped to the generator's ``[-1, 1]`` range."""
        return (x - self.shift.view(1, -1, 1, 1)) / self.scale.view(1, -1, 1, 1)  # type: ignore[operator]

    def config(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "num_classes": self.num_classes, "sample_shape": list(self.sample_shape),
                "width": self.width}


def _down_stack(sample_shape: tuple[int, ...], width: int) -> tuple[nn.Sequential, int]:
    """The discriminator's (and encoder's) convolutions: a 3x3 convolution to ``width`` channels, then strided 4x4
    convolutions mirroring the generator's upsampling stages (channels double), each followed by LeakyReLU 0.2.

    Returns:
        the stack and the length of its flattened output.
    """
    c, h, w = (int(s) for s in sample_shape)
    layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(0.2)]
    ch, stages = width, _up_stages(h, w)
    for _ in range(stages):
        layers += [nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch *= 2
    return nn.Sequential(*layers), ch * (h // 2**stages) * (w // 2**stages)


class ConditionalDiscriminator(nn.Module):
    """The DCGAN discriminator with a class projection: ``D(x, y) = w·φ(x) + <embed(y), φ(x)>``, where ``φ(x)`` is
    the whole last feature map, flattened (so the discriminator sees the sample's global layout, not only patches).

    Shapes:
        ``x``: ``(n, C, H, W)`` in ``[-1, 1]``; ``y``: ``(n,)``; output ``(n,)`` logits.
    """

    def __init__(self, *, num_classes: int, sample_shape: tuple[int, ...], width: int = 32) -> None:
        super().__init__()
        self.features, dim = _down_stack(sample_shape, width)
        self.linear = nn.Linear(dim, 1)
        self.embed = nn.Embedding(num_classes, dim)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        phi = self.features(x).flatten(1)
        return self.linear(phi).squeeze(1) + (self.embed(y) * phi).sum(dim=1)


class ConditionalEncoder(nn.Module):
    """The encoder of the reconstruction term: the discriminator's convolutional stack and a linear map to a latent
    code, ``E(x)``; ``G(to_sphere(E(x)), y)`` should give ``x`` back. Used only while training; not stored with the
    generator.

    Shapes:
        ``x``: ``(n, C, H, W)`` in ``[-1, 1]``; output ``(n, latent_dim)``.
    """

    def __init__(self, *, latent_dim: int, sample_shape: tuple[int, ...], width: int = 32) -> None:
        super().__init__()
        self.features, dim = _down_stack(sample_shape, width)
        self.linear = nn.Linear(dim, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x).flatten(1))  # type: ignore[no-any-return]


def to_sphere(z: Tensor) -> Tensor:
    """Codes scaled to norm ``sqrt(latent_dim)``, where ``N(0, I)`` codes concentrate (the generator's training
    region).

    Shapes:
        z: ``(n, latent_dim)``; returns the same shape.
    """
    return z * (z.shape[1] ** 0.5) / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


#: named generator architectures (``architecture`` option of the ``gan`` parameterization)
ARCHITECTURES: dict[str, type[ConditionalDCGAN]] = {"dcgan": ConditionalDCGAN}


def build_generator(architecture: str, *, latent_dim: int, num_classes: int, sample_shape: tuple[int, ...],
                    width: int = 32) -> ConditionalDCGAN:
    """The generator ``architecture`` (a name of :data:`ARCHITECTURES`) with random weights.

    Raises:
        UnknownNameError: an unknown architecture (the message lists the valid ones).
    """
    if architecture not in ARCHITECTURES:
        raise UnknownNameError("generator architecture", architecture, sorted(ARCHITECTURES))
    return ARCHITECTURES[architecture](latent_dim=latent_dim, num_classes=num_classes, sample_shape=sample_shape,
                                       width=width)


def freeze(module: nn.Module) -> nn.Module:
    """Turn every parameter of ``module`` into a buffer of the same name (in place) and put it in eval mode: the
    module keeps its ``state_dict`` keys and still computes, but has no parameters (nothing for an optimizer, not
    counted as stored floats) and its BatchNorm statistics no longer change."""
    for sub in module.modules():
        for name, p in list(sub._parameters.items()):
            if p is None:
                continue
            del sub._parameters[name]
            sub.register_buffer(name, p.detach().clone())
    return module.eval()


def floats_of(module: nn.Module) -> int:
    """Floats of a module's state (parameters and floating-point buffers)."""
    return int(sum(t.numel() for t in module.state_dict().values() if t.is_floating_point()))


# -- files ----------------------------------------------------------------------------------------------------------
def save_generator(path: str | os.PathLike[str], generator: ConditionalDCGAN, *, architecture: str = "dcgan",
                   extra: dict[str, str] | None = None) -> Path:
    """Write ``generator``'s state to a safetensors file (atomically), with its architecture and config as metadata,
    so :func:`load_generator` can rebuild and check it."""
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in generator.state_dict().items()}
    meta = {"format": FORMAT, "architecture": architecture, "config": json.dumps(generator.config()),
            **(extra or {})}
    return atomic_write_with(path, lambda tmp: save_file(flat, str(tmp), metadata=meta))


def read_generator_header(path: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, list[int]]]:
    """The metadata and tensor shapes of a generator file (the header only; nothing is computed).

    Raises:
        DataValidationError: no such file, or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"generator file {path} does not exist; pass the path of a .safetensors file "
                                  "written by distill_vision.generator.save_generator, or leave 'generator' out to "
                                  "train and cache one for this dataset")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
            shapes = {k: list(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise DataValidationError(f"generator file {path} is not a readable safetensors file ({exc}); only "
                                  "safetensors generators are accepted") from exc
    return meta, shapes


def generator_config(path: str | os.PathLike[str], *, architecture: str) -> dict[str, Any]:
    """The config (``latent_dim``, ``num_classes``, ``sample_shape``, ``width``) a generator file declares.

    Raises:
        DataValidationError: the file lacks the metadata or declares another architecture.
    """
    meta, _ = read_generator_header(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise DataValidationError(f"generator file {path} has no {FORMAT!r} metadata (architecture and config); "
                                  "write it with distill_vision.generator.save_generator")
    if meta.get("architecture") != architecture:
        raise DataValidationError(f"generator file {path} holds architecture {meta.get('architecture')!r}, but "
                                  f"option 'architecture' is {architecture!r}; pass the file's architecture")
    try:
        config = json.loads(meta["config"])
        return {"latent_dim": int(config["latent_dim"]), "num_classes": int(config["num_classes"]),
                "sample_shape": [int(s) for s in config["sample_shape"]], "width": int(config["width"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataValidationError(f"generator file {path} has an unreadable config ({exc})") from exc


def check_generator_fits(path: str | os.PathLike[str], config: dict[str, Any], *, sample_shape: tuple[int, ...],
                         num_classes: int) -> None:
    """Refuse a generator whose samples or classes are not the dataset's (before anything is computed)."""
    made, classes = tuple(config["sample_shape"]), config["num_classes"]
    if made != tuple(sample_shape) or classes != num_classes:
        raise DataValidationError(
            f"generator file {path} makes samples of shape {made} for {classes} classes, but the dataset's samples "
            f"have shape {tuple(sample_shape)} and {num_classes} classes; pass a generator trained on this dataset "
            "(same preprocessing), or leave option 'generator' out to train and cache one here")


def load_generator(path: str | os.PathLike[str], *, architecture: str, sample_shape: tuple[int, ...],
                   num_classes: int) -> ConditionalDCGAN:
    """A generator file (safetensors only) rebuilt and checked against the dataset.

    Raises:
        DataValidationError: wrong output shape or classes (both named, with the fix), tensors that do not fit
            the declared architecture, or an unreadable file.
    """
    config = generator_config(path, architecture=architecture)
    check_generator_fits(path, config, sample_shape=sample_shape, num_classes=num_classes)
    model = build_generator(architecture, latent_dim=config["latent_dim"], num_classes=num_classes,
                            sample_shape=tuple(config["sample_shape"]), width=config["width"])
    with safe_open(str(path), framework="pt") as handle:
        state = {k: handle.get_tensor(k) for k in handle.keys()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataValidationError(f"generator file {path} does not fit its declared {architecture} config "
                                  f"{config} ({exc})") from exc
    with torch.no_grad():
        made = tuple(model.eval()(torch.zeros(1, config["latent_dim"]), torch.zeros(1, dtype=torch.long)).shape[1:])
    if made != tuple(sample_shape):  # the architecture disagrees with its declared config
        raise DataValidationError(f"generator file {path} makes samples of shape {made}, but the dataset's have "
                                  f"shape {tuple(sample_shape)}; pass a generator for this dataset")
    return model


# -- training and cache ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GANConfig:
    """How the cached generator is trained. Part of the cache entry's identity, except ``epochs`` (a longer run
    continues a shorter one).

    Args:
        architecture: a name of :data:`ARCHITECTURES`.
        latent_dim: length of ``z``.
        width: channels of the last hidden stage of the generator and the first of the discriminator.
        epochs: passes over the training split.
        batch_size: minibatch size.
        lr: Adam learning rate of both networks (DCGAN: 2e-4).
        beta1: Adam's first beta (DCGAN: 0.5).
        seed: seeds the initialisation and every epoch's order and noise.
        lr_d_ratio: the discriminator's learning rate over ``lr`` (two time-scale updates).
        recon_weight: weight of the reconstruction term in the generator's loss (0: a plain DCGAN, recipe 2).
    """

    architecture: str = "dcgan"
    latent_dim: int = 64
    width: int = 32
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    seed: int = 0
    lr_d_ratio: float = 4.0
    recon_weight: float = 10.0
    #: the training recipe's version: part of the cache identity, so generators of an older recipe are not reused
    recipe: int = 3

    def __post_init__(self) -> None:
        for key in ("latent_dim", "width", "epochs", "batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DataValidationError(f"gan option {key!r} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0) or not 0 <= self.beta1 < 1:
            raise DataValidationError(f"gan: lr must be > 0 and beta1 in [0, 1), got {self.lr}, {self.beta1}")
        if not (math.isfinite(self.lr_d_ratio) and self.lr_d_ratio > 0):
            raise DataValidationError(f"gan: lr_d_ratio must be > 0, got {self.lr_d_ratio}")
        if not (math.isfinite(self.recon_weight) and self.recon_weight >= 0):
            raise DataValidationError(f"gan: recon_weight must be >= 0 (0: no reconstruction term), got "
                                      f"{self.recon_weight}")
        if self.architecture not in ARCHITECTURES:
            raise UnknownNameError("generator architecture", self.architecture, sorted(ARCHITECTURES))

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "epochs"}

    def key(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _epoch_seed(config: GANConfig, epoch: int) -> int:
    return (config.seed * 1_000_003 + epoch * 101 + 23) % (2**63 - 1)


class GeneratorStore:
    """The cache folder of one dataset's generator for one :class:`GANConfig` (see the module docstring)."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root = root
        self.manifest = manifest

    @staticmethod
    def default_root(data: RealData, config: GANConfig) -> Path:
        """``<user cache>/generators/<dataset>-<content hash>-<config hash>``."""
        return default_store_root("generators", data, config.key())

    @classmethod
    def open(cls, data: RealData, config: GANConfig, root: str | os.PathLike[str] | None = None) -> GeneratorStore:
        """Open (or create) the store of ``data`` and ``config``.

        Raises:
            DataValidationError: the folder holds a generator of another dataset or config (named), or is not a
                store.
        """
        path = Path(root) if root is not None else cls.default_root(data, config)
        wanted = {"format": FORMAT, "dataset": data_fingerprint(data), "config": config.identity()}

        def check(manifest: dict[str, Any]) -> None:
            for key in ("format", "dataset", "config"):
                if manifest.get(key) != json.loads(json.dumps(wanted[key])):
                    raise DataValidationError(
                        f"the generator cache {path} holds another {key} ({manifest.get(key)!r}) than this run's "
                        f"({wanted[key]!r}); generators are never reused across datasets or GAN configs; delete the "
                        "folder or change the config")

        from importlib import metadata

        versions = {"torch": torch.__version__, "distill-vision": _version(metadata, "distill-vision")}
        return cls(path, open_store_manifest(path, what="generator cache", wanted=wanted, check=check,
                                             extra={"versions": versions}))

    def generator_path(self, epoch: int) -> Path:
        return self.root / f"generator-epoch-{epoch:03d}.safetensors"

    def epochs(self) -> int:
        """The last epoch whose generator is stored (0: none)."""
        have = {int(m.group(1)) for f in self.root.iterdir() if (m := _EPOCH_FILE.match(f.name))}
        return max(have, default=0)


def _version(metadata: Any, name: str) -> str:
    try:
        return str(metadata.version(name))
    except metadata.PackageNotFoundError:
        return "unknown"


def _state(prefix: str, model: nn.Module, optimizer: torch.optim.Optimizer, *,
           extra: nn.Module | None = None) -> dict[str, Tensor]:
    """``model``'s weights (and ``extra``'s, which shares the optimizer) and the optimizer's per-parameter state."""
    out = {f"{prefix}.{k}": v for k, v in model.state_dict().items()}
    if extra is not None:
        out |= {f"{prefix}_extra.{k}": v for k, v in extra.state_dict().items()}
    params = [*model.parameters(), *(extra.parameters() if extra is not None else ())]
    for i, p in enumerate(params):
        for key, value in optimizer.state.get(p, {}).items():
            out[f"{prefix}_adam.{i}.{key}"] = torch.as_tensor(value).reshape(-1) if key == "step" else value
    return out


def _restore(prefix: str, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Tensor], *,
             extra: nn.Module | None = None) -> None:
    model.load_state_dict({k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")})
    if extra is not None:
        cut = len(prefix) + len("_extra.")
        extra.load_state_dict({k[cut:]: v for k, v in state.items() if k.startswith(prefix + "_extra.")})
    saved = optimizer.state_dict()
    params = [*model.parameters(), *(extra.parameters() if extra is not None else ())]
    for i, _ in enumerate(params):
        entry = {key: state[f"{prefix}_adam.{i}.{key}"] for key in ("step", "exp_avg", "exp_avg_sq")
                 if f"{prefix}_adam.{i}.{key}" in state}
        if entry:
            entry["step"] = entry["step"].reshape(())
            saved["state"][i] = entry
    optimizer.load_state_dict(saved)


def train_gan(store: GeneratorStore, data: RealData, config: GANConfig, *, progress: bool = False,
              device: torch.device | str | None = None) -> dict[str, Any]:
    """Train the store's GAN until ``config.epochs`` epochs are stored, continuing from its last epoch.

    Returns:
        the cost: epochs trained now, wall seconds, and the wall seconds per epoch.
    """
    device = torch.device(device) if device is not None else data.x_train.device
    have = store.epochs()
    if have >= config.epochs:
        return {"epochs_trained": 0, "wall_s": 0.0}
    shape, classes = data.sample_shape, data.num_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_epoch_seed(config, 0))
        gen = build_generator(config.architecture, latent_dim=config.latent_dim, num_classes=classes,
                              sample_shape=shape, width=config.width)
        disc = ConditionalDiscriminator(num_classes=classes, sample_shape=shape, width=config.width)
        enc = ConditionalEncoder(latent_dim=config.latent_dim, sample_shape=shape, width=config.width)
    x_train = data.x_train.float()
    dims = [0, *range(2, x_train.dim())]
    low, high = x_train.amin(dim=dims), x_train.amax(dim=dims)
    gen.scale.copy_(((high - low) / 2).clamp_min(1e-6))  # type: ignore[operator]
    gen.shift.copy_((high + low) / 2)  # type: ignore[operator]
    gen, disc, enc = gen.to(device), disc.to(device), enc.to(device)
    recon = config.recon_weight > 0
    # the encoder learns with the generator (one optimizer, the generator's lr); without the term it is not trained
    opt_g = torch.optim.Adam([*gen.parameters(), *(enc.parameters() if recon else ())], lr=config.lr,
                             betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr * config.lr_d_ratio, betas=(config.beta1, 0.999))
    state_path = store.root / "state.safetensors"
    if have > 0 and state_path.is_file():
        with safe_open(str(state_path), framework="pt") as handle:
            if int((handle.metadata() or {}).get("epoch", -1)) == have:
                state = {k: handle.get_tensor(k).to(device) for k in handle.keys()}
                _restore("generator", gen, opt_g, state, extra=enc if recon else None)
                _restore("discriminator", disc, opt_d, state)
            else:
                have = 0
    else:
        have = 0
    x_unit = gen.to_unit(x_train.to(device))
    y_train = data.y_train.to(device)
    n, start = len(y_train), time.perf_counter()
    if have == 0:
        logger.info("training a conditional DCGAN on %s for %d epochs (cached in %s)", data.name, config.epochs,
                    store.root)
    for epoch in tqdm(range(have + 1, config.epochs + 1), desc="gan (epochs)", disable=not progress,
                      dynamic_ncols=True, initial=have, total=config.epochs):
        rng = torch.Generator().manual_seed(_epoch_seed(config, epoch))
        gen.train()
        for idx in torch.randperm(n, generator=rng).split(config.batch_size):
            x_real, y = x_unit[idx], y_train[idx]
            z = torch.randn(len(idx), config.latent_dim, generator=rng).to(device)
            if recon:  # one generator pass (shared BatchNorm statistics): random codes, then the real images' codes
                both = gen.unit(torch.cat([z, to_sphere(enc(x_real))]), torch.cat([y, y]))
                fake, rebuilt = both[:len(idx)], both[len(idx):]
            else:
                fake = gen.unit(z, y)
            loss_d = F.softplus(-disc(x_real, y)).mean() + F.softplus(disc(fake.detach(), y)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.softplus(-disc(fake, y)).mean()
            if recon:
                loss_g = loss_g + config.recon_weight * (rebuilt - x_real).pow(2).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if not (torch.isfinite(loss_d) and torch.isfinite(loss_g)):
                raise FloatingPointError(f"GAN training diverged in epoch {epoch}; lower the GAN lr (now "
                                         f"{config.lr})")
        save_generator(store.generator_path(epoch), gen.eval(), architecture=config.architecture,
                       extra={"epoch": str(epoch)})
        full = {**_state("generator", gen, opt_g, extra=enc if recon else None), **_state("discriminator", disc, opt_d)}
        full = {k: v.detach().cpu().contiguous().clone() for k, v in full.items()}
        atomic_write_with(state_path, lambda tmp, t=full, e=epoch: save_file(t, str(tmp),  # type: ignore[misc]
                                                                            metadata={"epoch": str(e)}))
    wall = time.perf_counter() - start
    trained = config.epochs - have
    logger.info("conditional DCGAN on %s: %d epoch(s) in %.1f s (%.2f s per epoch)", data.name, trained, wall,
                wall / trained)
    return {"epochs_trained": trained, "wall_s": round(wall, 2), "wall_s_per_epoch": round(wall / trained, 3)}


def cached_generator(data: RealData, config: GANConfig, *, progress: bool = False,
                     root: str | os.PathLike[str] | None = None) -> tuple[ConditionalDCGAN, dict[str, Any]]:
    """The generator of ``data`` and ``config`` after ``config.epochs`` epochs: read from the cache, trained (and
    cached) first when missing.

    Returns:
        the generator (eval mode, CPU) and a record: the cache folder, whether it was trained now, and the cost.
    """
    store = GeneratorStore.open(data, config, root)
    cost = train_gan(store, data, config, progress=progress)
    path = store.generator_path(config.epochs)
    if not path.is_file():
        raise DataValidationError(f"the generator cache {store.root} lacks epoch {config.epochs}; delete the folder "
                                  "to retrain")
    try:
        gen = load_generator(path, architecture=config.architecture, sample_shape=data.sample_shape,
                             num_classes=data.num_classes)
    except SafetensorError as exc:
        raise DataValidationError(f"{path} is corrupt ({exc}); delete it to retrain that epoch") from exc
    return gen.eval(), {"cache": str(store.root), "epochs": config.epochs, "trained_now": cost["epochs_trained"] > 0,
                        **cost}
