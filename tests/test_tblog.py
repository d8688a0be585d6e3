"""TensorBoard event files without TensorFlow: CRC-32C, framing, proto fields, and the
training loop writing them."""

import glob
import os
import struct

import pytest

from sgan_jax import data, tblog, train
from tests.helpers import blobs, tiny_config


def test_crc32c_known_vectors():
  assert tblog.crc32c(b"123456789") == 0xE3069283  # the standard check value
  assert tblog.crc32c(b"") == 0
  assert tblog.crc32c(bytes(32)) == 0x8A9136AA     # RFC 3720 B.4: 32 bytes of zeros


def test_event_encoding_matches_hand_built_protobuf():
  ev = tblog.encode_event(1.5, 300, {"a": 0.25})
  value = b"\x0a\x01a" + b"\x15" + struct.pack("<f", 0.25)
  summary = b"\x0a" + bytes([len(value)]) + value
  want = (b"\x09" + struct.pack("<d", 1.5) + b"\x10" + bytes([0xAC, 0x02])  # 300 as varint
          + b"\x2a" + bytes([len(summary)]) + summary)
  assert ev == want


def test_writer_round_trips_and_detects_corruption(tmp_path):
  w = tblog.SummaryWriter(str(tmp_path))
  w.scalars(10, {"loss": 1.25, "err": 0.5, "skip": None})
  w.scalars(20, {"loss": 0.75})
  w.close()
  evs = tblog.read_events(w.path)
  assert evs[0]["file_version"] == "brain.Event:2"
  assert [(e["step"], e["scalars"]) for e in evs[1:]] == [(10, {"loss": 1.25, "err": 0.5}),
                                                          (20, {"loss": 0.75})]
  raw = bytearray(open(w.path, "rb").read())
  raw[-6] ^= 0xFF
  open(w.path, "wb").write(bytes(raw))
  with pytest.raises(ValueError, match="CRC"):
    tblog.read_events(w.path)


def test_training_writes_tensorboard_scalars(tmp_path):
  cfg = tiny_config(tensorboard=True, val_size=0)
  sp = data.make_splits(blobs(), labels_per_class=2, label_rate=None, val_size=0, data_seed=1)
  train.train(cfg, sp, "sgan", str(tmp_path), log=lambda s: None)
  (path,) = glob.glob(os.path.join(tmp_path, "tb", "sgan", "events.out.tfevents.*"))
  evs = tblog.read_events(path)[1:]
  assert [e["step"] for e in evs] == [3, 6]
  assert {"test_err", "loss_gen", "loss_unl"} <= set(evs[-1]["scalars"])
