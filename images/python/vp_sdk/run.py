"""Entry point the run agent starts: python -m vp_sdk.run --adapter NAME ...

Exit codes: 0 success, 2 bad arguments, 3 adapter error (message on stderr),
130/143 interrupted.
"""

import argparse
import importlib
import json
import signal
import sys

from vp_sdk.sdk import AdapterError, Hyperparameters, RunContext

ADAPTERS = {
    "torchvision": "vp_sdk.adapters.torchvision_adapter:TorchvisionAdapter",
    "timm": "vp_sdk.adapters.timm_adapter:TimmAdapter",
    "ultralytics": "vp_sdk.adapters.ultralytics_adapter:UltralyticsAdapter",
    "huggingface": "vp_sdk.adapters.huggingface_adapter:HuggingFaceAdapter",
    "custom": "vp_sdk.adapters.custom_adapter:CustomAdapter",
}


def load_adapter(name: str):
    if name not in ADAPTERS:
        raise AdapterError(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    mod, cls = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(mod), cls)()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="vp_sdk.run")
    p.add_argument("--adapter", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True, help="dataset directory")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--task", default="classification")
    p.add_argument("--format", default="imagefolder")
    p.add_argument("--hyperparameters", default="{}", help="platform hyperparameters as JSON")
    p.add_argument("--dataset-digest", default="")
    p.add_argument("--image", default="")
    p.add_argument("--run-id", default="")
    args = p.parse_args(argv)

    # SIGTERM ends the run like Ctrl-C: adapters save what they have.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        hp = Hyperparameters.from_platform(json.loads(args.hyperparameters))
        ctx = RunContext(
            dataset_dir=args.dataset, output_dir=args.output, model=args.model, task=args.task,
            dataset_format=args.format, hyperparameters=hp, dataset_digest=args.dataset_digest,
            image=args.image, run_id=args.run_id,
        )
        adapter = load_adapter(args.adapter)
        metrics = adapter.run(ctx)
        print(json.dumps({"vp": "final", "metrics": metrics}, sort_keys=True), flush=True)
        return 0
    except AdapterError as e:
        print(f"vp_sdk: {e}", file=sys.stderr, flush=True)
        return 3
    except KeyboardInterrupt:
        print("vp_sdk: interrupted; checkpoints so far are kept", file=sys.stderr, flush=True)
        return 143


if __name__ == "__main__":
    sys.exit(main())
