"""Lab 04's quality bar: the trained face generator against the untrained one.

    python bench/faces_quality.py [--profile cpu] [--seeds 0 1] [--out folder] [--json out.json]

For each seed this trains lab 04's DCGAN as the lab does (the profile's face crops, widths,
batch and steps; Adam 2e-4 with beta_1 0.5, label smoothing 0.1) and measures the Fréchet
distance of 1,000 samples to 1,000 training faces, for the trained and for the untrained
generator.  Faces have no classes, so the features are those of a fixed random network
(`metrics.SeededFeatures`): a weaker proxy than a classifier, fit for comparing two
generators on the same images.  The bar: the trained distance at least 5x below the
untrained one.  Each run also writes its 36-face sample grid, for the other half of the
bar: faces a person recognises (look at it).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FACTOR_BAR = 5.0
SAMPLES = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/faces"), help="where the sample grids go")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    from gan_course import config

    os.environ[config.ENV_PROFILE] = args.profile
    P = config.setup(quiet=True)

    import keras
    import numpy as np

    from gan_course import faces, metrics, models, plotting, train

    crops = faces.load_face_crops(P.faces_images, allow_standin=True, progress=False, quiet=True)
    real = np.concatenate([b.numpy() for b in faces.face_dataset(crops.images[:SAMPLES], 500, P.faces_image_size,
                                                                 (-1.0, 1.0))])
    proxy = metrics.SeededFeatures(real.shape[1:])
    real_features, _ = proxy.features(real)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        generator, discriminator = models.build_dcgan("faces", latent_dim=100, image_shape=real.shape[1:],
                                                      g_filters=P.faces_g_filters, d_filters=P.faces_d_filters)
        z = np.random.default_rng(1).normal(size=(SAMPLES, 100)).astype(np.float32)
        distance = lambda g: metrics.frechet_distance(proxy.features(np.asarray(g(z, training=False)))[0],  # noqa: E731
                                                      real_features)
        untrained = distance(generator)
        gan = train.make_gan(generator, discriminator, label_smoothing=0.1, learning_rate=2e-4, beta_1=0.5)
        with tempfile.TemporaryDirectory() as folder:
            trainer = train.Trainer(gan, Path(folder), sample_every=P.faces_steps, num_samples=36, progress=False,
                                    quiet=True)
            trainer.fit(faces.face_training_batches(crops, P.faces_batch, P.faces_image_size), steps=P.faces_steps)
        trained = distance(generator)
        grid = args.out / f"faces_{args.profile}_seed{seed}.png"
        plotting.show_images(np.asarray(generator(z[:36], training=False)), f"lab 04, seed {seed}", ncols=6,
                             save=grid)
        rows.append({"seed": seed, "steps": P.faces_steps, "frechet_untrained": round(untrained, 2),
                     "frechet_trained": round(trained, 2), "factor": round(untrained / trained, 2),
                     "bar_met": bool(untrained / trained >= FACTOR_BAR), "grid": str(grid)})
        print(f"seed {seed}: Fréchet distance (seeded-network features) untrained {untrained:.2f}, trained "
              f"{trained:.2f}: {untrained / trained:.1f}x lower (bar {FACTOR_BAR:g}x); grid {grid}", flush=True)
    result = {"profile": args.profile, "data": crops.title, "features": proxy.label, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
