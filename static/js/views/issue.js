// One issue: state and actions, the latest (or a chosen) event with its exception chain,
// frames, breadcrumbs, request, user, contexts and tags; tag distributions, history, comments.
// Every string from an event is attacker-controlled: it only ever becomes text.
import { h, s, fmtNum, timeEl, when, barChart } from '../dom.js';
import { get, post, del } from '../api.js';
import { can, navigate, panel, errorBox, attempt, badge, statusLabel, confirmDialog, session } from '../ui.js';
import * as sourcemaps from './sourcemaps.js'; // issue 20: mapped frames, missing-map notes

const str = (v) => (v == null ? '' : typeof v === 'string' ? v : JSON.stringify(v, null, 2));

function kv(obj) {
  const dl = h('dl', { class: 'kv' });
  const entries = Array.isArray(obj) ? obj.map((p) => (Array.isArray(p) ? p : [p && p.key, p && p.value])) : Object.entries(obj || {});
  for (const [k, v] of entries) {
    if (v == null || v === '') continue;
    dl.append(h('dt', null, String(k)), h('dd', null, h('pre', null, str(v))));
  }
  return dl.children.length ? dl : null;
}

function eventMessage(ev) {
  const le = ev.logentry || (typeof ev.message === 'object' ? ev.message : null);
  if (le) return le.formatted || le.message || '';
  return typeof ev.message === 'string' ? ev.message : '';
}

function exceptions(ev) {
  const ex = ev.exception;
  if (!ex) return [];
  if (Array.isArray(ex)) return ex;
  if (Array.isArray(ex.values)) return ex.values;
  // A single exception object (no `values`), as some SDKs send it.
  return typeof ex === 'object' && (ex.type || ex.value || ex.stacktrace) ? [ex] : [];
}

// The stack trace of an event without exception: its crashed/current/only thread's, or its own.
function looseStack(ev) {
  const th = ev.threads;
  const list = Array.isArray(th) ? th : (th && Array.isArray(th.values) ? th.values : []);
  const withStack = list.filter((t) => t && t.stacktrace && Array.isArray(t.stacktrace.frames) && t.stacktrace.frames.length);
  const pick = withStack.filter((t) => t.crashed).length === 1 ? withStack.find((t) => t.crashed)
    : withStack.filter((t) => t.current).length === 1 ? withStack.find((t) => t.current)
      : withStack.length === 1 ? withStack[0] : null;
  if (pick) return { type: `Thread ${pick.name || pick.id || ''}`.trim(), stacktrace: pick.stacktrace };
  if (ev.stacktrace && Array.isArray(ev.stacktrace.frames) && ev.stacktrace.frames.length) return { type: 'Stack trace', stacktrace: ev.stacktrace };
  return null;
}

// How the event was grouped: what contributed to the issue's hash, what was left out and why.
function groupingEl(g) {
  if (!g || typeof g !== 'object' || !Array.isArray(g.components)) return null;
  const fp = g.fingerprint;
  const rows = g.components.map((c) => h('li', { class: ['grouping-part', c.contributes ? 'yes' : 'no'], dataset: { kind: String(c.kind || '') } },
    h('span', { class: 'mark', 'aria-label': c.contributes ? 'contributes' : 'left out' }, c.contributes ? '✓' : '–'),
    h('span', { class: 'muted small' }, ` ${String(c.kind || '')} `),
    h('code', null, String(c.label ?? '')),
    c.hint ? h('div', { class: 'muted small hint' }, String(c.hint)) : null));
  return panel('Grouping', [
    h('div', { id: 'grouped-by' }, h('strong', null, 'Grouped by: '), String(g.grouped_by || '')),
    fp ? h('div', { class: 'small', id: 'grouping-fingerprint' }, 'Fingerprint: ', h('code', null, (fp.values || []).map(String).join(', ')),
      h('span', { class: 'muted' }, ` (${fp.source === 'sdk' ? 'sent by the SDK' : fp.rule ? `${fp.source} ${fp.rule}` : String(fp.source || '')})`)) : null,
    h('div', { class: 'muted small' }, `Grouping version ${g.version} · hash ${g.hash || ''}`,
      g.previous ? ` · previous version ${g.previous.version}: ${g.previous.hash}` : '',
      g.matches_issue ? ` · this issue is found by its ${g.matches_issue}` : ''),
    h('ul', { class: 'grouping-parts', id: 'grouping-parts' }, rows),
  ]);
}

function contextLines(f) {
  const lines = [];
  const pre = Array.isArray(f.pre_context) ? f.pre_context : [];
  const post = Array.isArray(f.post_context) ? f.post_context : [];
  if (f.context_line == null && !pre.length && !post.length) return null;
  const lineno = Number(f.lineno) || null;
  const start = lineno ? lineno - pre.length : null;
  const add = (text, n, cur) => lines.push(h('div', { class: ['ctx-line', cur ? 'cur' : ''] },
    h('span', { class: 'ln' }, n == null ? '' : String(n)), h('code', null, String(text ?? ''))));
  pre.forEach((t, i) => add(t, start != null ? start + i : null, false));
  if (f.context_line != null) add(f.context_line, lineno, true);
  post.forEach((t, i) => add(t, lineno ? lineno + 1 + i : null, false));
  return h('div', { class: 'ctx' }, lines);
}

function frameEl(f, open) {
  const file = f.filename || f.abs_path || f.module || '?';
  const loc = [file, f.lineno, f.colno].filter((x) => x != null).join(':');
  const details = h('details', { class: ['frame', f.in_app ? 'inapp' : 'system'], open },
    h('summary', null,
      h('span', { class: 'fn' }, f.function || '<anonymous>'),
      h('span', { class: 'muted' }, 'in'),
      h('span', { class: 'file' }, loc),
      f.in_app ? badge('in app', 'inapp') : null,
      sourcemaps.frameBadge(f)),
    sourcemaps.minifiedLine(f),
    contextLines(f),
    f.vars && typeof f.vars === 'object' ? h('div', { class: 'vars' }, kv(f.vars)) : null);
  return details;
}

function exceptionEl(exc, idx) {
  const frames = (exc.stacktrace && Array.isArray(exc.stacktrace.frames)) ? exc.stacktrace.frames.slice().reverse() : [];
  const anyInApp = frames.some((f) => f.in_app);
  const mech = exc.mechanism && exc.mechanism.type;
  return h('div', { class: 'exc' },
    idx > 0 ? h('div', { class: 'caused' }, 'Caused by') : null,
    h('div', { class: 'exc-type' }, exc.type || 'Error', exc.module ? h('span', { class: 'muted small' }, ` (${exc.module})`) : null,
      mech ? h('span', { class: 'muted small' }, ` · mechanism: ${mech}${exc.mechanism.handled === false ? ', unhandled' : ''}`) : null),
    h('div', { class: 'exc-value' }, exc.value || ''),
    frames.length
      ? h('div', { class: 'frames' }, frames.map((f, i) => frameEl(f, anyInApp ? !!f.in_app : i === 0)))
      : h('div', { class: 'muted small' }, 'No stack trace.'));
}

// One breadcrumb as a sentence by its category: http (method URL → status), navigation
// (from → to), console (level: message); anything else its message, then its data as pairs.
function crumbText(b) {
  const d = b.data && typeof b.data === 'object' ? b.data : {};
  const cat = String(b.category || b.type || '');
  if (cat === 'http' || cat === 'fetch' || cat === 'xhr' || b.type === 'http') {
    const code = Number(d.status_code);
    return h('span', null, `${d.method || 'GET'} ${d.url || b.message || ''}`,
      d.status_code != null ? [' → ', h('span', { class: ['crumb-status', code >= 400 ? 'bad' : ''] }, String(d.status_code))] : null,
      d.reason ? ` ${d.reason}` : null);
  }
  if (cat === 'navigation') return `${d.from ?? '?'} → ${d.to ?? '?'}`;
  if (cat === 'console') {
    const args = Array.isArray(d.arguments) ? d.arguments.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ') : '';
    return `${d.logger ? d.logger + ' ' : ''}${b.level || 'log'}: ${b.message || args}`;
  }
  const rest = Object.entries(d).filter(([, v]) => v != null && v !== '');
  return h('span', null, b.message || '', rest.length ? h('span', { class: 'muted' }, `${b.message ? ' · ' : ''}${rest.map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ')}`) : null);
}

function breadcrumbsEl(ev) {
  const bc = ev.breadcrumbs;
  const vals = Array.isArray(bc) ? bc : (bc && Array.isArray(bc.values) ? bc.values : []);
  if (!vals.length) return null;
  const fmtTs = (t) => {
    if (t == null) return '';
    const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
    return isNaN(d) ? String(t) : d.toLocaleTimeString();
  };
  const rows = vals.slice(-100).map((b) => h('tr', { dataset: { category: String(b.category || b.type || '') } },
    h('td', { class: 'muted' }, fmtTs(b.timestamp)),
    h('td', { class: 'crumb-cat' }, b.category || b.type || ''),
    h('td', null, b.level ? badge(b.level) : ''),
    h('td', { class: 'msg' }, crumbText(b))));
  return panel('Breadcrumbs', h('div', { class: 'table-wrap' }, h('table', { class: 'tbl crumbs' },
    h('thead', null, h('tr', null, h('th', null, 'Time'), h('th', null, 'Category'), h('th', null, 'Level'), h('th', null, 'Message'))),
    h('tbody', null, rows))));
}

function requestEl(ev) {
  const r = ev.request;
  if (!r || typeof r !== 'object') return null;
  // Browser SDKs leave the query in the URL (Sentry splits it out on ingest): shown the same.
  let qs = r.query_string;
  if (qs == null && typeof r.url === 'string') {
    try { qs = new URL(r.url).search || null; } catch { qs = null; }
  }
  const query = typeof qs === 'string' ? new URLSearchParams(qs.replace(/^\?/, '')) : null;
  const queryPairs = query ? [...query.entries()] : (qs && typeof qs === 'object' ? qs : null);
  return panel('HTTP request', h('div', { id: 'request' },
    h('div', { class: 'mono' }, h('strong', null, r.method || 'GET'), ' ', r.url || ''),
    queryPairs && (Array.isArray(queryPairs) ? queryPairs.length : Object.keys(queryPairs).length) ? [h('h3', null, 'Query'), kv(queryPairs)] : null,
    r.data != null ? [h('h3', null, 'Body'), h('pre', { class: 'snippet' }, str(r.data))] : null,
    r.headers ? [h('h3', null, 'Headers'), kv(r.headers)] : null,
    r.cookies ? [h('h3', null, 'Cookies'), kv(typeof r.cookies === 'string' ? { cookies: r.cookies } : r.cookies)] : null,
    r.env ? [h('h3', null, 'Environment'), kv(r.env)] : null));
}

// Contexts as tables, the common ones first and named the way people say them.
const CONTEXT_NAMES = { browser: 'Browser', os: 'Operating system', runtime: 'Runtime', device: 'Device', app: 'App', culture: 'Culture', trace: 'Trace', cloud_resource: 'Cloud' };
function contextsEl(ev) {
  const c = ev.contexts && typeof ev.contexts === 'object' ? ev.contexts : null;
  if (!c) return null;
  const order = Object.keys(CONTEXT_NAMES);
  const names = Object.keys(c).sort((a, b) => ((order.indexOf(a) + 1) || 99) - ((order.indexOf(b) + 1) || 99));
  if (!names.length) return null;
  return panel('Contexts', h('div', { class: 'grid cols-2', id: 'contexts' }, names.map((n) => {
    const v = c[n];
    const rows = v && typeof v === 'object' ? Object.entries(v).filter(([k, x]) => k !== 'type' && x != null && x !== '') : [['value', v]];
    return h('div', { dataset: { context: n } }, h('h3', null, CONTEXT_NAMES[n] || n),
      h('table', { class: 'tbl' }, h('tbody', null, rows.map(([k, x]) => h('tr', null, h('th', { class: 'small' }, k), h('td', { class: 'mono small' }, str(x)))))));
  })));
}

// The raw event as JSON: shown on demand, and downloadable as a file.
function rawEl(ev) {
  const text = JSON.stringify(ev, null, 2);
  const pre = h('pre', { class: 'snippet raw-json', id: 'raw-json', hidden: true });
  const show = h('button', { class: 'btn small', type: 'button', id: 'show-raw', onclick: () => {
    if (!pre.textContent) pre.textContent = text;
    pre.hidden = !pre.hidden;
    show.textContent = pre.hidden ? 'View JSON' : 'Hide JSON';
  } }, 'View JSON');
  // A Blob URL of the JSON text with `download`: the browser saves it, nothing is rendered.
  const dl = h('a', { class: 'btn small', id: 'download-raw', download: `event-${ev.event_id || 'raw'}.json`,
    href: URL.createObjectURL(new Blob([text], { type: 'application/json' })) }, 'Download JSON');
  return panel('Raw event', pre, h('div', { class: 'row' }, show, dl));
}

async function attachmentsEl(ev) {
  const eid = ev.event_id;
  if (!eid) return null;
  let list;
  try { list = ((await get(`/api/events/${encodeURIComponent(eid)}/attachments`)) || {}).attachments || []; } catch { return null; }
  if (!list.length) return null;
  return panel('Attachments', h('ul', { class: 'history', id: 'attachments' }, list.map((a) => h('li', null,
    h('a', { href: `/api/events/${encodeURIComponent(eid)}/attachments/${a.n}`, download: a.filename || `attachment-${a.n}` }, a.filename || `attachment ${a.n}`),
    ' ', h('span', { class: 'muted' }, [a.content_type, `${fmtNum(a.size)} bytes`, a.truncated ? 'truncated' : ''].filter(Boolean).join(' · '))))));
}

function tagsOf(ev) {
  const t = ev.tags;
  if (!t) return [];
  if (Array.isArray(t)) return t.map((p) => (Array.isArray(p) ? p : [p.key, p.value]));
  return Object.entries(t);
}

function eventEl(issueId, data) {
  const ev = (data && data.event) || {};
  const eid = ev.event_id || ev.id || '';
  const navBtn = (label, target, key) => target
    ? h('a', { class: 'btn small', href: `#/issues/${issueId}/events/${target}`, dataset: { nav: key } }, label)
    : h('button', { class: 'btn small', type: 'button', disabled: true }, label);
  const msg = eventMessage(ev);
  let excs = exceptions(ev).slice().reverse();
  if (!excs.length) {
    const st = looseStack(ev);
    if (st) excs = [st];
  }
  const tags = tagsOf(ev);
  return h('div', { class: 'stack', id: 'event' },
    panel('Event', [
      h('div', { class: 'row between' },
        h('div', { class: 'muted small mono' }, eid ? `ID ${eid}` : '', ev.timestamp ? ' · ' : '',
          ev.timestamp ? when(typeof ev.timestamp === 'number' ? ev.timestamp * 1000 : Date.parse(ev.timestamp)) : ''),
        h('div', { class: 'event-nav' },
          navBtn('‹ Older', data.prev_event_id, 'prev'),
          navBtn('Newer ›', data.next_event_id, 'next'),
          h('a', { class: 'btn small', href: `#/issues/${issueId}`, dataset: { nav: 'latest' } }, 'Latest'))),
      msg ? h('pre', { class: 'exc-value', id: 'event-message' }, msg) : null,
      sourcemaps.eventNotes(ev),
      excs.length ? h('div', { id: 'exceptions' }, excs.map(exceptionEl)) : null,
      !msg && !excs.length ? h('div', { class: 'muted' }, 'This event has no message or exception.') : null,
      tags.length ? h('h3', null, 'Tags') : null,
      tags.length ? h('div', null, tags.map(([k, v]) => h('span', { class: 'chip' }, h('span', null, String(k)), h('span', null, str(v))))) : null,
    ]),
    breadcrumbsEl(ev),
    requestEl(ev),
    ev.extra && typeof ev.extra === 'object' && Object.keys(ev.extra).length ? panel('Additional data', h('div', { id: 'extra' }, kv(ev.extra))) : null,
    ev.user ? panel('User', kv(ev.user)) : null,
    contextsEl(ev),
    panel('Environment', kv({ release: ev.release, environment: ev.environment, platform: ev.platform, server_name: ev.server_name, sdk: ev.sdk && `${ev.sdk.name || ''} ${ev.sdk.version || ''}`.trim() })),
    h('div', { id: 'attachments-slot' }),
    groupingEl(data && data.grouping),
    rawEl(ev),
  );
}

function distributions(tags) {
  const out = [];
  for (const [key, vals] of Object.entries(tags || {})) {
    const list = Array.isArray(vals) ? vals : [];
    const total = list.reduce((a, v) => a + (v.count || 0), 0) || 1;
    out.push(h('div', { class: 'dist' }, h('div', { class: 'dist-key' }, key),
      list.slice(0, 5).map((v) => {
        const pct = Math.round(((v.count || 0) / total) * 100);
        return h('div', { class: 'dist-bar', title: `${v.value}: ${v.count}` },
          h('div', { class: 'dist-track' },
            s('svg', { viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true' }, s('rect', { x: 0, y: 0, width: pct, height: 10 })),
            h('span', null, String(v.value))),
          h('span', { class: 'muted' }, `${pct}%`));
      })));
  }
  return out;
}

function listOf(values) {
  const arr = Array.isArray(values) ? values : [];
  if (!arr.length) return h('div', { class: 'muted small' }, 'None recorded.');
  return h('div', null, arr.map((v) => h('span', { class: 'chip' }, h('span', null, typeof v === 'object' ? str(v.value ?? v.name ?? v) : String(v)),
    typeof v === 'object' && v.count != null ? h('span', null, fmtNum(v.count)) : null)));
}

const fmtWhen = (ms) => new Date(ms).toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

/** A history entry as a sentence: "Ana assigned it to Bo", "you muted it until 3 Dec 14:05". */
export function historyWords(x, userName) {
  const who = h('strong', null, x.user_id == null ? 'Hearth' : userName(x.user_id));
  const d = String(x.detail || '');
  let what;
  switch (x.action) {
    case 'first_seen': return h('span', null, 'First seen');
    case 'regressed': return h('span', null, who, ' marked it regressed: it came back after being resolved');
    case 'unmuted': return h('span', null, who, ' unmuted it', x.to ? ` (now ${statusLabel(x.to)})` : '');
    case 'comment': return h('span', null, who, ' commented');
    case 'assign':
      what = x.to == null ? (x.from != null ? `unassigned ${userName(x.from)}` : 'unassigned it') : `assigned it to ${userName(x.to)}`;
      return h('span', null, who, ` ${what}`);
    case 'status': {
      const to = x.to;
      if (to === 'muted') {
        const until = d.match(/^until (\d+)$/);
        const evs = d.match(/^for (\d+) events$/);
        what = until ? `muted it until ${fmtWhen(Number(until[1]))}` : evs ? `muted it for the next ${evs[1]} events` : 'muted it';
      } else if (to === 'resolved') what = 'resolved it';
      else if (to === 'resolved_next_release') {
        const rel = d.match(/^current release (.+)$/);
        what = rel ? `resolved it in the release after ${rel[1]}` : 'resolved it in the next release';
      } else if (to === 'unresolved') what = x.from === 'muted' ? 'unmuted it' : 'reopened it';
      else what = `set it to ${statusLabel(to)}`;
      return h('span', null, who, ` ${what}`);
    }
    default: return h('span', null, who, ` ${String(x.action || '').replace(/_/g, ' ')}`, d && !/^event |^comment /.test(d) ? ` (${d})` : '');
  }
}

/** Event frequency: the last 24 hours by hour, the last 30 days by day (plain SVG). */
function frequencyEl(it) {
  const hourly = Array.isArray(it.sparkline) ? it.sparkline : [];
  const daily = Array.isArray(it.daily) ? it.daily : [];
  const now = Date.now();
  const hourStart = Math.floor(now / 3600e3) * 3600e3;
  const dayStart = Math.floor(now / 86400e3) * 86400e3;
  const pts24 = hourly.map((c, i) => ({ t_ms: hourStart - (hourly.length - 1 - i) * 3600e3, count: c }));
  const pts30 = daily.map((c, i) => ({ t_ms: dayStart - (daily.length - 1 - i) * 86400e3, count: c }));
  const hourLabel = (t, full) => (full ? new Date(t).toLocaleString() : `${String(new Date(t).getHours()).padStart(2, '0')}:00`);
  const dayLabel = (t, full) => (full ? new Date(t).toLocaleDateString() : new Date(t).toLocaleDateString(undefined, { day: 'numeric', month: 'short' }));
  const box = h('div', { id: 'frequency' });
  const show = (which) => {
    const chart = which === '30d' ? barChart(pts30, dayLabel) : barChart(pts24, hourLabel);
    chart.classList.add('freq');
    chart.setAttribute('aria-label', which === '30d' ? 'events per day, last 30 days' : 'events per hour, last 24 hours');
    box.replaceChildren(chart);
    // On a narrow screen the chart scrolls: start at the newest bars.
    requestAnimationFrame(() => { box.scrollLeft = box.scrollWidth; });
    for (const b of tabs.children) b.classList.toggle('active', b.dataset.range === which);
  };
  const tabs = h('div', { class: 'tabs' },
    h('button', { class: 'btn small', type: 'button', dataset: { range: '24h' }, onclick: () => show('24h') }, '24 hours'),
    daily.length ? h('button', { class: 'btn small', type: 'button', dataset: { range: '30d' }, onclick: () => show('30d') }, '30 days') : null);
  show('24h');
  return panel('Event frequency', box, tabs);
}

function feedbackEl(list) {
  return panel('User feedback', h('ul', { class: 'history', id: 'issue-feedback' }, list.map((f) => h('li', null,
    h('div', null, h('strong', null, f.name || f.email || 'Anonymous'), f.email && f.name ? h('span', { class: 'muted' }, ` <${f.email}>`) : null,
      ' · ', timeEl(f.received_ms || f.at_ms || f.created_ms)),
    h('div', { class: 'comment-text' }, f.message || f.comments || '')))));
}

export async function view(ctx) {
  const { root } = ctx;
  const id = Number(ctx.params[0]);
  const eventId = ctx.params[1];
  const [ir, er, evs] = await Promise.all([
    get(`/api/issues/${id}`),
    get(eventId ? `/api/issues/${id}/events/${encodeURIComponent(eventId)}` : `/api/issues/${id}/events/latest`).catch((e) => ({ error: e })),
    get(`/api/issues/${id}/events?limit=15`).catch(() => null),
  ]);
  if (!ctx.alive()) return;
  const it = (ir && (ir.issue || ir)) || {};
  const names = it.user_names || {};
  const userName = (uid) => {
    if (uid == null) return 'Hearth';
    if (session.me && Number(uid) === session.me.id) return 'you';
    return names[String(uid)] || (users.find((u) => u.id === Number(uid)) || {}).name || 'a removed user';
  };
  let users = [];
  if (can('admin')) {
    try { users = ((await get('/api/users')) || {}).users || []; } catch { users = []; }
  }

  // Header
  root.append(h('div', { class: 'detail-head' },
    h('div', { class: 'row' },
      h('a', { href: `#/projects/${it.project_id}/issues`, class: 'small' }, '‹ Issues'),
      badge(it.status === 'resolved_next_release' && it.resolved_in_release ? `resolved in the release after ${it.resolved_in_release}` : statusLabel(it.status), it.status),
      it.level ? badge(it.level) : null),
    h('h1', { id: 'issue-title' }, it.title || '(no title)'),
    it.culprit ? h('div', { class: 'culprit' }, it.culprit) : null,
    h('div', { class: 'meta row' },
      h('span', null, h('strong', null, fmtNum(it.count)), it.count === 1 ? ' event' : ' events'),
      h('span', null, h('strong', null, fmtNum(it.user_count)), it.user_count === 1 ? ' user' : ' users'),
      h('span', null, 'first seen ', timeEl(it.first_seen_ms)),
      h('span', null, 'last seen ', timeEl(it.last_seen_ms)),
      it.assignee_id != null ? h('span', null, 'assigned to ', userName(it.assignee_id)) : null)));

  // Actions (hidden below the needed role; the API refuses anyway).
  const setStatus = async (status, extra = {}) => {
    if (await attempt(() => post(`/api/issues/${id}/status`, { status, ...extra }), `Issue ${statusLabel(status)}`)) navigate(location.hash);
  };
  const actions = h('div', { class: 'actions row', id: 'issue-actions' });
  if (can('agent')) {
    if (it.status !== 'resolved') actions.append(h('button', { class: 'btn primary', type: 'button', dataset: { action: 'resolve' }, onclick: () => setStatus('resolved') }, 'Resolve'));
    if (it.status !== 'resolved_next_release' && it.status !== 'resolved') actions.append(h('button', { class: 'btn', type: 'button', dataset: { action: 'resolve-next' }, onclick: () => setStatus('resolved_next_release') }, 'Resolve in next release'));
    if (it.status && it.status !== 'unresolved') actions.append(h('button', { class: 'btn', type: 'button', dataset: { action: 'reopen' }, onclick: () => setStatus('unresolved') }, 'Reopen'));
    if (it.status !== 'muted') {
      const mute = h('select', { class: 'btn', 'aria-label': 'Mute', dataset: { action: 'mute' } },
        h('option', { value: '' }, 'Mute…'), h('option', { value: 'forever' }, 'Until unmuted'),
        h('option', { value: '1h' }, 'For 1 hour'), h('option', { value: '24h' }, 'For 24 hours'), h('option', { value: '7d' }, 'For 7 days'),
        h('option', { value: '100ev' }, 'For the next 100 events'));
      mute.addEventListener('change', () => {
        const v = mute.value;
        const hours = { '1h': 1, '24h': 24, '7d': 168 }[v];
        if (v === 'forever') setStatus('muted');
        else if (hours) setStatus('muted', { mute_until_ms: Date.now() + hours * 3600e3 });
        else if (v === '100ev') setStatus('muted', { mute_for_events: 100 });
      });
      actions.append(mute);
    }
    const assign = h('select', { class: 'btn', 'aria-label': 'Assign', dataset: { action: 'assign' } },
      h('option', { value: '' }, it.assignee_id != null ? `Assigned: ${userName(it.assignee_id)}` : 'Assign…'),
      session.me ? h('option', { value: String(session.me.id) }, 'Assign to me') : null,
      users.filter((u) => !session.me || u.id !== session.me.id).map((u) => h('option', { value: String(u.id) }, u.name || u.email)),
      it.assignee_id != null ? h('option', { value: 'none' }, 'Unassign') : null);
    assign.addEventListener('change', async () => {
      if (!assign.value) return;
      const user_id = assign.value === 'none' ? null : Number(assign.value);
      if (await attempt(() => post(`/api/issues/${id}/assign`, { user_id }), user_id == null ? 'Unassigned' : 'Assigned')) navigate(location.hash);
    });
    actions.append(assign);
  }
  if (can('admin')) {
    actions.append(h('button', {
      class: 'btn danger', type: 'button', dataset: { action: 'delete' },
      onclick: async () => {
        if (!(await confirmDialog('Delete this issue and all its events? Future events with the same fingerprint will open a new issue.', 'Delete'))) return;
        if (await attempt(() => del(`/api/issues/${id}`), 'Issue deleted')) navigate(`#/projects/${it.project_id}/issues`);
      },
    }, 'Delete'));
  }
  root.append(actions);

  // Main column: the event. Side column: distributions, releases, history, comments.
  const main = h('div', { class: 'stack' });
  if (er && er.error) main.append(panel('Event', er.error.status === 404 ? h('div', { class: 'muted' }, 'No event stored for this issue (it may have been removed by retention).') : errorBox(er.error)));
  else main.append(eventEl(id, er));

  if (er && !er.error && er.event) {
    attachmentsEl(er.event).then((el) => {
      const slot = main.querySelector('#attachments-slot');
      if (el && slot && ctx.alive()) slot.replaceChildren(el);
    });
  }
  main.prepend(frequencyEl(it));
  get(`/api/issues/${id}/feedback`).then((r) => {
    const list = (r && r.feedback) || [];
    if (list.length && ctx.alive()) main.insertBefore(feedbackEl(list), main.children[1] || null);
  }).catch(() => {});

  const side = h('div', { class: 'stack' });
  const tagPanel = distributions(it.tags);
  side.append(panel('Tags', tagPanel.length ? tagPanel : h('div', { class: 'muted small' }, 'No tags.')));
  side.append(panel('Releases', listOf(it.releases)));
  side.append(panel('Environments', listOf(it.environments)));
  const recent = (evs && Array.isArray(evs.events)) ? evs.events : [];
  const shownId = er && er.event && (er.event.event_id || er.event.id);
  if (recent.length) {
    side.append(panel('Recent events', h('ul', { class: 'history', id: 'recent-events' }, recent.map((e) => {
      const eid = e.event_id || e.id;
      const label = e.message || e.title || eid;
      return h('li', { class: eid === shownId ? 'current' : '' },
        h('a', { href: `#/issues/${id}/events/${encodeURIComponent(eid)}` }, timeEl(e.received_ms || e.timestamp_ms)),
        ' ', h('span', { class: 'muted' }, [e.release, e.environment].filter(Boolean).join(' · ')),
        h('div', { class: 'mono small ellipsis' }, label));
    }))));
  }
  const hist = Array.isArray(it.history) ? it.history : [];
  side.append(panel('History', hist.length ? h('ul', { class: 'history', id: 'history' }, hist.slice().reverse().map((x) => h('li', null,
    timeEl(x.at_ms), ' · ', historyWords(x, userName)))) : h('div', { class: 'muted small' }, 'No changes yet.')));

  const comments = Array.isArray(it.comments) ? it.comments : [];
  const cbox = h('div', { id: 'comments' }, comments.map((c) => h('div', { class: 'comment' },
    h('div', { class: 'muted small' }, h('strong', null, userName(c.user_id)), ' · ', timeEl(c.at_ms)),
    h('div', { class: 'text' }, c.text || ''))));
  let cform = null;
  if (can('agent')) {
    const ta = h('textarea', { id: 'comment-text', placeholder: 'Add a comment…', 'aria-label': 'Comment' });
    cform = h('form', { id: 'comment-form' }, ta, h('div', { class: 'row end' }, h('button', { class: 'btn small', type: 'submit' }, 'Comment')));
    cform.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!ta.value.trim()) return;
      if (await attempt(() => post(`/api/issues/${id}/comments`, { text: ta.value }))) navigate(location.hash);
    });
  }
  side.append(panel('Comments', [comments.length ? cbox : h('div', { class: 'muted small' }, 'No comments.'), cform]));

  root.append(h('div', { class: 'detail' }, main, side));

  // Live: this issue changed (new event, state change, comment) → re-render it, debounced so
  // a burst of events (or our own action's echo) re-renders once.
  let timer = null;
  ctx.onLive = (msg) => {
    const p = msg.payload || {};
    const issueId = p.issue_id ?? p.id ?? (p.issue && p.issue.id);
    const subj = msg.subject || '';
    // A new event of this issue (event.stored) re-renders it too, unless another event is on screen.
    if (Number(issueId) !== id || !(subj.startsWith('issue.') || (subj === 'event.stored' && !eventId))) return;
    clearTimeout(timer);
    timer = setTimeout(() => { if (ctx.alive()) navigate(location.hash); }, 600);
  };
  ctx.cleanup = () => clearTimeout(timer);
}
