"""Entry point the run agent starts: python -m vp_sdk.run --adapter NAME ...

--weights PATH starts the model from that file (or folder) of pretrained
weights instead of its model hub's: the run agent passes the model's
imported weights (vp weights import) when the job asks for pretrained.
torchvision and timm take a PyTorch state dict (or a checkpoint holding one
under "model" or "state_dict"; .safetensors where safetensors is installed)
and keep its classification head out when it is sized for other classes;
huggingface takes the folder save_pretrained writes, packed as .tar.gz,
.tgz, .tar or .zip, or a single .safetensors for a model built from its
type; ultralytics a .pt for YOLO(); custom gets it as ${weights}.

Exit codes: 0 success, 2 bad arguments, 3 adapter error (message on stderr),
143 interrupted (SIGTERM or Ctrl-C). On standard output it writes the lines
of images/python/PROTOCOL.md, ending with the final line on success.
"""

import argparse
import importlib
import json
import os
import signal
import sys

from vp_sdk.sdk import Adapter, AdapterError, Hyperparameters, RunContext

ADAPTERS = {
    "torchvision": "vp_sdk.adapters.torchvision_adapter:TorchvisionAdapter",
    "timm": "vp_sdk.adapters.timm_adapter:TimmAdapter",
    "ultralytics": "vp_sdk.adapters.ultralytics_adapter:UltralyticsAdapter",
    "huggingface": "vp_sdk.adapters.huggingface_adapter:HuggingFaceAdapter",
    "custom": "vp_sdk.adapters.custom_adapter:CustomAdapter",
}


def adapter_class(name: str) -> type[Adapter]:
    """The Adapter subclass registered under name."""
    if name not in ADAPTERS:
        raise AdapterError(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    mod, cls = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def load_adapter(name: str) -> Adapter:
    return adapter_class(name)()


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="vp_sdk.run")
    p.add_argument("--adapter", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True, help="dataset directory")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--task", default="classification")
    p.add_argument("--format", default="imagefolder")
    p.add_argument(
        "--hyperparameters",
        required=True,
        help="the job's hyperparameters as JSON (events.Hyperparameters: epochs, batchSize, learningRate, ...)",
    )
    p.add_argument("--dataset-digest", default="")
    p.add_argument("--image", default="")
    p.add_argument("--run-id", default="")
    p.add_argument(
        "--weights", default="", help="pretrained weights to start from (a file, or a folder for huggingface)"
    )
    args = p.parse_args(argv)

    # SIGTERM ends the run like Ctrl-C: adapters save what they have.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            raw = json.loads(args.hyperparameters)
        except ValueError as e:
            raise AdapterError(f"hyperparameters: not JSON: {e}") from e
        ctx = RunContext(
            dataset_dir=args.dataset,
            output_dir=args.output,
            model=args.model,
            task=args.task,
            dataset_format=args.format,
            hyperparameters=Hyperparameters.from_platform(raw),
            dataset_digest=args.dataset_digest,
            image=args.image,
            run_id=args.run_id,
            weights=args.weights,
        )
        if ctx.weights and not os.path.exists(ctx.weights):
            raise AdapterError(f"--weights {ctx.weights}: no such file")
        adapter = load_adapter(args.adapter)
        metrics = adapter.run(ctx)
        ctx.metrics.final(metrics)
        return 0
    except AdapterError as e:
        print(f"vp_sdk: {e}", file=sys.stderr, flush=True)
        return 3
    except KeyboardInterrupt:
        print("vp_sdk: interrupted; checkpoints so far are kept", file=sys.stderr, flush=True)
        return 143


if __name__ == "__main__":
    sys.exit(main())
