"""huggingface adapter: image classification with transformers' Trainer.

The model is a hub id ("google/vit-base-patch16-224") when pretrained
weights are asked for, or a model type of transformers ("vit", "convnext",
"resnet", "swin", "deit", "beit") to train from scratch with no download.
The data is the torchvision adapter's ImageFolder loading.

With ctx.weights (vp_sdk.run --weights, the imported weights): the folder
save_pretrained writes (config.json and model.safetensors), given as that
folder or packed as .tar.gz, .tgz, .tar or .zip (unpacked beside it), loads
with from_pretrained, whatever ctx.model says; a single .safetensors (or
PyTorch) file loads into the model built from scratch for the model type
ctx.model, the head kept out when sized for other classes. Untested here:
transformers is not installed where the tests run.
"""

import os
import shutil
import tarfile
import zipfile

from vp_sdk.adapters.torchvision_adapter import TorchvisionAdapter, _torch, load_weights
from vp_sdk.sdk import AdapterError, WeightsUnavailable

_TARS = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")


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


class _Wrap:
    """Turns (image, label) batches into the dicts transformers models take."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return {"pixel_values": x, "labels": y}


class HuggingFaceAdapter(TorchvisionAdapter):
    framework = "huggingface"

    def build_model(self, ctx, num_classes):
        tf = _transformers()
        hp = ctx.hyperparameters
        labels = {i: c for i, c in enumerate(self._classes)}
        if ctx.weights:
            src = saved_model(ctx.weights)
            name = os.path.basename(ctx.weights)
            if os.path.isdir(src):
                try:
                    model = tf.AutoModelForImageClassification.from_pretrained(
                        src,
                        num_labels=num_classes,
                        id2label=labels,
                        label2id={v: k for k, v in labels.items()},
                        ignore_mismatched_sizes=True,
                        local_files_only=True,
                    )
                except Exception as e:
                    raise AdapterError(f"weights {name}: transformers cannot load the saved model: {e}") from e
                self._initial = {"source": "file", "file": name}
                return model
            model = self._scratch(ctx, tf, num_classes, labels)
            self._initial = load_weights(model, src, f"transformers' {ctx.model}")
            return model
        if hp.pretrained:
            try:
                return tf.AutoModelForImageClassification.from_pretrained(
                    ctx.model,
                    num_labels=num_classes,
                    id2label=labels,
                    label2id={v: k for k, v in labels.items()},
                    ignore_mismatched_sizes=True,
                )
            except Exception as e:
                raise WeightsUnavailable(f"pretrained weights for {ctx.model} cannot be loaded: {e}") from e
        return self._scratch(ctx, tf, num_classes, labels)

    def _scratch(self, ctx, tf, num_classes, labels):
        """The model type ctx.model, without weights."""
        hp = ctx.hyperparameters
        try:
            cfg = tf.AutoConfig.for_model(
                ctx.model, num_labels=num_classes, id2label=labels, label2id={v: k for k, v in labels.items()}
            )
        except ValueError as e:
            raise AdapterError(
                f"transformers has no model type {ctx.model!r} (from scratch, give a model type; "
                f"with pretrained: true, a hub id): {e}"
            ) from e
        if hasattr(cfg, "image_size"):
            cfg.image_size = hp.image_size
        return tf.AutoModelForImageClassification.from_config(cfg)

    def train(self, ctx, data):
        torch, _ = _torch()
        tf = _transformers()
        hp = ctx.hyperparameters
        model = self.build_model(ctx, len(data["classes"]))
        self.note_initial(ctx, model)
        resume = ctx.resume_checkpoint()
        done, done_steps = 0, 0
        if resume:
            ck = torch.load(resume, map_location="cpu")
            model.load_state_dict(ck["model"])
            done, done_steps = ck["epoch"], ck["step"]
            ctx.metrics.resume(done, done_steps)
        adapter, metrics = self, ctx.metrics

        class Report(tf.TrainerCallback):
            def on_epoch_end(self, args, state, control, model=None, **kw):
                epoch = done + int(round(state.epoch or 0))
                losses = [h["loss"] for h in state.log_history if "loss" in h]
                val = adapter.evaluate(ctx, model, data)
                # the Trainer counts steps from 0 again after a resume
                step = done_steps + state.global_step
                metrics.log(
                    epoch,
                    step,
                    loss=losses[-1] if losses else None,
                    lr=(state.log_history[-1].get("learning_rate") if state.log_history else hp.learning_rate),
                    **val,
                )
                tmp = ctx.last_checkpoint + ".tmp"
                torch.save({"model": model.state_dict(), "epoch": epoch, "step": step}, tmp)
                os.replace(tmp, ctx.last_checkpoint)
                model.train()

        remaining = hp.epochs - done
        if remaining <= 0:
            return model
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
            dataloader_num_workers=int(hp.extra.get("workers", 0)),
            remove_unused_columns=False,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = tf.Trainer(model=model, args=args, train_dataset=_Wrap(data["train"].dataset), callbacks=[Report()])
        trainer.train()
        return model

    def evaluate(self, ctx, model, data):
        torch, _ = _torch()
        dev = next(model.parameters()).device
        model.eval()
        correct, n, total = 0, 0, 0.0
        with torch.no_grad():
            for x, y in data["val"]:
                x, y = x.to(dev), y.to(dev)
                out = model(pixel_values=x, labels=y)
                total += out.loss.item() * len(y)
                correct += (out.logits.argmax(1) == y).sum().item()
                n += len(y)
        return {"accuracy": correct / max(n, 1), "val_loss": total / max(n, 1)}

    def export(self, ctx, model):
        model.save_pretrained(ctx.weights_dir, safe_serialization=True)
