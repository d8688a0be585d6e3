"""Sample the resident memory of a running process (a training run) until it exits.

  python results/soak/monitor.py PID out.jsonl [--every 30] [--ckpt DIR]

One JSON line per sample: {"t": seconds since start, "rss_mb": ..., "epoch": newest
checkpoint step in DIR (if given)}. Used for the realistic-cadence soak: an MNIST run with a
checkpoint every epoch, watched from outside so the watcher adds nothing to its memory.
"""
import argparse, json, os, time
import psutil

p = argparse.ArgumentParser()
p.add_argument("pid", type=int)
p.add_argument("out")
p.add_argument("--every", type=float, default=30)
p.add_argument("--ckpt", default=None)
a = p.parse_args()
proc, t0 = psutil.Process(a.pid), time.time()
with open(a.out, "a") as f:
  while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
    try:
      rss = proc.memory_info().rss
    except psutil.NoSuchProcess:
      break
    done = [int(d) for d in os.listdir(a.ckpt) if d.isdigit()] if a.ckpt and os.path.isdir(a.ckpt) else []
    f.write(json.dumps({"t": round(time.time() - t0), "rss_mb": round(rss / 2**20, 1),
                        "epoch": max(done, default=None)}) + "\n")
    f.flush()
    time.sleep(a.every)
