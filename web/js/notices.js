// SPDX-License-Identifier: Apache-2.0
// notices.js - the notices accord gave up on (server/API.md, "Notifications":
// GET /v1/outbox/dead, POST /v1/outbox/retry). A teacher whose "your result
// is ready" mail bounced does not know to look; the lead sees it here, fixes
// the cause (a mistyped address, the mail server, a receiver that is down)
// and sends it again. What a notice said is never shown: only what it was
// about, to whom, and how it failed.
import { get, post } from './api.js';
import { append, fmtTime, h, notice, put, scrollTable } from './dom.js';
import { page, showError } from './app.js';
import { aboutEvent as about } from './events.js';

// The people named in a page of deliveries: one look-up each (at most 50 a page).
async function names(deliveries) {
  const ids = [...new Set(deliveries.map((d) => d.user_id).filter(Boolean))];
  const found = await Promise.all(ids.map((id) => get(`/v1/users/${id}`).then((u) => [id, u.name], () => [id, null])));
  return new Map(found);
}

function recipient(d, who) {
  if (d.channel === 'webhook') return 'A webhook receiver';
  if (!d.user_id) return 'An invited person (not yet signed up)';
  return who.get(d.user_id) || 'A person you do not manage';
}

function failure(d) {
  const parts = [];
  if (d.last_status) parts.push(`answer ${d.last_status}`);
  if (d.last_error) parts.push(d.last_error);
  return parts.join(': ') || 'no answer';
}

export async function noticesPage() {
  const main = page('Notices that could not be delivered');
  const out = h('div', { 'aria-live': 'polite' });
  const body = h('div', {});
  append(main,
    h('p', {}, 'Emails and webhook calls accord gave up on after trying several times. ' +
      'Fix what stopped them (a mistyped address, the mail server, a receiver that is down), then send them again.'),
    out, body);
  let pageNo = 1;

  async function retry(what, button, doneText) {
    button.disabled = true;
    try {
      const r = await post('/v1/outbox/retry', what);
      put(out, notice('success', doneText(r.retried)));
      pageNo = 1;
      load();
    } catch (e) {
      showError(out, e);
      button.disabled = false;
    }
  }

  async function load() {
    let list;
    let who;
    try {
      list = await get(`/v1/outbox/dead?page=${pageNo}`);
      who = await names(list.deliveries);
    } catch (e) {
      showError(body, e);
      return;
    }
    if (!list.deliveries.length && pageNo === 1) {
      put(body, h('p', {}, 'Every notice was delivered.'));
      return;
    }
    const rows = list.deliveries.map((d) => {
      const label = `${about(d.type)} to ${recipient(d, who)}`;
      const again = h('button', { type: 'button', 'aria-label': `Send again: ${label}` }, 'Send again');
      again.addEventListener('click', () => retry({ ids: [d.id] }, again,
        (n) => (n ? `“${label}” goes out again.` : 'That notice was already sent again.')));
      return h('tr', {},
        h('td', {}, about(d.type)),
        h('td', {}, d.channel === 'email' ? 'Email' : 'Webhook'),
        h('td', {}, recipient(d, who)),
        h('td', {}, String(d.attempts)),
        h('td', {}, failure(d)),
        h('td', {}, fmtTime(d.created_at)),
        h('td', {}, again));
    });
    const all = h('button', { type: 'button' }, 'Send all again');
    all.addEventListener('click', () => retry({ all: true }, all,
      (n) => `${n} ${n === 1 ? 'notice goes' : 'notices go'} out again.`));
    const nav = h('div', { class: 'actions' });
    if (pageNo > 1) {
      const prev = h('button', { type: 'button' }, 'Newer');
      prev.addEventListener('click', () => { pageNo -= 1; load(); });
      nav.append(prev);
    }
    if (list.has_more) {
      const next = h('button', { type: 'button' }, 'Older');
      next.addEventListener('click', () => { pageNo += 1; load(); });
      nav.append(next);
    }
    put(body, h('div', { class: 'actions' }, all),
      scrollTable('Undelivered notices, newest first',
        ['About', 'By', 'To', 'Tries', 'How it failed', 'Queued', ''], rows),
      nav);
  }
  await load();
}

export function routes(route) {
  route('/notices', ['lead', 'admin'], noticesPage);
}
