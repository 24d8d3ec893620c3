"""What a returned model costs at inference: one model (`best_model`, `soup_model`) against an
ensemble of k members (`ensemble_model`), side by side on one machine.

    python -m experiments.inference_cost [--model fmnist|cifar10|mlp] [--members 5]
        [--images 5000] [--repeats 5]

Prints each one's parameter count and its predict time per 1,000 images (the median of
interleaved repeats, batches of 500, one warm-up call each) and the ratio to one model. Only
the ratios compare across machines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from experiments.core.evaluation import predict_logits  # noqa: E402
from experiments.core.models import INPUT_SHAPES, build_model, paper_loss  # noqa: E402
from popdescent.returned.ensemble import mixture_model  # noqa: E402


def compiled(name, seed):
    model = build_model(name, seed=seed)
    model.compile(optimizer="adam", loss=paper_loss())
    return model


def seconds(model, x) -> float:
    start = time.perf_counter()
    predict_logits(model, x)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.inference_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("fmnist", "cifar10", "mlp"), default="fmnist")
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    shape = INPUT_SHAPES[args.model]
    x = np.random.default_rng(0).random((args.images, *shape)).astype("float32")
    single = compiled(args.model, 0)
    ensemble = mixture_model([compiled(args.model, seed) for seed in range(args.members)])
    models = {"one model (best_model, soup_model)": single,
              f"ensemble of {args.members} (ensemble_model)": ensemble}
    times = {name: [] for name in models}
    for model in models.values():
        seconds(model, x[:500])  # warm-up
    for _ in range(args.repeats):
        for name, model in models.items():
            times[name].append(seconds(model, x))
    base = np.median(times[next(iter(models))])
    print(f"{args.model}, {args.images} images in batches of 500, median of {args.repeats}:")
    for name, model in models.items():
        median = np.median(times[name])
        print(f"  {name}: {model.count_params():,} parameters, "
              f"{1000 * median / args.images * 1000:.1f} ms per 1,000 images, "
              f"x{median / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
