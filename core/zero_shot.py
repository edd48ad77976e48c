"""Zero-shot image classification with any aligned text and image towers (CLIP-style prompting).

Each label becomes a class vector: the label is written into every template (``"a photo of a
{}."``), the texts are embedded by the text tower, L2-normalised, averaged and normalised again
(Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision",
section 3.1.4). An image is assigned the label whose class vector has the highest cosine with the
image tower's embedding. Works for any pair of towers that embed into one space: the
``grounded_sentence`` caption and image towers, CG-VLM stage-1 towers, or two exported
``ContrastiveSystem`` columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["CAPTION_CLASSES", "DEFAULT_TEMPLATES", "ZeroShotClassifier", "labels_from_captions", "main"]

#: A small CLIP-style template set (label inserted at ``{}``).
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.", "a picture of a {}.", "a {}.")


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ZeroShotClassifier:
    """Classify images by cosine similarity with label prompts.

    Args:
        text_model: the text tower (anything with ``encode(list[str]) -> (N, D)``).
        image_model: the image tower (``encode(images) -> (N, D)``, same ``D``).
        templates: prompt templates with one ``{}`` for the label.
        labels: class names (may also be given to :meth:`set_labels` or per call).
        batch_size: encoding batch size.

    Example:
        >>> clf = ZeroShotClassifier(caption_model, image_model, ["a photo of a {}."], labels=["dog", "bike"])
        >>> clf.predict(["img1.jpg", "img2.jpg"])
        ['dog', 'bike']
    """

    def __init__(
        self,
        text_model: Any,
        image_model: Any,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        labels: Sequence[str] | None = None,
        batch_size: int = 64,
    ) -> None:
        if isinstance(templates, str):
            templates = [templates]
        templates = list(templates)
        if not templates:
            raise ValueError("ZeroShotClassifier needs at least one template")
        for i, t in enumerate(templates):
            if not isinstance(t, str) or t.count("{}") != 1:
                raise ValueError(f"template {i} ({t!r}) must be a string with exactly one '{{}}' for the label")
        t_dim, i_dim = getattr(text_model, "dim", None), getattr(image_model, "dim", None)
        if t_dim is not None and i_dim is not None and t_dim != i_dim:
            raise ValueError(f"the towers are not aligned: text embeds in {t_dim} dimensions, images in {i_dim}")
        self.text_model, self.image_model = text_model, image_model
        self.templates, self.batch_size = templates, batch_size
        self.labels: list[str] = []
        self.class_embeddings = np.zeros((0, 0), dtype=np.float32)
        if labels is not None:
            self.set_labels(labels)

    def set_labels(self, labels: Sequence[str]) -> ZeroShotClassifier:
        """Embed the class prompts of ``labels`` -> :attr:`class_embeddings` ``(C, D)``; returns ``self``."""
        if isinstance(labels, str):
            raise TypeError("labels must be a list of class names, got a single string")
        labels = list(labels)
        if len(labels) < 2:
            raise ValueError(f"zero-shot classification needs at least 2 labels, got {len(labels)}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be distinct, got {labels}")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise ValueError(f"label {i} must be a non-empty string, got {label!r}")
        prompts = [t.format(label) for label in labels for t in self.templates]
        emb = _normalise(np.asarray(self.text_model.encode(prompts, batch_size=self.batch_size), dtype=np.float32))
        emb = emb.reshape(len(labels), len(self.templates), -1).mean(axis=1)  # (C, D)
        self.labels, self.class_embeddings = labels, _normalise(emb).astype(np.float32)
        return self

    def scores(self, images: Sequence[Any], labels: Sequence[str] | None = None) -> np.ndarray:
        """Cosine of every image with every class vector -> ``(N, C)``."""
        if labels is not None:
            self.set_labels(labels)
        if not self.labels:
            raise ValueError("no labels: pass labels= to ZeroShotClassifier, set_labels() or this call")
        images = list(images)
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        img = _normalise(np.asarray(self.image_model.encode(images, batch_size=self.batch_size), dtype=np.float32))
        if img.shape[1] != self.class_embeddings.shape[1]:
            raise ValueError(
                f"the towers are not aligned: images embed in {img.shape[1]} dimensions, "
                f"text in {self.class_embeddings.shape[1]}"
            )
        return img @ self.class_embeddings.T

    def predict_proba(self, images: Sequence[Any], temperature: float = 0.01) -> np.ndarray:
        """Softmax over classes of ``scores / temperature`` -> ``(N, C)`` (CLIP's logit scale is 1/0.01)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        logits = self.scores(images) / temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, images: Sequence[Any], labels: Sequence[str] | None = None) -> list[str]:
        """The best label of each image."""
        s = self.scores(images, labels)
        return [self.labels[i] for i in s.argmax(axis=1)]

    def evaluate(self, images: Sequence[Any], targets: Sequence[str]) -> dict[str, float]:
        """Accuracy, balanced accuracy (mean per-class recall; chance = 1 / classes) and the majority-class
        baseline of :meth:`predict` against ``targets`` labels."""
        images, targets = list(images), list(targets)
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        if not images:
            raise ValueError("evaluate() needs at least one image")
        unknown = sorted(set(targets) - set(self.labels))
        if unknown:
            raise ValueError(f"targets name labels the classifier does not know: {unknown[:5]}")
        pred = self.predict(images)
        hit = np.array([p == t for p, t in zip(pred, targets)])
        present = sorted(set(targets))
        balanced = np.mean([hit[[t == c for t in targets]].mean() for c in present])
        majority = max(targets.count(label) for label in present) / len(targets)
        return {
            "accuracy": float(hit.mean()),
            "balanced_accuracy": float(balanced),
            "majority_baseline": float(majority),
            "n": float(len(targets)),
        }


#: Classes for labelling Flickr-style captioned photos: label -> words that name it in a caption.
CAPTION_CLASSES: dict[str, tuple[str, ...]] = {
    "dog": ("dog", "dogs", "puppy", "puppies"),
    "bicycle": ("bike", "bikes", "bicycle", "bicycles", "biker", "bikers", "cyclist", "cyclists", "bmx"),
    "beach": ("beach", "ocean", "sea", "surf", "surfer", "surfers", "surfing", "waves"),
    "snow": ("snow", "snowy", "ski", "skier", "skiers", "skiing", "snowboard", "snowboarder", "sled"),
}


def labels_from_captions(
    captions: Mapping[str, Sequence[str]],
    classes: Mapping[str, Sequence[str]] = CAPTION_CLASSES,
    min_votes: int = 3,
) -> dict[str, str]:
    """Label images by what their human captions say: ``{image: label}``.

    An image gets label ``c`` when at least ``min_votes`` of its captions contain one of ``c``'s
    words (whole words, case-insensitive) and no other class reaches ``min_votes``; other images
    are left out. The labels come from the annotators' words, never from a model.
    """
    patterns = {c: re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I) for c, words in classes.items()}
    out = {}
    for image, caps in captions.items():
        votes = {c: sum(bool(p.search(t)) for t in caps) for c, p in patterns.items()}
        winners = [c for c, v in votes.items() if v >= min_votes]
        if len(winners) == 1:
            out[image] = winners[0]
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m polymodal.zero_shot``: zero-shot accuracy of two towers on a captioned image folder.

    Labels come from :func:`labels_from_captions` over a ``image<TAB>caption_idx<TAB>caption`` table;
    ``--first-image`` skips the images a model was trained on (sorted by name, as the
    grounded_sentence recipe splits them). Prints one JSON line.
    """
    import argparse
    import json
    from pathlib import Path

    import polymodal
    from polymodal.data.tables import read_table

    p = argparse.ArgumentParser(prog="python -m polymodal.zero_shot", description=(main.__doc__ or "").splitlines()[0])
    p.add_argument("--text-model", required=True)
    p.add_argument("--image-model", required=True)
    p.add_argument("--captions", required=True, help="table with image and caption columns")
    p.add_argument("--images", required=True, help="folder of the images")
    p.add_argument("--first-image", type=int, default=0, help="skip the first N images (sorted by name)")
    p.add_argument("--templates", nargs="+", default=list(DEFAULT_TEMPLATES))
    p.add_argument("--min-votes", type=int, default=3)
    ns = p.parse_args(argv)
    table = read_table(ns.captions)
    captions: dict[str, list[str]] = {}
    for image, caption in zip(table["image"].astype(str), table["caption"].astype(str)):
        captions.setdefault(image, []).append(caption)
    kept = sorted(captions)[ns.first_image :]
    labels = labels_from_captions({k: captions[k] for k in kept}, min_votes=ns.min_votes)
    if not labels:
        raise SystemExit(f"{ns.captions}: no image has {ns.min_votes} captions naming exactly one class")
    images = sorted(labels)
    clf = ZeroShotClassifier(
        polymodal.load(ns.text_model), polymodal.load(ns.image_model), ns.templates, labels=list(CAPTION_CLASSES)
    )
    result = clf.evaluate([str(Path(ns.images) / i) for i in images], [labels[i] for i in images])
    counts = {c: sum(v == c for v in labels.values()) for c in CAPTION_CLASSES}
    record = {**result, "images_considered": len(kept), "per_class": counts, "templates": ns.templates}
    print(json.dumps(record))
    return record


if __name__ == "__main__":  # pragma: no cover
    main()
