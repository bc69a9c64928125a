// SPDX-License-Identifier: Apache-2.0
// app.js - the shell: who is signed in, the navigation for their roles, and
// the router (the URL fragment names the page: #/credentials/<id>).
import { api, ApiError, hooks, setCsrf } from './api.js';
import { append, h, notice, put } from './dom.js';
import * as earner from './earner.js';
import * as assessor from './assessor.js';
import * as lead from './lead.js';

export const state = { me: null };

const routes = [];
function route(pattern, roles, render) {
  // "/submissions/:id" -> /^\/submissions\/([^/]+)$/
  const re = new RegExp('^' + pattern.replace(/:[a-z]+/g, '([^/]+)') + '$');
  routes.push({ re, roles, render });
}

export function hasRole(...roles) {
  return !!state.me && roles.some((r) => state.me.roles.includes(r));
}

export function go(path) {
  if (location.hash === '#' + path) render();
  else location.hash = path;
}

function home() {
  if (hasRole('earner')) return '/catalogue';
  if (hasRole('assessor', 'expert')) return '/assess';
  if (hasRole('lead')) return '/lead';
  return '/account';
}

// A page whose data came back after the person moved on: it must not
// replace the page they are on now.
class Stale extends Error {}
let renderedHash = null;

// Every page: a heading that takes focus (screen readers announce the new page).
export function page(title, ...kids) {
  if (renderedHash !== null && location.hash !== renderedHash) throw new Stale('moved on');
  const main = document.getElementById('main');
  document.title = `${title} · accord`;
  const h1 = h('h1', { tabindex: '-1' }, title);
  put(main, h1, ...kids);
  h1.focus();
  return main;
}

export function showError(where, err) {
  const text = err instanceof ApiError ? err.message : String(err && err.message ? err.message : err);
  where.replaceChildren(notice('error', text));
}

function navLinks() {
  const links = [];
  if (hasRole('earner'))
    links.push(['/catalogue', 'Credentials'], ['/submissions', 'My submissions'], ['/badges', 'My badges']);
  if (hasRole('assessor', 'expert', 'lead')) links.push(['/assess', 'Review']);
  if (hasRole('assessor', 'expert'))
    links.push(['/my-reviews', 'My reviews'], ['/calibration', 'Calibration'],
               ['/qualifications', 'My qualifications']);
  if (hasRole('lead'))
    links.push(['/lead', 'Rubrics and credentials'], ['/lead/submissions', 'Submissions'],
               ['/reports', 'Reports']);
  return links;
}

function drawShell() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  if (!state.me) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const here = location.hash.slice(1);
  put(nav, h('ul', {}, navLinks().map(([path, label]) =>
    h('li', {}, h('a', { href: '#' + path, 'aria-current': here === path ? 'page' : null }, label)))));
  put(who, h('span', { class: 'me' }, state.me.name),
      h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  try {
    await api('DELETE', '/v1/sessions/current');
  } catch (e) {
    // the session may already have ended; the page forgets it either way
  }
  state.me = null;
  setCsrf(null);
  drawShell();
  go('/sign-in');
}

function signInPage(message) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const out = h('div', { 'aria-live': 'polite' }, message ? notice('info', message) : null);
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card narrow' },
    h('div', { class: 'field' }, h('label', { for: 'signin-email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'signin-password' }, 'Password'), password),
    button, out);
  email.id = 'signin-email';
  password.id = 'signin-password';
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    try {
      const s = await api('POST', '/v1/sessions', { email: email.value, password: password.value });
      setCsrf(s.csrf_token);
      await loadMe();
      go(home());
    } catch (e) {
      showError(out, e.code === 'invalid_credentials' ? new Error('That email and password do not match an account.') : e);
      button.disabled = false;
      password.focus();
    }
  });
  page('Sign in', form);
}

// /invite#<secret>: the secret stays in the fragment (never sent in a URL).
async function invitePage() {
  const secret = location.hash.slice(1);
  const main = page('Your invitation');
  const out = h('div', { 'aria-live': 'polite' });
  let inv;
  try {
    inv = await api('POST', '/v1/invitations/open', { secret });
  } catch (e) {
    const why = {
      invitation_used: 'This invitation has already been used. Sign in instead.',
      invitation_expired: 'This invitation has expired. Ask for a new one.',
      invitation_revoked: 'This invitation was withdrawn. Ask for a new one.',
    }[e.code] || 'This invitation link is not valid.';
    append(main, notice('error', why), h('p', {}, h('a', { href: '/#/sign-in' }, 'Go to sign-in')));
    return;
  }
  const pw = h('input', { type: 'password', id: 'invite-password', autocomplete: 'new-password', required: true, minlength: '12' });
  const button = h('button', { type: 'submit' }, 'Set password');
  const form = h('form', { class: 'card narrow' },
    h('p', {}, `Welcome, ${inv.name}. ${inv.invited_by ? `${inv.invited_by} invited you` : 'You were invited'} to accord as ${inv.roles.join(', ')}.`),
    h('p', {}, 'Your email: ', h('strong', {}, inv.email)),
    h('div', { class: 'field' }, h('label', { for: 'invite-password' }, 'New password'),
      h('span', { class: 'hint', id: 'invite-password-hint' }, 'At least 12 characters. A few unusual words make a good one.'), pw),
    button, out);
  pw.setAttribute('aria-describedby', 'invite-password-hint');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    try {
      const s = await api('POST', '/v1/invitations/accept', { secret, password: pw.value });
      setCsrf(s.csrf_token);
      await loadMe();
      history.replaceState(null, '', '/#' + home()); // the secret leaves the address bar
      render();
    } catch (e) {
      showError(out, e);
      button.disabled = false;
      pw.focus();
    }
  });
  append(main, form);
}

function accountPage() {
  page('Your account', h('p', {}, `Signed in as ${state.me.name} (${state.me.email}).`),
       h('p', {}, 'Your roles: ' + state.me.roles.join(', ')));
}

async function loadMe() {
  try {
    state.me = await api('GET', '/v1/me');
    if (state.me.csrf_token) setCsrf(state.me.csrf_token);
  } catch (e) {
    if (e.status !== 401) throw e;
    state.me = null;
  }
  drawShell();
}

let rendering = 0;
export async function render() {
  const n = ++rendering;
  renderedHash = location.hash;
  if (location.pathname === '/invite') return invitePage();
  const path = location.hash.replace(/^#/, '') || '';
  if (path === '/sign-in' || !state.me) {
    if (state.me) return go(home());
    return signInPage();
  }
  drawShell();
  if (path === '' || path === '/') return go(home());
  for (const r of routes) {
    const m = path.split('?')[0].match(r.re);
    if (!m) continue;
    if (r.roles && !hasRole(...r.roles)) break;
    try {
      await r.render(...m.slice(1).map(decodeURIComponent));
    } catch (e) {
      if (!(e instanceof Stale) && n === rendering) page('Something went wrong', notice('error', e.message || String(e)));
    }
    return;
  }
  page('Page not found', h('p', {}, 'There is nothing here. '), h('a', { href: '#' + home() }, 'Go to your start page'));
}

route('/account', null, accountPage);
earner.routes(route);
assessor.routes(route);
lead.routes(route);

hooks.sessionEnded = () => {
  if (!state.me) return;
  state.me = null;
  setCsrf(null);
  drawShell();
  signInPage('Your session has ended. Sign in again to go on.');
};

window.addEventListener('hashchange', render);
(async () => {
  if (location.pathname !== '/invite') {
    try {
      await loadMe();
    } catch (e) {
      page('accord is not available', notice('error', e.message));
      return;
    }
  }
  render();
})();
