"""Unit tests of the SDK that need no framework: hyperparameters, the line
protocol's writer, the Adapter interface, the adapter registry, --weights,
the unpacking of huggingface weights archives and the classification
adapters' helpers (predictions.json, timm's input size).

sdk_test.go runs them (TestInt_PythonUnit); by hand, from images/python:
python3 -m unittest discover -s tests
"""

import contextlib
import io
import json
import math
import os
import tarfile
import tempfile
import unittest
import zipfile

from vp_sdk import run
from vp_sdk.protocol import MetricLogger
from vp_sdk.sdk import DEFAULT_IMAGE_SIZE, Adapter, AdapterError, Hyperparameters, RunContext

REQUIRED = {"epochs": 3, "batchSize": 8, "learningRate": 0.01}


class HyperparametersTest(unittest.TestCase):
    def test_all_fields(self):
        got = Hyperparameters.from_platform(
            {**REQUIRED, "imageSize": 64, "seed": 7, "pretrained": True, "extra": {"workers": 2}}
        )
        want = Hyperparameters(
            epochs=3, batch_size=8, learning_rate=0.01, image_size=64, seed=7, pretrained=True, extra={"workers": 2}
        )
        self.assertEqual(got, want)

    def test_optional_fields_absent(self):
        got = Hyperparameters.from_platform(REQUIRED)
        want = Hyperparameters(epochs=3, batch_size=8, learning_rate=0.01)
        self.assertEqual(got, want)
        self.assertEqual(got.image_size, DEFAULT_IMAGE_SIZE)
        self.assertEqual((got.seed, got.pretrained, got.extra), (0, False, {}))

    def test_integer_learning_rate(self):
        self.assertEqual(Hyperparameters.from_platform({**REQUIRED, "learningRate": 1}).learning_rate, 1.0)

    def test_required_field_missing(self):
        for name in REQUIRED:
            for absent in ("left out", None):
                with self.subTest(field=name, absent=absent):
                    d = dict(REQUIRED)
                    if absent is None:
                        d[name] = None
                    else:
                        del d[name]
                    with self.assertRaisesRegex(AdapterError, rf"^hyperparameters\.{name} is missing"):
                        Hyperparameters.from_platform(d)

    def test_wrong_types(self):
        cases = {
            "epochs": "3",
            "batchSize": 2.5,
            "learningRate": "0.1",
            "imageSize": True,
            "seed": 1.5,
            "pretrained": "yes",
            "extra": ["workers"],
        }
        for name, value in cases.items():
            with self.subTest(field=name):
                with self.assertRaisesRegex(AdapterError, rf"^hyperparameters\.{name}: want "):
                    Hyperparameters.from_platform({**REQUIRED, name: value})

    def test_not_an_object(self):
        with self.assertRaisesRegex(AdapterError, "want a JSON object"):
            Hyperparameters.from_platform([1, 2])


class MetricLoggerTest(unittest.TestCase):
    def setUp(self):
        self.out = io.StringIO()
        self.log = MetricLogger(self.out)

    def lines(self):
        return self.out.getvalue().splitlines()

    def test_metric_line(self):
        self.log.log(2, 40, loss=0.5, accuracy=1, skipped=None, diverged=math.nan, lr=math.inf)
        (line,) = self.lines()
        self.assertTrue(line.startswith('{"vp": "metric", "epoch": 2, "step": 40, "time": '), line)
        got = json.loads(line)
        self.assertIsInstance(got.pop("time"), float)
        want = {"vp": "metric", "epoch": 2, "step": 40, "accuracy": 1.0, "diverged": None, "loss": 0.5, "lr": None}
        self.assertEqual(got, want)
        self.assertEqual(list(got)[3:], ["accuracy", "diverged", "loss", "lr"])

    def test_reserved_metric_names(self):
        for name in ("time", "vp"):
            with self.subTest(name=name), self.assertRaisesRegex(ValueError, "reserved"):
                self.log.log(1, 1, **{name: 1.0})
        self.assertEqual(self.lines(), [])

    def test_not_a_number(self):
        with self.assertRaisesRegex(ValueError, "metric 'loss': 'low' is not a number"):
            self.log.log(1, 1, loss="low")

    def test_resume_line(self):
        self.log.resume(2, 80)
        self.assertEqual(self.lines(), ['{"vp": "resume", "epoch": 2, "step": 80}'])

    def test_final_line(self):
        self.log.final({"val_loss": 0.25, "accuracy": 1, "loss": -math.inf})
        self.assertEqual(
            self.lines(), ['{"vp": "final", "metrics": {"accuracy": 1.0, "loss": null, "val_loss": 0.25}}']
        )


class _Toy(Adapter):
    framework = "toy"

    def __init__(self):
        self.calls = []

    def prepare_data(self, ctx):
        self.calls.append("prepare_data")
        return "data"

    def train(self, ctx, data):
        self.calls.append(f"train({data})")
        ctx.metrics.log(1, 10, loss=0.5)
        return "model"

    def evaluate(self, ctx, model, data):
        self.calls.append(f"evaluate({model}, {data})")
        return {"accuracy": 0.75}

    def export(self, ctx, model):
        self.calls.append(f"export({model})")

    def model_card(self, ctx, model):
        return {"classes": ["cat", "dog"]}


class AdapterTest(unittest.TestCase):
    def test_abstract(self):
        with self.assertRaises(TypeError):
            Adapter()

        class NoExport(Adapter):
            framework = "partial"

            def prepare_data(self, ctx):
                pass

            def train(self, ctx, data):
                pass

            def evaluate(self, ctx, model, data):
                return {}

        with self.assertRaisesRegex(TypeError, "export"):
            NoExport()

    def test_run(self):
        with tempfile.TemporaryDirectory() as out:
            stdout = io.StringIO()
            ctx = RunContext(
                dataset_dir="/data",
                output_dir=out,
                model="toynet",
                task="classification",
                dataset_format="imagefolder",
                hyperparameters=Hyperparameters.from_platform(REQUIRED),
                dataset_digest="sha256:abc",
                metrics=MetricLogger(stdout),
            )
            toy = _Toy()
            self.assertEqual(toy.run(ctx), {"accuracy": 0.75})
            self.assertEqual(toy.calls, ["prepare_data", "train(data)", "evaluate(model, data)", "export(model)"])
            with open(os.path.join(out, "metrics.json")) as f:
                self.assertEqual(json.load(f), {"accuracy": 0.75})
            with open(os.path.join(out, "model_card.json")) as f:
                card = json.load(f)
            self.assertEqual(card["framework"], "toy")
            self.assertEqual(card["classes"], ["cat", "dog"])
            self.assertEqual(card["datasetDigest"], "sha256:abc")
            self.assertEqual(card["hyperparameters"]["epochs"], 3)

    def test_registered_adapters(self):
        # Adapters import their frameworks when they run, not when loaded.
        for name in run.ADAPTERS:
            with self.subTest(adapter=name):
                cls = run.adapter_class(name)
                self.assertTrue(issubclass(cls, Adapter), cls)
                self.assertEqual(cls.framework, name)
                self.assertIsInstance(cls(), Adapter)  # no abstract method left
        with self.assertRaisesRegex(AdapterError, "unknown adapter 'nope'"):
            run.adapter_class("nope")


class WeightsArgumentTest(unittest.TestCase):
    def test_missing_file(self):
        err = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(err):
            code = run.main(
                [
                    *("--adapter", "torchvision", "--model", "resnet18", "--dataset", d, "--output", d),
                    *("--hyperparameters", json.dumps(REQUIRED), "--weights", os.path.join(d, "nope.pth")),
                ]
            )
        self.assertEqual(code, 3)
        self.assertIn("--weights " + os.path.join(d, "nope.pth") + ": no such file", err.getvalue())


class SavedModelTest(unittest.TestCase):
    """huggingface's --weights: the folder save_pretrained writes, packed."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.src = os.path.join(self.dir.name, "vit")
        os.makedirs(self.src)
        for name, body in (("config.json", "{}"), ("model.safetensors", "weights")):
            with open(os.path.join(self.src, name), "w") as f:
                f.write(body)

    def test_archives(self):
        from vp_sdk.adapters.huggingface_adapter import saved_model

        flat = os.path.join(self.dir.name, "flat.tar.gz")
        with tarfile.open(flat, "w:gz") as t:
            for name in ("config.json", "model.safetensors"):
                t.add(os.path.join(self.src, name), arcname=name)
        nested = os.path.join(self.dir.name, "nested.zip")
        with zipfile.ZipFile(nested, "w") as z:
            for name in ("config.json", "model.safetensors"):
                z.write(os.path.join(self.src, name), arcname="vit/" + name)
        for path, want in ((flat, flat + ".d"), (nested, os.path.join(nested + ".d", "vit")), (self.src, self.src)):
            with self.subTest(path=os.path.basename(path)):
                got = saved_model(path)
                self.assertEqual(got, want)
                with open(os.path.join(got, "model.safetensors")) as f:
                    self.assertEqual(f.read(), "weights")
        single = os.path.join(self.src, "model.safetensors")
        self.assertEqual(saved_model(single), single)

    def test_refused(self):
        from vp_sdk.adapters.huggingface_adapter import saved_model

        evil = os.path.join(self.dir.name, "evil.tar")
        with tarfile.open(evil, "w") as t:
            t.add(os.path.join(self.src, "config.json"), arcname="../config.json")
        with self.assertRaisesRegex(AdapterError, "unsafe paths in the archive"):
            saved_model(evil)
        link = os.path.join(self.dir.name, "link.tar")
        with tarfile.open(link, "w") as t:
            info = tarfile.TarInfo("config.json")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            t.addfile(info)
        with self.assertRaisesRegex(AdapterError, "links, devices or unsafe paths"):
            saved_model(link)
        empty = os.path.join(self.dir.name, "noconfig.zip")
        with zipfile.ZipFile(empty, "w") as z:
            z.writestr("a/b.txt", "x")
            z.writestr("c/d.txt", "x")
        with self.assertRaisesRegex(AdapterError, "no config.json"):
            saved_model(empty)


class ClassificationHelpersTest(unittest.TestCase):
    """The torchvision and timm adapters' predictions.json and input size."""

    def test_spread(self):
        from vp_sdk.adapters.torchvision_adapter import spread

        self.assertEqual(spread(4, 16), [0, 1, 2, 3])
        self.assertEqual(spread(10, 4), [0, 2, 5, 7])
        self.assertEqual(spread(10, 0), [])

    def test_top_labels(self):
        from vp_sdk.adapters.torchvision_adapter import top_labels

        classes = [f"c{i}" for i in range(7)]
        got = top_labels([0.1, 0.05, 0.3, 0.2, 0.15, 0.12, 0.08], classes)
        self.assertEqual([t["label"] for t in got], ["c2", "c3", "c4", "c5", "c0"])
        self.assertEqual(got[0], {"label": "c2", "score": 0.3})
        self.assertEqual(
            top_labels([0.25, 0.75], ["cat", "dog"]),
            [
                {"label": "dog", "score": 0.75},
                {"label": "cat", "score": 0.25},
            ],
        )

    def test_prediction_count(self):
        from vp_sdk.adapters.torchvision_adapter import DEFAULT_PREDICTIONS, prediction_count

        def hp(extra):
            return Hyperparameters.from_platform({**REQUIRED, "extra": extra})

        self.assertEqual(prediction_count(hp({})), DEFAULT_PREDICTIONS)
        self.assertEqual(prediction_count(hp({"predictions": 3})), 3)
        for bad in (-1, "8", 2.5, True):
            with self.subTest(bad=bad), self.assertRaisesRegex(AdapterError, "hyperparameters.extra.predictions"):
                prediction_count(hp({"predictions": bad}))

    def test_size_kwargs(self):
        from vp_sdk.adapters.timm_adapter import size_kwargs

        self.assertEqual(size_kwargs(True, 224, 64), {"img_size": 64})  # a ViT for a smoke test
        self.assertEqual(size_kwargs(True, 224, 224), {})
        self.assertEqual(size_kwargs(False, 224, 320), {})  # a CNN takes any size

    def test_weights_host(self):
        from vp_sdk.adapters.timm_adapter import weights_host

        self.assertEqual(weights_host("timm/resnet18.a1_in1k", "", "https://huggingface.co"), ("huggingface.co", 443))
        self.assertEqual(weights_host("", "http://mirror:8080/w.pth", "https://huggingface.co"), ("mirror", 8080))
        self.assertIsNone(weights_host("", "", "https://huggingface.co"))


if __name__ == "__main__":
    unittest.main()
