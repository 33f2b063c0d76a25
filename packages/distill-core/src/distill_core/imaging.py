"""Dependency-free PNG writing and image grids (for ``distill show``)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor

from .files import atomic_write_bytes

__all__ = ["make_grid", "save_png"]


def make_grid(images: Tensor, *, nrow: int, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """Tile ``images (N, C, H, W)`` with values in [0, 1] into one ``(C, H', W')`` image, ``nrow`` per row."""
    n, c, h, w = images.shape
    ncol = max(1, nrow)
    rows = (n + ncol - 1) // ncol
    grid = torch.full((c, rows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top:top + h, left:left + w] = images[i]
    return grid


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def save_png(image: Tensor, path: str | os.PathLike[str], *, scale: int = 1) -> Path:
    """Write ``image (C, H, W)`` (C = 1 or 3, values in [0, 1]) as an 8-bit PNG, atomically.

    Args:
        image: the picture.
        path: destination file.
        scale: integer upscaling (nearest neighbour) so that tiny images are visible.
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"save_png expects (1 or 3, H, W), got {tuple(image.shape)}")
    if scale > 1:
        image = image.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    height, width, channels = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    color_type = 0 if channels == 1 else 2
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))
    return atomic_write_bytes(path, png)
