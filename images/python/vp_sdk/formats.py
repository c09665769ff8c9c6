"""Dataset format conversions the adapters use.

Each writes what it derives under an output folder and links the images
there, so that the dataset itself may be read-only.
"""

import json
import os

# The image files a dataset folder is read for (the suffixes ultralytics
# reads as images).
IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"})


def coco_to_yolo(coco_dir, out_dir):
    """Converts a COCO detection dataset to the YOLO layout ultralytics reads.

    Input: ``annotations/instances_<split>.json`` and images under
    ``<split>/`` or ``images/<split>/`` for the splits train and val.
    Output in out_dir: ``images/<split>/`` (links to the images),
    ``labels/<split>/<stem>.txt`` (class cx cy w h, normalised) and
    ``data.yaml``. Category ids are mapped to 0..n-1 in id order. Returns
    the path of data.yaml.
    """
    names = None
    splits = {}
    for split in ("train", "val"):
        ann = os.path.join(coco_dir, "annotations", f"instances_{split}.json")
        if not os.path.exists(ann):
            if split == "train":
                raise ValueError(f"no {ann}")
            continue
        with open(ann) as f:
            coco = json.load(f)
        cats = sorted(c["id"] for c in coco.get("categories", []))
        index = {cid: i for i, cid in enumerate(cats)}
        if names is None:
            names = [next(c["name"] for c in coco["categories"] if c["id"] == cid) for cid in cats]
        img_dir = next(
            (d for d in (os.path.join(coco_dir, split), os.path.join(coco_dir, "images", split)) if os.path.isdir(d)),
            None,
        )
        if img_dir is None:
            raise ValueError(f"no image folder for {split} in {coco_dir}")
        out_img = os.path.join(out_dir, "images", split)
        out_lbl = os.path.join(out_dir, "labels", split)
        os.makedirs(out_img, exist_ok=True)
        os.makedirs(out_lbl, exist_ok=True)
        images = {im["id"]: im for im in coco["images"]}
        lines = {iid: [] for iid in images}
        for a in coco.get("annotations", []):
            im = images.get(a["image_id"])
            if im is None or a.get("iscrowd"):
                continue
            x, y, w, h = a["bbox"]
            W, H = float(im["width"]), float(im["height"])
            lines[a["image_id"]].append(
                f"{index[a['category_id']]} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} {w / W:.6f} {h / H:.6f}"
            )
        for iid, im in images.items():
            src = os.path.join(img_dir, im["file_name"])
            dst = os.path.join(out_img, os.path.basename(im["file_name"]))
            if not os.path.exists(dst):
                os.symlink(os.path.abspath(src), dst)
            stem = os.path.splitext(os.path.basename(im["file_name"]))[0]
            with open(os.path.join(out_lbl, stem + ".txt"), "w") as f:
                f.write("\n".join(lines[iid]) + ("\n" if lines[iid] else ""))
        splits[split] = os.path.join("images", split)
    data = os.path.join(out_dir, "data.yaml")
    with open(data, "w") as f:
        f.write(f"path: {os.path.abspath(out_dir)}\n")
        f.write(f"train: {splits['train']}\n")
        f.write(f"val: {splits.get('val', splits['train'])}\n")
        f.write("names:\n")
        for i, n in enumerate(names or []):
            f.write(f"  {i}: {json.dumps(n)}\n")
    return data


def _link(src, dst):
    """Makes dst a symbolic link to src (absolute), its folders first."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        os.remove(dst)
    os.symlink(os.path.abspath(src), dst)


def image_files(folder):
    """The image files under folder, at any depth, sorted."""
    found = []
    for d, _, files in os.walk(folder, followlinks=True):
        found += [os.path.join(d, f) for f in files if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
    return sorted(found)


def yolo_label_path(image):
    """The label file ultralytics reads for an image: the last /images/ of
    its path made /labels/, the suffix .txt."""
    head, sep, tail = image.rpartition(f"{os.sep}images{os.sep}")
    p = f"{head}{os.sep}labels{os.sep}{tail}" if sep else image
    return os.path.splitext(p)[0] + ".txt"


def yolo_class_names(names, nc=None):
    """data.yaml's names (a list, or a mapping of index to name) as a list
    in index order; str(i) for each of nc classes when names is absent."""
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(n) for n in names]
    if names is None and isinstance(nc, int):
        return [str(i) for i in range(nc)]
    raise ValueError(f"data.yaml names: want a list or a mapping of index to name, got {names!r}")


def link_yolo(yolo_dir, out_dir):
    """Mirrors a YOLO dataset under out_dir, for ultralytics to read it there.

    yolo_dir holds data.yaml (or data.yml): train, val and optionally test,
    each a folder of images, a text file listing images, or a list of
    those, relative to its path (itself relative to yolo_dir; yolo_dir when
    absent or not a folder here), and names, nc, kpt_shape ... The images
    and their label files (yolo_label_path) are linked at the same paths
    relative to out_dir, so ultralytics' label caches (labels/<split>.cache)
    land in out_dir. Writes out_dir/data.yaml with absolute paths; val is
    train when data.yaml names none. Returns (path of the new data.yaml,
    {split: [linked image paths]}, class names).
    """
    src = next(
        (os.path.join(yolo_dir, n) for n in ("data.yaml", "data.yml") if os.path.exists(os.path.join(yolo_dir, n))),
        None,
    )
    if src is None:
        raise ValueError(f"no data.yaml in {yolo_dir}")
    import yaml  # the ultralytics image has it (ultralytics reads data.yaml with it)

    with open(src) as f:
        try:
            cfg = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"data.yaml is not YAML: {e}") from e
    if not isinstance(cfg, dict):
        raise ValueError(f"data.yaml: want a mapping (train, val, names), got {cfg!r}")
    base = os.path.abspath(yolo_dir)
    if isinstance(cfg.get("path"), str):
        p = os.path.join(base, cfg["path"])
        if os.path.isdir(p):
            base = os.path.abspath(p)
    out_dir = os.path.abspath(out_dir)
    images = {}
    for split in ("train", "val", "test"):
        entries = cfg.get(split)
        if entries is None:
            if split == "train":
                raise ValueError("data.yaml names no train images (train:)")
            continue
        found = []
        for e in entries if isinstance(entries, list) else [entries]:
            p = os.path.join(base, str(e))
            if os.path.isdir(p):
                found += image_files(p)
            elif os.path.isfile(p):
                with open(p) as f:
                    for line in f.read().splitlines():
                        line = line.strip()
                        if line:
                            rel = line[2:] if line.startswith("./") else line
                            found.append(os.path.join(os.path.dirname(p) if line.startswith("./") else base, rel))
            else:
                raise ValueError(f"data.yaml {split}: {e} is neither a folder nor a list of images under {base}")
        if not found:
            raise ValueError(f"data.yaml {split}: no images in {entries}")
        linked = []
        for img in found:
            img = os.path.abspath(img)
            rel = os.path.relpath(img, base)
            if rel.startswith(os.pardir + os.sep):
                rel = os.path.join("external", img.lstrip(os.sep))
            dst = os.path.join(out_dir, rel)
            _link(img, dst)
            label = yolo_label_path(img)
            if os.path.exists(label):
                _link(label, yolo_label_path(dst))
            linked.append(dst)
        images[split] = linked
        list_file = os.path.join(out_dir, f"{split}.txt")
        with open(list_file, "w") as f:
            f.write("".join(p + "\n" for p in linked))
        cfg[split] = list_file
    if "val" not in images:
        cfg["val"], images["val"] = cfg["train"], images["train"]
    names = yolo_class_names(cfg.get("names"), cfg.get("nc"))
    cfg["names"] = dict(enumerate(names))
    cfg["nc"] = len(names)
    cfg["path"] = out_dir
    data = os.path.join(out_dir, "data.yaml")
    with open(data, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
    return data, images, names


def link_imagefolder(folder, out_dir, holdout=5):
    """Mirrors an ImageFolder dataset (train/<class>/*, val/<class>/*) under
    out_dir as links, for a reader that writes beside it (ultralytics'
    <split>.cache). Without val/ (or validation/), every holdout-th image of
    each class of train/ is linked under val/ instead. Returns
    ({split: [(linked image path, class name)]}, class names).
    """
    train = os.path.join(folder, "train")
    if not os.path.isdir(train):
        raise ValueError(f"no train/ folder in {folder} (an ImageFolder dataset: train/<class>/*)")
    classes = sorted(d for d in os.listdir(train) if os.path.isdir(os.path.join(train, d)))
    if not classes:
        raise ValueError(f"no class folders in {train}")
    val = next((os.path.join(folder, v) for v in ("val", "validation") if os.path.isdir(os.path.join(folder, v))), None)
    out = {"train": [], "val": []}
    for c in classes:
        imgs = image_files(os.path.join(train, c))
        if val is None:
            split = {i: "val" if i % holdout == holdout - 1 else "train" for i in range(len(imgs))}
        else:
            split = dict.fromkeys(range(len(imgs)), "train")
        for i, img in enumerate(imgs):
            dst = os.path.join(out_dir, split[i], c, os.path.relpath(img, os.path.join(train, c)))
            _link(img, dst)
            out[split[i]].append((dst, c))
        if val is not None and os.path.isdir(os.path.join(val, c)):
            for img in image_files(os.path.join(val, c)):
                dst = os.path.join(out_dir, "val", c, os.path.relpath(img, os.path.join(val, c)))
                _link(img, dst)
                out["val"].append((dst, c))
    if not out["train"]:
        raise ValueError(f"no images in the class folders of {train}")
    return out, classes
