// Alerts and mail screens. Their APIs come from other parts and may be absent on a server:
// each screen shows "not available" on a 404 and renders whatever lists it gets generically.
import { h, timeEl } from '../dom.js';
import { get, post } from '../api.js';
import { can, panel, errorBox, attempt, notAvailable } from '../ui.js';

const str = (v) => (v == null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const isTime = (k) => /_ms$/.test(k);

/** A table of objects: columns are the union of their scalar keys (first 7). */
function table(items, actions) {
  if (!items.length) return h('div', { class: 'muted small' }, 'None yet.');
  const cols = [];
  for (const it of items) for (const k of Object.keys(it)) if (!cols.includes(k) && cols.length < 7) cols.push(k);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'tbl' },
    h('thead', null, h('tr', null, cols.map((c) => h('th', null, c.replace(/_/g, ' '))), actions ? h('th') : null)),
    h('tbody', null, items.map((it) => h('tr', null,
      cols.map((c) => h('td', { class: 'small' }, isTime(c) && typeof it[c] === 'number' ? timeEl(it[c]) : str(it[c]).slice(0, 200))),
      actions ? h('td', null, actions(it)) : null)))));
}

/** Fetches `path` and returns the first array in the answer (or the answer if it is one). */
async function fetchList(path) {
  const r = await get(path);
  if (Array.isArray(r)) return r;
  for (const v of Object.values(r || {})) if (Array.isArray(v)) return v;
  return [];
}

async function section(title, path, actions) {
  try {
    return panel(title, table(await fetchList(path), actions));
  } catch (e) {
    return panel(title, e.status === 404 ? notAvailable(title) : errorBox(e));
  }
}

export async function alerts(ctx) {
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Alerts'),
    h('div', { class: 'muted' }, 'Rules watch the bus (new issue, regression, frequency, monitors, DLQ growth) and notify channels.'))));
  const testBtn = (kind) => (it) => can('admin') && it.id != null
    ? h('button', { class: 'btn small', type: 'button', onclick: () => attempt(() => post(`/api/alerts/${kind}/${it.id}/test`), 'Test sent') }, 'Send test')
    : null;
  const parts = await Promise.all([
    section('Rules', '/api/alerts/rules', testBtn('rules')),
    section('Channels', '/api/alerts/channels', testBtn('channels')),
  ]);
  if (!ctx.alive()) return;
  root.append(h('div', { class: 'stack' }, parts));
}

export async function mail(ctx) {
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Mail'),
    h('div', { class: 'muted' }, 'The outbox, its delivery log and templates.'))));
  const parts = await Promise.all([
    section('Delivery log', '/api/mail/messages'),
    section('Templates', '/api/mail/templates'),
  ]);
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
  root.append(h('div', { class: 'stack' }, testForm ? panel('Test', testForm) : null, parts));
}
