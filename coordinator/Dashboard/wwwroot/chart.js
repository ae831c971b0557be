// A small SVG line chart: linear or log y axis, a few ticks, one polyline per series (optionally with dots), and
// dashed horizontal threshold lines. Each polyline carries data-points and data-last-x so tests can watch a chart grow.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgElement(name, attributes, parent) {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function formatTick(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-2) return v.toExponential(0).replace("e+", "e");
  return Number(v.toPrecision(3)).toString();
}

// "Nice" linear ticks: 1, 2 or 5 times a power of ten.
function linearTicks(min, max, count) {
  const span = max - min || Math.abs(max) || 1;
  const raw = span / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

// A diverging loss spans many decades; a linear axis would flatten everything but the spike.
function wantsLog(series) {
  let min = Infinity, max = -Infinity;
  for (const s of series) for (const y of s.ys) if (y !== null && Number.isFinite(y)) { min = Math.min(min, y); max = Math.max(max, y); }
  return min > 0 && max / min > 1e4;
}

/**
 * series: [{ name, color, xs, ys, dots?, dashed? }]; options: { log? (true, false or "auto"), thresholds?: [{ y, label }],
 * legend?: element }
 * Values that are null, non-finite or (on a log axis) ≤ 0 are left out.
 */
function drawChart(svg, series, options = {}) {
  if (options.log === "auto") options = { ...options, log: wantsLog(series) };
  const width = Math.max(200, svg.clientWidth || 600), height = Math.max(120, svg.clientHeight || 220);
  const pad = { left: 48, right: 10, top: 8, bottom: 22 };
  const fy = options.log ? (v => Math.log10(v)) : (v => v);
  const usable = v => v !== null && Number.isFinite(v) && (!options.log || v > 0);

  let xMin = Infinity, xMax = -Infinity, yMin = Infinity, yMax = -Infinity;
  for (const s of series)
    for (let i = 0; i < s.xs.length; i++) {
      if (!usable(s.ys[i])) continue;
      xMin = Math.min(xMin, s.xs[i]); xMax = Math.max(xMax, s.xs[i]);
      yMin = Math.min(yMin, fy(s.ys[i])); yMax = Math.max(yMax, fy(s.ys[i]));
    }
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  if (!Number.isFinite(xMin)) {
    svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, svg).textContent = "waiting for data…";
    if (options.legend) options.legend.replaceChildren();
    return;
  }
  if (xMax === xMin) xMax = xMin + 1;
  if (yMax === yMin) { yMin -= options.log ? 1 : 0.5; yMax += options.log ? 1 : 0.5; }
  const yPad = (yMax - yMin) * 0.05;
  yMin -= yPad; yMax += yPad;
  const px = x => pad.left + (x - xMin) / (xMax - xMin) * (width - pad.left - pad.right);
  const py = y => height - pad.bottom - (y - yMin) / (yMax - yMin) * (height - pad.top - pad.bottom);

  const yTicks = options.log
    ? Array.from({ length: Math.floor(yMax) - Math.ceil(yMin) + 1 }, (_, i) => Math.ceil(yMin) + i)
        .filter((_, i, all) => all.length <= 6 || i % Math.ceil(all.length / 6) === 0)
    : linearTicks(yMin, yMax, 4);
  for (const t of yTicks) {
    svgElement("line", { class: "grid", x1: pad.left, x2: width - pad.right, y1: py(t), y2: py(t) }, svg);
    svgElement("text", { x: pad.left - 4, y: py(t) + 4, "text-anchor": "end" }, svg).textContent =
      options.log ? "1e" + t : formatTick(t);
  }
  for (const t of linearTicks(xMin, xMax, 4).filter(t => t >= xMin && t <= xMax))
    svgElement("text", { x: px(t), y: height - 6, "text-anchor": "middle" }, svg).textContent = formatTick(t);

  for (const th of options.thresholds || []) {
    const y = fy(th.y);
    if (y < yMin || y > yMax) continue;
    svgElement("line", { class: "threshold", x1: pad.left, x2: width - pad.right, y1: py(y), y2: py(y) }, svg);
    svgElement("text", { x: width - pad.right - 2, y: py(y) - 3, "text-anchor": "end" }, svg).textContent = th.label;
  }

  for (const s of series) {
    const points = [];
    let lastX = null;
    for (let i = 0; i < s.xs.length; i++) {
      if (!usable(s.ys[i])) continue;
      points.push(`${px(s.xs[i]).toFixed(1)},${py(fy(s.ys[i])).toFixed(1)}`);
      lastX = s.xs[i];
    }
    svgElement("polyline", {
      points: points.join(" "), fill: "none", stroke: s.color, "stroke-width": s.dots ? 1 : 1.5,
      "stroke-dasharray": s.dashed ? "5 3" : "none", "data-series": s.name, "data-points": points.length,
      "data-last-x": lastX ?? "",
    }, svg);
    // Dots only while they stay apart; hundreds of epochs read better as a line.
    if (s.dots && points.length <= 80)
      for (const p of points) {
        const [cx, cy] = p.split(",");
        svgElement("circle", { cx, cy, r: 3, fill: s.color }, svg);
      }
  }

  if (options.legend) {
    options.legend.replaceChildren(...series.map(s => {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = s.color;
      item.append(swatch, s.name);
      return item;
    }));
  }
}
