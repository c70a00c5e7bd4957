// System: health and version, bus consumers and the dead-letter queue, users and roles,
// API tokens (the secret is shown once).
import { h, fmtNum, timeEl } from '../dom.js';
import { get, post, patch, del, qs } from '../api.js';
import { can, navigate, panel, errorBox, attempt, confirmDialog, copyButton, badge, session, notAvailable } from '../ui.js';

const ROLES = ['viewer', 'agent', 'admin', 'owner'];

async function healthPanel() {
  const [ready, spec] = await Promise.all([
    fetch('/health/ready').then((r) => r.ok).catch(() => false),
    get('/api/openapi.json').catch(() => null),
  ]);
  const version = spec && spec.info ? spec.info.version : '?';
  const routes = spec && spec.paths ? Object.keys(spec.paths).length : 0;
  const card = (label, ...value) => h('div', { class: 'panel card' }, h('div', { class: 'muted small' }, label), h('div', { class: 'card-value' }, value));
  return h('div', { class: 'cards', id: 'server-info' },
    card('Health', ready ? badge('ready', 'resolved') : badge('not ready', 'regressed')),
    card('Version', h('span', { id: 'version' }, version)),
    card('API', `${routes} paths · `, h('a', { href: '/api/openapi.json' }, 'openapi.json')),
    card('Metrics', h('a', { href: '/metrics' }, '/metrics')),
    card('Signed in as', `${session.me.name || session.me.email} (${session.me.role})`));
}

async function busPanel() {
  const st = await get('/api/bus');
  const rows = (st.consumers || []).map((c) => h('tr', { dataset: { consumer: c.name } },
    h('td', { class: 'mono' }, c.name),
    h('td', { class: 'mono small muted' }, Array.isArray(c.filter) ? c.filter.join(', ') : String(c.filter || '')),
    h('td', { class: 'num' }, c.lag > 0 ? badge(fmtNum(c.lag), 'unresolved') : '0'),
    h('td', { class: 'num' }, fmtNum(c.pending)),
    h('td', { class: 'num' }, c.dead_letters > 0 ? badge(fmtNum(c.dead_letters), 'regressed') : '0'),
    h('td', { class: 'num' }, fmtNum(c.delivered))));
  return panel('Event bus', [
    h('div', { class: 'row muted small' }, `head seq ${fmtNum(st.head_seq)} · log ${fmtNum(st.log_len)} events · ${fmtNum(st.dlq_len)} dead letters`),
    h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'consumers' },
      h('thead', null, h('tr', null, h('th', null, 'Consumer'), h('th', null, 'Filter'), h('th', { class: 'num' }, 'Lag'),
        h('th', { class: 'num' }, 'Pending'), h('th', { class: 'num' }, 'Dead'), h('th', { class: 'num' }, 'Delivered'))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { class: 'muted', colspan: 6 }, 'No consumers registered.'))))),
  ]);
}

async function dlqPanel() {
  const r = await get('/api/bus/dlq' + qs({ limit: 100 }));
  const letters = r.dead_letters || [];
  const body = h('div');
  if (!letters.length) body.append(h('div', { class: 'muted small', id: 'dlq-empty' }, 'The dead-letter queue is empty.'));
  for (const d of letters) {
    const ev = d.event || {};
    const attempts = Array.isArray(d.attempts) ? d.attempts : [];
    body.append(h('details', { class: 'frame', dataset: { consumer: d.consumer, seq: d.seq } },
      h('summary', null, h('span', { class: 'fn' }, ev.subject || '?'), h('span', { class: 'muted' }, `→ ${d.consumer} · seq ${d.seq} · `),
        timeEl(d.dead_ms), h('span', { class: 'file' }, d.error || '')),
      h('div', { class: 'vars stack' },
        h('pre', { class: 'snippet' }, JSON.stringify(ev.payload ?? ev, null, 2)),
        attempts.length ? h('ul', { class: 'history' }, attempts.map((a) => h('li', null, timeEl(a.at_ms), ' ', a.error || ''))) : null,
        can('admin') ? h('div', { class: 'row' },
          h('button', { class: 'btn small', type: 'button', onclick: async () => {
            if (await attempt(() => post(`/api/bus/dlq/${encodeURIComponent(d.consumer)}/${d.seq}/replay`), 'Sent back to the consumer')) navigate(location.hash);
          } }, 'Replay'),
          h('button', { class: 'btn small danger', type: 'button', onclick: async () => {
            if (!(await confirmDialog('Purge this dead letter? It cannot be replayed afterwards.', 'Purge'))) return;
            if (await attempt(() => del('/api/bus/dlq' + qs({ consumer: d.consumer, seq: d.seq })), 'Purged')) navigate(location.hash);
          } }, 'Purge')) : null)));
  }
  const purgeAll = can('admin') && letters.length
    ? h('button', { class: 'btn small danger', type: 'button', onclick: async () => {
      if (!(await confirmDialog('Purge every dead letter?', 'Purge all'))) return;
      if (await attempt(() => del('/api/bus/dlq'), 'Dead-letter queue purged')) navigate(location.hash);
    } }, 'Purge all') : null;
  return panel('Dead-letter queue', body, purgeAll);
}

async function usersPanel() {
  let users;
  try {
    users = ((await get('/api/users')) || {}).users || [];
  } catch (e) {
    return panel('Users', e.status === 404 ? notAvailable('User management') : errorBox(e));
  }
  const rows = users.map((u) => {
    const role = can('owner') && u.id !== session.me.id
      ? (() => {
        const sel = h('select', { 'aria-label': `Role of ${u.email}` }, ROLES.map((r) => h('option', { value: r }, r)));
        sel.value = u.role;
        sel.addEventListener('change', () => attempt(() => patch(`/api/users/${u.id}`, { role: sel.value }), 'Role changed'));
        return sel;
      })()
      : badge(u.role, 'role');
    return h('tr', null, h('td', null, u.name || ''), h('td', { class: 'mono small' }, u.email), h('td', null, role),
      h('td', null, can('owner') && u.id !== session.me.id ? h('button', { class: 'btn small danger', type: 'button', onclick: async () => {
        if (!(await confirmDialog(`Remove ${u.email}? Their sessions and API tokens stop working.`, 'Remove'))) return;
        if (await attempt(() => del(`/api/users/${u.id}`), 'User removed')) navigate(location.hash);
      } }, 'Remove') : null));
  });
  let add = null;
  const linkBox = h('div', { id: 'new-user-link' });
  const usersBody = h('tbody', null, rows);
  if (can('owner')) {
    const email = h('input', { type: 'email', placeholder: 'email', 'aria-label': 'Email', required: true });
    const name = h('input', { type: 'text', placeholder: 'name', 'aria-label': 'Name' });
    const role = h('select', { 'aria-label': 'Role' }, ROLES.map((r) => h('option', { value: r }, r)));
    const pw = h('input', { type: 'password', placeholder: 'password (optional)', 'aria-label': 'Password', autocomplete: 'new-password' });
    add = h('form', { class: 'row', id: 'user-form' }, email, name, role, pw, h('button', { class: 'btn', type: 'submit' }, 'Add user'));
    add.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { email: email.value.trim(), name: name.value.trim(), role: role.value };
      if (pw.value) body.password = pw.value;
      const r = await attempt(() => post('/api/users', body), 'User added');
      if (!r) return;
      if (r.set_password_url) {
        // Shown once: the new user signs in only after setting a password through this link.
        const code = h('code', { id: 'set-password-url' }, r.set_password_url);
        linkBox.replaceChildren(h('div', { class: 'secret stack' },
          h('strong', null, `Send this link to ${r.user ? r.user.email : 'the new user'}: it lets them set a password and sign in. It is shown only once.`),
          h('div', { class: 'dsn' }, code, copyButton(() => r.set_password_url, code)),
          h('button', { class: 'btn small', type: 'button', onclick: () => navigate(location.hash) }, 'Done')));
        if (r.user) usersBody.append(h('tr', null, h('td', null, r.user.name || ''), h('td', { class: 'mono small' }, r.user.email), h('td', null, badge(r.user.role, 'role')), h('td')));
        email.value = ''; name.value = '';
        return;
      }
      navigate(location.hash);
    });
  }
  return panel('Users and roles', [
    h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'users' },
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Email'), h('th', null, 'Role'), h('th'))),
      usersBody)),
    add ? h('h3', null, 'Add a user') : null, linkBox, add,
  ]);
}

async function tokensPanel() {
  let tokens;
  try {
    tokens = ((await get('/api/tokens')) || {}).tokens || [];
  } catch (e) {
    return panel('API tokens', e.status === 404 ? notAvailable('API tokens') : errorBox(e));
  }
  const shown = h('div');
  const label = h('input', { type: 'text', id: 'token-label', placeholder: 'label, e.g. ci-deploy', 'aria-label': 'Token label' });
  const form = h('form', { class: 'row', id: 'token-form' }, label, h('button', { class: 'btn', type: 'submit' }, 'Create token'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await attempt(() => post('/api/tokens', { name: label.value.trim() || 'dashboard', label: label.value.trim() }));
    if (!r) return;
    const secret = r.secret || r.token_secret || (typeof r.token === 'string' ? r.token : '');
    const code = h('code', { id: 'new-token' }, secret);
    shown.replaceChildren(h('div', { class: 'secret stack' },
      h('strong', null, 'Copy this token now: it is shown only once.'),
      h('div', { class: 'dsn' }, code, copyButton(() => secret, code)),
      h('div', { class: 'muted small' }, 'Use it as ', h('code', null, 'Authorization: Bearer <token>'), '.')));
    label.value = '';
    // The new token joins the list at once (newest first).
    if (r.token && typeof r.token === 'object') {
      const none = tbody.querySelector('tr.none');
      if (none) none.remove();
      tbody.prepend(tokenRow(r.token));
    }
  });
  const tokenRow = (t) => h('tr', { dataset: { token: t.id } },
    h('td', null, t.label || t.name || ''), h('td', { class: 'mono small muted' }, t.prefix || t.id || ''),
    h('td', null, timeEl(t.created_ms)), h('td', null, t.last_used_ms ? timeEl(t.last_used_ms) : 'never'),
    h('td', null, h('button', { class: 'btn small danger', type: 'button', onclick: async () => {
      if (!(await confirmDialog('Revoke this token? Scripts using it will be refused.', 'Revoke'))) return;
      if (await attempt(() => del(`/api/tokens/${encodeURIComponent(t.id)}`), 'Token revoked')) navigate(location.hash);
    } }, 'Revoke')));
  const rows = tokens.map(tokenRow);
  const tbody = h('tbody', null, rows.length ? rows : h('tr', { class: 'none' }, h('td', { class: 'muted', colspan: 5 }, 'No tokens yet.')));
  return panel('API tokens', [
    shown, form,
    h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'tokens' },
      h('thead', null, h('tr', null, h('th', null, 'Label'), h('th', null, 'ID'), h('th', null, 'Created'), h('th', null, 'Last used'), h('th'))),
      tbody)),
  ]);
}

export async function view(ctx) {
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'System'),
    h('div', { class: 'muted' }, 'Health, the event bus, users and API tokens.'))));
  const safe = (p) => p.catch((e) => panel('Error', errorBox(e)));
  const [server, bus, dlq, tokens, users] = await Promise.all([
    safe(healthPanel()), safe(busPanel()), safe(dlqPanel()), safe(tokensPanel()),
    can('admin') ? safe(usersPanel()) : Promise.resolve(null),
  ]);
  if (!ctx.alive()) return;
  root.append(h('div', { class: 'stack' }, server, bus, dlq, users, tokens));
}
