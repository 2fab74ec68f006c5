"""Slot widths: plotly's FigureWidget (an anywidget since plotly 6) no longer follows its container's size
(plotly/plotly.py#5208), so a tiny invisible widget watches the figure slots with a ResizeObserver and
reports their widths; the Dashboard then sets each figure's width. Slots are elements with the class
aisviz-slot-<name>."""
from __future__ import annotations

import anywidget
import traitlets

_ESM = """
function render({ model, el }) {
  el.style.display = "none";
  let observer = null, timer = null;
  const report = () => {
    const root = el.closest(".aisviz-dashboard");
    if (!root) return;
    const widths = {};
    for (const slot of root.querySelectorAll("[class*='aisviz-slot-']")) {
      const name = [...slot.classList].find(c => c.startsWith("aisviz-slot-")).slice(12);
      const w = Math.floor(slot.getBoundingClientRect().width);
      if (w > 0) widths[name] = w;
    }
    if (JSON.stringify(widths) !== JSON.stringify(model.get("widths"))) {
      model.set("widths", widths);
      model.save_changes();
    }
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(report, 120); };
  const attach = () => {
    const root = el.closest(".aisviz-dashboard");
    if (!root) { setTimeout(attach, 200); return; }
    observer = new ResizeObserver(later);
    for (const slot of root.querySelectorAll("[class*='aisviz-slot-']")) observer.observe(slot);
    report();
  };
  attach();
  return () => { if (observer) observer.disconnect(); clearTimeout(timer); };
}
export default { render };
"""


class SlotWidths(anywidget.AnyWidget):
    _esm = _ESM
    widths = traitlets.Dict().tag(sync=True)     # slot name -> width in px, as the browser lays it out
