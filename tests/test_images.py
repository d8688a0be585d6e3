"""PNG grids: a valid file whose pixels round-trip."""

import struct
import zlib

import numpy as np

from sgan_jax import images


def _read_png(path):
  raw = open(path, "rb").read()
  assert raw[:8] == b"\x89PNG\r\n\x1a\n"
  pos, chunks = 8, {}
  while pos < len(raw):
    n = struct.unpack(">I", raw[pos:pos + 4])[0]
    tag = raw[pos + 4:pos + 8]
    body = raw[pos + 8:pos + 8 + n]
    assert struct.unpack(">I", raw[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(tag + body)
    chunks.setdefault(tag, b"")
    chunks[tag] += body
    pos += 12 + n
  w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
  ch = 1 if color == 0 else 3
  rows = zlib.decompress(chunks[b"IDAT"])
  stride = w * ch + 1
  return np.frombuffer(b"".join(rows[i * stride + 1:(i + 1) * stride] for i in range(h)),
                       np.uint8).reshape(h, w, ch)


def test_grid_layout_and_png_roundtrip(tmp_path):
  x = np.zeros((5, 4, 3, 1), np.float32)
  x[2] = 1.0
  g = images.make_grid(x, pad=1)
  assert g.shape == (2 * 5 + 1, 3 * 4 + 1, 1)  # 3 columns x 2 rows
  p = tmp_path / "g.png"
  images.write_png(str(p), g)
  np.testing.assert_array_equal(_read_png(p), g)
  assert g[1:5, 9:12].min() == 255 and g[1:5, 1:4].max() == 0  # image 2 is white


def test_rgb_and_value_range(tmp_path):
  # One 2x3 RGB image spanning [-1, 1]; channels differ so their order shows too.
  v = np.array([[-1.0, -0.5, 0.0], [0.5, 1.0, 2.0]], np.float32)
  x = np.stack([v, -v, np.zeros_like(v)], -1)[None]
  p = tmp_path / "c.png"
  images.save_grid(str(p), x, value_range=(-1.0, 1.0), upscale=1)
  img = _read_png(p)
  assert img.shape == (4, 5, 3)
  # (v + 1) / 2 * 255, rounded; 2.0 is clipped to white, -2.0 to black.
  want_r = [[0, 64, 128], [191, 255, 255]]
  want_g = [[255, 191, 128], [64, 0, 0]]
  np.testing.assert_array_equal(img[1:3, 1:4, 0], want_r)
  np.testing.assert_array_equal(img[1:3, 1:4, 1], want_g)
  np.testing.assert_array_equal(img[1:3, 1:4, 2], 128)
  # The default range (0, 1) reads the same values otherwise: 0.5 is 128, not 191.
  images.save_grid(str(p), x, upscale=1)
  assert _read_png(p)[2, 1, 0] == 128 and _read_png(p)[1, 3, 0] == 0
