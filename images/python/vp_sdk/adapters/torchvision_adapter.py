"""torchvision adapter: image classification on an ImageFolder dataset.

The CPU reference adapter. Layout: <dataset>/train/<class>/*.png and
optionally <dataset>/val/<class>/*; without val/ a seeded fifth of train is
held out.
"""

import json
import os

from vp_sdk.sdk import Adapter, AdapterError, WeightsUnavailable


def _torch():
    try:
        import torch
        import torchvision
    except ImportError as e:  # depends on the image
        raise AdapterError(f"torch and torchvision are not installed in this image: {e}") from e
    return torch, torchvision


class TorchvisionAdapter(Adapter):
    framework = "torchvision"

    def __init__(self):
        self._classes: list[str] = []  # set by prepare_data

    def device(self):
        torch, _ = _torch()
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # -- data -------------------------------------------------------------
    def prepare_data(self, ctx):
        torch, torchvision = _torch()
        from torchvision import datasets, transforms

        if ctx.dataset_format != "imagefolder":
            raise AdapterError(f"{self.framework} adapter takes imagefolder datasets, not {ctx.dataset_format}")
        train_dir = os.path.join(ctx.dataset_dir, "train")
        if not os.path.isdir(train_dir):
            raise AdapterError(f"no train/ directory in {ctx.dataset_dir}")
        size = ctx.hyperparameters.image_size
        tf = transforms.Compose(
            [
                transforms.Resize((size, size)),
                transforms.ToTensor(),
                transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )
        train = datasets.ImageFolder(train_dir, transform=tf)
        val_dir = os.path.join(ctx.dataset_dir, "val")
        if os.path.isdir(val_dir):
            val = datasets.ImageFolder(val_dir, transform=tf)
            if val.classes != train.classes:
                raise AdapterError(f"val classes {val.classes} differ from train classes {train.classes}")
        else:
            g = torch.Generator().manual_seed(ctx.hyperparameters.seed)
            n_val = max(1, len(train) // 5)
            train, val = torch.utils.data.random_split(train, [len(train) - n_val, n_val], generator=g)
            train.classes = val.classes = train.dataset.classes
        classes = train.classes
        if len(classes) < 2:
            raise AdapterError(f"need at least two classes, found {classes}")
        # build_model (huggingface: the label names) and export (labels.json) use them
        self._classes = list(classes)
        bs = ctx.hyperparameters.batch_size
        g = torch.Generator().manual_seed(ctx.hyperparameters.seed)
        # Decoding images keeps a GPU waiting: on a GPU, load in worker
        # processes (extra.workers overrides; 0 loads in the main process).
        default_workers = min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0
        workers = int(ctx.hyperparameters.extra.get("workers", default_workers))
        kw = {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": torch.cuda.is_available()}
        return {
            "classes": classes,
            "train": torch.utils.data.DataLoader(train, batch_size=bs, shuffle=True, generator=g, **kw),
            "val": torch.utils.data.DataLoader(val, batch_size=bs, **kw),
        }

    # -- model ------------------------------------------------------------
    def build_model(self, ctx, num_classes):
        torch, torchvision = _torch()
        name = ctx.model
        if not hasattr(torchvision.models, name):
            raise AdapterError(f"torchvision has no model {name!r}")
        ctor = getattr(torchvision.models, name)
        if not ctx.hyperparameters.pretrained:
            return ctor(weights=None, num_classes=num_classes)
        try:
            model = ctor(weights="DEFAULT")
        except Exception as e:  # network, hub, missing weights
            raise WeightsUnavailable(f"pretrained weights for {name} cannot be loaded: {e}") from e
        return self._replace_head(model, num_classes)

    @staticmethod
    def _replace_head(model, num_classes):
        torch, _ = _torch()
        if hasattr(model, "fc") and isinstance(model.fc, torch.nn.Linear):
            model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
        elif hasattr(model, "classifier"):
            last = model.classifier[-1] if isinstance(model.classifier, torch.nn.Sequential) else model.classifier
            new = torch.nn.Linear(last.in_features, num_classes)
            if isinstance(model.classifier, torch.nn.Sequential):
                model.classifier[-1] = new
            else:
                model.classifier = new
        else:
            raise AdapterError("cannot find the classification head to replace")
        return model

    # -- train ------------------------------------------------------------
    def train(self, ctx, data):
        torch, _ = _torch()
        hp = ctx.hyperparameters
        torch.manual_seed(hp.seed)
        dev = self.device()
        model = self.build_model(ctx, len(data["classes"])).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=hp.learning_rate, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        start_epoch, step = 1, 0
        resume = ctx.resume_checkpoint()
        if resume:
            ck = torch.load(resume, map_location=dev)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            start_epoch, step = ck["epoch"] + 1, ck["step"]
            ctx.metrics.resume(ck["epoch"], step)
        for epoch in range(start_epoch, hp.epochs + 1):
            model.train()
            total, n = 0.0, 0
            for x, y in data["train"]:
                x, y = x.to(dev), y.to(dev)
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                step += 1
                total += loss.item() * len(y)
                n += len(y)
            val = self.evaluate(ctx, model, data)
            ctx.metrics.log(epoch, step, loss=total / max(n, 1), lr=opt.param_groups[0]["lr"], **val)
            self._checkpoint(ctx, model, opt, epoch, step)
        return model

    def _checkpoint(self, ctx, model, opt, epoch, step):
        torch, _ = _torch()
        tmp = ctx.last_checkpoint + ".tmp"
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "step": step}, tmp)
        os.replace(tmp, ctx.last_checkpoint)

    def evaluate(self, ctx, model, data):
        torch, _ = _torch()
        dev = self.device()
        model.eval()
        correct, n, total = 0, 0, 0.0
        loss_fn = torch.nn.CrossEntropyLoss()
        with torch.no_grad():
            for x, y in data["val"]:
                x, y = x.to(dev), y.to(dev)
                out = model(x)
                total += loss_fn(out, y).item() * len(y)
                correct += (out.argmax(1) == y).sum().item()
                n += len(y)
        return {"accuracy": correct / max(n, 1), "val_loss": total / max(n, 1)}

    def export(self, ctx, model):
        torch, _ = _torch()
        torch.save(model.state_dict(), os.path.join(ctx.weights_dir, "model.pt"))
        with open(os.path.join(ctx.weights_dir, "labels.json"), "w") as f:
            json.dump(self._classes, f)

    def model_card(self, ctx, model):
        return {"classes": self._classes, "device": str(next(model.parameters()).device)}
