"""The method page's figures and numbers, drawn from the default set's cached command-line outputs.

Figures are matplotlib PNGs made from the CSV tables `aisviz validate --csv` writes, so they show exactly what a
reader gets from the same command; the image panels are the ones `aisviz saliency --out` writes.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from default_run import command_line  # noqa: E402

PANELS = 2  # image panels shown (the first images of the set)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _mean_sd(curves: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grouped = curves.groupby("k")[column]
    return grouped.mean().index.to_numpy(), grouped.mean().to_numpy(), grouped.std(ddof=1).to_numpy()


def curve_png(run: Path) -> bytes:
    """Held-out alignment against k: train and test R² of the top-k maps, k random maps, the all-maps level
    and the mean k*, each mean ± SD over the splits.

    Parameters
    ----------
    run : Path
        The default run's folder (default_run.default_run()).

    Returns
    -------
    bytes
        The PNG.
    """
    curves = pd.read_csv(run / "validate" / "curves.csv")
    summary = pd.read_csv(run / "validate" / "summary.csv").iloc[0]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for column, label, colour in (("r2_train_topk", "train, top-k by training AIS", "#1f77b4"),
                                  ("r2_test_topk", "test, top-k by training AIS", "#d62728"),
                                  ("r2_test_random", "test, k random maps", "#7f7f7f")):
        k, mean, sd = _mean_sd(curves, column)
        ax.plot(k, mean, color=colour, label=label, lw=1.5)
        ax.fill_between(k, mean - sd, mean + sd, color=colour, alpha=0.15, lw=0)
    ax.axhline(summary["mean_r2_test_all"], color="black", ls="--", lw=1, label="test, all maps")
    ax.axvline(summary["mean_k_star"], color="#d62728", ls=":", lw=1, label=f"mean k* = {summary['mean_k_star']:.0f}")
    ax.set_xlabel("k (maps kept)")
    ax.set_ylabel("R² (mean ± SD over splits)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Held-out alignment on the default set", fontsize=10)
    return _png(fig)


def bars_png(run: Path) -> bytes:
    """Data-set AIS of every map sorted from the highest, with the mean k* marked.

    Parameters
    ----------
    run : Path
        The default run's folder.

    Returns
    -------
    bytes
        The PNG.
    """
    maps = pd.read_csv(run / "validate" / "maps.csv").sort_values("rank")
    k_star = pd.read_csv(run / "validate" / "summary.csv").iloc[0]["mean_k_star"]
    fig, ax = plt.subplots(figsize=(7.5, 3))
    ranks = maps["rank"].to_numpy()
    ax.bar(ranks, maps["ais"], width=1.0, color=np.where(ranks <= k_star, "#d62728", "#9e9e9e"))
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("rank of the map by AIS (all images)")
    ax.set_ylabel("AIS = R²(all) − R²(without)")
    ax.set_title(f"AIS of the {len(maps)} maps; red: the top {k_star:.0f} (mean k*)", fontsize=10)
    return _png(fig)


def kstar_png(run: Path) -> bytes:
    """k* of every split (histogram).

    Parameters
    ----------
    run : Path
        The default run's folder.

    Returns
    -------
    bytes
        The PNG.
    """
    splits = pd.read_csv(run / "validate" / "splits.csv")
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.hist(splits["k_star"], bins=20, color="#d62728")
    ax.set_xlabel("k* (maps kept, chosen on training images)")
    ax.set_ylabel("splits")
    ax.set_title(f"k* over the {len(splits)} splits", fontsize=10)
    return _png(fig)


def panel_files(run: Path) -> list[Path]:
    """The first PANELS image | AIS heatmap | saliency panels that `aisviz saliency --out` wrote.

    Parameters
    ----------
    run : Path
        The default run's folder.

    Returns
    -------
    list of Path
        PNG files.
    """
    return sorted((run / "panels").rglob("*.png"))[:PANELS]


def _f(x, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def snippets(run: Path) -> dict[str, str]:
    """Markdown pieces for the method page's `<!-- default-set: NAME -->` markers.

    Parameters
    ----------
    run : Path
        The default run's folder.

    Returns
    -------
    dict
        NAME -> Markdown.
    """
    validate = json.loads((run / "validate.json").read_text())
    s = validate["summary"]
    p_all = "n/a" if s["p_value"] is None else f"{s['p_value']:.2g}"
    p_random = "n/a" if s["p_value_vs_random"] is None else f"{s['p_value_vs_random']:.2g}"
    summary = "\n".join([
        f"Computed when this site was built: `{command_line('validate')}` on the default set "
        f"({validate['dataset']}, {validate['n_images']} images, {validate['observer']} observer; "
        f"{validate['model']} `{validate['layer']}` → `{validate['readout']}`, {validate['n_maps']} maps; "
        f"{s['n_splits']} splits).", "",
        "| test R², mean ± SD over splits | value |", "|---|---|",
        f"| all maps | {_f(s['mean_r2_test_all'])} ± {_f(s['sd_r2_test_all'])} |",
        f"| top-k\\* maps by training AIS | {_f(s['mean_r2_test_topk'])} ± {_f(s['sd_r2_test_topk'])} |",
        f"| k\\* random maps | {_f(s['mean_r2_test_random'])} ± {_f(s['sd_r2_test_random'])} |",
        f"| k\\* | {_f(s['mean_k_star'], 0)} ± {_f(s['sd_k_star'], 0)} |",
        f"| p, top-k\\* > all maps (one-sided paired t-test) | {p_all} |",
        f"| p, top-k\\* > random | {p_random} |", ""])
    saliency = json.loads((run / "saliency.json").read_text())
    result = saliency["datasets"][0]
    provider = saliency["provider"]
    rows = [f"Computed when this site was built: `{command_line('saliency')}` on the default set, provider "
            f"*{provider['label']}* ({provider['kind']}; mean ± SD over the {validate['n_images']} images).", "",
            "| metric | mean ± SD | chance |", "|---|---|---|"]
    chance = {"rr": "1", "auc": "0.5", "cc": "0"}
    for key, value in result["summary"].items():
        if isinstance(value, dict) and "mean" in value:
            rows.append(f"| `{key}` | {_f(value['mean'])} ± {_f(value.get('sd'))} | "
                        f"{chance.get(key.split('_')[0], 'mask area' if 'mass' in key else '')} |")
    return {"summary": summary, "saliency": "\n".join(rows) + "\n"}
