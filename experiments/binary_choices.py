"""REINFORCE against ES over on/off switches (seed 000): reward trajectories and the variance of
the estimate against the step size α and the perturbation scale σ.

The task: an MLP (Flatten → Dense(64) → Dense(10), Adam) on a Fashion-MNIST subset, trained
by a `popdescent.Population` whose members each set K = 3 switches, `Bernoulli`
hyperparameters the train step reads: `l2` (off 0, on 3e-3, on every kernel),
`learning_rate` (off 1e-3, on 1e-2) and `loss_scale` (off 1, on 0.1; under Adam this
changes almost nothing: a decoy switch whose θ should not move far).

Part 1, the policy in training: `popdescent.BernoulliPolicy` with `estimator="reinforce"` and
`"es"` on the same population size, budget and seeds; reward = minus each member's loss on a
sampled validation batch after every epoch (one unroll). Part 2, the estimators' statistics:
the reward table R(a) of the 2^K switch settings is measured (one member per setting, trained
for the whole budget, loss on the whole validation subset, `--table-seeds` populations), then
both estimators are run on that table (plus Gaussian noise of the measured spread) with
`binary_estimators` for `--draws` seeded runs per (α, σ): the variance of ĝ over runs, and the
expected reward J(θ) reached. Part 1 is online (a member's reward also carries its earlier
switches); part 2 is the bandit the seed's policy gradient assumes.

Run from the repository root:
    python -m experiments.binary_choices            # writes docs/binary_choices.{md,png}
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import popdescent as pd  # noqa: E402
from popdescent.inputs.datasets import load_dataset  # noqa: E402
from popdescent.strategies import binary_estimators as be  # noqa: E402

SWITCHES = {  # sorted by name: the policy's coordinate order
    "l2": pd.Bernoulli(0.0, 3e-3),
    "learning_rate": pd.Bernoulli(1e-3, 1e-2),
    "loss_scale": pd.Bernoulli(1.0, 0.1),
}
LABELS = {"reinforce": "REINFORCE", "es": "ES"}
COLOURS = {"reinforce": "tab:blue", "es": "tab:orange"}
SIGMA_COLOURS = ("tab:red", "tab:orange", "tab:brown", "tab:pink")  # ES at each σ of part 2
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def build_model(index=0):
    """The task's MLP, compiled (`index`: the Population's member index, unused)."""
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def load(train_examples, validation_examples):
    splits = load_dataset("fmnist", train_subset=train_examples, seed=0, download=False)
    return (splits.x_train, splits.y_train, splits.x_val[:validation_examples],
            splits.y_val[:validation_examples])


class Rewards(keras.callbacks.Callback):
    """After the policy's step: each epoch's rewards (minus the members' measured losses)."""

    def __init__(self):
        super().__init__()
        self.rewards = []

    def on_epoch_end(self, epoch, logs=None):
        self.rewards.append((-np.asarray(self.model.last_losses)).tolist())


def run_policy(estimator, seed, data, args):
    """One Population run with the policy: (rewards per epoch (E, N), θ per epoch (E, K))."""
    x, y, x_val, y_val = data
    keras.utils.set_random_seed(seed)
    population = pd.Population(build_model, size=args.members, seed=seed,
                               hyperparameters=SWITCHES)
    policy = pd.BernoulliPolicy(estimator, learning_rate=args.alpha, sigma=args.sigma,
                                cv_batch_size=args.cv_batch_size, seed=seed)
    rewards = Rewards()
    history = population.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                             steps_per_epoch=args.steps, validation_data=(x_val, y_val),
                             validation_freq=args.epochs + 1, verbose=0,
                             callbacks=[policy, rewards])
    thetas = np.array([history.history[f"theta_{name}"] for name in sorted(SWITCHES)]).T
    return np.array(rewards.rewards), thetas


def measure_table(seed, data, args):
    """R(a) for every setting a: one member per setting, the whole budget, whole validation."""
    x, y, x_val, y_val = data
    actions = be.all_actions(len(SWITCHES)).astype(bool)
    keras.utils.set_random_seed(seed)
    population = pd.Population(build_model, size=len(actions), seed=seed,
                               hyperparameters=SWITCHES)
    for index, switches in enumerate(actions):
        population.set_hyperparameters(index, {
            name: SWITCHES[name].value(on) for name, on in zip(sorted(SWITCHES), switches)})
    population.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                   steps_per_epoch=args.steps, verbose=0)
    losses = population.member_losses(x_val, y_val, batch_size=512)
    return (-losses).reshape((2,) * len(SWITCHES))


def simulate(estimator, table, noise, alpha, sigma, args):
    """`--draws` seeded policy runs on the table: (J(θ) per step (D, T+1), ĝ (D, T, K))."""
    values, estimates = [], []
    for draw in range(args.draws):
        rng = np.random.default_rng(draw)
        theta = np.zeros(table.ndim)
        run_values, run_estimates = [be.expected_reward(theta, table)], []
        for _ in range(args.epochs):
            state = be.draw_actions(estimator, theta, args.members, sigma, rng)
            rewards = table[tuple(state.actions.T.astype(int))]
            rewards = rewards + noise * rng.standard_normal(rewards.shape)
            gradient = be.estimate_gradient(estimator, state, rewards, sigma)
            theta = theta + alpha * gradient
            run_estimates.append(gradient)
            run_values.append(be.expected_reward(theta, table))
        values.append(run_values)
        estimates.append(run_estimates)
    return np.array(values), np.array(estimates)


def total_variance(estimates) -> float:
    """tr Var ĝ over runs at each step, averaged over the steps."""
    return float(np.mean(estimates.var(axis=0).sum(axis=-1)))


def signal_to_noise(estimates) -> float:
    """‖E ĝ‖² / tr Var ĝ over runs at each step, averaged over the steps: how much of one
    estimate is direction rather than noise (ES's target shrinks with σ as its noise does)."""
    signal = (estimates.mean(axis=0) ** 2).sum(axis=-1)
    return float(np.mean(signal / estimates.var(axis=0).sum(axis=-1)))


def sweep(table, noise, args):
    """{(estimator, σ or None, α): (mean tr Var ĝ, final J mean, final J sd, signal/noise)}."""
    rows = {}
    for alpha in args.alphas:
        settings = [("reinforce", None)] + [("es", sigma) for sigma in args.sigmas]
        for estimator, sigma in settings:
            values, estimates = simulate(estimator, table, noise, alpha, sigma or 1.0, args)
            rows[estimator, sigma, alpha] = (total_variance(estimates), values[:, -1].mean(),
                                             values[:, -1].std(), signal_to_noise(estimates))
    return rows


def plot(trajectories, rows, table, args, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    for estimator, runs in trajectories.items():
        means = np.array([rewards.mean(axis=1) for rewards, _ in runs])  # (seeds, epochs)
        epochs = np.arange(1, means.shape[1] + 1)
        for run in means:
            left.plot(epochs, run, color=COLOURS[estimator], alpha=0.3, linewidth=0.8)
        left.plot(epochs, means.mean(axis=0), color=COLOURS[estimator], linewidth=2,
                  label=f"{LABELS[estimator]} (mean of {len(means)} seeds)")
    left.set(xlabel="epoch (unroll)", ylabel="mean member reward (−validation loss)",
             title="Part 1: the policy in training")
    left.legend(fontsize=8)
    for estimator, sigma, marker in [("reinforce", None, "o")] + [
            ("es", sigma, "s") for sigma in args.sigmas]:
        label = LABELS[estimator] + ("" if sigma is None else f", σ = {sigma:g}")
        variances = [rows[estimator, sigma, alpha][0] for alpha in args.alphas]
        finals = [rows[estimator, sigma, alpha][1] for alpha in args.alphas]
        style = dict(marker=marker, label=label,
                     color=COLOURS[estimator] if sigma is None else SIGMA_COLOURS[
                         args.sigmas.index(sigma) % len(SIGMA_COLOURS)])
        middle.plot(args.alphas, variances, **style)
        right.plot(args.alphas, finals, **style)
    middle.set(xscale="log", yscale="log", xlabel="step size α",
               ylabel="tr Var ĝ (mean over steps)", title="Part 2: variance of the estimate")
    best = table.max()
    right.axhline(best, color="gray", linestyle="--", linewidth=0.8, label="best setting")
    right.set(xscale="log", xlabel="step size α", ylabel=f"J(θ) after {args.epochs} steps",
              title="Part 2: expected reward reached")
    for axis in (middle, right):
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    left.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(trajectories, rows, tables, noise, args) -> list:
    names = sorted(SWITCHES)
    table = np.mean(tables, axis=0)
    lines = [
        "# REINFORCE against ES over on/off switches (seed 000)", "",
        "`" + " ".join(["python -m experiments.binary_choices", *args.argv]) + "`",
        "", "Switches (off → on): " + ", ".join(
            f"{name} {SWITCHES[name].off:g} → {SWITCHES[name].on:g}" for name in names)
        + f". {args.members} members, {args.epochs} epochs of {args.steps} steps (batch "
        f"{args.batch_size}) on {args.train} Fashion-MNIST training images; rewards on "
        f"{args.cv_batch_size}-image validation batches (of {args.validation}); α = "
        f"{args.alpha:g}, σ = {args.sigma:g} (ES), seeds {args.seeds}.", "",
        "## Part 1: the policy in training", "",
        "| Estimator | seed | mean reward, first epoch | last epoch | final p(on): "
        + " | ".join(names) + " |", "|---|---|---|---|" + "---|" * len(names)]
    for estimator, runs in trajectories.items():
        for seed, (rewards, thetas) in zip(args.seeds, runs):
            probabilities = be.switch_probabilities(thetas[-1])
            lines.append(f"| {LABELS[estimator]} | {seed} | {rewards[0].mean():.3f} | "
                         f"{rewards[-1].mean():.3f} | "
                         + " | ".join(f"{p:.2f}" for p in probabilities) + " |")
    lines += ["", "## Part 2: the measured reward table and the estimators on it", "",
              f"R(a) = −validation loss after the whole budget, mean of {len(tables)} "
              f"population seeds; noise sd between seeds {noise:.3f} (added to every simulated "
              "reward).", "", "| " + " | ".join(names) + " | R(a) |",
              "|" + "---|" * (len(names) + 1)]
    for actions, reward in zip(be.all_actions(len(names)).astype(int), table.reshape(-1)):
        lines.append("| " + " | ".join(str(a) for a in actions) + f" | {reward:.4f} |")
    lines += ["", f"{args.draws} seeded runs of {args.epochs} steps from θ = 0, "
              f"{args.members} members each: tr Var ĝ (over runs, mean over steps) and "
              "J(θ) at the end (mean ± sd over runs); signal/noise = ‖E ĝ‖² / tr Var ĝ "
              "(mean over steps).", "",
              "| Estimator | σ | α | tr Var ĝ | signal/noise | final J(θ) |",
              "|---|---|---|---|---|---|"]
    for (estimator, sigma, alpha), (variance, mean, sd, ratio) in rows.items():
        lines.append(f"| {LABELS[estimator]} | {'—' if sigma is None else f'{sigma:g}'} | "
                     f"{alpha:g} | {variance:.2e} | {ratio:.3f} | {mean:.4f} ± {sd:.4f} |")
    return lines


READING = """## What it shows, against the seed's claims

The seed (000) claims that REINFORCE and ES "behave qualitatively differently even in
small-scale" and leaves "plot reward trajectories and variance over step size" as its next
step. Figures below are from the committed run (seeds 0-2, `docs/binary_choices.md`).

- In training (part 1) the two are indistinguishable in mean reward: the trajectories are
  dominated by the members learning, and the switches move the reward by a few hundredths
  (the measured table spans -0.583 to -0.502). Both push `learning_rate` on (REINFORCE p =
  0.70-0.77, ES 0.49-0.99) in line with the table. They differ on `l2`: ES moved it towards
  off on all three seeds (p = 0.30, 0.02, 0.03), as the table says it should, REINFORCE on
  one (0.09; 0.55 and 0.99 on the others). Both turned the "decoy" `loss_scale` on (p >=
  0.87, 6/6 runs), which the fresh-training table hardly separates (±0.01). A likely reason,
  not measured here: online, a member that switches the loss scale from 1 to 0.1 keeps
  Adam's second moment from the larger gradients for ~1/(1 - β₂) steps, so its effective
  step shrinks up to tenfold for a while, an annealing a full-run table cannot see. The
  online reward is not the bandit's.
- On the measured table (part 2) the variance of ES's estimate falls as 1/σ² (tr Var ĝ
  5.4e-3, 4.8e-4, 5.0e-5 for σ = 0.3, 1, 3) while REINFORCE's is ~1.0e-4 and has no σ.
  Variance alone misleads: ES at large σ follows the smoothed objective, whose gradient is
  small too. Per estimate, REINFORCE carries the most direction (‖E ĝ‖² / tr Var ĝ =
  1.1-1.6 against 0.02-0.04, 0.19-0.25 and 0.70-0.72 for ES at σ = 0.3, 1, 3). At α <= 3
  all reach the same J within 0.005; at α = 10 and 30 REINFORCE reaches the highest
  (α = 30: -0.5136 ± 0.0018 against ES's best, σ = 1, -0.5175 ± 0.0083; best setting
  -0.502, start -0.551).
- Against the step size: a larger α helps both up to the largest tried (30), but the spread
  of the final J over runs grows with α much faster for ES at small σ (σ = 0.3: sd 0.0019
  at α = 1, 0.024 at α = 30) than for REINFORCE (0.0003 to 0.0018): ES's noisier estimate
  turns a larger step into a lottery. The qualitative difference the seed reports is there;
  on this task it favours REINFORCE, and ES needs σ chosen with α.

Limits: one task, three switches, 8 members, three seeds in training; part 2's table is the
mean of two populations with their spread as Gaussian noise."""

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m experiments.binary_choices",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=DOCS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train", type=int, default=4096)
    parser.add_argument("--validation", type=int, default=2048)
    parser.add_argument("--cv-batch-size", type=int, default=1024)
    parser.add_argument("--alpha", type=float, default=30.0, help="part 1's step size")
    parser.add_argument("--sigma", type=float, default=1.0, help="part 1's ES σ")
    parser.add_argument("--alphas", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    parser.add_argument("--table-seeds", type=int, default=2)
    parser.add_argument("--draws", type=int, default=300)
    args = parser.parse_args(argv)
    if args.members < 2 or args.table_seeds < 2 or args.draws < 2:
        parser.error(f"--members, --table-seeds and --draws must be >= 2 (a baseline and a "
                     f"spread need two), got {args.members}, {args.table_seeds}, {args.draws}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load(args.train, args.validation)
    trajectories = {estimator: [run_policy(estimator, seed, data, args) for seed in args.seeds]
                    for estimator in be.ESTIMATORS}
    tables = np.array([measure_table(100 + seed, data, args)
                       for seed in range(args.table_seeds)])
    noise = float(np.mean(tables.std(axis=0, ddof=1)))
    table = tables.mean(axis=0)
    rows = sweep(table, noise, args)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(trajectories, rows, table, args, args.out / "binary_choices.png")
    lines = report(trajectories, rows, tables, noise, args)
    lines += ["", READING, "", "![reward trajectories and variance](binary_choices.png)", ""]
    (args.out / "binary_choices.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
