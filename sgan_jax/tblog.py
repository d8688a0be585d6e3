"""A TensorBoard scalar writer that needs neither TensorFlow nor the tensorboard package.

TensorBoard reads ``events.out.tfevents.*`` files: TFRecord framing (length, masked
CRC-32C of the length, payload, masked CRC-32C of the payload) around serialised
``Event`` protocol buffers. Scalars need only four proto fields, encoded here by hand:
``Event{wall_time: double = 1, step: int64 = 2, file_version: string = 3,
summary: Summary = 5}``, ``Summary{value: repeated Value = 1}``,
``Value{tag: string = 1, simple_value: float = 2}``.

Enable with ``--set tensorboard=true``; then ``tensorboard --logdir <workdir>``.
"""

from __future__ import annotations

import os
import socket
import struct
import time

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected


def _table() -> list[int]:
  t = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ _POLY if c & 1 else c >> 1
    t.append(c)
  return t


_TABLE = _table()


def crc32c(data: bytes) -> int:
  c = 0xFFFFFFFF
  for b in data:
    c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
  return c ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
  c = crc32c(data)
  return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
  out = bytearray()
  while True:
    b = n & 0x7F
    n >>= 7
    if n:
      out.append(b | 0x80)
    else:
      out.append(b)
      return bytes(out)


def _field_bytes(num: int, payload: bytes) -> bytes:
  return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int, scalars: dict | None = None,
                 file_version: str | None = None) -> bytes:
  """One serialised ``Event`` with scalar summaries ``{tag: value}``."""
  ev = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(int(step))
  if file_version is not None:
    ev += _field_bytes(3, file_version.encode())
  if scalars:
    summary = b"".join(
        _field_bytes(1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", float(v)))
        for tag, v in scalars.items())
    ev += _field_bytes(5, summary)
  return ev


def frame(record: bytes) -> bytes:
  """TFRecord framing of one record."""
  n = struct.pack("<Q", len(record))
  return n + struct.pack("<I", masked_crc(n)) + record + struct.pack("<I", masked_crc(record))


class SummaryWriter:
  """Appends scalar events to ``<logdir>/events.out.tfevents.<time>.<host>``."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    self.path = os.path.join(logdir, f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}")
    self._f = open(self.path, "ab")
    self._f.write(frame(encode_event(time.time(), 0, file_version="brain.Event:2")))
    self._f.flush()

  def scalars(self, step: int, values: dict) -> None:
    vals = {k: v for k, v in values.items() if isinstance(v, (int, float)) and v is not None}
    self._f.write(frame(encode_event(time.time(), step, vals)))
    self._f.flush()

  def close(self) -> None:
    self._f.close()


def read_events(path: str) -> list[dict]:
  """Parses a file this module wrote (checks both CRCs): ``[{"step", "wall_time", "scalars"}]``."""
  out = []
  with open(path, "rb") as f:
    raw = f.read()
  pos = 0
  while pos < len(raw):
    n_bytes = raw[pos:pos + 8]
    (n,) = struct.unpack("<Q", n_bytes)
    if struct.unpack("<I", raw[pos + 8:pos + 12])[0] != masked_crc(n_bytes):
      raise ValueError(f"bad length CRC at byte {pos} of {path}")
    rec = raw[pos + 12:pos + 12 + n]
    if struct.unpack("<I", raw[pos + 12 + n:pos + 16 + n])[0] != masked_crc(rec):
      raise ValueError(f"bad data CRC at byte {pos} of {path}")
    out.append(_decode_event(rec))
    pos += 16 + n
  return out


def _read_varint(b: bytes, i: int) -> tuple[int, int]:
  shift = n = 0
  while True:
    c = b[i]
    n |= (c & 0x7F) << shift
    i += 1
    if not c & 0x80:
      return n, i
    shift += 7


def _fields(b: bytes):
  i = 0
  while i < len(b):
    key, i = _read_varint(b, i)
    num, wire = key >> 3, key & 7
    if wire == 0:
      v, i = _read_varint(b, i)
    elif wire == 1:
      v, i = b[i:i + 8], i + 8
    elif wire == 5:
      v, i = b[i:i + 4], i + 4
    elif wire == 2:
      n, i = _read_varint(b, i)
      v, i = b[i:i + n], i + n
    else:
      raise ValueError(f"unsupported wire type {wire}")
    yield num, v


def _decode_event(rec: bytes) -> dict:
  ev = {"scalars": {}}
  for num, v in _fields(rec):
    if num == 1:
      ev["wall_time"] = struct.unpack("<d", v)[0]
    elif num == 2:
      ev["step"] = v
    elif num == 3:
      ev["file_version"] = v.decode()
    elif num == 5:
      for _, value in _fields(v):
        d = dict(_fields(value))
        ev["scalars"][d[1].decode()] = struct.unpack("<f", d[2])[0]
  return ev
