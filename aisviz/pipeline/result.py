"""The dashboard's result: everything the panels show, as numpy arrays and plain Python (no torch).

`build_result(scorer, validation, dataset, saliency)` turns a fitted AlignmentImportance, its fitted
TopKValidation, the ComparisonSet and the saliency maps into one immutable `Result`. The panels
render only from this object, so a result can also come from elsewhere (a saved bundle opened by a
read-only viewer): build a Result from stored arrays with the same fields and hand it to
`Session.publish` / the Dashboard. Nothing here imports torch (viewer kernels stay small).

Fields of Result (n images, C maps of the perturbed layer, h x w its spatial size, n_k
evaluated k values, S validation splits):

settings        Settings: the resolved settings the result was computed with (dataset key, model,
                weights, layer, readout, similarity, measure, n_folds, n_seeds, k_step (the one asked
                for; 0 = auto), n_random, provider). `settings.to_dict()` is JSON-ready.
dataset_name    str: the data set's name.
observer        str: who judged the similarities ("human", "simulated", ...).
image_names     tuple[str] (n,): image identity, in the order of every per-image array.
map_names       tuple[str] (C,): "<layer>:<channel>", in channel order.
weights_label   str: the network's weights as the network reports them (e.g. "pretrained").
engine          str: the engine kind that computed the masked similarities.
reruns_tail     bool: True when masks re-run network layers (e.g. VGG-16 conv5_3 -> fc7).
human           (n, n) float64: the human (or observer) similarity matrix, higher = more similar.
r2_all          float: alignment with all maps (Pearson r² by default; the "measure" setting).
ais             (C,) float64: data-set AIS = r2_all - alignment with map j zeroed in every image.
r2_without      (C,) float64: alignment with map j zeroed (r2_all - ais).
image_ais       (n, C) float64: image AIS = r_orig(i) - r_mod(i, j) (row correlations, not squared).
r_orig          (n,) float64: Pearson r of image i's network similarity row with its human row
                (diagonal excluded), all maps.
activations     (n, C, h, w) float32: the perturbed layer's activations (after its ReLU): heatmaps
                for any k are image-AIS-weighted averages of these.
k_values        (n_k,) int64: the k values the validation evaluated (ascending, last = C).
k_step          int: the step actually used between evaluated k values.
curves          dict of (S, n_k) float64 arrays, alignment per split and k: "train_topk",
                "test_topk" (top-k maps by training AIS), "train_random", "test_random" (k random
                maps, mean over n_random orders). Mean and SD over splits: `curve_stats`.
splits          tuple of dicts (S,): seed, fold, n_train, n_test, k_star (the number of maps kept: the
                authors' 0-based index + 1), r2_train_all,
                r2_train_topk, r2_test_all, r2_test_topk, r2_test_random, test_images.
summary         dict: means and SDs over splits of k_star and the r2_* columns, n_splits, p_value
                (one-sided paired t-test top-k* > all maps; None when undefined), p_value_vs_random,
                test (its description), p_value_corrected and p_value_vs_random_corrected (the corrected
                resampled t-test, ais.corrected_paired_greater; absent in older bundles), test_corrected.
images          tuple of (h_i, w_i, 3) uint8 (n,): the images at display size (longer side at most
                `display_size`, aspect kept). `image(i)` gives a PIL image.
image_sizes     tuple of (width, height) (n,): the original image sizes.
display_size    int: the longer side, in px, the images were reduced to.
saliency        tuple of (h_i, w_i) float32 (n,) at the display size of image i, or None when the
                provider failed (then saliency_error says why).
saliency_provider  str: the saliency provider's name ("" when none).
saliency_error  str: a plain-words reason the saliency maps are missing ("" when present).
mds             (n, 2) float64: classical MDS coordinates of the human similarities (near = judged
                similar; plots.mds_coordinates).
relevant_masks  tuple of (h_i, w_i) bool (n,) at display size, or None: the data set's relevant
                regions (synthetic sets).
seconds         float: wall time from the request to the finished result (0 when not computed here).
source          str: where the result came from: "computed", "bundle" or "cache" (the disk cache of results).
notes           dict: free-form notes kept with the result (empty unless a caller adds some); a bundle
                stores them in its manifest.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from aisviz.core.curves import curve_stats, mds_coordinates
from aisviz.errors import DataError
from aisviz.pipeline.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from aisviz.core.comparison import ComparisonSet
    from aisviz.pipeline.importance import AlignmentImportance, TopKValidation

DISPLAY_SIZE = 320           # px, longer side of the images kept in a result
CURVE_NAMES = ("train_topk", "test_topk", "train_random", "test_random")


@dataclass(frozen=True, eq=False)
class Result:
    """One finished result, immutable; see the module docstring for every field."""

    settings: Settings
    dataset_name: str
    observer: str
    image_names: tuple
    map_names: tuple
    weights_label: str
    engine: str
    reruns_tail: bool
    human: np.ndarray
    r2_all: float
    ais: np.ndarray
    r2_without: np.ndarray
    image_ais: np.ndarray
    r_orig: np.ndarray
    activations: np.ndarray
    k_values: np.ndarray
    k_step: int
    curves: dict
    splits: tuple
    summary: dict
    images: tuple
    image_sizes: tuple
    display_size: int
    saliency: tuple | None
    saliency_provider: str
    saliency_error: str
    mds: np.ndarray
    relevant_masks: tuple | None = None
    seconds: float = 0.0
    source: str = "computed"
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        n, c = len(self.image_names), len(self.map_names)
        checks = {"human": (self.human.shape, (n, n)), "ais": (self.ais.shape, (c,)),
                  "r2_without": (self.r2_without.shape, (c,)), "image_ais": (self.image_ais.shape, (n, c)),
                  "r_orig": (self.r_orig.shape, (n,)), "activations": (self.activations.shape[:2], (n, c)),
                  "mds": (self.mds.shape, (n, 2))}
        for name, (got, want) in checks.items():
            if tuple(got) != want:
                raise DataError(f"result field {name} has shape {tuple(got)}, expected {want} "
                                 f"({n} images, {c} maps): the arrays do not belong together.")
        for name in ("images", "image_sizes") + (("saliency",) if self.saliency is not None else ()):
            if len(getattr(self, name)) != n:
                raise DataError(f"result field {name} has {len(getattr(self, name))} entries, expected one per "
                                 f"image ({n}).")
        if len(self.k_values) == 0 or int(self.k_values[-1]) != c:
            raise DataError(f"result field k_values must end at the number of maps ({c}).")
        for key in CURVE_NAMES:
            if np.shape(self.curves[key]) != (len(self.splits), len(self.k_values)):
                raise DataError(f"result curve {key} has shape {np.shape(self.curves[key])}, expected "
                                 f"({len(self.splits)} splits, {len(self.k_values)} k values).")

    @property
    def n_images(self) -> int:
        return len(self.image_names)

    @property
    def n_maps(self) -> int:
        return len(self.map_names)

    @cached_property
    def stats(self) -> dict:
        """curve_stats(curves): mean, SD and count over splits of each curve."""
        return curve_stats(self.curves)

    @cached_property
    def ranking(self) -> np.ndarray:
        """Map indices from the highest data-set AIS to the lowest (ties by channel order)."""
        return np.argsort(-self.ais, kind="stable")

    def image(self, i: int) -> PILImage:
        """Image i at display size as a PIL image."""
        from PIL import Image

        return Image.fromarray(self.images[i])


def _display_array(image, size: int) -> np.ndarray:
    im = image.convert("RGB").copy()
    im.thumbnail((size, size))
    return np.asarray(im, dtype=np.uint8)


def _resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    m = Image.fromarray(np.asarray(values, dtype=np.float32), mode="F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(m, dtype=np.float32)


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    mask_image = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    return np.asarray(mask_image.resize(size, Image.Resampling.NEAREST)) > 127


def build_result(scorer: AlignmentImportance, validation: TopKValidation, dataset: ComparisonSet,
                 saliency: Sequence[np.ndarray] | None = None, settings: Settings | None = None, *,
                 saliency_provider: str = "", saliency_error: str = "", display_size: int = DISPLAY_SIZE,
                 seconds: float = 0.0) -> Result:
    """The Result of a fitted AlignmentImportance, its fitted TopKValidation, the data set and
    its saliency maps (one (H, W) map per image at image size, or None). Pure: reads, never changes them."""

    if tuple(scorer.image_names_) != tuple(dataset.image_names):
        raise DataError("the scorer was fitted on other images than this data set: fit it on this data set.")
    if saliency is not None and len(saliency) != dataset.n_images:
        raise DataError(f"give one saliency map per image ({dataset.n_images}), not {len(saliency)}.")
    settings = settings or Settings(dataset=dataset.name, model=scorer.model, weights=scorer.weights,
                                    layer=scorer.layer_, readout=scorer.readout_, similarity=scorer.similarity,
                                    measure=scorer.measure, n_folds=validation.n_folds,
                                    n_seeds=len(validation.seeds), k_step=validation.k_step,
                                    n_random=validation.n_random, provider=saliency_provider)
    originals = [dataset.load_image(i) for i in range(dataset.n_images)]
    images = tuple(_display_array(im, display_size) for im in originals)
    shown = [(a.shape[1], a.shape[0]) for a in images]
    sal = None if saliency is None else tuple(_resize_map(m, s) for m, s in zip(saliency, shown, strict=True))
    masks = None if dataset.relevant_masks is None else tuple(
        _resize_mask(m, s) for m, s in zip(dataset.relevant_masks, shown, strict=True))
    activations = np.asarray(scorer.activations_)
    k_values = np.asarray(validation.k_values_, dtype=np.int64)
    return Result(
        settings=settings, dataset_name=dataset.name, observer=dataset.observer,
        image_names=tuple(dataset.image_names), map_names=tuple(scorer.map_names_),
        weights_label=str(scorer.network_.weights), engine=str(scorer.engine_.kind),
        reruns_tail=bool(scorer.engine_.reruns_tail), human=np.asarray(dataset.similarity, dtype=np.float64),
        r2_all=float(scorer.r2_all_), ais=np.asarray(scorer.ais_, dtype=np.float64),
        r2_without=np.asarray(scorer.r2_without_, dtype=np.float64),
        image_ais=np.asarray(scorer.image_ais_, dtype=np.float64), r_orig=np.asarray(scorer.r_orig_, np.float64),
        activations=np.asarray(activations, dtype=np.float32), k_values=k_values,
        k_step=int(k_values[1] - k_values[0]) if len(k_values) > 1 else 1,
        curves={k: np.asarray(validation.curves_[k], dtype=np.float64) for k in CURVE_NAMES},
        splits=tuple(dict(s) for s in validation.splits_), summary=dict(validation.summary_),
        images=images, image_sizes=tuple(im.size for im in originals), display_size=int(display_size),
        saliency=sal, saliency_provider=saliency_provider, saliency_error=saliency_error,
        mds=mds_coordinates(dataset.similarity), relevant_masks=masks, seconds=float(seconds))
