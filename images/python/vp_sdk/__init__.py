"""Vision Platform training SDK.

The run agent starts ``python -m vp_sdk.run`` inside a framework image. The
SDK loads the adapter the job names, hands it a :class:`RunContext` (dataset,
output directory, hyperparameters, checkpoint to resume from) and writes the
line protocol of images/python/PROTOCOL.md on stdout (metric, resume and
final lines), which the agent turns into ``run.progress`` events and the
final metrics of ``run.finished``.

Adapters subclass :class:`Adapter` (an abstract base class) and implement
the four steps of the original plan: prepare data, train, evaluate, export.
Conventions of the output directory:

- ``weights/``        the exported model (framework format)
- ``checkpoints/``    ``last.pt`` (written at least every epoch; a restarted
                      run resumes from it)
- ``metrics.json``    final metrics
- ``model_card.json`` dataset digest, model, image digest, hyperparameters
"""

from vp_sdk.protocol import MetricLogger
from vp_sdk.sdk import (
    DEFAULT_IMAGE_SIZE,
    Adapter,
    AdapterError,
    Hyperparameters,
    RunContext,
    WeightsUnavailable,
)

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "Adapter",
    "AdapterError",
    "Hyperparameters",
    "MetricLogger",
    "RunContext",
    "WeightsUnavailable",
]

__version__ = "0.1.0"
