"""Memory soak: train digits with a checkpoint every epoch (50 iterations) and an evaluation
every 10 (each evaluation adds ~1 KB of metrics history to memory by design), sampling RSS.

  python results/soak/soak.py runs/soak 3600    # out folder, seconds

Writes <out>/rss.jsonl ({"t": seconds, "rss_mb": ..., "epoch": last saved}) every 30 s and
exits after the given time.
"""
import json, os, sys, threading, time
import psutil
sys.path.insert(0, os.getcwd())
from sgan_jax import experiment
from sgan_jax.config import Config

out, seconds = sys.argv[1], float(sys.argv[2])
os.makedirs(out, exist_ok=True)
proc = psutil.Process()
t0 = time.time()
ckdir = f"{out}/run/checkpoints_sgan"


def sample():
  with open(f"{out}/rss.jsonl", "a") as f:
    while True:
      done = [int(d) for d in os.listdir(ckdir) if d.isdigit()] if os.path.isdir(ckdir) else []
      f.write(json.dumps({"t": round(time.time() - t0), "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                          "epoch": max(done, default=0)}) + "\n")
      f.flush()
      if time.time() - t0 > seconds:
        os._exit(0)
      time.sleep(30)


threading.Thread(target=sample, daemon=True).start()
cfg = Config(name="soak", dataset="digits", labels_per_class=5, val_size=200, d_hidden=(500, 250, 250),
             g_hidden=(250, 250), epochs=100000, iters_per_epoch=50, eval_every=10, checkpoint_every=1,
             baseline=False, num_devices=1)
experiment.train_and_evaluate(cfg, f"{out}/run", log=lambda s: None)
