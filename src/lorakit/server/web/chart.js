// A line chart as SVG: each series a line (or dots), steps along x, with its axes' range and a legend.
const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 240, LEFT = 56, RIGHT = 12, TOP = 12, BOTTOM = 28;

function svg(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function ticks(lo, hi, n) {
  if (hi === lo) return [lo];
  return Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
}

function label(value) {
  const abs = Math.abs(value);
  return abs !== 0 && (abs < 0.01 || abs >= 1e4) ? value.toExponential(1) : value.toFixed(abs < 1 ? 3 : 2);
}

// series: [{name, points: [[step, value], ...], dots: bool}]; the chart's data-points says how many are drawn.
export function lineChart(title, series) {
  const drawn = series.filter((s) => s.points.length);
  const all = drawn.flatMap((s) => s.points);
  const box = document.createElement("figure");
  box.className = "chart";
  box.dataset.title = title;
  box.dataset.points = String(all.length);
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  box.append(caption);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  box.append(chart);
  if (!all.length) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no points yet"));
    return box;
  }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(Math.max(...xs), Math.min(...xs) + 1)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const x = (v) => LEFT + ((v - x0) / (x1 - x0)) * (W - LEFT - RIGHT);
  const y = (v) => TOP + (1 - (v - y0) / (y1 - y0)) * (H - TOP - BOTTOM);
  for (const t of ticks(y0, y1, 4)) {
    chart.append(svg("line", { x1: LEFT, x2: W - RIGHT, y1: y(t), y2: y(t), class: "grid" }));
    chart.append(svg("text", { x: LEFT - 6, y: y(t) + 4, "text-anchor": "end", class: "tick" }, label(t)));
  }
  for (const t of ticks(x0, x1, Math.min(5, x1 - x0))) {
    chart.append(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle", class: "tick" }, String(Math.round(t))));
  }
  drawn.forEach((s, i) => {
    const cls = `series s${i}`;
    const group = svg("g", { class: cls, "data-series": s.name, "data-points": s.points.length });
    if (!s.dots && s.points.length > 1) {
      group.append(svg("polyline", { points: s.points.map((p) => `${x(p[0])},${y(p[1])}`).join(" "), fill: "none" }));
    }
    if (s.dots || s.points.length === 1) {
      for (const p of s.points) group.append(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 3 }));
    }
    chart.append(group);
  });
  const legend = document.createElement("div");
  legend.className = "legend";
  drawn.forEach((s, i) => {
    const item = document.createElement("span");
    item.className = `key s${i}`;
    const last = s.points[s.points.length - 1][1];
    item.textContent = `${s.name} (${s.points.length} points, last ${label(last)})`;
    legend.append(item);
  });
  box.append(legend);
  return box;
}
