"""The lines the SDK writes for the run agent on standard output.

images/python/PROTOCOL.md describes every kind and field; this module writes
them, images/agent/protocol.go reads them.
"""

import json
import math
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

METRIC = "metric"
RESUME = "resume"
FINAL = "final"

# The fields of a metric line that are not metrics.
RESERVED = frozenset({"vp", "epoch", "step", "time"})


def _value(name: str, v: Any) -> float | None:
    """A metric value as JSON can carry it: a float, or None when not finite."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"metric {name!r}: {v!r} is not a number") from e
    return f if math.isfinite(f) else None


class MetricLogger:
    """Writes protocol lines: one JSON object per line, flushed at once.

    The stream is standard output unless one is given (looked up at each
    write, so a redirected sys.stdout is honoured).
    """

    def __init__(self, stream: IO[str] | None = None):
        self._stream = stream
        self._start = time.monotonic()

    def log(self, epoch: int, step: int, **metrics: Any) -> None:
        """A metric line. Metrics given as None are left out."""
        line: dict[str, Any] = {
            "vp": METRIC,
            "epoch": int(epoch),
            "step": int(step),
            "time": round(time.monotonic() - self._start, 3),
        }
        for name in sorted(metrics):
            if name in RESERVED:
                raise ValueError(f"{name!r} is a reserved field of metric lines, not a metric name")
            if metrics[name] is not None:
                line[name] = _value(name, metrics[name])
        self._write(line)

    def resume(self, epoch: int, step: int) -> None:
        """A resume line: the run goes on from a checkpoint of epoch and step."""
        self._write({"vp": RESUME, "epoch": int(epoch), "step": int(step)})

    def final(self, metrics: Mapping[str, Any]) -> None:
        """The final line: the run's final metrics."""
        self._write({"vp": FINAL, "metrics": {k: _value(k, metrics[k]) for k in sorted(metrics)}})

    def _write(self, obj: dict[str, Any]) -> None:
        stream = self._stream or sys.stdout
        stream.write(json.dumps(obj, allow_nan=False) + "\n")
        stream.flush()
