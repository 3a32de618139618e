"""Profiles (smoke / cpu / gpu), seeds, logging and GPU memory growth.

Every size a notebook uses comes from the active profile, never from the notebook:
the same lab then runs in seconds in CI (`smoke`), in minutes on a laptop (`cpu`) and
at full quality on the lab's GPU server (`gpu`).
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field

from gan_course.i18n import N_, _

PROFILES = ("smoke", "cpu", "gpu")
ENV_PROFILE = "GAN_COURSE_PROFILE"
ENV_STEPS_SCALE = "GAN_COURSE_STEPS_SCALE"
ENV_PRECISION = "GAN_COURSE_PRECISION"
# Keras' dtype policies a lab's GANs can be built in (`train.precision()`); "auto" picks one for the
# machine (bfloat16 on CPUs that have it, float16 on tensor-core GPUs, float32 elsewhere).
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# name: (smoke, cpu, gpu).  One table for the whole course, grouped by lab.
SIZES: dict[str, tuple] = {
    # lab 01: GAN intuition
    "gan1d_steps": (120, 2000, 4000),
    "gan1d_snapshots": (4, 41, 41),
    "gan1d_batch": (64, 256, 512),
    "gan1d_critic_head_start": (20, 1000, 1000),
    "ring_steps": (100, 5000, 10000),
    "ring_batch": (64, 256, 512),
    "ring_snapshots": (2, 8, 8),
    # lab 02: convolution arithmetic
    "explorer_max_size": (8, 12, 12),
    "checkerboard_steps": (20, 300, 600),
    # metrics (labs 03-06): the classifier behind the Fréchet distance, KID and score
    "metrics_classifier_epochs": (1, 5, 8),
    "metrics_classifier_train_limit": (3000, 60000, 60000),
    "metrics_classifier_min_steps": (30, 600, 600),
    "metrics_samples": (300, 2000, 10000),
    "metrics_kid_subsets": (4, 10, 50),
    "metrics_kid_subset_size": (100, 1000, 1000),
    # lab 03: DCGAN on MNIST
    "dcgan_train_limit": (512, None, None),
    "dcgan_latent_dim": (16, 100, 100),
    # A laptop's G at (160, 80), not (128, 64): a third more time per step for a Fréchet distance
    # of 4.3-5.1x the real baseline on three seeds instead of 4.9-5.8x (bench/RESULTS.md).
    "dcgan_g_filters": ((16, 8), (160, 80), (256, 128)),
    "dcgan_d_filters": ((8, 16), (32, 64), (64, 128)),
    # A laptop's batch of 128, not 64, the networks built in bfloat16 where the CPU has it
    # (train.precision): 4.1-5.1x the real baseline on seeds 0-7 (the bar met on 7) instead of
    # 4.5-6.2x on seeds 0-2.
    # A step then takes 1.1x the time of float32's batch of 64 (1.8x on a CPU without bfloat16).
    "dcgan_batch": (16, 128, 128),
    # Adam's step size (beta_1 0.5) and the generator's weight average: the paper's 2e-4 reaches
    # recognisable digits too slowly for a laptop's budget; 1e-3 with an average of the
    # generator's weights (decay 0.99) gets there in about half the steps (bench/RESULTS.md).
    "dcgan_learning_rate": (2e-4, 1e-3, 2e-4),
    "dcgan_ema_decay": (0.9, 0.99, 0.999),
    # 2,750 laptop steps: the batch of 128 still improves at the last checkpoint on most seeds.
    "dcgan_steps": (400, 2750, 6000),
    "dcgan_sample_every": (100, 100, 300),
    "dcgan_eval_every": (200, 250, 1000),
    "dcgan_eval_samples": (200, 1000, 5000),
    "dcgan_histogram_samples": (500, 10000, 10000),
    "dcgan_interp_steps": (5, 9, 11),
    # lab 04: faces on CelebA
    "faces_images": (256, 20000, 100000),
    "faces_image_size": (28, 28, 28),
    # The hand-out's four-layer widths on a GPU; narrower on a laptop (25x fewer FLOPs).
    "faces_g_filters": ((32, 16, 8), (128, 64, 32), (512, 256, 128)),
    "faces_d_filters": ((8, 16, 32), (32, 64, 128), (64, 128, 256)),
    "faces_batch": (32, 64, 128),
    "faces_steps": (300, 1200, 8000),
    "faces_sample_every": (100, 150, 400),
    "faces_walk_steps": (5, 9, 11),
    # lab 05: InfoGAN and AC-GAN (keys start with infogan_ or acgan_)
    "infogan_train_limit": (512, None, None),
    # The paper's MNIST widths on a GPU: G (FC, 7x7 map channels, up-conv channels), D trunk (conv1, conv2, FC),
    # Q's FC; a quarter of the FLOPs on a laptop.
    "infogan_g_widths": ((32, 8, 8), (512, 64, 32), (1024, 128, 64)),
    "infogan_d_widths": ((8, 16, 32), (32, 64, 512), (64, 128, 1024)),
    "infogan_q_width": (16, 64, 128),
    "infogan_batch": (16, 64, 128),
    "infogan_steps": (300, 3000, 10000),
    "infogan_sample_every": (100, 250, 1000),
    "infogan_eval_every": (150, 500, 1000),
    "infogan_eval_images": (200, 1000, 2000),
    "acgan_train_limit": (512, None, None),
    "acgan_g_widths": ((32, 8, 8), (512, 64, 32), (1024, 128, 64)),
    "acgan_d_widths": ((8, 16, 32), (32, 64, 512), (64, 128, 1024)),
    "acgan_class_width": (16, 64, 128),
    "acgan_batch": (16, 64, 128),
    "acgan_steps": (100, 1200, 5000),
    # Samples come from an average of G's weights (as lab 03's): on a laptop's 1,200 steps it lifted the full
    # run's class accuracy from 71%/89% to 92%/99% (seeds 0/1) and its Fréchet distance (bench/RESULTS.md).
    "acgan_ema_decay": (0.9, 0.99, 0.999),
    "acgan_sample_every": (50, 300, 1000),
    "acgan_eval_samples": (200, 2000, 10000),
    # lab 06: BigGAN vs DCGAN (keys start with compare_ or biggan_ or hub_)
    "compare_datasets": (("mnist",), ("mnist",), ("mnist", "fashion_mnist")),
    "compare_train_limit": (512, None, None),
    "compare_latent_dim": (16, 64, 120),
    "compare_batch": (16, 64, 128),
    "compare_steps": (6, 1200, 8000),
    "compare_sample_every": (3, 200, 500),
    "compare_eval_every": (3, 400, 1000),
    "compare_eval_samples": (200, 500, 2000),
    "compare_samples_per_class": (20, 100, 500),
    # smoke: six eager steps take less time than tracing the compiled train step
    "compare_compile_train_step": (False, True, True),
    "compare_dcgan_g_filters": ((16, 8), (128, 64), (256, 128)),
    "compare_dcgan_d_filters": ((8, 16), (32, 64), (64, 128)),
    "biggan_ch": (8, 16, 32),
    "biggan_embed_dim": (8, 32, 64),
    "biggan_ema_decay": (0.9, 0.999, 0.999),
    # G's Adam step (D's: 4e-4). The paper's 1e-4 is too slow for a short budget; on a laptop's
    # 1,200 steps even 2e-4 left the small BigGAN's class accuracy at 85-97% over seeds, where
    # G as fast as D gives 98% or more (bench/RESULTS.md).
    "biggan_g_learning_rate": (4e-4, 4e-4, 2e-4),
    "biggan_truncation_thresholds": ((0.5, 1.0, None), (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, None),
                                     (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, None)),
    "biggan_truncation_per_class": (10, 100, 300),
    "biggan_slider_images": (4, 8, 8),
    "hub_download": (False, True, True),
    "hub_images": (2, 4, 6),
    "hub_interp_steps": (3, 6, 8),
    # lab 07: DCGAN and BigGAN on a folder of your own (keys start with folder_)
    "folder_default_per_class": (16, 1000, None),  # the default folder: Fashion-MNIST as PNG files, per class
    "folder_image_size": (32, 32, 64),
    "folder_limit": (None, 10000, None),  # images read from a chosen folder (class-balanced)
    "folder_holdout": (0.2, 0.2, 0.2),  # share held out for the metrics classifier and the baseline
    "folder_latent_dim": (16, 64, 128),
    "folder_batch": (16, 64, 64),
    "folder_steps": (4, 600, 10000),
    "folder_sample_every": (4, 100, 500),
    "folder_eval_every": (4, 300, 1000),
    "folder_eval_samples": (40, 500, 2000),
    "folder_samples": (40, 1000, 5000),  # samples per model in the comparison (class-balanced)
    "folder_compile_train_step": (False, True, True),
    # The faces lab's four layers at 32x32 (projection to 4x4, two up-convolutions, the output layer);
    # the paper's 64x64 LSUN widths on a GPU.
    "folder_dcgan_g_filters": ((16, 8, 8), (128, 64, 32), (1024, 512, 256, 128)),
    "folder_dcgan_d_filters": ((8, 16, 16), (32, 64, 128), (128, 256, 512, 1024)),
    "folder_biggan_ch": (8, 16, 32),
    "folder_biggan_embed_dim": (8, 32, 64),
    "folder_classifier_epochs": (1, 4, 10),
    "folder_classifier_min_steps": (30, 300, 600),  # updates of batch 128 at least, however small the folder
    "folder_inception_download": (False, True, True),
}

# GAN_COURSE_STEPS_SCALE (a number in (0, 1], default 1) shortens training and nothing else: it
# multiplies the sizes that count training steps (or epochs), never a network, an image count or a
# metric's sample count, so a profile's every code path runs in a fraction of its time.
# Step counts and the least each keeps when scaled: two steps, so a resumed run still has a step
# to resume to, and one epoch.
SCALED_STEPS = {
    "gan1d_steps": 2, "ring_steps": 2, "checkerboard_steps": 2,
    "metrics_classifier_epochs": 1, "metrics_classifier_min_steps": 2,
    "dcgan_steps": 2, "faces_steps": 2, "infogan_steps": 2, "acgan_steps": 2, "compare_steps": 2,
    "folder_steps": 2, "folder_classifier_epochs": 1, "folder_classifier_min_steps": 2,
}
# Sizes measured in the steps of a count above: scaled with it (its scaled share, at least 1, at most
# the count itself), so sampling, evaluation and checkpoints still happen at least once.
SCALED_WITH = {
    "gan1d_critic_head_start": "gan1d_steps",
    "dcgan_sample_every": "dcgan_steps", "dcgan_eval_every": "dcgan_steps",
    "faces_sample_every": "faces_steps",
    "infogan_sample_every": "infogan_steps", "infogan_eval_every": "infogan_steps",
    "acgan_sample_every": "acgan_steps",
    "compare_sample_every": "compare_steps", "compare_eval_every": "compare_steps",
    "folder_sample_every": "folder_steps", "folder_eval_every": "folder_steps",
}
# Names that end like a step count but count images along a path: never scaled.
NOT_STEPS = ("dcgan_interp_steps", "faces_walk_steps", "hub_interp_steps")


def steps_scale() -> float:
    """`GAN_COURSE_STEPS_SCALE` as a float in (0, 1]; 1 when unset.  Anything else is a ValueError
    whose one line says what to set (its `fix`)."""
    text = os.environ.get(ENV_STEPS_SCALE, "").strip()
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:  # NaN fails this too
        fix = _("export {variable}=0.01 (any number in (0, 1]), or unset it for full training").format(
            variable=ENV_STEPS_SCALE)
        err = ValueError(_("{variable}={value!r} is not a number in (0, 1]; {fix}").format(
            variable=ENV_STEPS_SCALE, value=text, fix=fix))
        err.fix = fix
        raise err
    return value


def precision_setting() -> str:
    """`GAN_COURSE_PRECISION`, one of `PRECISIONS`; "auto" when unset.  An instructor pins the labs'
    arithmetic with it (float32 on every machine of a class, say); anything else is a ValueError
    whose one line says what to set (its `fix`)."""
    text = os.environ.get(ENV_PRECISION, "").strip()
    if not text:
        return "auto"
    if text not in PRECISIONS:
        fix = _("export {variable}={choices} (or unset it: auto)").format(
            variable=ENV_PRECISION, choices="|".join(PRECISIONS))
        err = ValueError(_("{variable}={value!r} is not a precision; {fix}").format(
            variable=ENV_PRECISION, value=text, fix=fix))
        err.fix = fix
        raise err
    return text


def scale_steps(sizes: dict, scale: float) -> dict:
    """A copy of one profile's `sizes` with its step counts (`SCALED_STEPS`) and the sizes measured
    in them (`SCALED_WITH`) multiplied by `scale`; every other size is left as it is."""
    scaled = dict(sizes)
    if scale == 1.0:
        return scaled
    for key, floor in SCALED_STEPS.items():
        scaled[key] = min(sizes[key], max(floor, round(sizes[key] * scale)))
    for key, parent in SCALED_WITH.items():
        steps, full = scaled[parent], sizes[parent]
        scaled[key] = min(steps, max(1, round(sizes[key] * steps / full)))
    return scaled


# Stand-ins (clearly labelled real data that install offline) may replace the lab's
# dataset only in these profiles; `gpu` trains on the real thing or stops and says how
# to get it.  GAN_COURSE_ALLOW_STANDIN=1 / 0 overrides.
STANDIN_ALLOWED = {"smoke": True, "cpu": True, "gpu": False}


@dataclass(frozen=True)
class Profile:
    """The active profile: `P.name`, why it was chosen, and every size as an attribute."""

    name: str
    reason: str
    sizes: dict = field(repr=False)
    steps_scale: float = 1.0  # GAN_COURSE_STEPS_SCALE: below 1, a shortened run of this profile

    def __getattr__(self, key):
        sizes = self.__dict__.get("sizes", {})
        if key in sizes:
            return sizes[key]
        raise AttributeError(
            f"profile has no size {key!r}; known sizes: {', '.join(sorted(sizes))}"
        )

    @property
    def allow_standin(self) -> bool:
        env = os.environ.get("GAN_COURSE_ALLOW_STANDIN")
        if env is not None:
            return env.strip() not in ("0", "", "false", "no")
        return STANDIN_ALLOWED[self.name]

    @property
    def scaled(self) -> bool:
        """True when training steps are cut by GAN_COURSE_STEPS_SCALE: results say nothing about quality."""
        return self.steps_scale != 1.0

    @property
    def folder_name(self) -> str:
        """The profile's output folder: a run with scaled steps keeps to its own (`gpu-steps0.01`)."""
        return f"{self.name}-steps{self.steps_scale:g}" if self.scaled else self.name

    def __str__(self):
        text = _("profile {name} ({reason})").format(name=self.name, reason=_(self.reason))
        if self.scaled:
            text += ", " + _("steps x{scale:g} (set by {variable}): a shortened run, not the profile's quality").format(
                scale=self.steps_scale, variable=ENV_STEPS_SCALE)
        return text


def _gpu_present() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def profile() -> Profile:
    """The active profile: `GAN_COURSE_PROFILE` if set, else `gpu` when TensorFlow sees a GPU, else `cpu`;
    its step counts multiplied by `GAN_COURSE_STEPS_SCALE` when that is set."""
    name = os.environ.get(ENV_PROFILE, "").strip().lower()
    if name:
        if name not in PROFILES:
            raise ValueError(
                f"{ENV_PROFILE}={name!r} is not a profile; use one of {', '.join(PROFILES)}"
            )
        reason = N_("set by GAN_COURSE_PROFILE")
    elif _gpu_present():
        name, reason = "gpu", N_("a GPU was found")
    else:
        name, reason = "cpu", N_("no GPU found; set GAN_COURSE_PROFILE=smoke for a quick run")
    column = PROFILES.index(name)
    scale = steps_scale()
    return Profile(name, reason, scale_steps({k: v[column] for k, v in SIZES.items()}, scale), scale)


def enable_memory_growth() -> list[str]:
    """Let several kernels share one GPU: allocate GPU memory as needed, not all at start."""
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Already initialised by an earlier cell: the setting can no longer change.
            pass
        names.append(gpu.name)
    return names


def set_seed(seed: int = 0) -> None:
    """One call seeds Python, NumPy, TensorFlow and Keras."""
    import keras

    keras.utils.set_random_seed(seed)


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block under its own seed, then carry on from the caller's seed.

    Inside, the block is repeatable (a cached classifier trained under seed 0 is the same
    network on every machine); afterwards every generator is reseeded from a number drawn
    from the caller's NumPy stream before the block, so the lab's own seed, not the block's,
    decides what follows, and it does so the same way whether the block trained or loaded.
    """
    import numpy as np

    resume = int(np.random.randint(2**31 - 1))
    set_seed(seed)
    try:
        yield
    finally:
        set_seed(resume)


def setup(seed: int = 0, quiet: bool = False) -> Profile:
    """Prepare a lab: memory growth, seeds, matplotlib defaults; returns the profile."""
    import logging

    from gan_course.tflog import import_tensorflow

    tf = import_tensorflow()  # without its start-up notices (gan_course/tflog.py)
    tf.get_logger().setLevel(logging.ERROR)
    gpus = enable_memory_growth()
    set_seed(seed)
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.dpi": 100, "axes.grid": False})
        from gan_course.plotting import use_cjk_font

        use_cjk_font()  # Chinese titles and labels render in a CJK font, not as boxes
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    p = profile()
    if not quiet:
        device = _("{n} GPU(s), memory growth on").format(n=len(gpus)) if gpus else _("CPU only")
        print(_("GAN Lab: {profile} | TensorFlow {version} | {device} | seed {seed}").format(
            profile=p, version=tf.__version__, device=device, seed=seed))
    return p


def output_dir(lab: str) -> "os.PathLike":
    """Where a lab writes its figures, GIFs, checkpoints and logs: GAN_COURSE_OUT/NN/PROFILE
    (default ./outputs/NN/PROFILE).  One folder per profile: a quick smoke run never resumes
    from, nor overwrites, the checkpoints of a cpu run's larger networks.  A run with scaled
    steps has its own (PROFILE-steps0.01): a full run never resumes from a shortened one."""
    from pathlib import Path

    root = Path(os.environ.get("GAN_COURSE_OUT", "outputs")).expanduser()
    path = root / lab / profile().folder_name
    path.mkdir(parents=True, exist_ok=True)
    return path
