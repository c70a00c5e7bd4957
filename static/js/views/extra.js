// Alerts and mail screens. Their APIs come from other parts and may be absent on a server:
// each screen shows "not available" on a 404 and renders whatever lists it gets generically.
import { h, timeEl } from '../dom.js';
import { get, post } from '../api.js';
import { can, panel, errorBox, attempt, notAvailable, badge } from '../ui.js';

const str = (v) => (v == null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const isTime = (k) => /_ms$/.test(k);

/** A table of objects: `columns` (keys, or `[key, fn(item)]`) or the first 7 keys seen. */
function table(items, actions, columns) {
  if (!items.length) return h('div', { class: 'muted small' }, 'None yet.');
  let cols = columns;
  if (!cols) {
    cols = [];
    for (const it of items) for (const k of Object.keys(it)) if (!cols.includes(k) && cols.length < 7) cols.push(k);
  }
  const cell = (it, c) => {
    if (Array.isArray(c)) return c[1](it);
    return isTime(c) && typeof it[c] === 'number' ? timeEl(it[c]) : str(it[c]).slice(0, 200);
  };
  const head = (c) => (Array.isArray(c) ? c[0] : c).replace(/_ms$/, '').replace(/_/g, ' ');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'tbl' },
    h('thead', null, h('tr', null, cols.map((c) => h('th', null, head(c))), actions ? h('th') : null)),
    h('tbody', null, items.map((it) => h('tr', null,
      cols.map((c) => h('td', { class: 'small' }, cell(it, c))),
      actions ? h('td', null, actions(it)) : null)))));
}

/** Fetches `path` and returns the first array in the answer (or the answer if it is one). */
async function fetchList(path) {
  const r = await get(path);
  if (Array.isArray(r)) return r;
  for (const v of Object.values(r || {})) if (Array.isArray(v)) return v;
  return [];
}

async function section(title, path, actions, columns, render) {
  try {
    const items = await fetchList(path);
    return panel(title, render ? render(items) : table(items, actions, columns));
  } catch (e) {
    return panel(title, e.status === 404 ? notAvailable(title) : errorBox(e));
  }
}

/** Templates as expandable rows: the sources are shown as text, never rendered. */
function templates(items) {
  if (!items.length) return h('div', { class: 'muted small' }, 'None yet.');
  return h('div', { id: 'templates' }, items.map((t) => h('details', { class: 'frame' },
    h('summary', null, h('span', { class: 'fn' }, t.name || ''), t.builtin ? badge('built in') : null,
      h('span', { class: 'file' }, t.description || t.subject || '')),
    h('div', { class: 'vars stack' },
      h('dl', { class: 'kv' }, h('dt', null, 'subject'), h('dd', null, t.subject || '')),
      h('h3', null, 'Text'), h('pre', { class: 'snippet' }, t.text || ''),
      t.html ? h('h3', null, 'HTML source') : null, t.html ? h('pre', { class: 'snippet' }, t.html) : null))));
}

const mailBadge = (st) => badge(String(st || ''), /sent|deliver/.test(String(st)) ? 'resolved' : /fail|dead|bounce|cancel/.test(String(st)) ? 'regressed' : 'unresolved');

/** One message with its delivery log (opened from a row). */
function messageEl(m) {
  const log = Array.isArray(m.log) ? m.log : [];
  return h('div', { class: 'stack', id: 'mail-message' },
    h('dl', { class: 'kv' },
      h('dt', null, 'subject'), h('dd', null, m.subject || ''),
      h('dt', null, 'from'), h('dd', null, m.from || ''),
      h('dt', null, 'to'), h('dd', null, (m.to || []).join(', ')),
      (m.cc || []).length ? [h('dt', null, 'cc'), h('dd', null, m.cc.join(', '))] : null,
      h('dt', null, 'status'), h('dd', null, mailBadge(m.status), m.attempts ? ` after ${m.attempts} attempt${m.attempts === 1 ? '' : 's'}` : ''),
      m.next_attempt_ms ? [h('dt', null, 'next attempt'), h('dd', null, timeEl(m.next_attempt_ms, false))] : null,
      m.last_error ? [h('dt', null, 'last error'), h('dd', null, m.last_error)] : null,
      m.template ? [h('dt', null, 'template'), h('dd', null, m.template)] : null,
      (m.attachments || []).length ? [h('dt', null, 'attachments'), h('dd', null, m.attachments.map((a) => a.filename || a.name || '').join(', '))] : null),
    h('h3', null, 'Delivery log'),
    log.length ? h('ul', { class: 'history', id: 'mail-log' }, log.map((l) => h('li', null, timeEl(l.at_ms), ' · ',
      h('strong', null, String(l.kind || '').replace(/_/g, ' ')), l.attempt ? ` (attempt ${l.attempt})` : '',
      l.smtp_code ? h('code', null, ` ${l.smtp_code}`) : null, l.detail ? h('div', { class: 'mono small' }, l.detail) : null)))
      : h('div', { class: 'muted small' }, 'Nothing logged yet.'));
}

export async function mail(ctx) {
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Mail'),
    h('div', { class: 'muted' }, 'The outbox, its delivery log and templates.'))));
  let stats = null;
  try { stats = await get('/api/mail/stats?days=7'); } catch { stats = null; }
  if (!ctx.alive()) return;
  // The state in words: no relay, mail waiting, held by the rate limit, or all clear.
  if (stats) {
    const waiting = (stats.ready || 0) + (stats.deferred || 0) + (stats.sending || 0);
    const lines = [];
    if (!stats.relay_configured) lines.push(h('div', null, h('strong', null, 'No SMTP relay is configured: '), 'nothing is sent and mail stays queued. Set ', h('code', null, '[smtp] host'), ' (and from, username, password) in the config file and restart.'));
    if (waiting) lines.push(h('div', null, h('strong', null, `${waiting} message${waiting === 1 ? '' : 's'} waiting`), ` (${stats.ready || 0} ready, ${stats.deferred || 0} waiting for a retry, ${stats.sending || 0} sending)`));
    if (stats.held_by_rate_limit) lines.push(h('div', null, `Held by the rate limit: ${stats.rate_limit_per_hour} per hour (${stats.attempts_last_hour} sent in the last hour).`));
    if (!lines.length) lines.push(h('div', null, 'The relay is configured and nothing is waiting.'));
    root.append(h('div', { class: ['note', stats.relay_configured ? '' : 'warn'], id: 'mail-state', dataset: { relay: String(!!stats.relay_configured), waiting: String(waiting) } }, lines));
  }
  const retry = (m) => can('admin') && m.id != null && /fail|dead|bounce|defer/.test(String(m.status || ''))
    ? h('button', { class: 'btn small', type: 'button', onclick: (e) => { e.stopPropagation(); attempt(() => post(`/api/mail/messages/${m.id}/retry`), 'Queued again'); } }, 'Retry')
    : null;
  const viewer = h('div', { id: 'mail-viewer' });
  const open = async (m) => {
    try {
      const full = await get(`/api/mail/messages/${m.id}`);
      viewer.replaceChildren(panel(`Message #${m.id}`, messageEl(full)));
      viewer.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      viewer.replaceChildren(errorBox(e));
    }
  };
  let messagesPanel;
  try {
    const items = await fetchList('/api/mail/messages?limit=100');
    const rows = items.map((m) => h('tr', { class: 'clickable', tabindex: '0', dataset: { message: m.id }, onclick: () => open(m), onkeydown: (e) => { if (e.key === 'Enter') open(m); } },
      h('td', null, mailBadge(m.status)), h('td', { class: 'small' }, (m.to || []).join(', ')), h('td', null, m.subject || ''),
      h('td', { class: 'small' }, m.template || ''), h('td', { class: 'num' }, String(m.attempts ?? 0)), h('td', null, timeEl(m.created_ms)), h('td', null, retry(m))));
    messagesPanel = panel('Messages', rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'mail-messages' },
      h('thead', null, h('tr', null, ['Status', 'To', 'Subject', 'Template', 'Attempts', 'Queued', ''].map((x) => h('th', null, x)))),
      h('tbody', null, rows))) : h('div', { class: 'muted small' }, 'No mail yet.'));
  } catch (e) {
    messagesPanel = panel('Messages', e.status === 404 ? notAvailable('Mail') : errorBox(e));
  }
  const parts = await Promise.all([section('Templates', '/api/mail/templates', null, null, templates)]);
  if (!ctx.alive()) return;
  let testForm = null;
  if (can('admin')) {
    const to = h('input', { type: 'email', placeholder: 'you@example.com', 'aria-label': 'Send a test email to' });
    testForm = h('form', { class: 'row' }, to, h('button', { class: 'btn', type: 'submit' }, 'Send test email'));
    testForm.addEventListener('submit', (e) => {
      e.preventDefault();
      attempt(() => post('/api/mail/test', { to: to.value.trim() }), 'Test email queued');
    });
  }
  root.append(h('div', { class: 'stack' }, testForm ? panel('Test', testForm) : null, messagesPanel, viewer, parts));
}
