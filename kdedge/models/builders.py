"""Model builders by name. Each takes (num_classes, in_channels, image_size, **kwargs) -> nn.Module
mapping images (N, C, H, W) float32 to logits (N, num_classes)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from kdedge.errors import InputError
from kdedge.models import MODELS, check_model_name, is_timm_name
from kdedge.models.dropout import BitDropout


def mlp(
    num_classes: int,
    in_channels: int,
    image_size: int,
    hidden: Sequence[int] = (1200, 1200),
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    fast_dropout: bool = False,
) -> nn.Module:
    """Fully connected net on flattened pixels, ReLU between layers (Hinton et al. 2015 MNIST nets).

    dropout applies after every hidden layer, input_dropout to the pixels themselves. fast_dropout draws
    the CPU masks from random bits (kdedge.models.dropout.BitDropout: the same dropout, a fraction of the
    cost, other masks than nn.Dropout's for a seed); the layers and their weights are the same either way.
    """
    drop = BitDropout if fast_dropout else nn.Dropout
    layers: list[nn.Module] = [nn.Flatten()]
    if input_dropout > 0:
        layers.append(drop(input_dropout))
    width = in_channels * image_size * image_size
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(drop(dropout))
        width = size
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _conv_block(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


def mnist_cnn(num_classes: int, in_channels: int, image_size: int, width: int = 32) -> nn.Module:
    """Small CNN teacher for 28x28 digits: two conv stages (each 2 convs + max-pool), then 2 linear layers."""
    return nn.Sequential(
        *_conv_block(in_channels, width),
        *_conv_block(width, width),
        nn.MaxPool2d(2),
        *_conv_block(width, 2 * width),
        *_conv_block(2 * width, 2 * width),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (image_size // 4) ** 2, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(0.3),
        nn.Linear(256, num_classes),
    )


def _init_relu_net(net: nn.Module) -> nn.Module:
    """He (Kaiming) normal init for every conv / linear layer of a ReLU net without batch norm, zero biases,
    and a small last layer (logits ~0: the first loss is ln(num_classes)). PyTorch's default init
    (kaiming_uniform with a=sqrt(5), weight variance 1/(3 fan_in)) shrinks the activations ~2x per ReLU layer:
    through AlexNet's 8 layers the logits come out ~1/50 of the input's scale and SGD stays at the uniform
    guess (the alpha study's teacher never left 10 %)."""
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    nn.init.normal_(layers[-1].weight, std=0.01)
    return net


def small_cnn(num_classes: int, in_channels: int, image_size: int, width: int = 32) -> nn.Module:
    """The alpha study's student: 2 conv blocks (conv-ReLU-pool) + 3 linear layers; He init (no batch
    norm)."""
    return _init_relu_net(
        nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * (image_size // 4) ** 2, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )
    )


def alexnet_cifar(num_classes: int, in_channels: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    """AlexNet adapted to 32x32: five 3x3 convs (64-192-384-256-256), three max-pools, 3 linear layers;
    He init (no batch norm, as the original)."""
    return _init_relu_net(
        nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 192, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(256 * (image_size // 8) ** 2, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )
    )


def _cifar_resnet(depth: int, num_classes: int, in_channels: int) -> nn.Module:
    """torchvision ResNet with the CIFAR stem: 3x3 stride-1 first conv and no max-pool (He et al. 2016)."""
    import torchvision

    net = getattr(torchvision.models, f"resnet{depth}")(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def cifar_resnet18(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    return _cifar_resnet(18, num_classes, in_channels)


def cifar_resnet50(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    return _cifar_resnet(50, num_classes, in_channels)


def timm_model(name: str, num_classes: int, in_channels: int, image_size: int, **kwargs) -> nn.Module:
    """timm architecture `name` with a fresh num_classes-way head and random weights (pretrained weights are
    loaded by kdedge.models.weights); a model whose input size is fixed when it is built is built for
    image_size (timm_size_kwargs)."""
    import timm

    kwargs = timm_size_kwargs(name, image_size, kwargs) | kwargs
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)


def timm_size_kwargs(name: str, image_size: int, kwargs: dict | None = None) -> dict:
    """{'img_size': image_size} for a timm model whose size is fixed when it is built (ViT, DeiT, BEiT, Swin
    ...: timm's pretrained config says fixed_input_size; Swin's attention windows depend on it too), unless
    model_kwargs gives one; else {}."""
    from timm.models import get_pretrained_cfg

    if "img_size" in (kwargs or {}):
        return {}
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # no pretrained config registered: nothing said about its input size
        cfg = None
    fixed = name.startswith("swin") or bool(cfg is not None and cfg.fixed_input_size)
    return {"img_size": image_size} if fixed else {}


def check_input_size(name: str, image_size: int, kwargs: dict | None = None, in_channels: int = 3) -> None:
    """Refuse, before a run starts, an input size a timm model cannot take, in one line that names the size
    it takes nearest above: a Swin's windows (explained in full), a patch model's patches (ViT, DeiT, BEiT:
    the size must be a multiple of the patch), a network that shrinks small images to nothing (ConvNeXt
    below 28 px). kdedge's own builders take any size."""
    if name in MODELS or not is_timm_name(name):
        return
    if name.startswith("swin"):
        _check_swin(name, image_size, kwargs or {})
    problem, patch = probe_input_size(name, image_size, in_channels, kwargs or {})
    if problem is None:
        return
    fits = _size_above(name, image_size, in_channels, kwargs or {}, patch or 8)
    instead = f"the nearest size above it takes is {fits} px" if fits else "no size up to 16 steps above fits"
    raise InputError(
        f"model '{name}': cannot take {image_size}x{image_size} images ({problem}); {instead}; set "
        "data.image_size (or the model's model_kwargs)"
    )


def probe_input_size(name: str, size: int, in_channels: int, kwargs: dict) -> tuple[str | None, int | None]:
    """(why the model cannot take size x size images or None, its patch size or None), found by building
    it on the meta device (no memory, no compute) and running one image through it. An operation meta
    tensors cannot run proves nothing: then None (training says the rest)."""
    try:
        with torch.device("meta"):
            model = timm_model(name, 2, in_channels, size, **kwargs).eval()
            patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
            patch = patch[0] if isinstance(patch, (tuple, list)) else patch
            if patch and size % patch:
                return f"its {patch}-px patches do not tile {size} px", patch
            model(torch.empty(1, in_channels, size, size))
    except TypeError:  # bad model_kwargs: build_model says so, naming them
        return None, None
    except (RuntimeError, AssertionError, ValueError, IndexError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return (None if "meta" in reason.lower() else reason[:160]), None
    return None, patch


def _size_above(name: str, size: int, in_channels: int, kwargs: dict, step: int) -> int | None:
    """The smallest multiple of `step` above `size` the model takes (up to 16 steps), or None."""
    for candidate in range(size - size % step + step, size + 16 * step + 1, step):
        if probe_input_size(name, candidate, in_channels, kwargs)[0] is None:
            return candidate
    return None


def _check_swin(name: str, image_size: int, kwargs: dict) -> None:
    """A Swin's patch grid (image_size / patch_size a side) is halved 3 times, and every grid larger than
    the attention window must be tiled by it (timm shrinks the window to a grid that is not larger)."""
    size = kwargs.get("img_size", image_size)
    patch, window = kwargs.get("patch_size", 4), kwargs.get("window_size", 7)
    grids = [size // patch // 2**stage for stage in range(4)]
    if size != image_size or size % (patch * 8) or any(g > window and g % window for g in grids):
        raise InputError(
            f"model '{name}': image size {image_size} px with window_size {window} does not fit "
            f"(needs a multiple of {patch * 8} px whose {patch}-px patch grids "
            f"{'/'.join(map(str, grids))} the window tiles, e.g. 64 px with window_size 4, "
            "224 px with 7); set data.image_size / model_kwargs.window_size"
        )


def build_model(
    name: str, num_classes: int, in_channels: int, image_size: int, kwargs: dict | None = None
) -> nn.Module:
    """Build a kdedge or timm model by name; an unknown name or a bad keyword argument is one InputError."""
    try:
        check_model_name(name)
    except ValueError as err:
        raise InputError(str(err)) from None
    kwargs = dict(kwargs or {})
    try:
        if name in MODELS:
            return MODELS.get(name)(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs)
        return timm_model(name, num_classes, in_channels, image_size, **kwargs)
    except TypeError as err:
        raise InputError(f"model '{name}': bad model_kwargs {kwargs}: {err}") from None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def output_bias(model: nn.Module) -> torch.Tensor:
    """The bias vector (num_classes,) of the model's final linear layer (for Hinton's bias fix)."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last or last[-1].bias is None:
        raise InputError("this model has no output bias to adjust")
    return last[-1].bias
