// SPDX-License-Identifier: Apache-2.0
// rubric.js - a rubric shown (criteria, level labels, descriptions) and
// scored: one radio group per criterion, named by the criterion's title,
// one radio per level, named by its label; keyboard scoring is the
// browser's own (Tab between groups, arrows within one).
import { fmtSeconds, h, put, uid } from './dom.js';

export function criterionTitle(rubric, key) {
  const c = rubric && rubric.criteria.find((x) => x.key === key);
  return c ? c.title : key;
}

export function levelLabel(rubric, key, value) {
  if (!rubric) return String(value);
  const crits = key ? rubric.criteria.filter((x) => x.key === key) : rubric.criteria;
  for (const c of crits) {
    const l = c.levels.find((x) => x.value === value);
    if (l) return l.label;
  }
  return String(value);
}

export function rubricView(rubric) {
  return h('div', { class: 'rubric' },
    rubric.description ? h('p', {}, rubric.description) : null,
    rubric.criteria.map((c) => h('section', { class: 'criterion', 'aria-label': c.title },
      h('h3', {}, c.title),
      c.description ? h('p', {}, c.description) : null,
      h('dl', { class: 'levels' }, c.levels.map((l) => [
        h('dt', {}, l.label),
        h('dd', {}, l.description || '')])))));
}

// opts: {rationale: bool (anchors: "Rationale" instead of "Comment"),
//        artifacts: [...] (names for citations), onChange()}
export function scoringForm(rubric, opts = {}) {
  const crit = new Map(); // key -> {radios, comment, evidence: [], list}
  const sections = rubric.criteria.map((c) => {
    const groupLabel = uid('crit');
    const radios = c.levels.map((l) => {
      const id = uid('lv');
      const descId = l.description ? uid('lvd') : null;
      const input = h('input', { type: 'radio', name: groupLabel, id, value: String(l.value), 'aria-describedby': descId });
      input.addEventListener('change', () => opts.onChange && opts.onChange());
      return h('div', { class: 'level' }, input, h('label', { for: id }, l.label),
        descId ? h('span', { class: 'level-desc', id: descId }, l.description) : null);
    });
    const commentId = uid('cm');
    const comment = h('textarea', { id: commentId, rows: '2' });
    comment.addEventListener('input', () => opts.onChange && opts.onChange());
    const list = h('ul', { class: 'citations', 'aria-label': `Cited moments for ${c.title}` });
    const entry = { radios: radios.map((r) => r.querySelector('input')), comment, evidence: [], list };
    crit.set(c.key, entry);
    return h('section', { class: 'criterion score-criterion' },
      h('h3', { id: groupLabel }, c.title),
      c.description ? h('p', { class: 'hint' }, c.description) : null,
      h('div', { role: 'radiogroup', 'aria-labelledby': groupLabel, class: 'levels-choice' }, radios),
      h('div', { class: 'field' }, h('label', { for: commentId }, `${opts.rationale ? 'Rationale' : 'Comment'} on ${c.title}`), comment),
      opts.artifacts ? list : null);
  });

  function drawCitations(key) {
    const e = crit.get(key);
    put(e.list, e.evidence.map((ev, i) => {
      const a = (opts.artifacts || []).find((x) => x.id === ev.artifact_id);
      const name = a ? a.filename || a.kind : 'evidence';
      const endId = uid('end');
      const end = h('input', { type: 'number', id: endId, min: String(ev.start_s || 0), step: '1', class: 'short', value: ev.end_s === null || ev.end_s === undefined ? '' : String(ev.end_s) });
      end.addEventListener('change', () => {
        ev.end_s = end.value === '' ? null : Math.max(Number(end.value), ev.start_s || 0);
        opts.onChange && opts.onChange();
      });
      return h('li', {},
        h('span', {}, `${name} at ${fmtSeconds(ev.start_s)}`),
        h('label', { for: endId }, ' until second '), end,
        h('button', { type: 'button', class: 'link', onclick: () => { e.evidence.splice(i, 1); drawCitations(key); opts.onChange && opts.onChange(); } }, `Remove citation ${fmtSeconds(ev.start_s)}`));
    }));
  }

  return {
    el: h('div', { class: 'scoring' }, sections),
    cite(key, ev) {
      const e = crit.get(key);
      if (!e || e.evidence.length >= 50) return false;
      e.evidence.push(ev);
      drawCitations(key);
      opts.onChange && opts.onChange();
      return true;
    },
    // {scores:[{criterion, level?, comment?, evidence?}]}; level missing when not chosen
    value() {
      return rubric.criteria.map((c) => {
        const e = crit.get(c.key);
        const chosen = e.radios.find((r) => r.checked);
        const s = { criterion: c.key };
        if (chosen) s.level = Number(chosen.value);
        if (e.comment.value) s[opts.rationale ? 'rationale' : 'comment'] = e.comment.value;
        if (e.evidence.length) s.evidence = e.evidence.map((x) => ({ ...x }));
        return s;
      });
    },
    missing() {
      return rubric.criteria.filter((c) => !crit.get(c.key).radios.some((r) => r.checked)).map((c) => c.title);
    },
    set(scores) {
      for (const s of scores || []) {
        const e = crit.get(s.criterion);
        if (!e) continue;
        for (const r of e.radios) r.checked = s.level !== undefined && Number(r.value) === s.level;
        e.comment.value = s.comment || s.rationale || '';
        e.evidence = (s.evidence || []).map((x) => ({ ...x }));
        drawCitations(s.criterion);
      }
    },
  };
}
