"""sgan_jax: semi-supervised GANs in JAX/Flax.

Modules, one per concern:

* ``losses``     - pure loss functions over logits/features (importable alone)
* ``layers``     - weight norm with data-dependent init, Gaussian noise
* ``models``     - reference generator/discriminator pairs (MLP for MNIST, conv for 32x32)
* ``data``       - loaders (npz, TFDS, bundled digits), labeled subset, validation split
* ``config``     - the run configuration (a validated frozen dataclass)
* ``train``      - state, jitted multi-step training chunk, evaluation, the training loop
* ``checkpoint`` - orbax checkpoints for exact resume
* ``experiment`` - one config over seeds, SGAN beside its supervised-only baseline
* ``images``     - sample grids as PNG
* ``errors``     - ``SganError``, the one error type for bad input
"""

__version__ = "0.1.0"
