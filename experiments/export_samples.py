"""Write N labeled synthetic samples per class from a class-conditional SGAN run.

  python experiments/export_samples.py --run runs/mnist_cond/seed_1 --per_class 1000 \
      --out runs/mnist_cond/synthetic.npz [--judge ../shared/datasets/mnist.npz]

Writes the .npz (x_train/y_train/x_test/y_test, loadable with --set dataset=<file>) and a
per-class grid PNG beside it. With --judge DATA, a reference classifier trained on all of
DATA's labels (cached in --reference) classifies the samples and scores each class's FID
against DATA's test images of that class; the report goes to <out>.json.
"""

import argparse
import json
import os
import sys

import numpy as np

from sgan_jax import data, evaluator, generate
from sgan_jax.errors import SganError


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--run", required=True, help="seed folder of a finished conditional SGAN run")
  p.add_argument("--per_class", type=int, default=1000)
  p.add_argument("--out", required=True, help="output .npz path")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--checkpoint", default="final",
                 help="which generator: final (last epoch), best (saved with the epoch selected "
                      "on validation) or an epoch number among the kept checkpoints")
  p.add_argument("--judge", default=None, help="dataset (.npz path or name) to judge the samples against")
  p.add_argument("--reference", default="runs/reference/classifier.msgpack",
                 help="where the reference classifier is cached")
  a = p.parse_args(argv)
  try:
    info = generate.export_labeled(a.run, a.out, a.per_class, a.seed, checkpoint=a.checkpoint)
    print(f"wrote {info['num_samples']} samples ({info['num_classes']} classes) to {info['npz']}"
          + (f" and {info['grid']}" if info["grid"] else ""))
    if a.judge:
      ds = data.load(a.judge)
      synth = data.load_npz(a.out, num_classes=ds.num_classes)
      ref = evaluator.fit_or_load(ds, a.reference)
      rep = evaluator.judge_samples(ref, synth.x_train, synth.y_train, ds.x_test, ds.y_test,
                                    ds.num_classes)
      # What real data scores in the same feature space: as many real training images
      # (a random subset; the reference was trained on them) against the test set.
      n = min(len(ds.x_train), len(synth.x_train))
      pick = np.random.default_rng(a.seed).permutation(len(ds.x_train))[:n]
      rep["fid_all_real_train_vs_test"] = ref.fid(ds.x_test, ds.x_train[pick])
      rep.update(run=a.run, samples_per_class=a.per_class, seed=a.seed, checkpoint=a.checkpoint,
                 reference_test_acc=ref.accuracy(ds.x_test, ds.y_test))
      with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(rep, f, indent=1)
      print(f"reference classifier (test acc {100 * rep['reference_test_acc']:.2f}%) says "
            f"{100 * rep['accuracy']:.2f}% of the samples are their intended class; "
            f"FID all {rep['fid_all']:.2f} (real training images: "
            f"{rep['fid_all_real_train_vs_test']:.2f}), IS {rep['inception_score']:.2f}")
      for r in rep["per_class"]:
        print(f"  class {r['class']}: accuracy {100 * r['accuracy']:.1f}%  FID {r['fid']:.2f}")
  except SganError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
