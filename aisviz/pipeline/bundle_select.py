"""Choosing settings in a result bundle by what they are, never by where they sit in bundle.json.

- `entry_order_key`: the documented order of bundle.json's entries (aisviz.bundles.write_bundle sorts by
  it): the generated set ("synthetic") first, then the other data sets by name; within a data set by
  network and weights (pretrained first), the network's default perturbed layer first, then the other
  layers by name; settings equal in all of these keep the order they were first written in. A setting
  written again replaces itself in place, so re-running a `precompute` never moves anything.
- `find_entry(entries, dataset=..., model=..., layer=...)`: the entry with those settings, or an error that
  lists what the bundle holds and the `aisviz precompute` command that adds the missing one.
- `parse_setting` / `default_entry`: the shared dashboard's opening setting (`aisviz serve --shared
  --default SETTING`), given as a setting id or as `field=value,...`; without one, the first entry in
  the order above (the generated set's default layer when it is there).

Imports nothing but aisviz.errors (viewer kernels import it; no torch).
"""
from __future__ import annotations

from aisviz.errors import InputError

GENERATED_SET = "synthetic"
# the settings fields besides data set, network, weights and layer
TIE_FIELDS = ("readout", "provider", "similarity", "measure", "n_folds", "n_seeds", "k_step", "n_random")


class SettingNotFound(InputError):
    """No setting in the bundle matches what was asked for (exit code 3)."""


def entry_order_key(settings: dict, default_layer: bool | None) -> tuple:
    """The sort key of one bundle entry (see the module docstring); sort stably by it.

    Parameters
    ----------
    settings: the entry's settings (a dict as stored in bundle.json).
    default_layer: whether the entry's layer is its network's default perturbed layer (None: unknown,
        as in bundles written before aisviz recorded it; sorted after the default).

    Returns
    -------
    A tuple of booleans and strings that sorts entries in the documented order.
    """
    dataset = str(settings.get("dataset"))
    return (dataset != GENERATED_SET, dataset, str(settings.get("model")), settings.get("weights") != "pretrained",
            str(settings.get("weights")), default_layer is not True, str(settings.get("layer")))


def _matches(settings: dict, wanted: dict) -> bool:
    return all(str(settings.get(f)) == str(v) for f, v in wanted.items() if v is not None)


def find_entry(entries, **wanted):
    """The first entry (in bundle order) whose settings have every value in `wanted`.

    Parameters
    ----------
    entries: the bundle's entries (objects with .id, .label and .settings, e.g. BundleCatalog.entries).
    **wanted: settings fields and their values, e.g. dataset="synthetic", model="efficientnet_lite0",
        layer="_head_act"; a value None is not checked.

    Returns
    -------
    The matching entry. Raises SettingNotFound naming the missing setting, the settings the bundle holds,
    and the command that adds it.
    """
    unknown = sorted(set(wanted) - {"dataset", "model", "weights", "layer", *TIE_FIELDS})
    if unknown:
        raise SettingNotFound(f"{', '.join(unknown)} is not a setting of a bundle entry: use dataset, model, "
                              f"weights, layer, {', '.join(TIE_FIELDS)}.")
    for e in entries:
        if _matches(e.settings, wanted):
            return e
    asked = ", ".join(f"{f}={v}" for f, v in wanted.items() if v is not None)
    held = "; ".join(e.label for e in entries) or "nothing"
    flags = " ".join(f"--{f.replace('_', '-')} {v}" for f, v in wanted.items()
                     if v is not None and f in ("dataset", "model", "layer"))
    raise SettingNotFound(f"the bundle has no result for {asked} (it holds: {held}): add it with "
                          f"`aisviz precompute --out BUNDLE {flags}`, or choose one it holds.")


def parse_setting(spec: str) -> dict:
    """A setting named on the command line: `field=value[,field=value...]` -> {field: value}; a bare word
    is taken as a setting id -> {"id": word}.

    Parameters
    ----------
    spec: e.g. "dataset=synthetic,layer=_head_act", or a setting folder name from bundle.json.

    Returns
    -------
    A dict of the fields asked for.
    """
    spec = spec.strip()
    if not spec:
        raise SettingNotFound("the default setting is empty: give e.g. --default dataset=synthetic,layer=_head_act")
    if "=" not in spec:
        return {"id": spec}
    out = {}
    for part in spec.split(","):
        field, sep, value = part.partition("=")
        if not sep or not field.strip() or not value.strip():
            raise SettingNotFound(f"cannot read {part!r} in the setting {spec!r}: write field=value pairs joined "
                                  "by commas, e.g. dataset=synthetic,layer=_head_act")
        out[field.strip()] = value.strip()
    return out


def default_entry(entries, spec: str | None = None):
    """The setting a shared dashboard opens on.

    Parameters
    ----------
    entries: the bundle's entries in bundle order (BundleCatalog.entries).
    spec: None (the first entry: the generated set's default layer when the bundle has it), or a setting
        as parse_setting reads it.

    Returns
    -------
    The entry. Raises SettingNotFound when spec names no bundled setting.
    """
    if spec is None:
        return entries[0]
    wanted = parse_setting(spec)
    if "id" in wanted:
        for e in entries:
            if e.id == wanted["id"]:
                return e
        raise SettingNotFound(f"the bundle has no setting {wanted['id']!r}; it holds: "
                              f"{', '.join(e.id for e in entries)} (or name one as dataset=...,layer=...).")
    return find_entry(entries, **wanted)
