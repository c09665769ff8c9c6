"""ultralytics adapter: YOLO detection, oriented boxes, instance
segmentation, pose and classification.

The model is a model config, "yolo11n.yaml" (from scratch: built from the
config ultralytics ships, nothing downloaded), or released weights,
"yolo11n.pt" (downloaded from GitHub when the job asks for pretrained and
GitHub can be reached, else WeightsUnavailable at once); a bare name means
the config. With ctx.weights (vp_sdk.run --weights: the imported weights,
a .pt) the model is YOLO(ctx.weights) and nothing is downloaded. The
model's ultralytics task must serve the job's: detect and obb serve
detection, segment segmentation (instance), pose pose, classify
classification.

Datasets: YOLO (data.yaml: train, val, names, kpt_shape for pose; labels
class cx cy w h for boxes, class and polygon points for segmentation,
class and the 4 corners for obb, class, box and keypoints for pose) or COCO
for detection (converted by formats.coco_to_yolo); imagefolder
(train/<class>/, val/<class>/) for classification. The dataset may be
read-only: its images and labels are linked under
<output>/ultralytics/dataset, where ultralytics also writes its label
caches, with a data.yaml of absolute paths.

Nothing is downloaded or attempted at run time except those pretrained
weights: ultralytics' settings live in <output>/ultralytics/settings with
sync, the hub and the logging integrations off; YOLO_OFFLINE (no
connectivity probe, so no pip update check and no telemetry) and
YOLO_AUTOINSTALL false (no pip installs) are set before ultralytics is
imported; the fonts it would download (Arial.ttf, Arial.Unicode.ttf) are
matplotlib's DejaVu Sans under those names; and its AMP check, which
downloads yolo11n.pt to compare outputs on CUDA, is replaced by AMP on
CUDA (hyperparameters.extra.amp false turns it off).

The job's epochs, batchSize, imageSize, learningRate (ultralytics' lr0,
with SGD unless hyperparameters.extra.optimizer names another: its "auto"
picks its own learning rate) and seed are used; dataloader workers are 0
on CPU (hyperparameters.extra.workers elsewhere). Metric names are
images/python/PROTOCOL.md's, with loss (the epoch's mean training loss,
ultralytics' loss terms summed) and lr (of the weights) each epoch and step
the batches so far. ultralytics' last.pt is copied to checkpoints/last.pt
every epoch; a restarted run resumes from it with ultralytics' resume
(optimizer, EMA, epoch), the job's epochs and this run's paths, or, when it
already holds them all, only evaluates and exports it. weights/ gets
best.pt and last.pt (optimizer stripped); predictions.json the model's
predictions on up to 16 validation images (hyperparameters.extra.predictions).

Trained in the ultralytics image (ultralytics 8.3.40, CPU) with
--network none and a read-only dataset, with no network attempt: yolo11n,
yolo11s, yolo11m and yolov8n (YOLO detection; yolo11n also COCO),
yolo11n-seg, yolo11n-pose, yolo11n-obb and yolo11n-cls, and a restarted run
resuming; not yet on CUDA here.
"""

import math
import os
import shutil
import socket
import sys
import tempfile

from vp_sdk.adapters.torchvision_adapter import prediction_count, spread, top_labels
from vp_sdk.sdk import Adapter, AdapterError, WeightsUnavailable

# The job's task each ultralytics task trains.
SERVES = {
    "detect": "detection",
    "obb": "detection",
    "segment": "segmentation",
    "pose": "pose",
    "classify": "classification",
}

# ultralytics' metric names (results_dict, trainer.metrics) to
# PROTOCOL.md's, by ultralytics task.
_BOXES = {"metrics/mAP50(B)": "mAP50", "metrics/mAP50-95(B)": "mAP50-95"}
METRICS = {
    "detect": {**_BOXES, "metrics/precision(B)": "precision", "metrics/recall(B)": "recall"},
    "obb": {**_BOXES, "metrics/precision(B)": "precision", "metrics/recall(B)": "recall"},
    "segment": {**_BOXES, "metrics/mAP50(M)": "mask_mAP50", "metrics/mAP50-95(M)": "mask_mAP50-95"},
    "pose": {**_BOXES, "metrics/mAP50(P)": "pose_mAP50", "metrics/mAP50-95(P)": "pose_mAP50-95"},
    "classify": {"metrics/accuracy_top1": "accuracy", "metrics/accuracy_top5": "top5", "val/loss": "val_loss"},
}

# Where ultralytics' released weights are downloaded from.
HUB = ("github.com", 443)

# ultralytics' optimizers (its "auto" ignores lr0).
OPTIMIZERS = ("SGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp", "auto")

# The predictions a result keeps at most per image.
MAX_DETECTIONS = 100


def _say(msg):
    print(f"vp_sdk: {msg}", file=sys.stderr, flush=True)


def metric_names(task, values):
    """values (ultralytics' names) under PROTOCOL.md's names for task."""
    names = METRICS[task]
    return {names[k]: float(v) for k, v in values.items() if k in names}


def _home(ctx):
    """<output>/ultralytics: everything ultralytics reads or writes of its own."""
    p = os.path.join(ctx.output_dir, "ultralytics")
    os.makedirs(p, exist_ok=True)
    return p


def _fonts(config):
    """Puts the fonts ultralytics looks for in its settings folder (and
    downloads when missing) there: matplotlib's DejaVu Sans stands in."""
    try:
        import matplotlib
    except ImportError:
        return
    src = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    if not os.path.exists(src):
        return
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        dst = os.path.join(config, name)
        if not os.path.lexists(dst):
            os.symlink(src, dst)


def _amp_without_probe(model):
    """ultralytics' check_amp without its probe (it downloads yolo11n.pt to
    compare FP32 and AMP outputs): AMP on CUDA, off elsewhere, as the
    check answers when it passes or cannot download."""
    return next(model.parameters()).device.type == "cuda"


def ultralytics(home):
    """Imports ultralytics set up to download and probe nothing; returns YOLO."""
    config = os.path.join(home, "settings")
    os.makedirs(config, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = config
    os.environ["YOLO_OFFLINE"] = "true"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    _fonts(config)
    try:
        import ultralytics.engine.trainer as trainer_module
        from ultralytics import YOLO
        from ultralytics.utils import SETTINGS
    except ImportError as e:
        raise AdapterError(f"ultralytics is not installed in this image: {e}") from e
    off = ("sync", "hub", "clearml", "comet", "dvc", "mlflow", "neptune", "raytune", "tensorboard", "wandb")
    SETTINGS.update(
        **dict.fromkeys((*off, "vscode_msg"), False),
        datasets_dir=os.path.join(home, "datasets"),
        weights_dir=os.path.join(home, "weights"),
        runs_dir=home,
    )
    trainer_module.check_amp = _amp_without_probe
    return YOLO


def _reachable(host, port, timeout=5.0):
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True  # the download goes through the proxy; let it try
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _stem(model):
    """yolo11n for yolo11n, yolo11n.yaml or yolo11n.pt."""
    base, ext = os.path.splitext(model)
    return base if ext in (".yaml", ".yml", ".pt") else model


def _rel(path, root):
    """path (a link under the output) as a path relative to the dataset root."""
    return os.path.relpath(os.path.realpath(path), os.path.realpath(root)).replace(os.sep, "/")


def _extra_int(hp, name, default):
    v = hp.extra.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise AdapterError(f"hyperparameters.extra.{name}: want a whole number (0 or more), got {v!r}")
    return v


def _label_problem(task, files, kpt_shape, show=str):
    """What is wrong with the first label lines of files for an ultralytics
    task, or ""; show(file) names a file in the message."""
    if task == "pose" and not (isinstance(kpt_shape, list) and len(kpt_shape) == 2):
        return "data.yaml has no kpt_shape ([keypoints, 2 or 3]), which pose labels need"
    checked = 0
    for f in files:
        if checked == 20:
            break
        if not os.path.exists(f):
            continue
        with open(f) as fh:
            line = next((ln for ln in fh if ln.strip()), "")
        if not line:
            continue
        checked += 1
        n = len(line.split())
        f = show(f)
        if task == "obb" and n != 9:
            return f"{f}: {n} values a line; oriented boxes are class and 4 corners x y (9 values)"
        if task == "segment" and (n < 7 or n % 2 == 0):
            return f"{f}: {n} values a line; instance masks are class and 3 or more points x y"
        if task == "pose" and n != 5 + kpt_shape[0] * kpt_shape[1]:
            want = 5 + kpt_shape[0] * kpt_shape[1]
            return (
                f"{f}: {n} values a line; with kpt_shape {kpt_shape}, pose labels are class, box and keypoints ({want})"
            )
        if task == "detect" and n != 5 and (n < 7 or n % 2 == 0):
            return f"{f}: {n} values a line; boxes are class cx cy w h (5 values) or class and polygon points"
    return ""


class UltralyticsAdapter(Adapter):
    framework = "ultralytics"

    def __init__(self):
        self._device = "cpu"
        self._task = ""  # the model's ultralytics task, set by train
        self._initial: dict = {}
        self._finished_checkpoint = ""  # set when a restarted run found training done
        self._data: dict = {}  # what prepare_data returned, for predict

    # Data ------------------------------------------------------------------

    def prepare_data(self, ctx):
        from vp_sdk import formats

        out = os.path.join(_home(ctx), "dataset")
        if ctx.task == "classification":
            if ctx.dataset_format != "imagefolder":
                raise AdapterError(
                    f"ultralytics trains classification from an imagefolder dataset (train/<class>/, "
                    f"val/<class>/), not {ctx.dataset_format}"
                )
            try:
                splits, _ = formats.link_imagefolder(ctx.dataset_dir, out)
            except (ValueError, OSError) as e:
                raise AdapterError(f"dataset {ctx.dataset_dir}: {e}") from e
            self._data = {
                "data": out,
                "train": len(splits["train"]),
                "val": splits["val"],
                "labels": [],
                "kpt_shape": None,
            }
            return self._data
        if ctx.task not in ("detection", "segmentation", "pose", "obb"):
            raise AdapterError(
                f"the ultralytics adapter trains classification, detection, segmentation and pose, not {ctx.task!r}"
            )
        try:
            if ctx.dataset_format == "coco":
                if ctx.task not in ("detection",):
                    raise AdapterError(
                        f"the COCO conversion writes boxes only: {ctx.task} needs a yolo dataset "
                        "(data.yaml and its labels)"
                    )
                data = formats.coco_to_yolo(ctx.dataset_dir, out)
                import yaml

                with open(data) as f:
                    cfg = yaml.safe_load(f)
                images = {s: formats.image_files(os.path.join(cfg["path"], cfg[s])) for s in ("train", "val")}
            elif ctx.dataset_format == "yolo":
                data, images, _ = formats.link_yolo(ctx.dataset_dir, out)
                import yaml

                with open(data) as f:
                    cfg = yaml.safe_load(f)
            else:
                raise AdapterError(
                    f"the ultralytics adapter takes yolo (data.yaml) or coco datasets for {ctx.task}, "
                    f"not {ctx.dataset_format}"
                )
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise AdapterError(f"dataset {ctx.dataset_dir} ({ctx.dataset_format}): {e}") from e
        if not images["train"]:
            raise AdapterError(f"dataset {ctx.dataset_dir}: no training images")
        self._data = {
            "data": data,
            "train": len(images["train"]),
            "val": [(p, None) for p in images["val"]],
            "labels": [formats.yolo_label_path(p) for p in images["train"]],
            "kpt_shape": cfg.get("kpt_shape"),
        }
        return self._data

    # Model -----------------------------------------------------------------

    def _load(self, ctx, YOLO, home):
        """The model to train: ctx.weights, the released weights or the config."""
        hp = ctx.hyperparameters
        stem = _stem(ctx.model)
        if ctx.weights:
            path = ctx.weights
            name = os.path.basename(path)
            if not path.endswith(".pt"):  # ultralytics tells weights from exported models by the suffix
                path = os.path.join(home, "initial.pt")
                if os.path.lexists(path):
                    os.remove(path)
                os.symlink(os.path.abspath(ctx.weights), path)
            self._initial = {"source": "file", "file": name}
            try:
                return YOLO(path)
            except Exception as e:
                raise AdapterError(f"weights {name}: ultralytics cannot load them: {e}") from e
        if hp.pretrained:
            name = stem + ".pt"
            self._initial = {"source": "hub", "file": name}
            tmp = tempfile.mkdtemp(prefix="vp-ultralytics-")
            try:
                return YOLO(os.path.join(tmp, name))
            except Exception as e:
                raise WeightsUnavailable(f"pretrained weights {name} cannot be loaded: {e}") from e
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        name = ctx.model if ctx.model.endswith((".yaml", ".yml")) else stem + ".yaml"
        self._initial = {"source": "none", "file": name}
        try:
            return YOLO(name)
        except Exception as e:
            raise AdapterError(f"model {ctx.model}: ultralytics has no model config {name}: {e}") from e

    def _check(self, ctx, model, data):
        """Sets self._task; raises AdapterError when the model does not suit
        the job's task or the labels the model's task."""
        self._task = model.task
        serves = SERVES.get(model.task)
        if serves is None or (ctx.task != serves and not (ctx.task == "obb" and model.task == "obb")):
            raise AdapterError(
                f"model {ctx.model} is an ultralytics {model.task} model: it does not train the job's task "
                f"{ctx.task!r} (detect and obb train detection, segment segmentation, pose pose, classify "
                "classification)"
            )
        problem = _label_problem(model.task, data["labels"], data["kpt_shape"], lambda f: _rel(f, ctx.dataset_dir))
        if problem:
            raise AdapterError(f"dataset labels for {model.task}: {problem}")

    # Training --------------------------------------------------------------

    def _optimizer(self, hp):
        opt = hp.extra.get("optimizer", "SGD")
        if opt not in OPTIMIZERS:
            raise AdapterError(f"hyperparameters.extra.optimizer: want one of {', '.join(OPTIMIZERS)}, got {opt!r}")
        return opt

    def _workers(self, hp):
        return 0 if self._device == "cpu" else _extra_int(hp, "workers", 8)

    def _callbacks(self, ctx, model):
        task = self._task
        metrics = ctx.metrics
        logged = set()  # final_eval runs on_fit_epoch_end again for best.pt, after stripping last.pt

        def on_pretrain_routine_end(trainer):
            if trainer.resume:
                metrics.resume(trainer.start_epoch, trainer.start_epoch * len(trainer.train_loader))

        def on_fit_epoch_end(trainer):
            if trainer.epoch in logged:
                return
            logged.add(trainer.epoch)
            tloss = getattr(trainer, "tloss", None)
            groups = trainer.optimizer.param_groups
            metrics.log(
                trainer.epoch + 1,
                (trainer.epoch + 1) * len(trainer.train_loader),
                loss=float(tloss.sum()) if tloss is not None else None,
                lr=groups[1 if len(groups) > 1 else 0]["lr"],
                **metric_names(task, trainer.metrics or {}),
            )
            if trainer.last.exists():
                tmp = ctx.last_checkpoint + ".tmp"
                shutil.copyfile(trainer.last, tmp)
                os.replace(tmp, ctx.last_checkpoint)
            if trainer.validator is not None:
                # The final validation of best.pt warns of "an untrained model YAML" when the
                # run's model is a config; it validates the weights.
                trainer.validator.args.model = str(trainer.best)

        model.add_callback("on_pretrain_routine_end", on_pretrain_routine_end)
        model.add_callback("on_fit_epoch_end", on_fit_epoch_end)

    def train(self, ctx, data):
        home = _home(ctx)
        hub = ctx.hyperparameters.pretrained and not ctx.weights and not ctx.resume_checkpoint()
        if hub and not _reachable(*HUB):  # before the slow import: fail fast
            raise WeightsUnavailable(
                f"pretrained weights {_stem(ctx.model)}.pt: {HUB[0]} cannot be reached; import the weights "
                "or train from scratch (pretrained false)"
            )
        YOLO = ultralytics(home)
        import torch

        hp = ctx.hyperparameters
        self._device = 0 if torch.cuda.is_available() else "cpu"
        amp = hp.extra.get("amp", True)
        if not isinstance(amp, bool):
            raise AdapterError(f"hyperparameters.extra.amp: want true or false, got {amp!r}")
        args = {
            "data": data["data"],
            "epochs": hp.epochs,
            "batch": hp.batch_size,
            "imgsz": hp.image_size,
            "lr0": hp.learning_rate,
            "optimizer": self._optimizer(hp),
            "seed": hp.seed,
            "amp": amp,
            "device": self._device,
            "workers": self._workers(hp),
            "project": home,
            "name": "train",
            "exist_ok": True,
            "plots": False,
            "verbose": False,
        }
        resume = ctx.resume_checkpoint()
        if resume:
            return self._resume(ctx, data, YOLO, home, resume, args)
        model = self._load(ctx, YOLO, home)
        self._check(ctx, model, data)
        self._callbacks(ctx, model)
        if self._device != "cpu" and amp:
            _say("AMP on (ultralytics' AMP check is skipped: it downloads yolo11n.pt); extra.amp false turns it off")
        try:
            model.train(**args)
        except (FileNotFoundError, RuntimeError, ValueError, SyntaxError) as e:
            raise AdapterError(f"ultralytics training failed: {e}") from e
        return model

    def _resume(self, ctx, data, YOLO, home, resume, args):
        """Goes on from checkpoints/last.pt: ultralytics' resume with the
        job's epochs and this run's paths."""
        import torch

        hp = ctx.hyperparameters
        self._load_initial_note(ctx)
        try:
            ck = torch.load(resume, map_location="cpu", weights_only=False)
        except Exception as e:
            raise AdapterError(f"checkpoints/last.pt cannot be read: {e}") from e
        train_args = ck.get("train_args") if isinstance(ck, dict) else None
        done = int(ck.get("epoch", -1)) + 1 if isinstance(ck, dict) else 0
        if not isinstance(train_args, dict) or done < 1 or ck.get("optimizer") is None:
            raise AdapterError("checkpoints/last.pt is not an ultralytics training checkpoint (epoch, optimizer)")
        if done >= hp.epochs:
            # Trained to the end before the restart: evaluate and export it.
            metrics_step = done * math.ceil(data["train"] / max(hp.batch_size, 1))
            ctx.metrics.resume(done, metrics_step)
            _say(f"checkpoints/last.pt holds {done} epochs of {hp.epochs}: nothing left to train")
            model = YOLO(resume)
            self._check(ctx, model, data)
            self._finished_checkpoint = resume
            return model
        train_args.update(
            data=args["data"],
            epochs=hp.epochs,
            project=home,
            name="train",
            save_dir=os.path.join(home, "train"),
            exist_ok=True,
            workers=args["workers"],
        )
        ck["train_args"] = train_args
        work = os.path.join(home, "resume.pt")
        torch.save(ck, work)
        del ck
        try:
            model = YOLO(work)
            self._check(ctx, model, data)
            self._callbacks(ctx, model)
            model.train(resume=True, imgsz=args["imgsz"], batch=args["batch"], device=args["device"])
        except AdapterError:
            raise
        except (FileNotFoundError, RuntimeError, ValueError, SyntaxError, AssertionError) as e:
            raise AdapterError(f"ultralytics cannot resume from checkpoints/last.pt: {e}") from e
        finally:
            if os.path.exists(work):
                os.remove(work)
        return model

    def _load_initial_note(self, ctx):
        """initialWeights for a resumed run: what the first run started from."""
        hp = ctx.hyperparameters
        if ctx.weights:
            self._initial = {"source": "file", "file": os.path.basename(ctx.weights)}
        elif hp.pretrained:
            self._initial = {"source": "hub", "file": _stem(ctx.model) + ".pt"}
        else:
            name = ctx.model if ctx.model.endswith((".yaml", ".yml")) else _stem(ctx.model) + ".yaml"
            self._initial = {"source": "none", "file": name}

    # Evaluation, export, predictions ---------------------------------------

    def evaluate(self, ctx, model, data):
        hp = ctx.hyperparameters
        kw = {
            "data": data["data"],
            "imgsz": hp.image_size,
            "batch": hp.batch_size,
            "device": self._device,
            "workers": self._workers(hp),
            "project": _home(ctx),
            "name": "val",
            "exist_ok": True,
            "plots": False,
            "verbose": False,
        }
        trainer = getattr(model, "trainer", None)
        weights = str(trainer.best) if trainer is not None and trainer.best.exists() else self._finished_checkpoint
        if weights:
            kw["model"] = weights  # what is validated, rather than the config that warns of an untrained model
        if self._task == "classify":
            sums = {"loss": 0.0, "n": 0}
            res = model.val(validator=_classification_validator(sums), **kw)
            m = metric_names(self._task, res.results_dict)
            if sums["n"]:
                m["val_loss"] = sums["loss"] / sums["n"]
            return m
        return metric_names(self._task, model.val(**kw).results_dict)

    def export(self, ctx, model):
        wd = ctx.weights_dir
        trainer = getattr(model, "trainer", None)
        if trainer is not None:
            # Moved, not copied: the output folder is uploaded whole.
            for name, src in (("best.pt", trainer.best), ("last.pt", trainer.last)):
                if src.exists():
                    shutil.move(str(src), os.path.join(wd, name))
        elif self._finished_checkpoint:
            from ultralytics.utils.torch_utils import strip_optimizer

            best = os.path.join(_home(ctx), "train", "weights", "best.pt")
            if os.path.exists(best):
                shutil.move(best, os.path.join(wd, "best.pt"))
            if not os.path.exists(os.path.join(wd, "best.pt")):
                strip_optimizer(self._finished_checkpoint, os.path.join(wd, "best.pt"))
            strip_optimizer(self._finished_checkpoint, os.path.join(wd, "last.pt"))
        self.predict(ctx, model, self._data)

    def predict(self, ctx, model, data):
        """Writes predictions.json: the model's predictions on up to
        prediction_count validation images, spread over them."""
        hp = ctx.hyperparameters
        val = data["val"]
        chosen = [val[i] for i in spread(len(val), prediction_count(hp))]
        classes = [model.names[i] for i in sorted(model.names)]
        out = []
        if chosen:
            results = model.predict(
                [p for p, _ in chosen],
                stream=True,
                imgsz=hp.image_size,
                device=self._device,
                max_det=MAX_DETECTIONS,
                verbose=False,
                project=_home(ctx),
                name="predict",
                exist_ok=True,
            )
            for (path, truth), r in zip(chosen, results, strict=True):
                p = {"image": _rel(path, ctx.dataset_dir)}
                if truth is not None:
                    p["label"] = truth
                p.update(self._prediction(r, classes))
                out.append(p)
        about = {"classes": classes}
        if self._task == "obb":
            about["variant"] = "obb"
        ctx.write_predictions(out, **about)

    def _prediction(self, r, classes):
        """One result's fields (PROTOCOL.md, predictions.json)."""

        def px(v):
            return [round(float(x), 2) for x in v]

        if self._task == "classify":
            return {"top": top_labels(r.probs.data.float().tolist(), classes)}
        if self._task == "obb":
            o = r.obb
            return {
                "boxes": [
                    {"label": classes[int(c)], "score": round(float(s), 6), "polygon": px(q.flatten())}
                    for q, s, c in zip(o.xyxyxyxy.cpu(), o.conf.cpu(), o.cls.cpu(), strict=True)
                ]
            }
        b = r.boxes
        items = [
            {"label": classes[int(c)], "score": round(float(s), 6), "box": px(xy)}
            for xy, s, c in zip(b.xyxy.cpu(), b.conf.cpu(), b.cls.cpu(), strict=True)
        ]
        if self._task == "segment":
            outlines = r.masks.xy if r.masks is not None else []
            for item, poly in zip(items, outlines, strict=False):
                item["polygon"] = px(poly.flatten())
            return {"boxes": items}
        if self._task == "pose":
            kpts = r.keypoints.data.cpu() if r.keypoints is not None else []
            for item, k in zip(items, kpts, strict=False):
                # x, y in pixels and the keypoint's confidence (visibility), where the model gives one
                item["keypoints"] = [px(point[:2]) + [round(float(c), 4) for c in point[2:]] for point in k]
            return {"instances": items}
        return {"boxes": items}

    def model_card(self, ctx, model):
        import ultralytics as ul

        return {
            "classes": [model.names[i] for i in sorted(model.names)],
            "device": "cpu" if self._device == "cpu" else f"cuda:{self._device}",
            "initialWeights": self._initial,
            "ultralytics": {"version": ul.__version__, "task": self._task},
        }


def _classification_validator(sums):
    """ultralytics' classification validator that also sums the cross-entropy
    of the validation images into sums (loss, n): its val/loss outside
    training."""
    import torch.nn.functional as F
    from ultralytics.models.yolo.classify import ClassificationValidator

    class Validator(ClassificationValidator):
        def update_metrics(self, preds, batch):
            super().update_metrics(preds, batch)
            sums["loss"] += float(F.cross_entropy(preds.float(), batch["cls"], reduction="sum"))
            sums["n"] += len(batch["cls"])

    return Validator
