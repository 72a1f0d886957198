"""Perceptual losses: distances between deep features of a frozen ImageNet network.

``perceptual``: VGG16 feature reconstruction loss (Johnson, Alahi & Fei-Fei 2016; used for
VAEs as "deep feature consistent" loss by Hou et al. 2017). Inputs in [0, 1] are normalised
with ImageNet statistics, grayscale is repeated to 3 channels, the network is truncated after
the deepest layer used, and target features are computed without autograd.

``lpips``: the Learned Perceptual Image Patch Similarity of Zhang et al. 2018 via the ``lpips``
package (AlexNet, VGG16 or SqueezeNet trunk + the package's calibrated linear heads); [0, 1]
input is mapped to its [-1, 1].

Weights, the torchvision way: ``weights="imagenet"`` reads torchvision's file from the torch
hub cache ``$TORCH_HOME/hub/checkpoints/`` (``torch.hub.get_dir()``), downloading it once if
``download=True`` and the network allows; offline and uncached it raises
:class:`WeightsNotFoundError` with the file name, the directory and the URL. ``weights=None``
gives a random backbone (tests), a path loads a local torchvision state dict. torchvision and
lpips are imported only inside the constructors.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .._validation import check_choice, check_reduction
from .._weights import WeightsNotFoundError, hub_cache_path, load_weights
from ._common import _f32, prepare, reduce_loss
from .registry import register

__all__ = [
    "VGG16_LAYERS",
    "LPIPSLoss",
    "PerceptualLoss",
    "WeightsNotFoundError",
    "imagenet_weights_path",
    "load_backbone_state_dict",
]


# torchvision weight enums (resolved lazily: importing torchvision is slow)
_WEIGHT_ENUMS = {
    "vgg16": "VGG16_Weights",
    "alexnet": "AlexNet_Weights",
    "squeezenet1_1": "SqueezeNet1_1_Weights",
}

_VGG16_CFG = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def _vgg16_layer_names() -> dict[str, int]:
    names, index, block, conv = {}, 0, 1, 1
    for item in _VGG16_CFG:
        if item == "M":
            names[f"pool{block}"] = index
            index, block, conv = index + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index, conv = index + 2, conv + 1
    return names


VGG16_LAYERS: dict[str, int] = _vgg16_layer_names()
"""Layer name -> index in torchvision's ``vgg16().features`` (``relu3_3`` -> 15, ...)."""


def _vgg16_features(last: int) -> nn.Sequential:
    """torchvision's ``vgg16().features[: last + 1]`` (same indices, same init)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(channels, item, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU()]
            channels = item
    return nn.Sequential(*layers[: last + 1])


def _imagenet_url(arch: str) -> str:
    check_choice(arch, list(_WEIGHT_ENUMS), "arch")
    import torchvision.models  # lazy: only when ImageNet weights are asked for

    return getattr(torchvision.models, _WEIGHT_ENUMS[arch]).IMAGENET1K_V1.url


def imagenet_weights_path(arch: str) -> tuple[str, str]:
    """``(path in the torch hub cache, download URL)`` of torchvision's ImageNet weights.

    Example:
        >>> import os, vaekit as vk
        >>> path, url = vk.losses.imagenet_weights_path("vgg16")
        >>> os.path.basename(path), url
        ('vgg16-397923af.pth', 'https://download.pytorch.org/models/vgg16-397923af.pth')
    """
    url = _imagenet_url(arch)
    return hub_cache_path(url), url


def load_backbone_state_dict(
    weights: str | os.PathLike | None, arch: str, *, download: bool = True, what: str = ""
) -> dict[str, torch.Tensor] | None:
    """Resolve ``weights`` (``None`` | ``"imagenet"`` | a path) to a torchvision state dict.

    ``"imagenet"`` reads torchvision's file from the torch hub cache, downloading it when
    ``download`` is True; a missing file raises :class:`WeightsNotFoundError` (the flow of
    :func:`vaekit._weights.load_weights`, shared with the metrics' feature networks).
    """
    check_choice(arch, list(_WEIGHT_ENUMS), "arch")
    return load_weights(weights, lambda: _imagenet_url(arch), what=what or f"{arch} backbone",
                        download=download, random="backbone")  # fmt: skip


def _load_features(
    module: nn.Module, state: Mapping[str, torch.Tensor], key_of: dict[str, str], source: object
) -> None:
    """Copy torchvision ``features.*`` tensors into ``module`` (``key_of``: ours -> theirs)."""
    missing = [theirs for theirs in key_of.values() if theirs not in state]
    if missing:
        raise ValueError(
            f"weights {source!r} lack {len(missing)} backbone tensor(s), e.g. {missing[:3]}; "
            "expected a torchvision state dict with 'features.N.weight' keys"
        )
    try:
        module.load_state_dict({ours: state[theirs] for ours, theirs in key_of.items()})
    except RuntimeError as err:
        raise ValueError(f"weights {source!r} do not fit the backbone: {err}") from err


def _freeze(module: nn.Module) -> None:
    module.requires_grad_(False)
    module.eval()


def _rgb(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(
            f"input must have 1 or 3 channels, got {x.shape[1]} (shape {tuple(x.shape)})"
        )
    return x


@register("perceptual", aliases=("vgg",))
class PerceptualLoss(nn.Module):
    """VGG16 feature loss: ``sum_l w_l * mean_{c,h,w} d(φ_l(input), φ_l(target))`` per image.

    Args:
        layers: VGG16 layer names (see ``VGG16_LAYERS``), default relu1_2, relu2_2, relu3_3.
        weights: ``"imagenet"`` (torchvision's ``vgg16-397923af.pth`` from the torch hub
            cache), ``None`` (random backbone, for tests) or a path to a torchvision state dict.
        layer_weights: one weight per layer (default 1 each).
        distance: ``"mse"`` (squared error) or ``"l1"``.
        download: allow a one-off download when ``weights="imagenet"`` is not cached.
        reduction: ``"none"`` gives (B,), else ``"mean" | "sum" | "batchmean"`` over images.

    Shape:
        input, target: (B, 1 or 3, H, W) in [0, 1]; output: scalar, or (B,) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> loss = vk.losses.PerceptualLoss(weights=None, layers=("relu1_2",))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> loss(x, x)
        tensor(0.)
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
        *,
        weights: str | os.PathLike | None = "imagenet",
        layer_weights: Sequence[float] | None = None,
        distance: str = "mse",
        download: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        check_choice(distance, ("mse", "l1"), "distance")
        layers = (layers,) if isinstance(layers, str) else tuple(layers)
        for layer in layers:
            check_choice(layer, list(VGG16_LAYERS), "layer")
        if not layers:
            raise ValueError("layers must name at least one VGG16 layer, got ()")
        layer_weights = (1.0,) * len(layers) if layer_weights is None else tuple(layer_weights)
        if len(layer_weights) != len(layers):
            raise ValueError(
                f"layer_weights must have one weight per layer ({len(layers)}), got {layer_weights}"
            )
        self.layers, self.layer_weights = layers, tuple(float(w) for w in layer_weights)
        self.distance, self.reduction = distance, reduction
        self._index = {VGG16_LAYERS[name]: w for name, w in zip(layers, self.layer_weights)}
        last = max(self._index)
        self.features = _vgg16_features(last)
        state = load_backbone_state_dict(weights, "vgg16", download=download, what="perceptual")
        if state is not None:
            own = self.features.state_dict()
            _load_features(self.features, state, {k: f"features.{k}" for k in own}, weights)
        _freeze(self.features)
        self.register_buffer(
            "mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False
        )

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # a frozen feature extractor stays in eval mode
        return self

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of ``x`` ((B, 1 or 3, H, W) in [0, 1]) at ``layers``, in network order."""
        h = (_rgb(x) - self.mean) / self.std
        out = []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in self._index:
                out.append(h)
        return out

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = prepare(input, target, data_range=1.0)
        feats_x = self.extract(x)
        with torch.no_grad():
            feats_y = self.extract(y)
        value = x.new_zeros(x.shape[0])
        for fx, fy, weight in zip(feats_x, feats_y, self._index.values()):
            diff = _f32(fx) - _f32(fy)
            dist = diff.square() if self.distance == "mse" else diff.abs()
            value = value + weight * dist.flatten(1).mean(1)
        return reduce_loss(value, self.reduction)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, distance={self.distance!r}, reduction={self.reduction!r}"


_LPIPS_ARCH = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
_LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16, "squeeze": 17}


@register("lpips")
class LPIPSLoss(nn.Module):
    """LPIPS distance (Zhang et al. 2018) from the ``lpips`` package, on [0, 1] images.

    The calibrated linear heads ship inside the lpips package; the trunk's ImageNet weights
    are resolved like :class:`PerceptualLoss` (``alexnet-owt-7be5be79.pth``,
    ``vgg16-397923af.pth`` or ``squeezenet1_1-b8a52dc0.pth``). The whole network is frozen
    and stays in eval mode (its heads have dropout).

    Args:
        net: ``"alex"`` (default, fastest, min 31 px), ``"vgg"`` (min 16 px) or ``"squeeze"``.
        weights: ``"imagenet"`` | ``None`` (random trunk) | a path to a torchvision state dict.
        download: allow a one-off download when ``weights="imagenet"`` is not cached.
        reduction: ``"none"`` gives (B,), else ``"mean" | "sum" | "batchmean"`` over images.

    Shape:
        input, target: (B, 1 or 3, H, W) in [0, 1]; output: scalar, or (B,) for ``"none"``.

    Example:
        >>> import torch, vaekit as vk
        >>> loss = vk.losses.LPIPSLoss(weights=None)
        >>> x = torch.rand(1, 3, 32, 32)
        >>> loss(x, x)
        tensor(0.)
    """

    def __init__(
        self,
        net: str = "alex",
        *,
        weights: str | os.PathLike | None = "imagenet",
        download: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        check_choice(net, list(_LPIPS_ARCH), "net")
        state = load_backbone_state_dict(
            weights, _LPIPS_ARCH[net], download=download, what=f"lpips(net={net!r})"
        )
        import lpips  # lazy: pulls in torchvision

        with warnings.catch_warnings():
            # lpips passes torchvision's deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            # pnet_rand=True: lpips never downloads; we load the trunk ourselves below
            self.model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if state is not None:
            own = self.model.net.state_dict()  # keys "slice{k}.{i}.*" hold features[i]
            key_of = {k: "features." + k.split(".", 1)[1] for k in own}
            _load_features(self.model.net, state, key_of, weights)
        _freeze(self.model)
        self.net, self.reduction = net, reduction
        self._normalize = lpips.normalize_tensor
        self._slices = [getattr(self.model.net, f"slice{i + 1}") for i in range(self.model.L)]

    def train(self, mode: bool = True) -> LPIPSLoss:
        super().train(mode)
        self.model.eval()  # keep the heads' dropout off
        return self

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised trunk features of ``x`` in [0, 1] (lpips' [-1, 1] scaling inside)."""
        h = self.model.scaling_layer(2.0 * _rgb(x) - 1.0)
        out = []
        for block in self._slices:
            h = block(h)
            out.append(self._normalize(h))
        return out

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = prepare(input, target, data_range=1.0)
        if min(x.shape[-2:]) < _LPIPS_MIN_SIZE[self.net]:
            raise ValueError(
                f"lpips(net={self.net!r}) needs images of at least "
                f"{_LPIPS_MIN_SIZE[self.net]} px, got {tuple(x.shape[-2:])}"
            )
        feats_x = self.extract(x)
        with torch.no_grad():
            feats_y = self.extract(y)
        value = x.new_zeros(x.shape[0])
        for fx, fy, head in zip(feats_x, feats_y, self.model.lins):
            diff = (_f32(fx) - _f32(fy)).square()
            value = value + head(diff).float().mean(dim=(1, 2, 3))
        return reduce_loss(value, self.reduction)

    def extra_repr(self) -> str:
        return f"net={self.net!r}, reduction={self.reduction!r}"
