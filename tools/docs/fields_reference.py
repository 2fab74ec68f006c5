"""The output-field reference: every column of every CSV and every key of the `--json` outputs, with its meaning.

The field names come from the code (the sweep's COLUMNS) or from real outputs (the default set's cached
`aisviz validate/score/saliency` runs), so a field that appears or goes away changes the page. The meanings come
from the code where it has them (the sweep's COLUMN_MEANINGS, the saliency metrics' DEFINITIONS); `mean_X` and
`sd_X` are derived from X; the rest are described below, in DESCRIBED. The build fails when a field has no
meaning, or when DESCRIBED describes a field that no output has any more.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from _load import obj
from default_run import command_line
from targets import COMPARE_MODULE, SWEEP_MODULE

# table -> field -> meaning; "*" holds fields that mean the same wherever they appear.
DESCRIBED = {
    "*": {
        "dataset": "the data set's name (catalog name, or the folder's name)",
        "model": "the network's name (e.g. `efficientnet_lite0`, `vgg16`, `timm:NAME`)",
        "layer": "the perturbed layer (its maps are scored)",
        "readout": "the read-out layer (its vectors give the network's similarities)",
        "n_images": "number of images in the set",
        "n_maps": "number of feature maps (channels) of the perturbed layer",
        "engine": "how the masked similarities were computed (`per-map sufficient statistics`, `precomputed per-map "
                  "Linear contributions` or `brute-force re-run`); all give the same numbers",
        "observer": "who judged the similarities (`human`, `simulated`)",
        "source": "where the result came from: `computed` by this run, or `cache` (the disk cache of results: the "
                  "same settings on the same data computed before; `aisviz cache show`)",
        "weights": "the network's weights as it reports them (e.g. `imagenet` for the offline network, a torchvision "
                   "weights name, `none` for random weights)",
        "similarity": "network similarity between read-outs (`pearson` or `cosine`)",
        "measure": "alignment measure (`pearson`: R², `spearman`: ρ²)",
        "n_splits": "number of held-out splits (folds × seeds)",
        "image": "the image's name (file name in the set's image list)",
        "map": "the map's name, `<layer>:<channel>`",
        "channel": "the map's channel index in the perturbed layer (0-based)",
        "seed": "the split's seed (111, 222, …): scikit-learn's `KFold(shuffle=True, random_state=seed)`",
        "fold": "the split's test fold (0-based)",
        "csv": "the CSV files written (with `--csv`)",
        "warnings": "every warning of the run, as text (also printed on stderr)",
        "nonfinite_as_null": "how many NaN or infinite numbers were written as `null`",
        "notes": "why a value is undefined (NaN), per metric; empty when every value is defined",
    },
    "maps": {
        "ais": "data-set AIS = R²(all maps) − R²(this map zeroed in every image)",
        "r2_without": "alignment with this map zeroed in every image",
        "rank": "rank by AIS (1 = highest; equal AIS in channel order)",
    },
    "images": {
        "image_ais": "image AIS = r_orig − r with this map zeroed in this image only (row correlations, not squared)",
        "r_orig": "Pearson r of this image's network similarity row with its human row (diagonal excluded), all maps",
    },
    "splits": {
        "n_train": "training images in this split",
        "n_test": "held-out (test) images in this split",
        "k_star": "k with the highest training R² (number of maps kept)",
        "r2_train_all": "training R² with all maps",
        "r2_train_topk": "training R² with the top-k* maps by training AIS",
        "r2_test_all": "test R² with all maps",
        "r2_test_topk": "test R² with the top-k* maps by training AIS",
        "r2_test_random": "test R² with k* random maps (mean over the random orders)",
        "test_images": "the held-out images (joined by `;` in CSV)",
    },
    "curves": {
        "k": "maps kept",
        "r2_train_topk": "training R² with the top-k maps by training AIS",
        "r2_test_topk": "test R² with the top-k maps by training AIS",
        "r2_train_random": "training R² with k random maps (mean over the random orders)",
        "r2_test_random": "test R² with k random maps (mean over the random orders)",
    },
    "summary": {
        "test": "the statistical test behind the p-values, in words",
        "test_corrected": "the corrected resampled t-test behind the corrected p-values (Nadeau & Bengio 2003), "
                          "in words",
        "p_value_corrected": "one-sided corrected resampled t-test (variance inflated by 1/J + n_test/n_train for "
                             "J overlapping splits), top-k* > all maps; null when undefined",
        "p_value_vs_random_corrected": "the same corrected test, top-k* > k* random maps; null when undefined",
    },
    "sweep": {
        "error": "the cell's one-line error when it failed (empty otherwise)",
        "n_subjects": "people with their own similarity matrix (0 or empty: no noise ceiling)",
        "weights": "the weights asked for (`--weights`: `pretrained`, a torchvision enum name, or `none`)",
        "folds": "cross-validation folds per seed",
        "n_seeds": "number of seeds (111, 222, …)",
        "k_step": "step between evaluated k (0 = the dashboard's automatic step)",
        "n_random": "random map orders per split (random baseline)",
        "readout": "the read-out layer (the same for every layer of a network unless `--readout` is given)",
    },
    "score.json": {
        "r2_all": "alignment with all maps (R² or ρ²)",
        "ais": "data-set AIS of every map, in channel order",
        "map_names": "the maps' names, in channel order",
        "image_names": "the images' names, in the set's order",
    },
    "validate.json": {
        "splits": "one object per split, with the fields of `splits.csv` (`test_images` as a list)",
        "summary": "the fields of `summary.csv`",
        "k_values": "the evaluated k",
        "curves_mean": "per curve (`train_topk`, `test_topk`, `train_random`, `test_random`), the mean over splits "
                       "at each evaluated k (`null` where undefined in every split)",
    },
    "saliency.json": {
        "provider": "the saliency provider: `name`, `label`, `kind` and a `note` on how its maps were made",
        "datasets": "per data set: `dataset`, `qs` (the top-q shares), `definitions` (each metric's definition), "
                    "`images` (one object per image, the fields of the CSV, `notes` as an object) and `summary` "
                    "(per metric: `mean`, `sd` over finite values, `median`, `n`, `n_inf`, `n_undefined`)",
        "pooled": "with several data sets: every image counted once (`datasets`, `per_dataset`, `n_images`, `pooled`)",
    },
}
Q_SUFFIX = re.compile(r"^([a-z]+)_(\d+)$")


class Meanings:
    """Resolve a field's meaning in a table, and remember which descriptions were used."""

    def __init__(self):
        sweep, compare = obj(SWEEP_MODULE), obj(COMPARE_MODULE)
        self.code = dict(sweep.COLUMN_MEANINGS)
        self.definitions = dict(compare.DEFINITIONS)
        self.used: set[tuple[str, str]] = set()

    def __call__(self, table: str, field: str) -> tuple[str, str]:
        """(meaning, source) of a field: source is "code", "derived" or "docs"."""
        for where in (table, "*"):
            if field in DESCRIBED.get(where, {}) and (where == table or field not in self.code):
                self.used.add((where, field))
                return DESCRIBED[where][field], "docs"
        if field in self.code:
            return self.code[field], "code"
        if field in self.definitions:
            return self.definitions[field], "code"
        q = Q_SUFFIX.match(field)
        if q and q.group(1) in self.definitions:
            return f"{self.definitions[q.group(1)]} Here q = {q.group(2)} %.", "code"
        for prefix, what in (("mean_", "mean over splits of"), ("sd_", "SD over splits of")):
            if field.startswith(prefix):
                base = field[len(prefix):]
                for source_table in ("splits", table):
                    inner = DESCRIBED.get(source_table, {}).get(base) or self.code.get(f"mean_{base}")
                    if inner:
                        self.used.add((source_table, base)) if base in DESCRIBED.get(source_table, {}) else None
                        return f"{what}: {inner}", "derived"
        raise RuntimeError(f"docs: the field {field!r} of {table} has no meaning: describe it in the code "
                           f"(e.g. {SWEEP_MODULE}.COLUMN_MEANINGS) or in DESCRIBED in {__file__}")

    def stale(self) -> list[str]:
        """Descriptions in DESCRIBED that no field used."""
        return sorted(f"{t}.{f}" for t, fields in DESCRIBED.items() for f in fields if (t, f) not in self.used)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(meanings: Meanings, table: str, fields) -> list[str]:
    rows = ["| field | meaning | from |", "|---|---|---|"]
    for field in fields:
        text, source = meanings(table, field)
        rows.append(f"| `{field}` | {_cell(text)} | {source} |")
    return rows + [""]


def render(run: Path) -> str:
    """The field reference page.

    Parameters
    ----------
    run : Path
        The default run's folder (default_run.default_run()).

    Returns
    -------
    str
        The page.
    """
    sweep, compare = obj(SWEEP_MODULE), obj(COMPARE_MODULE)
    meanings = Meanings()
    lines = ["# Output fields", "",
             "Every column of the CSV tables and every key of the `--json` outputs. Field names are taken from the "
             "code and from real outputs of the default set when this site was built; the *from* column says "
             "where each meaning comes from: **code** (the package's own descriptions, e.g. "
             f"`{SWEEP_MODULE}.COLUMN_MEANINGS`), **derived** (`mean_X`, `sd_X` from X) or **docs** (described in "
             "`tools/docs/fields_reference.py`, checked against the outputs at every build).", "",
             "Missing values: NaN in CSV and Python, `null` in JSON (counted in `nonfinite_as_null`); an infinite "
             "relative risk is `inf` in CSV and `\"inf\"` in the saliency JSON.", ""]
    csv_tables = [("maps", "validate", "score and validate: one row per map"),
                  ("images", "score", "score: one row per (image, map)"),
                  ("splits", "validate", "validate: one row per split"),
                  ("curves", "validate", "validate: one row per (split, k)"),
                  ("summary", "validate", "validate: one row, means and SDs over the splits")]
    lines += ["## CSV tables of `score` and `validate`", "",
              f"Written by `--csv DIR` (`{command_line('score')}`, `{command_line('validate')}`); in Python the same "
              "tables are `AlignmentImportance.to_dataframe(\"maps\"|\"images\")` and "
              "`TopKValidation.to_dataframe(\"splits\"|\"curves\"|\"summary\")`.", ""]
    for table, command, what in csv_tables:
        columns = pd.read_csv(run / command / f"{table}.csv", nrows=1).columns
        lines += [f"### `{table}.csv` {{#{table}-csv}}", "", f"{what}.", ""] + _table(meanings, table, columns)
    lines += ["## The sweep table", "",
              "`OUT/sweep.csv`, `OUT/sweep.parquet` and the rows of `aisviz sweep --json` (which also carries these "
              f"meanings as `columns`): one row per (data set, network, layer), in `{SWEEP_MODULE}.COLUMNS` order. "
              "`layer_table()` adds the settings each cell was computed with.", ""]
    lines += _table(meanings, "sweep", sweep.COLUMNS)
    lines += ["Settings columns of `layer_table()`:", ""] + _table(meanings, "sweep", sweep.SETTING_COLUMNS)
    saliency_csv = sorted((run / "saliency").glob("*.csv"))[0]
    lines += ["## Saliency comparison", "",
              f"`{command_line('saliency')}` writes one CSV per data set (`saliency_<set>.csv`), one row per image. "
              f"The metrics' definitions are `{COMPARE_MODULE}.DEFINITIONS`; both maps are prepared by one "
              f"transform (`{COMPARE_MODULE}.TRANSFORMS`):", ""]
    lines += [f"- `{name}`: {_cell(text)}" for name, text in compare.TRANSFORMS.items()] + [""]
    lines += _table(meanings, "saliency", pd.read_csv(saliency_csv, nrows=1).columns)
    lines += ["## JSON outputs", "",
              "Every command's `--json` prints one strict JSON object on stdout (NaN and infinities as `null`). "
              "The keys of the computing commands, from the default set's runs:", ""]
    for command in ("score", "validate", "saliency"):
        keys = json.loads((run / f"{command}.json").read_text())
        lines += [f"### `aisviz {command} --json` {{#{command}-json}}", ""] + _table(meanings, f"{command}.json", keys)
    stale = meanings.stale()
    if stale:
        raise RuntimeError(f"docs: fields described but in no output any more: {stale}; remove them from "
                           f"DESCRIBED in {__file__}")
    return "\n".join(lines)
