// SPDX-License-Identifier: Apache-2.0
// settings.js - a person's own settings: who they are signed in as, and which
// notification emails they get (GET/PUT /v1/me/notifications); and the page
// the "stop these emails" link in every mail opens (/unsubscribe#token),
// which needs no sign-in.
import { api, get } from './api.js';
import { append, h, notice, put, uid } from './dom.js';
import { hasRole, page, showError, state } from './app.js';
import { EVENTS } from './events.js';

const ROLE_OF = { earner: ['earner'], assessor: ['assessor', 'expert'], lead: ['lead'] };

export async function settingsPage() {
  const main = page('Settings');
  append(main, h('section', { 'aria-labelledby': 'acct-heading', class: 'card' },
    h('h2', { id: 'acct-heading' }, 'Your account'),
    h('p', {}, `Signed in as ${state.me.name} (${state.me.email}).`),
    h('p', {}, `Your roles: ${state.me.roles.join(', ')}.`)));
  let prefs;
  try {
    prefs = await get('/v1/me/notifications');
  } catch (e) {
    append(main, notice('error', e.message));
    return;
  }
  const known = new Set(prefs.types);
  const mine = EVENTS.filter((e) => e.role && known.has(e.type) && hasRole(...ROLE_OF[e.role]));
  const email = h('input', { type: 'checkbox', id: uid('mail'), checked: prefs.email });
  const boxes = mine.map(({ type, mine: label }) => {
    const box = h('input', { type: 'checkbox', id: uid('ev'), checked: !prefs.muted.includes(type) });
    return { type, box, wrap: h('div', { class: 'check block' }, box, h('label', { for: box.id }, label)) };
  });
  const which = h('fieldset', { disabled: !prefs.email }, h('legend', {}, 'Email me when'), boxes.map((b) => b.wrap));
  email.addEventListener('change', () => { which.disabled = !email.checked; });
  const out = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save notification settings');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'notif-heading' },
    h('h2', { id: 'notif-heading' }, 'Notifications'),
    h('div', { class: 'check block' }, email, h('label', { for: email.id }, 'Send me email from accord')),
    h('p', { class: 'hint' }, `Mail goes to ${state.me.email}. Mails never contain anyone else’s evidence or scores.`),
    boxes.length ? which : null, save, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      // types not shown here (other roles') keep their setting
      const shown = new Set(boxes.map((b) => b.type));
      const muted = [...prefs.muted.filter((t) => !shown.has(t)), ...boxes.filter((b) => !b.box.checked).map((b) => b.type)];
      prefs = await api('PUT', '/v1/me/notifications', { email: email.checked, muted });
      put(out, notice('success', prefs.email ? 'Saved. You get the emails ticked above.' : 'Saved. accord sends you no email.'));
    } catch (e) {
      showError(out, e);
    } finally {
      save.disabled = false;
    }
  });
  append(main, form);
}

// /unsubscribe#<token>: opened from a mail, maybe on a phone, maybe signed out.
export async function unsubscribePage() {
  const token = location.hash.slice(1);
  const main = page('Stop emails from accord');
  const link = `/v1/unsubscribe?token=${encodeURIComponent(token)}`;
  let st;
  try {
    st = await get(link);
  } catch (e) {
    append(main, notice('error', e.status === 404 ? 'This link is not valid. Sign in to accord and choose your notifications under Settings.' : e.message),
      h('p', {}, h('a', { href: '/#/settings' }, 'Go to Settings')));
    return;
  }
  history.replaceState(null, '', '/unsubscribe'); // the token leaves the address bar
  const out = h('div', { 'aria-live': 'polite' });
  const settings = h('p', {}, 'To choose which emails you get instead, sign in and open ', h('a', { href: '/#/settings' }, 'Settings'), '.');
  if (!st.email) {
    append(main, notice('info', 'accord already sends you no email.'), settings);
    return;
  }
  const stop = h('button', { type: 'button', class: 'primary' }, 'Stop all emails');
  stop.addEventListener('click', async () => {
    stop.disabled = true;
    try {
      await api('POST', link);
      stop.remove();
      put(out, notice('success', 'Done: accord sends you no more email. You can turn it back on under Settings.'));
    } catch (e) {
      showError(out, e);
      stop.disabled = false;
    }
  });
  append(main, h('p', {}, 'accord emails you about your reviews, results and badges. You can stop all of them here.'), stop, out, settings);
}

export function routes(route) {
  route('/settings', null, settingsPage);
}
