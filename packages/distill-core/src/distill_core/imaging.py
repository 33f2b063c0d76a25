"""Dependency-free PNG writing and image grids (for ``distill show``)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor

from .files import atomic_write_bytes

__all__ = ["label_rows", "make_grid", "save_png", "text_image"]


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


# A 3x5 pixel font (digits, capitals and a little punctuation): enough to label the rows of a grid without a font
# library. Lower case is drawn as capitals; characters without a glyph are drawn as blanks.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001010010",
    "8": "111101111101111", "9": "111101111001111", "A": "010101111101101", "B": "110101110101110",
    "C": "011100100100011", "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "G": "011100101101011", "H": "101101111101101", "I": "111010010010111", "J": "001001001101010",
    "K": "101101110101101", "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "010101101101010", "P": "110101110100100", "Q": "010101101110011", "R": "110101110101101",
    "S": "011100010001110", "T": "111010010010010", "U": "101101101101111", "V": "101101101101010",
    "W": "101101111111101", "X": "101101010101101", "Y": "101101010010010", "Z": "111001010100111",
    "-": "000000111000000", "/": "001001010100100", ".": "000000000000010", ":": "000010000010000",
    "_": "000000000000111", "+": "000010111010000", " ": "000000000000000",
}


def text_image(text: str, *, ink: float = 0.0, paper: float = 1.0) -> Tensor:
    """``text`` in the 3x5 pixel font as a ``(5, 4 * len(text) - 1)`` image (one blank column between glyphs)."""
    text = text.upper() or " "
    image = torch.full((5, 4 * len(text) - 1), paper)
    for i, char in enumerate(text):
        bits = _GLYPHS.get(char, _GLYPHS[" "])
        glyph = torch.tensor([float(b) for b in bits]).reshape(5, 3)
        image[:, 4 * i:4 * i + 3] = torch.where(glyph > 0, torch.tensor(ink), torch.tensor(paper))
    return image


def label_rows(grid: Tensor, labels: list[str], *, tile: int, padding: int = 2, max_chars: int = 10) -> Tensor:
    """Prepend a margin to a :func:`make_grid` grid ``(C, H, W)`` with ``labels[r]`` written beside row ``r``
    (tiles of height ``tile``); labels are cut to ``max_chars`` characters, the text is scaled up to the tile
    height where the tiles are large enough."""
    texts = [label[:max_chars] for label in labels]
    zoom = max(1, tile // 10)
    width = max(4 * len(t) - 1 for t in texts) * zoom + 2 * padding
    margin = torch.ones(grid.shape[0], grid.shape[1], width)
    for r, text in enumerate(texts):
        image = text_image(text).repeat_interleave(zoom, 0).repeat_interleave(zoom, 1)
        top = padding + r * (tile + padding) + max(0, (tile - image.shape[0]) // 2)
        if top + image.shape[0] <= grid.shape[1]:
            margin[:, top:top + image.shape[0], padding:padding + image.shape[1]] = image
    return torch.cat([margin, grid], dim=2)


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
