"""Dataset format conversions the adapters use."""

import json
import os


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
