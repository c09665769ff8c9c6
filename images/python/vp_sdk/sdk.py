"""Core types of the training SDK."""

import dataclasses
import json
import os
import sys
import time
from typing import Any, Dict, Optional


class AdapterError(Exception):
    """A run cannot go on; the message says why."""


class WeightsUnavailable(AdapterError):
    """Pretrained weights were asked for and cannot be reached."""


@dataclasses.dataclass
class Hyperparameters:
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 0.01
    image_size: int = 224
    seed: int = 0
    pretrained: bool = False
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_platform(cls, d: Dict[str, Any]) -> "Hyperparameters":
        """Maps the platform's JSON names (events.Hyperparameters)."""
        return cls(
            epochs=int(d.get("epochs", 1)),
            batch_size=int(d.get("batchSize", 16)),
            learning_rate=float(d.get("learningRate", 0.01)),
            image_size=int(d.get("imageSize") or 224),
            seed=int(d.get("seed", 0)),
            pretrained=bool(d.get("pretrained", False)),
            extra=dict(d.get("extra") or {}),
        )


class MetricLogger:
    """Prints one JSON line per metric event on a stream (stdout).

    Every line carries ``"vp": "metric"`` so the agent can tell metric lines
    from the framework's own output.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.start = time.time()

    def log(self, epoch: int, step: int, **metrics: float) -> None:
        line = {"vp": "metric", "epoch": epoch, "step": step, "time": round(time.time() - self.start, 3)}
        for k, v in metrics.items():
            if v is not None:
                line[k] = float(v)
        self.stream.write(json.dumps(line, sort_keys=True) + "\n")
        self.stream.flush()


@dataclasses.dataclass
class RunContext:
    dataset_dir: str
    output_dir: str
    model: str
    task: str
    dataset_format: str
    hyperparameters: Hyperparameters
    dataset_digest: str = ""
    image: str = ""
    run_id: str = ""
    metrics: MetricLogger = dataclasses.field(default_factory=MetricLogger)

    @property
    def weights_dir(self) -> str:
        return self._dir("weights")

    @property
    def checkpoints_dir(self) -> str:
        return self._dir("checkpoints")

    @property
    def last_checkpoint(self) -> str:
        return os.path.join(self.checkpoints_dir, "last.pt")

    def resume_checkpoint(self) -> Optional[str]:
        """The checkpoint a restarted run resumes from, if any."""
        p = self.last_checkpoint
        return p if os.path.exists(p) else None

    def _dir(self, name: str) -> str:
        p = os.path.join(self.output_dir, name)
        os.makedirs(p, exist_ok=True)
        return p

    def write_metrics(self, metrics: Dict[str, float]) -> None:
        _write_json(os.path.join(self.output_dir, "metrics.json"), metrics)

    def write_model_card(self, framework: str, extra: Optional[Dict[str, Any]] = None) -> None:
        card = {
            "model": self.model,
            "framework": framework,
            "task": self.task,
            "datasetDigest": self.dataset_digest,
            "image": self.image,
            "runId": self.run_id,
            "hyperparameters": dataclasses.asdict(self.hyperparameters),
        }
        card.update(extra or {})
        _write_json(os.path.join(self.output_dir, "model_card.json"), card)


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class Adapter:
    """The interface every framework adapter implements."""

    framework = ""

    def prepare_data(self, ctx: RunContext) -> Any:
        raise NotImplementedError

    def train(self, ctx: RunContext, data: Any) -> Any:
        raise NotImplementedError

    def evaluate(self, ctx: RunContext, model: Any, data: Any) -> Dict[str, float]:
        raise NotImplementedError

    def export(self, ctx: RunContext, model: Any) -> None:
        raise NotImplementedError

    def run(self, ctx: RunContext) -> Dict[str, float]:
        data = self.prepare_data(ctx)
        model = self.train(ctx, data)
        metrics = self.evaluate(ctx, model, data)
        self.export(ctx, model)
        ctx.write_metrics(metrics)
        ctx.write_model_card(self.framework)
        return metrics
