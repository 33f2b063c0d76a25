"""A tiny rasteriser for condensed graphs (no plotting dependency): discs for nodes, lines for edges, a legend of the
classes' colours beside them, PNG out."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from distill_core.imaging import save_png, text_image

__all__ = ["PALETTE", "draw_graph", "layout", "legend"]

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


def _disc(image: Tensor, cx: float, cy: float, radius: float, colour: tuple[float, float, float]) -> None:
    """A filled disc with a dark rim (how nodes and legend swatches are drawn)."""
    yy, xx = torch.meshgrid(torch.arange(image.shape[1]), torch.arange(image.shape[2]), indexing="ij")
    d2 = (xx - cx) ** 2 + (yy - cy) ** 2
    disc = d2 <= radius**2
    ring = disc & (d2 > (radius - 1.5) ** 2)
    for k, v in enumerate(colour):
        image[k][disc] = v
        image[k][ring] = 0.1


def legend(labels: list[str], height: int, *, zoom: int = 2, node_radius: int = 5, padding: int = 8) -> Tensor:
    """A white panel ``(3, height, W)`` listing one line per class: its node colour (:data:`PALETTE`) and
    ``labels[c]`` in the 3x5 pixel font scaled by ``zoom``. Classes that do not fit the height end with "...".

    Shapes:
        returns ``(3, height, W)``.
    """
    line = max(5 * zoom, 2 * node_radius) + 4
    fits = max(1, (height - 2 * padding) // line)
    shown = labels if len(labels) <= fits else [*labels[:fits - 1], "..."]
    texts = [text_image(t).repeat_interleave(zoom, 0).repeat_interleave(zoom, 1) for t in shown]
    width = 3 * padding + 2 * node_radius + max(t.shape[1] for t in texts)
    panel = torch.ones(3, height, width)
    for c, text in enumerate(texts):
        top = padding + c * line
        if shown[c] != "..." or len(shown) == len(labels):
            _disc(panel, padding + node_radius, top + line / 2, node_radius, PALETTE[c % len(PALETTE)])
        text_top = top + (line - text.shape[0]) // 2
        left = 2 * padding + 2 * node_radius
        panel[:, text_top:text_top + text.shape[0], left:left + text.shape[1]] = text
    return panel


def draw_graph(adj: Tensor, labels: Tensor, num_classes: int, path: str | Path, *, size: int = 512,
               node_radius: int = 5, min_weight: float = 0.05, class_names: list[str] | None = None) -> Path:
    """Write a PNG of the graph ``adj`` (dense ``(n, n)``), nodes coloured by ``labels``, with a legend of the
    classes' colours on the right (``class_names[c]`` beside the class index where given).

    Edges with weight below ``min_weight`` are not drawn; darker lines are heavier edges.
    """
    image = torch.ones(3, size, size)
    pos = layout(labels.cpu(), num_classes)
    if adj.numel():
        rows, cols = torch.triu(adj.detach().cpu(), diagonal=1).ge(min_weight).nonzero(as_tuple=True)
        for i, j in zip(rows.tolist(), cols.tolist()):
            w = float(adj[i, j].clamp(0, 1))
            _line(image, (float(pos[i, 0]), float(pos[i, 1])), (float(pos[j, 0]), float(pos[j, 1])), 0.2 + 0.5 * w)
    for i, c in enumerate(labels.tolist()):
        _disc(image, float(pos[i, 0]) * (size - 1), float(pos[i, 1]) * (size - 1), node_radius,
              PALETTE[c % len(PALETTE)])
    names = list(class_names or [])
    counts = torch.bincount(labels.cpu(), minlength=num_classes).tolist()
    entries = [f"{c} {names[c]}" if c < len(names) and str(names[c]) != str(c) else f"class {c}"
               for c in range(num_classes)]
    entries = [f"{entry[:18]}: {counts[c]} nodes" for c, entry in enumerate(entries)]
    return save_png(torch.cat([image, legend(entries, size, node_radius=node_radius)], dim=2), path)
