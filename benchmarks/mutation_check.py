"""Mutation check: does the test suite notice small, deliberate bugs in the core rules?

  python benchmarks/mutation_check.py --out docs/mutation.md   # all mutants
  python benchmarks/mutation_check.py --only data.scale_sym     # some, by id
  python benchmarks/mutation_check.py --check                   # snippets still match?

Each mutant below replaces one exact snippet of one file. For each, the repository is
copied to a temporary folder (the working tree is never edited), the snippet replaced
there, and the mutant's own tests run on the copy (``PYTHONPATH=<copy>``, ``-n 0 -x``).
A failing test kills the mutant; passing tests let it survive. The report (markdown)
lists every mutant with its result; survivors known to be equivalent say why.

The list is data: when the library moves code, update ``file`` and ``old`` (``--check``
names the snippets that no longer match exactly once).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Mutant:
  id: str
  file: str
  old: str       # exact snippet; must occur once in file
  new: str
  what: str      # the bug, in one line
  tests: tuple   # pytest node ids that should catch it
  equivalent: Optional[str] = None  # why a surviving mutant is no bug (if it is none)


L, D, C, T, TB, M, TT = ("tests/test_losses.py", "tests/test_data.py", "tests/test_checkpoint.py",
                         "tests/test_train.py", "tests/test_tables.py", "tests/test_metrics.py",
                         "tests/test_toolbox.py")
LOSSES, DATA, CKPT, TRAIN, TABLES, METRICS = ("sgan_jax/losses.py", "sgan_jax/data.py",
                                              "sgan_jax/checkpoint.py", "sgan_jax/train.py",
                                              "sgan_jax/reports.py", "sgan_jax/metrics.py")
EVAL = "sgan_jax/evaluation.py"


def _t(path, *names):
  return tuple(f"{path}::{n}" for n in names)


LOSS_TESTS = _t(L, "test_supervised_xent_matches_numpy", "test_supervised_xent_hand_value",
                "test_d_unsupervised_matches_numpy_probabilities",
                "test_parameterisations_agree_when_fake_logit_is_zero",
                "test_k_plus_one_is_shift_invariant", "test_feature_matching_l2_and_l1",
                "test_feature_matching_hand_value", "test_generator_gan_losses_match_numpy",
                "test_error_rate_and_class_logits", "test_regression_losses_match_independent_formulas")
TOOLBOX_LOSS_TESTS = _t(TT, "test_wasserstein_losses_match_formula",
                        "test_gradient_penalty_known_gradient_norms",
                        "test_interpolate_lies_on_segments", "test_conditional_entropy_matches_formula",
                        "test_class_balance_is_kl_of_the_batch_mean_prediction",
                        "test_label_prior_is_smoothed_class_frequency")
SELECT_TESTS = _t(D, "test_select_labeled_per_class_is_balanced_fixed_and_seeded",
                  "test_select_labeled_matches_reference_rule",
                  "test_select_labeled_rate_is_stratified_and_full_rate_takes_all",
                  "test_select_labeled_total_is_as_balanced_as_the_count_allows",
                  "test_select_labeled_impossible_requests", "test_class_with_no_examples_is_an_error")
SPLIT_TESTS = _t(D, "test_make_splits_unlabeled_is_train_minus_val_and_carries_no_labels",
                 "test_unlabeled_stream_is_the_training_split_minus_the_hold_out",
                 "test_validation_split_has_exactly_val_size_examples_stratified",
                 "test_validation_split_too_large")
SCALE_TESTS = _t(D, "test_from_arrays_scales_uint8_and_adds_channel",
                 "test_from_arrays_rejects_bad_input", "test_label_out_of_range_for_num_classes",
                 "test_digits_is_bundled_and_fixed")
RETENTION_TESTS = _t(C, "test_checkpoints_written_and_kept")
METRIC_TESTS = _t(M, "test_gaussian_stats_are_the_mean_and_unbiased_covariance",
                  "test_frechet_distance_diagonal_closed_form",
                  "test_frechet_distance_general_matches_scipy_formula", "test_fid_jits",
                  "test_inception_score_bounds", "test_inception_score_hand_computed_and_splits")

MUTANTS = [
    # ---- losses
    Mutant("losses.xent_sign", LOSSES, "return -jnp.mean(l_y) + jnp.mean(", "return jnp.mean(l_y) + jnp.mean(",
           "supervised cross-entropy rewards the wrong logit", LOSS_TESTS),
    Mutant("losses.k1_no_shift", LOSSES, "return logits[:, :-1] - logits[:, -1:]", "return logits[:, :-1]",
           "K+1 class logits ignore the fake logit", LOSS_TESTS),
    Mutant("losses.real_logit_max", LOSSES,
           "return jax.nn.logsumexp(class_logits(logits, parameterization), axis=-1)",
           "return jnp.max(class_logits(logits, parameterization), axis=-1)",
           "Z(x) = max logit instead of logsumexp", LOSS_TESTS),
    Mutant("losses.d_unl_real_term", LOSSES, "return (-0.5 * jnp.mean(z_unl) +", "return (-0.5 * jnp.mean(z_fake) +",
           "unsupervised D loss uses fake logits in the real term", LOSS_TESTS),
    Mutant("losses.d_unl_fake_sign", LOSSES, "          + 0.5 * jnp.mean(jax.nn.softplus(z_fake)))",
           "          - 0.5 * jnp.mean(jax.nn.softplus(z_fake)))",
           "unsupervised D loss with the fake term's sign flipped", LOSS_TESTS),
    Mutant("losses.fm_sqrt", LOSSES, "    return jnp.mean(jnp.square(diff))", "    return jnp.sqrt(jnp.mean(jnp.square(diff)))",
           "feature matching (order 2) takes a root", LOSS_TESTS),
    Mutant("losses.fm_l1_sum", LOSSES, "    return jnp.mean(jnp.abs(diff))", "    return jnp.sum(jnp.abs(diff))",
           "feature matching (order 1) sums instead of averaging", LOSS_TESTS),
    Mutant("losses.g_ns_sign", LOSSES, "jnp.mean(jax.nn.softplus(-real_logit(logits_fake, parameterization)))",
           "jnp.mean(jax.nn.softplus(real_logit(logits_fake, parameterization)))",
           "non-saturating G loss pushes samples towards fake", LOSS_TESTS),
    Mutant("losses.error_rate_eq", LOSSES, "return jnp.mean(pred != labels)", "return jnp.mean(pred == labels)",
           "error rate reports accuracy", LOSS_TESTS),
    Mutant("losses.error_rate_fake_col", LOSSES,
           "pred = jnp.argmax(class_logits(logits, parameterization), axis=-1)",
           "pred = jnp.argmax(logits, axis=-1)",
           "K+1 error rate lets the fake column win the argmax", LOSS_TESTS),
    Mutant("losses.huber_linear", LOSSES, "delta * (a - 0.5 * delta)", "delta * a",
           "Huber loss discontinuous at delta", LOSS_TESTS),
    Mutant("losses.huber_strict", LOSSES, "jnp.where(a <= delta,", "jnp.where(a < delta,",
           "Huber's quadratic branch excludes |r| = delta", LOSS_TESTS,
           equivalent="both branches give delta^2 / 2 at |r| = delta (and the same gradient), "
                      "so no input tells them apart"),
    Mutant("losses.gp_no_one", LOSSES, "jnp.mean(jnp.square(norms - 1.0))", "jnp.mean(jnp.square(norms))",
           "gradient penalty pulls the norm to 0, not 1", TOOLBOX_LOSS_TESTS),
    Mutant("losses.entropy_sign", LOSSES, "return -jnp.mean(jnp.sum(jnp.exp(logp) * logp, axis=-1))",
           "return jnp.mean(jnp.sum(jnp.exp(logp) * logp, axis=-1))",
           "conditional entropy with the wrong sign", TOOLBOX_LOSS_TESTS),
    Mutant("losses.prior_unsmoothed", LOSSES, "return (counts + 1.0) / (labels.shape[0] + num_classes)",
           "return counts / labels.shape[0]", "label prior not Laplace-smoothed", TOOLBOX_LOSS_TESTS),
    Mutant("losses.balance_no_mean", LOSSES, "log_pbar = jax.nn.logsumexp(logp, axis=0) - jnp.log(logp.shape[0])",
           "log_pbar = jax.nn.logsumexp(logp, axis=0)",
           "class balance on the batch's summed, not mean, prediction", TOOLBOX_LOSS_TESTS),
    # ---- data: scaling, labeled subset, validation split
    Mutant("data.scale_sym", DATA, "(x - 127.5) / 128.0", "x / 127.5 - 1.0",
           "uint8 -> [-1, 1] as x/127.5 - 1 instead of the reference's (x - 127.5)/128", SCALE_TESTS),
    Mutant("data.scale_01", DATA, "return x / 255.0 if pixel_range", "return x / 256.0 if pixel_range",
           "uint8 -> [0, 1] divides by 256", SCALE_TESTS),
    Mutant("data.scale_both_01", DATA, "return x / 255.0 if pixel_range == \"0,1\" else (x - 127.5) / 128.0",
           "return x / 255.0", "uint8 scaled to [0, 1] whatever the pixel range", SCALE_TESTS),
    Mutant("data.range_check", DATA, "x.max() > hi + 1e-3", "x.max() > hi + 1e3",
           "floats above the pixel range accepted", SCALE_TESTS),
    Mutant("data.negative_label", DATA, "if y.size and y.min() < 0:", "if y.size and y.min() < -1:",
           "label -1 accepted", SCALE_TESTS),
    Mutant("data.select_unseeded", DATA, "chosen.append(perm[y[perm] == k][: want[k]])",
           "chosen.append(np.flatnonzero(y == k)[: want[k]])",
           "labeled subset = first examples of each class, whatever the seed", SELECT_TESTS),
    Mutant("data.select_rate_floor", DATA, "want = np.maximum(1, np.round(rate * counts)).astype(int)",
           "want = np.maximum(1, np.floor(rate * counts)).astype(int)",
           "label_rate rounds down instead of to nearest", SELECT_TESTS),
    Mutant("data.select_total_extra", DATA, "    want[extra] += 1\n", "",
           "num_labeled drops the remainder labels", SELECT_TESTS),
    Mutant("data.val_remainder", DATA, "for k in np.argsort(-counts)[: val_size - want.sum()]:",
           "for k in np.argsort(-counts)[:0]:", "validation split smaller than val_size", SPLIT_TESTS),
    Mutant("data.val_in_train", DATA, "return np.setdiff1d(np.arange(n_train), val_idx)",
           "return np.arange(n_train)", "validation examples stay in the training streams",
           SPLIT_TESTS),
    Mutant("data.lab_idx_space", DATA, "lab_idx = keep[sub]", "lab_idx = sub",
           "labeled indices taken in the wrong index space (ignores the hold-out)", SPLIT_TESTS),
    # ---- checkpoints: retention, resume
    Mutant("ckpt.no_best", CKPT, "    if scored:\n      kept.add(min(scored)[1])\n", "",
           "best-on-validation checkpoint not kept", RETENTION_TESTS),
    Mutant("ckpt.best_tie_late", CKPT, "selection_key(v, e), e)", "selection_key(v, -e), e)",
           "kept 'best' checkpoint on a tie is the later epoch, not the one training selects",
           _t(C, "test_best_checkpoint_on_ties_is_the_earliest_as_training_selects") + RETENTION_TESTS),
    Mutant("ckpt.keep_more", CKPT, "kept = set(epochs[-self.keep:])",
           "kept = set(epochs[-(self.keep + 1):])",
           "one checkpoint more than keep_checkpoints", RETENTION_TESTS),
    Mutant("ckpt.no_checksum", "sgan_jax/integrity.py", "    if _sha256(path) != digest:", "    if False:",
           "a checkpoint file's bytes are not compared with its checksum",
           _t(C, "test_corrupt_checkpoint_bytes_are_detected_and_the_newest_intact_one_resumed")),
    Mutant("ckpt.unsealed_trusted", CKPT,
           "      return \"its save was cut off: no checksum manifest\"", "      return None",
           "a step whose save stopped before its manifest is trusted",
           _t(C, "test_a_save_cut_off_before_its_manifest_does_not_verify")),
    Mutant("train.rollback_unverified", "sgan_jax/train.py",
           "latest = ckpt.pick(lambda kept: max(kept, default=None), log) if ckpt else None",
           "latest = ckpt.latest_epoch() if ckpt else None",
           "a non-finite rollback restores the newest checkpoint without verifying it",
           _t(C, "test_rollback_never_restores_a_checkpoint_that_fails_verification")),
    Mutant("ckpt.config_diff_ignored", "sgan_jax/resume.py", "    if a != b:\n      diff[k] = (a, b)",
           "    if a != b and False:\n      diff[k] = (a, b)",
           "resume accepts a checkpoint of a different config",
           _t(C, "test_incompatible_config_is_refused_and_nothing_is_touched")),
    Mutant("ckpt.fingerprint_shapes_only", "sgan_jax/resume.py", "    h.update(a.tobytes())\n", "",
           "data fingerprint ignores the values", _t(C, "test_other_data_is_refused")),
    Mutant("ckpt.unpack_offset", "sgan_jax/packing.py", "    offsets[k] = o + a.size", "    offsets[k] = o",
           "restored leaves all read the start of the packed array",
           _t(C, "test_completed_run_resumes_to_same_result")),
    Mutant("ckpt.discard_target", CKPT, "later = [e for e in self.all_epochs() if e > epoch]",
           "later = [e for e in self.all_epochs() if e >= epoch]",
           "a rollback moves aside the checkpoint it rolls back to",
           _t(C, "test_d_wins_rollback_goes_two_epochs_back_and_keeps_the_abandoned_branch")),
    Mutant("train.resume_ignored", TRAIN, "    if meta is not None:\n      state, _ = ckpt.restore(",
           "    if False:\n      state, _ = ckpt.restore(", "existing checkpoints ignored (retrains)",
           _t(C, "test_completed_run_resumes_to_same_result")),
    # ---- evaluation and selection
    Mutant("eval.select_tie_late", EVAL, "  return (val_err, epoch)", "  return (val_err, -epoch)",
           "best epoch on a validation tie is the later one", RETENTION_TESTS),
    Mutant("eval.select_on_live", EVAL,
           "\"val_err\": err(state.d_avg, splits.x_val, splits.y_val)",
           "\"val_err\": err(state.d_params, splits.x_val, splits.y_val)",
           "selection on the live weights, not the Polyak average",
           _t(T, "test_evaluation_reads_the_average_for_validation_and_test")),
    Mutant("eval.errors_fake_col", EVAL, "k = outputs.shape[-1] - (cfg.parameterization == \"k+1\")",
           "k = outputs.shape[-1]", "K+1 evaluation lets the fake column win the argmax",
           _t(T, "test_errors_from_outputs_drop_the_fake_column_and_give_rmse")),
    Mutant("eval.select_best_latest", EVAL,
           "return min(scored, key=lambda r: selection_key(r[\"val_err\"], r[\"epoch\"]))",
           "return min(scored, key=lambda r: selection_key(r[\"val_err\"], -r[\"epoch\"]))",
           "budget selection on a tie takes the later epoch",
           _t(TB, "test_selected_within_budget_follows_trainings_rule")),
    Mutant("tables.budget_exclusive", TABLES, "r[\"epoch\"] <= budget and", "r[\"epoch\"] < budget and",
           "budget selection excludes the budget's own epoch",
           _t(TB, "test_selected_within_budget_follows_trainings_rule")),
    # ---- generator metrics
    Mutant("metrics.cov_biased", METRICS, "c.T @ c / (f.shape[0] - 1)", "c.T @ c / f.shape[0]",
           "biased covariance in FID", METRIC_TESTS),
    Mutant("metrics.fid_cross", METRICS, "- 2 * tr_cross", "- tr_cross",
           "FID's cross term not doubled", METRIC_TESTS),
    Mutant("metrics.is_no_exp", METRICS, "scores = jnp.exp(jnp.mean(kl, axis=1))",
           "scores = jnp.mean(kl, axis=1)", "Inception Score without the exponential", METRIC_TESTS),
]

COPY_IGNORE = shutil.ignore_patterns(".git", "results", "runs", "logs", "shared", "__pycache__",
                                     "*.pyc", ".pytest_cache", "*.egg-info")


def check_snippets(root: str) -> list[str]:
  """Problems with the mutant list against ``root``'s files (empty when all apply)."""
  bad, ids = [], set()
  for m in MUTANTS:
    if m.id in ids:
      bad.append(f"{m.id}: duplicate id")
    ids.add(m.id)
    path = os.path.join(root, m.file)
    n = open(path).read().count(m.old) if os.path.exists(path) else -1
    if n != 1:
      bad.append(f"{m.id}: snippet found {n} times in {m.file}" if n >= 0 else f"{m.id}: no {m.file}")
    for t in m.tests:
      if not os.path.exists(os.path.join(root, t.split("::")[0])):
        bad.append(f"{m.id}: no test file {t}")
  return bad


def pytest_cmd(tests) -> list[str]:
  return [sys.executable, "-m", "pytest", "-q", "-n", "0", "-x", "-p", "no:cacheprovider", *tests]


def run_in(copy: str, tests, timeout: float) -> tuple[str, str, float]:
  """``(outcome, detail, seconds)`` of the tests in ``copy``; outcome passed|failed|error|timeout."""
  env = dict(os.environ, PYTHONPATH=copy)
  t0 = time.time()
  try:
    r = subprocess.run(pytest_cmd(tests), cwd=copy, env=env, capture_output=True, text=True,
                       timeout=timeout)
  except subprocess.TimeoutExpired:
    return "timeout", f"over {timeout:.0f} s", time.time() - t0
  dt = time.time() - t0
  out = r.stdout + r.stderr
  if r.returncode == 0:
    return "passed", "", dt
  failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
  detail = failed[0].split("::")[-1] if failed else out.strip().splitlines()[-1][:120]
  return ("failed" if r.returncode == 1 else "error"), detail, dt


def make_copy(dest: str) -> str:
  shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
  env = dict(os.environ, PYTHONPATH=dest)
  where = subprocess.run([sys.executable, "-c", "import sgan_jax; print(sgan_jax.__file__)"],
                         cwd=dest, env=env, capture_output=True, text=True).stdout.strip()
  if not os.path.realpath(where).startswith(os.path.realpath(dest)):
    raise SystemExit(f"PYTHONPATH={dest} imports sgan_jax from {where!r}, not the copy")
  return dest


def run_mutant(m: Mutant, copy: str, timeout: float) -> dict:
  path = os.path.join(copy, m.file)
  original = open(path).read()
  if original.count(m.old) != 1:
    return {"id": m.id, "result": "stale", "detail": "snippet not found once", "s": 0.0}
  try:
    with open(path, "w") as f:
      f.write(original.replace(m.old, m.new))
    outcome, detail, dt = run_in(copy, m.tests, timeout)
  finally:
    with open(path, "w") as f:
      f.write(original)
  result = {"passed": "survived", "failed": "killed", "error": "killed (error)",
            "timeout": "timeout"}[outcome]
  return {"id": m.id, "result": result, "detail": detail, "s": dt}


def machine() -> str:
  from sgan_jax.machine import host_cpu
  return f"{host_cpu()}, Python {platform.python_version()}"


def report(rows: list[dict], mutants: list[Mutant], command: str, wall: float,
           baseline_s: float) -> str:
  by_id = {m.id: m for m in mutants}
  n = len(rows)
  killed = sum(r["result"].startswith("killed") for r in rows)
  survived = [r for r in rows if r["result"] == "survived"]
  other = n - killed - len(survived)
  equiv = [r for r in survived if by_id[r["id"]].equivalent]
  lines = [
      "# Mutation check", "",
      f"Command: `{command}`  ",
      f"Machine: {machine()}  ",
      f"Wall time: {wall / 60:.1f} min ({baseline_s:.0f} s of it the unmutated baseline run)", "",
      f"**{n} mutants: {killed} killed, {len(survived)} survived "
      f"({len(equiv)} of them equivalent)" + (f", {other} stale/timeout" if other else "") + "**", "",
      "Each mutant is one exact snippet replaced in a temporary copy of the repository; its "
      "tests run there with `-n 0 -x`. Mutants and their tests are listed in "
      "`benchmarks/mutation_check.py`.", "",
      "| mutant | file | bug | result | first failing test | s |", "|---|---|---|---|---|---|"]
  for r in rows:
    m = by_id[r["id"]]
    cell = lambda text: text.replace("|", "\\|")
    lines.append(f"| `{m.id}` | {m.file} | {cell(m.what)} | {r['result']} | "
                 f"{cell(r['detail']) or '-'} | {r['s']:.0f} |")
  if survived:
    lines += ["", "## Survivors", ""]
    for r in survived:
      m = by_id[r["id"]]
      why = f"equivalent: {m.equivalent}" if m.equivalent else "**not explained: add a test**"
      lines.append(f"- `{m.id}` ({m.what}): {why}")
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--only", default="", help="comma-separated mutant ids (default: all)")
  p.add_argument("--jobs", type=int, default=1, help="mutants tested at once (one copy each)")
  p.add_argument("--timeout", type=float, default=180.0, help="seconds per mutant's tests")
  p.add_argument("--check", action="store_true", help="only check that every snippet applies")
  p.add_argument("--no-baseline", action="store_true",
                 help="skip running the selected tests unmutated first")
  p.add_argument("--out", default=None, help="write the markdown report here too")
  a = p.parse_args(argv)
  problems = check_snippets(ROOT)
  if problems or a.check:
    print("\n".join(problems) or f"all {len(MUTANTS)} mutants apply")
    return 1 if problems else 0
  chosen = [m for m in MUTANTS if not a.only or m.id in a.only.split(",")]
  unknown = set(filter(None, a.only.split(","))) - {m.id for m in chosen}
  if unknown:
    p.error(f"unknown mutant ids {sorted(unknown)}")
  t0 = time.time()
  with tempfile.TemporaryDirectory(prefix="mutation_") as tmp:
    copies = [make_copy(os.path.join(tmp, f"repo{i}")) for i in range(max(1, a.jobs))]
    baseline_s = 0.0
    if not a.no_baseline:  # a test failing unmutated would "kill" every mutant
      tests = list(dict.fromkeys(t for m in chosen for t in m.tests))
      outcome, detail, baseline_s = run_in(copies[0], tests, a.timeout * 10)
      print(f"baseline: {outcome} in {baseline_s:.0f} s {detail}", flush=True)
      if outcome != "passed":
        return 2
    free: queue.Queue = queue.Queue()
    for c in copies:
      free.put(c)
    rows: dict = {}

    def work(m):
      c = free.get()
      try:
        r = run_mutant(m, c, a.timeout)
      finally:
        free.put(c)
      print(f"{m.id}: {r['result']} ({r['s']:.0f} s) {r['detail']}", flush=True)
      rows[m.id] = r

    with concurrent.futures.ThreadPoolExecutor(len(copies)) as pool:
      list(pool.map(work, chosen))
  wall = time.time() - t0
  command = "python benchmarks/mutation_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
  md = report([rows[m.id] for m in chosen], chosen, command.strip(), wall, baseline_s)
  print("\n" + md)
  if a.out:
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
      f.write(md)
  return 0


if __name__ == "__main__":
  sys.exit(main())
