"""Checkpoint-only soak at MNIST size: save the reference MNIST TrainState N times through
the project's Checkpointer (async, keep 3 + best, as a training run does) and record the
resident memory after every save. No training, so it isolates what saving costs.

  python results/soak/ckpt_soak.py OUT.jsonl [N] [--trim]

--trim calls glibc's malloc_trim(0) after each save (what sgan_jax.checkpoint does by
default on glibc; see there). Run it under MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ to
compare allocator settings.
"""
import ctypes, json, os, sys, tempfile, time
import numpy as np
import psutil
import jax, jax.numpy as jnp
sys.path.insert(0, os.getcwd())
from sgan_jax import checkpoint as ckpt_lib, train
from sgan_jax.config import Config

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 300
trim = "--trim" in sys.argv
cfg = Config(name="soak", dataset="mnist", pixel_range="0,1", model="mlp",
             d_hidden=(1000, 500, 250, 250, 250), g_hidden=(500, 500), batch_size=100)
m = train.build_models(cfg, (28, 28, 1), 10, 590)
x = jax.random.uniform(jax.random.key(0), (500, 28, 28, 1))
state = train.init_state(m, jax.random.key(1), x)
extra = {"lab_idx": np.arange(100, dtype=np.int64), "val_idx": np.arange(1000, dtype=np.int64)}
proc = psutil.Process()
libc = ctypes.CDLL("libc.so.6") if trim else None
with tempfile.TemporaryDirectory() as d, open(out, "w") as f:
  ck = ckpt_lib.Checkpointer(os.path.join(d, "ck"), keep=3)
  t0 = time.time()
  for ep in range(1, n + 1):
    # A changing state, as in training (a new device buffer each epoch).
    state = state.replace(step=state.step + 1)
    ck.save(ep, state, extra, {"mode": "sgan", "epoch": ep}, val_err=float(ep % 7))
    if libc is not None:
      ck.wait()
      libc.malloc_trim(0)
    f.write(json.dumps({"save": ep, "t": round(time.time() - t0, 1),
                        "rss_mb": round(proc.memory_info().rss / 2**20, 1)}) + "\n")
    f.flush()
  ck.close()
