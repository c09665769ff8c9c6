"""huggingface adapter, captioning: BLIP with transformers' Trainer.

The data (format coco): annotations/captions_train.json and
annotations/captions_val.json, each {"images": [{id, file_name, width,
height}], "annotations": [{id, image_id, caption}]} with any number of
captions an image, the images under images/<split>/ (or <split>/). Each
(image, caption) pair is a training example. Without captions_val.json a
seeded fifth of the training images is held out.

The model (BlipForConditionalGeneration): ctx.model "blip" trains from
scratch with no download: BLIP base's architecture (ViT-B/16 image encoder
at hyperparameters.imageSize, a 12-layer BERT-base decoder) and a
word-level tokenizer built from the training captions (lower case, words
and punctuation, [PAD] [UNK] [CLS] [SEP] [MASK]; [CLS] starts a caption,
[SEP] ends it). hyperparameters.extra.visionConfig and extra.textConfig
set fields of BlipVisionConfig and BlipTextConfig (a smaller model, for
instance). With pretrained: true, ctx.model is a hub id
("Salesforce/blip-image-captioning-base"): its BlipProcessor and weights,
at the processor's image size (384), or WeightsUnavailable. ctx.weights
is the folder save_pretrained writes with its processor files (what
export writes; a folder or an archive, see saved_model), or a single state
dict for the scratch model.

Metrics each epoch (images/python/PROTOCOL.md): loss, lr, val_loss (the
decoder's loss on the validation pairs), bleu4 (corpus BLEU-4 with the
brevity penalty) and cider (CIDEr-D, the validation references' document
frequencies) of the captions generated for the validation images
(extra.numBeams beams, 3 by default; at most extra.maxLength tokens, 40,
the longest training caption too).
Both compare lower-case words, punctuation left out. predictions.json
holds the generated caption and the references of up to 16 validation
images (extra.predictions).

Training, checkpoints and resume are TrainerAdapter.fit's (the
huggingface adapter); a resumed scratch run builds the same tokenizer from
the same captions (the vocabulary is ordered by frequency, then by word).
export writes the model and its BlipProcessor (tokenizer and image
processor) with save_pretrained under ctx.weights_dir.

extra_value and count_parameters serve hf_pose too.
"""

import json
import math
import os
import re
from collections import Counter

from vp_sdk.adapters.huggingface_adapter import ValidatingAdapter, _transformers, saved_model
from vp_sdk.adapters.torchvision_adapter import _say, _torch, load_weights
from vp_sdk.sdk import AdapterError, WeightsUnavailable

# The scratch tokenizer's special tokens, in id order.
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# The image normalisation of BLIP's processor (OpenAI CLIP's).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


# -- shared with hf_pose ---------------------------------------------------
def extra_value(hp, name, kind, default, minimum=None):
    """hyperparameters.extra[name] checked against kind (int, float, bool,
    str or dict), or default when absent."""
    v = hp.extra.get(name)
    if v is None:
        return default
    if kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif kind is int:
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, kind)
    if ok and minimum is not None and v < minimum:
        ok = False
    if not ok:
        want = {dict: "an object", str: "a string", bool: "true or false"}.get(kind, kind.__name__)
        if minimum is not None:
            want += f" of at least {minimum}"
        raise AdapterError(f"hyperparameters.extra.{name}: want {want}, got {v!r}")
    return kind(v)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


# from_pretrained's options: trained in float32, whatever the checkpoint's
# dtype (transformers 5 loads it as saved by default).
_LOAD = {"dtype": "float32"}


def _untie(model, sd):
    """sd with the tied tensors that save_pretrained leaves out (BLIP's
    output layer, tied to the word embeddings) taken from their sources."""
    tied = getattr(model, "_tied_weights_keys", None)
    if isinstance(tied, dict):
        for target, source in tied.items():
            if target not in sd and source in sd:
                sd[target] = sd[source]
    return sd


# -- caption metrics -------------------------------------------------------
def words(text):
    """The lower-case words of a caption, punctuation left out."""
    return _WORD.findall(text.lower())


def _ngrams(ws, n):
    return Counter(tuple(ws[i : i + n]) for i in range(len(ws) - n + 1))


def corpus_bleu(hyps, refs, max_n=4):
    """Corpus BLEU-max_n: hyps a list of word lists, refs for each a list of
    word lists. The clipped n-gram precisions of the whole corpus, their
    geometric mean, times the brevity penalty (the reference length nearest
    each hypothesis', the shorter on a tie). 0 when a precision is 0."""
    matched, total = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for h, rs in zip(hyps, refs, strict=True):
        hyp_len += len(h)
        ref_len += len(min(rs, key=lambda r: (abs(len(r) - len(h)), len(r)), default=[]))
        for n in range(1, max_n + 1):
            most = Counter()
            for r in rs:
                most |= _ngrams(r, n)
            counts = _ngrams(h, n)
            matched[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0 or min(matched) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / max_n
    bp = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return bp * math.exp(log_p)


def cider_d(hyps, refs, max_n=4, sigma=6.0):
    """CIDEr-D: for n = 1..max_n, the TF-IDF vectors of a hypothesis' and a
    reference's n-grams (the document frequencies those of the references,
    an image's references one document) compared by cosine with the
    hypothesis' weights clipped at the reference's and a Gaussian penalty
    on the length difference (sigma), averaged over n and the image's
    references, times 10; the mean over the images."""
    if not hyps:
        return 0.0
    df = Counter()
    for rs in refs:
        df.update({g for r in rs for n in range(1, max_n + 1) for g in _ngrams(r, n)})
    log_docs = math.log(float(len(refs)))

    def vectors(ws):
        out = []
        for n in range(1, max_n + 1):
            v = {g: c * (log_docs - math.log(max(1.0, df[g]))) for g, c in _ngrams(ws, n).items()}
            out.append((v, math.sqrt(sum(x * x for x in v.values()))))
        return out

    scores = []
    for h, rs in zip(hyps, refs, strict=True):
        vh = vectors(h)
        total = 0.0
        for r in rs:
            penalty = math.exp(-((len(h) - len(r)) ** 2) / (2 * sigma**2))
            for (a, na), (b, nb) in zip(vh, vectors(r), strict=True):
                if na == 0 or nb == 0:
                    continue
                dot = sum(min(x, b.get(g, 0.0)) * b.get(g, 0.0) for g, x in a.items())
                total += penalty * dot / (na * nb)
        scores.append(10.0 * total / (max_n * max(len(rs), 1)))
    return sum(scores) / len(scores)


# -- data ------------------------------------------------------------------
class _Image:
    """An image of the dataset and its captions."""

    def __init__(self, path, rel, captions):
        self.path, self.rel, self.captions = path, rel, captions


def _read_split(root, split):
    """The images with captions of annotations/captions_<split>.json, or
    None when the file is not there."""
    name = f"annotations/captions_{split}.json"
    path = os.path.join(root, name)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise AdapterError(f"{name}: not read: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise AdapterError(f"{name}: want an object with images and annotations")
    folder = next((d for d in (os.path.join("images", split), split) if os.path.isdir(os.path.join(root, d))), None)
    if folder is None:
        raise AdapterError(f"{name}: no image folder images/{split}/ (or {split}/) beside annotations/")
    images, captions = {}, {}
    for i, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise AdapterError(f"{name}: images[{i}]: want an object with id and file_name")
        images[im["id"]] = im["file_name"]
    for i, a in enumerate(doc.get("annotations") or []):
        if not isinstance(a, dict) or a.get("image_id") not in images:
            raise AdapterError(f"{name}: annotations[{i}]: image_id {a.get('image_id')!r} is not an image's id")
        cap = a.get("caption")
        if not isinstance(cap, str) or not cap.strip():
            raise AdapterError(f"{name}: annotations[{i}]: caption: want a non-empty string, got {cap!r}")
        captions.setdefault(a["image_id"], []).append(cap.strip())
    out = []
    for iid, file_name in images.items():
        if iid not in captions:
            continue
        rel = os.path.join(folder, file_name)
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            raise AdapterError(f"{name}: image {iid}: no file {rel}")
        out.append(_Image(path, rel, captions[iid]))
    return out


def _open_image(path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as e:
        raise AdapterError(f"image {path}: not read: {e}") from e


class _Pairs:
    """The (image, caption) pairs of images as the model's inputs."""

    def __init__(self, images, pixels, tokenize):
        self.images, self.pixels, self.tokenize = images, pixels, tokenize
        self.pairs = [(i, c) for i, im in enumerate(images) for c in im.captions]

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, k):
        i, caption = self.pairs[k]
        return {"pixel_values": self.pixels(self.images[i].path), "input_ids": self.tokenize(caption)}


def word_tokenizer(captions, vocab_size, max_length):
    """A word-level tokenizer of the captions' words (PreTrainedTokenizerFast):
    the vocab_size - 5 most frequent, ties in word order, so that the same
    captions give the same tokenizer (a resumed run's)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tf = _transformers()
    norm = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    pre = pre_tokenizers.Whitespace()
    counts = Counter()
    for c in captions:
        counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(c)))
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in sorted(counts, key=lambda w: (-counts[w], w))[: max(vocab_size - len(SPECIALS), 0)]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = norm
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, vocab[t]) for t in ("[CLS]", "[SEP]")]
    )
    # joins words with spaces and takes the space before punctuation away
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[CLS]",
        eos_token="[SEP]",
        model_max_length=max_length,
    )


class CaptioningAdapter(ValidatingAdapter):
    """BLIP captioning (see the module's doc)."""

    def __init__(self):
        super().__init__()
        self._processor = None  # BlipProcessor: tokenizer and image processor, set by train
        self._image_size = 0
        self._special = {}  # the ids of the decoder's pad and start tokens
        self._max_length = 40  # a caption's most tokens (extra.maxLength)

    # -- data -------------------------------------------------------------
    def prepare_data(self, ctx):
        if ctx.dataset_format != "coco":
            raise AdapterError(
                f"captioning takes coco datasets (annotations/captions_<split>.json), not {ctx.dataset_format}"
            )
        train = _read_split(ctx.dataset_dir, "train")
        if train is None:
            raise AdapterError(f"no annotations/captions_train.json in {ctx.dataset_dir}")
        if not train:
            raise AdapterError("annotations/captions_train.json: no image has a caption")
        val = _read_split(ctx.dataset_dir, "val")
        if val is None:
            if len(train) < 2:
                raise AdapterError(
                    "annotations/captions_train.json: one image, none to hold out for validation "
                    "(add annotations/captions_val.json)"
                )
            import random

            order = list(range(len(train)))
            random.Random(ctx.hyperparameters.seed).shuffle(order)
            held = set(order[: max(1, len(train) // 5)])
            val = [im for i, im in enumerate(train) if i in held]
            train = [im for i, im in enumerate(train) if i not in held]
        if not val:
            raise AdapterError("annotations/captions_val.json: no image has a caption")
        return {"train": train, "val": val}

    # -- model ------------------------------------------------------------
    def build_blip(self, ctx, data):
        """The model and its BlipProcessor."""
        tf = _transformers()
        hp = ctx.hyperparameters
        if ctx.weights:
            src = saved_model(ctx.weights)
            name = os.path.basename(ctx.weights)
            if os.path.isdir(src):
                try:
                    processor = tf.BlipProcessor.from_pretrained(src, local_files_only=True)
                    model = tf.BlipForConditionalGeneration.from_pretrained(src, local_files_only=True, **_LOAD)
                except Exception as e:
                    raise AdapterError(
                        f"weights {name}: transformers cannot load a BLIP model and its processor "
                        f"(tokenizer and image processor files) from it: {e}"
                    ) from e
                self._initial = {"source": "file", "file": name}
                return model, processor
            model, processor = self._scratch_blip(ctx, tf, data)
            self._initial = load_weights(model, src, "transformers' BLIP", adapt=lambda sd: _untie(model, sd))
            return model, processor
        if hp.pretrained:
            try:
                # the model first: unreachable, it fails after one round of the hub's retries
                model = tf.BlipForConditionalGeneration.from_pretrained(ctx.model, **_LOAD)
                processor = tf.BlipProcessor.from_pretrained(ctx.model)
            except Exception as e:
                raise WeightsUnavailable(f"pretrained weights for {ctx.model} cannot be loaded: {e}") from e
            return model, processor
        if ctx.model.lower() != "blip":
            raise AdapterError(
                "captioning trains BLIP: --model blip from scratch, or a hub id with pretrained: true, "
                f"not {ctx.model!r}"
            )
        return self._scratch_blip(ctx, tf, data)

    def _scratch_blip(self, ctx, tf, data):
        hp = ctx.hyperparameters
        max_length = extra_value(hp, "maxLength", int, 40, 4)
        captions = [c for im in data["train"] for c in im.captions]
        tokenizer = word_tokenizer(captions, extra_value(hp, "vocabSize", int, 30000, len(SPECIALS) + 1), max_length)
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIALS}
        text = {
            "vocab_size": len(tokenizer),
            "bos_token_id": ids["[CLS]"],
            "pad_token_id": ids["[PAD]"],
            "sep_token_id": ids["[SEP]"],
            "eos_token_id": ids["[SEP]"],
            "max_position_embeddings": max(512, max_length + 2),
        }
        text.update(extra_value(hp, "textConfig", dict, {}))
        # BLIP's ViT draws its position embeddings with std 0.02, not BlipVisionConfig's 1e-10
        vision = {"image_size": hp.image_size, "initializer_range": 0.02}
        vision.update(extra_value(hp, "visionConfig", dict, {}))
        try:
            cfg = tf.BlipConfig(text_config=text, vision_config=vision)
            model = tf.BlipForConditionalGeneration(cfg)
        except (TypeError, ValueError) as e:
            raise AdapterError(f"hyperparameters.extra.textConfig or visionConfig: not a BLIP config: {e}") from e
        size = cfg.vision_config.image_size
        images = tf.BlipImageProcessor(size={"height": size, "width": size}, image_mean=CLIP_MEAN, image_std=CLIP_STD)
        return model, tf.BlipProcessor(image_processor=images, tokenizer=tokenizer)

    # -- train ------------------------------------------------------------
    def train(self, ctx, data):
        tf = _transformers()
        hp = ctx.hyperparameters
        tf.set_seed(hp.seed)
        self._data = data
        self._max_length = extra_value(hp, "maxLength", int, 40, 4)
        model, processor = self.build_blip(ctx, data)
        self._processor = processor
        size = processor.image_processor.size
        self._image_size = int(size["height"] if isinstance(size, dict) else size.height)
        text = model.config.text_config
        self._special = {"pad": text.pad_token_id, "bos": text.bos_token_id}
        _say(f"BLIP: {count_parameters(model):,} parameters, {text.vocab_size} tokens, {self._image_size} px input")
        self.note_initial(ctx, model)
        # the Trainer would hand token counts to forward, which BLIP's loss does not take
        model.accepts_loss_kwargs = False
        model = self.fit(ctx, model, _Pairs(data["train"], self._pixels, self._tokenize), self._collate, data)
        self._trained = True
        return model

    def _tokenize(self, caption):
        return self._processor.tokenizer(caption, truncation=True, max_length=self._max_length)["input_ids"]

    def _pixels(self, path):
        return self._processor.image_processor(images=_open_image(path), return_tensors="pt")["pixel_values"][0]

    def _collate(self, items):
        torch, _ = _torch()
        longest = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), longest), self._special["pad"], dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for i, it in enumerate(items):
            ids[i, : len(it["input_ids"])] = torch.tensor(it["input_ids"], dtype=torch.long)
            mask[i, : len(it["input_ids"])] = 1
        # the decoder starts from the model's start token, as generate does (BLIP's [DEC] for the hub's)
        ids[:, 0] = self._special["bos"]
        return {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),
            "input_ids": ids,
            "attention_mask": mask,
            "labels": ids.masked_fill(mask == 0, -100),
        }

    # -- evaluate ---------------------------------------------------------
    def _validate(self, ctx, model, data):
        """The validation metrics and the captions of the validation images."""
        torch, _ = _torch()
        hp = ctx.hyperparameters
        dev = next(model.parameters()).device
        bs = hp.batch_size
        beams = extra_value(hp, "numBeams", int, 3, 1)
        max_length = extra_value(hp, "maxLength", int, 40, 4)
        model.eval()
        pairs = _Pairs(data["val"], self._pixels, self._tokenize)
        images = data["val"]
        total, tokens, captions = 0.0, 0, []
        with torch.no_grad():
            for s in range(0, len(pairs), bs):
                batch = self._collate([pairs[k] for k in range(s, min(s + bs, len(pairs)))])
                batch = {k: v.to(dev) for k, v in batch.items()}
                n = int((batch["labels"][:, 1:] != -100).sum())
                total += float(model(**batch).loss) * n
                tokens += n
            for s in range(0, len(images), bs):
                pixels = torch.stack([self._pixels(im.path) for im in images[s : s + bs]]).to(dev)
                out = model.generate(pixel_values=pixels, max_new_tokens=max_length, num_beams=beams)
                captions += self._processor.tokenizer.batch_decode(out, skip_special_tokens=True)
        hyps = [words(c) for c in captions]
        refs = [[words(r) for r in im.captions] for im in images]
        metrics = {"bleu4": corpus_bleu(hyps, refs), "cider": cider_d(hyps, refs), "val_loss": total / max(tokens, 1)}
        predictions = [
            {"image": im.rel, "caption": c.strip(), "references": im.captions}
            for im, c in zip(images, captions, strict=True)
        ]
        return metrics, predictions

    def export(self, ctx, model):
        self._processor.save_pretrained(ctx.weights_dir)
        super().export(ctx, model)

    def model_card(self, ctx, model):
        return {
            "device": str(next(model.parameters()).device),
            "parameters": count_parameters(model),
            "imageSize": self._image_size,
            "vocabulary": model.config.text_config.vocab_size,
            "initialWeights": self._initial,
        }
