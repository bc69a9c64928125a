// SPDX-License-Identifier: Apache-2.0
// assessor.js - claiming reviews, the review workspace (evidence, rubric,
// citations, feedback, drafts saved on the server), calibration sessions,
// qualifications and the assessor's own reviews.
import { ApiError, api, get, post } from './api.js';
import { append, fmtPct, fmtSeconds, fmtTime, h, notice, put, uid } from './dom.js';
import { go, hasRole, page, showError } from './app.js';
import { evidencePlayer, resultView } from './earner.js';
import { criterionTitle, levelLabel, scoringForm } from './rubric.js';
import { announceQueue, live, onLive } from './live.js';

const rubricCache = new Map();
export async function rubricById(id) {
  if (!rubricCache.has(id)) rubricCache.set(id, get(`/v1/rubrics/${id}`));
  return rubricCache.get(id);
}

function missingRoute(e) {
  return e instanceof ApiError && (e.status === 404 || e.status === 405) && /no such endpoint|method/.test(e.message);
}

async function claimPage() {
  const main = page('Review');
  const { credentials } = await get('/v1/credentials');
  const sel = h('select', { id: 'claim-cred' }, h('option', { value: '' }, 'Any credential I may review'),
    credentials.map((c) => h('option', { value: c.id }, c.title)));
  const out = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'button', class: 'primary' }, 'Claim next review');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const r = await post('/v1/reviews/claim', sel.value ? { credential_id: sel.value } : {});
      if (r === null) put(out, notice('info', 'Nothing is waiting for you right now. Try again later.'));
      else return go(`/reviews/${r.id}`);
    } catch (e) {
      showError(out, e);
    }
    btn.disabled = false;
  });
  append(main, h('div', { class: 'card' }, h('div', { class: 'field' }, h('label', { for: 'claim-cred' }, 'Credential'), sel), btn, out));
  if (hasRole('assessor', 'expert')) append(main, waitingTable());
  if (hasRole('lead', 'expert')) {
    try {
      const { adjudications } = await get('/v1/adjudications');
      append(main, h('h2', {}, 'Adjudication queue'), adjudications.length
        ? h('table', {}, h('caption', { class: 'sr-only' }, 'Submissions waiting for adjudication'),
          h('thead', {}, h('tr', {}, ['Credential', 'Attempt', 'Waiting since', 'Claimed', 'Why'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, adjudications.map((a) => h('tr', {}, h('td', {}, a.credential.title), h('td', {}, String(a.attempt)),
            h('td', {}, fmtTime(a.waiting_since)), h('td', {}, a.claimed ? 'yes' : 'no'), h('td', {}, a.reason || '')))))
        : h('p', {}, 'Nothing waits for adjudication.'),
        h('p', { class: 'hint' }, '"Claim next review" takes the oldest one you may adjudicate.'));
    } catch (e) { /* not offered by this server */ }
  }
  const active = h('section', { 'aria-label': 'Reviews you hold' });
  append(main, active);
  try {
    const { reviews } = await get('/v1/me/reviews?status=active');
    if (reviews.length)
      put(active, h('h2', {}, 'Reviews you hold'), h('ul', {}, reviews.map((r) => h('li', {},
        h('a', { href: `#/reviews/${r.id}` }, `${r.credential.title}, attempt ${r.attempt}`),
        r.lease_expires_at ? ` · lease ends ${fmtTime(r.lease_expires_at)}` : ''))));
  } catch (e) {
    // an older server without the list: the claim still works
  }
}

// What waits for this assessor, per credential they may review, kept up to
// date by the live stream (live.js): counts change without a reload.
function waitingTable() {
  const body = h('tbody', {});
  const rows = new Map();
  const empty = h('p', {}, 'Waiting for the live queue counts…');
  const table = h('table', { hidden: true }, h('caption', {}, 'Reviews waiting for you'),
    h('thead', {}, h('tr', {}, ['Credential', 'Waiting', 'Peer review'].map((t) => h('th', { scope: 'col' }, t)))), body);
  const draw = (q) => {
    let row = rows.get(q.credential_id);
    if (!row) {
      row = { title: h('th', { scope: 'row' }), waiting: h('td', { class: 'count' }), peer: h('td', {}) };
      rows.set(q.credential_id, row);
      body.appendChild(h('tr', {}, row.title, row.waiting, row.peer));
    }
    row.title.textContent = q.title;
    row.waiting.textContent = String(q.waiting);
    row.peer.textContent = q.peer_review === 'paused' ? 'Paused (experts only)' : 'Active';
    table.hidden = false;
    empty.hidden = true;
  };
  const settle = () => {
    if (live.ready && !rows.size) empty.textContent = 'You may not review any credential yet.';
  };
  for (const q of live.queue.values()) draw(q);
  settle();
  onLive((name, d) => {
    if (name === 'queue') {
      const before = rows.get(d.credential_id)?.waiting.textContent;
      draw(d);
      if (before !== undefined && before !== String(d.waiting)) announceQueue(d);
    } else if (name === 'ready') settle();
  });
  return h('section', { 'aria-label': 'Waiting for you' }, h('h2', {}, 'Waiting for you'), empty, table);
}

function timeLeft(iso) {
  const ms = new Date(iso) - Date.now();
  if (ms <= 0) return 'none (the lease has expired)';
  const m = Math.floor(ms / 60000);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min`;
}

// Saves the draft to the server as the assessor works (debounced); a
// conflict (another device saved meanwhile) takes the server's version
// number and saves this screen's state over it: the person typing now wins.
function draftSaver(reviewId, statusEl) {
  let version = 0;
  let timer = null;
  let local = false;
  let latest = null;
  let saving = false;
  const key = `accord.draft.${reviewId}`;
  async function flush() {
    timer = null;
    if (saving) {
      timer = setTimeout(flush, 300);
      return;
    }
    const draft = latest;
    if (local) {
      localStorage.setItem(key, JSON.stringify(draft));
      put(statusEl, 'Draft kept in this browser');
      return;
    }
    saving = true;
    try {
      const r = await api('PUT', `/v1/reviews/${reviewId}/draft`, { draft, version });
      version = r.version;
      put(statusEl, `Draft saved at ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      if (e.code === 'draft_conflict') {
        version = (e.detail && e.detail.version) || version;
        try {
          const cur = await get(`/v1/reviews/${reviewId}/draft`);
          version = cur.version;
        } catch (e2) { /* retried below */ }
        saving = false;
        return flush();
      }
      if (missingRoute(e)) {
        local = true;
        saving = false;
        return flush();
      }
      put(statusEl, `Draft not saved: ${e.message}`);
    }
    saving = false;
  }
  return {
    async load() {
      try {
        const d = await get(`/v1/reviews/${reviewId}/draft`);
        version = d.version;
        return d.version ? d.draft : null;
      } catch (e) {
        if (!missingRoute(e)) throw e;
        local = true;
        return JSON.parse(localStorage.getItem(key) || 'null');
      }
    },
    changed(draft) {
      latest = draft;
      put(statusEl, 'Saving draft…');
      if (timer) clearTimeout(timer);
      timer = setTimeout(flush, 600);
    },
    done() {
      if (timer) clearTimeout(timer);
      timer = null;
      localStorage.removeItem(key);
    },
  };
}

// The evidence with "Cite this moment" under each video, and the rubric.
export function workspace(rubric, artifacts, { rationale } = {}) {
  const player = evidencePlayer(artifacts);
  const form = scoringForm(rubric, { artifacts, rationale, onChange: () => api_.onChange && api_.onChange() });
  const api_ = { form, player, onChange: null };
  for (const fig of player.el.querySelectorAll('figure')) {
    const id = fig.getAttribute('data-artifact');
    const video = player.players.get(id);
    if (video) {
      const selId = uid('citefor');
      const sel = h('select', { id: selId }, rubric.criteria.map((c) => h('option', { value: c.key }, c.title)));
      const said = h('span', { class: 'hint', 'aria-live': 'polite' });
      const btn = h('button', { type: 'button' }, 'Cite this moment');
      btn.addEventListener('click', () => {
        const t = Math.floor(video.currentTime || 0);
        form.cite(sel.value, { artifact_id: id, start_s: t, end_s: null });
        put(said, `Cited ${fmtSeconds(t)} for ${criterionTitle(rubric, sel.value)}`);
      });
      fig.append(h('div', { class: 'cite' }, h('label', { for: selId }, 'Criterion to cite for'), sel, btn, said));
    } else if (artifacts.find((a) => a.id === id && (a.media_type || '').startsWith('text/plain'))) {
      // plans and reflections in plain text are shown inline, as text
      const pre = h('pre', { class: 'doc', tabindex: '0', 'aria-label': 'Text of the file' }, 'Loading…');
      fig.insertBefore(pre, fig.firstChild);
      fetch(`/v1/artifacts/${id}/content`, { headers: { Range: 'bytes=0-262143' } })
        .then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.status))))
        .then((t) => put(pre, t), () => put(pre, '(could not load the text)'));
    }
  }
  return api_;
}

async function reviewPage(id) {
  let r;
  try {
    r = await get(`/v1/reviews/${id}`);
  } catch (e) {
    if (e.status === 403 || e.status === 404) {
      page('Review not available', notice('error', 'This review is not yours any more (released, expired or scored), or it does not exist.'), h('p', {}, h('a', { href: '#/assess' }, 'Claim another review')));
      return;
    }
    throw e;
  }
  const main = page(`Review: ${r.credential.title}`);
  const rubric = r.rubric;
  const artifacts = r.submission.artifacts;
  const lease = h('span', { class: 'lease' });
  const leaseOut = h('div', { 'aria-live': 'polite' });
  const draftStatus = h('span', { class: 'hint', role: 'status' });
  const scored = r.status !== 'active';
  let expires = r.lease_expires_at;
  const tick = () => put(lease, `Time left: ${timeLeft(expires)}`);
  const timer = setInterval(() => (lease.isConnected ? tick() : clearInterval(timer)), 15000);
  tick();
  const extend = h('button', { type: 'button' }, 'Extend time');
  extend.addEventListener('click', async () => {
    try {
      const x = await post(`/v1/reviews/${id}/extend`);
      expires = x.lease_expires_at;
      tick();
      put(leaseOut, notice('info', `Lease extended${x.extensions_left !== undefined ? `; ${x.extensions_left} extension(s) left` : ''}.`));
      if (x.extensions_left === 0) extend.disabled = true;
    } catch (e) {
      if (e.code === 'extend_limit') extend.disabled = true;
      showError(leaseOut, e);
    }
  });
  const release = h('button', { type: 'button' }, 'Release');
  release.addEventListener('click', async () => {
    try {
      await post(`/v1/reviews/${id}/release`);
      saver.done();
      go('/assess');
    } catch (e) {
      showError(leaseOut, e);
    }
  });
  append(main, h('div', { class: 'bar' },
    h('span', {}, `Attempt ${r.submission.attempt} · ${r.credential.stakes === 'high' ? 'high stakes' : 'low stakes'}`),
    scored ? null : [lease, extend, release]), leaseOut);

  if (r.submission.previous_result) {
    append(main, h('details', { class: 'card' }, h('summary', {}, 'Result of the previous attempt'),
      resultView(r.submission.previous_result, rubric, [], null)));
  }
  if (r.adjudication) {
    append(main, h('section', { class: 'card', 'aria-label': 'Scores to adjudicate' }, h('h2', {}, 'Scores to adjudicate'),
      r.adjudication.score_sets.map((set, i) => h('div', {}, h('h3', {}, `Scorer ${i + 1}`),
        h('ul', {}, set.scores.map((s) => h('li', {}, `${criterionTitle(rubric, s.criterion)}: ${levelLabel(rubric, s.criterion, s.level)}${s.comment ? ' — ' + s.comment : ''}`))),
        set.feedback ? h('p', {}, `Feedback: ${set.feedback}`) : null))));
  }
  const ws = workspace(rubric, artifacts);
  const feedback = h('textarea', { id: 'feedback', rows: '5' });
  const out = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'button', class: 'primary' }, 'Submit scores');
  const saver = draftSaver(id, draftStatus);
  const draftOf = () => ({ scores: ws.form.value(), feedback: feedback.value });
  ws.onChange = () => saver.changed(draftOf());
  feedback.addEventListener('input', ws.onChange);

  append(main, h('h2', {}, 'Evidence'), ws.player.el,
    h('h2', {}, 'Rubric'), ws.form.el,
    h('div', { class: 'field' }, h('label', { for: 'feedback' }, 'Feedback'),
      h('span', { class: 'hint', id: 'feedback-hint' }, 'What the earner should keep doing and what to change. They will read this.'), feedback),
    h('div', { class: 'actions' }, submit, draftStatus), out);
  feedback.setAttribute('aria-describedby', 'feedback-hint');

  if (scored) {
    if (r.scores) ws.form.set(r.scores);
    for (const el of main.querySelectorAll('input, textarea, select')) el.disabled = true;
    submit.remove();
    put(out, notice('info', 'This review is finished.'));
    return;
  }
  const draft = await saver.load();
  if (draft) {
    ws.form.set(draft.scores);
    feedback.value = draft.feedback || '';
    put(draftStatus, 'Draft restored');
  }
  submit.addEventListener('click', async () => {
    const missing = ws.form.missing();
    if (missing.length) {
      put(out, notice('error', `Choose a level for: ${missing.join(', ')}.`));
      return;
    }
    submit.disabled = true;
    try {
      const res = await post(`/v1/reviews/${id}/scores`, { scores: ws.form.value(), feedback: feedback.value });
      saver.done();
      clearInterval(timer);
      for (const el of main.querySelectorAll('input, textarea, select, .bar button')) el.disabled = true;
      put(out, notice('success', `Scores submitted. Verdict: ${res.verdict === 'pass' ? 'Pass' : 'Resubmit'}.`),
        h('p', {}, h('a', { href: '#/assess' }, 'Claim the next review')));
      lease.remove();
    } catch (e) {
      showError(out, e);
      submit.disabled = false;
    }
  });
}

async function myReviewsPage() {
  const main = page('My reviews');
  for (const [status, title] of [['active', 'Active'], ['past', 'Past']]) {
    append(main, h('h2', {}, title));
    let reviews;
    try {
      ({ reviews } = await get(`/v1/me/reviews?status=${status}`));
    } catch (e) {
      append(main, notice('error', missingRoute(e) ? 'This server cannot list your reviews yet.' : e.message));
      continue;
    }
    if (!reviews.length) {
      append(main, h('p', {}, status === 'active' ? 'You hold no review right now.' : 'No finished reviews yet.'));
      continue;
    }
    append(main, h('table', {}, h('caption', { class: 'sr-only' }, `${title} reviews`),
      h('thead', {}, h('tr', {}, ['Credential', 'Kind', 'Attempt', status === 'active' ? 'Lease ends' : 'Scored', 'Verdict'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, reviews.map((r) => h('tr', {},
        h('td', {}, status === 'active' ? h('a', { href: `#/reviews/${r.id}` }, r.credential.title) : r.credential.title),
        h('td', {}, r.kind), h('td', {}, String(r.attempt ?? '')),
        h('td', {}, fmtTime(status === 'active' ? r.lease_expires_at : r.scored_at || r.claimed_at)),
        h('td', {}, r.verdict || (r.status === 'released' ? 'released' : '')))))));
  }
}

// ---------------------------------------------------------------------------
// Calibration

async function myRubrics() {
  const { credentials } = await get('/v1/credentials');
  const ids = [...new Set(credentials.map((c) => c.rubric_id))];
  const rubrics = [];
  for (const id of ids) {
    try {
      rubrics.push(await rubricById(id));
    } catch (e) { /* not readable: skip */ }
  }
  return rubrics;
}

async function calibrationPage() {
  const main = page('Calibration');
  append(main, h('p', {}, 'Score a few anchor recordings the experts have scored. You see their scores and rationales when you finish.'));
  const rubrics = await myRubrics();
  const sel = h('select', { id: 'cal-rubric' }, rubrics.map((r) => h('option', { value: r.id }, r.title)));
  const purpose = h('select', { id: 'cal-purpose' }, h('option', { value: 'qualification' }, 'Qualification'), h('option', { value: 'practice' }, 'Practice'));
  const out = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'button', class: 'primary' }, 'Start a calibration session');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const s = await post('/v1/calibration/sessions', { rubric_id: sel.value, purpose: purpose.value });
      sessionStorage.setItem('accord.cal.last', s.id);
      return go(`/calibration/${s.id}`);
    } catch (e) {
      if (e.code === 'session_open' && e.detail && e.detail.session_id) return go(`/calibration/${e.detail.session_id}`);
      showError(out, e);
    }
    btn.disabled = false;
  });
  append(main, h('div', { class: 'card' },
    h('div', { class: 'field' }, h('label', { for: 'cal-rubric' }, 'Rubric'), sel),
    h('div', { class: 'field' }, h('label', { for: 'cal-purpose' }, 'Kind of session'), purpose), btn, out));
  const last = sessionStorage.getItem('accord.cal.last');
  if (last) append(main, h('p', {}, h('a', { href: `#/calibration/${last}` }, 'Back to your last session')));
}

function calibrationResult(result, rubric) {
  const t = result.thresholds || {};
  return h('section', { class: 'card', 'aria-label': 'Calibration result' },
    h('p', { class: `verdict v-${result.qualified ? 'pass' : 'resubmit'}` }, result.qualified ? 'You qualified.' : 'Not qualified this time.'),
    h('table', {}, h('caption', {}, 'Agreement with the experts'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Measure'), h('th', { scope: 'col' }, 'You'), h('th', { scope: 'col' }, 'Needed'))),
      h('tbody', {},
        h('tr', {}, h('th', { scope: 'row' }, 'Exact agreement'), h('td', {}, fmtPct(result.exact)), h('td', {}, fmtPct(t.exact_min))),
        h('tr', {}, h('th', { scope: 'row' }, 'Within one level'), h('td', {}, fmtPct(result.adjacent)), h('td', {}, fmtPct(t.adjacent_min))),
        h('tr', {}, h('th', { scope: 'row' }, 'Same verdict'), h('td', {}, fmtPct(result.verdict_agreement)), h('td', {}, fmtPct(t.verdict_min))))),
    (result.items || []).map((it, i) => h('div', { class: 'item-result' }, h('h3', {}, `Recording ${i + 1}`),
      h('table', {}, h('caption', { class: 'sr-only' }, `Your scores and the experts' on recording ${i + 1}`),
        h('thead', {}, h('tr', {}, ['Criterion', 'You', 'Experts', 'Why'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', {}, rubric.criteria.map((c) => {
          const mine = (it.scores || []).find((s) => s.criterion === c.key);
          const master = ((it.master && it.master.scores) || []).find((s) => s.criterion === c.key);
          return h('tr', {}, h('th', { scope: 'row' }, c.title),
            h('td', {}, mine ? levelLabel(rubric, c.key, mine.level) : ''),
            h('td', {}, master ? levelLabel(rubric, c.key, master.level) : ''),
            h('td', {}, master && master.rationale ? master.rationale : ''));
        }))),
      it.master && it.master.feedback ? h('p', {}, `Experts' feedback: ${it.master.feedback}`) : null)));
}

async function calibrationSessionPage(id) {
  const s = await get(`/v1/calibration/sessions/${id}`);
  const rubric = s.rubric || (await rubricById(s.rubric_id));
  const main = page(`Calibration: ${rubric.title}`);
  if (s.status !== 'open') {
    if (s.result) append(main, calibrationResult(s.result, rubric));
    else append(main, h('p', {}, `This session is ${s.status}.`));
    return;
  }
  const items = [...s.items].sort((a, b) => a.position - b.position);
  const item = items.find((i) => !i.scored);
  append(main, h('p', {}, `${s.purpose === 'practice' ? 'Practice' : 'Qualification'} session · recording ${items.indexOf(item) + 1} of ${items.length}`));
  const ws = workspace(rubric, item.artifacts);
  const feedback = h('textarea', { id: 'feedback', rows: '4' });
  const out = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'button', class: 'primary' }, 'Submit scores');
  append(main, h('h2', {}, 'Evidence'), ws.player.el, h('h2', {}, 'Rubric'), ws.form.el,
    h('div', { class: 'field' }, h('label', { for: 'feedback' }, 'Feedback'), feedback), h('div', { class: 'actions' }, submit), out);
  submit.addEventListener('click', async () => {
    const missing = ws.form.missing();
    if (missing.length) return put(out, notice('error', `Choose a level for: ${missing.join(', ')}.`));
    submit.disabled = true;
    try {
      const res = await post(`/v1/calibration/sessions/${id}/items/${item.id}/scores`, { scores: ws.form.value(), feedback: feedback.value });
      if (res.status === 'completed') {
        const m = page(`Calibration: ${rubric.title}`);
        m.append(calibrationResult(res.result, rubric));
      } else if (res.master) {
        put(out, notice('info', 'Scored. The experts scored it like this:'),
          h('ul', {}, res.master.scores.map((x) => h('li', {}, `${criterionTitle(rubric, x.criterion)}: ${levelLabel(rubric, x.criterion, x.level)}${x.rationale ? ' — ' + x.rationale : ''}`))),
          h('button', { type: 'button', onclick: () => calibrationSessionPage(id) }, 'Next recording'));
      } else calibrationSessionPage(id);
    } catch (e) {
      showError(out, e);
      submit.disabled = false;
    }
  });
}

async function qualificationsPage() {
  const main = page('My qualifications');
  const { qualifications, uncalibrated } = await get('/v1/me/qualifications');
  if (uncalibrated && uncalibrated.length)
    append(main, h('h2', {}, 'Not calibrated yet'), h('ul', {}, uncalibrated.map((u) => h('li', {},
      `${u.rubric.title} (for ${u.credentials.map((c) => c.title).join(', ')}): `, h('a', { href: '#/calibration' }, 'take a calibration session')))));
  if (!qualifications.length) {
    append(main, h('p', {}, 'You have no qualification yet. ', h('a', { href: '#/calibration' }, 'Take a calibration session')));
    return;
  }
  const rows = [];
  for (const q of qualifications) {
    let title = q.rubric ? q.rubric.title : q.rubric_id;
    if (!q.rubric) try { title = (await rubricById(q.rubric_id)).title; } catch (e) { /* keep the id */ }
    const w = q.window || {};
    const t = q.thresholds || {};
    rows.push(h('tr', {}, h('th', { scope: 'row' }, title),
      h('td', {}, q.status === 'qualified' ? 'Qualified' : 'Needs recalibration'),
      h('td', {}, `${w.items ?? 0}${t.min_items ? ` (judged from ${t.min_items})` : ''}`),
      h('td', {}, `${fmtPct(w.exact)}${t.exact_min !== undefined ? ` (needs ${fmtPct(t.exact_min)})` : ''}`),
      h('td', {}, `${fmtPct(w.adjacent)}${t.adjacent_min !== undefined ? ` (needs ${fmtPct(t.adjacent_min)})` : ''}`),
      h('td', {}, `${fmtPct(w.verdict_agreement)}${t.verdict_min !== undefined ? ` (needs ${fmtPct(t.verdict_min)})` : ''}`),
      h('td', {}, q.reason || '')));
  }
  append(main, h('p', {}, 'The numbers are your agreement with the experts over your most recent checked items (the rolling window).'),
    h('table', {}, h('caption', { class: 'sr-only' }, 'Your qualifications'),
      h('thead', {}, h('tr', {}, ['Rubric', 'Status', 'Items', 'Exact', 'Within one', 'Verdict', 'Why'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows)));
}

export function routes(route) {
  route('/assess', ['assessor', 'expert', 'lead'], claimPage);
  route('/reviews/:id', ['assessor', 'expert', 'lead'], reviewPage);
  route('/my-reviews', ['assessor', 'expert'], myReviewsPage);
  route('/calibration', ['assessor', 'expert'], calibrationPage);
  route('/calibration/:id', ['assessor', 'expert', 'lead'], calibrationSessionPage);
  route('/qualifications', ['assessor', 'expert'], qualificationsPage);
}
