"""Metric maths the adapters share (numpy only; no pycocotools).

Average precision the way COCO's evaluation computes it: per image and
class, detections are taken best score first (at most max_dets) and each
is matched greedily to the not yet matched truth it overlaps most, if that
overlap reaches the threshold; per class, precision is made monotone and
read at 101 recall points (0, 0.01, ..., 1); classes without truths are
left out of the mean. mean_ap does this for any overlap measure (box IoU
here, keypoint OKS for pose); box_map names the results as
images/python/PROTOCOL.md does (mAP50, mAP50-95).

Crowd truths are not modelled: leave them out of the truths (COCO would
let detections on them count neither way).
"""

import numpy as np

# COCO's IoU thresholds: 0.50, 0.55, ..., 0.95.
COCO_THRESHOLDS = np.linspace(0.5, 0.95, 10)

# COCO's recall points for the precision-recall curve: 0, 0.01, ..., 1.
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def box_iou(a, b):
    """The IoU of every box of a with every box of b: boxes [x0, y0, x1, y1],
    shapes (N, 4) and (M, 4), result (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(sim, thresholds):
    """For detections (rows of sim, best score first) and truths (columns):
    whether each detection is a true positive, per threshold, shape (T, N)."""
    n, m = sim.shape
    tp = np.zeros((len(thresholds), n), dtype=bool)
    for ti, t in enumerate(thresholds):
        taken = np.zeros(m, dtype=bool)
        for d in range(n):
            best, best_g = min(t, 1 - 1e-10), -1
            for g in range(m):
                if taken[g] or sim[d, g] < best:
                    continue
                best, best_g = sim[d, g], g
            if best_g >= 0:
                taken[best_g] = True
                tp[ti, d] = True
    return tp


def _ap(scores, tp, n_truths):
    """AP at 101 recall points of detections (scores, true-positive flags)
    against n_truths truths."""
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order]
    tps = np.cumsum(tp)
    fps = np.cumsum(~tp)
    recall = tps / n_truths
    precision = tps / np.maximum(tps + fps, np.finfo(np.float64).eps)
    # monotone precision: the best precision at this recall or beyond
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, _RECALL_POINTS, side="left")
    q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(q.mean())


def mean_ap(images, similarity, thresholds=COCO_THRESHOLDS, max_dets=100):
    """AP per threshold, averaged over the classes that have truths.

    images: an iterable of (predictions, truths) per image, predictions a
    list of (label, score, item), truths a list of (label, item); labels
    are any hashable. similarity(pred_items, truth_items) returns the
    (P, T) overlap matrix (box_iou for boxes). Returns a numpy array with
    one AP per threshold (zeros when no image has a truth).
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    per_class = {}  # label -> [scores], [tp (T, n) arrays], number of truths
    for predictions, truths in images:
        labels = {p[0] for p in predictions} | {t[0] for t in truths}
        for label in labels:
            dets = sorted((p for p in predictions if p[0] == label), key=lambda p: -p[1])[:max_dets]
            gts = [t[1] for t in truths if t[0] == label]
            entry = per_class.setdefault(label, [[], [], 0])
            entry[2] += len(gts)
            if not dets:
                continue
            scores = np.array([d[1] for d in dets], dtype=np.float64)
            if gts:
                sim = np.asarray(similarity([d[2] for d in dets], gts), dtype=np.float64)
                tp = _match(sim, thresholds)
            else:
                tp = np.zeros((len(thresholds), len(dets)), dtype=bool)
            entry[0].append(scores)
            entry[1].append(tp)
    aps = []
    for scores, tps, n_truths in per_class.values():
        if n_truths == 0:
            continue
        if not scores:
            aps.append(np.zeros(len(thresholds)))
            continue
        s = np.concatenate(scores)
        tp = np.concatenate(tps, axis=1)
        aps.append(np.array([_ap(s, tp[i], n_truths) for i in range(len(thresholds))]))
    if not aps:
        return np.zeros(len(thresholds))
    return np.mean(aps, axis=0)


def map_names(aps, prefix=""):
    """AP per COCO threshold named as PROTOCOL.md does: {prefix}mAP50 and
    {prefix}mAP50-95."""
    return {f"{prefix}mAP50": float(aps[0]), f"{prefix}mAP50-95": float(np.mean(aps))}


def box_map(images, max_dets=100):
    """mAP50 and mAP50-95 of boxes: images as mean_ap takes them, each item
    a box [x0, y0, x1, y1]."""
    return map_names(mean_ap(images, box_iou, COCO_THRESHOLDS, max_dets))


def confusion(pred, truth, num_classes, ignore_index=255, into=None):
    """Adds the pixels of pred against truth (integer arrays of one shape)
    to a (num_classes, num_classes) confusion matrix, truth by row; pixels
    whose truth is ignore_index are left out."""
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    keep = (truth != ignore_index) & (truth >= 0) & (truth < num_classes)
    counts = np.bincount(truth[keep] * num_classes + pred[keep], minlength=num_classes * num_classes)
    m = counts.reshape(num_classes, num_classes)
    if into is None:
        return m
    into += m
    return into


def semantic_scores(conf):
    """mIoU (over the classes present in the truths or the predictions) and
    pixel_accuracy of a confusion matrix."""
    conf = np.asarray(conf, dtype=np.float64)
    inter = np.diag(conf)
    truth = conf.sum(axis=1)
    pred = conf.sum(axis=0)
    union = truth + pred - inter
    present = union > 0
    total = conf.sum()
    return {
        "mIoU": float((inter[present] / union[present]).mean()) if present.any() else 0.0,
        "pixel_accuracy": float(inter.sum() / total) if total > 0 else 0.0,
    }


def topk_correct(scores, labels, k):
    """How many rows of scores (N, C) have their label among their k best."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1)
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())
