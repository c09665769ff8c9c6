"""custom adapter: models that live in their own source tree.

The original plan's CustomAdapter (ConvNeXt, YOLOv7, PP-YOLOE, ViTPose). The
source tree is put into the model's image at build time; nothing is cloned
at run time. The tree carries ``vp-custom.json``::

    {
      "template": "configs/train.yaml.tmpl",   # filled with string.Template
      "config": "configs/train.yaml",           # where the filled config goes
      "command": ["python3", "train.py", "--cfg", "${config}"],
      "weights": ["runs/best.pt"],              # copied to weights/ at the end
      "rules": [                                # log line -> metric line
        {"regex": "Epoch (?P<epoch>\\\\d+)/\\\\d+ .*loss=(?P<loss>[0-9.]+)",
         "metrics": ["loss"]}
      ]
    }

Each rule's named groups ``epoch`` and ``step`` give the metric line's
epoch and step (the step counts matching lines when absent); its metrics are
the groups ``metrics`` lists, or every other named group. ``vp`` and ``time``
are no metric names (images/python/PROTOCOL.md).

Template variables: epochs, batch_size, learning_rate, image_size, seed,
pretrained, weights (the imported pretrained weights' local path, vp_sdk.run
--weights, else empty), dataset_dir, output_dir, model, config, checkpoint (where the
script keeps its checkpoint, which the agent uploads), resume (that
checkpoint when a restarted run has one, else empty), and every key of the
hyperparameters' ``extra``. The tree is found at ``extra.sourceDir`` or
``$VP_CUSTOM_SOURCE``.
"""

import dataclasses
import json
import os
import re
import shutil
import string
import subprocess
import sys

from vp_sdk.protocol import RESERVED
from vp_sdk.sdk import Adapter, AdapterError


@dataclasses.dataclass
class _Trained:
    """What a custom training leaves: its last metrics and where its weights are."""

    metrics: dict[str, float]
    src: str
    weights: list[str]


class CustomAdapter(Adapter):
    framework = "custom"

    def _source(self, ctx):
        src = ctx.hyperparameters.extra.get("sourceDir") or os.environ.get("VP_CUSTOM_SOURCE")
        if not src or not os.path.isdir(src):
            raise AdapterError(f"custom model source tree not found (extra.sourceDir or VP_CUSTOM_SOURCE): {src!r}")
        desc = os.path.join(src, "vp-custom.json")
        try:
            with open(desc) as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            raise AdapterError(f"{desc}: {e}") from e
        for key in ("command", "rules"):
            if key not in spec:
                raise AdapterError(f"{desc}: {key} is required")
        rules = []
        for i, r in enumerate(spec["rules"]):
            try:
                rx, names = re.compile(r["regex"]), list(r.get("metrics", []))
            except (KeyError, re.error) as e:
                raise AdapterError(f"{desc}: rules[{i}]: {e}") from e
            # without a list, every named group but epoch and step is a metric
            names = names or [g for g in rx.groupindex if g not in ("epoch", "step")]
            for n in names:
                if n in RESERVED:
                    raise AdapterError(
                        f"{desc}: rules[{i}]: {n!r} is reserved (vp, epoch, step, time); name the metric otherwise"
                    )
            rules.append((rx, names))
        return src, spec, rules

    def prepare_data(self, ctx):
        src, spec, rules = self._source(ctx)
        hp = ctx.hyperparameters
        values = {k: str(v) for k, v in hp.extra.items()}
        values.update(
            {
                "epochs": str(hp.epochs),
                "batch_size": str(hp.batch_size),
                "learning_rate": str(hp.learning_rate),
                "image_size": str(hp.image_size),
                "seed": str(hp.seed),
                "pretrained": str(hp.pretrained).lower(),
                "weights": ctx.weights,
                "dataset_dir": ctx.dataset_dir,
                "output_dir": ctx.output_dir,
                "model": ctx.model,
                # the checkpoint a restarted run resumes from ("" for a fresh run);
                # the model's script writes checkpoints to ${checkpoint}
                "resume": ctx.resume_checkpoint() or "",
                "checkpoint": ctx.last_checkpoint,
            }
        )
        config = ""
        if spec.get("template"):
            tmpl_path = os.path.join(src, spec["template"])
            config = os.path.join(
                ctx.output_dir, spec.get("config") or os.path.basename(tmpl_path).removesuffix(".tmpl")
            )
            try:
                with open(tmpl_path) as f:
                    filled = string.Template(f.read()).substitute(values)
            except KeyError as e:
                raise AdapterError(f"{tmpl_path}: no value for ${{{e.args[0]}}}") from e
            os.makedirs(os.path.dirname(config), exist_ok=True)
            with open(config, "w") as f:
                f.write(filled)
        values["config"] = config
        cmd = [string.Template(a).safe_substitute(values) for a in spec["command"]]
        return {"src": src, "spec": spec, "rules": rules, "cmd": cmd}

    def train(self, ctx, data):
        proc = subprocess.Popen(
            data["cmd"], cwd=data["src"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        last = {}
        step = 0
        try:
            for line in proc.stdout:
                sys.stderr.write(line)  # the model's own log goes to the run log
                for rx, names in data["rules"]:
                    m = rx.search(line)
                    if not m:
                        continue
                    groups = m.groupdict()
                    epoch = int(groups.get("epoch") or 0)
                    step = int(groups.get("step") or step + 1)
                    metrics = {}
                    for n in names:
                        if groups.get(n) is not None:
                            metrics[n] = float(groups[n])
                    last.update(metrics)
                    ctx.metrics.log(epoch, step, **metrics)
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        if code != 0:
            raise AdapterError(f"{' '.join(data['cmd'])} exited with {code}")
        return _Trained(metrics=last, src=data["src"], weights=list(data["spec"].get("weights", [])))

    def evaluate(self, ctx, model, data):
        # the script evaluates as it trains: its last metrics are the final ones
        return dict(model.metrics)

    def export(self, ctx, model):
        for w in model.weights:
            p = os.path.join(model.src, w) if not os.path.isabs(w) else w
            for base in (ctx.output_dir, model.src):
                cand = os.path.join(base, w)
                if os.path.exists(cand):
                    p = cand
                    break
            if not os.path.exists(p):
                raise AdapterError(f"the training script did not write {w}")
            shutil.copy2(p, os.path.join(ctx.weights_dir, os.path.basename(p)))

    def model_card(self, ctx, model):
        return {"source": os.path.basename(model.src)}
