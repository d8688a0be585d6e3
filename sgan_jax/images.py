"""Sample grids as PNG files, written with numpy + zlib (no imaging dependency)."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np


def make_grid(images: np.ndarray, rows: int | None = None, pad: int = 1,
              value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
  """Tiles ``(N, H, W[, C])`` images into one ``(rows*(H+pad)+pad, cols*(W+pad)+pad, C)`` uint8."""
  x = np.asarray(images, np.float32)
  if x.ndim == 3:
    x = x[..., None]
  lo, hi = value_range
  x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
  n, h, w, c = x.shape
  cols = rows and -(-n // rows) or int(np.ceil(np.sqrt(n)))
  rows = -(-n // cols)
  grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.float32)
  for i in range(n):
    r, q = divmod(i, cols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = x[i]
  return (grid * 255 + 0.5).astype(np.uint8)


def write_png(path: str, img: np.ndarray) -> None:
  """Writes ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` uint8 as an 8-bit PNG (atomically)."""
  img = np.asarray(img, np.uint8)
  if img.ndim == 3 and img.shape[2] == 1:
    img = img[..., 0]
  color = 0 if img.ndim == 2 else 2
  h, w = img.shape[:2]
  raw = b"".join(b"\x00" + img[i].tobytes() for i in range(h))

  def chunk(tag, data):
    return (struct.pack(">I", len(data)) + tag + data
            + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

  png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
         + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(png)
  os.replace(tmp, path)


def save_grid(path: str, images: np.ndarray, rows: int | None = None,
              value_range: tuple[float, float] = (0.0, 1.0), upscale: int = 2) -> None:
  """Saves a grid of images as PNG, each pixel repeated ``upscale`` times for viewing."""
  g = make_grid(images, rows, value_range=value_range)
  if upscale > 1:
    g = g.repeat(upscale, 0).repeat(upscale, 1)
  write_png(path, g)
