"""Small HTML helpers for the panels: number formatting, escaping, plain-words errors, and the text
blocks (read-out, summary, info line, metrics table) built from a Result. Pure functions."""
from __future__ import annotations

import html

import numpy as np

from aisviz.core.metrics import DEFINITIONS


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    x = float(x)
    if np.isnan(x):
        return "n/a"
    if np.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}f}"


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def data_attrs(**values) -> str:
    """data-* attributes (for tests and scripts reading the page): data_attrs(test_topk=0.5) ->
    " data-test-topk='0.5'"."""
    return "".join(f" data-{k.replace('_', '-')}='{esc(v)}'" for k, v in values.items())


def info_html(r) -> str:
    s = r.settings
    sal = "" if not r.saliency_error else " <span class='aisviz-warn'>(saliency unavailable: see message)</span>"
    attrs = data_attrs(dataset=r.dataset_name, layer=s.layer, readout=s.readout, model=s.model)
    return (f"<div class='aisviz-info-inner'{attrs}>"
            f"<b>{esc(r.dataset_name)}</b> ({r.n_images} images, {esc(r.observer)} judgments) · <b>{esc(s.model)}</b> "
            f"({esc(r.weights_label)} weights), perturbed layer <b>{esc(s.layer)}</b> ({r.n_maps} maps) → read-out "
            f"<b>{esc(s.readout)}</b> · network RSM {esc(s.similarity)}, alignment {esc(s.measure)} · engine "
            f"{esc(r.engine)} · alignment with all maps R² = <b>{fmt(r.r2_all)}</b> (0 = none, 1 = perfect){sal}"
            "</div>")


def mean_sd(mean, sd) -> str:
    """'mean ± SD' over splits, or 'undefined' where R² is undefined in every split (NaN mean; the SD of
    no values is not a spread of 0)."""
    return "undefined" if mean is None or np.isnan(mean) else f"{fmt(mean)} ± {fmt(sd)}"


def undefined_note(k: int) -> str:
    """Why R² is undefined at k in every split (aisviz.core.alignment.AlignmentTarget returns NaN there)."""
    return (f"R² is undefined at k = {k}: in every split the network similarities from the top {k} "
            f"map{'' if k == 1 else 's'} are undefined or the same for every pair of images (one map read out "
            "through pooling gives every pair r = ±1), so they cannot correlate with people's.")


def readout_html(r, values: dict, slider: int) -> str:
    v = values
    step = "" if r.k_step == 1 else f" (nearest evaluated k; step {r.k_step})"
    attrs = data_attrs(k=v["k"], slider=slider, test_topk=repr(v["test_topk"]), test_all=repr(v["test_all"]),
                       test_random=repr(v["test_random"]), train_topk=repr(v["train_topk"]))
    note = f" <small class='aisviz-undefined'>{undefined_note(v['k'])}</small>" if np.isnan(v["test_topk"]) else ""
    return (f"<div class='aisviz-readout-inner'{attrs}>"
            f"<b>k = {v['k']}</b> of {v['n_maps']} maps{step} · held-out test R² (higher = closer to people): "
            f"<b>{mean_sd(v['test_topk'], v['test_topk_sd'])}</b> with the top-k maps by training AIS · "
            f"{mean_sd(v['test_all'], v['test_all_sd'])} with all maps · "
            f"{mean_sd(v['test_random'], v['test_random_sd'])} with k random maps <small>(mean ± SD over "
            f"{v['n_splits']} splits; train R² {'undefined' if np.isnan(v['train_topk']) else fmt(v['train_topk'])})"
            f"</small>{note}</div>")


def summary_html(r) -> str:
    sm, s = r.summary, r.settings

    def p(x):
        return "n/a (one split, or no difference)" if x is None else f"{x:.3g}"

    return (f"<div class='aisviz-summary-inner'><small>{sm['n_splits']} splits ({s.n_folds} folds × {s.n_seeds} "
            f"seeds 111, 222, …), k evaluated every {r.k_step} ({len(r.k_values)} values). In each split k* "
            f"maximises training R²; at k*: test R² <b>{fmt(sm['mean_r2_test_topk'])}</b> ± "
            f"{fmt(sm['sd_r2_test_topk'])} with the top-k* maps vs {fmt(sm['mean_r2_test_all'])} ± "
            f"{fmt(sm['sd_r2_test_all'])} with all maps vs {fmt(sm['mean_r2_test_random'])} ± "
            f"{fmt(sm['sd_r2_test_random'])} with k* random maps; mean k* = {sm['mean_k_star']:.0f} ± "
            f"{sm['sd_k_star']:.0f} maps kept. One-sided paired t-test over splits (small p = top-k* better): "
            f"top-k* > all maps p = {p(sm['p_value'])}, top-k* > random p = {p(sm['p_value_vs_random'])} (the "
            "paper's test, which takes the splits as independent). Corrected resampled t-test (Nadeau &amp; "
            "Bengio 2003; Bouckaert &amp; Frank 2004; variance × (1/J + n_test/n_train), J splits, because they "
            "share images): "
            f"top-k* > all maps p = {p(sm.get('p_value_corrected'))}, top-k* > random p = "
            f"{p(sm.get('p_value_vs_random_corrected'))}. Bands: ±1 SD over splits.</small></div>")


def map_table_html(r, n: int = 10) -> str:
    rows = "".join(f"<tr><td>{rank + 1}</td><td>{esc(r.map_names[j])}</td><td>{r.ais[j]:+.5f}</td>"
                   f"<td>{r.r2_without[j]:.4f}</td></tr>" for rank, j in enumerate(r.ranking[:n]))
    return ("<table class='aisviz-table'><tr><th>rank</th><th>map</th><th title='R²(all) − R²(without the map); "
            "positive = the map helps the alignment'>AIS (↑ helps)</th><th>R² without it</th></tr>"
            f"{rows}</table>")


# metric key, label, definition key, chance level and direction shown beside the value
METRIC_ROWS = (("rr_5", "RR top 5%", "rr", "1 = chance; higher = more overlap"),
               ("rr_10", "RR top 10%", "rr", "1 = chance; higher = more overlap"),
               ("rr_15", "RR top 15%", "rr", "1 = chance; higher = more overlap"),
               ("auc_10", "AUC (top 10%)", "auc", "0.5 = chance; higher = better"),
               ("cc", "CC", "cc", "0 = unrelated; 1 = identical"),
               ("sim", "SIM", "sim", "0 = disjoint; 1 = identical"),
               ("kl", "KL", "kl", "0 = identical; higher = more different"),
               ("ais_mass_inside", "AIS mass in relevant region", "ais_mass_inside", "chance = region area"),
               ("saliency_mass_inside", "saliency mass in relevant region", "saliency_mass_inside",
                "chance = region area"),
               ("mask_area", "relevant region area", "mask_area", "the chance level of the two above"))


def metrics_html(r, i: int, metrics: dict | None) -> str:

    head = (f"<div class='aisviz-metrics-inner'{data_attrs(index=i, name=r.image_names[i])}>"
            f"<small>This image's row alignment with people (Pearson r of its similarity row, all maps; 0 = none, "
            f"1 = perfect): <b>{fmt(r.r_orig[i])}</b>.</small>")
    if metrics is None:
        return head + f"<br><small class='aisviz-warn'>{esc(r.saliency_error)}</small></div>"
    cells = []
    for key, label, d, chance in METRIC_ROWS:
        if key not in metrics:
            continue
        note = metrics["notes"].get(key, "")
        title = esc(DEFINITIONS.get(d, "") + (f" Undefined here: {note}" if note else ""))
        cells.append(f"<tr title='{title}'><td>{label}</td><td class='aisviz-m-{key}' "
                     f"data-value='{float(metrics[key])!r}'>{fmt(metrics[key])}</td><td><small>{chance}</small></td>"
                     "</tr>")
    return (head + "<table class='aisviz-table'><tr><th colspan=3>AIS heatmap vs saliency (both maps clipped at 0, "
            f"/max, squared, at display size ≤ {r.display_size} px); hover a row for its definition</th></tr>"
            + "".join(cells) + "</table></div>")
