/* The static site of aisviz results (aisviz/site.py writes the data). No server, no fetch (file:// forbids
   it): data files are scripts that call AISVIZ.put(name, value), or, in a single-file site, JSON elements
   <script type="application/json" id="aisviz:NAME">. Nothing is computed here except picking the value
   stored for a k. */
"use strict";
(function () {
  const A = window.AISVIZ = {store: {}, waiting: {}};
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  A.put = function (name, value) {
    A.store[name] = value;
    (A.waiting[name] || []).forEach(w => w.resolve(value));
    delete A.waiting[name];
  };

  /* The value named `name`: from the store, an inline JSON element, or data/NAME.js (a script tag works
     from file://). */
  function need(name) {
    if (name in A.store) return Promise.resolve(A.store[name]);
    return new Promise((resolve, reject) => {
      const first = !(name in A.waiting);
      (A.waiting[name] = A.waiting[name] || []).push({resolve, reject});
      if (!first) return;
      const inline = document.getElementById("aisviz:" + name);
      if (inline) { A.put(name, JSON.parse(inline.textContent)); return; }
      const s = document.createElement("script");
      s.src = "data/" + name + ".js";
      s.onerror = () => {
        const w = A.waiting[name] || [];
        delete A.waiting[name];
        w.forEach(x => x.reject(new Error(`could not load ${s.src}: the site is incomplete; write it again ` +
                                          "with `aisviz site`.")));
      };
      document.head.appendChild(s);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // formatting (aisviz.dashboard.html.fmt and esc)

  function fmt(x, digits) {
    if (x === null || x === undefined || Number.isNaN(x)) return "n/a";
    if (x === Infinity) return "∞";
    if (x === -Infinity) return "-∞";
    return Number(x).toFixed(digits === undefined ? 3 : digits);
  }
  function esc(x) {
    return String(x).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#x27;");
  }
  function attrs(values) {
    return Object.entries(values).map(([k, v]) => ` data-${k.replace(/_/g, "-")}='${esc(v)}'`).join("");
  }

  // ---------------------------------------------------------------------------------------------
  // state

  const S = {index: null, entry: null, data: null, kIndex: 0, hovered: null, pinned: null, image: null,
             display: "default", mode: "grid", barsTimer: null, token: 0};
  const PLOT_CONFIG = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["toImage"]};

  function problem(text) {
    const box = $(".aisviz-message-box");
    $(".aisviz-message").innerHTML = `<div class='aisviz-error'><b>Problem.</b> ${esc(text)}</div>`;
    box.hidden = false;
  }

  // ---------------------------------------------------------------------------------------------
  // menus of the bundled settings (aisviz.viewer.ViewerControlsPanel and best_entry)

  function buildMenus() {
    const box = $(".aisviz-menus");
    box.innerHTML = "";
    S.index.facets.forEach((f, fi) => {
      const label = document.createElement("label");
      label.className = `aisviz-menu aisviz-viewer-${f.field.replace(/_/g, "-")}`;
      label.innerHTML = `<span>${esc(f.label)}</span>`;
      const select = document.createElement("select");
      f.options.forEach((o, i) => select.add(new Option(o, String(i))));
      select.disabled = f.options.length < 2;
      select.addEventListener("change", () => pickFacet(fi, Number(select.value)));
      label.appendChild(select);
      box.appendChild(label);
    });
  }

  function syncMenus() {
    const e = S.index.entries.findIndex(x => x.id === S.entry);
    $$(".aisviz-menu select").forEach((select, fi) => { select.value = String(S.index.facets[fi].entry_option[e]); });
  }

  /* The bundled entry with this facet value that agrees with the shown one on the most other facets (ties: the
     first written). */
  function pickFacet(fi, option) {
    const facets = S.index.facets, cur = S.index.entries.findIndex(x => x.id === S.entry);
    let best = -1, score = -1;
    S.index.entries.forEach((e, ei) => {
      if (facets[fi].entry_option[ei] !== option) return;
      const agree = facets.filter(f => f.entry_option[ei] === f.entry_option[cur]).length;
      if (agree > score) { best = ei; score = agree; }
    });
    if (best >= 0) showSetting(S.index.entries[best].id);
  }

  // ---------------------------------------------------------------------------------------------
  // one setting

  function showSetting(id) {
    const token = ++S.token;
    document.body.removeAttribute("data-aisviz-ready");
    return need(id).then(d => {
      if (token !== S.token) return;
      const sameImages = S.data && JSON.stringify(S.data.image_names) === JSON.stringify(d.image_names);
      S.entry = id;
      S.data = d;
      syncMenus();
      $(".aisviz-info").innerHTML = d.html.info;
      const c = d.computed;
      $(".aisviz-provenance").innerHTML = `<small class='aisviz-computed'${attrs({date: c.date, version: c.version})}>` +
        `Computed ${c.recorded ? "" : "(bundle written) "}on <b>${esc(c.date.replace("T", " "))}</b> with aisviz ` +
        `<b>${esc(c.version)}</b> · setting: ${esc(d.label)} · this static page: aisviz ${esc(S.index.aisviz_version)}, ` +
        `written ${esc(S.index.written_at.replace("T", " "))}. Values are the bundle's; nothing is computed in your ` +
        "browser.</small>";
      $(".aisviz-summary").innerHTML = d.html.summary;
      $(".aisviz-ceiling").innerHTML = d.html.ceiling;
      $(".aisviz-map-table").innerHTML = d.html.maps;
      drawCurve(d);
      drawBars(d);
      buildGrid(d);
      if (S.mode === "mds") drawMds(d);
      if (!sameImages) { S.pinned = null; S.hovered = null; }
      const slider = $(".aisviz-k-input");
      slider.max = String(d.readout.k_values.length - 1);
      slider.disabled = false;
      const k0 = nearestIndex(d.readout.k_values, d.k0);
      setK(k0, true);
      return showImage(S.pinned !== null ? S.pinned : (S.hovered !== null ? S.hovered : 0));
    }).then(() => {
      if (token === S.token) document.body.setAttribute("data-aisviz-ready", S.entry);
    }).catch(err => problem(err.message));
  }

  function nearestIndex(kv, k) {
    let best = 0;
    kv.forEach((v, i) => { if (Math.abs(v - k) < Math.abs(kv[best] - k)) best = i; });
    return best;
  }

  function drawCurve(d) {
    const el = $(".aisviz-curve");
    Plotly.react(el, d.figures.curve.data, d.figures.curve.layout, PLOT_CONFIG);
  }

  function drawBars(d) {
    Plotly.react($(".aisviz-ais-bars"), d.figures.bars.data, d.figures.bars.layout, PLOT_CONFIG);
  }

  /* Move to the evaluated k at index i: marker and read-out now, the per-map colours once the slider rests
     (0.15 s, as the dashboard: the read-out is what the eye follows). */
  function setK(i, now) {
    const d = S.data, r = d.readout;
    i = Math.max(0, Math.min(r.k_values.length - 1, i));
    S.kIndex = i;
    const k = r.k_values[i];
    const slider = $(".aisviz-k-input");
    slider.value = String(i);
    slider.setAttribute("aria-valuetext", `k = ${k} of ${r.n_maps} maps`);
    $(".aisviz-k-value").textContent = String(k);
    const [it, ie] = d.markers;
    Plotly.restyle($(".aisviz-curve"), {x: [[k], [k]], y: [[r.train_topk[i]], [r.test_topk[i]]]}, [it, ie]);
    $(".aisviz-readout").innerHTML = readoutHtml(r, i);
    clearTimeout(S.barsTimer);
    if (now) recolour(k); else S.barsTimer = setTimeout(() => recolour(k), 150);
  }

  function recolour(k) {
    const d = S.data, colours = new Array(d.n_maps);
    for (let j = 0; j < d.n_maps; j++) colours[j] = j < k ? d.colours.topk : d.colours.other;
    Plotly.restyle($(".aisviz-ais-bars"), {"marker.color": [colours]}, [0]);
    $(".aisviz-ais-bars").setAttribute("data-k", String(k));
  }

  /* aisviz.viz.text.mean_sd and undefined_note: R² undefined in every split (NaN, stored as null) is said so. */
  const undefinedR2 = x => x === null || x === undefined || Number.isNaN(x);
  const meanSd = (m, sd) => (undefinedR2(m) ? "undefined" : `${fmt(m)} ± ${fmt(sd)}`);
  function undefinedNote(k) {
    return `R² is undefined at k = ${k}: in every split the network similarities from the top ${k} ` +
      `map${k === 1 ? "" : "s"} are undefined or the same for every pair of images (one map read out ` +
      "through pooling gives every pair r = ±1), so they cannot correlate with people's.";
  }

  /* aisviz.viz.text.readout_html, word for word. */
  function readoutHtml(r, i) {
    const k = r.k_values[i];
    const step = r.k_step === 1 ? "" : ` (nearest evaluated k; step ${r.k_step})`;
    const num = x => (x === null ? "nan" : x);   // as Python's repr of the NaN that JSON stores as null
    const a = attrs({k: k, slider: k, test_topk: num(r.test_topk[i]), test_all: num(r.test_all),
                     test_random: num(r.test_random[i]), train_topk: num(r.train_topk[i])});
    const note = undefinedR2(r.test_topk[i]) ? ` <small class='aisviz-undefined'>${undefinedNote(k)}</small>` : "";
    return `<div class='aisviz-readout-inner'${a}><b>k = ${k}</b> of ${r.n_maps} maps${step} · held-out test R² ` +
      `(higher = closer to people): <b>${meanSd(r.test_topk[i], r.test_topk_sd[i])}</b> with the top-k maps by ` +
      `training AIS · ${meanSd(r.test_all, r.test_all_sd)} with all maps · ` +
      `${meanSd(r.test_random[i], r.test_random_sd[i])} with k random maps <small>(mean ± SD over ${r.n_splits} ` +
      `splits; train R² ${undefinedR2(r.train_topk[i]) ? "undefined" : fmt(r.train_topk[i])})</small>${note}</div>`;
  }

  // ---------------------------------------------------------------------------------------------
  // images: grid, MDS map, detail panel

  function buildGrid(d) {
    const grid = $(".aisviz-grid");
    grid.style.setProperty("--cell", d.cell + "px");
    grid.innerHTML = "";
    d.image_names.forEach((name, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "aisviz-thumb";
      b.setAttribute("role", "listitem");
      b.dataset.index = String(i);
      b.setAttribute("aria-pressed", String(S.pinned === i));
      b.title = name;
      const img = document.createElement("img");
      img.src = d.thumbs[i];
      img.alt = `${name} (image ${i + 1} of ${d.n_images})`;
      img.width = img.height = d.cell;
      b.appendChild(img);
      b.addEventListener("mouseenter", () => hover(i));
      b.addEventListener("focus", () => hover(i));
      b.addEventListener("click", () => pin(S.pinned === i ? null : i));
      grid.appendChild(b);
    });
  }

  function drawMds(d) {
    const el = $(".aisviz-mds"), fig = d.figures.mds;
    const layout = Object.assign({}, fig.layout, {images: fig.layout.images.map((im, i) =>
      Object.assign({}, im, {source: d.thumbs[i]}))});
    Plotly.react(el, fig.data, layout, PLOT_CONFIG).then(() => {
      if (el.dataset.bound) return;
      el.dataset.bound = "1";
      el.on("plotly_hover", ev => ev.points.length && hover(ev.points[0].pointIndex));
      el.on("plotly_click", ev => {
        if (!ev.points.length) return;
        const i = ev.points[0].pointIndex;
        pin(S.pinned === i ? null : i);
      });
    });
  }

  function setMode(mode) {
    S.mode = mode;
    $$(".aisviz-browser-mode button").forEach(b => b.setAttribute("aria-pressed", String(b.dataset.mode === mode)));
    $(".aisviz-grid").hidden = mode !== "grid";
    $(".aisviz-mds").hidden = mode !== "mds";
    if (mode === "mds") drawMds(S.data);
  }

  function hover(i) {
    S.hovered = i;
    if (S.pinned === null) showImage(i);
  }

  function pin(i) {
    S.pinned = i;
    $(".aisviz-unpin").disabled = i === null;
    $$(".aisviz-thumb").forEach(b => b.setAttribute("aria-pressed", String(Number(b.dataset.index) === i)));
    showImage(i !== null ? i : (S.hovered !== null ? S.hovered : S.image));
  }

  function chunkName(d, i) {
    return `${d.id}/c${String(Math.floor(i / d.chunk)).padStart(2, "0")}`;
  }

  /* Show image i in the detail panel (its chunk loaded once, on first need). */
  function showImage(i) {
    const d = S.data;
    if (i === null || i === undefined || !d) return Promise.resolve();
    i = Math.min(i, d.n_images - 1);
    S.image = i;
    return need(chunkName(d, i)).then(chunk => {
      if (S.data !== d || S.image !== i) return;
      renderDetail(d, i, chunk[String(i)]);
    }).catch(err => problem(err.message));
  }

  function renderDetail(d, i, v) {
    const name = d.image_names[i], mode = S.display;
    const sal = d.has_saliency;
    $(".aisviz-panel-image").src = v.image;
    $(".aisviz-panel-image").alt = `${name}: the image`;
    $(".aisviz-panel-ais").src = v[`ais_${mode}`];
    $(".aisviz-panel-ais").alt = `${name}: AIS heatmap over all maps, ${mode} display`;
    const ps = $(".aisviz-panel-saliency");
    if (sal) {
      ps.src = v[`saliency_${mode}`];
      ps.alt = `${name}: saliency map (${d.saliency_provider}), ${mode} display`;
    } else {
      ps.removeAttribute("src");
      ps.alt = "saliency unavailable";
    }
    $(".aisviz-bar-ais").src = $(".aisviz-bar-sal").src = S.index.bars[mode];
    const cap = (a, b) => `<div class='aisviz-cap'>${a}<br><small>${b}</small></div>`;
    const size = d.image_sizes[i];
    $(".aisviz-image-caption").innerHTML = cap("image", esc(`${size[0]}×${size[1]} px`));
    $(".aisviz-ais-caption").innerHTML = cap("AIS heatmap", "all maps (the paper's heatmap) · image-AIS weights");
    $(".aisviz-sal-caption").innerHTML = cap("saliency", sal ? esc(d.saliency_provider || "none") : "unavailable");
    $(".aisviz-scale-note").innerHTML = `<small>Colour bars: top = 1. ${esc(S.index.scale_notes[mode])}.</small>`;
    const state = S.pinned === i ? "pinned" : "hover";
    const a = attrs({index: i, name: name, state: state, k: "all", n: d.n_images, display: mode});
    $(".aisviz-detail-title").innerHTML = `<div class='aisviz-detail-inner'${a}><b>${esc(name)}</b> (image ` +
      `${i + 1} of ${d.n_images}) · ${state === "pinned" ? "<b>pinned</b>" : "follows the mouse"}</div>`;
    $(".aisviz-metrics").innerHTML = v.metrics_html;
    $$(".aisviz-thumb").forEach(b => b.classList.toggle("aisviz-shown", Number(b.dataset.index) === i));
  }

  function setDisplay(mode) {
    S.display = mode;
    $$(".aisviz-display button").forEach(b => b.setAttribute("aria-pressed", String(b.dataset.display === mode)));
    showImage(S.image);
  }

  // ---------------------------------------------------------------------------------------------
  // downloads

  function save(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function slug(text) {
    return String(text).replace(/[^A-Za-z0-9_.-]+/g, "_").replace(/^_+|_+$/g, "") || "results";
  }

  function buildCsvButtons() {
    const box = $(".aisviz-csv-buttons");
    ["maps.csv", "images.csv", "splits.csv", "curves.csv", "summary.csv", "settings.json"].forEach(name => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `aisviz-download aisviz-dl-${name.replace(".", "-")}`;
      b.textContent = name;
      b.addEventListener("click", () => need(`${S.entry}/tables`).then(t => {
        const d = S.data;
        const type = name.endsWith(".csv") ? "text/csv" : "application/json";
        save(new Blob([t[name]], {type: type}), `aisviz_${slug(d.dataset_name)}_${slug(d.model)}_${slug(d.layer)}_${name}`);
      }).catch(err => problem(err.message)));
      box.appendChild(b);
    });
  }

  function chartPng(sel, name) {
    const el = $(sel);
    Plotly.toImage(el, {format: "png", width: el.clientWidth || 800, height: el.clientHeight || 440, scale: 2})
      .then(url => fetchBlob(url)).then(blob => save(blob, `${name}.png`)).catch(err => problem(err.message));
  }

  function fetchBlob(dataUrl) {
    const [head, body] = dataUrl.split(",");
    const bytes = atob(body), out = new Uint8Array(bytes.length);
    for (let j = 0; j < bytes.length; j++) out[j] = bytes.charCodeAt(j);
    return new Blob([out], {type: head.slice(5).split(";")[0]});
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const im = new Image();
      im.onload = () => resolve(im);
      im.onerror = () => reject(new Error("an image of the panel could not be drawn"));
      im.src = src;
    });
  }

  /* The labelled panel (aisviz.dashboard.export.panel_png's content): title, image | AIS heatmap | saliency
     with colour bars, and the scale note, drawn on a canvas from the shown images. */
  function panelPng() {
    const d = S.data, i = S.image, mode = S.display;
    return need(chunkName(d, i)).then(chunk => {
      const v = chunk[String(i)], size = S.index.panel_size;
      const srcs = [v.image, v[`ais_${mode}`], d.has_saliency ? v[`saliency_${mode}`] : null, S.index.bars[mode]];
      return Promise.all(srcs.map(s => s ? loadImage(s) : null)).then(([im, ais, sal, bar]) => {
        const pad = 12, col = size + 14 + 40, w = pad * 2 + 3 * col, h = size + 110;
        const c = document.createElement("canvas");
        c.width = w; c.height = h;
        const g = c.getContext("2d");
        g.fillStyle = "#fff"; g.fillRect(0, 0, w, h);
        g.fillStyle = "#000"; g.font = "bold 13px sans-serif";
        g.fillText(`${d.dataset_name}: ${d.image_names[i]} (${d.model} ${d.layer}; r_orig = ${fmt(d.r_orig[i])})`,
                   pad, 20);
        g.font = "12px sans-serif";
        const titles = ["image", "AIS heatmap (all maps)", d.has_saliency ? (d.saliency_provider || "saliency") :
                        "saliency unavailable"];
        [im, ais, sal].forEach((pic, j) => {
          const x = pad + j * col;
          g.fillText(titles[j], x, 44);
          if (pic) g.drawImage(pic, x, 52, pic.width * size / Math.max(pic.width, pic.height),
                               pic.height * size / Math.max(pic.width, pic.height));
          if (j > 0) {
            g.drawImage(bar, x + size + 4, 52, 14, size);
            g.fillText("1", x + size + 22, 62);
            g.fillText("0", x + size + 22, 52 + size);
          }
        });
        g.font = "11px sans-serif";
        g.fillText(S.index.scale_notes[mode], pad, size + 80, w - 2 * pad);
        const stem = d.image_names[i].replace(/\.[^.]*$/, "");
        return new Promise(resolve => c.toBlob(b => resolve([b, `${stem}_panel_${mode}.png`]), "image/png"));
      });
    }).then(([blob, name]) => save(blob, name)).catch(err => problem(err.message));
  }

  // ---------------------------------------------------------------------------------------------
  // start

  function start() {
    S.index = window.AISVIZ_DATA;
    if (!S.index || !window.Plotly) {
      problem("the site's data or plotly.js did not load: open index.html from the site's folder, with its " +
              "assets/ and data/ folders beside it.");
      return;
    }
    buildMenus();
    buildCsvButtons();
    const n = S.index.entries.length;
    $(".aisviz-footer").innerHTML = `${n} bundled setting${n === 1 ? "" : "s"} · static page written by aisviz ` +
      `${esc(S.index.aisviz_version)} on ${esc(S.index.written_at.replace("T", " "))} · works offline; nothing ` +
      "leaves this page.";
    const slider = $(".aisviz-k-input");
    slider.addEventListener("input", () => setK(Number(slider.value), false));
    document.addEventListener("keydown", ev => {   // arrows, Home and End move the slider unless a control has the focus
      const t = ev.target;
      if (!S.data || (t && t !== document.body && t.matches("input, select, textarea, button"))) return;
      const last = S.data.readout.k_values.length - 1;     // Home: k = 1, End: every map
      const to = {ArrowRight: S.kIndex + 1, ArrowUp: S.kIndex + 1, ArrowLeft: S.kIndex - 1,
                  ArrowDown: S.kIndex - 1, Home: 0, End: last}[ev.key];
      if (to === undefined) return;
      ev.preventDefault();
      setK(to, false);
    });
    $$(".aisviz-browser-mode button").forEach(b => b.addEventListener("click", () => setMode(b.dataset.mode)));
    $$(".aisviz-display button").forEach(b => b.addEventListener("click", () => setDisplay(b.dataset.display)));
    $(".aisviz-unpin").addEventListener("click", () => pin(null));
    $(".aisviz-curve-export").addEventListener("click", () => chartPng(".aisviz-curve", "alignment_curve"));
    $(".aisviz-bars-export").addEventListener("click", () => chartPng(".aisviz-ais-bars", "ais_per_map"));
    $(".aisviz-panel-export").addEventListener("click", panelPng);
    showSetting(S.index.entries[0].id);
  }

  // deferred scripts run before DOMContentLoaded: data/index.js, after this one, has run by then
  if (document.readyState === "complete") start();
  else document.addEventListener("DOMContentLoaded", start);
})();
