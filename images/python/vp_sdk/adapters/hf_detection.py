"""huggingface adapter, detection: DETR (DetrForObjectDetection) on a COCO dataset.

Data: annotations/instances_train.json and instances_val.json (without
val, a seeded fifth of the train images is held out), images under
images/<split>/ or <split>/, boxes [x, y, w, h] in pixels; categories in
id order are the labels 0..n-1. Images are resized so that their shorter
side is imageSize (the longer at most 1333/800 of it, DETR's own ratio),
normalised with ImageNet's mean and deviation, and padded at the bottom
and right to the batch's largest (pixel_mask says which pixels are the
image's). Boxes go to the model as normalised cx, cy, w, h of the padded
image, so they come back in that frame and are scaled back to the image's
pixels. Crowd annotations are left out of training and evaluation.

From scratch ("detr"): transformers' default DETR configuration (a timm
ResNet-50 backbone) with num_labels from the categories, no weights
downloaded (use_pretrained_backbone off). mAP50 and mAP50-95 on the
validation images come from vp_sdk.metrics (COCO's matching, up to 100
detections an image); predictions.json has the boxes scoring at least
extra.confidence (0.25), in pixels, with the categories' names.

read_coco serves hf_segmentation too.
"""

import json
import os
import random

from vp_sdk.adapters.huggingface_adapter import TrainerAdapter, _transformers
from vp_sdk.adapters.torchvision_adapter import IMAGENET_MEAN, IMAGENET_STD, _torch, prediction_count
from vp_sdk.sdk import AdapterError

# DETR's image processor: shorter side 800, longer at most 1333.
_LONGEST = 1333 / 800


def _image_dir(root, split):
    for d in (os.path.join(root, "images", split), os.path.join(root, split)):
        if os.path.isdir(d):
            return d
    return None


def _load_split(root, split, boxes, index=None):
    """The split's categories (id order) and its images: dicts with path,
    image (relative to root), width, height and anns (the annotations,
    their category_id replaced by the label index). None when the split
    has no annotations file. boxes: every annotation must have a bbox."""
    from PIL import Image

    rel = os.path.join("annotations", f"instances_{split}.json")
    path = os.path.join(root, rel)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            coco = json.load(f)
    except (OSError, ValueError) as e:
        raise AdapterError(f"{rel}: not readable JSON: {e}") from e
    if not isinstance(coco, dict):
        raise AdapterError(f"{rel}: want a JSON object with images, annotations and categories")
    try:
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        classes = [str(c["name"]) for c in cats]
        cat_index = {c["id"]: i for i, c in enumerate(cats)}
    except (KeyError, TypeError) as e:
        raise AdapterError(f"{rel}: categories: each wants an id and a name ({e})") from e
    if not classes:
        raise AdapterError(f"{rel}: no categories")
    if index is not None and cat_index != index:
        raise AdapterError(f"{rel}: its categories differ from instances_train.json's")
    img_dir = _image_dir(root, split)
    if img_dir is None:
        raise AdapterError(f"no image folder for {split} (images/{split}/ or {split}/) in the dataset")
    images = {}
    for im in coco.get("images") or []:
        try:
            file = os.path.join(img_dir, im["file_name"])
            rec = {"id": im["id"], "path": file, "image": os.path.relpath(file, root), "anns": []}
        except (KeyError, TypeError) as e:
            raise AdapterError(f"{rel}: an image without id or file_name: {im!r}") from e
        if not os.path.isfile(file):
            raise AdapterError(f"{rel}: image {im['id']}: no file {rec['image']}")
        w, h = im.get("width"), im.get("height")
        if not w or not h:
            try:
                with Image.open(file) as pil:
                    w, h = pil.size
            except OSError as e:
                raise AdapterError(f"{rel}: image {rec['image']}: not readable: {e}") from e
        rec["width"], rec["height"] = int(w), int(h)
        images[im["id"]] = rec
    for a in coco.get("annotations") or []:
        try:
            im = images[a["image_id"]]
            label = cat_index[a["category_id"]]
        except (KeyError, TypeError) as e:
            raise AdapterError(f"{rel}: annotation {a.get('id')!r}: unknown image or category ({e})") from e
        bbox = a.get("bbox")
        if (boxes or bbox is not None) and not (
            isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)
        ):
            raise AdapterError(f"{rel}: annotation {a.get('id')!r}: bbox wants [x, y, width, height], got {bbox!r}")
        im["anns"].append({**a, "category_id": label})
    if not images:
        raise AdapterError(f"{rel}: no images")
    return classes, cat_index, list(images.values())


def read_coco(root, seed, boxes=True):
    """A COCO dataset: {"classes": names in category id order, "train":
    images, "val": images} (images as _load_split returns them; boxes:
    every annotation must have a bbox)."""
    train = _load_split(root, "train", boxes)
    if train is None:
        raise AdapterError("no annotations/instances_train.json in the dataset (a COCO dataset has one)")
    classes, index, train_images = train
    val = _load_split(root, "val", boxes, index)
    if val is not None:
        val_images = val[2]
    else:
        if len(train_images) < 2:
            raise AdapterError("instances_train.json has one image and there is no instances_val.json")
        order = list(range(len(train_images)))
        random.Random(seed).shuffle(order)
        n_val = max(1, len(order) // 5)
        held = set(order[:n_val])
        val_images = [im for i, im in enumerate(train_images) if i in held]
        train_images = [im for i, im in enumerate(train_images) if i not in held]
    return {"classes": classes, "train": train_images, "val": val_images}


def resized(width, height, size):
    """The (width, height) an image is resized to: shorter side size, the
    longer at most _LONGEST times it."""
    scale = size / min(width, height)
    if max(width, height) * scale > size * _LONGEST:
        scale = size * _LONGEST / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class _Boxes:
    """The images of a split as DETR takes them: pixel_values (C, h, w)
    resized and normalised, boxes [x0, y0, x1, y1] in the resized pixels,
    class_labels."""

    def __init__(self, images, size):
        self.images = images
        self.size = size

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        torch, _ = _torch()
        from PIL import Image
        from torchvision.transforms import functional as F

        rec = self.images[i]
        with Image.open(rec["path"]) as pil:
            img = pil.convert("RGB")
        w, h = resized(img.width, img.height, self.size)
        sx, sy = w / img.width, h / img.height
        x = F.normalize(F.to_tensor(img.resize((w, h), Image.BILINEAR)), IMAGENET_MEAN, IMAGENET_STD)
        boxes, labels = [], []
        for a in rec["anns"]:
            if a.get("iscrowd"):
                continue
            bx, by, bw, bh = (float(v) for v in a["bbox"])
            if bw <= 0 or bh <= 0:
                continue
            boxes.append([max(bx * sx, 0), max(by * sy, 0), min((bx + bw) * sx, w), min((by + bh) * sy, h)])
            labels.append(a["category_id"])
        return {
            "pixel_values": x,
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "class_labels": torch.tensor(labels, dtype=torch.int64),
            "index": i,
        }


class _Pad:
    """Batches _Boxes' items: pixel_values padded to the largest, pixel_mask,
    labels (class_labels, boxes as cx, cy, w, h of the padded size); with
    meta, also index and the padded size for decoding."""

    def __init__(self, meta=False):
        self.meta = meta

    def __call__(self, items):
        torch, _ = _torch()
        h = max(it["pixel_values"].shape[1] for it in items)
        w = max(it["pixel_values"].shape[2] for it in items)
        x = torch.zeros(len(items), 3, h, w)
        mask = torch.zeros(len(items), h, w, dtype=torch.int64)
        labels = []
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        for i, it in enumerate(items):
            _, ih, iw = it["pixel_values"].shape
            x[i, :, :ih, :iw] = it["pixel_values"]
            mask[i, :ih, :iw] = 1
            b = it["boxes"]
            cxcywh = torch.stack(
                [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1
            )
            labels.append({"class_labels": it["class_labels"], "boxes": cxcywh / scale})
        batch = {"pixel_values": x, "pixel_mask": mask, "labels": labels}
        if self.meta:
            batch["index"] = [it["index"] for it in items]
            batch["padded"] = (w, h)
        return batch


class DetectionAdapter(TrainerAdapter):
    """DETR-style object detection (AutoModelForObjectDetection)."""

    def prepare_data(self, ctx):
        if ctx.dataset_format != "coco":
            raise AdapterError(f"huggingface detection takes coco datasets, not {ctx.dataset_format}")
        data = read_coco(ctx.dataset_dir, ctx.hyperparameters.seed)
        self._classes = data["classes"]
        self._predictions = prediction_count(ctx.hyperparameters)  # checked before training
        size = ctx.hyperparameters.image_size
        edges = {"shortest_edge": size, "longest_edge": round(size * _LONGEST)}
        self._preprocess = {**edges, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
        data["train_set"] = _Boxes(data["train"], size)
        data["val_set"] = _Boxes(data["val"], size)
        return data

    def build_model(self, ctx):
        tf = _transformers()

        def offline(cfg):
            # the backbone's weights would come from timm's or the hub's
            # downloads; from scratch they are drawn at random
            for c in (cfg, getattr(cfg, "backbone_config", None)):
                if getattr(c, "use_pretrained_backbone", False):
                    c.use_pretrained_backbone = False

        return self.build(ctx, tf.AutoModelForObjectDetection, self._classes, ["class_labels_classifier"], offline)

    def collate(self):
        return _Pad()

    def _detect(self, ctx, model, ds, limit=None):
        """(image record, detections) of ds's images (the first limit),
        detections (label, score, [x0, y0, x1, y1] in the image's pixels),
        best first."""
        torch, _ = _torch()
        dev = next(model.parameters()).device
        n = len(ds) if limit is None else min(limit, len(ds))
        sub = torch.utils.data.Subset(ds, range(n))
        bs, workers = ctx.hyperparameters.batch_size, self.workers(ctx)
        loader = torch.utils.data.DataLoader(sub, batch_size=bs, collate_fn=_Pad(meta=True), num_workers=workers)
        model.eval()
        with torch.no_grad():
            for batch in loader:
                out = model(pixel_values=batch["pixel_values"].to(dev), pixel_mask=batch["pixel_mask"].to(dev))
                logits = out.logits.float()
                if logits.shape[-1] == len(self._classes) + 1:  # DETR: the last class is "no object"
                    probs = logits.softmax(-1)[..., :-1]
                else:
                    probs = logits.sigmoid()
                scores, labels = (t.cpu() for t in probs.max(-1))
                pw, ph = batch["padded"]
                cx, cy, bw, bh = (out.pred_boxes.float().cpu() * torch.tensor([pw, ph, pw, ph])).unbind(-1)
                boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
                for j, i in enumerate(batch["index"]):
                    rec = ds.images[i]
                    rw, rh = resized(rec["width"], rec["height"], ds.size)
                    b = boxes[j] * torch.tensor([rec["width"] / rw, rec["height"] / rh] * 2)
                    b[:, 0::2] = b[:, 0::2].clamp(0, rec["width"])
                    b[:, 1::2] = b[:, 1::2].clamp(0, rec["height"])
                    order = scores[j].argsort(descending=True)
                    s, lab, b = scores[j][order].tolist(), labels[j][order].tolist(), b[order].tolist()
                    yield rec, list(zip(lab, s, b, strict=True))

    def evaluate(self, ctx, model, data):
        from vp_sdk.metrics import box_map

        images = []
        for rec, dets in self._detect(ctx, model, data["val_set"]):
            truths = [
                (
                    a["category_id"],
                    [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
                )
                for a in rec["anns"]
                if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0
            ]
            images.append((dets, truths))
        return box_map(images)

    def predict(self, ctx, model):
        conf = ctx.hyperparameters.extra.get("confidence", 0.25)
        if not isinstance(conf, (int, float)) or isinstance(conf, bool):
            raise AdapterError(f"hyperparameters.extra.confidence: want a number, got {conf!r}")
        out = []
        for rec, dets in self._detect(ctx, model, self._data["val_set"], self._predictions):
            boxes = [
                {"label": self._classes[label], "score": round(score, 6), "box": [round(v, 2) for v in box]}
                for label, score, box in dets[:100]
                if score >= conf
            ]
            out.append({"image": rec["image"], "boxes": boxes})
        ctx.write_predictions(out, classes=self._classes)
