"""InfoGAN's categorical-code error over seeds, for the two ways of training Q's head.

    python bench/infogan_seeds.py [--profile cpu] [--steps 3000] [--seeds 0 1 2 3] [--json out.json]

Lab 05 trains the trunk on D's loss only and moves Q's head with G's optimizer; the
authors' released code also adds L_I to D's loss and moves Q's head with D's optimizer
(`make_infogan(trunk_learns_info=True)`).  For each design and seed this trains the
profile's InfoGAN for `--steps` steps (no best-checkpoint choice) and prints the
categorical code's error on the test digits after Hungarian matching.  A quality figure,
not a speed one: the question is whether the design or the seed moves the error more.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--steps", type=int, default=None, help="default: the profile's infogan_steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    import keras
    import numpy as np

    from gan_course import config, data, infogan, train

    os.environ[config.ENV_PROFILE] = args.profile
    P = config.setup(quiet=True)
    steps = args.steps or P.infogan_steps
    images = data.load("mnist", quiet=True)
    test = data.load("mnist", "test", quiet=True)
    print(f"{args.profile} profile: {steps} steps of batch {P.infogan_batch}; error on {len(test):,} test digits "
          f"({images.source})", flush=True)
    rows = []
    for trunk_learns_info in (False, True):
        design = "trunk and Q on L_I (authors)" if trunk_learns_info else "Q with G (lab 05)"
        for seed in args.seeds:
            keras.utils.set_random_seed(seed)
            gan = infogan.make_infogan(P.infogan_g_widths, P.infogan_d_widths, P.infogan_q_width,
                                       trunk_learns_info=trunk_learns_info)
            start = time.perf_counter()
            gan.fit(train.image_batches(images.x, P.infogan_batch).take(steps), epochs=1, verbose=0, shuffle=False)
            error = infogan.categorical_code_accuracy(gan, test.x, test.y)["error"]
            rows.append({"design": design, "seed": seed, "steps": steps, "error": round(float(error), 4),
                         "seconds": round(time.perf_counter() - start)})
            print(f"{design:30s} seed {seed}: error {error:6.1%} ({rows[-1]['seconds']} s)", flush=True)
    for design in dict.fromkeys(row["design"] for row in rows):
        errors = np.array([row["error"] for row in rows if row["design"] == design])
        print(f"{design:30s} mean {errors.mean():6.1%}, min {errors.min():6.1%}, max {errors.max():6.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
