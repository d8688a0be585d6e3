"""Per-class test errors and confusions of a run's kept checkpoints (20-label degradation).

usage: python results/label20/confusion.py RUN_DIR   (a table run's labels_N/seed_S folder)
"""
import json, os, sys
import jax, jax.numpy as jnp, numpy as np
from sgan_jax import train as T, checkpoint as C, experiment as X
from sgan_jax.config import from_dict

run = sys.argv[1]
cfg = from_dict(json.load(open(os.path.join(run, "config.json"))))
ds = X.load_data(cfg)  # the run's own dataset, through the project's loader
shape, K = ds.x_train.shape[1:], ds.num_classes
m = T.build_models(cfg, shape, K, 600)
ck = C.Checkpointer(os.path.join(run, "checkpoints_sgan"))
tmpl = T.init_state(m, jax.random.key(0), jnp.zeros((2, *shape)))
extra = {k: np.load(os.path.join(run, f)).astype(np.int64) for k, f in
         {"lab_idx": "labeled_indices.npy", "val_idx": "val_indices.npy"}.items()}
sh = jax.sharding.SingleDeviceSharding(jax.devices()[0])
pred_fn = jax.jit(lambda p, fr, x: m.disc.apply({"params": p, **fr}, x, train=False)[0].argmax(-1))
y = ds.y_test
lab = extra["lab_idx"]
for ep in sorted(ck.all_epochs()):
  st, _ = ck.restore(ep, tmpl, extra, sh)
  for name, p in (("avg", st.d_avg), ("live", st.d_params)):
    pr = np.concatenate([np.asarray(pred_fn(p, st.d_frozen, ds.x_test[i:i + 1000]))
                         for i in range(0, len(y), 1000)])
    cm = np.zeros((K, K), int)
    np.add.at(cm, (y, pr), 1)
    lab_acc = np.mean(np.asarray(pred_fn(p, st.d_frozen, ds.x_train[lab])) == ds.y_train[lab])
    per_class = 1 - np.diag(cm) / cm.sum(1)
    off = cm.copy(); np.fill_diagonal(off, 0)
    top = np.dstack(np.unravel_index(np.argsort(-off, None)[:4], off.shape))[0]
    print(f"ep {ep:2d} {name:4s} err {1 - np.trace(cm) / len(y):.4f} labeled acc {lab_acc:.2f} | per class "
          + " ".join(f"{e:.2f}" for e in per_class)
          + " | predicted share " + " ".join(f"{c / len(y):.2f}" for c in cm.sum(0))
          + " | top true->pred " + ", ".join(f"{a}->{b} {off[a, b]}" for a, b in top), flush=True)
ck.close()
