"""Dependency-free PNG writing (decoded back with zlib) and grid layout."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch

from distill_core.imaging import make_grid, save_png


def _decode(path: Path) -> tuple[int, int, int, bytes]:
    """Width, height, colour type and the filtered scanlines of an 8-bit PNG, checking every chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, kind
        chunks.append((kind, payload))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, compression, filtering, interlace) == (8, 0, 0, 0)
    raw = zlib.decompress(b"".join(p for k, p in chunks if k == b"IDAT"))
    return width, height, colour, raw


def _pixels(raw: bytes, width: int, height: int, channels: int) -> bytes:
    stride = 1 + width * channels
    assert len(raw) == height * stride
    assert all(raw[y * stride] == 0 for y in range(height))  # filter type None on every scanline
    return b"".join(raw[y * stride + 1:(y + 1) * stride] for y in range(height))


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    image = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    path = save_png(image, tmp_path / "sub" / "a.png")
    width, height, colour, raw = _decode(path)
    assert (width, height, colour) == (7, 5, 2)
    expected = (image * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy().tobytes()
    assert _pixels(raw, 7, 5, 3) == expected
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]  # no temporary file left


def test_grey_png_clamps_and_scales(tmp_path: Path) -> None:
    image = torch.tensor([[[0.0, 1.0], [-3.0, 7.0]]])  # out-of-range values are clamped
    width, height, colour, raw = _decode(save_png(image, tmp_path / "g.png", scale=2))
    assert (width, height, colour) == (4, 4, 0)
    assert _pixels(raw, 4, 4, 1) == bytes([0, 0, 255, 255] * 2 + [0, 0, 255, 255] * 2)


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import distill_core.imaging as imaging

    path = save_png(torch.zeros(1, 2, 2), tmp_path / "p.png")
    before = path.read_bytes()
    monkeypatch.setattr(imaging.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("no space")))
    with pytest.raises(OSError, match="no space"):
        save_png(torch.ones(1, 2, 2), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]


def test_rejects_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(1 or 3, H, W\)"):
        save_png(torch.zeros(2, 4, 4), tmp_path / "x.png")
    with pytest.raises(ValueError):
        save_png(torch.zeros(4, 4), tmp_path / "x.png")


def test_make_grid_layout() -> None:
    images = torch.stack([torch.full((1, 2, 3), float(i) / 10) for i in range(5)])  # 5 images 2x3
    grid = make_grid(images, nrow=2, padding=1, pad_value=1.0)
    # 3 rows x 2 columns: height 3 * (2 + 1) + 1, width 2 * (3 + 1) + 1
    assert grid.shape == (1, 10, 9)
    for i in range(5):
        r, c = divmod(i, 2)
        top, left = 1 + r * 3, 1 + c * 4
        assert torch.all(grid[0, top:top + 2, left:left + 3] == i / 10)
    assert torch.all(grid[0, 0] == 1.0) and torch.all(grid[0, :, 0] == 1.0)  # padding
    assert torch.all(grid[0, 7:9, 5:8] == 1.0)  # the empty sixth cell is padding


def test_make_grid_rgb_single_row() -> None:
    images = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    grid = make_grid(images, nrow=8, padding=0)
    assert grid.shape == (3, 4, 8 * 4)
    assert torch.equal(grid[:, :, 4:8], images[1])
