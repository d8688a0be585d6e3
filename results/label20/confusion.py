"""Per-class test errors and confusions of a run's kept checkpoints (20-label degradation).

usage: python results/label20/confusion.py RUN_DIR   (a table run's labels_N/seed_S folder)
"""
import os, sys
import numpy as np
from sgan_jax import train as T, checkpoint as C, experiment as X, generate as G

run = sys.argv[1]
m, _ = G.run_models(run)  # the run's own models, from its config.json and model.json
ds = X.load_data(m.cfg)  # the run's own dataset, through the project's loader
K = ds.num_classes
predict = T.make_predict(m)  # compiled once for all checkpoints
y = ds.y_test
lab = np.load(os.path.join(run, "labeled_indices.npy"))
ck = C.Checkpointer(os.path.join(run, "checkpoints_sgan"))
for ep in sorted(ck.all_epochs()):
  st = G.checkpoint_state(m, run, ep)
  for name, p in (("avg", st.d_avg), ("live", st.d_params)):
    pr = T.predict_all(predict, p, st.d_frozen, ds.x_test)[:, :K].argmax(-1)
    cm = np.zeros((K, K), int)
    np.add.at(cm, (y, pr), 1)
    lab_pr = T.predict_all(predict, p, st.d_frozen, ds.x_train[lab])[:, :K].argmax(-1)
    lab_acc = np.mean(lab_pr == ds.y_train[lab])
    per_class = 1 - np.diag(cm) / cm.sum(1)
    off = cm.copy(); np.fill_diagonal(off, 0)
    top = np.dstack(np.unravel_index(np.argsort(-off, None)[:4], off.shape))[0]
    print(f"ep {ep:2d} {name:4s} err {1 - np.trace(cm) / len(y):.4f} labeled acc {lab_acc:.2f} | per class "
          + " ".join(f"{e:.2f}" for e in per_class)
          + " | predicted share " + " ".join(f"{c / len(y):.2f}" for c in cm.sum(0))
          + " | top true->pred " + ", ".join(f"{a}->{b} {off[a, b]}" for a, b in top), flush=True)
ck.close()
