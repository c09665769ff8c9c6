"""ultralytics adapter: YOLO detection on a YOLO-format dataset.

The dataset holds data.yaml (train/val image folders, class names) as
ultralytics expects, or is a COCO dataset, converted to that layout first. The model is a
model config ("yolov8n.yaml": from scratch, no download) or weights
("yolov8n.pt", downloaded by ultralytics when pretrained is asked for).
With ctx.weights (vp_sdk.run --weights: the imported weights) the model is
YOLO(ctx.weights) and nothing is downloaded; untested here, ultralytics is
not installed where the tests run.
"""

import os
import shutil

from vp_sdk.protocol import RESERVED
from vp_sdk.sdk import Adapter, AdapterError, WeightsUnavailable


class UltralyticsAdapter(Adapter):
    framework = "ultralytics"

    def prepare_data(self, ctx):
        if ctx.dataset_format == "coco":
            from vp_sdk.formats import coco_to_yolo

            try:
                return coco_to_yolo(ctx.dataset_dir, os.path.join(ctx.output_dir, "yolo-dataset"))
            except (ValueError, KeyError, OSError) as e:
                raise AdapterError(f"converting the COCO dataset: {e}") from e
        if ctx.dataset_format != "yolo":
            raise AdapterError(
                f"the ultralytics adapter takes yolo (data.yaml) or coco datasets, not {ctx.dataset_format}"
            )
        data = os.path.join(ctx.dataset_dir, "data.yaml")
        if not os.path.exists(data):
            raise AdapterError(f"no data.yaml in {ctx.dataset_dir}")
        return data

    def train(self, ctx, data):
        try:
            from ultralytics import YOLO
        except ImportError as e:
            raise AdapterError(f"ultralytics is not installed in this image: {e}") from e
        hp = ctx.hyperparameters
        name = ctx.model
        resume = ctx.resume_checkpoint()
        if resume:
            model = YOLO(resume)
        elif ctx.weights:
            try:
                model = YOLO(ctx.weights)
            except Exception as e:
                raise AdapterError(f"weights {os.path.basename(ctx.weights)}: ultralytics cannot load them: {e}") from e
        elif hp.pretrained:
            try:
                model = YOLO(name if name.endswith(".pt") else name + ".pt")
            except Exception as e:
                raise WeightsUnavailable(f"pretrained weights for {name} cannot be loaded: {e}") from e
        else:
            model = YOLO(name if name.endswith(".yaml") else name + ".yaml")
        metrics = ctx.metrics

        def on_fit_epoch_end(trainer):
            m = {k.replace("metrics/", "").replace("(B)", ""): float(v) for k, v in (trainer.metrics or {}).items()}
            m = {k: v for k, v in m.items() if k not in RESERVED and k not in ("loss", "lr")}
            loss = float(trainer.tloss.sum()) if getattr(trainer, "tloss", None) is not None else None
            metrics.log(
                trainer.epoch + 1,
                int(getattr(trainer, "iterations", 0) or 0),
                loss=loss,
                lr=trainer.optimizer.param_groups[0]["lr"],
                **m,
            )
            last = os.path.join(trainer.save_dir, "weights", "last.pt")
            if os.path.exists(last):
                shutil.copy2(last, ctx.last_checkpoint + ".tmp")
                os.replace(ctx.last_checkpoint + ".tmp", ctx.last_checkpoint)

        model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
        model.train(
            data=data,
            epochs=hp.epochs,
            batch=hp.batch_size,
            lr0=hp.learning_rate,
            imgsz=hp.image_size,
            seed=hp.seed,
            project=os.path.join(ctx.output_dir, "ultralytics"),
            name="train",
            exist_ok=True,
            resume=bool(resume),
            verbose=False,
            plots=False,
        )
        return model

    def evaluate(self, ctx, model, data):
        res = model.val(data=data, verbose=False, plots=False)
        return {k.replace("metrics/", "").replace("(B)", ""): float(v) for k, v in res.results_dict.items()}

    def export(self, ctx, model):
        best = getattr(getattr(model, "trainer", None), "best", None)
        if best and os.path.exists(best):
            shutil.copy2(best, os.path.join(ctx.weights_dir, "best.pt"))
