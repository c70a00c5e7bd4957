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

export async function mail(ctx) {
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Mail'),
    h('div', { class: 'muted' }, 'The outbox, its delivery log and templates.'))));
  const retry = (m) => can('admin') && m.id != null && /fail|dead|bounce/.test(String(m.status || ''))
    ? h('button', { class: 'btn small', type: 'button', onclick: () => attempt(() => post(`/api/mail/messages/${m.id}/retry`), 'Queued again') }, 'Retry')
    : null;
  const parts = await Promise.all([
    section('Delivery log', '/api/mail/messages', retry, [
      ['status', (m) => badge(String(m.status || ''), /sent|deliver/.test(String(m.status)) ? 'resolved' : /fail|dead|bounce/.test(String(m.status)) ? 'regressed' : 'unresolved')],
      ['to', (m) => (Array.isArray(m.to) ? m.to.join(', ') : str(m.to))], 'subject', 'template', 'attempts', 'created_ms']),
    section('Templates', '/api/mail/templates', null, null, templates),
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
