"""Saliency maps to compare AIS heatmaps with: several providers behind one interface.

A provider takes an image (PIL RGB) and returns a non-negative float map of the image's size (H, W).
- `spectral_residual`, `fine_grained` (OpenCV contrib) and `center_bias`: offline, weight-free. They are
  low-level contrast (or position) baselines, not fixation models.
- `deepgaze_iie`: the DeepGaze IIE fixation model through torch.hub (needs internet once).
- a folder of maps computed elsewhere (e.g. TranSalNet, the paper's model): one PNG or NPY per image,
  matched by file stem.
`saliency_maps` runs a provider over a data set and caches the maps on disk, keyed on the data set's
content hash and the provider's id; files are written atomically and an unreadable file is recomputed.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import socket
import sys
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from aisviz.config import aisviz_home
from aisviz.core.comparison import IMAGE_EXTENSIONS, ComparisonSet
from aisviz.errors import AisvizWarning, InputError
from aisviz.io.storage import atomic_write, clear_files
from aisviz.models.features import resolve_device

CACHE_VERSION = "1"
CENTERBIAS_ENV = "AISVIZ_DEEPGAZE_CENTERBIAS"
OFFLINE_PROVIDERS = ("spectral_residual", "fine_grained", "center_bias")
_CLASSIC = "low-level contrast baseline, not a fixation model"


class SaliencyError(InputError):
    """A saliency provider or map that cannot be used; the message names the problem and the fix."""


def check_map(sal_map: npt.ArrayLike, size: tuple[int, int], where: str, resize: bool = False) -> np.ndarray:
    """Check one saliency map against its image's size=(width, height); return it as float32 (H, W).

    resize=True resizes a map of another size bilinearly; otherwise a size mismatch is an error."""
    m = np.asarray(sal_map)
    if m.ndim != 2:
        raise SaliencyError(
            f"saliency map {where} has shape {m.shape}; it must be 2-D (height, width). Save one "
            "single-channel map per image (e.g. np.squeeze, or one channel of a colour map).")
    try:
        m = m.astype(np.float32)
    except (TypeError, ValueError):
        raise SaliencyError(f"saliency map {where} has non-numeric dtype {m.dtype}; save numbers.") from None
    bad = ~np.isfinite(m)
    if bad.any():
        raise SaliencyError(
            f"saliency map {where} has {int(bad.sum())} NaN or infinite values. Recompute it, or "
            "replace them (np.nan_to_num) before saving.")
    if (m < 0).any():
        raise SaliencyError(
            f"saliency map {where} has negative values (min {m.min():.4g}); saliency must be "
            "non-negative. Clip (np.clip(m, 0, None)) or exponentiate log densities before saving.")
    width, height = size
    if m.shape != (height, width):
        if not resize:
            raise SaliencyError(
                f"saliency map {where} is {m.shape[1]}x{m.shape[0]} (width x height) but its image "
                f"is {width}x{height}. Compute the map at the image's size, or pass resize=True to "
                "resize it bilinearly.")
        m = np.asarray(Image.fromarray(m, mode="F").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
        m = np.clip(m, 0, None)  # bilinear resampling can undershoot by rounding
    return m


class SaliencyProvider:
    """Base class. Subclasses set name, label, kind (and note) and implement compute(image, name).

    cache_id: a string that changes whenever the maps would change, or None for "do not cache"."""

    name = ""
    label = ""
    kind = ""
    note = ""

    @property
    def cache_id(self) -> str | None:
        return self.name

    def prepare(self, image_names: Sequence[str]) -> None:
        """Called once with the data set's image names before any map is computed (checks early)."""

    def compute(self, image: Image.Image, name: str | None = None) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, image: Image.Image, name: str | None = None) -> np.ndarray:
        where = f"from {self.name}" + (f" for '{name}'" if name else "")
        return check_map(self.compute(image, name), image.size, where)

    def describe(self) -> dict:
        return {"name": self.name, "label": self.label, "kind": self.kind, "note": self.note}

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


def _cv2_saliency():
    try:
        import cv2
        return cv2, cv2.saliency
    except (ImportError, AttributeError):
        raise SaliencyError(
            "the spectral_residual and fine_grained baselines need OpenCV's contrib modules. Install "
            "them with `pip install opencv-contrib-python-headless`, alone: uninstall opencv-python "
            "and opencv-contrib-python first, since they clash with it.") from None


class OpenCVSaliency(SaliencyProvider):
    """cv2.saliency static saliency: spectral residual (Hou & Zhang 2007) or fine-grained
    (Montabone & Soto 2010) centre-surround contrast. Deterministic; no weights."""

    kind = "classic baseline"
    _FACTORIES = {
        "spectral_residual": ("StaticSaliencySpectralResidual_create",
                              "Spectral residual (Hou & Zhang 2007)"),
        "fine_grained": ("StaticSaliencyFineGrained_create",
                         "Fine-grained centre-surround contrast (Montabone & Soto 2010)"),
    }

    def __init__(self, name: str):
        self.name = name
        self.label = f"{self._FACTORIES[name][1]}: {_CLASSIC}"
        self.note = "OpenCV contrib cv2.saliency; computed on the image at its own size."

    @property
    def cache_id(self) -> str | None:
        cv2, _ = _cv2_saliency()
        return f"{self.name}:cv2-{cv2.__version__}"  # OpenCV releases may change the maps

    def compute(self, image: Image.Image, name: str | None = None) -> np.ndarray:
        cv2, sal = _cv2_saliency()
        algo = getattr(sal, self._FACTORIES[self.name][0])()
        bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
        ok, m = algo.computeSaliency(bgr)
        if not ok:
            raise SaliencyError(f"OpenCV {self.name} failed on image '{name}'. Check that the image is not empty.")
        return np.asarray(m, dtype=np.float32)


class CenterBias(SaliencyProvider):
    """An isotropic Gaussian centred on the image: exp(-d^2 / (2 sigma^2)), d = distance in pixels from
    the centre, sigma = sigma_fraction x the image's shorter side (default 0.25). Peak value 1."""

    name = "center_bias"
    kind = "classic baseline"

    def __init__(self, sigma_fraction: float = 0.25):
        if not sigma_fraction > 0:
            raise SaliencyError(f"sigma_fraction must be positive, not {sigma_fraction}.")
        self.sigma_fraction = float(sigma_fraction)
        self.label = f"Centre bias (isotropic Gaussian, sigma = {self.sigma_fraction:g} x shorter side): " \
                     "position-only baseline, not a fixation model"

    @property
    def cache_id(self) -> str | None:
        return f"{self.name}:{self.sigma_fraction!r}"

    def compute(self, image: Image.Image, name: str | None = None) -> np.ndarray:
        w, h = image.size
        sigma = self.sigma_fraction * min(w, h)
        y = (np.arange(h) - (h - 1) / 2) ** 2
        x = (np.arange(w) - (w - 1) / 2) ** 2
        return np.exp(-(y[:, None] + x[None, :]) / (2 * sigma ** 2)).astype(np.float32)


@contextmanager
def _socket_timeout(seconds: float):
    """Bound every connect/read of a download, so that a dead network fails in seconds, not minutes."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


class DeepGazeIIE(SaliencyProvider):
    """DeepGaze IIE (Linardos, Kümmerer, Press & Bethge 2021) via
    torch.hub.load('matthias-k/DeepGaze', 'DeepGazeIIE', pretrained=True). Needs internet the first time
    (the repository, its weights and four backbones go to the torch hub cache).

    As in the authors' README, the model gets the image (0-255, at its own size) and a centre-bias
    log density: a template (e.g. their centerbias_mit1003.npy) resized to the image with nearest
    neighbours (scipy.ndimage.zoom, order=0) and renormalised (minus its logsumexp). Give the template
    as `centerbias` or in env AISVIZ_DEEPGAZE_CENTERBIAS; without one a uniform log density is used (the
    authors' stated alternative), which drops the centre prior the model was trained with. The map
    returned is the predicted fixation density exp(log density), summing to 1."""

    name = "deepgaze_iie"
    kind = "fixation model"
    label = "DeepGaze IIE fixation density (Linardos et al. 2021)"

    def __init__(self, centerbias: str | os.PathLike | None = None, device: str = "auto", timeout: float = 15):
        path = centerbias or os.environ.get(CENTERBIAS_ENV) or None
        self.centerbias_path = Path(path).expanduser() if path else None
        self.device, self.timeout, self._model = device, timeout, None
        if self.centerbias_path is None:
            self._template, self._template_id = None, "uniform"
            self.note = ("centre bias: uniform log density (no template given). The model was trained with "
                         "the MIT1003 centre bias; for the authors' setting pass centerbias= (or set "
                         f"{CENTERBIAS_ENV}) to centerbias_mit1003.npy from "
                         "https://github.com/matthias-k/DeepGaze/releases/download/v1.0.0/centerbias_mit1003.npy")
        else:
            self._template = self._load_template(self.centerbias_path)
            self._template_id = hashlib.sha256(self._template.tobytes()).hexdigest()[:16]
            self.note = f"centre bias: template {self.centerbias_path} resized to each image (nearest)"

    @staticmethod
    def _load_template(path: Path) -> np.ndarray:
        try:
            t = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SaliencyError(f"cannot read the DeepGaze centre-bias template {path} ({exc}). Give a "
                                ".npy file holding a 2-D log density, such as centerbias_mit1003.npy.") from None
        if t.ndim != 2 or not np.isfinite(t).all():
            raise SaliencyError(f"the DeepGaze centre-bias template {path} has shape {t.shape} or non-finite "
                                "values; it must be a finite 2-D log density (e.g. centerbias_mit1003.npy).")
        return t.astype(np.float64)

    @property
    def cache_id(self) -> str | None:
        return f"{self.name}:cb-{self._template_id}"

    def centerbias(self, height: int, width: int) -> np.ndarray:
        """The centre-bias log density for an image of this size (sums to 1 after exp)."""
        from scipy.ndimage import zoom
        from scipy.special import logsumexp

        if self._template is None:
            cb = np.zeros((height, width))
        else:
            t = self._template
            cb = zoom(t, (height / t.shape[0], width / t.shape[1]), order=0, mode="nearest")
        return cb - logsumexp(cb)

    def load(self) -> Any:
        """Load the model once (torch.hub); fails within seconds when offline."""
        if self._model is None:
            import torch


            try:
                # torch hub prints "Downloading: ..." on stdout, where it would break --json: stderr instead.
                with _socket_timeout(self.timeout), contextlib.redirect_stdout(sys.stderr):
                    # Any: whatever the repository's hubconf builds. trust_repo=True is documented; torch
                    # annotates the parameter by its default, "check" (which may prompt)
                    model: Any = torch.hub.load("matthias-k/DeepGaze", "DeepGazeIIE", pretrained=True,
                                                trust_repo=True)  # pyright: ignore[reportArgumentType]
            except Exception as exc:  # no network, hub cache missing, download cut, ...
                raise SaliencyError(
                    f"DeepGaze IIE could not be loaded through torch.hub ({type(exc).__name__}: {exc}). It needs "
                    "internet the first time (repository, weights and backbones go to the torch hub cache, "
                    f"{torch.hub.get_dir()}). Offline, use a weight-free baseline ({', '.join(OFFLINE_PROVIDERS)}) "
                    "or a folder of maps computed elsewhere (one PNG/NPY per image, named like the image)."
                ) from exc
            self._device = resolve_device(self.device)
            self._model = model.to(self._device).eval()
        return self._model

    def compute(self, image: Image.Image, name: str | None = None) -> np.ndarray:
        import torch

        model = self.load()
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
        h, w = rgb.shape[:2]
        x = torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None].to(self._device)
        cb = torch.from_numpy(self.centerbias(h, w).astype(np.float32))[None].to(self._device)
        with torch.no_grad():
            log_density = model(x, cb)
        return np.exp(log_density.double().cpu().numpy().reshape(h, w)).astype(np.float32)


MAP_EXTENSIONS = (".npy",) + IMAGE_EXTENSIONS


class FolderMaps(SaliencyProvider):
    """Maps computed elsewhere (e.g. TranSalNet): one file per image in a folder, PNG (or another image
    format, greyscale) or NPY (2-D array), matched by the image's file stem ('cat.jpg' <- 'cat.png' or
    'cat.npy'). resize=True resizes maps of another size bilinearly; by default that is an error.
    Not cached: reading the files is as fast as reading a cache."""

    kind = "precomputed maps"

    def __init__(self, folder, resize: bool = False, label: str = ""):
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise SaliencyError(f"saliency folder {self.folder} does not exist. Give a folder holding one "
                                "map per image (PNG or NPY, named like the image).")
        self.resize = resize
        self.name = f"folder:{self.folder}"
        self.label = label or f"precomputed maps from {self.folder}"
        self.note = "maps read from files" + ("; resized bilinearly to each image" if resize else "")
        self._files = self._index()

    def _index(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for p in sorted(self.folder.iterdir()):
            if p.is_file() and p.suffix.lower() in MAP_EXTENSIONS and not p.name.startswith("."):
                if p.stem in files:
                    raise SaliencyError(f"two saliency maps for '{p.stem}' in {self.folder}: {files[p.stem].name} "
                                        f"and {p.name}. Keep one.")
                files[p.stem] = p
        return files

    @property
    def cache_id(self) -> str | None:
        return None

    def _find(self, name: str) -> Path | None:
        # 'cat.png' is matched by 'cat.npy' (same stem) or by 'cat.png.npy'
        return self._files.get(Path(name).stem) or self._files.get(Path(name).name)

    def prepare(self, image_names: Sequence[str]) -> None:
        missing = [n for n in image_names if self._find(n) is None]
        if missing:
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise SaliencyError(
                f"{len(missing)} of {len(image_names)} images have no saliency map in {self.folder}: "
                f"{missing[:10]}{more}. Add one file per image named like the image with .png or .npy "
                f"(e.g. '{Path(missing[0]).stem}.png'), or drop those images (ComparisonSet.subset).")

    def compute(self, image: Image.Image, name: str | None = None) -> np.ndarray:
        if name is None:
            raise SaliencyError("a folder of saliency maps needs the image name to find its map.")
        path = self._find(name)
        if path is None:
            self.prepare([name])  # raises the missing-map error
        assert path is not None, "prepare raises for a missing map"
        if path.suffix.lower() == ".npy":
            try:
                m = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise SaliencyError(f"cannot read saliency map {path} ({exc}); re-save it with np.save.") from None
        else:
            m = _read_map_image(path)
        return check_map(m, image.size, f"{path}", resize=self.resize)

    def __call__(self, image, name=None):
        return self.compute(image, name)  # compute already checks, with the file's path in messages


def _read_map_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGB", "RGBA", "P", "LA"):
                rgb = np.asarray(im.convert("RGB"))
                if not (rgb == rgb[..., :1]).all():
                    raise SaliencyError(f"saliency map {path} is a colour image; save a greyscale "
                                        "(single-channel) map, not a colour-mapped picture.")
                return rgb[..., 0]
            return np.asarray(im)
    except (OSError, SyntaxError) as exc:
        raise SaliencyError(f"cannot read saliency map {path} ({exc}); the file is damaged or not an image.") from None


PROVIDERS = {
    "spectral_residual": lambda **kw: OpenCVSaliency("spectral_residual", **kw),
    "fine_grained": lambda **kw: OpenCVSaliency("fine_grained", **kw),
    "center_bias": CenterBias,
    "deepgaze_iie": DeepGazeIIE,
}


def get_provider(name_or_dir: str | Path | SaliencyProvider, **options: Any) -> SaliencyProvider:
    """A provider by name (see PROVIDERS), or a FolderMaps for an existing folder; options go to it.

    A SaliencyProvider instance is returned unchanged."""
    if isinstance(name_or_dir, SaliencyProvider):
        return name_or_dir
    key = str(name_or_dir)
    if key in PROVIDERS:
        return PROVIDERS[key](**options)
    if Path(key).expanduser().is_dir():
        return FolderMaps(key, **options)
    close = difflib.get_close_matches(key, list(PROVIDERS), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise SaliencyError(
        f"unknown saliency provider {key!r} (and no folder of that name exists).{hint} Known providers: "
        f"{', '.join(PROVIDERS)}; or give a folder of maps (one PNG/NPY per image, named like the image).")


def cache_dir() -> Path:
    return aisviz_home() / "saliency"


def clear_cache() -> int:
    """Delete every cached saliency file; returns how many were removed."""
    return clear_files(cache_dir())


def _cache_path(dataset, provider_id: str) -> Path:
    key = hashlib.sha256(f"{CACHE_VERSION}\0{dataset.content_hash()}\0{provider_id}".encode()).hexdigest()[:32]
    return cache_dir() / f"{key}.npz"


def _read_cache(path: Path, dataset) -> list | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if tuple(z["names"].tolist()) != tuple(dataset.image_names):
                raise ValueError("image names differ")
            maps = [z[f"m{i}"] for i in range(dataset.n_images)]
        for m in maps:
            if m.ndim != 2 or not np.isfinite(m).all() or (m < 0).any():
                raise ValueError("bad map")
        return maps
    except Exception as exc:  # truncated, foreign or stale file: recompute rather than crash
        warnings.warn(f"ignoring unreadable saliency cache {path} ({type(exc).__name__}: {exc}); recomputing",
                      AisvizWarning)
        return None


def _write_cache(path: Path, dataset, maps: list) -> None:
    try:
        atomic_write(path, lambda f: np.savez(f, names=np.asarray(dataset.image_names),
                                              **{f"m{i}": m for i, m in enumerate(maps)}))
    except OSError as exc:  # read-only or full disk: the maps are fine, only the caching is lost
        warnings.warn(f"could not write the saliency cache {path} ({type(exc).__name__}: {exc.strerror or exc}); "
                      f"the maps are complete but not cached. Free disk space or fix {aisviz_home()} (or set "
                      "AISVIZ_HOME), or pass --no-cache.", AisvizWarning)


def saliency_maps(dataset: ComparisonSet, provider: str | Path | SaliencyProvider = "spectral_residual",
                  use_cache: bool = True, progress: bool = False) -> list[np.ndarray]:
    """One float32 (H, W) map per image of the data set, in its order, at each image's size."""
    provider = get_provider(provider)
    provider.prepare(dataset.image_names)
    cid = provider.cache_id if use_cache else None
    path = _cache_path(dataset, cid) if cid is not None else None
    if path is not None:
        cached = _read_cache(path, dataset)
        if cached is not None:
            return cached
    from tqdm.auto import tqdm

    maps = [provider(dataset.load_image(i), name)
            for i, name in enumerate(tqdm(dataset.image_names, desc=provider.name, disable=not progress))]
    if path is not None:
        _write_cache(path, dataset, maps)
    return maps
