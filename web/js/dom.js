// SPDX-License-Identifier: Apache-2.0
// dom.js - building the page from data without ever parsing it as HTML.
//
// h('p', {class: 'x'}, 'text', child) creates elements; every string becomes
// a text node, so user text (names, comments, reflections) is escaped by
// construction. Nothing in the app assigns innerHTML.

let seq = 0;

// A unique id for aria-labelledby / aria-describedby / label[for].
export function uid(prefix = 'id') {
  seq += 1;
  return `${prefix}-${seq}`;
}

export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden')
      el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, kids);
  return el;
}

function add(el, kids) {
  for (const kid of kids) {
    if (kid === null || kid === undefined || kid === false) continue;
    if (Array.isArray(kid)) add(el, kid);
    else if (kid instanceof Node) el.appendChild(kid);
    else el.appendChild(document.createTextNode(String(kid)));
  }
}

// Appends, skipping null/false (Element.append would print "null").
export function append(el, ...kids) {
  add(el, kids);
  return el;
}

// Replaces an element's content.
export function put(el, ...kids) {
  el.replaceChildren();
  add(el, kids);
  return el;
}

// A labelled form field: the label's text is the control's accessible name.
export function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('span', { class: 'hint', id: `${id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), hintEl, control);
}

// A message region: role=alert for errors, role=status for news.
export function notice(kind, text) {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

// A table that scrolls sideways on a phone instead of widening the page.
export function scrollTable(caption, head, rows) {
  const cap = h('caption', { id: uid('cap') }, caption);
  return h('div', { class: 'table-wrap', role: 'region', tabindex: '0', 'aria-labelledby': cap.id },
    h('table', {}, cap, h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// 83 -> "1:23"; 3723 -> "1:02:03"
export function fmtSeconds(s) {
  s = Math.max(0, Math.floor(Number(s) || 0));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1048576).toFixed(1)} MB`;
  return `${(n / 1073741824).toFixed(2)} GB`;
}

export function fmtPct(x) {
  return x === null || x === undefined ? '—' : `${Math.round(x * 100)}%`;
}
