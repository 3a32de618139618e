"""What the lab's Trainer costs per step beyond the arithmetic, on lab 03's GAN.

    python bench/trainer_overhead.py [--steps 500] [--repeats 2] [--json out.json]

Three ways of running the same steps of the same GAN, in one process, one after another:

- `trainer`: `train.Trainer.fit` as lab 03 calls it: a progress bar, a history row and
  TensorBoard scalars per step, the sample grid every `dcgan_sample_every` steps, the
  checkpoint metric (Fréchet distance of `dcgan_eval_samples` samples) every
  `dcgan_eval_every`, checkpoints, and the GIF at the end;
- `keras_fit`: Keras' own `fit` on the same GAN, no callbacks;
- `compiled_step`: the compiled train function called in a Python loop, nothing else.

Each is reported in ms per step (after a warm-up that traces), with the time inside the
Trainer's hooks (sample grids, metric, checkpoints, GIF) apart.  The ratios to
`compiled_step` are the engine's bookkeeping: what is left is the arithmetic, which the
precision (`GAN_COURSE_PRECISION`) and the CPU decide.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Frechet, P, lab03_gan, machine  # noqa: E402  (the bench's lab 03 GAN and metric)

from gan_course import data, train  # noqa: E402

HOOKS = ("sample_grid", "evaluate", "save", "make_gif")


def timed_hooks(trainer, seconds: collections.Counter) -> None:
    """Wrap the trainer's hooks so that their time adds up in `seconds`."""
    for name in HOOKS:
        hook = getattr(trainer, name)

        def timed(*args, _hook=hook, _name=name, **kwargs):
            started = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                seconds[_name] += time.perf_counter() - started
        setattr(trainer, name, timed)


def one_round(images, frechet, steps: int, folder: Path) -> dict:
    def make():
        with train.precision():
            return lab03_gan()

    seconds = collections.Counter()
    trainer = train.Trainer(make, folder, sample_every=P.dcgan_sample_every, best_metric=frechet,
                            best_every=P.dcgan_eval_every, quiet=True)
    batches = images.batches(P.dcgan_batch)
    trainer.fit(batches, steps=P.dcgan_sample_every)  # warm-up: tracing, the first grid and evaluation
    timed_hooks(trainer, seconds)
    started = time.perf_counter()
    trainer.fit(batches, steps=P.dcgan_sample_every + steps)
    seconds["trainer"] = time.perf_counter() - started

    gan = trainer.gan
    gan.fit(batches.repeat().take(20), steps_per_epoch=20, epochs=1, verbose=0)  # warm-up: Keras' own first call
    started = time.perf_counter()
    gan.fit(batches.repeat().take(steps), steps_per_epoch=steps, epochs=1, verbose=0)
    seconds["keras_fit"] = time.perf_counter() - started

    iterator = iter(batches.repeat())
    step = gan.train_function
    for _ in range(20):  # warm-up
        step(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        logs = step(iterator)
    float(next(iter(logs.values())))  # wait for the last step
    seconds["compiled_step"] = time.perf_counter() - started
    return {"ms_per_step": {name: round(s * 1000 / steps, 2) for name, s in seconds.items()},
            "compute_dtype": gan.generator.dtype_policy.compute_dtype}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="timed steps per way and round")
    parser.add_argument("--repeats", type=int, default=2, help="rounds (each a fresh GAN)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    images = data.load("mnist", limit=P.dcgan_train_limit, quiet=True)
    frechet = Frechet(P.dcgan_eval_samples)
    rounds = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="trainer-overhead-") as folder:
            rounds.append(one_round(images, frechet, args.steps, Path(folder)))
        ms = rounds[-1]["ms_per_step"]
        print(f"{rounds[-1]['compute_dtype']}: Trainer {ms['trainer']} ms/step (hooks "
              f"{sum(ms.get(h, 0) for h in HOOKS):.2f}), Keras fit {ms['keras_fit']}, compiled step "
              f"{ms['compiled_step']}; Trainer / compiled step {ms['trainer'] / ms['compiled_step']:.3f}x, "
              f"Keras fit / compiled step {ms['keras_fit'] / ms['compiled_step']:.3f}x", flush=True)
    result = {**machine(), "profile": P.name, "steps": args.steps, "batch": P.dcgan_batch,
              "precision_setting": os.environ.get("GAN_COURSE_PRECISION", "auto"), "rounds": rounds}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
