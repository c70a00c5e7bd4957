// A project's other data: user feedback, release health, transactions (p50/p95), the events
// SDKs dropped (client reports) and cron check-ins. Every string is SDK text: only text nodes.
import { h, s, fmtNum, timeEl } from '../dom.js';
import { get } from '../api.js';
import { panel, errorBox, notAvailable, badge, currentProject } from '../ui.js';

const TABS = [
  ['issues', 'Issues'], ['feedback', 'Feedback'], ['releases', 'Releases'], ['transactions', 'Performance'],
  ['client-reports', 'Dropped events'], ['crons', 'Cron check-ins'], ['stats', 'Stats'],
];

/** The tab strip of a project's screens. */
export function tabs(pid, active) {
  return h('nav', { class: 'tabs project-tabs', 'aria-label': 'Project screens' }, TABS.map(([k, label]) =>
    h('a', { class: ['btn small', k === active ? 'active' : ''], href: `#/projects/${pid}/${k}`, dataset: { tab: k }, 'aria-current': k === active ? 'page' : null }, label)));
}

function head(ctx, title, sub, tab) {
  const pid = Number(ctx.params[0]);
  const p = currentProject();
  ctx.root.append(h('div', { class: 'page-head' },
    h('div', null, h('h1', null, title), h('div', { class: 'muted' }, p ? `${p.name} · ${sub}` : sub))),
  tabs(pid, tab));
  return pid;
}

async function load(ctx, path, render, what) {
  let body;
  try {
    body = render(await get(path));
  } catch (e) {
    body = e.status === 404 && /route/.test(e.message) ? notAvailable(what) : errorBox(e);
  }
  if (ctx.alive()) ctx.root.append(body);
}

function tbl(id, headers, rows, empty) {
  if (!rows.length) return h('div', { class: 'empty', id: `${id}-empty` }, empty);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id },
    h('thead', null, h('tr', null, headers.map((x) => (Array.isArray(x) ? h('th', { class: x[1] }, x[0]) : h('th', null, x))))),
    h('tbody', null, rows)));
}

export async function feedback(ctx) {
  const pid = head(ctx, 'User feedback', 'what users wrote when something broke', 'feedback');
  await load(ctx, `/api/projects/${pid}/feedback?limit=200`, (r) => panel(null, tbl('feedback', ['From', 'Message', 'Issue', 'Page', 'When'],
    (r.feedback || []).map((f) => h('tr', null,
      h('td', null, f.name || 'Anonymous', f.email ? h('div', { class: 'muted small mono' }, f.email) : null),
      h('td', { class: 'pre-wrap' }, f.message || ''),
      h('td', null, f.issue_id ? h('a', { href: `#/issues/${f.issue_id}` }, `issue ${f.issue_id}`) : h('span', { class: 'muted' }, '–')),
      h('td', { class: 'small mono' }, f.url || ''),
      h('td', null, timeEl(f.received_ms)))),
    'No feedback yet. The SDKs\' feedback widget or captureFeedback() sends it here.')), 'Feedback');
}

/** A horizontal bar per release: its share of all sessions. */
function adoptionChart(rows) {
  const total = rows.reduce((a, r) => a + (r.sessions || 0), 0) || 1;
  const W = 600, rowH = 22;
  const svg = s('svg', { class: 'chart adoption', viewBox: `0 0 ${W} ${rows.length * rowH + 4}`, role: 'img', 'aria-label': 'adoption: share of sessions per release' });
  rows.forEach((r, i) => {
    const pct = (100 * (r.sessions || 0)) / total;
    const y = i * rowH + 2;
    svg.append(s('rect', { class: 'track', x: 200, y, width: W - 260, height: rowH - 6 }),
      s('rect', { class: 'bar', x: 200, y, width: ((W - 260) * pct) / 100, height: rowH - 6 }, s('title', null, `${r.release}: ${pct.toFixed(1)}% of sessions`)),
      s('text', { x: 0, y: y + 12 }, String(r.release).slice(0, 32)),
      s('text', { x: W - 52, y: y + 12 }, `${pct.toFixed(0)}%`));
  });
  return svg;
}

export async function releases(ctx) {
  const pid = head(ctx, 'Release health', 'sessions, crash-free sessions and users, and adoption per release', 'releases');
  await load(ctx, `/api/projects/${pid}/release-health`, (r) => {
    const rows = (r.releases || []).slice().sort((a, b) => (b.last_seen_ms || 0) - (a.last_seen_ms || 0));
    const total = rows.reduce((a, x) => a + (x.sessions || 0), 0) || 1;
    const pct = (v) => (v == null ? '–' : `${Number(v).toFixed(v >= 99.95 || v === 0 ? 0 : 1)}%`);
    const rate = (v) => (v == null ? '–' : badge(pct(v), v >= 99 ? 'resolved' : v >= 95 ? 'unresolved' : 'regressed'));
    return h('div', { class: 'stack' },
      rows.length ? panel('Adoption', adoptionChart(rows)) : null,
      panel('Releases', tbl('releases', ['Release', ['Sessions', 'num'], ['Crash-free sessions', 'num'], ['Users', 'num'], ['Crash-free users', 'num'], ['Errored', 'num'], ['Crashed', 'num'], ['Adoption', 'num'], 'Environments', 'Last session'],
        rows.map((x) => h('tr', { dataset: { release: x.release } },
          h('td', { class: 'mono' }, x.release),
          h('td', { class: 'num' }, fmtNum(x.sessions)),
          h('td', { class: 'num', dataset: { col: 'crash-free-sessions' } }, rate(x.crash_free_percent)),
          h('td', { class: 'num', dataset: { col: 'users' } }, fmtNum(x.users || 0)),
          h('td', { class: 'num', dataset: { col: 'crash-free-users' } }, rate(x.crash_free_users_percent)),
          h('td', { class: 'num' }, fmtNum(x.errored)),
          h('td', { class: 'num' }, fmtNum((x.crashed || 0) + (x.abnormal || 0))),
          h('td', { class: 'num' }, pct((100 * (x.sessions || 0)) / total)),
          h('td', { class: 'small' }, Array.isArray(x.environments) ? x.environments.join(', ') : ''),
          h('td', null, timeEl(x.last_seen_ms)))),
        'No sessions yet. SDKs send them when release health (auto session tracking) is on.')));
  }, 'Release health');
}

function quantile(sorted, q) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

const ms = (v) => (v == null ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);

export async function transactions(ctx) {
  const pid = head(ctx, 'Performance', 'transactions with their duration', 'transactions');
  await load(ctx, `/api/projects/${pid}/transactions?limit=500`, (r) => {
    const list = r.transactions || [];
    const by = new Map();
    for (const t of list) {
      const k = t.name || '(unnamed)';
      if (!by.has(k)) by.set(k, { name: k, op: t.op, d: [] });
      by.get(k).d.push(Number(t.duration_ms) || 0);
    }
    const groups = [...by.values()].map((g) => {
      g.d.sort((a, b) => a - b);
      return { ...g, p50: quantile(g.d, 0.5), p95: quantile(g.d, 0.95) };
    }).sort((a, b) => b.d.length - a.d.length);
    return h('div', { class: 'stack' },
      panel(`Per transaction (last ${fmtNum(list.length)} of ${fmtNum(r.total || list.length)})`, tbl('tx-summary', ['Transaction', 'Op', ['Count', 'num'], ['p50', 'num'], ['p95', 'num']],
        groups.map((g) => h('tr', null, h('td', { class: 'mono' }, g.name), h('td', { class: 'small' }, g.op || ''),
          h('td', { class: 'num' }, fmtNum(g.d.length)), h('td', { class: 'num' }, ms(g.p50)), h('td', { class: 'num' }, ms(g.p95)))),
        'No transactions yet. Set traces_sample_rate in the SDK to send them.')),
      list.length ? panel('Recent transactions', tbl('transactions', ['Transaction', 'Op', ['Duration', 'num'], ['Spans', 'num'], 'When'],
        list.slice(0, 100).map((t) => h('tr', null, h('td', { class: 'mono' }, t.name || ''), h('td', { class: 'small' }, t.op || ''),
          h('td', { class: 'num' }, ms(t.duration_ms)), h('td', { class: 'num' }, fmtNum(t.span_count)), h('td', null, timeEl(t.received_ms)))), '')) : null);
  }, 'Transactions');
}

const REASONS = {
  sample_rate: 'sampled out by the SDK (sample rate)', before_send: 'dropped by before_send', event_processor: 'dropped by an event processor',
  network_error: 'network error', queue_overflow: 'SDK queue full', ratelimit_backoff: 'rate limited (backing off)', send_error: 'send error',
  buffer_overflow: 'buffer full', internal_sdk_error: 'SDK internal error', insufficient_data: 'not enough data',
};

export async function clientReports(ctx) {
  const pid = head(ctx, 'Dropped events', 'what the SDKs discarded before sending, by reason', 'client-reports');
  await load(ctx, `/api/projects/${pid}/client-reports`, (r) => panel(null, tbl('client-reports', ['Reason', 'Category', ['Dropped', 'num']],
    (r.discarded || []).slice().sort((a, b) => b.quantity - a.quantity).map((x) => h('tr', null,
      h('td', null, REASONS[x.reason] || x.reason, h('div', { class: 'muted small mono' }, x.reason)),
      h('td', null, x.category), h('td', { class: 'num' }, fmtNum(x.quantity)))),
    'Nothing dropped: SDKs report discarded events here (client reports).')), 'Client reports');
}

export async function crons(ctx) {
  const pid = head(ctx, 'Cron check-ins', 'jobs reported by SDK check-ins', 'crons');
  await load(ctx, `/api/projects/${pid}/monitors`, (r) => {
    const mons = r.monitors || [];
    if (!mons.length) return panel(null, h('div', { class: 'empty', id: 'crons-empty' }, 'No check-ins yet: sentry_sdk.crons / Sentry.withMonitor send them.'));
    return h('div', { class: 'stack', id: 'crons' }, mons.map((m) => {
      const sched = m.config && m.config.schedule;
      const schedText = sched ? (sched.type === 'crontab' ? sched.value : `every ${sched.value} ${sched.unit}`) : '';
      const st = m.last_status || '';
      return panel(m.slug, tbl(`checkins-${m.slug}`, ['Status', ['Duration', 'num'], 'Environment', 'Updated'],
        (m.check_ins || []).slice(0, 20).map((c) => h('tr', null,
          h('td', null, badge(c.status || '', c.status === 'ok' ? 'resolved' : c.status === 'error' ? 'regressed' : 'unresolved')),
          h('td', { class: 'num' }, c.duration_s != null ? `${Number(c.duration_s).toFixed(2)} s` : '–'),
          h('td', { class: 'small' }, c.environment || ''),
          h('td', null, timeEl(c.updated_ms)))), 'No check-ins.'),
      h('span', { class: 'row' }, st ? badge(st, st === 'ok' ? 'resolved' : st === 'error' ? 'regressed' : 'unresolved') : null,
        schedText ? h('code', null, schedText) : null));
    }));
  }, 'Cron check-ins');
}
