// SPDX-License-Identifier: Apache-2.0
// live.js - live updates (GET /v1/events, server/API.md "Live updates"): one
// EventSource per signed-in tab, on the session cookie (a GET: no CSRF token
// needed). The browser reconnects by itself and sends Last-Event-ID, so the
// server replays what changed meanwhile.
//
// The latest state per key is kept (queue counts per credential, own
// submissions, routing per credential), so a page drawn later starts from it.
// Pages register a listener with onLive(); listeners of the previous page are
// dropped at every page change (clearPage, called by the router).
// Changes are told to screen readers through one polite live region, and not
// at every tick: queue counts are summarised at most every ANNOUNCE_MS.
import { h } from './dom.js';

const ANNOUNCE_MS = 4000;
const NAMES = ['queue', 'submission', 'routing', 'ready', 'resync', 'end'];

export const live = { queue: new Map(), subs: new Map(), routing: new Map(), ready: false };
let source = null;
let listeners = [];
let region = null;
let pendingQueue = new Map();
let announceTimer = null;

function dispatch(name, data) {
  if (name === 'queue') live.queue.set(data.credential_id, data);
  else if (name === 'submission') live.subs.set(data.id, data);
  else if (name === 'routing') live.routing.set(data.credential_id, data);
  else if (name === 'ready') live.ready = true;
  for (const fn of listeners) {
    try {
      fn(name, data);
    } catch (e) {
      // one page's listener must not stop the others
    }
  }
}

export function start() {
  if (source || typeof EventSource === 'undefined') return;
  source = new EventSource('/v1/events');
  for (const name of NAMES)
    source.addEventListener(name, (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (name === 'end' && data && data.reason !== 'shutdown') stop(); // signed out or disabled
      dispatch(name, data);
    });
}

export function stop() {
  if (source) source.close();
  source = null;
  live.queue.clear();
  live.subs.clear();
  live.routing.clear();
  live.ready = false;
}

// fn(name, data) for every event while the current page is shown.
export function onLive(fn) {
  listeners.push(fn);
}

export function clearPage() {
  listeners = [];
  pendingQueue = new Map();
}

// The polite region is in index.html from the start: a region added together
// with its first text is not reliably read.
function say(text) {
  if (!region) region = document.getElementById('live-announcer');
  if (!region) {
    region = h('div', { class: 'sr-only', 'aria-live': 'polite', 'aria-atomic': 'true', id: 'live-announcer' });
    document.body.appendChild(region);
  }
  region.textContent = text;
}

// Said at once (a change of the page's main subject).
export function announce(text) {
  say(text);
}

// Queue counts change often: the latest per credential, summarised at most every ANNOUNCE_MS.
export function announceQueue(q) {
  pendingQueue.set(q.credential_id, q);
  if (announceTimer) return;
  announceTimer = setTimeout(() => {
    announceTimer = null;
    const parts = [...pendingQueue.values()].map((x) =>
      `${x.waiting} ${x.waiting === 1 ? 'review is' : 'reviews are'} waiting for ${x.title}`);
    pendingQueue = new Map();
    if (parts.length) say(parts.join('. ') + '.');
  }, ANNOUNCE_MS);
}
