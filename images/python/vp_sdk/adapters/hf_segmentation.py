"""huggingface adapter, semantic segmentation: SegFormer
(SegformerForSemanticSegmentation) on a COCO dataset.

Data: as hf_detection.read_coco reads it. Each image's label map is drawn
from its annotations' segmentation: polygons, or uncompressed RLE
({"counts": [...], "size": [h, w]}; compressed RLE strings are refused);
a pixel is an object's when its centre is inside the polygon; label 0 is
the background, the categories in id order follow from 1; larger objects
are drawn first so that smaller ones stay on top. Images
are resized to imageSize × imageSize (SegFormer has no position
embeddings, any size goes) and normalised with ImageNet's mean and
deviation, their label maps resized by nearest neighbour.

From scratch ("segformer"): transformers' default SegFormer configuration,
the MiT-b0 sizes (hidden sizes 32, 64, 160, 256; decoder 256). Evaluation
upsamples the logits to each validation image's own size: mIoU (over the
classes present in the truths or the predictions), pixel_accuracy, and
val_loss (the model's loss at imageSize). predictions.json gives each
image's size and the share of its pixels predicted as each label.
"""

from vp_sdk.adapters.hf_detection import read_coco
from vp_sdk.adapters.huggingface_adapter import TrainerAdapter, _transformers
from vp_sdk.adapters.torchvision_adapter import IMAGENET_MEAN, IMAGENET_STD, _torch, prediction_count
from vp_sdk.sdk import AdapterError

BACKGROUND = "background"

# The label of pixels the loss and the metrics leave out (the SegFormer
# configuration's semantic_loss_ignore_index); no pixel is drawn with it.
IGNORE = 255


def _rle(seg, width, height, where):
    """The mask (height, width) of an uncompressed RLE."""
    import numpy as np

    counts, size = seg.get("counts"), seg.get("size")
    if isinstance(counts, str):
        raise AdapterError(f"{where}: compressed RLE is not read here (give polygons or uncompressed RLE)")
    if not isinstance(counts, list) or list(size or []) != [height, width]:
        raise AdapterError(f"{where}: RLE wants counts (a list) and size [{height}, {width}], the image's")
    flat = np.zeros(width * height, dtype=bool)
    pos = 0
    for i, c in enumerate(counts):
        if i % 2:
            flat[pos : pos + c] = True
        pos += c
    # COCO's RLE runs down the columns
    return flat.reshape(width, height).T


def _polygon(poly, width, height):
    """The mask of a polygon [x1, y1, x2, y2, ...] (pixel edges at whole
    numbers): the pixels whose centre is inside it (even-odd rule), as a
    window (y0, x0, mask) of the image, or None when it covers no pixel."""
    import numpy as np

    xs = np.asarray(poly[0::2], dtype=np.float64)
    ys = np.asarray(poly[1::2], dtype=np.float64)
    x0, x1 = max(int(np.floor(xs.min())), 0), min(int(np.ceil(xs.max())), width)
    y0, y1 = max(int(np.floor(ys.min())), 0), min(int(np.ceil(ys.max())), height)
    if x1 <= x0 or y1 <= y0:
        return None
    px, py = np.meshgrid(np.arange(x0, x1) + 0.5, np.arange(y0, y1) + 0.5)
    inside = np.zeros(px.shape, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for xa, ya, xb, yb in zip(xs, ys, np.roll(xs, 1), np.roll(ys, 1), strict=True):
            crosses = (ya > py) != (yb > py)
            inside ^= crosses & (px < xa + (xb - xa) * (py - ya) / (yb - ya))
    return y0, x0, inside


def label_map(rec, rel):
    """The label map of an image record (hf_detection's): a PIL "L" image,
    0 the background, category index + 1 the objects."""
    import numpy as np
    from PIL import Image

    w, h = rec["width"], rec["height"]
    out = np.zeros((h, w), dtype=np.uint8)
    for a in sorted(rec["anns"], key=lambda a: -float(a.get("area") or 0)):
        where = f"{rel}: annotation {a.get('id')!r}"
        seg = a.get("segmentation")
        value = a["category_id"] + 1
        if isinstance(seg, dict):
            out[_rle(seg, w, h, where)] = value
            continue
        if not seg or not isinstance(seg, list):
            raise AdapterError(f"{where}: no segmentation (the label maps are drawn from the polygons)")
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                raise AdapterError(f"{where}: a polygon wants x, y pairs of at least 3 points, got {poly!r}")
            window = _polygon(poly, w, h)
            if window is not None:
                y0, x0, mask = window
                out[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]][mask] = value
    return Image.fromarray(out)


class _Maps:
    """The images of a split as SegFormer takes them: pixel_values and
    labels (size × size), with the record's index."""

    def __init__(self, images, size):
        self.images = images
        self.size = size

    def __len__(self):
        return len(self.images)

    def image(self, i):
        from PIL import Image
        from torchvision.transforms import functional as F

        with Image.open(self.images[i]["path"]) as pil:
            img = pil.convert("RGB")
        return F.normalize(F.to_tensor(img.resize((self.size, self.size), Image.BILINEAR)), IMAGENET_MEAN, IMAGENET_STD)

    def __getitem__(self, i):
        torch, _ = _torch()
        import numpy as np
        from PIL import Image

        labels = label_map(self.images[i], "annotations").resize((self.size, self.size), Image.NEAREST)
        return {
            "pixel_values": self.image(i),
            "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64).copy()),
        }


class _Stack:
    """Batches _Maps' items."""

    def __call__(self, items):
        torch, _ = _torch()
        return {k: torch.stack([it[k] for it in items]) for k in ("pixel_values", "labels")}


class SegmentationAdapter(TrainerAdapter):
    """Semantic segmentation (AutoModelForSemanticSegmentation)."""

    def prepare_data(self, ctx):
        if ctx.dataset_format != "coco":
            raise AdapterError(f"huggingface segmentation takes coco datasets, not {ctx.dataset_format}")
        data = read_coco(ctx.dataset_dir, ctx.hyperparameters.seed, boxes=False)
        background = BACKGROUND if BACKGROUND not in data["classes"] else "__background__"
        self._classes = [background, *data["classes"]]
        if len(self._classes) > IGNORE:
            raise AdapterError(f"instances_train.json: {len(self._classes) - 1} categories; at most {IGNORE - 1}")
        # the annotations are checked here, not in the middle of training
        for split in ("train", "val"):
            for rec in data[split]:
                label_map(rec, f"instances_{split}.json")
        self._predictions = prediction_count(ctx.hyperparameters)
        size = ctx.hyperparameters.image_size
        self._preprocess = {"size": size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
        data["train_set"] = _Maps(data["train"], size)
        data["val_set"] = _Maps(data["val"], size)
        return data

    def build_model(self, ctx):
        tf = _transformers()

        def ignoring(cfg):
            cfg.semantic_loss_ignore_index = IGNORE

        return self.build(ctx, tf.AutoModelForSemanticSegmentation, self._classes, ["decode_head.classifier"], ignoring)

    def collate(self):
        return _Stack()

    def _segment(self, ctx, model, ds, limit=None):
        """Per batch of ds's images (the first limit): their records, their
        predicted label maps at their own sizes (tensors) and the model's
        loss on the batch."""
        torch, _ = _torch()
        dev = next(model.parameters()).device
        n = len(ds) if limit is None else min(limit, len(ds))
        bs = ctx.hyperparameters.batch_size
        sub = torch.utils.data.Subset(ds, range(n))
        loader = torch.utils.data.DataLoader(sub, batch_size=bs, collate_fn=_Stack(), num_workers=self.workers(ctx))
        model.eval()
        with torch.no_grad():
            for b, batch in enumerate(loader):
                out = model(pixel_values=batch["pixel_values"].to(dev), labels=batch["labels"].to(dev))
                recs = ds.images[b * bs : b * bs + len(batch["labels"])]
                maps = []
                for rec, logits in zip(recs, out.logits, strict=True):
                    size = (rec["height"], rec["width"])
                    up = torch.nn.functional.interpolate(logits[None].float(), size=size, mode="bilinear")
                    maps.append(up[0].argmax(0))
                yield recs, maps, out.loss.item()

    def evaluate(self, ctx, model, data):
        import numpy as np

        from vp_sdk.metrics import confusion, semantic_scores

        conf = np.zeros((len(self._classes), len(self._classes)), dtype=np.int64)
        total, n = 0.0, 0
        for recs, maps, loss in self._segment(ctx, model, data["val_set"]):
            for rec, pred in zip(recs, maps, strict=True):
                truth = np.asarray(label_map(rec, "annotations"), dtype=np.int64)
                confusion(pred.cpu().numpy(), truth, len(self._classes), IGNORE, into=conf)
            total += loss * len(recs)
            n += len(recs)
        return {**semantic_scores(conf), "val_loss": total / max(n, 1)}

    def predict(self, ctx, model):
        torch, _ = _torch()
        out = []
        for recs, maps, _loss in self._segment(ctx, model, self._data["val_set"], self._predictions):
            for rec, pred in zip(recs, maps, strict=True):
                counts = torch.bincount(pred.flatten(), minlength=len(self._classes)).tolist()
                total = max(sum(counts), 1)
                out.append(
                    {
                        "image": rec["image"],
                        "size": [rec["width"], rec["height"]],
                        "pixels": {self._classes[k]: round(c / total, 6) for k, c in enumerate(counts) if c},
                    }
                )
        ctx.write_predictions(out, classes=self._classes)
