"""Generator latents behind a frozen class-conditional GAN, after IT-GAN (Zhao & Bilen, NeurIPS-W 2022,
"Synthesizing Informative Training Samples with GAN", https://arxiv.org/abs/2204.07513).

A decoded sample is ``G(z, y)``: a learned latent code ``z`` (``latent_dim`` floats) of class ``y`` passed through a
frozen class-conditional generator, in the dataset's preprocessed space. Only the latents are learned, so every
objective's outer step moves samples along the generator's image manifold.

Budget in stored floats: the latents only, ``floats // latent_dim`` codes spread over the classes (at least one per
class, else the budget is refused). The generator is *not* counted in the stored floats but it is shipped: its
weights are buffers of this module (saved in the artifact, so it decodes in a fresh process without the cache) and
its floats are recorded separately in the layout (``generator_floats``) so that tables can show them. On 8x8 digits
the default generator holds about 230k floats against the 640 latent floats of IPC 1.

Where the generator comes from:

* ``generator``: a safetensors file written by :func:`distill_vision.generator.save_generator`, of the named
  ``architecture``; its declared output shape and classes are checked against the dataset before anything is
  computed;
* otherwise a small conditional DCGAN (:mod:`distill_vision.generator`) trained on the run's training split for
  ``gan_epochs`` epochs, once per dataset and GAN config, and cached in the user's cache folder.

Initialisation (``init``): ``"random"`` draws ``z ~ N(0, I)``; ``"inversion"`` (IT-GAN's start) then optimises each
code for ``inversion_steps`` Adam steps (lr 0.05) to reconstruct a random real training image of its class (pixel
MSE). ``init="noise"`` of the method draws random codes.

Departures from IT-GAN: IT-GAN learns one latent per *real* image (a full-size synthetic set, not a small-IPC method)
behind a pretrained BigGAN (dim_z 128, 32x32), and combines a DM-style matching loss with a feature-relation
regulariser; here the number of codes is set by the stored-float budget like every other parameterization, any
objective drives them (no extra regulariser), the generator is a small DCGAN trained here with a reconstruction
term beside its adversarial loss (:mod:`distill_vision.generator`, recipe 3: without it the CPU-trained generator
collapsed within classes and left real images out of reach of the inversion), and the inversion uses a pixel loss
only. The latent step is scaled by ``1 / gain`` where ``gain`` is the generator's mean squared
Jacobian-vector gain at the initial codes (:meth:`GeneratorLatents.lr_scales`), so ``lr_summary`` moves decoded
samples about as much as it moves pixels of a dense summary.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from distill_core.data import ClassIndex, RealData
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.parameterized import Parameterization, check_floats, register_parameterization

from ..generator import (
    GANConfig,
    build_generator,
    cached_generator,
    check_generator_fits,
    floats_of,
    freeze,
    generator_config,
    load_generator,
    to_sphere,
)

__all__ = ["GeneratorLatents"]

_INITS = ("random", "inversion")


@register_parameterization
class GeneratorLatents(Parameterization):
    """IT-GAN style latents: decoded sample = frozen ``G(z, y)``; the latents ``z`` are the stored floats.

    Shapes:
        ``latents``: ``(n, latent_dim)``; decoded ``(n, C, H, W)``.
    """

    name = "gan"
    DEFAULTS: dict[str, Any] = {"latent_dim": 64, "width": 32, "architecture": "dcgan", "generator": None,
                                "gan_epochs": 20, "gan_seed": 0, "init": "random", "inversion_steps": 300,
                                "progress": True}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        per_class = self.layout["latents_per_class"]
        self.latents = nn.Parameter(torch.zeros(sum(per_class), self.layout["latent_dim"]))
        self.register_buffer("latent_labels", self.class_labels(per_class))
        # frozen: its weights are buffers (saved with the artifact, never optimised, not stored floats)
        self.generator = freeze(build_generator(self.layout["architecture"], latent_dim=self.layout["latent_dim"],
                                                num_classes=self.num_classes, sample_shape=self.sample_shape,
                                                width=self.layout["width"]))

    @classmethod
    def plan(cls, *, sample_shape: tuple[int, ...], sizes: list[int], floats: int,
             options: dict[str, Any]) -> dict[str, Any]:
        opts = cls.check_options("gan", options, cls.DEFAULTS)
        for key in ("latent_dim", "width", "gan_epochs", "inversion_steps"):
            value = opts[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "inversion_steps" else 1):
                raise DataValidationError(f"gan option {key!r} must be a positive integer, got {value!r}")
        if opts["init"] not in _INITS:
            raise UnknownNameError("gan init", str(opts["init"]), _INITS)
        latent_dim, width, classes = opts["latent_dim"], opts["width"], len(sizes)
        if opts["generator"] is not None:
            config = generator_config(opts["generator"], architecture=opts["architecture"])
            check_generator_fits(opts["generator"], config, sample_shape=sample_shape, num_classes=classes)
            if "latent_dim" in options and options["latent_dim"] != config["latent_dim"]:
                raise DataValidationError(f"gan option latent_dim={options['latent_dim']} differs from the generator "
                                          f"file's latent_dim {config['latent_dim']}; leave latent_dim out")
            latent_dim, width = config["latent_dim"], config["width"]
        with torch.device("meta"):
            generator = build_generator(opts["architecture"], latent_dim=latent_dim, num_classes=classes,
                                        sample_shape=sample_shape, width=width)
        check_floats(floats, latent_dim * classes, f"one latent code of {latent_dim} floats per class")
        total = floats // latent_dim
        per_class = list(sizes) if sum(sizes) == total else \
            [total // classes + (1 if c < total % classes else 0) for c in range(classes)]
        return {"architecture": opts["architecture"], "latent_dim": latent_dim, "width": width,
                "latents_per_class": per_class, "decoded_per_class": per_class,
                "latent_floats": total * latent_dim, "generator_floats": floats_of(generator)}

    def train(self, mode: bool = True) -> GeneratorLatents:
        super().train(mode)
        self.generator.eval()  # BatchNorm statistics are part of the frozen generator
        return self

    def init_from(self, data: RealData, *, generator: torch.Generator, noise: bool) -> None:
        opts = {**self.DEFAULTS, **self.options}
        if opts["generator"] is not None:
            source = load_generator(opts["generator"], architecture=self.layout["architecture"],
                                    sample_shape=data.sample_shape, num_classes=data.num_classes)
            self.layout["generator"] = {"source": "file"}
        else:
            config = GANConfig(architecture=self.layout["architecture"], latent_dim=self.layout["latent_dim"],
                               width=self.layout["width"], epochs=opts["gan_epochs"], seed=opts["gan_seed"])
            source, record = cached_generator(data, config, progress=bool(opts["progress"]))
            self.layout["generator"] = {"source": "trained", "gan_epochs": config.epochs, "recipe": config.recipe,
                                        "recon_weight": config.recon_weight, "trained_now": record["trained_now"],
                                        "train_wall_s": record["wall_s"]}
        self.generator.load_state_dict(source.state_dict())
        self.generator.eval()
        z = torch.randn(self.latents.shape, generator=generator)
        if opts["init"] == "inversion" and not noise and opts["inversion_steps"] > 0:
            z = self._invert(z, data, steps=opts["inversion_steps"], generator=generator)
        self.latents.data.copy_(z)
        self.layout["latent_lr_scale"] = self._inverse_gain()

    def _invert(self, z: Tensor, data: RealData, *, steps: int, generator: torch.Generator) -> Tensor:
        """GAN inversion: codes that reconstruct one random real training image of their class each."""
        index = ClassIndex(data.y_train, self.num_classes)
        pick = index.sample_sizes(self.layout["latents_per_class"], generator=generator, replace=True)
        device = self.latents.device
        x_real = data.x_train[pick].float().to(device)
        labels = self.latent_labels.to(device)  # type: ignore[union-attr]
        code = z.to(device).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([code], lr=0.05)
        for _ in range(steps):
            loss = (self.generator(self.on_sphere(code), labels) - x_real).pow(2).flatten(1).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return code.detach().cpu()

    def lr_scales(self) -> dict[str, float]:
        """The latents' step is divided by the generator's mean squared gain ``|J v|² / |v|²`` along random
        directions ``v`` at the initial codes (``J``: the Jacobian of the decoder), so a step moves the decoded samples
        about as much as a pixel step of the same ``lr_summary`` moves a dense summary. Measured once, at
        initialisation, and kept in the layout (a resumed run steps as the interrupted one did)."""
        if "latent_lr_scale" not in self.layout:
            self.layout["latent_lr_scale"] = self._inverse_gain()
        return {"latents": float(self.layout["latent_lr_scale"])}

    def _inverse_gain(self) -> float:
        z = self.latents.detach()
        v = torch.randn(z.shape, generator=torch.Generator().manual_seed(0)).to(z)
        labels = self.latent_labels
        _, jv = torch.func.jvp(lambda t: self.generator(self.on_sphere(t), labels), (z,), (v,))
        return 1.0 / max(float(jv.pow(2).sum() / v.pow(2).sum()), 1e-8)

    def decode(self) -> Tensor:
        return self.generator(self.on_sphere(self.latents), self.latent_labels)  # type: ignore[no-any-return]

    @staticmethod
    def on_sphere(z: Tensor) -> Tensor:
        """Codes scaled to norm ``sqrt(latent_dim)`` (:func:`~distill_vision.generator.to_sphere`): a large step
        cannot carry a code out of the region the generator was trained on (where its outputs saturate)."""
        return to_sphere(z)

    def decoded_labels(self) -> Tensor:
        return self.latent_labels  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "latent_floats": int(self.latents.numel()),
                "generator_floats": floats_of(self.generator)}
