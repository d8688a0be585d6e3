"""sgan_jax: semi-supervised GANs in JAX/Flax.

Modules, one per concern:

* ``losses``     - pure loss functions over logits/features (importable alone)
* ``layers``     - weight norm with data-dependent init, Gaussian noise
* ``models``     - generator/discriminator pairs (MLP for MNIST, conv for 32x32, DCGAN-style)
* ``data``       - loaders (npz, TFDS, bundled digits), labeled subset, validation split
* ``config``     - the run configuration (a validated frozen dataclass)
* ``train``      - state, jitted multi-step training chunk, evaluation, the training loop
* ``checkpoint`` - orbax checkpoints for exact resume: save, verify, restore, retention
* ``packing``    - a train state as one flat array per dtype (what a checkpoint stores)
* ``integrity``  - the SHA-256 manifest sealed into each saved checkpoint
* ``resume``     - whether a folder's checkpoints belong to this run, and where it resumes
* ``experiment`` - one config over seeds, SGAN beside its supervised-only baseline
* ``images``     - sample grids as PNG
* ``generate``   - sampling, labeled synthetic data export (conditional generator)
* ``metrics``    - Fréchet distance and Inception Score over any feature extractor
* ``evaluator``  - a reference classifier trained on all labels (FID/IS features, judging samples)
* ``tables``     - paper tables: label counts x seeds, resumable, with the published column
* ``reports``    - tables read back from runs, merged, written (markdown, JSON, CSV)
* ``plots``      - their figures: error vs labels, run curves, per-cell test error by epoch
* ``tblog``      - TensorBoard scalar event files without TensorFlow
* ``seeds``      - S replicas trained in one vmapped program
* ``columns``    - CSV reading, task inference, the fitted feature/target encoding
* ``tabular``    - CSV/npz tables: splits, fit and predict
* ``estimators`` - ``SGANClassifier`` and ``SGANRegressor`` for scikit-learn (``from sgan_jax import ...``)
* ``errors``     - ``SganError``, the one error type for bad input
"""

__version__ = "0.1.0"

_ESTIMATORS = ("SGANClassifier", "SGANRegressor")


def __getattr__(name: str):
  # Imported on first use: ``import sgan_jax`` stays free of scikit-learn.
  if name in _ESTIMATORS:
    from sgan_jax import estimators
    return getattr(estimators, name)
  raise AttributeError(f"module 'sgan_jax' has no attribute {name!r}")
