"""Speed of the course's training engine against the TensorFlow DCGAN tutorial, side by side.

    python bench/run.py            # the full bench (about 15 minutes on 2 busy CPU cores)
    python bench/run.py --quick    # under 3 minutes: fewer and shorter windows
    python bench/run.py --record bench/RESULTS.md   # also append the run to a results file
    python bench/run.py --throughput-only            # only the images/s figures (--record works too)
    python bench/run.py --infogan-seeds              # also lab 05's InfoGAN on seeds 0-3 (its quality bar)

Everything runs in this one process (the slider and grading figures in the scripts
`bench/slider_redraw.py` and `bench/grade_speed.py`), so on a shared machine the ratios
compare like with like.  Figures:

- images/s of the tutorial's loop (`tutorial_baseline.py`) and of the course engine
  (`gan_course.train.Trainer`) training the tutorial's networks at batch 256, and of lab
  03's network with and without the engine's optimisations.  The variants take turns,
  window by window; the first steps (tracing) are warm-up; medians of the windows.
- time to quality: wall time, tracing included, until the engine reaches the Fréchet
  distance (course classifier features) the tutorial reaches after a fixed number of steps.
- quality kept: the Fréchet distance after the same number of steps with and without the
  engine's optimisations, over several seeds (full mode).
- slider redraw median/p95 and the grading time for 30 submissions.

The last line printed is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Lab 03's sizes and training settings are the cpu profile's: what a laptop runs.
os.environ.setdefault("GAN_COURSE_PROFILE", "cpu")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gan_course import tflog  # noqa: E402

tflog.import_tensorflow()  # without its start-up notices, as the labs import it
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gan_course import config, data, metrics, models, train  # noqa: E402
from tutorial_baseline import TutorialDCGAN  # noqa: E402

BATCH = 256
P = config.profile()
MNIST_IMAGES = 60_000

QUICK = dict(warmup=2, windows=5, window_steps=3, ttq_factor=10, ttq_eval_every=100, ttq_budget_s=240,
             quality_seeds=(), quality_steps=0, slider_repeats=40, lab03_batch=128, extra_variants=False)
FULL = dict(warmup=3, windows=4, window_steps=12, ttq_factor=5, ttq_eval_every=100, ttq_budget_s=1200,
            quality_seeds=(0, 1, 2), quality_steps=100, slider_repeats=200, lab03_batch=128, extra_variants=True)


# The engine with every optimisation off: float32, tf.data slices, a fresh G forward
# pass for the G step, separate D calls, Keras' own batch norm, one step per call, no XLA.
PLAIN_OPTIONS = dict(precision="float32", pipeline="slices", steps_per_execution=1, jit_compile=False)


def LAB03_PLAIN():
    return train.make_gan(*models.build_dcgan("mnist"), fuse_discriminator=False, reuse_generated=False,
                          fused_batch_norm=False)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine
def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return {"device": gpus[0] if gpus else "CPU", "cpu": cpu, "cores": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2), "gpus": gpus,
            "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# ----------------------------------------------------------------------------- runners
class EngineRunner:
    """The course engine (Trainer.fit) advanced a few steps at a time, with a clock per call."""

    def __init__(self, build, directory, images, batch_size, precision="float32", pipeline="tensor", seed=0,
                 **trainer_options):
        keras.utils.set_random_seed(seed)
        with train.precision(precision) as self.precision:
            gan = build()
        self.trainer = train.Trainer(gan, directory, sample_every=10**6, checkpoint_every=10**6, progress=False,
                                     quiet=True, seed=seed, **trainer_options)
        self.batch_size = batch_size
        if pipeline == "tensor":  # the engine's own: images held as one tensor, batches gathered in-graph
            self.data = train.image_batches(images, batch_size, seed=seed)
        else:  # what a lab passes by default: ImageData.batches (tf.data slices + shuffle buffer)
            self.data = tf.data.Dataset.from_tensor_slices(images).shuffle(min(len(images), MNIST_IMAGES), seed=seed) \
                .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        self.marks = []
        runner = self

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                runner.marks.append((runner.trainer.step, time.perf_counter()))

        self.clock = Clock()

    @property
    def steps(self):
        return self.trainer.step

    def advance(self, steps: int, callbacks=()) -> list[tuple[int, float]]:
        self.marks = []
        self.trainer.fit(self.data, self.trainer.step + steps, callbacks=[self.clock, *callbacks])
        return self.marks


def rate(marks, batch_size) -> float:
    """Images/s between the first and the last step of a window (the first call's start-up left out)."""
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    if s1 == s0:
        raise ValueError("a window needs at least two compiled calls: make window_steps larger")
    return (s1 - s0) * batch_size / (t1 - t0)


def throughput(variants: dict, batch_sizes: dict, settings: dict) -> dict:
    for name, runner in variants.items():
        started = time.perf_counter()
        runner.advance(settings["warmup"])
        log(f"  warm-up {name}: {time.perf_counter() - started:.1f} s")
    rates = {name: [] for name in variants}
    for window in range(settings["windows"]):
        for name, runner in variants.items():  # taking turns: load changes hit every variant alike
            rates[name].append(rate(runner.advance(settings["window_steps"]), batch_sizes[name]))
        log(f"  window {window + 1}: " + ", ".join(f"{n} {r[-1]:.0f}" for n, r in rates.items()))
    return {name: {"images_per_s": round(float(np.median(r)), 1), "windows": [round(v, 1) for v in r]}
            for name, r in rates.items()}


# ----------------------------------------------------------------------------- quality
class Frechet:
    """Fréchet distance of a generator's samples to the test images, in the course classifier's features,
    and the real-vs-real baseline (as many training images against the same test images)."""

    def __init__(self, n=1000):
        self.classifier = metrics.load_classifier("mnist", quiet=True)
        test = data.load("mnist", "test", quiet=True)
        self.n = min(n, len(test))
        self.reference, _ = self.classifier.features(test.x[:self.n])
        train_images = data.load("mnist", quiet=True).x
        real = train_images[np.random.default_rng(0).choice(len(train_images), self.n, replace=False)]
        self.baseline = float(metrics.frechet_distance(self.classifier.features(real)[0], self.reference))
        self.z = np.random.default_rng(123).standard_normal((self.n, 100)).astype(np.float32)
        self.seconds = 0.0

    def __call__(self, generator) -> float:
        started = time.perf_counter()
        z = self.z[:, :int(generator.input_shape[-1])]
        images = np.asarray(tf.cast(generator(z, training=False), tf.float32))
        value = metrics.frechet_distance(self.classifier.features(images)[0], self.reference)
        self.seconds += time.perf_counter() - started
        return float(value)


def lab03_networks():
    """Lab 03's networks at the cpu profile's sizes (the bench's own profile)."""
    return models.build_dcgan("mnist", latent_dim=P.dcgan_latent_dim, g_filters=P.dcgan_g_filters,
                              d_filters=P.dcgan_d_filters)


def lab03_gan():
    """Lab 03's GAN as the lab trains it: label smoothing 0.1 and the profile's optimiser and weight average."""
    return train.make_gan(*lab03_networks(), label_smoothing=0.1, learning_rate=P.dcgan_learning_rate,
                          ema_decay=P.dcgan_ema_decay)


def _clock_to_target(advance, generator, frechet: Frechet, target: float, every: int, budget_s: float) -> dict:
    """Train `every` steps at a time until the Fréchet distance is at or below `target` or the
    training time passes `budget_s`; the clock counts everything but the metric's own time."""
    started, evals_before, curve = time.perf_counter(), frechet.seconds, []
    while True:
        steps = advance(every)
        value = frechet(generator())
        seconds = time.perf_counter() - started - (frechet.seconds - evals_before)
        curve.append((steps, round(value, 2), round(seconds, 1)))
        if value <= target or seconds > budget_s:
            return {"reached": value <= target, "steps": steps, "frechet": round(value, 3), "seconds": round(seconds, 1),
                    "curve": curve}


def time_to_quality(images, frechet: Frechet, settings: dict, workdir: Path) -> dict:
    """Wall time, from scratch with network building and tracing, until lab 03's network reaches
    the quality bar: a Fréchet distance of `ttq_factor` times the real-vs-real baseline."""
    factor = settings["ttq_factor"]
    target = factor * frechet.baseline
    log(f"  target: Fréchet distance {target:.2f} ({factor}x the real-vs-real baseline {frechet.baseline:.2f})")
    budget = settings["ttq_budget_s"]

    tutorial = TutorialDCGAN(images, seed=0, networks=lab03_networks)
    tutorial_run = _clock_to_target(lambda n: tutorial.advance(n)[-1][0], lambda: tutorial.generator, frechet, target,
                                    settings["ttq_eval_every"], budget)
    log(f"  tutorial loop: {tutorial_run['frechet']:.2f} at step {tutorial_run['steps']}, {tutorial_run['seconds']} s"
        + ("" if tutorial_run["reached"] else " (budget spent, target not reached)"))

    runner = EngineRunner(lab03_gan, workdir / "ttq", images, P.dcgan_batch, precision="auto", seed=0)
    engine_run = _clock_to_target(lambda n: runner.advance(n) and runner.steps,
                                  lambda: runner.trainer.gan.sampling_generator, frechet, target,
                                  settings["ttq_eval_every"], budget)
    log(f"  engine: {engine_run['frechet']:.2f} at step {engine_run['steps']}, {engine_run['seconds']} s"
        + ("" if engine_run["reached"] else " (budget spent, target not reached)"))
    ratio = None
    if engine_run["reached"]:
        # A tutorial that never got there within the budget took longer than the budget: the ratio is a lower bound.
        ratio = round(tutorial_run["seconds"] / engine_run["seconds"], 2)
    return {"ttq_target_frechet": round(target, 3), "ttq_target": f"{factor}x the real-vs-real baseline "
            f"({frechet.baseline:.3f}, {frechet.n} training vs {frechet.n} test digits)"
            + ("" if factor <= 5 else "; looser than lab 03's bar of 5x"),
            "ttq_model": f"lab 03's network (cpu profile: G {P.dcgan_g_filters}, D {P.dcgan_d_filters}, "
                         f"latent {P.dcgan_latent_dim})",
            "ttq_tutorial": "the tutorial's loop: float32, Adam 1e-4 for both, batch 256, tf.data shuffle(60000)",
            "ttq_engine": f"course engine as lab 03 trains: Adam {P.dcgan_learning_rate:g} beta_1 0.5, label smoothing "
                          f"0.1, weight average {P.dcgan_ema_decay}, batch {P.dcgan_batch}, {train.auto_precision()}",
            "ttq_budget_s": budget,
            "ttq_tutorial_s": tutorial_run["seconds"], "ttq_tutorial_reached": tutorial_run["reached"],
            "ttq_tutorial_steps": tutorial_run["steps"], "ttq_tutorial_frechet": tutorial_run["frechet"],
            "ttq_engine_s": engine_run["seconds"], "ttq_engine_reached": engine_run["reached"],
            "ttq_engine_steps": engine_run["steps"], "ttq_engine_frechet": engine_run["frechet"],
            "time_to_quality_s": engine_run["seconds"] if engine_run["reached"] else None,
            "ttq_ratio": ratio, "ttq_ratio_is_lower_bound": bool(ratio is not None and not tutorial_run["reached"]),
            "ttq_curves": {"tutorial": tutorial_run["curve"], "engine": engine_run["curve"]}}


def quality_kept(images, frechet: Frechet, settings: dict, workdir: Path) -> dict:
    if not settings["quality_seeds"]:
        return {"quality": None, "quality_reason": "full mode only (several seeds of two trainings)"}
    rows = {"unoptimised": [], "optimised": []}
    for seed in settings["quality_seeds"]:
        for name in rows:
            build, options = ((LAB03_PLAIN, PLAIN_OPTIONS) if name == "unoptimised"
                              else (lambda: train.make_gan(*models.build_dcgan("mnist")), {"precision": "auto"}))
            runner = EngineRunner(build, workdir / f"q-{name}-{seed}", images, settings["lab03_batch"], seed=seed,
                                  **options)
            runner.advance(settings["quality_steps"])
            rows[name].append(round(frechet(runner.trainer.gan.generator), 3))
            log(f"  seed {seed} {name}: Fréchet distance {rows[name][-1]:.2f} after {settings['quality_steps']} steps")
    spread = (min(rows["unoptimised"]), max(rows["unoptimised"]))
    mean_opt = float(np.mean(rows["optimised"]))
    return {"quality": {"model": f"lab 03 mnist preset, batch {settings['lab03_batch']}",
                        "steps": settings["quality_steps"], "seeds": list(settings["quality_seeds"]),
                        "frechet_unoptimised": rows["unoptimised"], "frechet_optimised": rows["optimised"],
                        "optimised_mean_within_unoptimised_spread": bool(spread[0] <= mean_opt <= spread[1]),
                        "optimised_not_worse": bool(mean_opt <= spread[1])}}


# ----------------------------------------------------------------------------- other scripts
def slider(repeats: int) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "slider_redraw.py"), "--repeats", str(repeats)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    found = re.search(r"median ([\d.]+) ms\s+p95 ([\d.]+) ms", out.stdout)
    if not found:
        return {"slider_ms_median": None, "slider_ms_p95": None, "slider_reason": out.stderr[-300:]}
    return {"slider_ms_median": float(found[1]), "slider_ms_p95": float(found[2]), "slider_redraws": repeats}


def grading() -> dict:
    # About 12 s for 30 submissions on 2 cores: short enough for --quick too.
    started = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "grade_speed.py"), "--students", "30"],
                         capture_output=True, text=True, cwd=ROOT, timeout=1800)
    found = re.search(r"in ([\d.]+) s \(([\d.]+) s per submission\); statuses: (.*)", out.stdout)
    if not found:
        return {"grading_30_s": None, "grading_reason": (out.stdout + out.stderr)[-300:],
                "grading_wall_s": round(time.perf_counter() - started, 1)}
    return {"grading_30_s": float(found[1]), "grading_per_submission_s": float(found[2]),
            "grading_statuses": found[3].strip()}


# ----------------------------------------------------------------------------- main
def record(path: Path, result: dict, command: str) -> None:
    """Append a run to a markdown file: the throughput table, then whichever later parts the run had."""
    lines = [f"\n## {result['date']} — `{command}`\n",
             f"{result['cpu']}, {result['cores']} cores, load average {result['load_average_1min']} at the start; "
             f"Python {result['python']}, TensorFlow {result['tensorflow']}, Keras {result['keras']}. "
             f"{result['data']}\n",
             "| variant | images/s (median) | windows |", "|---|---|---|"]
    for name, row in result["throughput"].items():
        lines.append(f"| {name} | {row['images_per_s']} | {', '.join(map(str, row['windows']))} |")
    lines += ["", f"- speedup vs tutorial (same networks, batch 256): **{result['speedup_vs_tutorial']}x** "
              f"(alternating, the default), **{result['speedup_vs_tutorial_simultaneous']}x** (update='simultaneous'), "
              f"{result['speedup_vs_tutorial_simultaneous_two_pass']}x (two backward passes through D), "
              f"{result['speedup_vs_tutorial_simultaneous_keras_bn']}x (Keras' batch norm), "
              f"{result['speedup_vs_tutorial_simultaneous_float32']}x (update='simultaneous' in float32)",
              f"- lab 03 network, optimised vs unoptimised engine: {result['lab03_speedup']}x"]
    if "ttq_ratio" in result:
        lines.append(
            f"- time to quality ({result['ttq_target']}: Fréchet distance {result['ttq_target_frechet']}): "
            f"tutorial loop {result['ttq_tutorial_s']} s ({result['ttq_tutorial_steps']} steps"
            + ("" if result["ttq_tutorial_reached"] else ", not reached within the budget") + "), "
            f"engine {result['ttq_engine_s']} s ({result['ttq_engine_steps']} steps"
            + ("" if result["ttq_engine_reached"] else ", not reached within the budget") + "); "
            f"ratio **{result['ttq_ratio']}x**" + (" (a lower bound)" if result["ttq_ratio_is_lower_bound"] else ""))
    if "quality" in result:
        lines.append(f"- quality kept: {json.dumps(result['quality'])}")
    if "infogan_seeds" in result:
        lines.append(f"- InfoGAN ({result['infogan_profile']} profile, {result['infogan_data']}): categorical-code error "
                     + ", ".join(f"seed {r['seed']} {r['test_error']:.1%}" for r in result["infogan_seeds"])
                     + f"; median **{result['infogan_error_median']:.1%}**; MI bound at least "
                     f"{result['infogan_mi_bound_min']} nats; bar ({result['infogan_bar']}) met: "
                     f"**{result['infogan_bar_met']}**")
    if "slider_ms_median" in result:
        lines.append(f"- slider redraw: median {result['slider_ms_median']} ms, p95 {result['slider_ms_p95']} ms")
    if "grading_30_s" in result:
        lines.append(f"- grading 30 submissions: {result['grading_30_s']} s"
                     + (f" ({result['grading_reason']})" if result.get("grading_reason") else ""))
    lines += ["", "```json", json.dumps(result), "```", ""]
    with open(path, "a") as f:
        f.write("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter windows; no seeds study")
    parser.add_argument("--throughput-only", action="store_true", help="stop after the images/s figures")
    parser.add_argument("--infogan-seeds", type=int, nargs="*", default=None,
                        help="also train lab 05's InfoGAN on these seeds (default with the flag: 0 1 2 3) and "
                             "report its categorical-code error and MI bound per seed")
    parser.add_argument("--record", type=Path, help="append the figures to this markdown file")
    parser.add_argument("--workdir", type=Path, default=None, help="checkpoints of the timed runs (default: temporary)")
    parser.add_argument("--ttq-factor", type=float, default=None,
                        help="time-to-quality target in multiples of the real-vs-real baseline (default 5; 10 with --quick)")
    parser.add_argument("--ttq-budget", type=float, default=None,
                        help="seconds each loop may train towards the target (default 1200; 240 with --quick)")
    args = parser.parse_args()
    if args.infogan_seeds == []:
        args.infogan_seeds = [0, 1, 2, 3]
    if args.throughput_only and (args.infogan_seeds or args.ttq_factor is not None or args.ttq_budget is not None):
        parser.error("--throughput-only stops after the images/s figures: leave out --infogan-seeds, --ttq-factor "
                     "and --ttq-budget")
    settings = dict(QUICK if args.quick else FULL)
    if args.ttq_factor is not None:
        settings["ttq_factor"] = args.ttq_factor
    if args.ttq_budget is not None:
        settings["ttq_budget_s"] = args.ttq_budget
    began = time.perf_counter()
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="gan-bench-")
    workdir = args.workdir or Path(tmp.name)

    result = {"mode": "quick" if args.quick else "full", **machine()}
    digits = data.load("mnist", quiet=True)
    # Throughput: the tutorial shuffles 60,000 images; a smaller set (the offline stand-in)
    # is repeated up to that size so both pipelines move the same amount of data.
    images = np.concatenate([digits.x] * -(-MNIST_IMAGES // len(digits.x)))[:MNIST_IMAGES]
    result["data"] = (f"MNIST via gan_course.data.load: {len(digits.x):,} training images"
                      + (" (the labelled offline stand-in)" if digits.standin else "")
                      + (f", repeated to {MNIST_IMAGES:,} for the throughput runs" if len(digits.x) < MNIST_IMAGES else ""))
    log(result["data"])
    precision = train.auto_precision()
    result["engine_defaults"] = {"precision": precision, "jit_compile": train.auto_jit_compile(),
                                 "steps_per_execution": "auto (1 on CPU)", "data": "tensor + in-graph gather",
                                 "fuse_discriminator": "auto (the tutorial's D in the alternating update: on; "
                                                       "in the simultaneous one, or lab 03's D with batch norm: off)",
                                 "fused_batch_norm": True,
                                 "simultaneous_backward": "one pass through D when D has no batch norm (G's gradient "
                                                          "rescaled from D's), else two"}

    log("Throughput (images/s):")
    def tutorial_arch(two_pass=False, **options):
        def build():
            gan = train.make_gan(models.build_tutorial_generator(), models.build_tutorial_discriminator(), **options)
            if two_pass:  # as if D mixed its images: G's gradient from a second backward pass through D
                gan.per_image_discriminator = False
            return gan
        return build

    lab03 = lambda: train.make_gan(*models.build_dcgan("mnist"))  # noqa: E731
    lb = settings["lab03_batch"]
    variants = {
        "tutorial": TutorialDCGAN(images, seed=0),
        "engine_tutorial_arch": EngineRunner(tutorial_arch(), workdir / "e1", images, BATCH, precision="auto"),
        # The tutorial's own update (one forward pass for both gradients) with the engine's precision and data path.
        "engine_tutorial_arch_simultaneous": EngineRunner(tutorial_arch(update="simultaneous"), workdir / "e0", images,
                                                          BATCH, precision="auto"),
        # The same with two backward passes through D (the engine before the one-pass step): what that step brings.
        "engine_tutorial_arch_simultaneous_two_pass": EngineRunner(tutorial_arch(update="simultaneous", two_pass=True),
                                                                   workdir / "e9", images, BATCH, precision="auto"),
        # The same with Keras' batch norm (several ops per layer): what the fused op brings.
        "engine_tutorial_arch_simultaneous_keras_bn": EngineRunner(
            tutorial_arch(update="simultaneous", fused_batch_norm=False), workdir / "e10", images, BATCH,
            precision="auto"),
        # The same without bfloat16: what holds on a CPU that has no fast bfloat16.
        "engine_tutorial_arch_simultaneous_float32": EngineRunner(tutorial_arch(update="simultaneous"),
                                                                  workdir / "e7", images, BATCH),
        "lab03_unoptimised": EngineRunner(LAB03_PLAIN, workdir / "l1", images, lb, **PLAIN_OPTIONS),
        "lab03_optimised": EngineRunner(lab03, workdir / "l2", images, lb, precision="auto"),
    }
    batch_sizes = {**{k: BATCH for k in variants if not k.startswith("lab03")}, "lab03_unoptimised": lb,
                   "lab03_optimised": lb}
    if settings["extra_variants"]:  # each optimisation on its own, to show what it brings here
        variants["engine_tutorial_arch_float32"] = EngineRunner(tutorial_arch(), workdir / "e2", images, BATCH)
        variants["engine_tutorial_arch_float32_xla"] = EngineRunner(tutorial_arch(), workdir / "e3", images, BATCH,
                                                                    jit_compile=True)
        # One D call on real and fake images concatenated (measured slower than two calls in this update).
        variants["engine_tutorial_arch_simultaneous_fused"] = EngineRunner(
            tutorial_arch(update="simultaneous", fuse_discriminator=True), workdir / "e8", images, BATCH,
            precision="auto")
        variants["engine_tutorial_arch_fresh_noise"] = EngineRunner(
            tutorial_arch(reuse_generated=False), workdir / "e4", images, BATCH, precision="auto")
        variants["engine_tutorial_arch_slices_unfused"] = EngineRunner(
            tutorial_arch(fuse_discriminator=False), workdir / "e5", images, BATCH, precision="auto", pipeline="slices")
        variants["engine_tutorial_arch_unoptimised"] = EngineRunner(
            tutorial_arch(fuse_discriminator=False, reuse_generated=False, fused_batch_norm=False), workdir / "e6",
            images, BATCH,
            **PLAIN_OPTIONS)
        # 4 steps per call: a window of 12 steps is 3 calls, timed over the last 2.
        variants["lab03_optimised_steps_per_execution_4"] = EngineRunner(lab03, workdir / "l3", images, lb,
                                                                         precision="auto", steps_per_execution=4)
        batch_sizes.update({k: BATCH for k in variants if k.startswith("engine_")}, lab03_optimised_steps_per_execution_4=lb)
    result["throughput"] = throughput(variants, batch_sizes, settings)
    rates = {k: v["images_per_s"] for k, v in result["throughput"].items()}
    result.update({f"images_per_s_{k}": v for k, v in rates.items()})
    result["speedup_vs_tutorial"] = round(rates["engine_tutorial_arch"] / rates["tutorial"], 3)
    for update in ("simultaneous", "simultaneous_two_pass", "simultaneous_keras_bn", "simultaneous_float32"):
        result[f"speedup_vs_tutorial_{update}"] = round(rates[f"engine_tutorial_arch_{update}"] / rates["tutorial"], 3)
    result["lab03_speedup"] = round(rates["lab03_optimised"] / rates["lab03_unoptimised"], 3)
    result["throughput_note"] = ("engine = alternating D then G step (optimised: 1 G and 3 D forward passes per "
                                 "step, unoptimised: 2 G and 3 D); the tutorial updates both from one forward pass "
                                 "(1 G, 2 D), as does the engine with update='simultaneous' (with one backward pass through "
                                 "D, or two in the _two_pass variant; _keras_bn: Keras' batch norm instead of the "
                                 "fused op); images/s counts real images; lab 03 at batch "
                                 f"{lb}; windows of {settings['window_steps']} steps after {settings['warmup']} "
                                 "warm-up steps, variants taking turns")
    del variants
    if not args.throughput_only:
        log("Time to quality:")
        frechet = Frechet()
        result.update(time_to_quality(digits.x, frechet, settings, workdir))
        log("Quality kept:")
        result.update(quality_kept(digits.x, frechet, settings, workdir))
        if args.infogan_seeds:
            log("InfoGAN's categorical code over seeds (lab 05 as it trains):")
            from infogan_seeds import seed_table

            result.update(seed_table(args.infogan_seeds, log=log))
        log("Slider redraw:")
        result.update(slider(settings["slider_repeats"]))
        log("Grading:")
        result.update(grading())
    result["bench_wall_s"] = round(time.perf_counter() - began, 1)
    tmp.cleanup()
    command = "python bench/run.py" + (" --quick" if args.quick else "") + \
        (" --throughput-only" if args.throughput_only else "") + \
        (f" --ttq-factor {args.ttq_factor:g}" if args.ttq_factor is not None else "") + \
        (f" --ttq-budget {args.ttq_budget:g}" if args.ttq_budget is not None else "") + \
        (" --infogan-seeds " + " ".join(map(str, args.infogan_seeds)) if args.infogan_seeds else "")
    if args.record:
        record(args.record, result, command)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
