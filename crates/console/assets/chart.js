// A live line chart in SVG: a fixed window of the latest samples per series, redrawn as each
// sample arrives, with a legend that states every series' current value in words (what a
// screen reader reads, and what the browser tests check).

import { fmt, h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 160;
const PAD = 4;

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export class LiveChart {
  /**
   * @param {string} title what the chart shows
   * @param {{key: string, label: string}[]} series each line (its colour comes from its place)
   * @param {(v: number) => string} format how a value is written
   * @param {number} points samples kept
   */
  constructor(title, series, format, points = 60) {
    this.series = series.map((s, i) => ({ ...s, index: i, samples: [] }));
    this.format = format;
    this.points = points;
    this.plot = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none", class: "plot", "aria-hidden": "true" });
    this.scale = h("span", { class: "scale" });
    this.legend = h("ul", { class: "legend" });
    this.el = h("figure", { class: "chart", "data-chart": title }, h("figcaption", {}, title, " ", this.scale), this.plot, this.legend);
  }

  /** Adds one sample: a value per series key. */
  push(values) {
    for (const s of this.series) {
      s.samples.push(Number(values[s.key]) || 0);
      if (s.samples.length > this.points) s.samples.shift();
    }
    this.draw();
  }

  draw() {
    const max = Math.max(1, ...this.series.flatMap((s) => s.samples));
    this.plot.replaceChildren();
    for (let i = 1; i < 4; i += 1) {
      const y = PAD + ((HEIGHT - 2 * PAD) * i) / 4;
      this.plot.append(svg("line", { x1: 0, x2: WIDTH, y1: y, y2: y, class: "grid" }));
    }
    for (const s of this.series) {
      const step = (WIDTH - 2 * PAD) / Math.max(1, this.points - 1);
      const offset = this.points - s.samples.length;
      const coords = s.samples.map((v, i) => {
        const x = PAD + (offset + i) * step;
        const y = HEIGHT - PAD - ((HEIGHT - 2 * PAD) * v) / max;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      if (coords.length) this.plot.append(svg("polyline", { points: coords.join(" "), class: `line s${s.index}` }));
    }
    this.scale.textContent = `(top: ${this.format(max)})`;
    this.legend.replaceChildren(
      ...this.series.map((s) => {
        const now = s.samples.length ? s.samples[s.samples.length - 1] : 0;
        return h("li", { class: `s${s.index}`, "data-series": s.key, "data-value": now }, h("span", { class: "swatch" }), `${s.label}: ${this.format(now)}`);
      }),
    );
  }
}

/**
 * The two charts of a message-stats object (the overview's, a queue's): publish, deliver and
 * ack rates, and ready and unacknowledged messages. `push(stats, ready, unacked)` adds a sample.
 */
export function messageCharts(ratesTitle, depthTitle) {
  const rates = new LiveChart(
    ratesTitle,
    [
      { key: "publish", label: "Published" },
      { key: "deliver", label: "Delivered" },
      { key: "ack", label: "Acknowledged" },
    ],
    fmt.rate,
  );
  const depth = new LiveChart(
    depthTitle,
    [
      { key: "ready", label: "Ready" },
      { key: "unacked", label: "Unacknowledged" },
    ],
    fmt.count,
  );
  return {
    el: h("div", { class: "charts" }, rates.el, depth.el),
    push(stats, ready, unacked) {
      const rate = (key) => ((stats || {})[`${key}_details`] || {}).rate || 0;
      rates.push({ publish: rate("publish"), deliver: rate("deliver_get"), ack: rate("ack") });
      depth.push({ ready, unacked });
    },
  };
}
