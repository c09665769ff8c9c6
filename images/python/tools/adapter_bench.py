"""Train an adapter on a generated two-class dataset and report timings.

    python3 images/python/tools/adapter_bench.py --adapter timm --model resnet18 \
        --per-class 256 --side 64 --epochs 3

Prints one JSON object: adapter, model, device, images, epochs, seconds,
images/s and the final metrics. Used for the GPU figures in the README.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time


def make_dataset(root, per_class, side, seed=7):
    from PIL import Image

    rnd = random.Random(seed)
    for split, n in (("train", per_class), ("val", max(2, per_class // 4))):
        for ci, cls in enumerate(("cat", "dog")):
            d = os.path.join(root, split, cls)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                img = Image.new("RGB", (side, side))
                px = img.load()
                for y in range(side):
                    for x in range(side):
                        v = rnd.randrange(60)
                        px[x, y] = (200 + v // 2, v, v) if ci == 0 else (v, v, 200 + v // 2)
                img.save(os.path.join(d, f"{i:04d}.png"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--adapter", default="timm")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--per-class", type=int, default=256)
    p.add_argument("--side", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "data"), os.path.join(tmp, "out")
        make_dataset(data, a.per_class, a.side)
        hp = {"epochs": a.epochs, "batchSize": a.batch_size, "learningRate": 0.01, "imageSize": a.side, "seed": 1}
        env = dict(os.environ, PYTHONPATH=here, PYTHONUNBUFFERED="1")
        start = time.time()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "vp_sdk.run",
                "--adapter",
                a.adapter,
                "--model",
                a.model,
                "--dataset",
                data,
                "--output",
                out,
                "--hyperparameters",
                json.dumps(hp),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        secs = time.time() - start
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            sys.exit(proc.returncode)
        # the metric lines of images/python/PROTOCOL.md
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"vp": ')]
        with open(os.path.join(out, "model_card.json")) as f:
            card = json.load(f)
        with open(os.path.join(out, "metrics.json")) as f:
            metrics = json.load(f)
        per_epoch = [line["time"] for line in lines if line["vp"] == "metric"]
        n = 2 * a.per_class * a.epochs
        print(
            json.dumps(
                {
                    "adapter": a.adapter,
                    "model": a.model,
                    "device": card.get("device"),
                    "train_images": 2 * a.per_class,
                    "epochs": a.epochs,
                    "seconds": round(secs, 2),
                    "epoch_end_times": per_epoch,
                    "images_per_s": round(n / secs, 1),
                    "metrics": metrics,
                }
            )
        )


if __name__ == "__main__":
    main()
