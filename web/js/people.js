// SPDX-License-Identifier: Apache-2.0
// people.js - the people a lead or an admin looks after (server/API.md,
// "Users and tokens", "Invitations", "Organisations"): invite someone and
// hand them the one-time link, withdraw an invitation, find a person, send a
// new-password link, and (admins) disable or enable an account, change
// roles, keep the list of organisations.
import { get, post, del, api } from './api.js';
import { append, field, fmtTime, h, notice, put, scrollTable, uid } from './dom.js';
import { hasRole, page, showError, state } from './app.js';

const ROLE_NAMES = { earner: 'Earner', assessor: 'Peer assessor', expert: 'Expert assessor', lead: 'Program lead', admin: 'Administrator' };
// who may give which roles (the API refuses the rest; the form does not offer them)
function grantableRoles() {
  return hasRole('admin') ? ['earner', 'assessor', 'expert', 'lead', 'admin'] : ['earner', 'assessor'];
}
const roleText = (roles) => roles.map((r) => ROLE_NAMES[r] || r).join(', ');

// The one-time link, shown once: a read-only field to copy from, and a copy button.
function linkCard(person, url, mailed, kind) {
  const linkInput = h('input', { type: 'text', readonly: true, value: url, class: 'link-field' });
  const copied = h('span', { role: 'status', class: 'meta' });
  const copy = h('button', { type: 'button' }, 'Copy link');
  copy.addEventListener('click', async () => {
    linkInput.select();
    try {
      await navigator.clipboard.writeText(url);
      copied.textContent = 'Copied.';
    } catch (e) {
      copied.textContent = 'Select the link and copy it (Ctrl+C or ⌘C).';
    }
  });
  const what = kind === 'password' ? `A new password link for ${person.name}` : `The invitation for ${person.name}`;
  return h('div', { class: 'card' },
    notice('success', `${what} is ready.`),
    field(`Link for ${person.name}`, linkInput,
      `It works once, for 7 days. ${mailed ? `It was also emailed to ${person.email}.` : `Send it to ${person.email} yourself: this server does not send email.`} Only its owner should open it.`),
    h('div', { class: 'actions' }, copy, copied));
}

async function organisations() {
  try {
    return (await get('/v1/organisations')).organisations;
  } catch (e) {
    return [];
  }
}

function orgSelect(orgs, label, hint) {
  const sel = h('select', {}, h('option', { value: '' }, 'No organisation'),
    orgs.map((o) => h('option', { value: o.id }, o.name)));
  return { sel, wrap: field(label, sel, hint) };
}

function inviteForm(orgs, onDone) {
  const name = h('input', { type: 'text', required: true, maxlength: '320', autocomplete: 'off' });
  const email = h('input', { type: 'email', required: true, maxlength: '320', autocomplete: 'off' });
  const roleBoxes = grantableRoles().map((r) => {
    const box = h('input', { type: 'checkbox', value: r, id: uid('role'), checked: r === 'earner' });
    return { r, box, wrap: h('div', { class: 'check' }, box, h('label', { for: box.id }, ROLE_NAMES[r])) };
  });
  const org = orgSelect(orgs, 'Organisation', 'Their school or district. Earners and peer assessors need one: peers never review their own colleagues.');
  const out = h('div', { 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Create invitation');
  const form = h('form', { class: 'card narrow' },
    field('Name', name), field('Email', email),
    h('fieldset', {}, h('legend', {}, 'Roles'), roleBoxes.map((x) => x.wrap)),
    org.wrap, button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const roles = roleBoxes.filter((x) => x.box.checked).map((x) => x.r);
    if (!roles.length) {
      put(out, notice('error', 'Choose at least one role.'));
      roleBoxes[0].box.focus();
      return;
    }
    button.disabled = true;
    try {
      const body = { email: email.value.trim(), name: name.value.trim(), roles };
      if (org.sel.value) body.org_id = org.sel.value;
      const inv = await post('/v1/invitations', body);
      put(out, linkCard(inv, inv.url, inv.mailed, 'invitation'));
      form.reset();
      roleBoxes.forEach((x) => { x.box.checked = x.r === 'earner'; });
      onDone();
    } catch (e) {
      const text = {
        email_taken: 'Someone with this email already has an account with other roles. Find them under People below.',
        user_disabled: 'This person’s account is disabled. An administrator can enable it.',
      }[e.code];
      showError(out, text ? new Error(text) : e);
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { 'aria-labelledby': 'invite-heading' }, h('h2', { id: 'invite-heading' }, 'Invite someone'), form, out);
}

async function pendingSection() {
  const section = h('section', { 'aria-labelledby': 'pending-heading' }, h('h2', { id: 'pending-heading' }, 'Invitations waiting'));
  const body = h('div', {});
  const out = h('div', { 'aria-live': 'polite' });
  append(section, out, body);
  async function load() {
    let list;
    try {
      list = await get('/v1/invitations?status=pending');
    } catch (e) {
      showError(body, e);
      return;
    }
    if (!list.invitations.length) {
      put(body, h('p', {}, 'No invitation is waiting to be accepted.'));
      return;
    }
    put(body, scrollTable('Invitations not yet accepted', ['Name', 'Email', 'Roles', 'Organisation', 'Link valid until', ''],
      list.invitations.map((inv) => {
        const withdraw = h('button', { type: 'button', 'aria-label': `Withdraw the invitation for ${inv.name}` }, 'Withdraw');
        withdraw.addEventListener('click', async () => {
          withdraw.disabled = true;
          try {
            await del(`/v1/invitations/${inv.id}`);
            put(out, notice('info', `The invitation for ${inv.name} was withdrawn; its link no longer works.`));
            load();
          } catch (e) {
            showError(out, e.code === 'invitation_used' ? new Error(`${inv.name} accepted the invitation meanwhile.`) : e);
            withdraw.disabled = false;
          }
        });
        return h('tr', {}, h('td', {}, inv.name), h('td', {}, inv.email), h('td', {}, roleText(inv.roles)),
          h('td', {}, inv.org || '—'), h('td', {}, fmtTime(inv.expires_at)), h('td', {}, withdraw));
      })),
      list.has_more ? h('p', { class: 'meta' }, 'Only the 50 newest are shown.') : null);
  }
  return { section, load };
}

function personActions(p, out, reload) {
  const actions = [];
  if (!p.disabled) {
    const link = h('button', { type: 'button', 'aria-label': `New password link for ${p.name}` }, 'New password link');
    link.addEventListener('click', async () => {
      link.disabled = true;
      try {
        const inv = await post('/v1/invitations', { email: p.email });
        put(out, linkCard(p, inv.url, inv.mailed, 'password'));
      } catch (e) {
        showError(out, e);
      } finally {
        link.disabled = false;
      }
    });
    actions.push(link);
  }
  if (hasRole('admin') && p.id !== state.me.id) {
    const verb = p.disabled ? 'Enable' : 'Disable';
    const toggle = h('button', { type: 'button', 'aria-label': `${verb} ${p.name}` }, verb);
    toggle.addEventListener('click', async () => {
      if (!p.disabled && !window.confirm(`Disable ${p.name}? They are signed out everywhere at once and their API tokens stop working.`)) return;
      toggle.disabled = true;
      try {
        await api('PATCH', `/v1/users/${p.id}`, { disabled: !p.disabled });
        put(out, notice('info', p.disabled ? `${p.name} can sign in again (with a new password link).` : `${p.name} is disabled and signed out everywhere.`));
        reload();
      } catch (e) {
        showError(out, e);
        toggle.disabled = false;
      }
    });
    actions.push(toggle);
  }
  return h('div', { class: 'row-actions' }, actions);
}

// Admins change roles in place: one checkbox group per person, saved on demand.
function rolesCell(p, out, reload) {
  if (!hasRole('admin') || p.id === state.me.id) return roleText(p.roles);
  const boxes = Object.keys(ROLE_NAMES).map((r) => {
    const box = h('input', { type: 'checkbox', id: uid('r'), value: r, checked: p.roles.includes(r) });
    return { r, box, wrap: h('span', { class: 'check' }, box, h('label', { for: box.id }, ROLE_NAMES[r])) };
  });
  const save = h('button', { type: 'button', 'aria-label': `Save roles of ${p.name}` }, 'Save roles');
  save.addEventListener('click', async () => {
    const roles = boxes.filter((x) => x.box.checked).map((x) => x.r);
    save.disabled = true;
    try {
      await api('PATCH', `/v1/users/${p.id}`, { roles });
      put(out, notice('info', `${p.name} now has the roles: ${roleText(roles)} (from their next page).`));
      reload();
    } catch (e) {
      showError(out, e);
      save.disabled = false;
    }
  });
  // folded away: the table stays readable (on a phone too) until someone edits
  return h('div', {}, roleText(p.roles),
    h('details', { class: 'roles-edit' }, h('summary', {}, h('span', { class: 'sr-only' }, `${p.name}: `), 'change roles'),
      h('fieldset', {}, h('legend', {}, `Roles of ${p.name}`), boxes.map((x) => x.wrap), save)));
}

function peopleSection() {
  const q = h('input', { type: 'search', maxlength: '200' });
  const role = h('select', {}, h('option', { value: '' }, 'Any role'),
    (hasRole('admin') ? Object.keys(ROLE_NAMES) : ['earner', 'assessor']).map((r) => h('option', { value: r }, ROLE_NAMES[r])));
  const search = h('button', { type: 'submit' }, 'Search');
  const out = h('div', { 'aria-live': 'polite' });
  const body = h('div', {});
  let pageNo = 1;
  const more = h('button', { type: 'button', hidden: true }, 'Show more people');
  const form = h('form', { class: 'card', role: 'search', 'aria-label': 'Find people' },
    h('div', { class: 'pickers' }, field('Name or email', q), field('Role', role)), search);
  async function load(append_) {
    const params = new URLSearchParams();
    if (q.value.trim()) params.set('q', q.value.trim());
    if (role.value) params.set('role', role.value);
    params.set('page', String(pageNo));
    let list;
    try {
      list = await get(`/v1/users?${params}`);
    } catch (e) {
      showError(body, e);
      return;
    }
    const rows = list.users.map((p) => h('tr', {},
      h('th', { scope: 'row' }, p.name), h('td', {}, p.email), h('td', {}, rolesCell(p, out, reset)),
      h('td', {}, p.org || '—'),
      h('td', {}, p.disabled ? 'Disabled' : p.has_password ? 'Active' : 'Active (no password yet)'),
      h('td', {}, personActions(p, out, reset))));
    const tbody = body.querySelector('tbody');
    if (append_ && tbody) append(tbody, rows);
    else if (!rows.length) put(body, h('p', {}, 'Nobody matches.'));
    else put(body, scrollTable('People', ['Name', 'Email', 'Roles', 'Organisation', 'Account', ''], rows));
    more.hidden = !list.has_more;
  }
  function reset() {
    pageNo = 1;
    return load(false);
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    reset();
  });
  more.addEventListener('click', () => {
    pageNo += 1;
    load(true);
  });
  const section = h('section', { 'aria-labelledby': 'people-heading' },
    h('h2', { id: 'people-heading' }, hasRole('admin') ? 'Everyone' : 'Earners and assessors'), form, out, body, more);
  return { section, load: reset };
}

function organisationsSection(orgs) {
  const name = h('input', { type: 'text', required: true, maxlength: '200' });
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('ul', {}, orgs.map((o) => h('li', {}, `${o.name} · ${o.members} ${o.members === 1 ? 'person' : 'people'}`)));
  const form = h('form', { class: 'card narrow' }, field('New organisation', name, 'A school or a district, as people know it.'),
    h('button', { type: 'submit' }, 'Add organisation'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const o = await post('/v1/organisations', { name: name.value.trim() });
      append(list, h('li', {}, `${o.name} · 0 people`));
      put(out, notice('success', `${o.name} was added. It is now offered when you invite someone.`));
      form.reset();
    } catch (e) {
      showError(out, e.code === 'organisation_exists' ? new Error('An organisation with this name exists already.') : e);
    }
  });
  return h('section', { 'aria-labelledby': 'orgs-heading' }, h('h2', { id: 'orgs-heading' }, 'Organisations'),
    orgs.length ? list : h('p', {}, 'No organisations yet.'), form, out);
}

async function peoplePage() {
  const main = page('People');
  const orgs = await organisations();
  const pending = await pendingSection();
  const people = peopleSection();
  append(main, inviteForm(orgs, () => { pending.load(); }), pending.section, people.section);
  if (hasRole('admin')) append(main, organisationsSection(orgs));
  await Promise.all([pending.load(), people.load()]);
}

export function routes(route) {
  route('/people', ['lead', 'admin'], peoplePage);
}
