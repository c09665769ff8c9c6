"""torchvision adapter: image classification on an ImageFolder dataset.

The CPU reference adapter. Layout: <dataset>/train/<class>/*.png and
optionally <dataset>/val/<class>/*; without val/ a seeded fifth of train is
held out.

With ctx.weights (vp_sdk.run --weights), the model is built without weights
and loads that state dict; the classification head's tensors are kept out
of the load when they are sized for other classes (said on stderr and in
the model card's initialWeights). load_weights and fingerprint serve the
timm and huggingface adapters too.

Metrics (images/python/PROTOCOL.md): accuracy (top-1), top5 and val_loss on
the validation images, with loss and lr in each epoch's metric line. After
training, predictions.json holds the model's top five labels for up to 16
validation images (hyperparameters.extra.predictions), spread over the
classes.
"""

import json
import os
import sys

from vp_sdk.sdk import Adapter, AdapterError, WeightsUnavailable

# ImageNet's channel means and deviations, the inputs' normalisation unless
# the model's weights say otherwise (timm's pretrained_cfg).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The validation images predictions.json covers unless
# hyperparameters.extra.predictions says otherwise.
DEFAULT_PREDICTIONS = 16

# The labels a prediction lists, and the k of the top5 metric.
TOP_K = 5


def _torch():
    try:
        import torch
        import torchvision
    except ImportError as e:  # depends on the image
        raise AdapterError(f"torch and torchvision are not installed in this image: {e}") from e
    return torch, torchvision


def _say(msg):
    print(f"vp_sdk: {msg}", file=sys.stderr, flush=True)


def read_state_dict(path):
    """The state dict in a weights file: a PyTorch file (a state dict, or a
    checkpoint holding one under "model", "state_dict" or
    "model_state_dict") or a .safetensors file."""
    torch, _ = _torch()
    name = os.path.basename(path)
    if path.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise AdapterError(f"weights {name}: safetensors is not installed in this image: {e}") from e
        try:
            obj = load_file(path)
        except Exception as e:
            raise AdapterError(f"weights {name}: not a safetensors file: {e}") from e
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise AdapterError(f"weights {name}: not a PyTorch state dict: {e}") from e
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise AdapterError(f"weights {name}: not a state dict (a mapping of tensor names to tensors)")
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def head_names(model):
    """The names of the modules that make the classification head."""
    torch, _ = _torch()
    get = getattr(model, "get_classifier", None)  # timm
    if callable(get):
        head = get()
        for n, m in model.named_modules():
            if n and m is head:
                return [n]
    if isinstance(getattr(model, "fc", None), torch.nn.Linear):
        return ["fc"]
    cls = getattr(model, "classifier", None)
    if isinstance(cls, torch.nn.Sequential):
        return [f"classifier.{len(cls) - 1}"]
    if cls is not None:
        return ["classifier"]
    if getattr(model, "head", None) is not None:
        return ["head"]
    return []


def load_weights(model, path, what, adapt=None):
    """Loads the state dict in path into model (built for the dataset's
    classes) and returns what initialWeights says of it.

    Every tensor of the model must come from the file, with its shape,
    except the classification head's: those of the file that do not fit (a
    head for other classes) are kept out of the load and left as the model
    built them. A tensor missing, extra or of another shape elsewhere is an
    AdapterError naming it. adapt, when given, turns the file's state dict
    into the model's first (timm: resizing a ViT's position embeddings for
    another input size).
    """
    sd = read_state_dict(path)
    if adapt is not None:
        sd = adapt(sd)
    own = model.state_dict()
    heads = head_names(model)

    def is_head(k):
        return any(k == h or k.startswith(h + ".") for h in heads)

    use, skipped, problems = {}, [], []
    for k, v in sd.items():
        if k in own and tuple(own[k].shape) == tuple(v.shape):
            use[k] = v
        elif is_head(k):
            skipped.append(k)
        elif k not in own:
            problems.append(f"{k} is not in the model")
        else:
            problems.append(f"{k} has shape {list(v.shape)}, the model's {list(own[k].shape)}")
    for k in own:
        # BatchNorm's step counter is not a weight: older files lack it
        if k not in sd and not is_head(k) and not k.endswith("num_batches_tracked"):
            problems.append(f"{k} is missing from the file")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise AdapterError(f"weights {os.path.basename(path)} do not fit {what}: {'; '.join(problems[:5])}{more}")
    model.load_state_dict(use, strict=False)
    msg = f"weights {os.path.basename(path)}: loaded {len(use)} tensors into {what}"
    if skipped:
        msg += f"; kept out of the load (the classification head, sized for other classes): {', '.join(skipped)}"
    _say(msg)
    return {"source": "file", "file": os.path.basename(path), "loaded": len(use), "skipped": skipped}


def spread(n, k):
    """k indices of range(n) spread evenly over it (all of them when k >= n).

    ImageFolder sorts its images by class, so evenly spread indices take
    images of every class.
    """
    if k >= n:
        return list(range(n))
    return [i * n // k for i in range(k)]


def top_labels(scores, classes, k=TOP_K):
    """The k best {label, score} of scores (one per class), best first."""
    best = sorted(range(len(scores)), key=lambda i: -scores[i])[:k]
    return [{"label": classes[i], "score": round(float(scores[i]), 6)} for i in best]


def prediction_count(hp):
    """How many validation images predictions.json covers:
    hyperparameters.extra.predictions, else DEFAULT_PREDICTIONS."""
    n = hp.extra.get("predictions", DEFAULT_PREDICTIONS)
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise AdapterError(f"hyperparameters.extra.predictions: want a whole number of images (0 or more), got {n!r}")
    return n


def image_samples(ds):
    """The (path, class index) of each item of ds: an ImageFolder or a
    Subset of one (random_split)."""
    if hasattr(ds, "samples"):
        return list(ds.samples)
    inner = image_samples(ds.dataset)
    return [inner[i] for i in ds.indices]


def fingerprint(model):
    """The model's first floating-point tensor: its name, first value and mean."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and t.numel() > 0:
            flat = t.detach().flatten().double()
            return {"tensor": name, "first": float(flat[0]), "mean": float(flat.mean())}
    return {}


class TorchvisionAdapter(Adapter):
    framework = "torchvision"

    def __init__(self):
        self._classes: list[str] = []  # set by prepare_data
        self._val = None  # the validation dataset, set by prepare_data
        self._predictions = DEFAULT_PREDICTIONS  # predictions.json's images, set by prepare_data
        self._preprocess: dict = {}  # input size and normalisation, set by prepare_data
        self._initial: dict = {}  # the model card's initialWeights, set by train

    def device(self):
        torch, _ = _torch()
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # -- data -------------------------------------------------------------
    def normalization(self, ctx):
        """The inputs' channel means and standard deviations."""
        return IMAGENET_MEAN, IMAGENET_STD

    def prepare_data(self, ctx):
        torch, torchvision = _torch()
        from torchvision import datasets, transforms

        if ctx.dataset_format != "imagefolder":
            raise AdapterError(f"{self.framework} adapter takes imagefolder datasets, not {ctx.dataset_format}")
        train_dir = os.path.join(ctx.dataset_dir, "train")
        if not os.path.isdir(train_dir):
            raise AdapterError(f"no train/ directory in {ctx.dataset_dir}")
        size = ctx.hyperparameters.image_size
        mean, std = self.normalization(ctx)
        self._preprocess = {"size": size, "mean": list(mean), "std": list(std)}
        tf = transforms.Compose(
            [
                transforms.Resize((size, size)),
                transforms.ToTensor(),
                transforms.Normalize(list(mean), list(std)),
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
        self._val = val  # predictions.json's images
        self._predictions = prediction_count(ctx.hyperparameters)  # checked before training
        bs = ctx.hyperparameters.batch_size
        g = torch.Generator().manual_seed(ctx.hyperparameters.seed)
        # Decoding images keeps a GPU waiting: on a GPU, load in worker
        # processes (extra.workers overrides; 0 loads in the main process).
        default_workers = min(8, os.cpu_count() or 1) if torch.cuda.is_available() else 0
        workers = int(ctx.hyperparameters.extra.get("workers", default_workers))
        kw = {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": torch.cuda.is_available()}
        # A last batch of one image fails BatchNorm in training (one value
        # per channel where the feature map is 1x1): it is left out, a
        # different image each epoch as the order is shuffled.
        lone = len(train) > bs and len(train) % bs == 1
        return {
            "classes": classes,
            "train": torch.utils.data.DataLoader(train, batch_size=bs, shuffle=True, generator=g, drop_last=lone, **kw),
            "val": torch.utils.data.DataLoader(val, batch_size=bs, **kw),
        }

    # -- model ------------------------------------------------------------
    def build_model(self, ctx, num_classes):
        torch, torchvision = _torch()
        name = ctx.model
        if not hasattr(torchvision.models, name):
            raise AdapterError(f"torchvision has no model {name!r}")
        ctor = getattr(torchvision.models, name)
        if ctx.weights:
            model = ctor(weights=None, num_classes=num_classes)
            self._initial = load_weights(model, ctx.weights, f"torchvision's {name}")
            return model
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
        self.note_initial(ctx, model)
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
                loss = loss_fn(self.logits(model, x), y)
                loss.backward()
                opt.step()
                step += 1
                total += loss.item() * len(y)
                n += len(y)
            val = self.evaluate(ctx, model, data)
            # the checkpoint first: an epoch's metric line says it is kept
            self._checkpoint(ctx, model, opt, epoch, step)
            ctx.metrics.log(epoch, step, loss=total / max(n, 1), lr=opt.param_groups[0]["lr"], **val)
        return model

    def note_initial(self, ctx, model):
        """Keeps (for the model card) and says what the model starts from."""
        if not self._initial:
            self._initial = {"source": "hub" if ctx.hyperparameters.pretrained else "none"}
        self._initial.update(fingerprint(model))
        i = self._initial
        if "tensor" in i:
            src = {"file": f"weights {i.get('file')}", "hub": "the model hub's weights"}.get(i["source"], "scratch")
            _say(f"starting from {src}: {i['tensor']}[0] = {i['first']:.6g}, mean {i['mean']:.6g}")

    def _checkpoint(self, ctx, model, opt, epoch, step):
        torch, _ = _torch()
        tmp = ctx.last_checkpoint + ".tmp"
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "step": step}, tmp)
        os.replace(tmp, ctx.last_checkpoint)

    def logits(self, model, x):
        """The model's class scores (before softmax) for the batch x."""
        return model(x)

    def evaluate(self, ctx, model, data):
        """accuracy (top-1), top5 and val_loss on the validation images."""
        torch, _ = _torch()
        dev = self.device()
        model.eval()
        correct, correct5, n, total = 0, 0, 0, 0.0
        loss_fn = torch.nn.CrossEntropyLoss()
        with torch.no_grad():
            for x, y in data["val"]:
                x, y = x.to(dev), y.to(dev)
                out = self.logits(model, x)
                total += loss_fn(out, y).item() * len(y)
                best = out.topk(min(TOP_K, out.shape[1]), dim=1).indices
                correct += (best[:, 0] == y).sum().item()
                correct5 += (best == y[:, None]).any(dim=1).sum().item()
                n += len(y)
        n = max(n, 1)
        return {"accuracy": correct / n, "top5": correct5 / n, "val_loss": total / n}

    def predict(self, ctx, model):
        """Writes predictions.json: the top labels of the trained model for
        validation images, spread over the classes (prediction_count)."""
        torch, _ = _torch()
        ds = self._val
        samples = image_samples(ds)
        chosen = spread(len(samples), self._predictions)
        dev = next(model.parameters()).device
        bs = max(1, ctx.hyperparameters.batch_size)
        model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(chosen), bs):
                batch = chosen[start : start + bs]
                x = torch.stack([ds[i][0] for i in batch]).to(dev)
                probs = self.logits(model, x).float().softmax(dim=1).cpu().tolist()
                for i, p in zip(batch, probs, strict=True):
                    path, y = samples[i]
                    out.append(
                        {
                            "image": os.path.relpath(path, ctx.dataset_dir).replace(os.sep, "/"),
                            "label": self._classes[y],
                            "top": top_labels(p, self._classes),
                        }
                    )
        ctx.write_predictions(out, classes=self._classes)

    def export(self, ctx, model):
        torch, _ = _torch()
        torch.save(model.state_dict(), os.path.join(ctx.weights_dir, "model.pt"))
        with open(os.path.join(ctx.weights_dir, "labels.json"), "w") as f:
            json.dump(self._classes, f)
        self.predict(ctx, model)

    def model_card(self, ctx, model):
        return {
            "classes": self._classes,
            "device": str(next(model.parameters()).device),
            "initialWeights": self._initial,
            "preprocess": self._preprocess,
        }
