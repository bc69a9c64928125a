// SPDX-License-Identifier: Apache-2.0
// app.js - the shell: who is signed in, the navigation for their roles, and
// the router (the URL fragment names the page: #/credentials/<id>).
import { api, ApiError, hooks, setCsrf } from './api.js';
import { append, h, notice, put } from './dom.js';
import * as earner from './earner.js';
import * as assessor from './assessor.js';
import * as lead from './lead.js';
import * as people from './people.js';
import * as notices from './notices.js';
import * as liveUpdates from './live.js';
import * as settings from './settings.js';

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
  if (hasRole('admin')) return '/people';
  return '/settings';
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
  if (hasRole('lead', 'admin')) links.push(['/people', 'People'], ['/notices', 'Notices']);
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
      h('a', { href: '#/settings', 'aria-current': here === '/settings' ? 'page' : null }, 'Settings'),
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
  liveUpdates.stop();
  drawShell();
  go('/sign-in');
}

// Why a sign-in with the district's account came back without signing the
// person in (server/handlers_oidc.c and 011_oidc.sql name the codes). Only
// the code travels in the link: the words are the page's own.
const SSO_ERRORS = {
  not_invited: 'Your account at that provider is not linked to anyone in accord. Ask your program lead for an invitation, then use its link.',
  email_taken: 'An accord account with your email already exists. Sign in with your password, or ask an administrator to link your district account.',
  email_not_verified: 'The provider did not confirm your email address. Ask your program lead for an invitation, then use its link.',
  identity_conflict: 'Your accord account is linked to a different account at that provider. Sign in with that one, or ask an administrator.',
  tenant_not_allowed: 'Your organisation may not sign in to this accord. Ask your program lead.',
  user_disabled: 'Your accord account is disabled. Ask your program lead or an administrator.',
  provider_refused: 'The sign-in was cancelled or refused at the provider. Try again.',
  invalid_id_token: 'The provider’s answer could not be verified, so you were not signed in. Try again; if it keeps happening, tell an administrator.',
  provider_unreachable: 'The sign-in service could not be reached. Try again in a few minutes, or sign in with your password.',
  provider_error: 'The sign-in service answered with an error. Try again in a few minutes, or sign in with your password.',
  busy: 'accord is busy right now. Try again in a minute.',
  unavailable: 'accord is busy right now. Try again in a minute.',
  not_found: 'That sign-in option is no longer available. Choose another.',
};

function ssoErrorText(code, requestId) {
  const text = SSO_ERRORS[code] ||
    'Signing in with your district account did not work. Start again, or sign in with your password.';
  return requestId ? `${text} (Reference: ${requestId})` : text;
}

// Where to go after a sign-in that leaves the page (single sign-on): the
// fragment never reaches the server, so the page keeps it for its return.
const AFTER_SIGN_IN = 'accord.afterSignIn';

function providerLinks(providers, invitation) {
  return providers.map((p) => {
    let href = `/v1/auth/oidc/${encodeURIComponent(p.id)}/start?return_to=%2F`;
    if (invitation) href += `&invitation=${encodeURIComponent(invitation)}`;
    const a = h('a', { class: 'button sso', href }, `Sign in with ${p.name}`);
    a.addEventListener('click', () => {
      const here = location.hash.replace(/^#/, '');
      if (!invitation && here && !here.startsWith('/sign-in')) sessionStorage.setItem(AFTER_SIGN_IN, here);
    });
    return h('li', {}, a);
  });
}

async function signInProviders() {
  try {
    return (await api('GET', '/v1/auth/oidc/providers')).providers;
  } catch (e) {
    return []; // the password form still works
  }
}

function signInPage(message) {
  const query = new URLSearchParams((location.hash.split('?')[1]) || '');
  const ssoError = query.get('sso_error');
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const out = h('div', { 'aria-live': 'polite' },
    ssoError ? notice('error', ssoErrorText(ssoError, query.get('request_id')))
             : message ? notice('info', message) : null);
  const button = h('button', { type: 'submit' }, 'Sign in');
  const sso = h('section', { class: 'sso-list', 'aria-labelledby': 'sso-heading', hidden: true },
    h('h2', { id: 'sso-heading' }, 'With your school or district account'),
    h('ul', { class: 'plain' }));
  // the heading only tells the two ways apart; without providers there is one
  const passwordHeading = h('h2', { hidden: true }, 'Or with your accord account');
  const form = h('form', { class: 'card narrow' }, passwordHeading,
    h('div', { class: 'field' }, h('label', { for: 'signin-email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'signin-password' }, 'Password'), password),
    button);
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
  page('Sign in', out, sso, form);
  signInProviders().then((providers) => {
    if (!providers.length || !sso.isConnected) return;
    sso.querySelector('ul').replaceChildren(...providerLinks(providers));
    sso.hidden = false;
    passwordHeading.hidden = false;
  });
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
  // Or take the invitation with the district's account, whatever email it knows you by.
  const providers = await signInProviders();
  if (providers.length)
    append(main, h('section', { class: 'sso-list', 'aria-labelledby': 'invite-sso-heading' },
      h('h2', { id: 'invite-sso-heading' }, 'Use your school or district account'),
      h('p', {}, 'Instead of a password, you can sign in with the account you already have:'),
      h('ul', { class: 'plain' }, providerLinks(providers, secret))),
      h('h2', {}, 'Or choose a password'));
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

async function loadMe() {
  try {
    state.me = await api('GET', '/v1/me');
    if (state.me.csrf_token) setCsrf(state.me.csrf_token);
  } catch (e) {
    if (e.status !== 401) throw e;
    state.me = null;
  }
  if (state.me) liveUpdates.start();
  drawShell();
}

let rendering = 0;
export async function render() {
  const n = ++rendering;
  renderedHash = location.hash;
  liveUpdates.clearPage();
  if (location.pathname === '/invite') return invitePage();
  if (location.pathname === '/unsubscribe') return settings.unsubscribePage();
  const path = location.hash.replace(/^#/, '') || '';
  const signingIn = path === '/sign-in' || path.startsWith('/sign-in?');
  if (signingIn || !state.me) {
    if (state.me) return go(home());
    return signInPage();
  }
  const after = sessionStorage.getItem(AFTER_SIGN_IN);
  if (after) {
    sessionStorage.removeItem(AFTER_SIGN_IN);
    if (after.startsWith('/') && (path === '' || path === '/')) return go(after);
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

route('/account', null, settings.settingsPage);
settings.routes(route);
earner.routes(route);
assessor.routes(route);
lead.routes(route);
people.routes(route);
notices.routes(route);

hooks.sessionEnded = () => {
  if (!state.me) return;
  state.me = null;
  setCsrf(null);
  liveUpdates.stop();
  drawShell();
  signInPage('Your session has ended. Sign in again to go on.');
};

window.addEventListener('hashchange', render);
(async () => {
  if (location.pathname !== '/invite' && location.pathname !== '/unsubscribe') {
    try {
      await loadMe();
    } catch (e) {
      page('accord is not available', notice('error', e.message));
      return;
    }
  }
  render();
})();
