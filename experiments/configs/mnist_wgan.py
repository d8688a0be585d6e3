"""MNIST, 100 labels: Wasserstein critic with gradient penalty (real/fake part), FM generator.

The `mnist_fm_table` setup (reference MLP pair, 1,000 validation images, Polyak rate
1e-3) with: d_objective="wasserstein", gp_weight=10.0. Weights are this project's choice, not tuned.

  python experiments/run_table.py mnist_wgan --seeds 1,2,3 --epochs 20 \
      --set dataset=../shared/datasets/mnist.npz
"""

from sgan_jax.config import Config
from sgan_jax.tables import Table

TABLE = Table(
    name="mnist_wgan", title="MNIST-100: Wasserstein critic with gradient penalty (real/fake part), FM generator", labels=(100,),
    published={100: "-"},
    source="errors of 10,000; Salimans et al. 2016 FM: 93 ± 6.5; Dai et al. 2017 Bad GAN: 79.5 ± 9.8",
    modes=("sgan",), unit="errors")


def get_config() -> Config:
  return Config(
      name="mnist_wgan", dataset="mnist", pixel_range="0,1", labels_per_class=10,
      val_size=1000, model="mlp", d_hidden=(1000, 500, 250, 250, 250), g_hidden=(500, 500),
      input_noise=0.3, hidden_noise=0.5, g_loss="feature_matching", fm_order=2,
      batch_size=100, lr=0.003, b1=0.5, epochs=300, lr_decay_epochs=0, avg_rate=1e-3,
      init_examples=500, baseline=False, checkpoint_every=1, d_objective="wasserstein", gp_weight=10.0)
