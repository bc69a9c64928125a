// SPDX-License-Identifier: Apache-2.0
// lead.js - the lead's pages: rubrics (with calibration settings and
// anchors), credentials (with grants and qualifications by hand),
// submissions (who scored what, override), and the reports as charts.
import { ApiError, get, post, put as apiPut, del, csrf } from './api.js';
import { append, fmtPct, fmtTime, h, notice, put, uid } from './dom.js';
import { go, page, showError } from './app.js';
import { rubricView, scoringForm, criterionTitle, levelLabel } from './rubric.js';
import { evidenceText, kindCount, resultView, evidencePlayer, STATUS } from './earner.js';
import { bandChart, intervalChart } from './charts.js';
import { announce, live, onLive } from './live.js';

const DEFAULT_LEVELS = ['Not yet', 'Approaching', 'Meets', 'Exceeds'];
const KNOWN = 'accord.lead.rubrics';

function input(label, attrs = {}, hint) {
  const id = uid('in');
  const el = attrs.tag === 'textarea' ? h('textarea', { id, rows: '2', ...attrs, tag: null })
    : attrs.tag === 'select' ? h('select', { id, ...attrs, tag: null, options: null }, (attrs.options || []).map(([v, t]) => h('option', { value: v }, t)))
      : h('input', { id, type: 'text', ...attrs, tag: null });
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) el.setAttribute('aria-describedby', hintEl.id);
  return { el, wrap: h('div', { class: 'field' }, h('label', { for: id }, label), hintEl, el) };
}

// Rubrics this lead may pick: those credentials use, and those made here.
async function knownRubrics() {
  const { credentials } = await get('/v1/credentials');
  const ids = new Set([...credentials.map((c) => c.rubric_id), ...JSON.parse(localStorage.getItem(KNOWN) || '[]')]);
  const out = [];
  for (const id of ids) {
    try { out.push(await get(`/v1/rubrics/${id}`)); } catch (e) { /* gone or not readable */ }
  }
  return { rubrics: out, credentials };
}

async function leadHome() {
  const main = page('Rubrics and credentials');
  const { rubrics, credentials } = await knownRubrics();
  append(main, h('div', { class: 'actions' },
    h('a', { class: 'button', href: '#/lead/rubrics/new' }, 'New rubric'),
    h('a', { class: 'button', href: '#/lead/credentials/new' }, 'New credential')));
  append(main, h('h2', {}, 'Credentials'), credentials.length ? h('ul', { class: 'cards' }, credentials.map((c) => h('li', { class: 'card' },
    h('h3', {}, h('a', { href: `#/lead/credentials/${c.id}` }, c.title)),
    h('p', { class: 'meta' }, `${c.stakes === 'high' ? 'High' : 'Low'} stakes · ${evidenceText(c.evidence)}`)))) : h('p', {}, 'No credentials yet.'));
  append(main, h('h2', {}, 'Rubrics'), rubrics.length ? h('ul', {}, rubrics.map((r) => h('li', {},
    h('a', { href: `#/lead/rubrics/${r.id}` }, r.title), ` · ${r.criteria.length} criteria`))) : h('p', {}, 'No rubrics yet.'));
}

function slug(text, taken) {
  let base = text.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 56) || 'criterion';
  let k = base;
  for (let n = 2; taken.has(k); n++) k = `${base}-${n}`;
  taken.add(k);
  return k;
}

async function newRubricPage() {
  const main = page('New rubric');
  const title = input('Rubric title', { required: true, maxlength: '200' });
  const desc = input('Rubric description', { tag: 'textarea' });
  const crits = h('div', {});
  const out = h('div', { 'aria-live': 'polite' });
  const blocks = [];
  function addCriterion() {
    const n = blocks.length + 1;
    const ct = input(`Criterion ${n} title`, { required: true });
    const cd = input(`Criterion ${n} description`, { tag: 'textarea' });
    const levels = h('ol', { class: 'level-editor' });
    const block = { ct, cd, levels: [] };
    const addLevel = (label = '') => {
      const m = block.levels.length + 1;
      const lt = input(`Criterion ${n}, level ${m} label`, { value: label, required: true });
      const ld = input(`Criterion ${n}, level ${m} description`);
      block.levels.push({ lt, ld });
      levels.append(h('li', {}, lt.wrap, ld.wrap));
    };
    DEFAULT_LEVELS.forEach((l) => addLevel(l));
    blocks.push(block);
    crits.append(h('fieldset', { class: 'card' }, h('legend', {}, `Criterion ${n}`), ct.wrap, cd.wrap,
      h('p', { class: 'hint' }, 'Levels, lowest first. Their values are 1, 2, 3…'), levels,
      h('button', { type: 'button', onclick: () => addLevel('') }, `Add a level to criterion ${n}`)));
  }
  addCriterion();
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create rubric');
  const form = h('form', {}, title.wrap, desc.wrap, h('h2', {}, 'Criteria'), crits,
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: addCriterion }, 'Add a criterion'), create), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const taken = new Set();
    const body = {
      title: title.el.value.trim(),
      description: desc.el.value.trim() || undefined,
      criteria: blocks.map((b) => ({
        key: slug(b.ct.el.value, taken),
        title: b.ct.el.value.trim(),
        description: b.cd.el.value.trim() || undefined,
        levels: b.levels.filter((l) => l.lt.el.value.trim()).map((l, i) => ({ value: i + 1, label: l.lt.el.value.trim(), description: l.ld.el.value.trim() || undefined })),
      })),
    };
    create.disabled = true;
    try {
      const r = await post('/v1/rubrics', body);
      localStorage.setItem(KNOWN, JSON.stringify([...new Set([...JSON.parse(localStorage.getItem(KNOWN) || '[]'), r.id])]));
      go(`/lead/rubrics/${r.id}`);
    } catch (e) {
      showError(out, e);
      create.disabled = false;
    }
  });
  append(main, form);
}

async function uploadArtifact(file, kind) {
  const headers = { 'Content-Type': file.type || 'application/octet-stream', 'X-Artifact-Kind': kind, 'X-CSRF-Token': csrf() };
  if (/^[\x20-\x7e]+$/.test(file.name)) headers['X-Filename'] = file.name;
  const res = await fetch('/v1/artifacts', { method: 'POST', headers, body: file, credentials: 'same-origin' });
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data?.error?.code, data?.error?.message || `upload failed (${res.status})`);
  return data;
}

async function rubricPage(id) {
  const rubric = await get(`/v1/rubrics/${id}`);
  const main = page(`Rubric: ${rubric.title}`);
  append(main, rubricView(rubric));
  // calibration settings
  const settingsOut = h('div', { 'aria-live': 'polite' });
  append(main, h('h2', {}, 'Calibration settings'));
  try {
    const cal = await get(`/v1/rubrics/${id}/calibration`);
    const size = input('Anchors per session', { type: 'number', min: '1', max: '50', value: String(cal.set_size) });
    const exact = input('Exact agreement needed (0 to 1)', { type: 'number', step: '0.01', min: '0', max: '1', value: String(cal.exact_min) });
    const adj = input('Agreement within one level needed (0 to 1)', { type: 'number', step: '0.01', min: '0', max: '1', value: String(cal.adjacent_min) });
    const verd = input('Verdict agreement needed (0 to 1)', { type: 'number', step: '0.01', min: '0', max: '1', value: String(cal.verdict_min) });
    const save = h('button', { type: 'submit' }, 'Save calibration settings');
    const f = h('form', { class: 'card' }, size.wrap, exact.wrap, adj.wrap, verd.wrap, save, settingsOut);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await apiPut(`/v1/rubrics/${id}/calibration`, { set_size: Number(size.el.value), exact_min: Number(exact.el.value), adjacent_min: Number(adj.el.value), verdict_min: Number(verd.el.value) });
        put(settingsOut, notice('success', 'Calibration settings saved.'));
      } catch (e) { showError(settingsOut, e); }
    });
    append(main, f);
  } catch (e) {
    append(main, notice('error', e.message));
  }
  // anchors
  append(main, h('h2', {}, 'Anchors'));
  const list = h('div', {});
  append(main, list);
  const drawAnchors = async () => {
    const { anchors } = await get(`/v1/anchors?rubric_id=${id}`);
    put(list, anchors.length ? h('table', {}, h('caption', {}, `${anchors.length} anchor(s)`),
      h('thead', {}, h('tr', {}, ['Created', 'Purpose', 'Evidence', 'Master scores'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, anchors.map((a) => h('tr', {}, h('td', {}, fmtTime(a.created_at)), h('td', {}, a.purpose),
        h('td', {}, `${a.artifact_ids.length} file(s)`),
        h('td', {}, (a.master?.scores || []).map((s) => `${criterionTitle(rubric, s.criterion)}: ${levelLabel(rubric, s.criterion, s.level)}`).join('; '))))))
      : h('p', {}, 'No anchors yet. Calibration sessions need them.'));
  };
  await drawAnchors();
  const files = input('Anchor evidence files', { type: 'file', multiple: true, required: true });
  const kind = input('Kind of evidence', { tag: 'select', options: [['video', 'Video'], ['plan', 'Plan'], ['reflection', 'Reflection'], ['other', 'Other']] });
  const purpose = input('Purpose', { tag: 'select', options: [['qualification', 'Qualification and blind checks'], ['validity', 'Blind checks only'], ['practice', 'Practice']] });
  const form = scoringForm(rubric, { rationale: true });
  const fb = input("Experts' feedback", { tag: 'textarea' });
  const out = h('div', { 'aria-live': 'polite' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create anchor');
  const f = h('form', { class: 'card', 'aria-label': 'New anchor' }, h('h3', {}, 'New anchor'), files.wrap, kind.wrap, purpose.wrap,
    h('p', {}, 'Master scores, with the rationale assessors will read after their session:'), form.el, fb.wrap, create, out);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const missing = form.missing();
    if (missing.length) return put(out, notice('error', `Choose a master level for: ${missing.join(', ')}.`));
    create.disabled = true;
    try {
      const ids = [];
      for (const file of files.el.files) ids.push((await uploadArtifact(file, kind.el.value)).id);
      await post('/v1/anchors', {
        rubric_id: id, artifact_ids: ids, purpose: purpose.el.value,
        master: { scores: form.value().map((s) => ({ criterion: s.criterion, level: s.level, rationale: s.rationale || '' })), feedback: fb.el.value },
      });
      put(out, notice('success', 'Anchor created.'));
      files.el.value = '';
      await drawAnchors();
    } catch (e) { showError(out, e); }
    create.disabled = false;
  });
  append(main, f);
}

async function newCredentialPage() {
  const main = page('New credential');
  const { rubrics } = await knownRubrics();
  if (!rubrics.length) {
    append(main, h('p', {}, 'Create a rubric first. ', h('a', { href: '#/lead/rubrics/new' }, 'New rubric')));
    return;
  }
  const title = input('Credential title', { required: true });
  const desc = input('Credential description', { tag: 'textarea' });
  const rubricSel = input('Rubric', { tag: 'select', options: rubrics.map((r) => [r.id, r.title]) });
  const stakes = input('Stakes', { tag: 'select', options: [['low', 'Low: peers may review'], ['high', 'High: experts only']] });
  const counts = ['video', 'plan', 'reflection', 'other'].map((k) => [k, input(`Number of ${kindCount(k, 2).replace(/^2 /, '')} required`, { type: 'number', min: '0', max: '50', value: k === 'video' ? '1' : k === 'other' ? '0' : '1' })]);
  const passSel = input('Lowest level that passes', { tag: 'select' });
  const fillPass = () => {
    const r = rubrics.find((x) => x.id === rubricSel.el.value);
    const levels = r.criteria[0].levels;
    put(passSel.el, levels.map((l) => h('option', { value: String(l.value) }, l.label)));
    passSel.el.value = String(levels[Math.floor(levels.length / 2)].value);
  };
  rubricSel.el.addEventListener('change', fillPass);
  fillPass();
  const attempts = input('Attempts allowed', { type: 'number', min: '1', max: '20', value: '3' });
  const out = h('div', { 'aria-live': 'polite' });
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create credential');
  const form = h('form', {}, title.wrap, desc.wrap, rubricSel.wrap, stakes.wrap,
    h('fieldset', { class: 'card' }, h('legend', {}, 'Evidence requirements'), counts.map(([, c]) => c.wrap)),
    passSel.wrap, attempts.wrap, create, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    create.disabled = true;
    try {
      const c = await post('/v1/credentials', {
        title: title.el.value.trim(), description: desc.el.value.trim() || undefined, stakes: stakes.el.value, rubric_id: rubricSel.el.value,
        evidence: counts.filter(([, c]) => Number(c.el.value) > 0).map(([k, c]) => ({ kind: k, min: Number(c.el.value) })),
        pass_rule: { min_level_each: Number(passSel.el.value) }, max_attempts: Number(attempts.el.value),
      });
      go(`/lead/credentials/${c.id}`);
    } catch (e) {
      showError(out, e);
      create.disabled = false;
    }
  });
  append(main, form);
}

async function userByEmail(email) {
  const { users } = await get(`/v1/users?q=${encodeURIComponent(email.trim())}`);
  const u = users.find((x) => x.email.toLowerCase() === email.trim().toLowerCase());
  if (!u) throw new Error(`Nobody you manage has the email ${email}.`);
  return u;
}

// The review policy in words, and a form to change it (PUT /v1/credentials/{id}/policy,
// partial). Rates are shown and typed in percent; the API takes 0..1.
function policySection(id, policy) {
  const list = h('ul', {});
  const out = h('div', { 'aria-live': 'polite' });
  const draw = (p) => put(list,
    h('li', {}, p.turnaround_hours ? `Answers promised within ${p.turnaround_hours} hours (leads hear of a submission waiting longer)`
      : 'Answers promised within the server’s default turnaround'),
    h('li', {}, `Blind validity items: ${fmtPct(p.validity_rate)} of claims`),
    h('li', {}, `Second scoring: ${fmtPct(p.second_score_rate)} (at least ${fmtPct(p.second_score_floor)})`),
    h('li', {}, `Peer review pauses below a kappa lower bound of ${p.reliability_threshold} after ${p.min_pairs} pairs`),
    h('li', {}, `Experts take first scores after ${p.peer_wait_hours} hours of waiting`));
  draw(policy);
  const pct = (x) => String(Math.round(x * 1000) / 10);
  const num = (label, value, attrs, hint) => input(label, { type: 'number', required: true, value: String(value), inputmode: 'decimal', ...attrs }, hint);
  const turnaround = input('Turnaround target (hours)', { type: 'number', min: '1', max: '8760', step: '1', value: policy.turnaround_hours ? String(policy.turnaround_hours) : '' },
    'How soon earners should hear back. Leave empty for the server’s default.');
  const validity = num('Blind validity items (% of claims)', pct(policy.validity_rate), { min: '0', max: '100', step: '0.1' },
    'Claims that are secretly an anchor with known scores, to check assessors.');
  const second = num('Second scoring (% of submissions)', pct(policy.second_score_rate), { min: '0', max: '100', step: '0.1' },
    'Submissions scored by a second assessor, for the agreement statistics.');
  const floor = num('Second scoring at least (%)', pct(policy.second_score_floor), { min: '0', max: '100', step: '0.1' },
    'Never fewer second scores than this, whatever the reliability.');
  const threshold = num('Reliability threshold (kappa lower bound)', policy.reliability_threshold, { min: '0', max: '1', step: '0.01' },
    'Below it, peer review pauses and experts score instead.');
  const pairs = num('Pairs before judging reliability', policy.min_pairs, { min: '1', step: '1' });
  const wait = num('Experts take first scores after (hours of waiting)', policy.peer_wait_hours, { min: '0', step: '1' });
  const save = h('button', { type: 'submit' }, 'Save review policy');
  const form = h('form', { class: 'card narrow' },
    turnaround.wrap, validity.wrap, second.wrap, floor.wrap, threshold.wrap, pairs.wrap, wait.wrap, save);
  // only what the lead changed is sent: a rate shown rounded is never written back rounded
  const fields = [[turnaround, 'turnaround_hours', (v) => (v === '' ? null : Number(v))],
    [validity, 'validity_rate', (v) => Number(v) / 100], [second, 'second_score_rate', (v) => Number(v) / 100],
    [floor, 'second_score_floor', (v) => Number(v) / 100], [threshold, 'reliability_threshold', Number],
    [pairs, 'min_pairs', Number], [wait, 'peer_wait_hours', Number]];
  const was = new Map(fields.map(([f]) => [f, f.el.value]));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      const body = {};
      for (const [f, key, conv] of fields) if (f.el.value !== was.get(f)) body[key] = conv(f.el.value);
      if (!Object.keys(body).length) {
        put(out, notice('info', 'Nothing was changed.'));
        return;
      }
      const r = await apiPut(`/v1/credentials/${id}/policy`, body);
      draw(r.review_policy || r);
      for (const [f] of fields) was.set(f, f.el.value);
      put(out, notice('success', 'The review policy is saved. It applies to claims from now on.'));
    } catch (e) {
      showError(out, e);
    } finally {
      save.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'policy-heading' }, h('h2', { id: 'policy-heading' }, 'Review policy'), list,
    h('details', {}, h('summary', {}, 'Change the review policy'), form), out);
}

async function credentialPage(id) {
  const c = await get(`/v1/credentials/${id}`);
  const rubric = c.rubric || (await get(`/v1/rubrics/${c.rubric_id}`));
  const main = page(`Credential: ${c.title}`);
  append(main, c.description ? h('p', {}, c.description) : null,
    h('ul', {}, h('li', {}, `${c.stakes === 'high' ? 'High' : 'Low'} stakes`), h('li', {}, `Evidence: ${evidenceText(c.evidence)}`),
      h('li', {}, `Passes when every criterion reaches “${levelLabel(rubric, null, c.pass_rule.min_level_each)}”`),
      h('li', {}, `${c.max_attempts} attempts`),
      h('li', {}, 'Rubric: ', h('a', { href: `#/lead/rubrics/${rubric.id}` }, rubric.title))));
  if (c.review_policy) append(main, policySection(id, c.review_policy));
  // grants
  append(main, h('h2', {}, 'Assessors'));
  const grants = h('div', {});
  const drawGrants = async () => {
    try {
      const { assessors } = await get(`/v1/credentials/${id}/assessors`);
      put(grants, assessors.length ? h('table', {}, h('caption', { class: 'sr-only' }, 'Assessors of this credential'),
        h('thead', {}, h('tr', {}, ['Name', 'Email', 'Pool', 'Qualification', 'Reviews held', 'Granted', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, assessors.map((a) => h('tr', {}, h('td', {}, a.name), h('td', {}, a.email), h('td', {}, a.pool),
          h('td', {}, a.qualification === 'qualified' ? 'Qualified' : a.qualification ? 'Needs recalibration' : 'Not calibrated'),
          h('td', {}, String(a.active_reviews ?? 0)), h('td', {}, fmtTime(a.created_at)),
          h('td', {}, h('button', { type: 'button', class: 'link', onclick: async () => {
            try { await del(`/v1/credentials/${id}/assessors/${a.user_id}`); await drawGrants(); } catch (e) { showError(grants, e); }
          } }, `Revoke ${a.name}`)))))) : h('p', {}, 'Nobody may review this credential yet.'));
    } catch (e) {
      put(grants, notice('info', e.status === 404 ? 'This server cannot list grants yet.' : e.message));
    }
  };
  await drawGrants();
  const email = input("Assessor's email", { type: 'email', required: true });
  const pool = input('Pool', { tag: 'select', options: c.stakes === 'high' ? [['expert', 'Expert']] : [['peer', 'Peer'], ['expert', 'Expert']] });
  const waive = h('input', { type: 'checkbox', id: uid('waive') });
  const gOut = h('div', { 'aria-live': 'polite' });
  const gBtn = h('button', { type: 'submit' }, 'Grant');
  const gForm = h('form', { class: 'card', 'aria-label': 'Grant' }, h('h3', {}, 'Let someone review this credential'), email.wrap, pool.wrap,
    h('div', { class: 'field' }, waive, h('label', { for: waive.id, class: 'inline' }, ' They need not hold this credential themselves')), gBtn, gOut);
  gForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const u = await userByEmail(email.el.value);
      await post(`/v1/credentials/${id}/assessors`, { user_id: u.id, pool: pool.el.value, waive_award: waive.checked });
      put(gOut, notice('success', `${u.name} may now review this credential (once qualified on its rubric).`));
      await drawGrants();
    } catch (e) { showError(gOut, e); }
  });
  // qualification by hand
  const qEmail = input("Assessor's email", { type: 'email', required: true });
  const qStatus = input('Qualification', { tag: 'select', options: [['qualified', 'Qualified'], ['needs_recalibration', 'Needs recalibration']] });
  const qReason = input('Reason', { tag: 'textarea', required: true }, 'Kept in the audit log.');
  const qOut = h('div', { 'aria-live': 'polite' });
  const qForm = h('form', { class: 'card', 'aria-label': 'Set a qualification' }, h('h3', {}, `Set a qualification on “${rubric.title}” by hand`), qEmail.wrap, qStatus.wrap, qReason.wrap,
    h('button', { type: 'submit' }, 'Set qualification'), qOut);
  qForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const u = await userByEmail(qEmail.el.value);
      await post(`/v1/assessors/${u.id}/qualifications`, { rubric_id: rubric.id, status: qStatus.el.value, reason: qReason.el.value });
      put(qOut, notice('success', `${u.name}: ${qStatus.el.value === 'qualified' ? 'qualified' : 'needs recalibration'}.`));
    } catch (e) { showError(qOut, e); }
  });
  append(main, grants, gForm, qForm);
}

async function submissionsPage() {
  const main = page('Submissions');
  const [{ submissions }, { credentials }] = await Promise.all([get('/v1/submissions'), get('/v1/credentials')]);
  const titles = new Map(credentials.map((c) => [c.id, c.title]));
  if (!submissions.length) return append(main, h('p', {}, 'No submissions yet.'));
  append(main, h('table', {}, h('caption', { class: 'sr-only' }, 'All submissions'),
    h('thead', {}, h('tr', {}, ['Credential', 'Attempt', 'Status', 'Submitted'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, submissions.map((s) => h('tr', {},
      h('td', {}, h('a', { href: `#/lead/submissions/${s.id}` }, s.credential?.title || titles.get(s.credential_id) || 'Credential')),
      h('td', {}, String(s.attempt)), h('td', {}, STATUS[s.status] || s.status), h('td', {}, fmtTime(s.created_at)))))));
}

async function leadSubmissionPage(id) {
  const s = await get(`/v1/submissions/${id}`);
  const c = await get(`/v1/credentials/${s.credential_id}`);
  const rubric = c.rubric || (await get(`/v1/rubrics/${c.rubric_id}`));
  const main = page(`Submission: ${c.title}, attempt ${s.attempt}`);
  append(main, h('p', {}, `Status: ${STATUS[s.status] || s.status}`));
  const player = evidencePlayer(s.artifacts);
  if (s.result) append(main, h('h2', {}, 'Result'), resultView(s.result, rubric, s.artifacts, player.play));
  append(main, h('h2', {}, 'Who scored what'));
  let overrides = [];
  try {
    const who = await get(`/v1/submissions/${id}/reviews`);
    const { reviews } = who;
    overrides = who.overrides || [];
    append(main, reviews.length ? h('table', {}, h('caption', { class: 'sr-only' }, 'Reviews of this submission'),
      h('thead', {}, h('tr', {}, ['Assessor', 'Stage', 'Status', 'Verdict', 'Scores', 'Scored'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, reviews.map((r) => h('tr', {}, h('td', {}, `${r.assessor?.name || ''}${r.pool ? ` (${r.pool})` : ''}`), h('td', {}, r.stage || r.kind || ''), h('td', {}, r.status), h('td', {}, r.verdict || ''),
        h('td', {}, (r.scores || []).map((x) => `${x.criterion_title || criterionTitle(rubric, x.criterion)}: ${x.level_label || levelLabel(rubric, x.criterion, x.level)}`).join('; ')),
        h('td', {}, fmtTime(r.scored_at)))))) : h('p', {}, 'Nobody has scored it yet.'));
  } catch (e) {
    append(main, notice('info', e.status === 404 ? 'This server cannot show who scored what yet.' : e.message));
  }
  if (overrides && overrides.length)
    append(main, h('h2', {}, 'Overrides'), h('ul', {}, overrides.map((o) => h('li', {},
      `${fmtTime(o.at)}: ${o.lead?.name || 'a lead'} changed ${o.previous_verdict} to ${o.verdict}. Reason: ${o.reason}`))));
  if (s.result) {
    const verdict = input('New verdict', { tag: 'select', options: [['pass', 'Pass'], ['resubmit', 'Resubmit']] });
    const reason = input('Reason for the override', { tag: 'textarea', required: true, maxlength: '2000' }, 'Required; kept in the audit log.');
    const fb = input('Feedback to the earner (optional)', { tag: 'textarea' });
    const out = h('div', { 'aria-live': 'polite' });
    const f = h('form', { class: 'card', 'aria-label': 'Override the result' }, h('h2', {}, 'Override the result'), verdict.wrap, reason.wrap, fb.wrap,
      h('button', { type: 'submit' }, 'Override result'), out);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await post(`/v1/submissions/${id}/override`, { verdict: verdict.el.value, reason: reason.el.value, feedback: fb.el.value || undefined });
        leadSubmissionPage(id);
      } catch (e) { showError(out, e); }
    });
    append(main, f);
  }
  append(main, h('h2', {}, 'Evidence'), player.el);
}

// ---------------------------------------------------------------------------
// Reports

function signed(x) {
  if (x === null || x === undefined) return '—';
  return `${x > 0 ? '+' : ''}${x.toFixed(2)} levels`;
}

function stat(o, names) {
  for (const n of names) {
    const v = o && (o.metrics || o)[n];
    if (v && v.value !== null && v.value !== undefined) return { name: n, value: v.value, lo: v.ci ? v.ci[0] : null, hi: v.ci ? v.ci[1] : null };
  }
  return { name: names[0], value: null, lo: null, hi: null };
}

async function reportsPage() {
  const main = page('Reports');
  const [{ credentials }, routing] = await Promise.all([get('/v1/credentials'), get('/v1/reports/routing')]);
  if (!credentials.length) return append(main, h('p', {}, 'No credentials yet.'));
  const sel = h('select', { id: 'report-cred' }, credentials.map((c) => h('option', { value: c.id }, c.title)));
  const pool = h('select', { id: 'report-pool' }, [['all', 'Everyone'], ['peer', 'Peers'], ['expert', 'Experts']].map(([v, t]) => h('option', { value: v }, t)));
  const area = h('div', { 'aria-live': 'polite' });
  const csv = h('a', { class: 'button', download: 'ratings.csv' }, 'Download ratings.csv');
  append(main, h('div', { class: 'card' }, h('div', { class: 'field' }, h('label', { for: 'report-cred' }, 'Credential'), sel),
    h('div', { class: 'field' }, h('label', { for: 'report-pool' }, 'Scorers'), pool), csv), area);
  let drawing = 0;
  const draw = async () => {
    // a slower answer for the credential chosen before must not replace this one
    const mine = ++drawing;
    const c = credentials.find((x) => x.id === sel.value);
    csv.href = `/v1/reports/ratings.csv?credential_id=${c.id}`;
    put(area, h('p', {}, 'Loading…'));
    const parts = [];
    try {
      const [rep, cal, rubric] = await Promise.all([
        get(`/v1/reports/agreement?credential_id=${c.id}&pool=${pool.value}`),
        get(`/v1/rubrics/${c.rubric_id}/calibration`), get(`/v1/rubrics/${c.rubric_id}`)]);
      const threshold = c.review_policy?.reliability_threshold ?? 0.6;
      const keys = rubric.criteria.map((k) => k.key);
      const exactRows = keys.map((k) => ({ label: criterionTitle(rubric, k), ...stat(rep.criteria[k], ['percent_exact']) }));
      const kappaNames = ['cohen_kappa_quadratic', 'gwet_ac2_quadratic', 'krippendorff_alpha_ordinal', 'krippendorff_alpha_interval'];
      const kappaRows = keys.map((k) => ({ label: criterionTitle(rubric, k), ...stat(rep.criteria[k], kappaNames) }));
      const overall = stat(rep.overall, kappaNames);
      parts.push(h('h2', {}, 'Agreement by criterion'),
        intervalChart({ title: `Exact agreement on ${c.title} by criterion, with 95% intervals`, rows: exactRows, threshold: cal.exact_min, thresholdLabel: 'needed' }),
        intervalChart({ title: `Reliability (${overall.name.replace(/_/g, ' ')}) on ${c.title} by criterion, with 95% intervals`, rows: [...kappaRows, { label: 'All criteria', ...overall }], threshold, thresholdLabel: 'threshold', min: -0.2, max: 1 }));
      const ar = await get(`/v1/reports/assessors?rubric_id=${c.rubric_id}`);
      const flagged = (a) => a.status === 'needs_recalibration' || a.calibration?.blocked || a.churn?.blocked;
      const rows = [...ar.assessors].sort((a, b) => Number(flagged(b)) - Number(flagged(a)) || a.name.localeCompare(b.name));
      parts.push(h('h2', {}, 'Assessors'), rows.length ? h('table', {}, h('caption', { class: 'sr-only' }, 'Assessors, flagged ones first'),
        h('thead', {}, h('tr', {}, ['Assessor', 'Status', 'Severity (+ lenient)', 'Window exact', 'Within one', 'Items', 'Why', 'Calibration'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows.map((a) => h('tr', {}, h('th', { scope: 'row' }, a.name, flagged(a) ? h('span', { class: 'flag' }, ' (flagged)') : null),
          h('td', {}, a.status === 'qualified' ? 'Qualified' : a.status ? 'Needs recalibration' : 'Not qualified'),
          h('td', {}, signed(a.severity?.vs_master ?? a.severity?.vs_experts)),
          h('td', {}, fmtPct(a.validity?.exact)), h('td', {}, fmtPct(a.validity?.adjacent)), h('td', {}, String(a.validity?.items ?? 0)),
          h('td', {}, a.reason || ''), h('td', {}, calibrationCell(a, c.rubric_id, draw)))))) : h('p', {}, 'Nobody reviews on this rubric yet.'));
    } catch (e) {
      parts.push(notice('error', e.message));
    }
    if (mine === drawing) put(area, parts);
  };
  sel.addEventListener('change', draw);
  pool.addEventListener('change', draw);
  await draw();
  append(main, h('h2', {}, 'Routing'), ...routing.credentials.map((r) => {
    const hist = (r.history || []).map((p) => ({ at: p.at, value: p.kappa, lo: p.ci ? p.ci[0] : null, hi: p.ci ? p.ci[1] : null }));
    if (!hist.length && r.kappa !== null && r.kappa !== undefined) hist.push({ value: r.kappa, lo: r.ci ? r.ci[0] : null, hi: r.ci ? r.ci[1] : null });
    const c = credentials.find((x) => x.id === r.credential_id);
    const threshold = r.threshold ?? c?.review_policy?.reliability_threshold ?? 0.6;
    const peerText = (v) => `Peer review ${v === 'active' ? 'active' : 'paused'} · ${r.pairs} peer/expert pairs · second scoring ${fmtPct(r.second_score_share)}`;
    const peer = h('p', {}, peerText(r.peer_review));
    const adj = h('p', {}, `Adjudications waiting: ${r.queue?.adjudication ?? 0}`);
    let was = r.peer_review;
    const follow = (d) => { // the live stream (live.js): routing changes without a reload
      if (d.credential_id !== r.credential_id) return;
      peer.textContent = peerText(d.peer_review);
      adj.textContent = `Adjudications waiting: ${d.adjudication_waiting}`;
      if (d.peer_review !== was) announce(`Peer review of ${r.title} is now ${d.peer_review}.`);
      was = d.peer_review;
    };
    if (live.routing.has(r.credential_id)) follow(live.routing.get(r.credential_id));
    onLive((name, d) => { if (name === 'routing') follow(d); });
    return h('section', { class: 'card', 'aria-label': `Routing of ${r.title}` }, h('h3', {}, r.title),
      peer, adj,
      r.reason && typeof r.reason === 'string' ? h('p', {}, r.reason) : null,
      h('p', {}, `Waiting: ${r.queue?.first ?? 0} first scores, ${r.queue?.second ?? 0} second scores, ${r.queue?.adjudication ?? 0} adjudications${r.oldest_waiting_hours !== null && r.oldest_waiting_hours !== undefined ? ` · oldest ${r.oldest_waiting_hours} h` : ''}`),
      bandChart({ title: `Peer–expert kappa of ${r.title} over time, with 95% band and threshold`, points: hist, threshold }));
  }));
}

// An assessor who failed calibration as often as the rubric allows can try
// again only when a lead says so, with a reason (audited); failed sessions
// before then stop counting.
function calibrationCell(a, rubricId, redraw) {
  const cal = a.calibration;
  if (!cal) return '';
  const text = `${cal.failed_sessions} of ${cal.max_failed_sessions} failed sessions`;
  if (!cal.blocked) return text;
  const reason = h('input', { type: 'text', id: uid('why'), required: true, maxlength: '500' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'inline-form' },
    h('label', { for: reason.id }, `Why may ${a.name} try again?`), reason,
    h('button', { type: 'submit', 'aria-label': `Allow ${a.name} another attempt` }, 'Allow another attempt'), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await post(`/v1/assessors/${a.user_id}/calibration-attempts`, { rubric_id: rubricId, reason: reason.value.trim() });
      put(out, notice('success', `${a.name} may start another calibration session.`));
      setTimeout(redraw, 1500);
    } catch (e) {
      showError(out, e);
    }
  });
  return h('div', {}, h('p', {}, text, cal.anchor_pool_exhausted ? ' · every anchor was shown to them: add anchors first' : ''), form);
}

export function routes(route) {
  route('/lead', ['lead'], leadHome);
  route('/lead/rubrics/new', ['lead'], newRubricPage);
  route('/lead/rubrics/:id', ['lead'], rubricPage);
  route('/lead/credentials/new', ['lead'], newCredentialPage);
  route('/lead/credentials/:id', ['lead'], credentialPage);
  route('/lead/submissions', ['lead'], submissionsPage);
  route('/lead/submissions/:id', ['lead'], leadSubmissionPage);
  route('/reports', ['lead'], reportsPage);
}

