"""timm adapter: the torchvision adapter's data and loop, timm's models.

With ctx.weights the model is created without weights and loads that state
dict as the torchvision adapter does (the head kept out when sized for
other classes); untested here, timm is not installed where the tests run.
"""

from vp_sdk.adapters.torchvision_adapter import TorchvisionAdapter, load_weights
from vp_sdk.sdk import AdapterError, WeightsUnavailable


class TimmAdapter(TorchvisionAdapter):
    framework = "timm"

    def build_model(self, ctx, num_classes):
        try:
            import timm
        except ImportError as e:
            raise AdapterError(f"timm is not installed in this image: {e}") from e
        if ctx.model not in timm.list_models():
            raise AdapterError(f"timm has no model {ctx.model!r}")
        if ctx.weights:
            model = timm.create_model(ctx.model, pretrained=False, num_classes=num_classes)
            self._initial = load_weights(model, ctx.weights, f"timm's {ctx.model}")
            return model
        try:
            return timm.create_model(ctx.model, pretrained=ctx.hyperparameters.pretrained, num_classes=num_classes)
        except Exception as e:
            if ctx.hyperparameters.pretrained:
                raise WeightsUnavailable(f"pretrained weights for {ctx.model} cannot be loaded: {e}") from e
            raise
