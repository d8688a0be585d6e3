"""Class marginals and per-example entropies with and without the critic's training noise.

usage: python results/label20/noisy_marginals.py RUN_DIR [N_IMAGES]   (a labels_N/seed_S folder)

For each kept checkpoint (averaged and live weights) on the first N test images (default
2,000): in eval mode (no noise, as the test error is measured) and in training mode (the
input and hidden Gaussian noise D sees when the balance term is computed), the mean
per-example entropy H(p(y|x)), KL(p_bar || uniform) of the mean prediction, and the
largest class share of p_bar. Read-only; the project's loader and checkpoint code.
"""
import sys
import jax
import numpy as np
from sgan_jax import checkpoint as C, experiment as X, generate as G, losses as L, train as T

run = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
m, _ = G.run_models(run)
ds = X.load_data(m.cfg)
K = ds.num_classes
x = ds.x_test[:n]
param = m.cfg.parameterization


@jax.jit
def logits_of(params, frozen, xb, key):
  (lo, _), _ = m.disc.apply({"params": params, **frozen}, xb, train=True, groups=1,
                            rngs={"noise": key}, mutable=["batch_stats"])
  return lo


def stats(lo):
  lo = jax.numpy.asarray(lo)
  pbar = np.asarray(jax.nn.softmax(L.class_logits(lo, param), -1)).mean(0)
  return (float(L.conditional_entropy(lo, param)), float(L.class_balance(lo, param)),
          float(pbar.max()), int(pbar.argmax()))


predict = T.make_predict(m)
ck = C.Checkpointer(f"{run}/checkpoints_sgan")
print(f"{run}: {n} test images; H = mean entropy of p(y|x) (max log K = {np.log(K):.2f}); "
      "KL = KL(p_bar || uniform); max = largest class share of p_bar")
for ep in sorted(ck.all_epochs()):
  st = G.checkpoint_state(m, run, ep)
  for name, prm in (("avg", st.d_avg), ("live", st.d_params)):
    ev = stats(T.predict_all(predict, prm, st.d_frozen, x))
    tr = stats(np.concatenate([np.asarray(logits_of(prm, st.d_frozen, x[s:s + 100],
                                                    jax.random.key(s))) for s in range(0, n, 100)]))
    print(f"ep {ep:2d} {name:4s} | eval mode:  H {ev[0]:.3f} KL {ev[1]:.4f} max {ev[2]:.2f} ({ev[3]})"
          f" | train mode (noise): H {tr[0]:.3f} KL {tr[1]:.4f} max {tr[2]:.2f} ({tr[3]})", flush=True)
ck.close()
