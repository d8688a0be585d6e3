"""Memory soak: train with a checkpoint and an evaluation every (short) epoch, sampling RSS.

  python results/soak/soak.py runs/soak 3600                      # digits MLP, 50-iteration epochs
  python results/soak/soak.py runs/soak_m 900 --data ../shared/datasets/mnist.npz --iters 20

The MNIST form uses the reference MNIST pair (the table config's sizes) with 20-iteration
epochs, so a checkpoint (~32 MB of state) and a full evaluation (1,000 validation +
10,000 test images, a sample grid) come every few seconds: a year of epochs in an hour.
Writes <out>/rss.jsonl ({"t": seconds, "rss_mb": ..., "epoch": last saved}) every 30 s
(10 s with --data) and exits after the given time.
"""
import argparse, json, os, sys, threading, time
import psutil
sys.path.insert(0, os.getcwd())
from sgan_jax import data, experiment
from sgan_jax.config import Config

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("seconds", type=float)
p.add_argument("--data", default=None, help="an .npz (MNIST) instead of the bundled digits")
p.add_argument("--iters", type=int, default=20)
p.add_argument("--no_workdir", action="store_true",
               help="diagnostic: train without a workdir (no checkpoints, metrics file or grids)")
p.add_argument("--sync_saves", action="store_true",
               help="diagnostic: wait for each checkpoint write to finish before training on "
                    "(train() itself waits since session 7; kept for the session 3 runs)")
p.add_argument("--no_ckpt", action="store_true",
               help="diagnostic: a workdir (metrics file, sample grids) but no checkpoints")
p.add_argument("--no_grid", action="store_true",
               help="diagnostic: a workdir and checkpoints but no sample grids")
p.add_argument("--no_malloc_fix", action="store_true",
               help="control: leave glibc's adaptive thresholds as they are, saves included "
                    "(sgan_jax/memory.py)")
p.add_argument("--malloc_trim_threshold", type=int, default=None,
               help="the trim threshold sgan_jax/memory.py sets with the mmap threshold")
p.add_argument("--malloc_mmap_threshold", type=int, default=None,
               help="the mmap threshold sgan_jax/memory.py sets")
p.add_argument("--trim_every", type=float, default=0,
               help="diagnostic: call glibc malloc_trim(0) every this many seconds from a thread")
a = p.parse_args()
out, seconds = a.out, a.seconds
os.makedirs(out, exist_ok=True)
proc = psutil.Process()
t0 = time.time()
ckdir = f"{out}/run/checkpoints_sgan"
every = 10 if a.data else 30


def sample():
  with open(f"{out}/rss.jsonl", "a") as f:
    while True:
      done = [int(d) for d in os.listdir(ckdir) if d.isdigit()] if os.path.isdir(ckdir) else []
      f.write(json.dumps({"t": round(time.time() - t0), "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                          "epoch": max(done, default=0)}) + "\n")
      f.flush()
      if time.time() - t0 > seconds:
        os._exit(0)
      time.sleep(every)


threading.Thread(target=sample, daemon=True).start()
if a.sync_saves:
  from sgan_jax import checkpoint as ckpt_lib
  _save = ckpt_lib.Checkpointer.save

  def save_and_wait(self, *args, **kw):
    _save(self, *args, **kw)
    self.wait()

  ckpt_lib.Checkpointer.save = save_and_wait
if a.trim_every:
  import ctypes
  libc = ctypes.CDLL("libc.so.6")

  def trim():
    while True:
      time.sleep(a.trim_every)
      libc.malloc_trim(0)

  threading.Thread(target=trim, daemon=True).start()
if a.data:
  cfg = Config(name="soak", dataset=a.data, pixel_range="0,1", labels_per_class=10, val_size=1000,
               model="mlp", d_hidden=(1000, 500, 250, 250, 250), g_hidden=(500, 500),
               input_noise=0.3, hidden_noise=0.5, batch_size=100, epochs=100000,
               iters_per_epoch=a.iters, eval_every=1, checkpoint_every=1, init_examples=500,
               baseline=False, num_devices=1)
else:
  cfg = Config(name="soak", dataset="digits", labels_per_class=5, val_size=200, d_hidden=(500, 250, 250),
               g_hidden=(250, 250), epochs=100000, iters_per_epoch=50, eval_every=10, checkpoint_every=1,
               baseline=False, num_devices=1)
if a.no_malloc_fix:
  from sgan_jax import memory
  memory.fix_mmap_threshold = lambda *args, **kw: False
if a.malloc_trim_threshold is not None or a.malloc_mmap_threshold is not None:
  from sgan_jax import memory
  memory.fix_mmap_threshold.__defaults__ = (
      memory.DEFAULT_THRESHOLD if a.malloc_mmap_threshold is None else a.malloc_mmap_threshold,
      memory.TRIM_THRESHOLD if a.malloc_trim_threshold is None else a.malloc_trim_threshold)
if a.no_ckpt:
  cfg = cfg.replace(checkpoint_every=10**9)
if a.no_grid:  # neither the generator pass nor the PNG write
  import jax.numpy as jnp
  from sgan_jax import train as train_lib
  train_lib.make_sample_grid = lambda m: (lambda g_params, g_state: jnp.zeros(()))
  train_lib.images.save_grid = lambda *args, **kw: None
experiment.train_and_evaluate(cfg, None if a.no_workdir else f"{out}/run", log=lambda s: None)
