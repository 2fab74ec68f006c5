"""Activations of the perturbed layer for every image of a comparison set, cached on content.

The cache key covers the image bytes, the image names, the network and its weights, the layer and the
preprocessing, so a changed image or setting can never return stale activations. Files are written to
a temporary name and renamed, so an interrupted run leaves no partial file. A file is used only when it
holds what it must (the key, the image names, one (C, H, W) array per image with the same channels, and
the checksum of those arrays) and when image 0, recomputed, gives the same activations; otherwise it is
ignored with a warning and recomputed. A cache that cannot be written (read-only or full disk) costs
only the caching: the results are returned with a warning. The warnings of an extraction (NaN pixels, ...)
are kept with its cache file and repeated when it is used, so a cached run warns as the first one did.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aisviz.config import aisviz_home
from aisviz.errors import AisvizWarning, DataError, EnvironmentProblem, UsageError
from aisviz.io.storage import atomic_write, clear_files
from aisviz.models.networks import Network, input_size, preprocess

if TYPE_CHECKING:  # torch is imported when first used
    import torch

    from aisviz.core.comparison import ComparisonSet

CACHE_VERSION = "2"
DEVICE_NAMES = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def cache_dir() -> Path:
    return aisviz_home() / "features"


def clear_cache() -> int:
    """Delete every cached activation file (and stale temporary files); returns how many were removed."""
    return clear_files(cache_dir())


def check_device_name(device: str) -> str:
    """Parse-time check of a device name: auto, cpu, cuda, cuda:N or mps."""
    if not DEVICE_NAMES.fullmatch(str(device)):
        raise UsageError(f"device {device!r} is not a device name; use auto (GPU when present), cpu, cuda, cuda:N "
                         "or mps.")
    return device


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """A torch.device that exists on this machine; EnvironmentProblem (exit code 4) when it does not."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(check_device_name(device))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EnvironmentProblem(
                f"device {device!r}: torch sees no CUDA GPU here (torch {torch.__version__}, CUDA build: "
                f"{torch.version.cuda or 'none'}); use --device cpu, or auto to use a GPU only when there is one.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EnvironmentProblem(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                                     f"GPU(s), numbered from 0; pick one of them.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise EnvironmentProblem(f"device {device!r}: Apple's MPS is not available here; use --device cpu.")
    return dev


def cache_key(dataset: ComparisonSet, net: Network, layer: str) -> str:
    desc = {"v": CACHE_VERSION, "data": dataset.content_hash(), "model": net.name, "weights": net.weights,
            "layer": layer, "size": net.image_size, "max_side": net.max_side, "mean": net.mean, "std": net.std}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:32]


def _digest(acts) -> str:
    h = hashlib.sha256()
    for a in acts:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()


def _read_cache(path: Path, key: str, names: tuple) -> list | None:
    """The cached activations if the file holds exactly what `key` and `names` call for, else None."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("key") != key:
                raise ValueError("it was written for other images or settings")
            if tuple(z["names"].tolist()) != tuple(names):
                raise ValueError("its image names differ")
            acts = [z[f"a{i}"] for i in range(len(names))]
        if any(a.ndim != 3 or a.shape[0] != acts[0].shape[0] or a.dtype != np.float32 for a in acts):
            raise ValueError("its arrays are not (channels, height, width) float32 maps with equal channels")
        if meta.get("channels") != acts[0].shape[0] or _digest(acts) != meta.get("sha256"):
            raise ValueError("its arrays differ from the ones it was written with")
        for text in meta.get("warnings", []):  # what the extraction warned about still holds
            warnings.warn(f"{text} (noted when these activations were computed)", AisvizWarning)
        return acts
    except Exception as exc:  # truncated, foreign or stale file: recompute rather than crash
        warnings.warn(f"ignoring the feature cache {path} ({type(exc).__name__}: {exc}); recomputing", AisvizWarning)
        return None


def _write_cache(path: Path, key: str, names: tuple, acts: list, noted: list) -> None:
    meta = json.dumps({"key": key, "channels": int(acts[0].shape[0]), "sha256": _digest(acts), "warnings": noted})
    try:
        atomic_write(path, lambda f: np.savez(f, meta=np.asarray(meta), names=np.asarray(names),
                                              **{f"a{i}": a for i, a in enumerate(acts)}))
    except OSError as exc:  # read-only, full, or a file where the folder should be: keep the results
        warnings.warn(
            f"could not write the feature cache {path} ({type(exc).__name__}: {exc.strerror or exc}); the results "
            f"are complete but not cached. Free disk space or fix the folder {aisviz_home()} (or set AISVIZ_HOME "
            "to a writable folder), or pass --no-cache.", AisvizWarning)


def _batches(shapes, batch_size):
    """Indices grouped into batches of equal input shape (at most batch_size each)."""
    order = sorted(range(len(shapes)), key=lambda i: shapes[i])
    batches = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and shapes[batches[-1][0]] == shapes[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _run(net, layer, layer_index, dataset, indices, dev, batch_size, progress, notes, callback=None):
    """Activations of `indices`; images are decoded and preprocessed one batch at a time, so memory holds one
    batch of inputs, not the whole set. callback(images done, images in all) after each batch."""
    import torch
    from tqdm.auto import tqdm

    from aisviz.core.engine import full_float32_convolutions

    shapes = [input_size(w, h, net) for w, h in map(dataset.image_size, indices)]
    acts: dict = {}
    with torch.no_grad(), full_float32_convolutions(), \
            tqdm(total=len(indices), desc=f"{net.name} {layer}", disable=not progress, unit="image") as bar:
        for batch in _batches(shapes, batch_size):
            idx = [indices[b] for b in batch]
            x = torch.cat([preprocess(net, dataset.load_image(i, notes)) for i in idx]).to(dev)
            out = net.run(x, 0, layer_index + 1)
            if out.dim() != 4:
                raise DataError(f"layer {layer!r} of {net.name} outputs shape {tuple(out.shape[1:])}, not feature "
                                f"maps (channels × height × width); perturb a convolutional layer instead.")
            for j, i in enumerate(idx):
                acts[i] = out[j].float().cpu().numpy()
            bar.update(len(idx))
            if callback is not None:
                callback(len(acts), len(indices))
    return [acts[i] for i in indices]


def extract_activations(dataset: ComparisonSet, net: Network, layer: str, device: str | torch.device = "auto",
                        batch_size: int = 16, use_cache: bool = True, progress: bool = True,
                        callback: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """Perturbed-layer activations, one float32 array (C, H, W) per image, in dataset order.

    progress: a tqdm bar counting images. callback(images done, images in all) is called with (0, n) before
    the first batch and after each batch, or once with (n, n) when the activations come from the cache; an
    exception it raises stops the extraction there (the dashboard cancels superseded work so).
    """
    n = dataset.n_images
    if net.precomputed is not None:
        if len(net.precomputed) != n:
            raise DataError(f"{len(net.precomputed)} precomputed activations for {n} images; give "
                            "one per image, in the data set's image order.")
        if callback is not None:
            callback(n, n)
        return net.precomputed
    layer_index = net.index(layer)
    dev = resolve_device(device)
    net.to(dev)
    if use_cache:
        key = cache_key(dataset, net, layer)
        path = cache_dir() / f"{key}.npz"
        cached = _read_cache(path, key, dataset.image_names)
        if cached is not None:
            # The file could still hold another network's numbers under the right name: image 0 must agree.
            # image 0's notes, if any, are among those kept with the cache
            again = _run(net, layer, layer_index, dataset, [0], dev, 1, False, [])[0]
            scale = float(np.abs(again).max()) or 1.0
            if again.shape == cached[0].shape and np.allclose(again, cached[0], rtol=1e-3, atol=1e-4 * scale):
                if callback is not None:
                    callback(n, n)
                return cached
            warnings.warn(f"ignoring the feature cache {path}: its activations of image 0 differ from a fresh "
                          "computation; recomputing", AisvizWarning)
    _check_sizes(dataset, net)  # from the file headers: a bad size is reported before any computation
    notes: list[str] = []
    if callback is not None:
        callback(0, n)
    acts = _run(net, layer, layer_index, dataset, list(range(n)), dev, batch_size, progress, notes, callback)
    for note in notes:  # passed on now, and kept with the cache so that a cached run repeats them
        warnings.warn(note, AisvizWarning, stacklevel=2)
    if use_cache:
        _write_cache(path, key, dataset.image_names, acts, notes)
    return acts


MIN_IMAGE_SIDE = 32


def _check_sizes(dataset, net: Network):
    """Tiny images carry too little detail to mean anything; extreme aspect ratios leave too little after the
    long side is capped (net.max_side), so both are refused with the size that was found."""
    for i, name in enumerate(dataset.image_names):
        w, h = dataset.image_size(i)
        if min(w, h) < MIN_IMAGE_SIDE:
            raise DataError(
                f"image {name!r} is {w}x{h} px: too small for the network (aisviz needs at least "
                f"{MIN_IMAGE_SIDE} px on the short side; the network sees it resized to a short side of "
                f"{net.image_size}). Use the original, larger image.")
        if min(input_size(w, h, net)) < MIN_IMAGE_SIDE:
            raise DataError(
                f"image {name!r} is {w}x{h} px, an aspect ratio of {max(w, h) / min(w, h):.0f}:1: with its long "
                f"side capped at {net.max_side} px (to bound memory) its short side would be "
                f"{min(input_size(w, h, net))} px. Crop it to at most {net.max_side // MIN_IMAGE_SIDE}:1.")
