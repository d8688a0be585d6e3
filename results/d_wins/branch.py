"""Restore a run's epoch-N checkpoint, change the key, train E more epochs; print D-wins signals."""
import json, os, sys
import jax, jax.numpy as jnp, numpy as np
from sgan_jax import train as T, checkpoint as C, experiment as X, data as D
from sgan_jax.config import from_dict

run, starts, E = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3])
salts = [int(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else [1]
cfg = from_dict(json.load(open(os.path.join(run, "config.json"))))
ds = X.load_data(cfg)
sp = D.make_splits(ds, labels_per_class=cfg.labels_per_class, label_rate=cfg.label_rate,
                   val_size=cfg.val_size, data_seed=cfg.data_seed)
iters = len(sp.x_unl) // cfg.batch_size
mesh = T.make_mesh(1, cfg.batch_size)
m, chunk, predict, _ = T._compiled(T._graph_config(cfg), tuple(sp.x_unl.shape[1:]), sp.num_classes,
                                   iters, cfg.epochs, "sgan", mesh)
from jax.sharding import NamedSharding, PartitionSpec as P
rep = NamedSharding(mesh, P())
tmpl = T.place(T.init_state(m, jax.random.key(0), jnp.asarray(sp.x_unl[:500])), rep)
data = T.place({"x_lab": sp.x_lab, "y_lab": sp.y_lab, "x_unl": sp.x_unl}, rep)
extra = {"lab_idx": np.asarray(sp.lab_idx, np.int64), "val_idx": np.asarray(sp.val_idx, np.int64)}
ck = C.Checkpointer(os.path.join(run, "checkpoints_sgan"), 100)
for s0 in starts:
  for salt in salts:
    st, _ = ck.restore(s0, tmpl, extra, rep)
    if salt:
      st = st.replace(key=jax.random.fold_in(st.key, salt))
    out = []
    for ep in range(s0, s0 + E):
      idx = T.epoch_indices(cfg.seed, ep, len(sp.x_lab), len(sp.x_unl), iters, cfg.batch_size)
      st, ps = chunk(st, data, T.place(idx, NamedSharding(mesh, P(None, "data"))))
      ps = {k: np.asarray(v) for k, v in ps.items()}
      _, rec = T._evaluate(predict, st, sp, cfg)
      out.append(f"ep{ep+1}: unl {ps['loss_unl'].mean():.3f} gen {ps['loss_gen'].mean():.1f} test {100*rec['test_err']:.2f}")
    print(f"from {s0} salt {salt}: " + " | ".join(out), flush=True)
ck.close()
