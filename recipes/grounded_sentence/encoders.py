"""The two towers of the visually grounded sentence encoder (Merkx & Frank 2019).

* :class:`CharGRUEncoder`: characters -> embeddings -> bidirectional GRU -> vectorial
  self-attention pooling. No words, no word embeddings, no pretrained text knowledge.
* :class:`ImageProjection`: a frozen image backbone (the bundled ImageNet EfficientNet-lite0 by
  default) and a trainable linear projection into the common space. Its features can be
  precomputed once per image folder (``image_root`` + ``feature_cache``), which makes training
  on a CPU cheap; the exported tower still runs the backbone on raw images.

Reference:
    Danny Merkx and Stefan L. Frank. 2019. Learning semantic sentence representations from
    visually grounded language without lexical knowledge. Natural Language Engineering 25(4),
    451-466. https://arxiv.org/abs/1903.11393 (code: github.com/DannyMerkx/caption2image).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder, Processor

__all__ = [
    "DEFAULT_ALPHABET",
    "CharGRUEncoder",
    "CharProcessor",
    "ImageFeatureProcessor",
    "ImageProjection",
    "VectorialAttentionPooling",
]

log = logging.getLogger(__name__)

#: Printable ASCII (space to tilde): ids 2..96. 0 is padding, 1 any other character.
DEFAULT_ALPHABET = "".join(chr(c) for c in range(32, 127))
PAD_ID, UNK_ID = 0, 1
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


# --------------------------------------------------------------------------------------- text tower
class CharProcessor(Processor):
    """Strings -> padded character ids (no tokenisation, no vocabulary of words).

    Args:
        alphabet: characters with their own id (``2 + position``); others map to 1 (unknown).
        max_length: truncate longer strings to this many characters.
        lowercase: lowercase before lookup.
    """

    def __init__(self, alphabet: str = DEFAULT_ALPHABET, max_length: int = 256, lowercase: bool = False) -> None:
        if not alphabet:
            raise ValueError("alphabet is empty")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("alphabet has repeated characters")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.alphabet = alphabet
        self.max_length = int(max_length)
        self.lowercase = bool(lowercase)
        self._index = {c: i + 2 for i, c in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 2

    def validate(self, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        if not value.strip():
            raise ValueError("empty string")

    def ids(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"expected a string, got {type(text).__name__}")
        text = text.lower() if self.lowercase else text
        ids = [self._index.get(c, UNK_ID) for c in text[: self.max_length]]
        return ids or [UNK_ID]  # an empty string still has one (unknown) position

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [min(len(v), self.max_length) if isinstance(v, str) else 0 for v in values]

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        rows = [self.ids(v) for v in values]
        T = max((len(r) for r in rows), default=1)
        ids = np.zeros((len(rows), T), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
        ids_t = torch.from_numpy(ids)  # (B, T)
        return {"char_ids": ids_t, "attention_mask": ids_t != PAD_ID}

    def get_config(self) -> dict[str, Any]:
        return {"alphabet": self.alphabet, "max_length": self.max_length, "lowercase": self.lowercase}


class VectorialAttentionPooling(nn.Module):
    """Multi-head *vectorial* self-attention pooling over time, padding masked out.

    Each head scores every feature of every position with a two-layer MLP
    (``D -> hidden -> D``, tanh), takes a softmax over the valid time steps per feature, and
    sums the weighted sequence; heads are concatenated. (Merkx & Frank 2019, section 3.)

    Args:
        dim: feature width ``D``.
        hidden_dim: MLP width.
        heads: number of heads; the output has ``heads * D`` features.
    """

    def __init__(self, dim: int, hidden_dim: int = 128, heads: int = 1) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        self.heads = heads
        self.score = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, dim)) for _ in range(heads)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # x (B, T, D), mask (B, T) bool
        neg = torch.finfo(x.dtype).min
        out = []
        for mlp in self.score:
            logits = mlp(x).masked_fill(~mask[:, :, None], neg)  # (B, T, D)
            alpha = torch.softmax(logits, dim=1)  # (B, T, D), 0 on padding
            out.append((alpha * x).sum(dim=1))  # (B, D)
        return torch.cat(out, dim=-1)  # (B, heads * D)


class CharGRUEncoder(Encoder):
    """Character embeddings -> bidirectional GRU -> vectorial attention pooling.

    ``Features.sequence`` holds the GRU states ``(B, T, 2 * hidden_dim)`` (padding masked);
    ``Features.pooled`` the attention-pooled sentence vector ``(B, heads * 2 * hidden_dim)``.
    Pool with ``ClsPooler(use_pooled=True)``. ``output_dim`` is the pooled width (with
    ``heads=1`` the two widths agree and any sequence pooler works too).

    Padding never reaches the result: sequences are packed for the GRU and padded positions get
    zero attention, so a sentence's embedding does not depend on what it is batched with.

    Args:
        embedding_dim: character embedding width (the paper: 20).
        hidden_dim: GRU width per direction (the paper: 1024).
        num_layers: stacked GRU layers.
        attention_dim: attention MLP width (the paper: 128).
        heads: attention heads (the paper: 2).
        dropout: dropout between GRU layers.
        alphabet: characters with their own embedding (printable ASCII by default).
        max_length: truncate captions to this many characters.
        lowercase: lowercase the text first.
    """

    modality = "text"

    def __init__(
        self,
        embedding_dim: int = 20,
        hidden_dim: int = 256,
        num_layers: int = 1,
        attention_dim: int = 128,
        heads: int = 1,
        dropout: float = 0.0,
        alphabet: str = DEFAULT_ALPHABET,
        max_length: int = 256,
        lowercase: bool = False,
    ) -> None:
        super().__init__()
        self._processor = CharProcessor(alphabet, max_length, lowercase)
        self.config = {
            "embedding_dim": embedding_dim,
            "hidden_dim": hidden_dim,
            "num_layers": num_layers,
            "attention_dim": attention_dim,
            "heads": heads,
            "dropout": dropout,
            **self._processor.get_config(),
        }
        self.embed = nn.Embedding(self._processor.vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.rnn = nn.GRU(
            embedding_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.attention = VectorialAttentionPooling(2 * hidden_dim, attention_dim, heads)
        self._dim = heads * 2 * hidden_dim

    @property
    def processor(self) -> CharProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self._dim

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        ids = inputs["char_ids"]  # (B, T)
        mask = inputs.get("attention_mask")
        mask = (ids != PAD_ID) if mask is None else mask.bool()
        lengths = mask.sum(dim=1).clamp(min=1)  # (B,)
        x = self.embed(ids)  # (B, T, E)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        seq, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # (B, T, 2H)
        pooled = self.attention(seq, mask)  # (B, heads * 2H)
        return Features(sequence=seq, mask=mask, pooled=pooled)

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> CharGRUEncoder:
        return cls(**config)


# -------------------------------------------------------------------------------------- image tower
class ImageFeatureProcessor(Processor):
    """Image values -> precomputed backbone features when every value of the batch is cached,
    else pixels (through the backbone's own :class:`ImageProcessor`).

    Args:
        image_processor: the backbone's processor (decoding, resize, crop, normalise).
        cache: resolved image path -> ``(C,)`` feature vector; ``None`` or empty: always pixels.
        root: folder that relative paths are resolved against.
    """

    def __init__(self, image_processor: Processor, cache: dict[str, Tensor] | None = None, root: str | None = None):
        self.image_processor = image_processor
        self.cache = cache or {}
        self.root = root

    def _key(self, value: Any) -> str | None:
        if not isinstance(value, (str, os.PathLike)):
            return None
        path = Path(value)
        if self.root is not None and not path.is_absolute():
            path = Path(self.root) / path
        return str(path.resolve())

    def validate(self, value: Any) -> None:
        key = self._key(value)
        if key is not None and key in self.cache:
            return
        self.image_processor.validate(value if key is None else key)

    def lengths(self, values: Sequence[Any]) -> list[int]:
        return [0] * len(values)

    def __call__(self, values: Sequence[Any]) -> dict[str, Tensor]:
        keys = [self._key(v) for v in values]
        if self.cache and values and all(k is not None and k in self.cache for k in keys):
            return {"image_features": torch.stack([self.cache[k] for k in keys])}  # (B, C)
        return self.image_processor([v if k is None else k for v, k in zip(values, keys)])


class ImageProjection(Encoder):
    """A frozen image backbone and a trainable linear map into the joint space.

    Args:
        backbone: ``ImageEncoder`` model name (``"efficientnet-lite0"``: bundled ImageNet weights;
            any timm name builds a random backbone, e.g. ``"test_efficientnet"`` for tests).
        dim: output width (must equal the caption tower's).
        pretrained: load the bundled backbone weights (ignored for other names).
        image_root: folder the image values are relative to; with ``feature_cache`` every image
            in it gets its backbone features computed once.
        feature_cache: folder for the precomputed features (e.g. ``/tmp/polymodal_cache``); the file
            name hashes the backbone config and the folder's file names, sizes and mtimes.
        backbone_kwargs: extra ``ImageEncoder`` arguments (``image_size``, ``model_kwargs``, ...).
        batch_size: images per forward pass when filling the cache.
        backbone_config: an ``ImageEncoder.get_config()`` to rebuild the backbone from (used when a
            saved model is loaded; its weights then come from the model file).
    """

    modality = "image"

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        dim: int = 512,
        pretrained: bool = True,
        image_root: str | None = None,
        feature_cache: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        batch_size: int = 32,
        backbone_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from polymodal.plugins.image import ImageEncoder

        if backbone_config is not None:  # rebuilt from a saved model: the weights follow
            self.backbone = ImageEncoder.from_config(backbone_config, Path("."))
        else:
            self.backbone = ImageEncoder(backbone, pretrained=pretrained, **dict(backbone_kwargs or {}))
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        self.proj = nn.Linear(self.backbone.output_dim, dim)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self._dim = int(dim)
        self.image_root = image_root
        cache = None
        if feature_cache is not None:
            if image_root is None:
                raise ValueError("feature_cache needs image_root: the folder whose images get precomputed")
            cache = self.precompute(image_root, feature_cache, batch_size)
        self._processor = ImageFeatureProcessor(self.backbone.processor, cache, image_root)

    def train(self, mode: bool = True) -> ImageProjection:
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics never move
        return self

    @property
    def processor(self) -> ImageFeatureProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self._dim

    @torch.no_grad()
    def backbone_features(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """``(B, C)`` pooled backbone features of a pixel batch."""
        self.backbone.eval()
        feats = self.backbone(inputs)
        return feats.pooled if feats.pooled is not None else feats.sequence.mean(dim=1)

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        if "image_features" in inputs:
            x = inputs["image_features"].to(self.proj.weight.dtype)  # (B, C)
        else:
            x = self.backbone_features(inputs)  # (B, C)
        pooled = self.proj(x)  # (B, D)
        seq = pooled[:, None, :]  # (B, 1, D)
        mask = torch.ones(seq.shape[:2], dtype=torch.bool, device=seq.device)
        return Features(sequence=seq, mask=mask, pooled=pooled)

    def precompute(self, image_root: str, feature_cache: str, batch_size: int = 32) -> dict[str, Tensor]:
        """Backbone features of every image in ``image_root``, computed once and kept on disk."""
        root = Path(image_root).resolve()
        if not root.is_dir():
            raise ValueError(f"image_root is not a folder: {root}")
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
        digest = hashlib.sha256()
        digest.update(json.dumps(self.backbone.get_config(), sort_keys=True).encode())
        digest.update(str(sum(p.numel() for p in self.backbone.parameters())).encode())
        for t in list(self.backbone.state_dict().values())[:3]:  # weights differ -> features differ
            digest.update(t.detach().float().cpu().numpy().tobytes()[:4096])
        for p in files:
            st = p.stat()
            digest.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        target = Path(feature_cache) / f"grounded_{root.name}_{digest.hexdigest()[:16]}.pt"
        if target.is_file():
            saved = torch.load(target, map_location="cpu", weights_only=True)
            log.info("image features: loaded %d from %s", len(saved["names"]), target)
            return {str(root / n): f for n, f in zip(saved["names"], saved["features"])}
        processor = self.backbone.processor
        chunks = []
        for start in range(0, len(files), batch_size):
            batch = processor([str(p) for p in files[start : start + batch_size]])
            chunks.append(self.backbone_features(batch).float().cpu())
        features = torch.cat(chunks)  # (N, C)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        torch.save({"names": [p.name for p in files], "features": features}, tmp)
        os.replace(tmp, target)
        log.info("image features: computed %d, saved to %s", len(files), target)
        return {str(p): f for p, f in zip(files, features)}

    def get_config(self) -> dict[str, Any]:
        return {"dim": self._dim, "backbone_config": self.backbone.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> ImageProjection:
        return cls(dim=config["dim"], backbone_config=config["backbone_config"], pretrained=False)
