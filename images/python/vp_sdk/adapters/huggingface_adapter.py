"""huggingface adapter: transformers models trained with its Trainer.

Classification here (ImageFolder data, the torchvision adapter's loading);
detection (hf_detection: DETR on COCO), semantic segmentation
(hf_segmentation: SegFormer on COCO polygons), captioning and pose by the
adapters in TASKS, which share TrainerAdapter: the Trainer loop with a
metric line, a checkpoint (model, optimizer and schedule) and a resume per
epoch, the model built by build(), the export with save_pretrained and
predictions.json.

The model is a hub id ("google/vit-base-patch16-224") when pretrained
weights are asked for, or a model type of transformers ("vit", "deit",
"detr", "segformer", ...) to train from scratch with no download: the model
type's default configuration (for classification at imageSize, where the
configuration has an image_size), weights drawn at random.

With ctx.weights (vp_sdk.run --weights, the imported weights): the folder
save_pretrained writes (config.json and model.safetensors), given as that
folder or packed as .tar.gz, .tgz, .tar or .zip (unpacked beside it), loads
with from_pretrained, whatever ctx.model says; a single .safetensors (or
PyTorch) file loads into the model built from scratch for the model type
ctx.model, the head kept out when sized for other classes.
"""

import contextlib
import inspect
import json
import math
import os
import shutil
import tarfile
import tempfile
import zipfile

from vp_sdk.adapters.timm_adapter import unreachable, weights_host
from vp_sdk.adapters.torchvision_adapter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TorchvisionAdapter,
    _say,
    _torch,
    head_names,
    prediction_count,
    read_state_dict,
)
from vp_sdk.sdk import AdapterError, WeightsUnavailable

_TARS = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")

# The image processor's configuration in a saved or hub model's folder.
PROCESSOR_FILE = "preprocessor_config.json"


def _safe_name(name):
    parts = name.replace("\\", "/").split("/")
    return not name.startswith("/") and ".." not in parts


def saved_model(path):
    """The folder of a saved model in path: path itself when a folder, an
    archive's content unpacked beside it (path + ".d"), or path when it is a
    single file."""
    if os.path.isdir(path):
        return path
    low = os.path.basename(path).lower()
    if not low.endswith(_TARS + (".zip",)):
        return path
    dest = path + ".d"
    if not os.path.isdir(dest):
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            if low.endswith(".zip"):
                with zipfile.ZipFile(path) as z:
                    bad = [n for n in z.namelist() if not _safe_name(n)]
                    if bad:
                        raise AdapterError(f"weights {os.path.basename(path)}: unsafe paths in the archive: {bad[:3]}")
                    z.extractall(tmp)
            else:
                with tarfile.open(path) as t:
                    members = t.getmembers()
                    bad = [m.name for m in members if not (m.isfile() or m.isdir()) or not _safe_name(m.name)]
                    if bad:
                        what = "links, devices or unsafe paths"
                        raise AdapterError(f"weights {os.path.basename(path)}: {what} in the archive: {bad[:3]}")
                    t.extractall(tmp, members=members)
        except (OSError, tarfile.TarError, zipfile.BadZipFile) as e:
            raise AdapterError(f"weights {os.path.basename(path)}: cannot unpack: {e}") from e
        os.replace(tmp, dest)
    if os.path.exists(os.path.join(dest, "config.json")):
        return dest
    subs = [d for d in os.listdir(dest) if os.path.isdir(os.path.join(dest, d))]
    if len(subs) == 1 and os.path.exists(os.path.join(dest, subs[0], "config.json")):
        return os.path.join(dest, subs[0])
    raise AdapterError(
        f"weights {os.path.basename(path)}: no config.json at the top of the archive or in its one folder "
        "(pack the folder save_pretrained writes)"
    )


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise AdapterError(f"transformers is not installed in this image: {e}") from e
    return transformers


class TrainerAdapter(TorchvisionAdapter):
    """What the huggingface adapters of every task share: the model built
    from ctx.weights, the hub or scratch (build), the Trainer loop with a
    metric line and a checkpoint per epoch (fit), and the export
    (save_pretrained, then predictions.json from predict).

    A task adapter implements prepare_data, train (build, then fit),
    evaluate and predict(ctx, model), which writes predictions.json
    (PROTOCOL.md) for validation images (prediction_count); it sets
    self._classes and self._preprocess, the model card's classes and
    preprocess.
    """

    framework = "huggingface"

    def __init__(self):
        super().__init__()
        self._data = None  # what prepare_data returned, for predict (set by train)
        self._hub = None  # what from_pretrained takes for the hub (hub_kwargs)

    def build(self, ctx, auto, classes, heads=None, configure=None):
        """The model of ctx for classes: from ctx.weights, else the hub's
        ctx.model with hyperparameters.pretrained, else the model type
        ctx.model from scratch (its default configuration; configure(cfg)
        adjusts it). auto: the transformers Auto class of the task. heads:
        the names of the modules that make the task's head, whose tensors a
        weights file may have for other classes (None: the classification
        head torchvision_adapter.head_names finds)."""
        torch, _ = _torch()
        tf = _transformers()
        labels = dict(enumerate(classes))
        kw = {"num_labels": len(classes), "id2label": labels, "label2id": {v: k for k, v in labels.items()}}
        # trained in float32, whatever the checkpoint's (from_pretrained's "auto")
        load = {"ignore_mismatched_sizes": True, "dtype": torch.float32}
        if ctx.weights:
            src = saved_model(ctx.weights)
            name = os.path.basename(ctx.weights)
            if os.path.isdir(src):
                try:
                    model = auto.from_pretrained(src, local_files_only=True, **load, **kw)
                except Exception as e:
                    raise AdapterError(f"weights {name}: transformers cannot load the saved model: {e}") from e
                self._initial = {"source": "file", "file": name}
                return model
            return self._from_state_dict(ctx, auto, self._config(ctx, tf, kw, configure), src, heads, load)
        if ctx.hyperparameters.pretrained:
            hub = self.hub_kwargs(ctx)
            try:
                return auto.from_pretrained(ctx.model, **hub, **load, **kw)
            except Exception as e:
                raise WeightsUnavailable(f"pretrained weights for {ctx.model} cannot be loaded: {e}") from e
        cfg = self._config(ctx, tf, kw, configure)
        try:
            return auto.from_config(cfg)
        except ValueError as e:
            raise AdapterError(f"transformers' model type {ctx.model!r} does not serve this task: {e}") from e

    def hub_kwargs(self, ctx):
        """What from_pretrained takes to load the hub's ctx.model: nothing
        when the hub answers (or ctx.model is a folder); local_files_only
        when it does not and the model is in the local hub cache;
        WeightsUnavailable at once, without the download's retries, when
        neither."""
        if os.path.isdir(ctx.model):
            return {}
        if self._hub is not None:
            return self._hub
        try:
            import huggingface_hub
            from huggingface_hub import constants
        except ImportError:
            return {}
        try:
            cached = isinstance(huggingface_hub.try_to_load_from_cache(ctx.model, "config.json"), str)
        except Exception:  # not a hub id
            cached = False
        if constants.HF_HUB_OFFLINE:  # the environment says: no network at all
            why = "HF_HUB_OFFLINE is set"
        else:
            host = weights_host(ctx.model, "", constants.ENDPOINT)
            why = unreachable(*host) if host else ""
        if not why:
            kw = {}
        elif cached:
            _say(f"pretrained weights for {ctx.model}: {why}; loading them from the local hub cache")
            kw = {"local_files_only": True}
        else:
            raise WeightsUnavailable(
                f"pretrained weights for {ctx.model} cannot be downloaded: {why}. "
                "Import them into the platform to start from them, or train without pretrained"
            )
        self._hub = kw
        return kw

    @staticmethod
    def _config(ctx, tf, kw, configure):
        """The default configuration of the model type ctx.model."""
        try:
            cfg = tf.AutoConfig.for_model(ctx.model, **kw)
        except ValueError as e:
            raise AdapterError(
                f"transformers has no model type {ctx.model!r} (from scratch, give a model type; "
                f"with pretrained: true, a hub id): {e}"
            ) from e
        if configure:
            configure(cfg)
        if getattr(cfg, "architectures", None) is None:
            # the Auto classes iterate it to choose among a model type's
            # classes (DeiT has two for classification): [] is the first
            cfg.architectures = []
        return cfg

    def _from_state_dict(self, ctx, auto, cfg, path, heads, load):
        """The model of cfg with the state dict in path, loaded by
        from_pretrained (which takes the tensor names of the model's
        state_dict and those save_pretrained writes, where they differ).
        The head's tensors sized for other classes are left as drawn; any
        other tensor missing, extra or of another shape is an AdapterError
        naming it."""
        name = os.path.basename(path)
        sd = read_state_dict(path)
        try:
            from safetensors.torch import save_file
        except ImportError as e:
            raise AdapterError(f"weights {name}: safetensors is not installed in this image: {e}") from e
        with tempfile.TemporaryDirectory() as d:
            cfg.save_pretrained(d)
            save_file({k: v.detach().clone().contiguous() for k, v in sd.items()}, os.path.join(d, "model.safetensors"))
            try:
                model, info = auto.from_pretrained(d, local_files_only=True, output_loading_info=True, **load)
            except Exception as e:
                raise AdapterError(f"weights {name}: transformers cannot load them into {ctx.model}: {e}") from e
        heads = head_names(model) if heads is None else heads

        def is_head(k):
            return any(k == h or k.startswith(h + ".") for h in heads)

        problems = [f"{k} is not in the model" for k in info.get("unexpected_keys", [])]
        problems += [
            f"{k} has shape {list(a)}, the model's {list(b)}"
            for k, a, b in info.get("mismatched_keys", [])
            if not is_head(k)
        ]
        problems += [
            f"{k} is missing from the file"
            for k in info.get("missing_keys", [])
            if not is_head(k) and not k.endswith("num_batches_tracked")
        ]
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise AdapterError(f"weights {name} do not fit transformers' {ctx.model}: {'; '.join(problems[:5])}{more}")
        skipped = [k for k, _, _ in info.get("mismatched_keys", [])]
        loaded = len(sd) - len(skipped) - len(info.get("unexpected_keys", []))
        msg = f"weights {name}: loaded {loaded} tensors into transformers' {ctx.model}"
        if skipped:
            msg += f"; kept out of the load (the head, sized for other classes): {', '.join(skipped)}"
        _say(msg)
        self._initial = {"source": "file", "file": name, "loaded": loaded, "skipped": skipped}
        return model

    def workers(self, ctx):
        """Data loader processes: on a GPU as many as the CPUs (at most 8),
        else none; extra.workers overrides."""
        torch, _ = _torch()
        default = min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0
        return int(ctx.hyperparameters.extra.get("workers", default))

    def fit(self, ctx, model, train_set, collate, data):
        """Trains model on train_set (items batched by collate into the
        model's inputs, labels included) with transformers' Trainer: AdamW at
        hyperparameters.learningRate, decaying linearly to 0 over all the
        epochs. After every epoch: self.evaluate(ctx, model, data), a metric
        line and ctx.last_checkpoint (model, optimizer, schedule, epoch,
        step); a run that finds that checkpoint goes on from it."""
        torch, _ = _torch()
        tf = _transformers()
        hp = ctx.hyperparameters
        model.to(self.device())
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=hp.learning_rate, weight_decay=0.0)
        # A last batch of one image fails BatchNorm in training where the
        # feature map is 1x1: left out (a different image each epoch), as
        # the torchvision adapter does.
        lone = len(train_set) > hp.batch_size and len(train_set) % hp.batch_size == 1
        per_epoch = max(1, len(train_set) // hp.batch_size if lone else math.ceil(len(train_set) / hp.batch_size))
        sched = tf.get_linear_schedule_with_warmup(opt, 0, per_epoch * hp.epochs)
        done, done_steps = 0, 0
        resume = ctx.resume_checkpoint()
        if resume:
            try:
                ck = torch.load(resume, map_location="cpu", weights_only=True)
                model.load_state_dict(ck["model"])
                if "optimizer" in ck:
                    opt.load_state_dict(ck["optimizer"])
                    sched.load_state_dict(ck["scheduler"])
                    # the schedule's rate at its step, for these epochs
                    for g, base, f in zip(opt.param_groups, sched.base_lrs, sched.lr_lambdas, strict=True):
                        g["lr"] = base * f(sched.last_epoch)
                done, done_steps = int(ck["epoch"]), int(ck["step"])
            except (OSError, RuntimeError, KeyError, ValueError) as e:
                raise AdapterError(f"checkpoint {resume}: cannot resume from it (another model or data?): {e}") from e
            ctx.metrics.resume(done, done_steps)
        remaining = hp.epochs - done
        if remaining <= 0:
            return model
        adapter = self

        class Report(tf.TrainerCallback):
            seen = 0  # log_history entries of the epochs reported

            def on_epoch_end(self, args, state, control, **kw):
                logs = state.log_history[self.seen :]
                self.seen = len(state.log_history)
                losses = [h["loss"] for h in logs if "loss" in h]
                epoch = done + int(round(state.epoch or 0))
                # the Trainer counts steps from 0 again after a resume
                step = done_steps + state.global_step
                val = adapter.evaluate(ctx, model, data)
                ctx.metrics.log(
                    epoch,
                    step,
                    loss=sum(losses) / len(losses) if losses else None,
                    lr=opt.param_groups[0]["lr"],
                    **val,
                )
                ck = {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": epoch,
                    "step": step,
                }
                tmp = ctx.last_checkpoint + ".tmp"
                torch.save(ck, tmp)
                os.replace(tmp, ctx.last_checkpoint)
                model.train()

        args = tf.TrainingArguments(
            output_dir=os.path.join(ctx.output_dir, "hf"),
            num_train_epochs=remaining,
            per_device_train_batch_size=hp.batch_size,
            learning_rate=hp.learning_rate,
            seed=hp.seed,
            logging_strategy="steps",
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            dataloader_num_workers=self.workers(ctx),
            dataloader_drop_last=lone,
            remove_unused_columns=False,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = tf.Trainer(
            model=model,
            args=args,
            train_dataset=train_set,
            data_collator=collate,
            optimizers=(opt, sched),
            callbacks=[Report()],
        )
        # the metric lines say what the per-step log lines would
        trainer.remove_callback(tf.PrinterCallback)
        trainer.train()
        with contextlib.suppress(OSError):
            os.rmdir(args.output_dir)  # the Trainer's, left empty
        return model

    def train(self, ctx, data):
        """build_model(ctx), then fit on data["train_set"] batched by
        self.collate() (the detection and segmentation adapters'; the
        others train their own way)."""
        tf = _transformers()
        tf.set_seed(ctx.hyperparameters.seed)
        self._data = data
        model = self.build_model(ctx)
        self.note_initial(ctx, model)
        return self.fit(ctx, model, data["train_set"], self.collate(), data)

    def export(self, ctx, model):
        model.save_pretrained(ctx.weights_dir, safe_serialization=True)
        self.predict(ctx, model)


class ValidatingAdapter(TrainerAdapter):
    """A TrainerAdapter whose one validation pass, _validate(ctx, model,
    data) -> (metrics, predictions), serves both evaluate (after every
    epoch; once trained, the last epoch's holds) and predict (the captioning
    and pose adapters: generating captions or decoding heatmaps is the
    dear part of both). A subclass sets self._trained when train is done
    and may add top-level facts to predictions.json (predictions_about)."""

    def __init__(self):
        super().__init__()
        self._last = None  # (metrics, predictions) of the latest validation
        self._trained = False  # train() is done: the latest validation is the trained model's

    def evaluate(self, ctx, model, data):
        if not (self._trained and self._last is not None):
            model.to(self.device())
            self._last = self._validate(ctx, model, data)
        return dict(self._last[0])

    def predict(self, ctx, model):
        """Writes predictions.json: the validation predictions of the last
        evaluation, made now if none was."""
        if self._last is None:
            self.evaluate(ctx, model, self._data)
        ctx.write_predictions(self._last[1][: prediction_count(ctx.hyperparameters)], **self.predictions_about())

    def predictions_about(self):
        return {}


class _Wrap:
    """Turns (image, label) items into the dicts transformers models take."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return {"pixel_values": x, "labels": y}


class _Collate:
    """Batches _Wrap's items; interpolate: the model's position embeddings
    are for another image size (interpolate_pos_encoding)."""

    def __init__(self, interpolate):
        self.interpolate = interpolate

    def __call__(self, items):
        torch, _ = _torch()
        batch = {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),
            "labels": torch.tensor([int(it["labels"]) for it in items]),
        }
        if self.interpolate:
            batch["interpolate_pos_encoding"] = True
        return batch


# The adapters of the tasks other than classification: module:class, each
# an Adapter (vp_sdk.sdk) that HuggingFaceAdapter.run hands the run to.
TASKS = {
    "detection": "vp_sdk.adapters.hf_detection:DetectionAdapter",
    "segmentation": "vp_sdk.adapters.hf_segmentation:SegmentationAdapter",
    "captioning": "vp_sdk.adapters.hf_captioning:CaptioningAdapter",
    "pose": "vp_sdk.adapters.hf_pose:PoseAdapter",
}


class HuggingFaceAdapter(TrainerAdapter):
    """Image classification (AutoModelForImageClassification); the other
    tasks by their adapters in TASKS."""

    framework = "huggingface"

    def __init__(self):
        super().__init__()
        self._interpolate = False

    def run(self, ctx):
        """Classification here; the other tasks by their own adapter (TASKS)."""
        if ctx.task in ("", "classification"):
            return super().run(ctx)
        if ctx.task not in TASKS:
            raise AdapterError(
                f"the huggingface adapter trains {', '.join(['classification', *TASKS])}, not {ctx.task!r}"
            )
        import importlib

        mod, cls = TASKS[ctx.task].split(":")
        other = getattr(importlib.import_module(mod), cls)()
        other.framework = self.framework
        return other.run(ctx)

    def build_model(self, ctx, num_classes):
        tf = _transformers()

        def at_image_size(cfg):
            if hasattr(cfg, "image_size"):
                cfg.image_size = ctx.hyperparameters.image_size

        return self.build(ctx, tf.AutoModelForImageClassification, self._classes[:num_classes], None, at_image_size)

    def train(self, ctx, data):
        tf = _transformers()
        tf.set_seed(ctx.hyperparameters.seed)
        self._data = data
        model = self.build_model(ctx, len(data["classes"]))
        self.note_initial(ctx, model)
        self._interpolate = self._needs_interpolation(ctx, model)
        return self.fit(ctx, model, _Wrap(data["train"].dataset), _Collate(self._interpolate), data)

    @staticmethod
    def _needs_interpolation(ctx, model):
        """Whether the model's position embeddings are for another image
        size than the data's (a saved or hub model made for another size)."""
        size = getattr(model.config, "image_size", None)
        if size is None:
            return False
        want = ctx.hyperparameters.image_size
        if (tuple(size) if isinstance(size, (list, tuple)) else (size, size)) == (want, want):
            return False
        if "interpolate_pos_encoding" in inspect.signature(model.forward).parameters:
            _say(f"the model is made for {size} px images, the data is {want} px: interpolating position embeddings")
            return True
        return False

    def logits(self, model, x):
        kw = {"interpolate_pos_encoding": True} if self._interpolate else {}
        return model(pixel_values=x, **kw).logits

    def normalization(self, ctx):
        """The means and deviations of the model's image processor
        (preprocessor_config.json: in the weights' folder, or the hub's with
        pretrained); ImageNet's when there is none (from scratch)."""
        path = None
        if ctx.weights:
            src = saved_model(ctx.weights)
            if os.path.isdir(src) and os.path.isfile(os.path.join(src, PROCESSOR_FILE)):
                path = os.path.join(src, PROCESSOR_FILE)
        elif ctx.hyperparameters.pretrained and os.path.isdir(ctx.model):
            path = os.path.join(ctx.model, PROCESSOR_FILE)
        elif ctx.hyperparameters.pretrained:
            try:
                from huggingface_hub import hf_hub_download

                path = hf_hub_download(ctx.model, PROCESSOR_FILE, **self.hub_kwargs(ctx))
            except WeightsUnavailable:
                raise
            except Exception as e:  # no such file: the defaults
                _say(f"{ctx.model} has no {PROCESSOR_FILE} ({e}): ImageNet's means and deviations")
        if path and os.path.isfile(path):
            try:
                with open(path) as f:
                    proc = json.load(f)
                mean, std = proc["image_mean"], proc["image_std"]
                if len(mean) == 3 and len(std) == 3:
                    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
            except (OSError, ValueError, KeyError, TypeError) as e:
                _say(f"{PROCESSOR_FILE}: no image_mean and image_std of 3 ({e}): ImageNet's")
        return IMAGENET_MEAN, IMAGENET_STD
