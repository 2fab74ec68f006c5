"""Two tiny browser-side widgets that keep the dashboard's gestures to the smallest messages (issue 18):

- LiveMarks: the top-k slider's marks on the charts. The kernel sends the marker's position and k (one small
  state update); the browser moves the curve's two marker traces and, once the slider rests, recolours the
  per-map bars, with plotly.js directly. A plotly FigureWidget edit from Python instead cost a figure update
  there and back: after each edit the browser sent every trace's and the layout's delta (about 17 kB) back to
  the kernel, which echoed them (another 11 kB), and the 1280 bar colours went out as a 15 kB restyle.
- CachedImage: an <img> whose pictures the browser keeps (blob URLs keyed by a hash of the bytes). A picture's
  bytes cross the websocket once; showing it again sends only its key.

The kernel keeps what is shown (LiveMarks.marks, CachedImage.value), so state reads stay in Python."""
from __future__ import annotations

import hashlib

import anywidget
import traitlets

_MARKS_ESM = """
const CURVE = ".aisviz-curve.js-plotly-plot", BARS = ".aisviz-ais-bars.js-plotly-plot";
const ready = gd => gd && gd.data && gd._fullLayout && window.Plotly;

function render({ model, el }) {
  el.style.display = "none";
  let barTimer = null, observer = null;
  const root = () => el.closest(".aisviz-dashboard") || document;
  const moveMarker = () => {
    const m = model.get("marks"), gd = root().querySelector(CURVE);
    if (!m || !m.traces || !ready(gd)) return;
    const [it, ie] = m.traces, t = gd.data[it], e = gd.data[ie];
    if (!t || !e) return;
    const same = (a, b) => (a === b) || (a == null && b == null) || (Number.isNaN(a) && b == null);
    if (same(t.x[0], m.x) && same(e.x[0], m.x) && same(t.y[0], m.train) && same(e.y[0], m.test)) return;
    window.Plotly.restyle(gd, {x: [[m.x], [m.x]], y: [[m.train], [m.test]], _doNotReportToPy: true}, [it, ie]);
  };
  const recolour = () => {   // after the marker: a 1280-bar restyle must not delay what the eye follows
    const m = model.get("marks"), gd = root().querySelector(BARS);
    if (!m || !m.colours || !ready(gd) || !gd.data[0]) return;
    const [top, other] = m.colours, n = m.n_maps, k = Math.max(0, Math.min(m.k, n));
    const c = gd.data[0].marker && gd.data[0].marker.color;
    if (c && c.length === n && (k === 0 || c[k - 1] === top) && (k === n || c[k] === other)) return;
    const colours = Array.from({length: n}, (_, i) => i < k ? top : other);
    window.Plotly.restyle(gd, {"marker.color": [colours], _doNotReportToPy: true}, [0]);
  };
  const apply = () => {
    moveMarker();
    clearTimeout(barTimer);
    barTimer = setTimeout(recolour, 150);
  };
  // a chart drawn after the marks arrived (page open, another result) gets them once plotted
  const hooked = new WeakSet();
  const hook = () => {
    for (const sel of [CURVE, BARS]) {
      const gd = root().querySelector(sel);
      if (gd && gd.on && !hooked.has(gd)) { hooked.add(gd); gd.on("plotly_afterplot", apply); apply(); }
    }
  };
  const attach = () => {
    if (!el.closest(".aisviz-dashboard")) { setTimeout(attach, 200); return; }
    observer = new MutationObserver(hook);
    observer.observe(root(), {subtree: true, childList: true});
    hook();
  };
  model.on("change:marks", apply);
  attach();
  apply();
  return () => { model.off("change:marks", apply); if (observer) observer.disconnect(); clearTimeout(barTimer); };
}
export default { render };
"""


class LiveMarks(anywidget.AnyWidget):
    """The top-k marks the browser draws on the charts: marks = {"k": the slider's k, "x": the evaluated k
    nearest to it, "train"/"test": the marker's R² (None where undefined), "traces": the curve's marker trace
    indexes (train, test), "n_maps", "colours": (top-k bar colour, other bar colour)}."""

    _esm = _MARKS_ESM
    marks = traitlets.Dict().tag(sync=True)


KEPT = 400       # pictures an image slot keeps in the browser
_IMAGE_ESM = """
const LIMIT = %d;   // pictures kept per view (oldest dropped; the kernel sends the shown one again on request)

function render({ model, el }) {
  const cache = new Map(), img = document.createElement("img");
  img.className = model.get("css_class");
  img.style.width = img.style.height = model.get("size");
  img.style.objectFit = "contain";
  img.style.display = "block";
  const show = () => {
    const key = model.get("key"), url = cache.get(key);
    if (url) { if (img.src !== url) img.src = url; }
    else if (key) model.send({want: key});
  };
  const arrived = (msg, buffers) => {
    if (!msg || !msg.key || !buffers || !buffers.length) return;
    if (!cache.has(msg.key)) cache.set(msg.key, URL.createObjectURL(new Blob([buffers[0]], {type: "image/png"})));
    while (cache.size > LIMIT) {
      const [oldest, url] = cache.entries().next().value;
      cache.delete(oldest);
      URL.revokeObjectURL(url);
    }
    if (msg.key === model.get("key")) show();
  };
  el.classList.add("jupyter-widgets");   // ipywidgets' margins: level with the colour bars beside it
  el.appendChild(img);
  model.on("change:key", show);
  model.on("msg:custom", arrived);
  show();
  return () => {
    model.off("change:key", show);
    model.off("msg:custom", arrived);
    for (const url of cache.values()) URL.revokeObjectURL(url);
  };
}
export default { render };
""" % KEPT


class CachedImage(anywidget.AnyWidget):
    """A PNG <img> (class css_class, size x size) whose pictures the browser keeps: show(png) sends the bytes
    only when this image has not sent them before (or the browser asks again), then the key."""

    _esm = _IMAGE_ESM
    key = traitlets.Unicode("").tag(sync=True)
    css_class = traitlets.Unicode("").tag(sync=True)
    size = traitlets.Unicode("200px").tag(sync=True)

    def __init__(self, png: bytes, css_class: str, size: str, **kwargs):
        super().__init__(css_class=css_class, size=size, **kwargs)
        self._sent: dict[str, None] = {}     # keys whose bytes went to the browser, oldest first
        self.seen = False                    # a browser view exists (it asked for the shown picture)
        self.value = b""
        self.on_msg(self._on_browser)
        self.show(png)

    def show(self, png: bytes):
        """Show these PNG bytes."""
        self.value = png
        self.key = self.preload(png)

    def preload(self, png: bytes) -> str:
        """Send these PNG bytes to the browser, to keep until shown, unless it has them; returns their key.
        Nothing goes before a browser view exists: a message to a widget the page has not built yet is lost
        (and logged there as "Comm not found"); the view asks for the shown picture when it is built."""
        key = hashlib.blake2b(png, digest_size=10).hexdigest()
        if self.seen and key not in self._sent:
            if len(self._sent) >= KEPT:            # the browser keeps as many: older ones are asked again
                self._sent.pop(next(iter(self._sent)))
            self._sent[key] = None
            self.send({"key": key}, [png])
        return key

    def _on_browser(self, _widget, content, _buffers):
        """A browser view lacks the shown picture (a view just built, or one dropped from its cache)."""
        self.seen = True
        if isinstance(content, dict) and content.get("want") == self.key and self.value:
            self._sent[self.key] = None
            self.send({"key": self.key}, [self.value])
