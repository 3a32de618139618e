"""What each lab's `gpu` profile costs: measured seconds per training step on this machine, times the
profile's step counts, and an *estimated* GPU time from the step's FLOPs.

    python bench/gpu_profile.py                  # every lab (about 10 minutes on 2 CPU cores)
    python bench/gpu_profile.py --labs 03 05     # some labs
    python bench/gpu_profile.py --quick          # fewer timed steps
    python bench/gpu_profile.py --record bench/RESULTS.md   # also append the tables to a results file

For every training loop a lab runs in the `gpu` profile, the script builds the same networks at the
profile's sizes (`gan_course.config.SIZES`, gpu column; never scaled by GAN_COURSE_STEPS_SCALE) and
trains them on synthetic batches of the lab's image shape:

- CPU seconds per step: a few steps first (tracing, optimizer slots), then windows of warm steps
  through the compiled train function Keras' `fit` uses; the median window.  Lab 01's loops: their
  pair's compiled step, called as the loop calls it.  Lab 02's `fit`: timed whole at two epoch counts
  (the difference over the extra epochs), since it traces once per call.
- CPU time of the full profile: seconds per step x the profile's steps x how often the lab runs the
  loop (lab 05's three AC-GAN ablations, lab 06's two models on two datasets...).  Sample grids,
  evaluations, checkpoints and data loading are left out: training steps only.
- FLOPs per step: TensorFlow's profiler (`float_operation`) on the graph of one traced train step
  (forward and backward passes of both networks, as the lab's train step runs them).
- Estimated GPU time (an estimate; no GPU measured it): steps x (FLOPs / an assumed sustained rate
  + an assumed fixed cost per step), the assumptions below and in the JSON.  Loops whose FLOPs are
  not counted (lab 01's and lab 02's tiny networks) are bound by the host, not the arithmetic: their
  estimate is the CPU time measured here.

The last line printed is one JSON object with every figure.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["GAN_COURSE_PROFILE"] = "gpu"
os.environ.pop("GAN_COURSE_STEPS_SCALE", None)  # the full profile's step counts
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gan_course import tflog  # noqa: E402

tflog.import_tensorflow()  # without its start-up notices, as the labs import it
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gan_course import biggan, config, dcgan, infogan, intuition, metrics, models, own_images, train  # noqa: E402

# The GPU the estimate assumes: an NVIDIA H200 sustaining the rate reported for lab 03's gpu networks
# there (Keras 3 on the JAX backend, XLA, bfloat16, one D and one G step per batch: 54,000 images/s at
# batch 128), that is 54,000 / 128 steps/s x this script's FLOP count of one lab 03 step; plus a fixed
# cost per step (kernel launches, the optimizers' updates, the host loop), assumed 1 ms.  The labs train
# in float32 with TensorFlow: expect them slower than this, and slower again on a smaller GPU.
GPU_NAME = "NVIDIA H200"
REPORTED_LAB03_IMAGES_PER_S, REPORTED_LAB03_BATCH = 54_000, 128
ASSUMED_STEP_OVERHEAD_S = 1e-3
MNIST_TRAIN = 60_000  # the real training sets of MNIST and Fashion-MNIST


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- measuring
def count_flops(step_fn, *specs) -> int | None:
    """FLOPs of one call of `step_fn` (traced on `specs`), counted by TensorFlow's profiler."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    graph = tf.function(step_fn).get_concrete_function(*specs).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops = model_analyzer.profile(graph, options=options).total_float_ops
    return int(flops) or None


def _sync(logs):
    for value in tf.nest.flatten(logs):
        np.asarray(value)


def time_keras_steps(model, data, warm: int, windows: int, window_steps: int) -> list[float]:
    """Seconds per step of `model`'s compiled train function on `data`: windows after `warm` steps."""
    model.fit(data.take(warm), steps_per_epoch=warm, epochs=1, verbose=0)  # traces, builds the optimizer
    iterator = iter(data)
    per_step = []
    for _window in range(windows):
        began = time.perf_counter()
        for _step in range(window_steps):
            logs = model.train_function(iterator)
        _sync(logs)
        per_step.append((time.perf_counter() - began) / window_steps)
    return per_step


def keras_job(build, data, batch_spec, args) -> dict:
    model = build()
    model.jit_compile = False  # as on this CPU in the labs (XLA only on GPUs)
    windows = time_keras_steps(model, data, args.warm, args.windows, args.window_steps)
    flops = count_flops(model.train_step, batch_spec)
    return {"cpu_s_per_step": statistics.median(windows), "windows": [round(w, 4) for w in windows],
            "flops_per_step": flops, "timing": "compiled train function, warm steps"}


def timed_difference(run, small: int, large: int, repeats: int = 2) -> tuple[float, list[float]]:
    """Seconds per step of `run(steps)` from the difference of two step counts (tracing cancels)."""
    samples = []
    for _repeat in range(repeats):
        times = {}
        for steps in (small, large):
            began = time.perf_counter()
            run(steps)
            times[steps] = time.perf_counter() - began
        samples.append((times[large] - times[small]) / (large - small))
    return statistics.median(samples), samples


def images_and_labels(shape, count=1024, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (count, *shape)).astype(np.float32),
            rng.integers(0, 10, count).astype(np.int32))


def image_spec(batch, shape, labels=False):
    images = tf.TensorSpec((batch, *shape), tf.float32)
    return (images, tf.TensorSpec((batch,), tf.int32)) if labels else images


# ----------------------------------------------------------------------------- the labs' loops
def jobs(p, args):
    """(lab, loop, steps in the full profile, times the lab runs it, how to measure one step)."""
    mnist = (28, 28, 1)
    x, y = images_and_labels(mnist)

    def pair_steps(make_pair, batch, step="train_step"):
        """Warm steps of a lab 01 AdversarialPair, one compiled step per call as its loop runs them."""
        def measure():
            pair = make_pair()
            size = tf.constant(batch)
            run = getattr(pair, step)

            def window(n):
                began = time.perf_counter()
                for _step in range(n):
                    [float(v) for v in tf.nest.flatten(run(size))]
                return (time.perf_counter() - began) / n
            window(args.warm)
            windows = [window(args.loop_window) for _window in range(args.windows)]
            return {"cpu_s_per_step": statistics.median(windows), "windows": [round(w, 5) for w in windows],
                    "flops_per_step": None, "timing": f"compiled {step}, warm steps"}
        return measure

    def game_pair(loss):
        return lambda: intuition.AdversarialPair(
            intuition.build_mlp(4, (32, 32), 1, "generator"), intuition.build_mlp(1, (32, 32), 1, "discriminator"),
            intuition._tf_mixture_sampler(intuition.TARGET_1D), 4, loss, 1e-3, 1e-3)

    def ring_pair(pack=1):
        return lambda: intuition.AdversarialPair(
            intuition.build_mlp(16, (128, 128), 2, "generator"),
            intuition.build_mlp(2 * pack, (128, 128), 1, "discriminator"), intuition._tf_ring_sampler(), 16,
            "non_saturating", 1e-3, 1e-3, pack=pack)

    def checkerboard():
        flat_in, target = tf.ones((1, 7, 7, 1)), tf.ones((1, 14, 14, 1))

        def run(epochs):
            for model in (keras.Sequential([keras.Input((7, 7, 1)), keras.layers.Conv2DTranspose(
                              1, 3, strides=2, padding="same", use_bias=False)]),
                          keras.Sequential([keras.Input((7, 7, 1)), keras.layers.UpSampling2D(2),
                                            keras.layers.Conv2D(1, 3, padding="same", use_bias=False)])):
                model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
                model.fit(flat_in, target, epochs=epochs, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
                    on_epoch_end=lambda epoch, logs, m=model: np.asarray(m(flat_in)))])
        per, samples = timed_difference(run, args.small_loop // 4, args.large_loop // 4)
        return {"cpu_s_per_step": per, "windows": samples, "flops_per_step": None,
                "timing": "both upsamplers' fit at two epoch counts (per epoch of both)"}

    def classifier(shape, batch=128):
        cx, cy = images_and_labels(shape, 512)

        def build():
            model = metrics.build_classifier(10, shape)
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            return model
        data = tf.data.Dataset.from_tensor_slices((cx, cy)).batch(batch, drop_remainder=True).repeat()
        return lambda: keras_job(build, data, (image_spec(batch, shape), tf.TensorSpec((batch,), tf.int32)), args)

    def lab03():
        def build():
            g = dcgan.build_lab_generator(p.dcgan_latent_dim, p.dcgan_g_filters)
            d = models.build_discriminator(mnist, p.dcgan_d_filters)
            return train.make_gan(g, d, label_smoothing=0.1)
        return keras_job(build, train.image_batches(x, p.dcgan_batch), image_spec(p.dcgan_batch, mnist), args)

    def lab04():
        shape = (p.faces_image_size, p.faces_image_size, 3)
        fx, _ = images_and_labels(shape)

        def build():
            g, d = models.build_dcgan("faces", latent_dim=100, image_shape=shape, g_filters=p.faces_g_filters,
                                      d_filters=p.faces_d_filters)
            return train.make_gan(g, d, label_smoothing=0.1, learning_rate=2e-4, beta_1=0.5)
        return keras_job(build, train.image_batches(fx, p.faces_batch), image_spec(p.faces_batch, shape), args)

    def lab05_infogan():
        build = lambda: infogan.make_infogan(p.infogan_g_widths, p.infogan_d_widths, p.infogan_q_width)  # noqa: E731
        return keras_job(build, train.image_batches(x, p.infogan_batch), image_spec(p.infogan_batch, mnist), args)

    def lab05_acgan():
        build = lambda: infogan.make_acgan("full", p.acgan_g_widths, p.acgan_d_widths, p.acgan_class_width)  # noqa: E731
        return keras_job(build, train.image_batches(x, p.acgan_batch, labels=y),
                         image_spec(p.acgan_batch, mnist, labels=True), args)

    def conditional_dcgan(shape, latent, g_filters, d_filters, batch, generator=None):
        cx, cy = images_and_labels(shape)

        def build():
            if generator is None:
                g, d = models.build_conditional_dcgan("mnist", latent, 10, image_shape=shape, g_filters=g_filters,
                                                      d_filters=d_filters)
                gan = train.ConditionalGAN(g, d, latent, 10)
            else:
                g, d = models.build_sized_dcgan(shape[0], shape[-1], latent, g_filters, d_filters, num_classes=10,
                                                generator=generator)
                gan = train.ConditionalGAN(g, d, latent, 10, label_smoothing=0.1)
            gan.compile()
            return gan
        return lambda: keras_job(build, train.image_batches(cx, batch, labels=cy), image_spec(batch, shape, True), args)

    def small_biggan(shape, latent, ch, embed, batch):
        cx, cy = images_and_labels(shape)

        def build():
            g = biggan.build_biggan_generator(latent, 10, shape, ch=ch, embed_dim=embed)
            d = biggan.build_biggan_discriminator(10, shape, ch=ch)
            gan = biggan.BigGAN(g, d, latent, 10, ema_decay=p.biggan_ema_decay)
            gan.compile(d_optimizer=keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9),
                        g_optimizer=keras.optimizers.Adam(p.biggan_g_learning_rate, beta_1=0.0, beta_2=0.9))
            return gan
        return lambda: keras_job(build, train.image_batches(cx, batch, labels=cy), image_spec(batch, shape, True), args)

    folder_shape = (p.folder_image_size, p.folder_image_size, 3)  # lab 07 reads every folder as RGB
    folder_train = round(MNIST_TRAIN * (1 - p.folder_holdout))  # the default folder: all of Fashion-MNIST
    classifier_steps = lambda epochs, images: epochs * -(-images // 128)  # noqa: E731
    compare = len(p.compare_datasets)
    return [
        ("01", "1-D game (2 losses)", p.gan1d_steps, len(intuition.GENERATOR_LOSSES),
         pair_steps(game_pair("non_saturating"), p.gan1d_batch)),
        ("01", "1-D game, the critic's head start (2 losses)", p.gan1d_critic_head_start,
         len(intuition.GENERATOR_LOSSES), pair_steps(game_pair("non_saturating"), p.gan1d_batch, "critic_step")),
        ("01", "ring (3 settings, timed with the unpacked critic)", p.ring_steps, 3,
         pair_steps(ring_pair(), p.ring_batch)),
        ("02", "checkerboard fit (both upsamplers)", p.checkerboard_steps, 1, checkerboard),
        ("03", "metrics classifier, MNIST (once; cached for labs 05-06)",
         classifier_steps(p.metrics_classifier_epochs, MNIST_TRAIN), 1, classifier(mnist)),
        ("03", "DCGAN", p.dcgan_steps, 1, lab03),
        ("04", "faces DCGAN", p.faces_steps, 1, lab04),
        ("05", "InfoGAN", p.infogan_steps, 1, lab05_infogan),
        ("05", "AC-GAN (3 ablations)", p.acgan_steps, 3, lab05_acgan),
        ("06", "metrics classifier, Fashion-MNIST (once; cached)",
         classifier_steps(p.metrics_classifier_epochs, MNIST_TRAIN), compare - 1, classifier(mnist)),
        ("06", f"conditional DCGAN ({compare} datasets)", p.compare_steps, compare,
         conditional_dcgan(mnist, p.compare_latent_dim, p.compare_dcgan_g_filters, p.compare_dcgan_d_filters,
                           p.compare_batch)),
        ("06", f"small BigGAN ({compare} datasets)", p.compare_steps, compare,
         small_biggan(mnist, p.compare_latent_dim, p.biggan_ch, p.biggan_embed_dim, p.compare_batch)),
        ("07", "metrics classifier on the folder", classifier_steps(p.folder_classifier_epochs, folder_train), 1,
         classifier(folder_shape)),
        ("07", f"DCGAN {p.folder_image_size}x{p.folder_image_size}", p.folder_steps, 1,
         conditional_dcgan(folder_shape, p.folder_latent_dim, p.folder_dcgan_g_filters, p.folder_dcgan_d_filters,
                           p.folder_batch, generator=own_images.colour_generator)),
        ("07", f"BigGAN {p.folder_image_size}x{p.folder_image_size}", p.folder_steps, 1,
         small_biggan(folder_shape, p.folder_latent_dim, p.folder_biggan_ch, p.folder_biggan_embed_dim,
                      p.folder_batch)),
    ]


def gpu_estimate_s(steps: int, flops: int | None, sustained_flops: float, cpu_s_per_step: float) -> float:
    """Steps x (FLOPs / the assumed rate + the fixed cost).  A loop whose FLOPs are not counted (lab 01's
    and lab 02's tiny networks) is bound by the host, not by arithmetic: the time measured here."""
    if not flops:
        return steps * cpu_s_per_step
    return steps * (flops / sustained_flops + ASSUMED_STEP_OVERHEAD_S)


def lab03_step_flops(p) -> int:
    """FLOPs of one lab 03 gpu-profile step: what the reported H200 rate is converted with."""
    g = dcgan.build_lab_generator(p.dcgan_latent_dim, p.dcgan_g_filters)
    d = models.build_discriminator((28, 28, 1), p.dcgan_d_filters)
    gan = train.make_gan(g, d, label_smoothing=0.1)
    x, _ = images_and_labels((28, 28, 1), 256)
    gan.fit(train.image_batches(x, p.dcgan_batch).take(1), steps_per_epoch=1, epochs=1, verbose=0)
    return count_flops(gan.train_step, image_spec(p.dcgan_batch, (28, 28, 1)))


def minutes(seconds: float) -> str:
    return f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def markdown(result: dict) -> str:
    """The run as a results-file section: one table per lab, the assumptions, the JSON."""
    a = result["gpu_estimate_assumptions"]
    lines = [f"## {result['date']} — `python bench/gpu_profile.py{' --quick' if result['mode'] == 'quick' else ''}`", "",
             f"What each lab's `gpu` profile costs. {result['cpu']}, {result['cores']} cores, load average "
             f"{result['load_average_1min']} at the start (CPU figures grow with the machine's load); TensorFlow "
             f"{result['tensorflow']}, Keras {result['keras']}, {result['precision']}. CPU s/step: measured here, "
             "the gpu profile's networks and batch on synthetic batches of the lab's image shape, median of windows "
             "of warm steps. CPU time: s/step x the profile's steps x runs, training steps only (no sample grids, "
             "evaluations or data loading). **GPU time is an estimate, not a measurement** (no GPU here): "
             f"steps x (FLOPs per step / {a['sustained_flops'] / 1e12:.1f} TFLOP/s + "
             f"{a['overhead_s_per_step'] * 1e3:g} ms); FLOPs from {a['flops']}; the rate is an assumed "
             f"{a['gpu']} sustaining what {a['sustained_from']} implies. The labs train in float32 with TensorFlow: "
             "expect them slower than the estimate, and slower again on a smaller GPU. Loops without a FLOP count "
             "(lab 01's and 02's tiny networks) are bound by the host: their estimate is the CPU time measured "
             "here.", ""]
    for lab in sorted(result["labs"]):
        lines += [f"**Lab {lab}**", "",
                  "| loop | gpu steps x runs | CPU s/step (measured) | FLOP/step | CPU time, full gpu profile | "
                  "GPU time (estimate) |", "|---|---|---|---|---|---|"]
        for row in (r for r in result["loops"] if r["lab"] == lab):
            flops = f"{row['flops_per_step']:.3g}" if row["flops_per_step"] else "not counted"
            lines.append(f"| {row['loop']} | {row['steps']:,} x {row['runs']} | {row['cpu_s_per_step']:.4f} | "
                         f"{flops} | {minutes(row['cpu_s_full'])} | ~{minutes(row['gpu_s_estimate'])} |")
        total = result["labs"][lab]
        lines += [f"| **lab {lab}** | | | | **{minutes(total['cpu_s_full'])}** | "
                  f"**~{minutes(total['gpu_s_estimate'])}** |", ""]
    lines += ["```json", json.dumps(result, default=float), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labs", nargs="*", default=None, help="lab numbers (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--record", type=Path, help="append the tables and the JSON to this markdown file")
    args = parser.parse_args(argv)
    args.warm, args.windows, args.window_steps = (2, 2, 2) if args.quick else (3, 3, 3)
    args.small_loop, args.large_loop = (40, 240) if args.quick else (100, 600)
    args.loop_window = 100 if args.quick else 300

    p = config.profile()
    assert p.name == "gpu" and not p.scaled
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    began = time.perf_counter()
    sustained = lab03_step_flops(p) * REPORTED_LAB03_IMAGES_PER_S / REPORTED_LAB03_BATCH
    keras.backend.clear_session()
    log(f"assumed sustained GPU rate: {sustained / 1e12:.1f} TFLOP/s ({GPU_NAME}, from lab 03's reported rate)")
    rows = []
    for lab, loop, steps, times, measure in jobs(p, args):
        if args.labs and lab not in args.labs:
            continue
        log(f"lab {lab}: {loop} ...")
        keras.utils.set_random_seed(0)
        measured = measure()
        row = {"lab": lab, "loop": loop, "steps": steps, "runs": times, **measured}
        row["cpu_s_full"] = row["cpu_s_per_step"] * steps * times
        row["gpu_s_estimate"] = gpu_estimate_s(steps * times, row["flops_per_step"], sustained,
                                               row["cpu_s_per_step"])
        log(f"   {row['cpu_s_per_step']:.4f} s/step, {steps:,} steps x {times}: {row['cpu_s_full'] / 60:.1f} min on "
            f"this CPU; {row['flops_per_step'] or 0:.3g} FLOP/step; GPU estimate {row['gpu_s_estimate']:.0f} s")
        rows.append(row)
        keras.backend.clear_session()
    labs = {}
    for row in rows:
        lab = labs.setdefault(row["lab"], {"cpu_s_full": 0.0, "gpu_s_estimate": 0.0})
        lab["cpu_s_full"] += row["cpu_s_full"]
        lab["gpu_s_estimate"] += row["gpu_s_estimate"]
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu, "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
        "tensorflow": tf.__version__, "keras": keras.__version__, "precision": keras.mixed_precision.global_policy().name,
        "profile": "gpu", "mode": "quick" if args.quick else "full",
        "gpu_estimate_assumptions": {
            "gpu": GPU_NAME, "sustained_flops": sustained, "overhead_s_per_step": ASSUMED_STEP_OVERHEAD_S,
            "sustained_from": f"lab 03's gpu networks reported at {REPORTED_LAB03_IMAGES_PER_S} images/s, batch "
                              f"{REPORTED_LAB03_BATCH} (Keras 3, JAX backend, XLA, bfloat16)",
            "flops": "TensorFlow profiler, float_operation, one traced train step"},
        "loops": rows, "labs": labs, "bench_wall_s": round(time.perf_counter() - began, 1),
    }
    if args.record:
        with open(args.record, "a", encoding="utf-8") as f:
            f.write("\n" + markdown(result))
    print(json.dumps(result, default=float))
    return result


if __name__ == "__main__":
    main()
