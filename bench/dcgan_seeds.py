"""Lab 03's quality bar over seeds, trained as lab 03 trains its DCGAN.

    python bench/dcgan_seeds.py [--profile cpu] [--seeds 0 1 2] [--steps N] [--json out.json]

For each seed this trains the profile's DCGAN the way lab 03 does (`train.Trainer`, the
profile's networks, steps, batch, Adam step size and weight average, label smoothing 0.1;
the best checkpoint by the Fréchet distance of `dcgan_eval_samples` samples to the test
digits, every `dcgan_eval_every` steps), restores that checkpoint and measures what the
lab's bar asks, with the lab's own calls: `metrics.evaluate` (the Fréchet distance of
`metrics_samples` samples and its real-vs-real baseline) and the class shares of
`dcgan_histogram_samples` samples.  The bar: the distance at most 5x the baseline and every
digit at least 5% of the samples, on every seed.  A quality figure, not a speed one: every
seed is reported, with the checkpoint metric at every evaluation.  `--precision`, `--ema-decay`,
`--learning-rate`, `--g-learning-rate`, `--schedule`, `--batch`, `--loss`, `--beta-2`, `--g-filters`,
`--d-filters`, `--d-dropout`, `--d-translate` and `--label-smoothing` try a recipe other than the lab's (the record says which).
`--eval-seeds N` scores each best checkpoint on N draws of the samples and of the baseline's
digits, to show how much of a seed's figure is the measurement's own noise.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FRECHET_BAR = 5.0  # issue 16: Fréchet distance at most 5x the real-vs-real baseline
SHARE_BAR = 0.05  # every digit at least 5% of the samples


def seed_table(seeds, steps: int | None = None, precision: str = "auto", ema_decay: float | None = None,
               learning_rate: float | None = None, schedule: str = "constant", batch: int | None = None,
               loss: str = "non_saturating", beta_2: float = 0.999, g_filters=None, d_filters=None,
               d_dropout: float = 0.0, g_learning_rate: float | None = None, d_translate: int = 0,
               label_smoothing: float | None = None, eval_seeds: int = 1, log=print) -> dict:
    """Train lab 03's DCGAN once per seed; rows and the bar's figures."""
    import keras
    import numpy as np

    from gan_course import config, data, dcgan, losses, metrics, models, train

    P = config.profile()
    steps = steps or P.dcgan_steps
    ema_decay = P.dcgan_ema_decay if ema_decay is None else ema_decay
    learning_rate = learning_rate or P.dcgan_learning_rate
    g_learning_rate = g_learning_rate or learning_rate
    batch = batch or P.dcgan_batch
    g_filters = tuple(g_filters or P.dcgan_g_filters)
    d_filters = tuple(d_filters or P.dcgan_d_filters)
    images = data.load("mnist", limit=P.dcgan_train_limit, quiet=True)
    classifier = metrics.load_classifier("mnist", quiet=True)
    test = data.load("mnist", "test", quiet=True)
    reference, _ = classifier.features(test.x[:P.dcgan_eval_samples])
    eval_z = np.random.default_rng(1).normal(size=(P.dcgan_eval_samples, P.dcgan_latent_dim)).astype(np.float32)

    def frechet_to_test(generator):  # lab 03's checkpoint metric
        features, _ = classifier.features(np.asarray(generator(eval_z, training=False), np.float32))
        return metrics.frechet_distance(features, reference)

    def step_size(rate):  # a fresh schedule per optimiser
        if schedule == "cosine":
            return keras.optimizers.schedules.CosineDecay(rate, steps, alpha=0.1)
        if schedule == "linear":
            return keras.optimizers.schedules.PolynomialDecay(rate, steps, rate / 10)
        return rate

    smoothing = 0.1 if label_smoothing is None else label_smoothing  # the lab's: 0.1
    smoothing = smoothing if losses.LOSSES[loss][2] else 0.0  # only where the loss has a target to smooth

    def discriminator():
        body = models.build_discriminator(images.x.shape[1:], d_filters, dropout=d_dropout)
        if not d_translate:
            return body
        height, width = images.x.shape[1:3]  # D sees every image, real or generated, shifted at random
        shift = keras.layers.RandomTranslation(d_translate / height, d_translate / width, fill_mode="constant",
                                               fill_value=-1.0, interpolation="nearest")
        return keras.Sequential([keras.Input(images.x.shape[1:]), shift, body])

    def make():
        with train.precision(precision):  # "auto": the lab's own (bfloat16 where the CPU has it)
            gan = train.make_gan(dcgan.build_lab_generator(P.dcgan_latent_dim, g_filters), discriminator(),
                                 loss=loss, label_smoothing=smoothing, learning_rate=step_size(learning_rate),
                                 ema_decay=ema_decay, beta_2=beta_2)
            if g_learning_rate != learning_rate:  # two time-scales: G's own step size
                gan.g_optimizer.learning_rate = step_size(g_learning_rate)
            return gan

    def frechet_row(k):  # the bar's figure on draw k of the samples and of the baseline's digits (0: the lab's)
        rows_eval = metrics.evaluate(generator, "mnist", seed=k, classifier=classifier, quiet=True)
        return next(r for r in rows_eval if r["metric"] == "Fréchet distance (classifier features)")

    rows, compute = [], None
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="dcgan-seed-") as folder:
            keras.utils.set_random_seed(seed)
            trainer = train.Trainer(make, Path(folder), sample_every=steps, num_samples=16, progress=False,
                                    quiet=True, best_metric=frechet_to_test, best_every=P.dcgan_eval_every)
            compute = trainer.gan.generator.dtype_policy.compute_dtype
            began = time.perf_counter()
            trainer.fit(images.batches(batch), steps=steps)
            seconds = time.perf_counter() - began
            best = trainer.restore_best()
            generator = trainer.gan.sampling_generator
            # The measurement's own spread: the same checkpoint scored on `eval_seeds` draws.
            draws = [frechet_row(k) for k in range(max(1, eval_seeds))]
            frechet = draws[0]
            many = metrics.sample_images(generator, P.dcgan_histogram_samples, seed=1, value_range=(-1.0, 1.0))
            shares = metrics.class_histogram(classifier.features(many)[1])
        redraws = [float(row["generated"] / row["real baseline"]) for row in draws]
        ratio = redraws[0]
        rows.append({"seed": seed, "steps": steps, "best_step": best["step"],
                     "frechet": round(float(frechet["generated"]), 3),
                     "baseline": round(float(frechet["real baseline"]), 3), "ratio": round(ratio, 2),
                     "smallest_share": round(float(shares.min()), 4), "smallest_digit": int(shares.argmin()),
                     "train_s": round(seconds, 1), "ratio_redraws": [round(r, 2) for r in redraws],
                     "curve": [[e["step"], round(e["value"], 2)] for e in trainer.evaluations]})
        log(f"DCGAN seed {seed}: Fréchet distance {frechet['generated']:.2f} = {ratio:.2f}x the baseline "
            f"{frechet['real baseline']:.2f} (best step {best['step']}), smallest digit share {shares.min():.1%} "
            f"(digit {shares.argmin()}), {seconds:.0f} s; on {len(redraws)} draws "
            f"{min(redraws):.2f}-{max(redraws):.2f}x (median {float(np.median(redraws)):.2f}x); checkpoint metric by step "
            f"{', '.join('%d: %.1f' % (e['step'], e['value']) for e in trainer.evaluations)}")
    met = all(row["ratio"] <= FRECHET_BAR and row["smallest_share"] >= SHARE_BAR for row in rows)
    return {"dcgan_profile": P.name, "dcgan_data": images.title, "dcgan_compute_dtype": compute,
            "dcgan_recipe": {"steps": steps, "batch": batch, "learning_rate": learning_rate,
                             "g_learning_rate": g_learning_rate, "d_dropout": d_dropout, "d_translate": d_translate,
                             "schedule": schedule, "ema_decay": ema_decay, "loss": loss, "label_smoothing": smoothing,
                             "beta_2": beta_2,
                             "g_filters": list(g_filters), "d_filters": list(d_filters)},
            "dcgan_seeds": rows,
            "dcgan_bar": f"Fréchet distance <= {FRECHET_BAR:g}x the real-vs-real baseline and every digit "
                         f">= {SHARE_BAR:.0%} of {P.dcgan_histogram_samples:,} samples, on every seed",
            "dcgan_bar_met": bool(met)}


def main() -> None:
    from gan_course import tflog

    tflog.import_tensorflow()  # without its start-up notices: the loss names come from gan_course.losses
    from gan_course import losses

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--steps", type=int, default=None, help="default: the profile's dcgan_steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"),
                        help="auto: as lab 03 builds its networks, bfloat16 where the CPU has it (default)")
    parser.add_argument("--ema-decay", type=float, default=None, help="default: the profile's dcgan_ema_decay")
    parser.add_argument("--learning-rate", type=float, default=None, help="default: the profile's")
    parser.add_argument("--batch", type=int, default=None, help="default: the profile's dcgan_batch")
    parser.add_argument("--schedule", default="constant", choices=("constant", "linear", "cosine"),
                        help="the step size over the run: constant (the lab's), or decayed to a tenth")
    parser.add_argument("--loss", default="non_saturating", choices=sorted(losses.LOSSES),
                        help="the GAN loss (the lab's: non_saturating; hinge trains without label smoothing)")
    parser.add_argument("--beta-2", type=float, default=0.999, help="Adam's beta_2 for both players")
    parser.add_argument("--g-filters", type=int, nargs=2, default=None, help="G's two widths (default: the profile's)")
    parser.add_argument("--d-filters", type=int, nargs=2, default=None, help="D's two widths (default: the profile's)")
    parser.add_argument("--d-dropout", type=float, default=0.0, help="dropout after each of D's blocks (the lab's: 0)")
    parser.add_argument("--g-learning-rate", type=float, default=None, help="G's step size (default: D's)")
    parser.add_argument("--d-translate", type=int, default=0,
                        help="shift D's every input by up to this many pixels (the lab's: 0)")
    parser.add_argument("--label-smoothing", type=float, default=None, help="D's real target 1 - this (the lab's: 0.1)")
    parser.add_argument("--eval-seeds", type=int, default=1,
                        help="score the best checkpoint on this many draws of the samples and of the baseline's "
                             "digits, to show the measurement's spread (the lab's draw first)")
    parser.add_argument("--json", help="also write the table to this file")
    args = parser.parse_args()

    from gan_course import config

    os.environ[config.ENV_PROFILE] = args.profile
    config.setup(quiet=True)
    table = seed_table(args.seeds, args.steps, args.precision, args.ema_decay, args.learning_rate,
                        args.schedule, args.batch, args.loss, args.beta_2, args.g_filters, args.d_filters,
                        args.d_dropout, args.g_learning_rate, args.d_translate,
                        args.label_smoothing, args.eval_seeds)
    print(f"ratios {[row['ratio'] for row in table['dcgan_seeds']]}; bar ({table['dcgan_bar']}) met: "
          f"{table['dcgan_bar_met']}")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
