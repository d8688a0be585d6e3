"""Per-epoch diagnostics of a run's kept checkpoints (D-wins investigation)."""
import os, sys
import jax, jax.numpy as jnp, numpy as np
from sgan_jax import train as T, checkpoint as C, experiment as X, generate as G

run = sys.argv[1]
m, _ = G.run_models(run)  # the run's own models, from its config.json and model.json
ds = X.load_data(m.cfg)  # the run's own dataset, through the project's loader
xr = ds.x_train[:2000]  # D sees the first 1000; the real-pixel stats use all 2000
ck = C.Checkpointer(os.path.join(run, "checkpoints_sgan"))
for ep in ck.all_epochs():
  st = G.checkpoint_state(m, run, ep)
  key = jax.random.key(123)
  z = T.sample_z(key, 1000, 100)
  xg, _ = m.gen.apply({"params": st.g_params, **st.g_state}, z, None, train=True, mutable=["batch_stats"])
  xg = np.asarray(xg)
  dv = {"params": st.d_params, **st.d_frozen}
  (lr_, fr), _ = m.disc.apply(dv, xr[:1000], train=True, rngs={"noise": key}, mutable=["batch_stats"])
  (lg, fg), _ = m.disc.apply(dv, xg, train=True, rngs={"noise": key}, mutable=["batch_stats"])
  Zr = jax.nn.logsumexp(lr_, -1); Zg = jax.nn.logsumexp(lg, -1)
  gp = st.g_params
  out = gp[[k for k in gp if "WNDense" in k][0]]
  sat = np.mean((xg < 0.01) | (xg > 0.99))
  satr = np.mean((xr < 0.01) | (xr > 0.99))
  flat = xg.reshape(1000, -1)
  div = np.mean(np.linalg.norm(flat[:500] - flat[500:], axis=1))
  divr = np.mean(np.linalg.norm(xr[:500].reshape(500, -1) - xr[500:1000].reshape(500, -1), axis=1))
  fm = float(np.mean((np.mean(fr, 0) - np.mean(fg, 0)) ** 2))
  dead = float(np.mean(np.asarray(fg).max(0) == 0))
  print(f"ep {ep:2d} Zr {float(jnp.mean(Zr)):7.2f} Zg {float(jnp.mean(Zg)):7.2f} "
        f"pfake_g {float(jnp.mean(jax.nn.sigmoid(-Zg))):.3f} fm {fm:8.2f} |fr| {float(jnp.mean(fr)):.2f} |fg| {float(jnp.mean(fg)):.2f} "
        f"g_out_scale {float(jnp.mean(out['scale'])):.2f}/{float(jnp.max(out['scale'])):.2f} "
        f"sat {sat:.3f} (real {satr:.3f}) mean {xg.mean():.3f} (real {xr.mean():.3f}) div {div:.2f} (real {divr:.2f}) deadfeat_g {dead:.2f}", flush=True)
ck.close()
