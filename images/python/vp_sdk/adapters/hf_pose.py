"""huggingface adapter, pose: ViTPose (VitPoseForPoseEstimation), top-down,
with transformers' Trainer.

The data (format yolo): data.yaml with kpt_shape [K, 3] (or [K, 2]) and the
train and val image folders (images/<split>/), each image's labels in
labels/<split>/<stem>.txt, one line an object: "class cx cy w h x1 y1 v1 ...
xK yK vK", fractions of the image size (v: 0 not labelled, 1 hidden, 2
visible; with [K, 2] every keypoint is labelled). Every labelled box is an
example: the box widened to the input's aspect (3:4) and by 1.25, cut out
with an affine warp at the input size, normalised with ImageNet's mean and
deviation. The targets are a Gaussian heatmap a keypoint (sigma 2 heatmap
pixels) at a quarter of the input size, weighted 1 where the keypoint is
labelled and inside the crop, else 0. No augmentation.

The model: ctx.model "vitpose" trains from scratch with no download:
ViTPose-B (VitPoseBackboneConfig's defaults: ViT-B/16, 12 layers, 768
wide, the last layer's features) with VitPoseConfig's simple decoder
(extra.decoder "classic": two deconvolutions), K heatmaps. The input is
256×192 (height × width); imageSize sets the height and three quarters of
it the width, each rounded to a multiple of the patch size (16). The SDK
reads a job without imageSize as DEFAULT_IMAGE_SIZE (224), so 224 means the
default input. extra.backboneConfig sets fields of VitPoseBackboneConfig (a
smaller model, for instance). With pretrained: true, ctx.model is a hub id
("usyd-community/vitpose-base-simple"): its weights and input size, the
head drawn anew when K is not its 17, or WeightsUnavailable. ctx.weights is
the folder save_pretrained writes (a folder or an archive, see
saved_model), or a single state dict for the scratch model (the head kept
out when sized for another K).

The loss (VitPose's forward computes none): the mean squared error of the
heatmaps over the labelled keypoints. Metrics each epoch
(images/python/PROTOCOL.md): loss, lr, val_loss, and pose_mAP50 and
pose_mAP50-95, COCO's OKS-based AP (thresholds 0.50:0.95) of keypoints
predicted in the truth's boxes: there is no person detector, so each
validation box is one prediction, scored by the mean of its keypoints'
heatmap maxima. OKS takes the box's area and COCO's 17 sigmas when K is 17,
else 0.05 for each keypoint; boxes without a labelled keypoint are left
out. predictions.json: up to 16 validation images (extra.predictions),
each with instances {score, box [x0, y0, x1, y1], keypoints [[x, y,
confidence], ...]} in image pixels.

Training, checkpoints and resume are TrainerAdapter.fit's (the
huggingface adapter); export writes the model and a VitPoseImageProcessor
for its input with save_pretrained under ctx.weights_dir.
"""

import os

import numpy as np

from vp_sdk.adapters.hf_captioning import _LOAD, count_parameters, extra_value
from vp_sdk.adapters.huggingface_adapter import ValidatingAdapter, _transformers, saved_model
from vp_sdk.adapters.torchvision_adapter import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    _say,
    _torch,
    load_weights,
)
from vp_sdk.sdk import DEFAULT_IMAGE_SIZE, AdapterError, WeightsUnavailable

# ViTPose-B's input, height × width (ViTPose_base_coco_256x192).
INPUT = (256, 192)

# The crop around a box: widened by this much beyond the input's aspect.
BOX_PADDING = 1.25

# The Gaussian of a target heatmap, in heatmap pixels.
HEATMAP_SIGMA = 2.0

# COCO's keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists,
# hips, knees, ankles), the OKS of 17 keypoints; others take OTHER_SIGMA.
COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072] + [
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
]
OTHER_SIGMA = 0.05

# COCO keypoint evaluation's most predictions an image.
MAX_DETS = 20

_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def sigmas(k):
    """The OKS sigma of each of k keypoints."""
    return np.array(COCO_SIGMAS if k == 17 else [OTHER_SIGMA] * k, dtype=np.float64)


def oks(pred, truths, sig):
    """The OKS of predicted keypoints (K, 2+) with each truth (keypoints
    (K, 3) with v > 0 where labelled, area): the mean over the labelled
    keypoints of exp(-d² / (2 area (2 sigma)²))."""
    out = np.zeros(len(truths))
    p = np.asarray(pred, dtype=np.float64)[:, :2]
    for j, (kps, area) in enumerate(truths):
        g = np.asarray(kps, dtype=np.float64)
        seen = g[:, 2] > 0
        if not seen.any():
            continue
        d2 = ((p - g[:, :2]) ** 2).sum(axis=1)
        e = d2 / ((2 * sig) ** 2 * (area + np.spacing(1)) * 2)
        out[j] = float(np.exp(-e)[seen].mean())
    return out


def pose_map(images, k):
    """pose_mAP50 and pose_mAP50-95 of images: (predictions, truths) each,
    predictions [(score, keypoints (K, 3))], truths [(keypoints (K, 3),
    area)]."""
    from vp_sdk.metrics import COCO_THRESHOLDS, map_names, mean_ap

    sig = sigmas(k)

    def similarity(preds, truths):
        return np.stack([oks(p, truths, sig) for p in preds]) if preds else np.zeros((0, len(truths)))

    per_image = [([(0, s, kp) for s, kp in preds], [(0, t) for t in truths]) for preds, truths in images]
    return map_names(mean_ap(per_image, similarity, COCO_THRESHOLDS, MAX_DETS), prefix="pose_")


def input_size(image_size, patch):
    """The input (height, width) for hyperparameters.imageSize: INPUT for
    DEFAULT_IMAGE_SIZE, else imageSize by three quarters of it, each a
    multiple of patch (height, width)."""
    if image_size == DEFAULT_IMAGE_SIZE:
        return INPUT
    ph, pw = patch
    return max(ph, round(image_size / ph) * ph), max(pw, round(image_size * 3 / 4 / pw) * pw)


def crop_box(box, size):
    """The crop (x0, y0, width, height) around box (x0, y0, w, h): widened
    to the aspect of size (height, width), then by BOX_PADDING."""
    x, y, w, h = box
    aspect = size[1] / size[0]
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    w, h = max(w, 1.0) * BOX_PADDING, max(h, 1.0) * BOX_PADDING
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return cx - w / 2, cy - h / 2, w, h


def target_heatmaps(kps, crop, size, heat):
    """The target heatmaps (K, *heat) and weights (K,) of keypoints (K, 3)
    in image pixels for a crop (x0, y0, w, h) at the input size (height,
    width). Heatmap cell (i, j) covers the crop's pixels around ((j + 0.5)
    stride, (i + 0.5) stride)."""
    k = len(kps)
    x0, y0, w, h = crop
    hx = (kps[:, 0] - x0) / w * heat[1]
    hy = (kps[:, 1] - y0) / h * heat[0]
    weight = ((kps[:, 2] > 0) & (hx >= 0) & (hx < heat[1]) & (hy >= 0) & (hy < heat[0])).astype(np.float32)
    jj = np.arange(heat[1], dtype=np.float32) + 0.5
    ii = np.arange(heat[0], dtype=np.float32) + 0.5
    gx = np.exp(-((jj[None, :] - hx[:, None]) ** 2) / (2 * HEATMAP_SIGMA**2))
    gy = np.exp(-((ii[None, :] - hy[:, None]) ** 2) / (2 * HEATMAP_SIGMA**2))
    maps = (gy[:, :, None] * gx[:, None, :]).astype(np.float32) * weight[:, None, None]
    return maps.reshape(k, heat[0], heat[1]), weight


def decode_heatmaps(maps, crop):
    """Keypoints (K, 3): x, y in image pixels and the heatmap's maximum, of
    heatmaps (K, h, w) for a crop (x0, y0, w, h): each heatmap's highest
    cell moved a quarter cell towards its higher neighbour."""
    k, hh, hw = maps.shape
    flat = maps.reshape(k, -1)
    idx = flat.argmax(axis=1)
    conf = flat[np.arange(k), idx]
    i, j = idx // hw, idx % hw
    x, y = j.astype(np.float64) + 0.5, i.astype(np.float64) + 0.5
    for n in range(k):
        if 0 < j[n] < hw - 1:
            x[n] += 0.25 * np.sign(maps[n, i[n], j[n] + 1] - maps[n, i[n], j[n] - 1])
        if 0 < i[n] < hh - 1:
            y[n] += 0.25 * np.sign(maps[n, i[n] + 1, j[n]] - maps[n, i[n] - 1, j[n]])
    x0, y0, w, h = crop
    return np.stack([x0 + x / hw * w, y0 + y / hh * h, conf], axis=1)


def heatmap_loss(pred, target, weight):
    """The mean squared error of heatmaps (B, K, h, w) over the keypoints of
    weight 1."""
    per_kpt = ((pred.float() - target) ** 2).mean(dim=(2, 3))
    return (per_kpt * weight).sum() / weight.sum().clamp(min=1.0)


_MODEL = None


def pose_model_class():
    """transformers' VitPoseForPoseEstimation with a training loss."""
    global _MODEL
    if _MODEL is None:
        tf = _transformers()

        class VitPoseForPoseEstimation(tf.VitPoseForPoseEstimation):
            """forward also takes target_heatmaps (B, K, h, w) and
            target_weight (B, K), and then returns heatmap_loss as loss.
            The class name is transformers', which save_pretrained writes
            as the architecture."""

            def forward(self, pixel_values, target_heatmaps=None, target_weight=None, **kwargs):
                out = super().forward(pixel_values, **kwargs)
                if target_heatmaps is not None:
                    out["loss"] = heatmap_loss(out.heatmaps, target_heatmaps, target_weight)
                return out

        _MODEL = VitPoseForPoseEstimation
    return _MODEL


# -- data --------------------------------------------------------------------
class _Instance:
    """A labelled box of an image: box (x0, y0, w, h) and keypoints (K, 3)
    in image pixels."""

    def __init__(self, image, rel, box, kps):
        self.image, self.rel, self.box, self.kps = image, rel, box, kps


def _read_yaml(root):
    import yaml

    path = os.path.join(root, "data.yaml")
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise AdapterError(f"data.yaml: not read: {e}") from e
    if not isinstance(doc, dict):
        raise AdapterError("data.yaml: want a mapping (train, val, names, kpt_shape)")
    shape = doc.get("kpt_shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(v, int) for v in shape)
        or shape[0] < 1
        or shape[1] not in (2, 3)
    ):
        raise AdapterError(f"data.yaml: kpt_shape: want [keypoints, 2 or 3], e.g. [17, 3], got {shape!r}")
    base = root
    p = doc.get("path")
    if isinstance(p, str) and p:
        cand = p if os.path.isabs(p) else os.path.join(root, p)
        if os.path.isdir(cand):
            base = cand
    return doc, base, shape


def _image_files(base, entry, split):
    dirs = entry if isinstance(entry, list) else [entry]
    out = []
    for d in dirs:
        if not isinstance(d, str):
            raise AdapterError(f"data.yaml: {split}: want a folder (or a list of folders), got {d!r}")
        full = d if os.path.isabs(d) else os.path.join(base, d)
        if not os.path.isdir(full):
            raise AdapterError(f"data.yaml: {split}: no folder {d}")
        for dirpath, _, files in os.walk(full):
            out += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(_IMAGE_EXTS)]
    return sorted(out)


def _label_file(image):
    parts = image.split(os.sep)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parts[i] = "labels"
    return os.path.splitext(os.sep.join(parts))[0] + ".txt"


def _read_split(root, base, doc, split, shape):
    from PIL import Image

    entry = doc.get(split)
    if entry is None:
        return None
    k, dim = shape
    out = []
    for image in _image_files(base, entry, split):
        labels = _label_file(image)
        if not os.path.exists(labels):
            continue
        rel = os.path.relpath(image, root)
        try:
            with Image.open(image) as im:
                width, height = im.size
        except OSError as e:
            raise AdapterError(f"{rel}: not an image: {e}") from e
        with open(labels) as f:
            lines = f.read().splitlines()
        for n, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{os.path.relpath(labels, root)}:{n}"
            if len(fields) != 5 + k * dim:
                raise AdapterError(
                    f"{where}: want class cx cy w h and {k} keypoints of {dim} values "
                    f"({5 + k * dim} values), got {len(fields)}"
                )
            try:
                v = np.array([float(x) for x in fields[1:]], dtype=np.float64)
            except ValueError as e:
                raise AdapterError(f"{where}: not numbers: {e}") from e
            cx, cy, w, h = v[0] * width, v[1] * height, v[2] * width, v[3] * height
            kp = v[4:].reshape(k, dim)
            kps = np.zeros((k, 3), dtype=np.float64)
            kps[:, 0], kps[:, 1] = kp[:, 0] * width, kp[:, 1] * height
            kps[:, 2] = kp[:, 2] if dim == 3 else 2.0
            out.append(_Instance(image, rel, (cx - w / 2, cy - h / 2, w, h), kps))
    return out


def _crop(path, crop, size):
    """The crop (x0, y0, w, h) of the image at path, at size (height,
    width), as a normalised (3, height, width) float32 array."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except OSError as e:
        raise AdapterError(f"image {path}: not read: {e}") from e
    x0, y0, w, h = crop
    out = rgb.transform(
        (size[1], size[0]),
        Image.Transform.AFFINE,
        (w / size[1], 0.0, x0, 0.0, h / size[0], y0),
        resample=Image.Resampling.BILINEAR,
    )
    a = np.asarray(out, dtype=np.float32) / 255.0
    a = (a - np.array(IMAGENET_MEAN, dtype=np.float32)) / np.array(IMAGENET_STD, dtype=np.float32)
    return a.transpose(2, 0, 1).copy()


class _Crops:
    """The instances as the model's inputs and targets."""

    def __init__(self, instances, size, heat):
        self.instances, self.size, self.heat = instances, size, heat

    def __len__(self):
        return len(self.instances)

    def __getitem__(self, i):
        torch, _ = _torch()
        inst = self.instances[i]
        crop = crop_box(inst.box, self.size)
        maps, weight = target_heatmaps(inst.kps, crop, self.size, self.heat)
        return {
            "pixel_values": torch.from_numpy(_crop(inst.image, crop, self.size)),
            "target_heatmaps": torch.from_numpy(maps),
            "target_weight": torch.from_numpy(weight),
        }


def _collate(items):
    torch, _ = _torch()
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class PoseAdapter(ValidatingAdapter):
    """ViTPose top-down pose estimation (see the module's doc)."""

    def __init__(self):
        super().__init__()
        self._k = 0  # keypoints an object, set by prepare_data
        self._size = INPUT  # the input (height, width), set by train
        self._heat = (INPUT[0] // 4, INPUT[1] // 4)  # the heatmaps' (height, width), set by train

    # -- data -------------------------------------------------------------
    def prepare_data(self, ctx):
        if ctx.dataset_format != "yolo":
            raise AdapterError(f"pose takes yolo datasets (data.yaml with kpt_shape), not {ctx.dataset_format}")
        root = ctx.dataset_dir
        if not os.path.exists(os.path.join(root, "data.yaml")):
            raise AdapterError(f"no data.yaml in {root}")
        doc, base, shape = _read_yaml(root)
        self._k = shape[0]
        train = _read_split(root, base, doc, "train", shape)
        if train is None:
            raise AdapterError("data.yaml: train: missing (the training images' folder)")
        if not train:
            raise AdapterError("data.yaml: train: no image has a labelled box")
        val = _read_split(root, base, doc, "val", shape)
        if val is None:
            val = _read_split(root, base, doc, "validation", shape)
        if not val:
            raise AdapterError("data.yaml: val: no image with a labelled box to validate on")
        self._classes = [f"keypoint_{i}" for i in range(self._k)]
        return {"train": train, "val": val}

    # -- model ------------------------------------------------------------
    def build_pose(self, ctx):
        tf = _transformers()
        cls = pose_model_class()
        k = self._k
        labels = {"num_labels": k, "id2label": dict(enumerate(self._classes))}
        load = {"ignore_mismatched_sizes": True, **_LOAD, **labels}
        if ctx.weights:
            src = saved_model(ctx.weights)
            name = os.path.basename(ctx.weights)
            if os.path.isdir(src):
                try:
                    model = cls.from_pretrained(src, local_files_only=True, **load)
                except Exception as e:
                    raise AdapterError(f"weights {name}: transformers cannot load a VitPose model from it: {e}") from e
                self._initial = {"source": "file", "file": name}
                return model
            model = self._scratch(ctx, tf, cls, labels)
            # the head's tensors are kept out of the load when sized for another K
            self._initial = load_weights(model, src, "transformers' VitPose")
            return model
        if ctx.hyperparameters.pretrained:
            try:
                return cls.from_pretrained(ctx.model, **load)
            except Exception as e:
                raise WeightsUnavailable(f"pretrained weights for {ctx.model} cannot be loaded: {e}") from e
        if ctx.model.lower() != "vitpose":
            raise AdapterError(
                "pose trains ViTPose: --model vitpose from scratch, or a hub id with pretrained: true, "
                f"not {ctx.model!r}"
            )
        return self._scratch(ctx, tf, cls, labels)

    @staticmethod
    def _scratch(ctx, tf, cls, labels):
        hp = ctx.hyperparameters
        backbone = extra_value(hp, "backboneConfig", dict, {})
        decoder = extra_value(hp, "decoder", str, "simple")
        if decoder not in ("simple", "classic"):
            raise AdapterError(f"hyperparameters.extra.decoder: want simple or classic, got {decoder!r}")
        patch = backbone.get("patch_size", 16)
        patch = tuple(patch) if isinstance(patch, (list, tuple)) else (patch, patch)
        bb = {"image_size": list(input_size(hp.image_size, patch)), "patch_size": list(patch)}
        bb.update(backbone)
        bb.setdefault("out_indices", [bb.get("num_hidden_layers", 12)])
        try:
            cfg = tf.VitPoseConfig(
                backbone_config=tf.VitPoseBackboneConfig(**bb), use_simple_decoder=decoder == "simple", **labels
            )
            return cls(cfg)
        except (TypeError, ValueError) as e:
            raise AdapterError(f"hyperparameters.extra.backboneConfig: not a VitPose backbone config: {e}") from e

    # -- train ------------------------------------------------------------
    def train(self, ctx, data):
        tf = _transformers()
        tf.set_seed(ctx.hyperparameters.seed)
        self._data = data
        model = self.build_pose(ctx)
        bb = model.config.backbone_config
        size = tuple(bb.image_size) if isinstance(bb.image_size, (list, tuple)) else (bb.image_size,) * 2
        patch = tuple(bb.patch_size) if isinstance(bb.patch_size, (list, tuple)) else (bb.patch_size,) * 2
        scale = model.config.scale_factor if model.config.use_simple_decoder else 4
        self._size = (int(size[0]), int(size[1]))
        self._heat = (size[0] // patch[0] * scale, size[1] // patch[1] * scale)
        _say(
            f"ViTPose: {count_parameters(model):,} parameters, {self._k} keypoints, input {size[0]}×{size[1]}, "
            f"heatmaps {self._heat[0]}×{self._heat[1]}; {len(data['train'])} training boxes"
        )
        self.note_initial(ctx, model)
        # the Trainer would hand token counts to forward; the loss is the batch's mean
        model.accepts_loss_kwargs = False
        model = self.fit(ctx, model, _Crops(data["train"], self._size, self._heat), _collate, data)
        self._trained = True
        return model

    # -- evaluate ---------------------------------------------------------
    def _validate(self, ctx, model, data):
        """The validation metrics and the predictions of the validation images."""
        torch, _ = _torch()
        dev = next(model.parameters()).device
        bs = ctx.hyperparameters.batch_size
        instances = data["val"]
        crops = _Crops(instances, self._size, self._heat)
        model.eval()
        total, found = 0.0, []
        with torch.no_grad():
            for s in range(0, len(crops), bs):
                batch = _collate([crops[i] for i in range(s, min(s + bs, len(crops)))])
                batch = {k: v.to(dev) for k, v in batch.items()}
                out = model(**batch)
                total += float(out.loss) * len(batch["pixel_values"])
                maps = out.heatmaps.float().cpu().numpy()
                for n, m in enumerate(maps):
                    inst = instances[s + n]
                    found.append(decode_heatmaps(m, crop_box(inst.box, self._size)))
        by_image = {}
        for inst, kps in zip(instances, found, strict=True):
            by_image.setdefault(inst.rel, []).append((inst, kps))
        images, predictions = [], []
        for rel, pairs in by_image.items():
            preds, truths, shown = [], [], []
            for inst, kps in pairs:
                score = float(kps[:, 2].mean())
                x, y, w, h = inst.box
                shown.append(
                    {
                        "score": round(score, 6),
                        "box": [round(float(v), 2) for v in (x, y, x + w, y + h)],
                        "keypoints": [[round(float(a), 2), round(float(b), 2), round(float(c), 6)] for a, b, c in kps],
                    }
                )
                if (inst.kps[:, 2] > 0).any():
                    preds.append((score, kps))
                    truths.append((inst.kps, w * h))
            images.append((preds, truths))
            predictions.append({"image": rel, "instances": shown})
        metrics = pose_map(images, self._k)
        metrics["val_loss"] = total / max(len(crops), 1)
        return metrics, predictions

    def predictions_about(self):
        return {"keypoints": self._k}

    def export(self, ctx, model):
        tf = _transformers()
        tf.VitPoseImageProcessor(
            size={"height": self._size[0], "width": self._size[1]}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
        ).save_pretrained(ctx.weights_dir)
        super().export(ctx, model)

    def model_card(self, ctx, model):
        return {
            "device": str(next(model.parameters()).device),
            "parameters": count_parameters(model),
            "input": {"height": self._size[0], "width": self._size[1]},
            "keypoints": self._k,
            "initialWeights": self._initial,
        }
