"""Unit tests of vp_sdk.metrics (numpy only) and of the JSON the SDK
writes (no NaN or infinity reaches metrics.json or predictions.json).

sdk_test.go runs them with the other unit tests; by hand, from
images/python: python3 -m unittest discover -s tests
"""

import json
import math
import os
import tempfile
import unittest

import numpy as np

from vp_sdk.metrics import box_iou, box_map, confusion, semantic_scores, topk_correct
from vp_sdk.sdk import Hyperparameters, RunContext

A = [0, 0, 10, 10]
FAR = [50, 50, 60, 60]


class BoxMapTest(unittest.TestCase):
    def test_iou(self):
        got = box_iou([A], [A, [5, 0, 15, 10], [20, 20, 30, 30]])
        np.testing.assert_allclose(got, [[1.0, 50 / 150, 0.0]])

    def test_perfect(self):
        imgs = [([(0, 0.9, A)], [(0, A)]), ([(1, 0.8, [5, 5, 20, 20])], [(1, [5, 5, 20, 20])])]
        self.assertEqual(box_map(imgs), {"mAP50": 1.0, "mAP50-95": 1.0})

    def test_iou_06_counts_at_three_thresholds(self):
        # IoU 0.6: a hit at 0.50, 0.55 and 0.60 only, 3 of COCO's 10 thresholds
        got = box_map([([(0, 0.9, [0, 0, 10, 6])], [(0, A)])])
        self.assertAlmostEqual(got["mAP50"], 1.0)
        self.assertAlmostEqual(got["mAP50-95"], 0.3)

    def test_half_recall(self):
        # one of two truths found: precision 1 up to recall 0.5, 51 of COCO's 101 points
        got = box_map([([(0, 0.9, A)], [(0, A), (0, FAR)])])
        self.assertAlmostEqual(got["mAP50"], 51 / 101)

    def test_false_positive_first(self):
        got = box_map([([(0, 0.9, FAR), (0, 0.5, A)], [(0, A)])])
        self.assertAlmostEqual(got["mAP50"], 0.5)

    def test_duplicate_is_a_false_positive_ranked_after(self):
        got = box_map([([(0, 0.9, A), (0, 0.8, A)], [(0, A)])])
        self.assertAlmostEqual(got["mAP50"], 1.0)

    def test_nothing_found(self):
        self.assertEqual(box_map([([], [(0, A)])])["mAP50"], 0.0)


class SemanticTest(unittest.TestCase):
    def test_scores(self):
        # truth [[0,1],[ignored,0]] against prediction [[0,1],[1,1]]
        c = confusion(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [255, 0]]), 3)
        self.assertEqual(int(c.sum()), 3)
        got = semantic_scores(c)
        # class 0: 1 right, 1 predicted as 1 (IoU 1/2); class 1: 1 right, 1 extra (IoU 1/2)
        self.assertAlmostEqual(got["mIoU"], 0.5)
        self.assertAlmostEqual(got["pixel_accuracy"], 2 / 3)


class TopKTest(unittest.TestCase):
    def test_topk(self):
        scores = np.array([[0.1, 0.5, 0.4], [0.9, 0.04, 0.06]])
        self.assertEqual(topk_correct(scores, np.array([2, 1]), 1), 0)
        self.assertEqual(topk_correct(scores, np.array([2, 1]), 2), 1)
        self.assertEqual(topk_correct(np.array([[0.1, 0.5, 0.4]]), np.array([0]), 5), 1)


class FiniteJSONTest(unittest.TestCase):
    def test_not_finite_is_null(self):
        with tempfile.TemporaryDirectory() as d:
            ctx = RunContext(
                dataset_dir=d,
                output_dir=d,
                model="m",
                task="classification",
                dataset_format="imagefolder",
                hyperparameters=Hyperparameters(epochs=1, batch_size=1, learning_rate=0.1),
            )
            ctx.write_metrics({"val_loss": math.inf, "accuracy": 0.5})
            ctx.write_predictions([{"image": "val/a.png", "top": [{"label": "a", "score": math.nan}]}])
            with open(os.path.join(d, "metrics.json")) as f:
                self.assertEqual(json.load(f), {"accuracy": 0.5, "val_loss": None})
            with open(os.path.join(d, "predictions.json")) as f:
                text = f.read()
            self.assertNotIn("NaN", text)
            self.assertIsNone(json.loads(text)["predictions"][0]["top"][0]["score"])


if __name__ == "__main__":
    unittest.main()
