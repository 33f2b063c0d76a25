"""A tiny rasteriser for condensed graphs (no plotting dependency): discs for nodes, lines for edges, PNG out."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from distill_core.imaging import save_png

__all__ = ["PALETTE", "draw_graph", "layout"]

#: Colour-blind-safe palette (Okabe-Ito), cycled for more classes.
PALETTE = [(0.90, 0.62, 0.0), (0.34, 0.71, 0.91), (0.0, 0.62, 0.45), (0.94, 0.89, 0.26), (0.0, 0.45, 0.70),
           (0.84, 0.37, 0.0), (0.80, 0.47, 0.65), (0.3, 0.3, 0.3)]


def layout(labels: Tensor, num_classes: int) -> Tensor:
    """Node positions in ``[0, 1]^2``: one cluster per class on a large circle, the class's nodes on a small
    circle (or spiral for large classes) around the cluster centre.

    Shapes:
        labels: ``(n,)``; returns ``(n, 2)``.
    """
    pos = torch.zeros(len(labels), 2)
    big = 0.32 if num_classes > 1 else 0.0
    for c in range(num_classes):
        ids = (labels == c).nonzero().flatten()
        angle = 2 * math.pi * c / max(1, num_classes)
        cx, cy = 0.5 + big * math.cos(angle), 0.5 + big * math.sin(angle)
        small = min(0.12, 0.9 * big * math.sin(math.pi / max(2, num_classes))) if num_classes > 1 else 0.4
        for k, i in enumerate(ids.tolist()):
            r = small * math.sqrt((k + 0.5) / max(1, len(ids)))
            theta = k * 2.39996  # golden angle: an even sunflower spread
            pos[i, 0], pos[i, 1] = cx + r * math.cos(theta), cy + r * math.sin(theta)
    return pos


def _line(image: Tensor, p: tuple[float, float], q: tuple[float, float], shade: float) -> None:
    size = image.shape[-1]
    steps = int(max(abs(q[0] - p[0]), abs(q[1] - p[1])) * size) + 1
    t = torch.linspace(0, 1, steps)
    xs = ((p[0] + (q[0] - p[0]) * t) * (size - 1)).round().long().clamp(0, size - 1)
    ys = ((p[1] + (q[1] - p[1]) * t) * (size - 1)).round().long().clamp(0, size - 1)
    image[:, ys, xs] = torch.minimum(image[:, ys, xs], torch.tensor(1.0 - shade))


def draw_graph(adj: Tensor, labels: Tensor, num_classes: int, path: str | Path, *, size: int = 512,
               node_radius: int = 5, min_weight: float = 0.05) -> Path:
    """Write a PNG of the graph ``adj`` (dense ``(n, n)``), nodes coloured by ``labels``.

    Edges with weight below ``min_weight`` are not drawn; darker lines are heavier edges.
    """
    image = torch.ones(3, size, size)
    pos = layout(labels.cpu(), num_classes)
    if adj.numel():
        rows, cols = torch.triu(adj.detach().cpu(), diagonal=1).ge(min_weight).nonzero(as_tuple=True)
        for i, j in zip(rows.tolist(), cols.tolist()):
            w = float(adj[i, j].clamp(0, 1))
            _line(image, (float(pos[i, 0]), float(pos[i, 1])), (float(pos[j, 0]), float(pos[j, 1])), 0.2 + 0.5 * w)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for i, c in enumerate(labels.tolist()):
        cx, cy = float(pos[i, 0]) * (size - 1), float(pos[i, 1]) * (size - 1)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= node_radius**2
        ring = disc & ((xx - cx) ** 2 + (yy - cy) ** 2 > (node_radius - 1.5) ** 2)
        for k, v in enumerate(PALETTE[c % len(PALETTE)]):
            image[k][disc] = v
            image[k][ring] = 0.1
    return save_png(image, path)
