"""How long one latent-slider redraw takes: generator forward pass + PNG + widget update.

    python bench/slider_redraw.py [--repeats 200] [--preset mnist|faces]

Moves one slider of a `LatentExplorer` over a DCGAN-sized 28x28 generator on the CPU
and prints the median and 95th-percentile redraw time.  The target is under 100 ms,
below which a slider feels immediate.  The first redraws (graph tracing, memory
allocation) are warm-up and not counted.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the CPU figure, even on a GPU machine

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--preset", default="mnist", help="models.PRESETS entry (mnist or faces: 28x28)")
    args = parser.parse_args()

    import tensorflow as tf

    from gan_course import models, widgets

    generator, _ = models.build_dcgan(args.preset)
    explorer = widgets.LatentExplorer(generator, dims=[0, 1, 2, 3])
    slider = explorer.sliders[0]
    values = np.linspace(slider.min, slider.max, 37)
    times = []
    for i in range(args.warmup + args.repeats):
        start = time.perf_counter()
        slider.value = float(values[i % len(values)]) if slider.value != values[i % len(values)] else 0.01
        elapsed = time.perf_counter() - start
        if explorer.error:
            raise SystemExit(f"redraw failed: {explorer.error}")
        if i >= args.warmup:
            times.append(elapsed * 1000)
    times = np.array(times)
    params = generator.count_params()
    print(f"slider redraw, {args.preset} DCGAN generator ({params / 1e6:.1f} M parameters, "
          f"{generator.output_shape[1]}x{generator.output_shape[2]}x{generator.output_shape[3]}), "
          f"TensorFlow {tf.__version__} on CPU, {len(times)} redraws")
    print(f"median {np.median(times):.1f} ms   p95 {np.percentile(times, 95):.1f} ms   "
          f"(target < 100 ms: {'met' if np.percentile(times, 95) < 100 else 'NOT met'})")


if __name__ == "__main__":
    main()
