"""timm adapter: the torchvision adapter's data, loop and metrics, timm's models.

ctx.model is a timm model name ("resnet50", "vit_base_patch16_224",
"convnext_tiny"), optionally with a pretrained tag ("resnet50.a1_in1k").
The inputs are resized to hyperparameters.imageSize and normalised with the
means and deviations of the model's pretrained_cfg. A model whose
pretrained_cfg has a fixed input size (the ViTs) is built for the size the
job asks for (timm's img_size) when that is not its default.

Weights: with ctx.weights the model is created without weights and loads
that state dict as the torchvision adapter does (the head kept out when
sized for other classes; a ViT's position embeddings resized by timm's
checkpoint filter when the input size differs). Otherwise the model hub's
weights only when hyperparameters.pretrained: when the hub cannot be
reached, and the weights are not in the local hub cache, that is a
WeightsUnavailable at once, without the download's retries. From scratch,
nothing is downloaded.
"""

import socket
import sys
import urllib.parse
import urllib.request

from vp_sdk.adapters.torchvision_adapter import IMAGENET_MEAN, IMAGENET_STD, TorchvisionAdapter, _say, load_weights
from vp_sdk.sdk import AdapterError, WeightsUnavailable

# How long the check that the weights' host answers waits for it, seconds.
REACH_TIMEOUT = 5

# The files of a timm model on the Hugging Face Hub, in timm's order.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def _timm():
    try:
        import timm
    except ImportError as e:
        raise AdapterError(f"timm is not installed in this image: {e}") from e
    return timm


def size_kwargs(fixed, default_size, size):
    """The create_model arguments that build a model for inputs of size:
    {"img_size": size} for a model of fixed input size (pretrained_cfg's
    fixed_input_size) whose default size (default_size) differs, else none."""
    if fixed and default_size and size != default_size:
        return {"img_size": size}
    return {}


def weights_host(hf_hub_id, url, endpoint):
    """(host, port) the pretrained weights come from: the hub's endpoint for
    a hub id, else the url's host; None when neither names one."""
    src = endpoint if hf_hub_id else url
    if not src:
        return None
    u = urllib.parse.urlsplit(src)
    if not u.hostname:
        return None
    return u.hostname, u.port or (80 if u.scheme == "http" else 443)


def unreachable(host, port, timeout=REACH_TIMEOUT):
    """Why host:port cannot be reached (through the proxy the environment
    names for it, if any), or "" when it answers."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get("https") or proxies.get("http")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if p.hostname:
            host, port = p.hostname, p.port or 80
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"{host}:{port} cannot be reached: {e}"
    return ""


class TimmAdapter(TorchvisionAdapter):
    framework = "timm"

    def _cfg(self, ctx):
        """ctx.model's pretrained_cfg (None when timm has none for it)."""
        timm = _timm()
        if not timm.is_model(ctx.model):
            raise AdapterError(f"timm has no model {ctx.model!r}")
        try:
            return timm.models.get_pretrained_cfg(ctx.model)
        except RuntimeError as e:  # a tag the architecture does not have
            raise AdapterError(f"timm model {ctx.model!r}: {e}") from e

    def normalization(self, ctx):
        cfg = self._cfg(ctx)
        if cfg is not None and cfg.mean and cfg.std and len(cfg.mean) == 3 and len(cfg.std) == 3:
            return tuple(cfg.mean), tuple(cfg.std)
        return IMAGENET_MEAN, IMAGENET_STD

    def build_model(self, ctx, num_classes):
        timm = _timm()
        cfg = self._cfg(ctx)
        size = ctx.hyperparameters.image_size
        default_size = cfg.input_size[-1] if cfg is not None and cfg.input_size else None
        fixed = bool(cfg is not None and cfg.fixed_input_size)
        kw = {"num_classes": num_classes, **size_kwargs(fixed, default_size, size)}
        if kw.get("img_size"):
            _say(f"timm's {ctx.model} takes inputs of one size ({default_size} px by default): built for {size} px")
        pretrained = ctx.hyperparameters.pretrained and not ctx.weights
        if pretrained:
            kw.update(self._hub_source(ctx, cfg))

        def create(**more):
            try:
                return timm.create_model(ctx.model, **kw, **more)
            except TypeError as e:
                if "img_size" in kw and "img_size" in str(e):
                    raise AdapterError(
                        f"timm's {ctx.model} takes inputs of {default_size} px only: "
                        f"set hyperparameters.imageSize to {default_size} (it is {size})"
                    ) from e
                raise AdapterError(f"timm cannot build {ctx.model}: {e}") from e
            except (RuntimeError, ValueError, AssertionError) as e:
                raise AdapterError(f"timm cannot build {ctx.model} for {size} px inputs: {e}") from e

        if ctx.weights:
            model = create(pretrained=False)
            self._initial = load_weights(model, ctx.weights, f"timm's {ctx.model}", adapt=self._adapter_for(model))
            return model
        if not pretrained:
            return create(pretrained=False)
        try:
            model = timm.create_model(ctx.model, pretrained=True, **kw)
        except Exception as e:  # network, hub, a file that does not load
            raise WeightsUnavailable(f"pretrained weights for {ctx.model} cannot be loaded: {e}") from e
        self._initial = {"source": "hub", "weights": cfg.hf_hub_id or cfg.url or cfg.file}
        return model

    def _hub_source(self, ctx, cfg):
        """What create_model takes to load the pretrained weights: nothing
        (timm downloads them) when their host answers; the file in the local
        hub cache when it does not; WeightsUnavailable when neither."""
        if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
            raise WeightsUnavailable(f"timm has no pretrained weights for {ctx.model}")
        if cfg.file:
            return {}
        try:
            import huggingface_hub
            from huggingface_hub import constants
        except ImportError:  # timm downloads from the url then
            huggingface_hub = constants = None
        hub_id = cfg.hf_hub_id if huggingface_hub else None
        if not (hub_id or cfg.url):
            raise WeightsUnavailable(
                f"pretrained weights for {ctx.model} are on the Hugging Face Hub ({cfg.hf_hub_id}) "
                "and huggingface_hub is not installed in this image"
            )
        where = hub_id or cfg.url
        cached = ""
        if hub_id:
            repo, _, rev = hub_id.partition("@")
            for name in HUB_FILES:
                p = huggingface_hub.try_to_load_from_cache(repo, name, revision=rev or None)
                if isinstance(p, str):
                    cached = p
                    break
        if hub_id and constants.HF_HUB_OFFLINE:  # the environment says: no network at all
            why = "HF_HUB_OFFLINE is set"
        else:
            host = weights_host(hub_id, cfg.url, constants.ENDPOINT if hub_id else "")
            why = unreachable(*host) if host else ""
            if not why:
                return {}
        if cached:
            _say(f"pretrained weights for {ctx.model}: {why}; loading {where} from the local hub cache")
            return {"pretrained_cfg_overlay": {"file": cached}}
        raise WeightsUnavailable(
            f"pretrained weights for {ctx.model} ({where}) cannot be downloaded: {why}. "
            "Import them into the platform to start from them, or train without pretrained"
        )

    @staticmethod
    def _adapter_for(model):
        """timm's filter for a state dict loaded into model (the model
        family's checkpoint_filter_fn: a ViT's position embeddings resized to
        its input size), or None."""
        fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
        if not callable(fn):
            return None

        def adapt(sd):
            try:
                return fn(sd, model)
            except Exception as e:  # a file timm's filter does not know: load it as it is
                _say(f"timm's checkpoint filter for {type(model).__name__} left the weights as they are: {e}")
                return sd

        return adapt
