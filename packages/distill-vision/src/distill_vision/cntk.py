r"""Analytic infinite-width convolutional kernels: the NNGP and the NTK (CNTK) of a ReLU ConvNet.

Arora, Du, Hu, Li, Salakhutdinov & Wang, "On Exact Computation of an Infinitely Wide Neural Net", NeurIPS 2019,
https://arxiv.org/abs/1904.11955 (CNTK-GAP, CNTK-V), in neural-tangents' NTK parameterisation
(``stax.serial(*[Conv(w, (3, 3), padding='SAME'), Relu()(, AvgPool((2, 2)))] * depth, GlobalAvgPool() | Flatten(),
Dense(1))``, ``W_std² = w_var``, ``b_std² = b_var``); the finite network the kernels are the limit of is
:class:`ConvNetNTKParam`.

For a pair of images :math:`x, x'` every quantity is a pixel-by-pixel matrix indexed by :math:`(p, p')`. With the
3x3 "diagonal" convolution :math:`[\mathcal{C} K]_{p,p'} = \sum_{\delta \in \{-1,0,1\}^2} K_{p+\delta, p'+\delta}`
(zero outside the image, i.e. 'same' zero padding) and the input covariance
:math:`\Sigma^{(0)}_{p,p'} = x(p) \cdot x'(p') / C_0` (channel inner product):

.. math::

    \Lambda^{(h)} = \tfrac{\sigma_w^2}{9}\, \mathcal{C} K^{(h-1)} + \sigma_b^2, \qquad
    \Theta^{(h)} = \Lambda^{(h)} + \tfrac{\sigma_w^2}{9}\, \mathcal{C} T^{(h-1)},

with :math:`K^{(0)} = \Sigma^{(0)}`, :math:`T^{(0)} = 0`, and after layer :math:`h`'s ReLU (arc-cosine expectations
with :math:`\cos\theta = \Lambda_{p,p'} / \sqrt{\Lambda(x,x)_{p,p} \Lambda(x',x')_{p',p'}}`)

.. math::

    K^{(h)} = \frac{\sqrt{q q'}\,(\sin\theta + (\pi - \theta)\cos\theta)}{2\pi}, \qquad
    \dot K^{(h)} = \frac{\pi - \theta}{2\pi}, \qquad T^{(h)} = \dot K^{(h)} \odot \Theta^{(h)},

optionally followed by 2x2 average pooling of :math:`K` and :math:`T` in both pixel indices. The linear readout of
global average pooling (``readout="gap"``) gives

.. math::

    \mathrm{NNGP} = \sigma_w^2 \operatorname{mean}_{p,p'} K^{(D)}_{p,p'} + \sigma_b^2, \qquad
    \mathrm{NTK} = \mathrm{NNGP} + \sigma_w^2 \operatorname{mean}_{p,p'} T^{(D)}_{p,p'},

and a dense readout of the flattened feature map (``readout="flatten"``, CNTK-V) the same with the mean over the
pixel diagonal :math:`p = p'` only.

Cost and memory: each pair holds :math:`(HW)^2` entries per tensor (614,656 for 28x28), so the kernel is computed
in tiles of at most ``block_pairs`` image pairs; the per-image variances :math:`\Lambda(x,x)_{p,p}` come from a
blocked pass over the images themselves (``n`` extra pairs). When gradients are needed, every tile is wrapped in
activation checkpointing, so the memory of the backward pass is also bounded by the tile, not by the number of
pairs. The first layer's :math:`\Lambda^{(1)}` of a tile is one matmul of 3x3 patches. With ``compile=True`` the
element-wise ReLU expectations and pooling of layers with at least 256 pixels run as one ``torch.compile``-generated
loop, forward and backward (about 2.5x faster than eager on 28x28 tiles; every new tile shape compiles once: ~30 s
per graph alone, 5-8 minutes for a KIP run's shapes on the loaded 2-core benchmark machine).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from distill_core.errors import DataValidationError

__all__ = ["CNTK", "ConvNetNTKParam", "cnngp", "cntk", "cntk_kernels"]

Readout = Literal["gap", "flatten"]
_COS_CLAMP = 1.0 - 1e-6
_TILE_ENTRIES = 2**23
_COMPILE_MIN_PIXELS = 256
logger = logging.getLogger(__name__)
_COMPILED: Callable[..., tuple[Tensor, Tensor]] | None = None
_COMPILE_FAILED = False


def _check_images(x: Tensor, name: str) -> Tensor:
    if x.dim() != 4:
        raise DataValidationError(f"{name} must be images (N, C, H, W), got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        x = x.float()
    return x


def _patches(x: Tensor) -> Tensor:
    """3x3 'same' patches, ``(N, C, H, W) -> (N, H·W, C·9)``."""
    return F.unfold(x, 3, padding=1).transpose(1, 2)


def _conv_diag(k: Tensor) -> Tensor:
    """:math:`\\sum_\\delta K_{p+\\delta, p'+\\delta}` over a 3x3 window with zero padding; ``(..., H, W, H, W)``."""
    h, w = k.shape[-4], k.shape[-3]
    kp = F.pad(k, (1, 1, 1, 1, 1, 1, 1, 1))
    out = kp[..., 1:1 + h, 1:1 + w, 1:1 + h, 1:1 + w].clone()
    for a in range(3):
        for b in range(3):
            if (a, b) != (1, 1):
                out.add_(kp[..., a:a + h, b:b + w, a:a + h, b:b + w])
    return out


def _pool(k: Tensor) -> Tensor:
    """2x2 average pooling (stride 2, odd remainders dropped) in both pixel indices; ``(..., H, W, H, W)``."""
    h, w = k.shape[-4] // 2, k.shape[-3] // 2
    lead = k.shape[:-4]
    k = k[..., :2 * h, :2 * w, :2 * h, :2 * w].reshape(*lead, h, 2, w, 2, h, 2, w, 2)
    return k.mean(dim=(-7, -5, -3, -1))


def _pixel_diag(k: Tensor) -> Tensor:
    """``K_{p,p}``: ``(..., H, W, H, W) -> (..., H, W)``."""
    h, w = k.shape[-4], k.shape[-3]
    return k.reshape(*k.shape[:-4], h * w, h * w).diagonal(dim1=-2, dim2=-1).reshape(*k.shape[:-4], h, w)


def _relu_expectations(lam: Tensor, q1: Tensor, q2: Tensor) -> tuple[Tensor, Tensor]:
    """``(E[relu(u) relu(v)], E[relu'(u) relu'(v)])`` for ``Cov(u, v) = lam``, ``Var u = q1``, ``Var v = q2``."""
    norm = torch.sqrt(q1 * q2)
    cos = (lam / norm).clamp(-_COS_CLAMP, _COS_CLAMP)  # clamped: finite gradients at coincident points
    theta = torch.arccos(cos)
    k = norm * (torch.sqrt(1.0 - cos * cos) + (math.pi - theta) * cos) / (2 * math.pi)
    kdot = (math.pi - theta) / (2 * math.pi)
    return k, kdot


def _nonlinearity(lam: Tensor, theta: Tensor, q1: Tensor, q2: Tensor, pool: bool) -> tuple[Tensor, Tensor]:
    """``(K, T)`` after one ReLU (and the optional pooling) from the pre-activation NNGP and NTK."""
    k, kdot = _relu_expectations(lam, q1, q2)
    t = kdot * theta
    return (_pool(k), _pool(t)) if pool else (k, t)


def _fast_nonlinearity(lam: Tensor, theta: Tensor, q1: Tensor, q2: Tensor, pool: bool) -> tuple[Tensor, Tensor]:
    """:func:`_nonlinearity` compiled with ``torch.compile`` (eager if compilation fails here, logged once)."""
    global _COMPILED, _COMPILE_FAILED
    if not _COMPILE_FAILED:
        try:
            if _COMPILED is None:
                _COMPILED = torch.compile(_nonlinearity)
            return _COMPILED(lam, theta, q1, q2, pool)
        except Exception as exc:  # no C++ compiler, unsupported platform: fall back for the rest of the process
            logger.warning("torch.compile is unavailable here (%s: %s); the CNTK runs eager",
                           type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            _COMPILE_FAILED = True
    return _nonlinearity(lam, theta, q1, q2, pool)


def _first_layer(xa: Tensor, xb: Tensor, w_var: float, b_var: float, *, pairwise: bool) -> Tensor:
    """:math:`\\Lambda^{(1)}`: ``(na, nb, H, W, H, W)`` (all pairs) or ``(n, H, W, H, W)`` (``xa[i]`` with
    ``xb[i]``)."""
    c, h, w = xa.shape[1:]
    pa, pb = _patches(xa), _patches(xb)
    scale = w_var / (9 * c)
    if pairwise:
        lam = torch.einsum("apk,bqk->abpq", pa, pb)
        return (scale * lam + b_var).reshape(len(xa), len(xb), h, w, h, w)
    return (scale * torch.bmm(pa, pb.transpose(1, 2)) + b_var).reshape(len(xa), h, w, h, w)


def _propagate(lam: Tensor, depth: int, w_var: float, b_var: float, pool: bool, readout: Readout,
               variances: tuple[list[Tensor], list[Tensor]] | None,
               compile: bool = False) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Layers 1..depth from :math:`\\Lambda^{(1)}` ``(..., H, W, H, W)``.

    ``variances`` holds, per layer, the pixel variances of the row and column images, broadcastable to
    ``(..., H_h, W_h)``; ``None`` means the pairs are self-pairs, whose variances are read off the diagonal.

    Returns:
        ``(nngp, ntk, per-layer self variances)``, the kernels with shape ``lam.shape[:-4]``.
    """
    theta = lam
    own: list[Tensor] = []
    k = t = lam
    for layer in range(depth):
        if layer > 0:
            lam = w_var / 9 * _conv_diag(k) + b_var
            theta = lam + w_var / 9 * _conv_diag(t)
        if variances is None:
            d = _pixel_diag(lam)
            own.append(d)
            q1, q2 = d[..., :, :, None, None], d[..., None, None, :, :]
        else:
            q1 = variances[0][layer][..., :, :, None, None]
            q2 = variances[1][layer][..., None, None, :, :]
        fast = compile and lam.shape[-4] * lam.shape[-3] >= _COMPILE_MIN_PIXELS
        k, t = (_fast_nonlinearity if fast else _nonlinearity)(lam, theta, q1, q2, pool)
    if readout == "gap":
        k_out, t_out = k.mean(dim=(-4, -3, -2, -1)), t.mean(dim=(-4, -3, -2, -1))
    else:
        k_out, t_out = _pixel_diag(k).mean(dim=(-2, -1)), _pixel_diag(t).mean(dim=(-2, -1))
    nngp = w_var * k_out + b_var
    return nngp, nngp + w_var * t_out, own


class CNTK:
    """The NNGP and NTK of an infinitely wide ReLU ConvNet (Arora et al. 2019, https://arxiv.org/abs/1904.11955),
    computed in tiles of image pairs.

    Args:
        depth: number of conv3x3 ('same') -> ReLU blocks.
        w_var: weight variance :math:`\\sigma_w^2` of every layer (neural-tangents' ``W_std²``).
        b_var: bias variance :math:`\\sigma_b^2` (``b_std²``).
        pool: 2x2 average pooling after every ReLU (the KIP / RFAD ConvNet); ``False``: none (CNTK-GAP).
        readout: ``"gap"`` (global average pooling, then dense) or ``"flatten"`` (dense on the flattened map).
        block_pairs: image pairs per tile: memory is about ``12 · block_pairs · (HW)²`` floats (times the layers
            kept by the backward pass of one tile when gradients are needed); ``None``: as many as keep one tensor
            of a tile at ``2^23`` entries (13 pairs of 28x28 images, 2048 of 8x8).
        checkpoint: recompute tiles in the backward pass instead of storing them (needed for many pairs).
        compile: fuse the element-wise work of large layers with ``torch.compile`` (see the module docstring).

    Shapes:
        ``x1``: ``(n1, C, H, W)``, ``x2``: ``(n2, C, H, W)`` -> ``(n1, n2)`` for each kernel.
    """

    def __init__(self, *, depth: int = 3, w_var: float = 2.0, b_var: float = 0.01, pool: bool = False,
                 readout: Readout = "gap", block_pairs: int | None = None, checkpoint: bool = True,
                 compile: bool = False) -> None:
        if depth < 1:
            raise DataValidationError(f"depth must be >= 1 conv layers, got {depth}")
        if w_var <= 0 or b_var < 0:
            raise DataValidationError(f"need w_var > 0 and b_var >= 0, got w_var={w_var}, b_var={b_var}")
        if readout not in ("gap", "flatten"):
            raise DataValidationError(f"readout must be 'gap' or 'flatten', got {readout!r}")
        if block_pairs is not None and block_pairs < 1:
            raise DataValidationError(f"block_pairs must be >= 1, got {block_pairs}")
        self.depth, self.w_var, self.b_var, self.pool = depth, w_var, b_var, pool
        self.readout: Readout = readout
        self.block_pairs, self.checkpoint, self.compile = block_pairs, checkpoint, compile

    def _run(self, fn, *args: Tensor):  # type: ignore[no-untyped-def]
        if self.checkpoint and torch.is_grad_enabled() and any(a.requires_grad for a in args):
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def _pairs_per_tile(self, x: Tensor) -> int:
        if self.block_pairs is not None:
            return self.block_pairs
        return max(1, _TILE_ENTRIES // (x.shape[-2] * x.shape[-1]) ** 2)

    def variances(self, x: Tensor) -> list[Tensor]:
        """Per-layer pixel variances :math:`\\Lambda^{(h)}(x, x)_{p,p}`: ``depth`` tensors ``(n, H_h, W_h)``."""
        x = _check_images(x, "x")
        block = self._pairs_per_tile(x)
        if self.pool and min(x.shape[-2:]) < 2 ** self.depth:
            raise DataValidationError(f"{self.depth} pooled layers need images of at least {2 ** self.depth} "
                                      f"pixels a side, got {tuple(x.shape[-2:])}")

        def self_block(xb: Tensor) -> tuple[Tensor, ...]:
            lam = _first_layer(xb, xb, self.w_var, self.b_var, pairwise=False)
            return tuple(_propagate(lam, self.depth, self.w_var, self.b_var, self.pool, self.readout, None,
                                    self.compile)[2])

        parts = [self._run(self_block, x[i:i + block]) for i in range(0, len(x), block)]
        return [torch.cat([p[layer] for p in parts]) for layer in range(self.depth)]

    def __call__(self, x1: Tensor, x2: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(nngp, ntk)``, each ``(n1, n2)``; differentiable w.r.t. both inputs."""
        x1 = _check_images(x1, "x1")
        x2 = x1 if x2 is None else _check_images(x2, "x2")
        if x1.shape[1:] != x2.shape[1:]:
            raise DataValidationError(f"x1 images are {tuple(x1.shape[1:])} but x2 {tuple(x2.shape[1:])}")
        v1 = self.variances(x1)
        v2 = v1 if x2 is x1 else self.variances(x2)
        block = self._pairs_per_tile(x1)
        n_cols = min(len(x2), block)
        n_rows = max(1, block // n_cols)

        def tile(xa: Tensor, xb: Tensor, *vs: Tensor) -> tuple[Tensor, Tensor]:
            va = [v[:, None] for v in vs[:self.depth]]
            vb = [v[None] for v in vs[self.depth:]]
            lam = _first_layer(xa, xb, self.w_var, self.b_var, pairwise=True)
            nngp, ntk, _ = _propagate(lam, self.depth, self.w_var, self.b_var, self.pool, self.readout, (va, vb),
                                      self.compile)
            return nngp, ntk

        rows_nngp, rows_ntk = [], []
        for i in range(0, len(x1), n_rows):
            cols_nngp, cols_ntk = [], []
            for j in range(0, len(x2), n_cols):
                ra, rb = slice(i, i + n_rows), slice(j, j + n_cols)
                nngp, ntk = self._run(tile, x1[ra], x2[rb], *[v[ra] for v in v1], *[v[rb] for v in v2])
                cols_nngp.append(nngp)
                cols_ntk.append(ntk)
            rows_nngp.append(torch.cat(cols_nngp, 1))
            rows_ntk.append(torch.cat(cols_ntk, 1))
        return torch.cat(rows_nngp, 0), torch.cat(rows_ntk, 0)


def cntk_kernels(x1: Tensor, x2: Tensor | None = None, *, depth: int = 3, w_var: float = 2.0, b_var: float = 0.01,
                 pool: bool = False, readout: Readout = "gap", block_pairs: int | None = None) -> tuple[Tensor, Tensor]:
    """``(nngp, ntk)`` of the infinitely wide ConvNet, each ``(n1, n2)``; see :class:`CNTK` for the arguments."""
    return CNTK(depth=depth, w_var=w_var, b_var=b_var, pool=pool, readout=readout, block_pairs=block_pairs)(x1, x2)


def cntk(x1: Tensor, x2: Tensor | None = None, **kwargs: object) -> Tensor:
    """The convolutional NTK ``(n1, n2)`` (Arora et al. 2019); keyword arguments as :class:`CNTK`."""
    return cntk_kernels(x1, x2, **kwargs)[1]  # type: ignore[arg-type]


def cnngp(x1: Tensor, x2: Tensor | None = None, **kwargs: object) -> Tensor:
    """The convolutional NNGP ``(n1, n2)``; keyword arguments as :class:`CNTK`."""
    return cntk_kernels(x1, x2, **kwargs)[0]  # type: ignore[arg-type]


class ConvNetNTKParam(nn.Module):
    """The finite ConvNet whose infinite-width limit :class:`CNTK` computes, in the NTK parameterisation: every
    weight and bias is ``N(0, 1)`` and is scaled in the forward pass by ``sqrt(w_var / fan_in)`` resp.
    ``sqrt(b_var)``, so its empirical NTK (:func:`distill_core.kernels.empirical_ntk`) and its output covariance
    over random draws converge to the analytic kernels as ``width`` grows.

    Shapes:
        input ``(N, C, H, W)``; :meth:`features` ``(N, F)``; output ``(N, 1)``.
    """

    def __init__(self, in_channels: int, image_size: tuple[int, int], *, width: int, depth: int = 3,
                 w_var: float = 2.0, b_var: float = 0.01, pool: bool = False, readout: Readout = "gap") -> None:
        super().__init__()
        self.w_var, self.b_var, self.pool, self.readout = w_var, b_var, pool, readout
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        channels = in_channels
        h, w = image_size
        for _ in range(depth):
            self.weights.append(nn.Parameter(torch.randn(width, channels, 3, 3)))
            self.biases.append(nn.Parameter(torch.randn(width)))
            channels = width
            if pool:
                h, w = h // 2, w // 2
        self.n_features = width if readout == "gap" else width * h * w
        self.readout_weight = nn.Parameter(torch.randn(1, self.n_features))
        self.readout_bias = nn.Parameter(torch.randn(1))

    def features(self, x: Tensor) -> Tensor:
        """The readout's input: ``(N, width)`` (GAP) or ``(N, width · H_D · W_D)`` (flatten)."""
        for weight, bias in zip(self.weights, self.biases):
            scale = math.sqrt(self.w_var / (weight.shape[1] * 9))
            x = F.relu(F.conv2d(x, weight * scale, bias * math.sqrt(self.b_var), padding=1))
            if self.pool:
                x = F.avg_pool2d(x, 2)
        return x.mean(dim=(-2, -1)) if self.readout == "gap" else x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        scale = math.sqrt(self.w_var / self.n_features)
        return F.linear(self.features(x), self.readout_weight * scale, self.readout_bias * math.sqrt(self.b_var))
