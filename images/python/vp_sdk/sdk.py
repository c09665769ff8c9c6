"""Core types of the training SDK."""

import abc
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from vp_sdk.protocol import MetricLogger

# The input side length when the job names none (events.Hyperparameters
# leaves imageSize out when it is 0).
DEFAULT_IMAGE_SIZE = 224


class AdapterError(Exception):
    """A run cannot go on; the message says why."""


class WeightsUnavailable(AdapterError):
    """Pretrained weights were asked for and cannot be reached."""


_REQUIRED = object()


def _field(d: Mapping[str, Any], name: str, kind: type, default: Any = _REQUIRED) -> Any:
    """d[name] checked against kind (int, float, bool or dict), or default when absent."""
    v = d.get(name)
    if v is None:
        if default is _REQUIRED:
            raise AdapterError(
                f"hyperparameters.{name} is missing: the job's hyperparameters carry epochs, batchSize and learningRate"
            )
        return default
    if kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif kind is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, kind)
    if not ok:
        raise AdapterError(f"hyperparameters.{name}: want {'an object' if kind is dict else kind.__name__}, got {v!r}")
    return kind(v)


@dataclasses.dataclass
class Hyperparameters:
    """The job's hyperparameters: events.Hyperparameters of the Go module.

    epochs, batchSize and learningRate are required there (the job's
    validation) and the agent always passes them, so they have no defaults
    here. The optional ones are absent when zero: seed 0, pretrained false,
    no extra; imageSize absent means DEFAULT_IMAGE_SIZE.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    image_size: int = DEFAULT_IMAGE_SIZE
    seed: int = 0
    pretrained: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_platform(cls, d: Any) -> "Hyperparameters":
        """Reads the platform's JSON names (events.Hyperparameters).

        Raises AdapterError naming the field that is missing or of the
        wrong type.
        """
        if not isinstance(d, Mapping):
            raise AdapterError(f"hyperparameters: want a JSON object, got {d!r}")
        return cls(
            epochs=_field(d, "epochs", int),
            batch_size=_field(d, "batchSize", int),
            learning_rate=_field(d, "learningRate", float),
            image_size=_field(d, "imageSize", int, 0) or DEFAULT_IMAGE_SIZE,
            seed=_field(d, "seed", int, 0),
            pretrained=_field(d, "pretrained", bool, False),
            extra=_field(d, "extra", dict, {}),
        )


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
    # weights: a local file (or folder) of pretrained weights to start from
    # instead of the model hub's (vp_sdk.run --weights; the run agent passes
    # the model's imported weights when the job asks for pretrained). ""
    # when there are none.
    weights: str = ""
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

    def resume_checkpoint(self) -> str | None:
        """The checkpoint a restarted run resumes from, if any."""
        p = self.last_checkpoint
        return p if os.path.exists(p) else None

    def _dir(self, name: str) -> str:
        p = os.path.join(self.output_dir, name)
        os.makedirs(p, exist_ok=True)
        return p

    def write_metrics(self, metrics: dict[str, float]) -> None:
        _write_json(os.path.join(self.output_dir, "metrics.json"), metrics)

    def write_predictions(self, predictions: list[dict[str, Any]], **about: Any) -> None:
        """Writes predictions.json: the trained model's predictions on
        validation images (the plan's inference path), an artifact of the run.

        Each prediction names its ``image`` (the path relative to the
        dataset) and carries what the task predicts (see
        images/python/PROTOCOL.md, "predictions.json"); ``about`` adds
        top-level facts (``classes``, ``task``, ...).
        """
        doc: dict[str, Any] = {"model": self.model, "task": self.task}
        doc.update(about)
        doc["predictions"] = predictions
        _write_json(os.path.join(self.output_dir, "predictions.json"), doc)

    def write_model_card(self, framework: str, extra: dict[str, Any] | None = None) -> None:
        """Writes model_card.json: the run's facts and what the adapter adds.

        The torchvision, timm and huggingface adapters add ``initialWeights``,
        the weights the model started from, taken before any training (and
        before a checkpoint is resumed): ``source`` ("file": ``--weights``,
        "hub" or "none": from scratch), ``file`` (the weights' file name),
        ``loaded`` and ``skipped`` (tensors taken from the file, and the
        classification head's tensors kept out because they are sized for
        other classes), and ``tensor``, ``first`` and ``mean``: the model's
        first floating-point tensor, its first value and its mean.
        """
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


def _finite(obj: Any) -> Any:
    """obj with every float that is not finite (NaN, infinities) as None:
    JSON has no such numbers (images/python/PROTOCOL.md: null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_finite(obj), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


class Adapter(abc.ABC):
    """The interface every framework adapter implements.

    The original plan's four steps: prepare data, train, evaluate, export.
    run() calls them in that order and writes metrics.json and
    model_card.json; an adapter implements the steps (and model_card() for
    what its card adds), not run().
    """

    # The adapter's name: vp_sdk.run's --adapter, the model card's framework.
    framework: ClassVar[str] = ""

    @abc.abstractmethod
    def prepare_data(self, ctx: RunContext) -> Any:
        """Reads ctx.dataset_dir into what train() takes.

        Raises AdapterError when the dataset does not suit the adapter.
        """

    @abc.abstractmethod
    def train(self, ctx: RunContext, data: Any) -> Any:
        """Trains and returns the model.

        Resumes from ctx.resume_checkpoint() when there is one (writing
        ctx.metrics.resume), writes a metric line per epoch (ctx.metrics.log)
        and ctx.last_checkpoint at least every epoch.
        """

    @abc.abstractmethod
    def evaluate(self, ctx: RunContext, model: Any, data: Any) -> dict[str, float]:
        """The model's metrics on the validation data."""

    @abc.abstractmethod
    def export(self, ctx: RunContext, model: Any) -> None:
        """Writes the trained model under ctx.weights_dir."""

    def model_card(self, ctx: RunContext, model: Any) -> dict[str, Any]:
        """What this adapter adds to model_card.json (nothing by default)."""
        return {}

    def run(self, ctx: RunContext) -> dict[str, float]:
        """The four steps, then metrics.json and model_card.json; returns the final metrics."""
        data = self.prepare_data(ctx)
        model = self.train(ctx, data)
        metrics = self.evaluate(ctx, model, data)
        self.export(ctx, model)
        ctx.write_metrics(metrics)
        ctx.write_model_card(self.framework, self.model_card(ctx, model))
        return metrics
