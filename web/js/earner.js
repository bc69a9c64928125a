// SPDX-License-Identifier: Apache-2.0
// earner.js - the earner's pages: catalogue, credential (with its rubric),
// applying with resumable uploads, submissions and results, badges.
import { ApiError, get, post } from './api.js';
import { append, fmtBytes, fmtSeconds, fmtTime, h, notice, put, uid } from './dom.js';
import { go, page, render, showError, state } from './app.js';
import { announce, onLive } from './live.js';
import * as tus from './tus.js';
import { rubricView, criterionTitle, levelLabel } from './rubric.js';

const KIND_NAMES = { video: ['video', 'videos'], plan: ['plan', 'plans'], reflection: ['reflection', 'reflections'], other: ['other file', 'other files'] };
export const STATUS = { queued: 'Queued', in_review: 'In review', returned: 'Returned for resubmission', passed: 'Passed' };

export function kindCount(kind, n) {
  const [one, many] = KIND_NAMES[kind] || [kind, kind];
  return `${n} ${n === 1 ? one : many}`;
}

export function evidenceText(evidence) {
  return evidence.map((e) => `at least ${kindCount(e.kind, e.min)}`).join(', ');
}

// The rubric of a credential: in the credential (web API), else by id.
export async function credentialWithRubric(id) {
  const cred = await get(`/v1/credentials/${id}`);
  if (!cred.rubric) {
    try {
      cred.rubric = await get(`/v1/rubrics/${cred.rubric_id}`);
    } catch (e) {
      cred.rubric = null;
    }
  }
  return cred;
}

async function catalogue() {
  const main = page('Credentials');
  const [{ credentials }, { submissions }] = await Promise.all([get('/v1/credentials'), get('/v1/submissions')]);
  const mine = latestByCredential(submissions);
  if (!credentials.length) {
    append(main, h('p', {}, 'No credentials are offered yet.'));
    return;
  }
  append(main, h('ul', { class: 'cards' }, credentials.map((c) => {
    const s = mine.get(c.id);
    return h('li', { class: 'card' },
      h('h2', {}, h('a', { href: `#/credentials/${c.id}` }, c.title)),
      c.description ? h('p', {}, c.description) : null,
      h('p', { class: 'meta' }, `Evidence: ${evidenceText(c.evidence)}. ${c.stakes === 'high' ? 'High stakes: scored by experts.' : ''}`),
      s ? h('p', {}, h('span', { class: `badge st-${s.status}` }, STATUS[s.status] || s.status)) : null);
  })));
}

function latestByCredential(submissions) {
  const m = new Map();
  for (const s of submissions) {
    const prev = m.get(s.credential_id);
    if (!prev || s.attempt > prev.attempt) m.set(s.credential_id, s);
  }
  return m;
}

async function credentialPage(id) {
  const cred = await credentialWithRubric(id);
  const main = page(cred.title);
  const { submissions } = await get('/v1/submissions');
  const mine = latestByCredential(submissions).get(id);
  append(main, 
    cred.description ? h('p', { class: 'lead' }, cred.description) : null,
    h('h2', {}, 'Evidence you will upload'),
    h('ul', {}, cred.evidence.map((e) => h('li', {}, `At least ${kindCount(e.kind, e.min)}`))),
    h('p', {}, `To pass, every criterion must reach at least “${cred.rubric ? levelLabel(cred.rubric, null, cred.pass_rule.min_level_each) : cred.pass_rule.min_level_each}”. You may try ${cred.max_attempts} times.`),
  );
  if (mine && mine.status !== 'returned')
    append(main, h('p', {}, `Your submission is ${(STATUS[mine.status] || mine.status).toLowerCase()}. `, h('a', { href: `#/submissions/${mine.id}` }, 'See your submission')));
  else if (mine)
    append(main, h('p', {}, 'Your submission was returned with feedback. ', h('a', { href: `#/submissions/${mine.id}` }, 'Read the feedback and resubmit')));
  else append(main, h('p', {}, h('a', { class: 'button', href: `#/apply/${id}` }, 'Apply for this credential')));
  append(main, h('h2', {}, 'Rubric'));
  if (cred.rubric) append(main, rubricView(cred.rubric));
  else append(main, notice('info', 'The rubric of this credential cannot be shown to you yet.'));
}

// ---------------------------------------------------------------------------
// Applying: the evidence checklist, uploads, "Submit for review".

function applyKey(credId) {
  return `accord.apply.${state.me.id}.${credId}`;
}

async function applyPage(credId, fromId) {
  const cred = await credentialWithRubric(credId);
  let previous = null;
  if (fromId) previous = await get(`/v1/submissions/${fromId}`);
  const main = page(previous ? `Resubmit: ${cred.title}` : `Apply: ${cred.title}`);
  const saved = JSON.parse(localStorage.getItem(applyKey(credId)) || 'null');
  // items: {key, kind, name, size, artifactId?, sha256?, carried?, file?, progress, state}
  let items = [];
  if (saved && saved.fromId === (fromId || null)) items = saved.items.map((i) => ({ ...i, file: null }));
  else if (previous) items = previous.artifacts.map((a) => ({ key: a.id, kind: a.kind, name: a.filename || a.kind, size: a.bytes, artifactId: a.id, sha256: a.sha256, carried: true }));
  const running = new Map();

  const save = () => localStorage.setItem(applyKey(credId), JSON.stringify({ fromId: fromId || null, items: items.map(({ file, ...rest }) => rest) }));
  const checklist = h('ul', { class: 'checklist', 'aria-label': 'Evidence checklist' });
  const warnings = h('div', { 'aria-live': 'polite' });
  const list = h('ul', { class: 'uploads', 'aria-label': 'Your files' });
  const submitOut = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'button', class: 'primary' }, 'Submit for review');

  const kinds = [...new Set([...cred.evidence.map((e) => e.kind), 'other'])];
  const pickers = kinds.map((kind) => {
    const input = h('input', { type: 'file', multiple: true, id: uid('pick'), accept: kind === 'video' ? 'video/*' : null });
    input.addEventListener('change', () => {
      for (const f of input.files) addFile(kind, f);
      input.value = '';
    });
    return h('div', { class: 'field' }, h('label', { for: input.id }, `Add ${KIND_NAMES[kind][0]}`), input);
  });

  function met() {
    return cred.evidence.map((e) => ({ ...e, have: items.filter((i) => i.kind === e.kind && i.artifactId).length }));
  }

  function draw() {
    put(checklist, met().map((e) => h('li', { class: e.have >= e.min ? 'ok' : 'todo' },
      h('span', { 'aria-hidden': 'true' }, e.have >= e.min ? '✓ ' : '○ '),
      `${kindCount(e.kind, e.min)}: ${e.have} uploaded`)));
    put(list, items.map((it) => {
      const bar = h('progress', { max: String(it.size || 1), value: String(it.artifactId ? it.size : (it.progress || 0)), 'aria-label': `Upload of ${it.name}` });
      let status;
      if (it.artifactId) status = it.carried ? 'From your previous attempt' : 'Uploaded';
      else if (it.error) status = it.error;
      else if (!it.file) status = 'Paused: choose this file again to resume';
      else status = `${it.state || 'Waiting'} · ${Math.floor(((it.progress || 0) / (it.size || 1)) * 100)}%`;
      return h('li', { class: 'upload' },
        h('span', { class: 'name' }, it.name), h('span', { class: 'meta' }, `${KIND_NAMES[it.kind][0]} · ${fmtBytes(it.size)}`),
        bar, h('span', { class: 'state' }, status),
        h('button', { type: 'button', class: 'link', onclick: () => removeItem(it) }, `Remove ${it.name}`));
    }));
    const ready = met().every((e) => e.have >= e.min) && items.every((i) => i.artifactId);
    submit.disabled = !ready;
  }

  function removeItem(it) {
    const r = running.get(it.key);
    if (r) r.cancel();
    running.delete(it.key);
    items = items.filter((i) => i !== it);
    save();
    draw();
    checkDuplicates();
  }

  function checkDuplicates() {
    const seen = new Map();
    const dup = [];
    for (const it of items) {
      const k = it.sha256 || null;
      if (!k) continue;
      if (seen.has(k)) dup.push([seen.get(k), it]);
      else seen.set(k, it);
    }
    put(warnings, dup.map(([a, b]) => notice('warning', `“${b.name}” has the same content as “${a.name}” (same SHA-256). Remove one of them unless you meant to add it twice.`)));
  }

  function addFile(kind, file) {
    const key = tus.fingerprint(file, kind, state.me.id);
    let it = items.find((i) => i.key === key);
    if (it && it.artifactId) {
      put(warnings, notice('warning', `“${file.name}” is already in your list.`));
      return;
    }
    const same = items.find((i) => !i.carried && i.name === file.name && i.size === file.size && i.key !== key);
    if (!it) {
      it = { key, kind, name: file.name, size: file.size, progress: 0 };
      items.push(it);
    }
    it.file = file;
    it.error = null;
    save();
    draw();
    if (same) warnings.append(notice('warning', `“${file.name}” looks like a file you added already.`));
    start(it);
  }

  function start(it) {
    const job = tus.upload(it.file, {
      kind: it.kind,
      userId: state.me.id,
      onProgress: (sent) => { it.progress = sent; drawOne(it); },
      onState: (s) => { it.state = s; drawOne(it); },
    });
    running.set(it.key, job);
    job.promise.then(async (artifactId) => {
      running.delete(it.key);
      it.artifactId = artifactId;
      try {
        const a = await get(`/v1/artifacts/${artifactId}`);
        it.sha256 = a.sha256;
      } catch (e) {
        // the checklist does not depend on it
      }
      save();
      draw();
      checkDuplicates();
    }, (e) => {
      running.delete(it.key);
      if (!e.aborted) {
        it.error = `Upload failed: ${e.message}`;
        draw();
      }
    });
  }

  let pending = 0;
  function drawOne() {
    // progress events come fast: redraw at most once per frame
    if (pending) return;
    pending = requestAnimationFrame(() => { pending = 0; draw(); });
  }

  submit.addEventListener('click', async () => {
    submit.disabled = true;
    const ids = items.map((i) => i.artifactId);
    try {
      const s = previous
        ? await post(`/v1/submissions/${previous.id}/resubmit`, { artifact_ids: ids })
        : await post('/v1/submissions', { credential_id: credId, artifact_ids: ids });
      localStorage.removeItem(applyKey(credId));
      go(`/submissions/${s.id}`);
    } catch (e) {
      showError(submitOut, e);
      submit.disabled = false;
    }
  });

  append(main, 
    h('h2', {}, 'Evidence checklist'), checklist,
    previous ? h('p', {}, 'Your evidence from the previous attempt is carried forward. Remove a piece to replace it, or add new ones.') : null,
    h('h2', {}, 'Add your files'), h('div', { class: 'pickers' }, pickers), warnings, list,
    h('div', { class: 'actions' }, submit), submitOut);
  draw();
  checkDuplicates();
}

// ---------------------------------------------------------------------------
// Submissions and results

async function submissionsPage() {
  const main = page('My submissions');
  const [{ submissions }, { credentials }] = await Promise.all([get('/v1/submissions'), get('/v1/credentials')]);
  const titles = new Map(credentials.map((c) => [c.id, c.title]));
  if (!submissions.length) {
    append(main, h('p', {}, 'You have not submitted anything yet. ', h('a', { href: '#/catalogue' }, 'Browse the credentials')));
    return;
  }
  append(main, h('table', {},
    h('caption', { class: 'sr-only' }, 'Your submissions'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Credential'), h('th', { scope: 'col' }, 'Attempt'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Submitted'))),
    h('tbody', {}, submissions.map((s) => h('tr', {},
      h('td', {}, h('a', { href: `#/submissions/${s.id}` }, (s.credential && s.credential.title) || titles.get(s.credential_id) || 'Credential')),
      h('td', {}, String(s.attempt)),
      h('td', {}, h('span', { class: `badge st-${s.status}` }, STATUS[s.status] || s.status)),
      h('td', {}, fmtTime(s.created_at)))))));
}

// A video player with "play from" buttons for cited moments.
export function evidencePlayer(artifacts) {
  const players = new Map();
  const figures = artifacts.map((a) => {
    const src = `/v1/artifacts/${a.id}/content`;
    let media;
    if (a.url) media = h('p', {}, 'External evidence: ', h('a', { href: a.url, rel: 'noopener noreferrer', target: '_blank' }, a.url));
    else if ((a.media_type || '').startsWith('video/') || a.kind === 'video') {
      media = h('video', { controls: true, preload: 'metadata', src, 'aria-label': `Video ${a.filename || ''}` });
      players.set(a.id, media);
    } else if ((a.media_type || '').startsWith('image/')) media = h('img', { src, alt: a.filename || a.kind });
    else media = h('p', {}, h('a', { href: src, download: a.filename || '' }, `Download ${a.filename || a.kind}`), ` (${fmtBytes(a.bytes)})`);
    return h('figure', { class: 'evidence', 'data-artifact': a.id }, media, h('figcaption', {}, `${a.filename || a.kind} (${a.kind})`));
  });
  function play(artifactId, seconds) {
    const v = players.get(artifactId);
    if (!v) return;
    v.scrollIntoView({ block: 'center' });
    const seek = () => {
      v.currentTime = seconds;
      v.play().catch(() => {});
    };
    if (v.readyState >= 1) seek();
    else v.addEventListener('loadedmetadata', seek, { once: true });
    v.focus();
  }
  return { el: h('div', { class: 'evidence-list' }, figures), players, play };
}

export function citedMoment(ev, artifacts, play) {
  const a = artifacts.find((x) => x.id === ev.artifact_id);
  const name = a ? a.filename || a.kind : 'evidence';
  const range = ev.start_s !== null && ev.start_s !== undefined
    ? `${fmtSeconds(ev.start_s)}${ev.end_s ? '–' + fmtSeconds(ev.end_s) : ''}` : null;
  if (range && play)
    return h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => play(ev.artifact_id, ev.start_s) }, `Play ${name} from ${range}`), ev.note ? ` — ${ev.note}` : null);
  return h('li', {}, `${name}${range ? ' at ' + range : ''}`, ev.note ? ` — ${ev.note}` : null);
}

export function resultView(result, rubric, artifacts, play) {
  return h('section', { class: 'result', 'aria-label': 'Result' },
    h('p', { class: `verdict v-${result.verdict}` }, result.verdict === 'pass' ? 'Verdict: Pass' : 'Verdict: Resubmit'),
    result.override ? h('p', {}, `A program lead changed the verdict from “${result.override.previous_verdict}” to “${result.override.verdict}” on ${fmtTime(result.override.at)}.`,
      result.override.feedback ? ` ${result.override.feedback}` : null) : null,
    h('ol', { class: 'scores' }, result.scores.map((s) => h('li', { class: 'score' },
      h('h3', {}, s.criterion_title || criterionTitle(rubric, s.criterion)),
      h('p', {}, 'Level reached: ', h('strong', {}, s.level_label || levelLabel(rubric, s.criterion, s.level))),
      s.comment ? h('p', { class: 'comment' }, s.comment) : null,
      s.evidence && s.evidence.length ? h('div', {}, h('p', {}, 'Cited moments:'), h('ul', {}, s.evidence.map((ev) => citedMoment(ev, artifacts, play)))) : null))),
    result.feedback ? h('div', { class: 'feedback' }, h('h3', {}, 'Feedback'), h('p', {}, result.feedback)) : null);
}

async function submissionPage(id) {
  let s;
  try {
    s = await get(`/v1/submissions/${id}`);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
      page('Submission not available', notice('error', 'This submission does not exist or is not yours to see.'));
      return;
    }
    throw e;
  }
  const cred = await credentialWithRubric(s.credential_id);
  const main = page(`${cred.title}: attempt ${s.attempt}`);
  const badge = h('span', { class: `badge st-${s.status}` }, STATUS[s.status] || s.status);
  append(main, h('p', {}, 'Status: ', badge, ` · submitted ${fmtTime(s.created_at)}`));
  const player = evidencePlayer(s.artifacts);
  const waiting = h('p', {});
  const waitText = (st) => st === 'queued' ? 'Your evidence is waiting for an assessor.'
    : st === 'in_review' ? 'An assessor is reviewing your evidence. You will see the result here.' : null;
  if (s.result) {
    append(main, h('h2', {}, 'Result'), resultView(s.result, cred.rubric, s.artifacts, player.play));
  } else if (waitText(s.status)) append(main, put(waiting, waitText(s.status)));
  // the status follows the live stream (live.js); a result is shown on request, not under the reader
  let shown = s.status;
  onLive((name, d) => {
    if (name !== 'submission' || d.id !== s.id || d.status === shown) return;
    shown = d.status;
    badge.className = `badge st-${d.status}`;
    badge.textContent = STATUS[d.status] || d.status;
    const text = waitText(d.status);
    if (text) put(waiting, text);
    else if (!s.result) put(waiting, 'Your result is ready. ', h('button', { type: 'button', class: 'link', onclick: () => render() }, 'Show your result'));
    if (!waiting.isConnected && !s.result) main.insertBefore(waiting, badge.parentNode.nextSibling);
    announce(`Your submission is now ${(STATUS[d.status] || d.status).toLowerCase()}.`);
  });
  if (s.status === 'returned' && state.me.id === s.earner_id) {
    const latest = (await get('/v1/submissions')).submissions.filter((x) => x.credential_id === s.credential_id).every((x) => x.attempt <= s.attempt);
    if (latest && s.attempt < cred.max_attempts)
      append(main, h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', onclick: () => go(`/resubmit/${s.credential_id}/${s.id}`) }, 'Resubmit')));
    else if (latest) append(main, notice('info', 'You have used every attempt for this credential.'));
  }
  if (s.status === 'passed') append(main, h('p', {}, 'You earned this credential. ', h('a', { href: '#/badges' }, 'See your badges')));
  append(main, h('h2', {}, 'Your evidence'), player.el);
}

async function badgesPage() {
  const main = page('My badges');
  let awards;
  try {
    ({ awards } = await get('/v1/me/awards'));
  } catch (e) {
    if (e.code === 'not_configured') {
      append(main, notice('info', 'This server does not issue badges (it has no public URL set).'));
      return;
    }
    throw e;
  }
  if (!awards.length) {
    append(main, h('p', {}, 'No badges yet. Pass a credential to earn one.'));
    return;
  }
  append(main, h('ul', { class: 'cards' }, awards.map((a) => h('li', { class: 'card' },
    h('h2', {}, a.title),
    h('p', {}, `${a.status === 'valid' ? 'Valid' : a.status === 'revoked' ? 'Revoked' : 'Expired'} · issued ${fmtTime(a.issued_at)}${a.valid_until ? ' · valid until ' + fmtTime(a.valid_until) : ''}`),
    a.revocation_reason ? h('p', {}, `Reason: ${a.revocation_reason}`) : null,
    h('p', {}, h('a', { href: a.share_url }, `Public page of ${a.title}`), ' · ',
      h('a', { href: a.download.jwt, download: '' }, 'Download (VC-JWT)'))))));
}

export function routes(route) {
  route('/catalogue', ['earner'], catalogue);
  route('/credentials/:id', null, credentialPage);
  route('/apply/:id', ['earner'], (id) => applyPage(id, null));
  route('/resubmit/:cred/:sub', ['earner'], (c, s) => applyPage(c, s));
  route('/submissions', ['earner'], submissionsPage);
  route('/submissions/:id', null, submissionPage);
  route('/badges', ['earner'], badgesPage);
}
