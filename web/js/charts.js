// SPDX-License-Identifier: Apache-2.0
// charts.js - the lead's charts as plain SVG built with the DOM.
//
// Why no charting library: the charts are two kinds (estimates with 95%
// intervals against a threshold, and an estimate over time with its band),
// ~120 lines here; the well-kept libraries (Chart.js ~70 KB gzip, D3 modules)
// draw on canvas or need a bundler, and canvas charts are invisible to screen
// readers. SVG text is selectable, scales to a phone, obeys the CSP (no
// inline styles: classes from app.css), and each chart comes with its
// numbers in a table.
import { h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const k of kids) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

const fmt = (x) => (x === null || x === undefined ? '—' : Number(x).toFixed(2));

// rows: [{label, value, lo, hi}] (value may be null: "no estimate")
export function intervalChart({ title, rows, threshold, thresholdLabel, min = 0, max = 1 }) {
  const W = 640, rowH = 34, left = 200, right = 24, top = 28;
  const H = top + rows.length * rowH + 30;
  const x = (v) => left + ((Math.min(max, Math.max(min, v)) - min) / (max - min)) * (W - left - right);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${rows.map((r) => `${r.label} ${fmt(r.value)}${r.lo !== null && r.lo !== undefined ? ` (95% ${fmt(r.lo)} to ${fmt(r.hi)})` : ''}`).join('; ')}${threshold !== undefined && threshold !== null ? `; ${thresholdLabel || 'threshold'} ${fmt(threshold)}` : ''}` });
  for (let t = 0; t <= 4; t++) {
    const v = min + ((max - min) * t) / 4;
    svg.append(s('line', { x1: x(v), x2: x(v), y1: top - 6, y2: H - 24, class: 'grid' }),
      s('text', { x: x(v), y: H - 8, 'text-anchor': 'middle' }, v.toFixed(2)));
  }
  if (threshold !== undefined && threshold !== null)
    svg.append(s('line', { x1: x(threshold), x2: x(threshold), y1: top - 12, y2: H - 24, class: 'threshold' }),
      s('text', { x: x(threshold) + 4, y: top - 14 }, `${thresholdLabel || 'threshold'} ${fmt(threshold)}`));
  rows.forEach((r, i) => {
    const y = top + i * rowH + rowH / 2;
    svg.append(s('text', { x: left - 8, y: y + 4, 'text-anchor': 'end' }, r.label.length > 28 ? r.label.slice(0, 27) + '…' : r.label));
    if (r.value === null || r.value === undefined) {
      svg.append(s('text', { x: left + 4, y: y + 4 }, 'no estimate yet'));
      return;
    }
    if (r.lo !== null && r.lo !== undefined)
      svg.append(s('line', { x1: x(r.lo), x2: x(r.hi), y1: y, y2: y, class: 'ci' }),
        s('line', { x1: x(r.lo), x2: x(r.lo), y1: y - 6, y2: y + 6, class: 'ci' }),
        s('line', { x1: x(r.hi), x2: x(r.hi), y1: y - 6, y2: y + 6, class: 'ci' }));
    svg.append(s('circle', { cx: x(r.value), cy: y, r: 5, class: 'est' }));
  });
  return h('figure', { class: 'chart-figure' }, svg, h('figcaption', {}, title),
    h('details', {}, h('summary', {}, `Numbers: ${title}`),
      h('table', {}, h('thead', {}, h('tr', {}, ['', 'Estimate', '95% interval'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows.map((r) => h('tr', {}, h('th', { scope: 'row' }, r.label), h('td', {}, fmt(r.value)),
          h('td', {}, r.lo === null || r.lo === undefined ? '—' : `${fmt(r.lo)} to ${fmt(r.hi)}`)))))));
}

// points: [{at, value, lo, hi}] oldest first: the estimate over time with its band
export function bandChart({ title, points, threshold, min = -0.2, max = 1 }) {
  const W = 640, H = 220, left = 44, right = 16, top = 16, bottom = 30;
  const n = points.length;
  const x = (i) => left + (n <= 1 ? (W - left - right) / 2 : (i / (n - 1)) * (W - left - right));
  const y = (v) => top + (1 - (Math.min(max, Math.max(min, v)) - min) / (max - min)) * (H - top - bottom);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${n ? `latest ${fmt(points[n - 1].value)} (95% ${fmt(points[n - 1].lo)} to ${fmt(points[n - 1].hi)}) over ${n} estimates` : 'no estimate yet'}${threshold !== null && threshold !== undefined ? `; threshold ${fmt(threshold)}` : ''}` });
  for (let t = 0; t <= 4; t++) {
    const v = min + ((max - min) * t) / 4;
    svg.append(s('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, v.toFixed(1)));
  }
  const withCi = points.map((p, i) => ({ ...p, i })).filter((p) => p.lo !== null && p.lo !== undefined);
  if (withCi.length) {
    const d = withCi.map((p, k) => `${k ? 'L' : 'M'}${x(p.i)},${y(p.hi)}`).join(' ') + ' ' +
      withCi.slice().reverse().map((p) => `L${x(p.i)},${y(p.lo)}`).join(' ') + ' Z';
    svg.append(s('path', { d, class: 'band' }));
  }
  const vals = points.map((p, i) => ({ ...p, i })).filter((p) => p.value !== null && p.value !== undefined);
  if (vals.length > 1) svg.append(s('path', { d: vals.map((p, k) => `${k ? 'L' : 'M'}${x(p.i)},${y(p.value)}`).join(' '), class: 'line' }));
  for (const p of vals) svg.append(s('circle', { cx: x(p.i), cy: y(p.value), r: 3.5, class: 'est' }));
  if (threshold !== null && threshold !== undefined)
    svg.append(s('line', { x1: left, x2: W - right, y1: y(threshold), y2: y(threshold), class: 'threshold' }),
      s('text', { x: W - right, y: y(threshold) - 4, 'text-anchor': 'end' }, `threshold ${fmt(threshold)}`));
  if (!n) svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no estimate yet'));
  return h('figure', { class: 'chart-figure' }, svg, h('figcaption', {}, title));
}
