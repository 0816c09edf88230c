/* The decision makers' page. Plain JavaScript; plotly.js draws the chart and the map.
 * The what-if numbers are computed here from the shipped payload, with the same formulas as
 * analysis.page.whatif in Python (a browser test checks that the two agree to 1e-6). */
"use strict";

const POS = "#0072B2", NEG = "#D55E00", NUL = "#6b6b6b";
const SUBGROUP_ORDER = ["all", "age50", "income_band", "sociability_band", "urban"];

async function unpack(id) {
  const text = document.getElementById(id).textContent.replace(/\s+/g, "");
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return await new Response(stream).text();
}

/* ------------------------------------------------------------------ the computation */

function quantile(sorted, q) {
  // numpy's default ('linear') quantile, including its two-sided interpolation
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const t = h - lo;
  const a = sorted[lo], b = sorted[hi];
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

function summary(d, prob) {
  let sum = 0, pos = 0;
  for (let i = 0; i < d.length; i++) { sum += d[i]; if (d[i] > 0) pos++; }
  const s = Float64Array.from(d).sort();
  return {
    mean: sum / d.length,
    median: quantile(s, 0.5),
    low: quantile(s, (1 - prob) / 2),
    high: quantile(s, (1 + prob) / 2),
    p_positive: pos / d.length,
  };
}

function toRaw(f, value) {
  return f.log_percent ? Math.log(1 + value / 100) : value / f.scale;
}

class ModelData {
  constructor(payload, m) {
    this.m = m;
    this.S = m.draws;
    this.p = m.terms.length;
    this.k = m.effect_terms.length;
    this.nL = m.las.length;
    this.B = Float64Array.from(m.B, (v) => v * payload.coef_scale);
    this.R = Float64Array.from(m.R, (v) => v * payload.effect_scale);
    const c = m.cells;
    this.C = c.la.length;
    this.X = Float64Array.from(c.X);
    this.Z = Float64Array.from(c.Z);
    this.eta = null; // cells x draws, computed once (it does not depend on the shifts)
  }

  baseEta() {
    if (this.eta) return this.eta;
    const { S, p, k, C, B, R, X, Z } = this;
    const la = this.m.cells.la;
    const eta = new Float64Array(C * S);
    for (let c = 0; c < C; c++) {
      const lc = la[c];
      for (let s = 0; s < S; s++) {
        let xb = 0;
        for (let j = 0; j < p; j++) xb += X[c * p + j] * B[s * p + j];
        let zr = 0;
        for (let q = 0; q < k; q++) zr += Z[c * k + q] * R[(s * this.nL + lc) * k + q];
        eta[c * S + s] = xb + zr;
      }
    }
    this.eta = eta;
    return eta;
  }
}

/* What analysis.page.whatif computes: rows by subgroup level, then the gaps. */
function compute(payload, cache, model, shifts, las) {
  const m = payload.models[model];
  if (!cache[model]) cache[model] = new ModelData(payload, m);
  const md = cache[model];
  const { S, p, k, C, B, R } = md;
  const eta = md.baseEta();
  const cells = m.cells;
  let sel = null;
  if (las) {
    const wanted = new Set(las);
    sel = new Set();
    m.las.forEach((code, i) => { if (wanted.has(code)) sel.add(i); });
  }
  const d = new Float64Array(C * S);
  const dzs = {};
  for (const [f, value] of Object.entries(shifts)) {
    if (!(f in m.shifts) || !(f in payload.factors)) continue;
    const fi = payload.factors[f];
    const dz = toRaw(fi, value) * fi.per_raw;
    dzs[f] = dz;
    const sh = m.shifts[f];
    const nx = sh.xcols.length, nz = sh.zcols.length;
    for (let c = 0; c < C; c++) {
      if (sel && !sel.has(cells.la[c])) continue;
      const lc = cells.la[c];
      for (let s = 0; s < S; s++) {
        if (nx) {
          let acc = 0;
          for (let j = 0; j < nx; j++) acc += sh.X[c * nx + j] * B[s * p + sh.xcols[j]];
          d[c * S + s] += dz * acc;
        }
        if (nz) {
          let acc = 0;
          for (let q = 0; q < nz; q++) acc += sh.Z[c * nz + q] * R[(s * md.nL + lc) * k + sh.zcols[q]];
          d[c * S + s] += dz * acc;
        }
      }
    }
  }
  // the cell's spread of the linear predictor, now and shifted (probit approximation)
  const v1 = Float64Array.from(cells.v);
  for (const [f, c] of Object.entries(cells.cov)) {
    if (!(f in dzs)) continue;
    for (let i = 0; i < C; i++) v1[i] = v1[i] + 2 * dzs[f] * c[i];
  }
  for (const [a, b2, c] of cells.var) {
    if (!(a in dzs) || !(b2 in dzs)) continue;
    const mult = a === b2 ? 1 : 2;
    for (let i = 0; i < C; i++) v1[i] = v1[i] + mult * dzs[a] * dzs[b2] * c[i];
  }
  const kappa0 = new Float64Array(C), kappa1 = new Float64Array(C);
  for (let i = 0; i < C; i++) {
    kappa0[i] = 1 / Math.sqrt(1 + (Math.PI * cells.v[i]) / 8);
    kappa1[i] = 1 / Math.sqrt(1 + (Math.PI * Math.max(v1[i], 0)) / 8);
  }
  const rows = [];
  const bySub = {};
  m.groups.forEach((grp, g) => {
    const change = new Float64Array(S), base = new Float64Array(S);
    let ntot = 0, any = false;
    for (let c = 0; c < C; c++) {
      if (cells.group[c] !== g || (sel && !sel.has(cells.la[c]))) continue;
      any = true;
      const w = cells.n[c], k0 = kappa0[c], k1 = kappa1[c];
      ntot += w;
      for (let s = 0; s < S; s++) {
        const e = eta[c * S + s];
        const p0 = 1 / (1 + Math.exp(-k0 * e));
        const p1 = 1 / (1 + Math.exp(-k1 * (e + d[c * S + s])));
        change[s] += w * (p1 - p0);
        base[s] += w * p0;
      }
    }
    if (!any) return;
    let b = 0;
    for (let s = 0; s < S; s++) {
      change[s] = (100 * change[s]) / ntot;
      b += (100 * base[s]) / ntot;
    }
    const row = { subgroup: grp.subgroup, level: grp.level, n: ntot, baseline_pct: b / S, ...summary(change, payload.prob) };
    rows.push(row);
    (bySub[grp.subgroup] = bySub[grp.subgroup] || []).push([grp.level, change]);
  });
  for (const [sub, levels] of Object.entries(bySub)) {
    if (levels.length >= 2) {
      const [first, a] = levels[0], [last, b] = levels[levels.length - 1];
      const diff = new Float64Array(S);
      for (let s = 0; s < S; s++) diff[s] = b[s] - a[s];
      rows.push({ subgroup: sub, level: `gap: ${last} minus ${first}`, n: null, baseline_pct: null, ...summary(diff, payload.prob) });
    }
  }
  const order = (r) => SUBGROUP_ORDER.indexOf(r.subgroup);
  return rows.map((r, i) => [r, i]).sort((x, y) => order(x[0]) - order(y[0]) || x[1] - y[1]).map((x) => x[0]);
}

/* ------------------------------------------------------------------ the page */

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [key, v] of Object.entries(attrs)) {
    if (key === "text") e.textContent = v;
    else if (key === "cls") e.className = v;
    else e.setAttribute(key, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, v] of Object.entries(attrs)) e.setAttribute(key, v);
  return e;
}

function fmt(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "";
  const v = Math.abs(x) < 0.5 * Math.pow(10, -digits) ? 0 : x;
  return v.toFixed(digits);
}

function signClass(low, high, ref = 0) {
  return low > ref ? "pos" : high < ref ? "neg" : "null";
}

function wrapText(text, width) {
  const words = text.split(/\s+/), lines = [];
  let line = "";
  for (const w of words) {
    if ((line + " " + w).trim().length > width && line) { lines.push(line); line = w; }
    else line = (line + " " + w).trim();
  }
  if (line) lines.push(line);
  return lines;
}

class Page {
  constructor(payload) {
    this.payload = payload;
    this.cache = {};
    this.shifts = {};
    this.mode = "all";
    this.chosen = [];
    this.lastComputeMs = null;
    this.lastResults = {};
    this.names = Object.fromEntries(payload.las.map((l) => [l.code, l.name]));
    for (const f of Object.keys(payload.factors)) this.shifts[f] = 0;
    const first = Object.keys(payload.models)[0];
    this.model = first;
  }

  init() {
    const P = this.payload;
    if (P.synthetic) {
      document.getElementById("synthetic-banner").hidden = false;
      document.getElementById("synthetic-footer").hidden = false;
      document.querySelectorAll(".synthetic-tag").forEach((e) => { e.hidden = false; });
    }
    document.getElementById("page-caveat").textContent = P.caveat;
    document.getElementById("honesty-caveat").textContent = P.caveat;
    document.getElementById("honesty-interval").textContent =
      `Intervals: ${P.interval}; P(change > 0) is the posterior probability that the change is positive.`;
    document.getElementById("honesty-disclosure").textContent = P.disclosure;
    const skipped = Object.entries(P.skipped);
    document.getElementById("honesty-skipped").textContent = skipped.length
      ? "Models not shown: " + skipped.map(([n, why]) => `${n} (${why})`).join("; ")
      : "Every model of the run is shown.";
    document.getElementById("run-name").textContent = `Run folder: ${P.run}`;
    this.buildLevels();
    this.buildControls();
    this.buildMap();
    this.update();
  }

  /* ---------------- levels model */

  buildLevels() {
    const P = this.payload, svg = document.getElementById("levels-svg");
    const arrows = P.arrows;
    const LINKS = ["belonging", "lonely", "local_friends"];
    const OUT = ["life_satisfied", "mental_wellbeing_high", "community_abs"];
    const areaOrder = ["area_volunteering", "area_unemployment", "area_sociability", "area_turnout", "area_income", "area_walkability", "area_turnover"];
    const areas = areaOrder.filter((a) => arrows.some((x) => x.source === a && LINKS.includes(x.target)));
    const directAreas = areaOrder.filter((a) => !areas.includes(a) && arrows.some((x) => x.source === a && OUT.includes(x.target)));
    const allAreas = areas.concat(directAreas);
    const links = LINKS.filter((l) => arrows.some((x) => x.target === l || x.source === l));
    const outs = OUT.filter((o) => arrows.some((x) => x.target === o));
    const label = (col) => {
      const a = arrows.find((x) => x.source === col);
      if (a) return a.source_label;
      const b = arrows.find((x) => x.target === col);
      return b ? b.target_label : col;
    };
    const W = 1000, rowH = 74;
    const H = Math.max(allAreas.length, links.length + 1, outs.length) * rowH + 70;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const ys = (n) => Array.from({ length: n }, (_, i) => 60 + (i + 0.5) * ((H - 70) / n));
    const pos = {};
    const boxW = 190, boxH = 54;
    const heads = [["Area factors", 110], ["Links", 500], ["Wellbeing", 890]];
    for (const [t, x] of heads) svg.append(Object.assign(svgEl("text", { x, y: 30, "text-anchor": "middle", "font-weight": "700", "font-size": "15" }), { textContent: t }));
    const columns = [[allAreas, 110], [links.concat(["__unmeasured"]), 500], [outs, 890]];
    const arrowLayer = svgEl("g"), boxLayer = svgEl("g");
    svg.append(arrowLayer, boxLayer);
    this.showDirect = false;
    for (const [items, x] of columns) {
      const yy = ys(items.length);
      items.forEach((name, i) => {
        pos[name] = [x, yy[i]];
        const unmeasured = name === "__unmeasured";
        const text = unmeasured ? "Access to local services (not measured in this cohort)" : label(name);
        const g = svgEl("g", { class: "box" + (unmeasured ? " unmeasured" : ""), tabindex: "0", role: "button", "aria-label": `Box: ${text}` });
        g.append(svgEl("rect", { x: x - boxW / 2, y: yy[i] - boxH / 2, width: boxW, height: boxH, rx: 8 }));
        const lines = wrapText(text, 26);
        lines.forEach((ln, j) => {
          const t = svgEl("text", { x, y: yy[i] + (j - (lines.length - 1) / 2) * 15 + 4, "text-anchor": "middle" });
          t.textContent = ln;
          g.append(t);
        });
        g.addEventListener("click", () => this.showBox(name, text, g));
        g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); this.showBox(name, text, g); } });
        boxLayer.append(g);
      });
    }
    const defs = svgEl("defs");
    for (const [id, col] of [["pos", POS], ["neg", NEG], ["null", NUL]]) {
      const mk = svgEl("marker", { id: `head-${id}`, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "12", markerHeight: "12", markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
      mk.append(svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: col }));
      defs.append(mk);
    }
    svg.prepend(defs);
    this.arrowEls = [];
    const placed = [];
    const labelAt = (x0, y0, x1, y1, text) => {
      // first point along the line where the label overlaps no label placed before
      const w = 6.2 * text.length, h = 14;
      for (const t of [0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.15, 0.85]) {
        const x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
        if (!placed.some((b) => Math.abs(b[0] - x) < (b[2] + w) / 2 && Math.abs(b[1] - y) < (b[3] + h) / 2)) {
          placed.push([x, y, w, h]);
          return [x, y];
        }
      }
      return [x0 + 0.5 * (x1 - x0), y0 + 0.5 * (y1 - y0)];
    };
    const bySource = {};
    arrows.forEach((a, i) => {
      if (!(a.source in pos) || !(a.target in pos)) return;
      const direct = !LINKS.includes(a.target) && !LINKS.includes(a.source);
      (bySource[a.source] = bySource[a.source] || []).push([a, i, direct]);
    });
    for (const group of Object.values(bySource)) {
      group.sort((u, v) => pos[u[0].target][1] - pos[v[0].target][1]);
      group.forEach(([a, i, direct]) => {
        const [x0, y0] = pos[a.source], [x1, y1] = pos[a.target];
        const cls = a.converged ? signClass(a.or_low, a.or_high, 1) : "null";
        const col = { pos: POS, neg: NEG, null: NUL }[cls];
        const sx = x0 + boxW / 2 + 2, ex = x1 - boxW / 2 - 4;
        const dpath = direct
          ? `M ${sx} ${y0} C ${500} ${y0 - 30}, ${500} ${y1 + 30}, ${ex} ${y1}`
          : `M ${sx} ${y0} L ${ex} ${y1}`;
        const width = a.converged ? 1.5 + 6 * Math.min(Math.abs(Math.log(a.or_median)), 0.6) : 1.5;
        const text = `${fmt(a.or_median)} (${fmt(a.or_low)}–${fmt(a.or_high)})` + (a.converged ? "" : " NOT CONVERGED");
        const g = svgEl("g", {
          class: "arrow" + (direct ? " direct" : ""), tabindex: "0", role: "button",
          "aria-label": `Arrow: ${a.source_label} to ${a.target_label}, odds ratio ${text}`,
          "data-source": a.source, "data-target": a.target,
        });
        g.append(svgEl("path", { class: "hit", d: dpath }));
        g.append(svgEl("path", {
          class: "line", d: dpath, stroke: col, "stroke-width": width, "marker-end": `url(#head-${cls})`,
          "stroke-dasharray": a.converged ? (direct ? "6 4" : "") : "2 4", opacity: "0.85",
        }));
        const [lx, ly] = direct ? [sx + 0.5 * (ex - sx), y0 + 0.5 * (y1 - y0)] : labelAt(sx, y0, ex, y1, text);
        const lab = svgEl("text", { x: lx, y: ly + 4, "text-anchor": "middle", fill: a.converged ? col : "#444" });
        lab.textContent = text;
        g.append(lab);
        g.addEventListener("click", () => this.showArrow(a, g));
        g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); this.showArrow(a, g); } });
        if (direct) g.style.display = "none";
        arrowLayer.append(g);
        this.arrowEls.push([g, direct]);
      });
    }
    const nDirect = this.arrowEls.filter((x) => x[1]).length;
    if (nDirect) {
      const box = el("label", {}, el("input", { type: "checkbox", id: "show-direct" }), ` Show the ${nDirect} direct arrows from area factors to wellbeing`);
      svg.parentElement.parentElement.insertBefore(box, svg.parentElement);
      box.querySelector("input").addEventListener("change", (ev) => {
        for (const [g, direct] of this.arrowEls) if (direct) g.style.display = ev.target.checked ? "" : "none";
      });
    }
  }

  select(g) {
    document.querySelectorAll("#levels-svg .selected").forEach((e) => e.classList.remove("selected"));
    if (g) g.classList.add("selected");
  }

  showArrow(a, g) {
    this.select(g);
    const box = document.getElementById("levels-detail");
    box.replaceChildren();
    box.append(el("h3", { text: `${a.source_label} → ${a.target_label}` }));
    box.append(el("p", { cls: "sentence", text: a.sentence }));
    box.append(el("p", { cls: "interval", text: `Odds ratio ${fmt(a.or_median)}, 95% equal-tailed interval ${fmt(a.or_low)} to ${fmt(a.or_high)} (model: ${a.model}).` }));
    box.append(el("p", { cls: a.converged ? "gate ok" : "gate fail", text: a.converged ? `Convergence gate: passed. ${a.verdict}` : `Convergence gate: FAILED. ${a.verdict}` }));
    box.append(el("p", { cls: "caveat", text: "An association in cross-sectional data, not a cause or a forecast." + (this.payload.synthetic ? " SYNTHETIC DATA." : "") }));
    box.focus();
  }

  showBox(name, text, g) {
    this.select(g);
    const box = document.getElementById("levels-detail");
    box.replaceChildren();
    box.append(el("h3", { text }));
    if (name === "__unmeasured") {
      box.append(el("p", { text: "The study's fourth link. This cohort has no measure of it, so no model estimates its arrows." }));
      box.focus();
      return;
    }
    const inc = this.payload.arrows.filter((a) => a.target === name), outg = this.payload.arrows.filter((a) => a.source === name);
    const list = (arr, head) => {
      if (!arr.length) return;
      box.append(el("p", { text: head }));
      const ul = el("ul");
      for (const a of arr) {
        ul.append(el("li", { cls: a.converged ? "" : "fail", text: `${a.source_label} → ${a.target_label}: OR ${fmt(a.or_median)} (95% interval ${fmt(a.or_low)}–${fmt(a.or_high)})` + (a.converged ? "" : " — fit FAILED the convergence gate, not interpreted") }));
      }
      box.append(ul);
    };
    list(inc, `Arrows into this box (from the ${inc.length ? inc[0].model : ""} model):`);
    list(outg, "Arrows out of this box:");
    box.append(el("p", { cls: "caveat", text: "Associations in cross-sectional data, not causes." + (this.payload.synthetic ? " SYNTHETIC DATA." : "") }));
    box.focus();
  }

  /* ---------------- controls */

  buildControls() {
    const P = this.payload;
    const fs = document.getElementById("sliders");
    for (const [f, fi] of Object.entries(P.factors)) {
      const id = `slider-${f}`;
      const inModels = Object.values(P.models).filter((m) => f in m.shifts).map((m) => m.name);
      const wrap = el("div", { cls: "slider" });
      const lab = el("label", { for: id, text: fi.label });
      const input = el("input", { type: "range", id, min: fi.min, max: fi.max, step: fi.step, value: 0, "data-factor": f, "aria-describedby": `${id}-unit` });
      const out = el("output", { for: id, id: `${id}-value`, text: "0" });
      const unit = el("div", { cls: "unit", id: `${id}-unit`, text: `${fi.unit}; in ${inModels.length} model(s): ${inModels.join(", ")}` });
      input.addEventListener("input", () => {
        this.shifts[f] = Number(input.value);
        out.textContent = (this.shifts[f] > 0 ? "+" : "") + input.value;
        this.scheduleUpdate();
      });
      wrap.append(lab, input, out, unit);
      fs.append(wrap);
    }
    const sel = document.getElementById("model-select");
    for (const m of Object.values(P.models)) {
      sel.append(el("option", { value: m.name, text: `${m.outcome_label} — ${m.title}` + (m.converged ? "" : " (NOT CONVERGED)") }));
    }
    sel.addEventListener("change", () => { this.model = sel.value; this.update(); this.drawMap(); });
    document.getElementById("reset").addEventListener("click", () => {
      for (const input of document.querySelectorAll("#sliders input")) {
        input.value = 0;
        this.shifts[input.dataset.factor] = 0;
        document.getElementById(`${input.id}-value`).textContent = "0";
      }
      this.update();
    });
    const dl = document.getElementById("la-names");
    for (const l of P.las) dl.append(el("option", { value: `${l.name} (${l.code})` }));
    document.querySelectorAll("input[name=la-mode]").forEach((r) => r.addEventListener("change", () => {
      this.mode = r.value;
      if (this.mode === "one" && this.chosen.length > 1) this.chosen = this.chosen.slice(0, 1);
      this.renderChosen();
      this.update();
    }));
    const input = document.getElementById("la-input");
    const choose = () => {
      const code = this.findLa(input.value);
      const status = document.getElementById("la-status");
      if (!code) { status.textContent = `No local authority matches “${input.value}” (LAs with fewer than ${P.k} respondents are not in this page).`; return; }
      status.textContent = "";
      this.chooseLa(code, true);
      input.value = "";
    };
    document.getElementById("la-add").addEventListener("click", choose);
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); choose(); } });
    document.getElementById("la-clear").addEventListener("click", () => { this.chosen = []; this.renderChosen(); this.update(); });
  }

  findLa(text) {
    const t = text.trim().toLowerCase();
    if (!t) return null;
    const m = t.match(/\(([a-z]\d{8})\)$/);
    const las = this.payload.las;
    if (m) { const hit = las.find((l) => l.code.toLowerCase() === m[1]); if (hit) return hit.code; }
    let hit = las.find((l) => l.code.toLowerCase() === t || l.name.toLowerCase() === t);
    if (hit) return hit.code;
    const hits = las.filter((l) => l.name.toLowerCase().includes(t));
    return hits.length === 1 ? hits[0].code : null;
  }

  chooseLa(code, fromSearch) {
    if (this.mode === "all") {
      this.mode = "one";
      document.querySelector("input[name=la-mode][value=one]").checked = true;
    }
    if (this.mode === "one") this.chosen = [code];
    else if (this.chosen.includes(code)) { if (!fromSearch) this.chosen = this.chosen.filter((c) => c !== code); }
    else this.chosen.push(code);
    this.renderChosen();
    this.update();
  }

  renderChosen() {
    const ul = document.getElementById("la-chosen");
    ul.replaceChildren();
    if (this.mode === "all") return;
    for (const code of this.chosen) {
      const b = el("button", { type: "button", "aria-label": `Remove ${this.names[code]}`, text: "×" });
      b.addEventListener("click", () => { this.chosen = this.chosen.filter((c) => c !== code); this.renderChosen(); this.update(); });
      ul.append(el("li", { "data-code": code }, `${this.names[code]} (${code})`, b));
    }
  }

  selectedLas() {
    return this.mode === "all" ? null : this.chosen.slice();
  }

  /* ---------------- results */

  scheduleUpdate() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.update(); });
  }

  update() {
    const P = this.payload;
    const las = this.selectedLas();
    const moved = Object.entries(this.shifts).filter(([, v]) => v !== 0);
    const where = las === null ? "all local authorities shown" : las.length ? las.map((c) => this.names[c]).join(", ") : "no local authority chosen yet";
    const what = moved.length ? moved.map(([f, v]) => `${P.factors[f].label} ${v > 0 ? "+" : ""}${v} ${P.factors[f].unit}`).join("; ") : "no change yet (move a slider)";
    document.getElementById("scenario-text").textContent = `Scenario: ${what}. Where: ${where}.` + (P.synthetic ? " SYNTHETIC DATA." : "");
    const results = document.getElementById("results");
    results.replaceChildren();
    if (las !== null && !las.length) {
      this.lastResults = {};
      this.drawChart(null, P.models[this.model]);
      return;
    }
    const t0 = performance.now();
    const out = {};
    const shifts = Object.fromEntries(moved);
    for (const m of Object.values(P.models)) {
      const relevant = moved.filter(([f]) => f in m.shifts);
      if (!relevant.length && m.name !== this.model) continue;
      out[m.name] = compute(P, this.cache, m.name, shifts, las);
    }
    this.lastComputeMs = performance.now() - t0;
    this.lastResults = out;
    document.getElementById("compute-time").textContent = `Recomputed in ${this.lastComputeMs.toFixed(0)} ms from ${Object.values(P.models)[0].draws} posterior draws per model.`;
    for (const m of Object.values(P.models)) {
      if (!(m.name in out)) continue;
      const relevant = moved.filter(([f]) => f in m.shifts);
      if (!relevant.length && moved.length) {
        results.append(el("p", { cls: "help", text: `${m.outcome_label} (${m.name}): the moved factor(s) are not in this model.` }));
        continue;
      }
      if (!out[m.name].length) {
        results.append(el("p", { cls: "help", "data-model": m.name, text: `${m.outcome_label} (${m.name}): no chosen LA has a group of at least ${P.k} people in this model (disclosure rule), so nothing is shown.` }));
        continue;
      }
      results.append(this.table(m, out[m.name]));
    }
    this.drawChart(out[this.model], P.models[this.model]);
  }

  table(m, rows) {
    const P = this.payload;
    const wrap = el("div", { cls: "result", "data-model": m.name });
    if (!m.converged) {
      wrap.append(el("p", { cls: "failed", text: `${m.outcome_label} (${m.name}): NOT CONVERGED — this fit failed the convergence gate (${m.verdict}); its what-if is not shown.` }));
      return wrap;
    }
    const t = el("table", { cls: "res", "data-model": m.name });
    t.append(el("caption", { text: `${m.outcome_label} (${m.name}): predicted change, percentage points, 95% interval. An association in cross-sectional data, not a forecast.` + (P.synthetic ? " SYNTHETIC DATA." : "") }));
    const head = el("tr");
    for (const h of ["Subgroup", "Group", "People", "Now, %", "Change, pp", "95% interval, pp", "P(change > 0)"]) head.append(el("th", { scope: "col", text: h }));
    t.append(el("thead", {}, head));
    const body = el("tbody");
    for (const r of rows) {
      const gap = r.level.startsWith("gap:");
      const tr = el("tr", { cls: gap ? "gap" : "", "data-subgroup": r.subgroup, "data-level": r.level });
      const cls = signClass(r.low, r.high);
      const cell = (text, key, value, c = "") => {
        const td = el("td", { text, cls: c });
        if (key) { td.dataset.key = key; td.dataset.value = String(value); }
        return td;
      };
      tr.append(
        cell(P.subgroup_labels[r.subgroup] || r.subgroup),
        cell(gap ? `who gains more: ${r.level.slice(5)}` : r.level),
        cell(r.n === null ? "" : r.n.toLocaleString("en-GB"), r.n === null ? null : "n", r.n),
        cell(r.baseline_pct === null ? "" : fmt(r.baseline_pct, 1), r.baseline_pct === null ? null : "baseline_pct", r.baseline_pct),
        cell((r.mean > 0 ? "+" : "") + fmt(r.mean), "change_pp_mean", r.mean, cls),
        cell(`${fmt(r.low)} to ${fmt(r.high)}`, "interval", `${r.low} ${r.high}`, cls),
        cell(fmt(r.p_positive), "p_positive", r.p_positive),
      );
      body.append(tr);
    }
    t.append(body);
    t.append(el("tfoot", {}, el("tr", {}, el("td", { colspan: "7", cls: "caveat-cell", text: P.caveat }))));
    wrap.append(t);
    return wrap;
  }

  drawChart(rows, m) {
    const div = document.getElementById("change-chart");
    if (!rows || !rows.length || !m.converged) { Plotly.purge(div); div.replaceChildren(); return; }
    const label = (r) => `${this.payload.subgroup_short[r.subgroup] || r.subgroup}: ${r.level}`;
    const colours = rows.map((r) => ({ pos: POS, neg: NEG, null: NUL }[signClass(r.low, r.high)]));
    const trace = {
      type: "scatter", mode: "markers", x: rows.map((r) => r.mean), y: rows.map(label),
      marker: { color: colours, size: 9 },
      error_x: { type: "data", symmetric: false, array: rows.map((r) => r.high - r.mean), arrayminus: rows.map((r) => r.mean - r.low), color: "#444" },
      hovertemplate: "%{y}<br>change %{x:.2f} pp<extra></extra>",
    };
    const title = `${this.payload.synthetic ? "SYNTHETIC DATA — " : ""}${m.outcome_label}: change in percentage points (95% interval)`;
    Plotly.react(div, [trace], {
      title: { text: title, font: { size: 14 } }, margin: { l: 330, r: 20, t: 50, b: 70 },
      xaxis: { title: { text: "change, percentage points — an association, not a forecast" }, zeroline: true, zerolinecolor: "#444" },
      yaxis: { autorange: "reversed" }, height: 120 + 26 * rows.length,
    }, { displaylogo: false, responsive: true });
  }

  /* ---------------- map */

  buildMap() {
    const P = this.payload;
    const div = document.getElementById("map");
    if (!P.geojson) {
      div.replaceWith(el("p", { cls: "help", text: "No LA boundaries were available when this page was written, so there is no map." }));
      return;
    }
    this.drawMap();
    div.on("plotly_click", (ev) => {
      const pt = ev.points && ev.points[0];
      if (pt && pt.location) this.chooseLa(pt.location, false);
    });
  }

  drawMap() {
    const P = this.payload, div = document.getElementById("map");
    if (!P.geojson || !div) return;
    const m = P.models[this.model], e = m.la_effects;
    const z = e.or_median.map((v) => Math.log(v));
    const lim = Math.max(0.05, ...z.map(Math.abs));
    const text = e.codes.map((c, i) => `${e.names[i]} (${c})<br>LA effect: OR ${fmt(e.or_median[i])} (95% interval ${fmt(e.or_low[i])}–${fmt(e.or_high[i])})<br>${e.n[i]} respondents in this model` + (P.synthetic ? "<br>SYNTHETIC DATA" : ""));
    const ticks = [0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2].filter((v) => Math.abs(Math.log(v)) <= lim * 1.01);
    Plotly.react(div, [{
      type: "choropleth", geojson: P.geojson, featureidkey: "properties.lad19cd", locations: e.codes, z,
      zmin: -lim, zmax: lim, zmid: 0,
      colorscale: [[0, NEG], [0.5, "#f4f4f4"], [1, POS]],
      text, hovertemplate: "%{text}<extra></extra>", marker: { line: { color: "#777", width: 0.3 } },
      colorbar: { title: { text: "LA effect (OR)" }, tickvals: ticks.map(Math.log), ticktext: ticks.map(String) },
    }], {
      title: { text: `${P.synthetic ? "SYNTHETIC DATA — " : ""}LA effects: ${m.outcome_label} (${m.name})`, font: { size: 14 } },
      geo: { fitbounds: "locations", visible: false, projection: { type: "mercator" } },
      margin: { l: 0, r: 0, t: 40, b: 0 }, height: 640,
    }, { displaylogo: false, responsive: true, scrollZoom: false });
    document.getElementById("map-note").textContent = `${e.codes.length} LAs shown; LAs with fewer than ${P.k} respondents in this model are left out (blank). Not a ranking: an LA's effect is what the model does not explain by its factors, with its uncertainty.`;
  }
}

async function main() {
  const loading = document.getElementById("loading");
  if (typeof DecompressionStream === "undefined") {
    loading.textContent = "This browser is too old to open this page (it needs DecompressionStream: Chrome 80+, Firefox 113+, Safari 16.4+).";
    return;
  }
  const [plotlyJs, payloadText] = await Promise.all([unpack("sameplace-plotly"), unpack("sameplace-payload")]);
  const s = document.createElement("script");
  s.textContent = plotlyJs;
  document.head.append(s);
  // plotly's geo subplot fetches a world base map from its CDN unless one is already known:
  // give it an empty one (the page draws only its own LA boundaries, and fetches nothing)
  const empty = { type: "Topology", objects: {}, arcs: [] };
  window.PlotlyGeoAssets = window.PlotlyGeoAssets || { topojson: {} };
  for (const name of ["world_110m", "world_50m"]) window.PlotlyGeoAssets.topojson[name] = empty;
  const payload = JSON.parse(payloadText);
  const page = new Page(payload);
  window.sameplace = { payload, page, compute: (model, shifts, las) => compute(payload, page.cache, model, shifts, las || null) };
  document.getElementById("app").hidden = false;
  loading.remove();
  page.init();
  window.sameplace.ready = true;
}

main().catch((err) => {
  const loading = document.getElementById("loading");
  if (loading) loading.textContent = `The page could not start: ${err}`;
  throw err;
});
