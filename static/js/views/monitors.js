// Uptime monitors: the list (state, response-time sparkline), a monitor's detail (hourly
// response-time chart, uptime figures, incidents, recent results) and the form for a new HTTP,
// TCP, TLS, DNS or heartbeat monitor with a "Test now" button showing each condition's verdict.
import { h, s, clear, timeEl, barChart } from '../dom.js';
import { get, post } from '../api.js';
import { panel, errorBox, navigate, toast } from '../ui.js';

const pct = (v) => (v == null ? '–' : `${(v * 100).toFixed(v >= 0.9995 ? 0 : 2)}%`);

function stateBadge(m) {
  const st = m.state.paused ? 'paused' : m.state.status;
  return h('span', { class: `badge state-${st}`, 'data-state': st }, st);
}

function kindOf(m) {
  if (m.sentry) return 'cron';
  if (m.heartbeat) return 'heartbeat';
  return m.check ? m.check.kind : '?';
}

/** Response times (oldest first) as a small SVG line; failed checks are marked. */
function rtSparkline(results) {
  const pts = results.slice().reverse();
  const w = 120, hgt = 28;
  const max = Math.max(1, ...pts.map((r) => r.response_ms || 0));
  const svg = s('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', role: 'img',
    'aria-label': `response times of the last ${pts.length} checks` });
  const step = pts.length > 1 ? w / (pts.length - 1) : w;
  const coords = pts.map((r, i) => `${(i * step).toFixed(1)},${(hgt - 1 - ((r.response_ms || 0) / max) * (hgt - 2)).toFixed(1)}`);
  if (coords.length) svg.append(s('polyline', { points: coords.join(' '), fill: 'none', stroke: 'currentColor', 'stroke-width': 1.5 }));
  pts.forEach((r, i) => {
    if (r.beat === 'down' || r.beat === 'retrying' || r.record === 'failure' || r.record === 'missed') {
      svg.append(s('rect', { class: 'bar-down', x: (i * step - 1).toFixed(1), y: 0, width: 2, height: hgt },
        s('title', null, r.error || 'failed')));
    }
  });
  return svg;
}

export async function list(ctx) {
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('h1', null, 'Monitors'),
    h('a', { class: 'btn', href: '#/monitors/new', id: 'new-monitor' }, 'New monitor')));
  const r = await get('/api/monitors');
  if (!ctx.alive()) return;
  const monitors = r.monitors || [];
  if (!monitors.length) {
    root.append(h('div', { class: 'empty' }, 'No monitors yet. ', h('a', { href: '#/monitors/new' }, 'Create one')));
    return;
  }
  const tbody = h('tbody');
  root.append(h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'monitors' },
    h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Kind'), h('th', null, 'State'),
      h('th', null, 'Response time'), h('th', null, 'Since'))), tbody)));
  for (const m of monitors) {
    const spark = h('td', { class: 'spark-cell' });
    tbody.append(h('tr', { 'data-slug': m.slug },
      h('td', null, h('a', { href: `#/monitors/${m.id}` }, m.name), h('div', { class: 'muted small mono' }, m.slug)),
      h('td', null, kindOf(m)),
      h('td', null, stateBadge(m)),
      spark,
      h('td', null, m.state.since ? timeEl(Date.parse(m.state.since)) : '–')));
    get(`/api/monitors/${m.id}/results?limit=30`).then((res) => {
      if (ctx.alive()) spark.append(rtSparkline(res.results || []));
    }).catch(() => {});
  }
  const timer = setInterval(() => { if (ctx.alive()) refreshStates(tbody); }, 10000);
  ctx.cleanup = () => clearInterval(timer);
  ctx.onLive = (msg) => { if ((msg.subject || '').startsWith('monitor.')) refreshStates(tbody); };
}

async function refreshStates(tbody) {
  try {
    const r = await get('/api/monitors');
    for (const m of r.monitors || []) {
      const row = tbody.querySelector(`tr[data-slug="${CSS.escape(m.slug)}"]`);
      if (row) row.children[2].replaceChildren(stateBadge(m));
    }
  } catch { /* keep what we show */ }
}

export async function detail(ctx) {
  const { root } = ctx;
  let id = ctx.params[0];
  if (!/^\d+$/.test(id)) {
    // Alerts link to monitors by slug.
    const r = await get('/api/monitors');
    const m = (r.monitors || []).find((x) => x.slug === id);
    if (!m) throw new Error(`No monitor ${id}`);
    id = m.id;
  }
  const [m, sum, res] = await Promise.all([
    get(`/api/monitors/${id}`), get(`/api/monitors/${id}/summary`), get(`/api/monitors/${id}/results?limit=50`)]);
  if (!ctx.alive()) return;
  const actions = h('div', { class: 'row' },
    h('button', { class: 'btn', onclick: () => act(m.state.paused ? 'resume' : 'pause') }, m.state.paused ? 'Resume' : 'Pause'),
    h('button', { class: 'btn', onclick: () => act('snooze', { minutes: 60 }) }, 'Snooze 1 h'));
  async function act(what, body = {}) {
    try {
      await post(`/api/monitors/${id}/${what}`, body);
      toast(`${what}d`);
      navigate(`#/monitors/${id}?r=${Date.now()}`);
    } catch (e) { toast(e.message, 'error'); }
  }
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', { id: 'monitor-name' }, m.name),
    h('div', { class: 'muted' }, `${kindOf(m)} · ${m.slug} · `, stateBadge(m))), actions));
  if (m.ping_url) {
    root.append(panel('Ping URLs', h('div', { class: 'mono small' },
      h('div', null, m.ping_url), h('div', null, m.push_url))));
  }
  const f = sum.figures || {};
  root.append(h('div', { class: 'cards' }, [['24 h', f.h24], ['7 days', f.d7], ['30 days', f.d30], ['90 days', f.d90]]
    .map(([k, v]) => h('div', { class: 'panel card' }, h('div', { class: 'muted small' }, `Uptime ${k}`), h('div', { class: 'big' }, pct(v))))));
  const hourly = (sum.hourly || []).map((b) => ({ t_ms: Date.parse(b.start), count: Math.round(b.avg_response_ms || 0) }));
  const hourLabel = (t, long) => (long ? new Date(t).toLocaleString() : `${new Date(t).getHours()}:00`);
  root.append(panel('Average response time per hour (ms), last 48 hours', barChart(hourly, hourLabel)));
  const incidents = sum.incidents || [];
  root.append(panel('Incidents', incidents.length ? h('table', { class: 'tbl', id: 'incidents' }, h('tbody', null, incidents.map((i) =>
    h('tr', null, h('td', null, timeEl(Date.parse(i.start), false)),
      h('td', null, i.end ? `resolved after ${Math.round(Date.parse(i.end) - Date.parse(i.start)) / 1000} s` : 'ongoing'),
      h('td', { class: 'mono small' }, i.first_error || '')))))
    : h('div', { class: 'muted small' }, 'No incidents.')));
  root.append(panel('Recent results', h('table', { class: 'tbl' }, h('tbody', null, (res.results || []).map((r) =>
    h('tr', null, h('td', null, timeEl(r.at_ms)), h('td', null, r.beat || r.record),
      h('td', { class: 'num' }, r.response_ms != null ? `${r.response_ms} ms` : ''),
      h('td', { class: 'mono small' }, r.error || '')))))));
}

function field(label, input) {
  return h('label', { class: 'field' }, h('span', null, label), input);
}

/** The request body the form describes. */
function formBody(form) {
  const v = (n) => form.elements[n].value.trim();
  const kind = v('kind');
  const body = { name: v('name'), interval: v('interval') || '60s' };
  const conditions = v('conditions').split('\n').map((c) => c.trim()).filter(Boolean).map((c) => ({ condition: c }));
  if (conditions.length) body.conditions = conditions;
  if (kind === 'http') body.check = { kind, url: v('target') };
  else if (kind === 'tcp' || kind === 'tls') {
    const [host, port] = v('target').split(':');
    body.check = { kind, host, port: Number(port || 443) };
  } else if (kind === 'dns') body.check = { kind, name: v('target') };
  else body.heartbeat = { schedule: { kind: 'interval', value: v('interval') || '1h' }, grace: '5m', max_runtime: '30m' };
  if (v('group')) body.group = v('group');
  return body;
}

export async function create(ctx) {
  const { root } = ctx;
  const out = h('div', { id: 'test-result' });
  const form = h('form', { class: 'stack', id: 'monitor-form', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const m = await post('/api/monitors', formBody(form));
      navigate(`#/monitors/${m.id}`);
    } catch (err) { clear(out).append(errorBox(err)); }
  } },
  field('Name', h('input', { name: 'name', required: true })),
  field('Kind', h('select', { name: 'kind' }, ['http', 'tcp', 'tls', 'dns', 'heartbeat'].map((k) => h('option', { value: k }, k)))),
  field('URL, host:port or DNS name', h('input', { name: 'target', placeholder: 'https://example.com/health' })),
  field('Interval', h('input', { name: 'interval', placeholder: '60s' })),
  field('Conditions, one per line', h('textarea', { name: 'conditions', rows: 3, placeholder: '[STATUS] == 200\n[BODY].status == ok' })),
  field('Status page group', h('input', { name: 'group', placeholder: 'public' })),
  h('div', { class: 'row' },
    h('button', { class: 'btn', type: 'button', id: 'test-now', onclick: async () => {
      clear(out).append(h('div', { class: 'muted' }, 'Testing…'));
      try {
        const r = await post('/api/monitors/test', formBody(form));
        clear(out).append(h('div', { class: r.up ? 'ok' : 'error', id: 'verdict' }, r.up ? 'Up' : `Down: ${r.reason || ''}`),
          h('ul', { class: 'outcomes' }, (r.outcomes || []).map((o) =>
            h('li', { class: o.success ? 'ok' : 'error' }, `${o.success ? '✓' : '✗'} ${o.condition}: ${o.detail}${o.reason ? ` (${o.reason})` : ''}`))));
      } catch (err) { clear(out).append(errorBox(err)); }
    } }, 'Test now'),
    h('button', { class: 'btn primary', type: 'submit' }, 'Create')));
  root.append(h('div', { class: 'page-head' }, h('h1', null, 'New monitor')), panel('Monitor', form), out);
}
