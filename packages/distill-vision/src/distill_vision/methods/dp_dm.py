"""Differentially private Distribution Matching (DP-DM): DM (Zhao & Bilen, WACV 2023,
https://arxiv.org/abs/2110.04181) whose real side is the subsampled Gaussian mechanism.

The real data enter DM only through one mean embedding per class and step. DP-DM releases that mean privately, the
way Private Set Generation (Chen, Kerkouche & Fritz, NeurIPS 2022, https://arxiv.org/abs/2211.04446) privatises
the real gradients of gradient matching: each class's real batch is drawn by Poisson sampling (every training sample
of class ``c`` joins with probability ``q_c = min(1, batch_real / n_c)``), every sample's embedding (after its DSA
draw and the frozen random network, both independent of the data) is clipped to L2 norm ``clip_norm``, and the
class mean is ``(sum of clipped embeddings + N(0, (sigma clip_norm)^2 I)) / (q_c n_c)``
(:mod:`distill_core.applications.privacy`). The synthetic embeddings are clipped the same way (no privacy cost), so
that both means live in one space: a random ConvNet's embeddings of digits all have nearly the same norm (about 11.5
at the default width), so clipping below it rescales them alike and matching clipped real means with unclipped
synthetic ones would pull the synthetic embeddings towards norm ``clip_norm``.

One sample belongs to one class, so one step is the subsampled Gaussian mechanism with sampling rate
``q = max_c q_c`` and noise multiplier ``sigma``; opacus computes the ``sigma`` that spends the target
``(epsilon, delta)`` in ``steps`` steps (``get_noise_multiplier`` with its RDP or PRV accountant) and, at the end,
the epsilon the steps actually run spent. The synthetic side sees no real data; the summary starts
from noise (``init="noise"``; ``init="real"`` with a finite epsilon is refused, since copying real samples is not
covered by any accounting). The class sizes ``n_c`` are treated as public.

``epsilon=None`` (epsilon = inf) is exactly DM: the same sampling, no clipping, no noise, the same random stream.
Needs opacus for finite epsilons: ``pip install 'distill-vision[privacy]'``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from distill_core.applications.privacy import (
    check_privacy_budget,
    clip_rows,
    noise_multiplier,
    noisy_mean,
    spent_epsilon,
)
from distill_core.data import RealData
from distill_core.errors import DataValidationError
from distill_core.method import Range, StepContext
from distill_core.objectives import classwise_mean_embedding_distance
from distill_core.synset import Summary

from ..fused import fused_embed
from .dm import DM, DMConfig

__all__ = ["DPDM", "DPDMConfig"]


@dataclass(kw_only=True)
class DPDMConfig(DMConfig):
    """DM's settings plus the privacy target (PSG's defaults: epsilon 10, delta 1e-5, RDP accounting) and the clip
    norm of the real embeddings; the summary starts from noise."""

    init: Literal["real", "noise"] = field(default="noise", metadata={
        "help": "'noise' (private); 'real' copies real samples and is only allowed with epsilon None"})
    epsilon: float | None = field(default=10.0, metadata={
        "help": "target epsilon of the whole run; None = no privacy (exactly DM)", "range": Range(0, low_open=True)})
    delta: float = field(default=1e-5, metadata={"help": "target delta", "range": Range(0, 1, True, True)})
    accountant: Literal["rdp", "prv"] = field(default="rdp", metadata={"help": "opacus accountant"})
    clip_norm: float = field(default=1.0, metadata={
        "help": "L2 bound of each real sample's embedding", "range": Range(0, low_open=True)})


class DPDM(DM):
    """Distribution matching with clipped per-sample embeddings and Gaussian noise on the class means."""

    config_class = DPDMConfig
    paper = "https://arxiv.org/abs/2110.04181"

    def __init__(self, *, config: DPDMConfig | None = None) -> None:
        super().__init__(config=config)
        self.sigma = 0.0
        self.sample_rates: list[float] = []
        self.history: list[list[float]] = []  # [noise multiplier, sampling rate, steps] segments actually run

    @property
    def private(self) -> bool:
        return self.config.epsilon is not None

    def prepare(self, data: RealData, *, modality: Any, device: torch.device, progress: bool = True) -> None:
        """Check the target and compute the noise multiplier for ``steps`` steps (opacus), before the summary."""
        cfg = self.config
        check_privacy_budget(cfg.epsilon, cfg.delta, cfg.accountant)
        if not self.private:
            return
        if cfg.init != "noise" or cfg.param not in (None, "dense"):
            raise DataValidationError("a private run must start its summary from noise: init='real' (or a "
                                      "parameterization initialised from real samples) copies real data that no "
                                      "accounting covers; use init=noise and no param, or epsilon=None")
        counts = data.class_counts()
        if min(counts) < 1:
            raise DataValidationError(f"{data.name}: every class needs training samples for DP-DM, got {counts}")
        self.sample_rates = [min(1.0, cfg.batch_real / n) for n in counts]
        self.sigma = noise_multiplier(epsilon=cfg.epsilon, delta=cfg.delta, sample_rate=max(self.sample_rates),
                                      steps=max(1, cfg.steps), accountant=cfg.accountant)

    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:
        super().setup(summary, data, device)
        if self.private and not self.sample_rates:  # a loop started without the runner's prepare()
            self.prepare(data, modality=None, device=device, progress=False)

    @torch.inference_mode()
    def clipped_embeddings(self, net: nn.Module, x_real: Tensor, seed: int) -> Tensor:
        """Every real sample's embedding (Siamese DSA draw ``seed``, the frozen ``net``), clipped to ``clip_norm``.

        Shapes:
            x_real: ``(b, *sample_shape)``; returns ``(b, embed_dim)``.
        """
        rows = []
        for start in range(0, len(x_real), self.config.real_chunk):
            chunk = self._augment_chunk(x_real, start, seed).contiguous(memory_format=self.memory_format)
            emb = fused_embed(net, chunk) if self.fused else net.embed(chunk)  # type: ignore[operator]
            rows.append(clip_rows(emb.flatten(1), self.config.clip_norm))
        return torch.cat(rows) if rows else torch.zeros(0)

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """DM's loss with every class's real mean replaced by its private release (the module docstring).

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        if not self.private:
            return super().outer_loss(summary, ctx)
        net = self.embedder(ctx)
        real_means, e_syn, y_syn = [], [], []
        classes = ctx.classes()
        if not classes:
            return summary.x.sum() * 0.0
        for c in classes:
            rng = ctx.class_generator(c)
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng))
            pool = ctx.class_index.indices[c]
            joined = pool[torch.rand(len(pool), generator=rng) < self.sample_rates[c]]  # Poisson sampling
            x_syn = self._augment(summary.x[summary.class_mask(c)], seed)
            emb_syn = net.embed(x_syn.contiguous(memory_format=self.memory_format))  # type: ignore[operator]
            emb_syn = clip_rows(emb_syn.flatten(1), self.config.clip_norm)  # both sides in one (clipped) space
            total = torch.zeros(emb_syn.shape[1:], device=emb_syn.device)
            if len(joined):
                total = self.clipped_embeddings(net, ctx.data.x_train[joined].to(ctx.device), seed).sum(0)
            real_means.append(noisy_mean(total.clone(), clip_norm=self.config.clip_norm, noise_multiplier=self.sigma,
                                         denominator=self.sample_rates[c] * len(pool), generator=rng))
            e_syn.append(emb_syn)
            y_syn.append(torch.full((len(x_syn),), c, device=x_syn.device))
        self._count_step()
        y_real = torch.tensor(classes, device=summary.x.device)
        return classwise_mean_embedding_distance(torch.stack(real_means), y_real, torch.cat(e_syn), torch.cat(y_syn),
                                                 ctx.data.num_classes)

    def _count_step(self) -> None:
        rate = max(self.sample_rates)
        if self.history and self.history[-1][0] == self.sigma and self.history[-1][1] == rate:
            self.history[-1][2] += 1
        else:  # a resumed run with other steps has another noise multiplier: a new segment
            self.history.append([self.sigma, rate, 1])

    def state_dict(self) -> dict[str, Any]:
        return {"privacy_history": [list(h) for h in self.history]} if self.history else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"privacy_history"}
        if unknown:
            raise DataValidationError(f"DPDM has no state {sorted(unknown)} to restore")
        self.history = [[float(s), float(q), int(n)] for s, q, n in state.get("privacy_history", [])]

    def extra_metadata(self) -> dict[str, Any]:
        """The privacy facts of the run for the manifest: the target (``epsilon`` None: no privacy), the mechanism's
        parameters and the epsilon the steps actually run spent (opacus)."""
        cfg = self.config
        facts: dict[str, Any] = {"private": self.private, "epsilon": cfg.epsilon, "delta": cfg.delta,
                                 "accountant": cfg.accountant, "clip_norm": cfg.clip_norm if self.private else None,
                                 "noise_multiplier": self.sigma, "steps_target": cfg.steps}
        if self.private:
            import opacus

            facts.update(
                sample_rate=max(self.sample_rates), steps_run=sum(int(h[2]) for h in self.history),
                epsilon_spent=spent_epsilon([(h[0], h[1], int(h[2])) for h in self.history], delta=cfg.delta,
                                            accountant=cfg.accountant),
                mechanism="subsampled Gaussian: Poisson sampling per class, per-sample embeddings clipped to "
                          "clip_norm, N(0, (noise_multiplier * clip_norm)^2) on each class's sum",
                opacus=opacus.__version__)
        return {"privacy": facts}
