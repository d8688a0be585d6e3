"""Memory soak: train digits with a checkpoint every epoch for as long as allowed, sampling RSS."""
import json, os, sys, threading, time
import psutil
sys.path.insert(0, os.getcwd())
from sgan_jax import experiment
from sgan_jax.config import Config
out = "runs/soak"
proc = psutil.Process()
t0 = time.time()
def sample():
  with open(f"{out}/rss.jsonl", "a") as f:
    while True:
      f.write(json.dumps({"t": round(time.time() - t0), "rss_mb": round(proc.memory_info().rss / 2**20, 1)}) + "\n")
      f.flush()
      time.sleep(30)
threading.Thread(target=sample, daemon=True).start()
cfg = Config(name="soak", dataset="digits", labels_per_class=5, val_size=200, d_hidden=(500, 250, 250),
             g_hidden=(250, 250), epochs=100000, iters_per_epoch=50, eval_every=1, checkpoint_every=1,
             baseline=False, num_devices=1)
experiment.train_and_evaluate(cfg, f"{out}/run", log=lambda s: None)
