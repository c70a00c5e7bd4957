// Alerts: rules (create, edit, enable/disable, delete), channels (create, edit, test, delete)
// and the delivery history with each channel's attempts and the receiver's last reply.
// Names, URLs and replies are user or receiver text: they only ever become text nodes.
import { h, timeEl } from '../dom.js';
import { get, post, api, del } from '../api.js';
import { can, panel, errorBox, attempt, notAvailable, badge, confirmDialog, navigate, session, toast } from '../ui.js';

const TRIGGERS = [
  ['issue_created', 'A new issue is created'],
  ['issue_regressed', 'A resolved issue comes back'],
  ['frequency', 'An issue is seen more than N times in a window'],
  ['monitor_down', 'A monitor goes down'],
  ['monitor_up', 'A monitor comes back up'],
  ['dlq_growth', 'A bus consumer dead-letters an event'],
  ['ticket_created', 'A support ticket is opened'],
  ['ticket_sla_breached', 'A ticket passes its SLA'],
  ['disk_budget', 'The data directory passes 80% of its disk budget'],
];
const WINDOWS = ['1m', '5m', '15m', '1h', '1d'];
const PRIORITIES = ['', 'urgent', 'high', 'normal', 'low'];
const LEVELS = ['fatal', 'error', 'warning', 'info', 'debug'];

const list = (s) => String(s || '').split(',').map((x) => x.trim()).filter(Boolean);

/** "New issue", "more than 10 in 5m", … for a rule's trigger. */
export function triggerText(w) {
  if (!w || typeof w !== 'object') return String(w || '');
  const t = w.type;
  const label = (TRIGGERS.find(([k]) => k === t) || [t, t])[1];
  if (t === 'frequency') return `Seen more than ${w.count} times in ${w.window}`;
  if ((t === 'monitor_down' || t === 'monitor_up') && w.monitor) return `${label}: ${w.monitor}`;
  if (t === 'dlq_growth' && w.consumer) return `${label}: ${w.consumer}`;
  if ((t === 'ticket_created' || t === 'ticket_sla_breached') && w.min_priority) return `${label} (${w.min_priority} or above)`;
  return label;
}

function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', null, label), input, hint ? h('div', { class: 'muted small' }, hint) : null);
}

function select(id, options, value) {
  const sel = h('select', { id }, options.map(([v, t]) => h('option', { value: v }, t)));
  if (value != null) sel.value = value;
  return sel;
}

/** The rule form (create when `rule` is null). Resolves after a save. */
function ruleForm(rule, channels, projects, done) {
  const r = rule || { name: '', enabled: true, when: { type: 'issue_created' }, filters: {}, channels: [], throttle_minutes: null };
  const f = r.filters || {};
  const name = h('input', { type: 'text', id: 'rule-name', value: r.name || '', required: true, maxlength: 200 });
  const trig = select('rule-trigger', TRIGGERS, r.when.type);
  const count = h('input', { type: 'number', id: 'rule-count', min: '1', value: String(r.when.count || 10) });
  const win = select('rule-window', WINDOWS.map((x) => [x, x]), r.when.window || '5m');
  const target = h('input', { type: 'text', id: 'rule-target', value: r.when.monitor || r.when.consumer || '', placeholder: 'any' });
  const prio = select('rule-priority', PRIORITIES.map((p) => [p, p || 'any priority']), r.when.min_priority || '');
  const freqBox = h('div', { class: 'row' }, field('More than (events)', count), field('Within', win));
  const targetBox = h('div', null, field('Monitor or consumer (empty: any)', target));
  const prioBox = h('div', null, field('At least priority', prio));
  const showTrigger = () => {
    const t = trig.value;
    freqBox.hidden = t !== 'frequency';
    targetBox.hidden = !['monitor_down', 'monitor_up', 'dlq_growth'].includes(t);
    prioBox.hidden = !t.startsWith('ticket_');
  };
  trig.addEventListener('change', showTrigger);
  showTrigger();
  const projBoxes = projects.map((p) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', value: String(p.id), checked: (f.project_ids || []).includes(p.id), dataset: { project: p.id } }), ` ${p.name}`));
  const envs = h('input', { type: 'text', id: 'rule-envs', value: (f.environments || []).join(', '), placeholder: 'production, staging' });
  const levelBoxes = LEVELS.map((l) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', value: l, checked: (f.levels || []).includes(l), dataset: { level: l } }), ` ${l}`));
  const chBoxes = channels.map((c) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', value: String(c.id), checked: (r.channels || []).includes(c.id), dataset: { channel: c.id } }), ` ${c.name} (${c.type})`));
  const throttle = h('input', { type: 'number', id: 'rule-throttle', min: '0', value: r.throttle_minutes == null ? '' : String(r.throttle_minutes), placeholder: 'server default' });
  const enabled = h('input', { type: 'checkbox', id: 'rule-enabled', checked: r.enabled !== false });
  const err = h('div');
  const form = h('form', { id: 'rule-form', class: 'stack' },
    h('h3', null, rule ? `Edit rule “${rule.name}”` : 'New rule'),
    field('Name', name),
    field('When', trig), freqBox, targetBox, prioBox,
    h('div', null, h('div', { class: 'muted small' }, 'Only for projects (none checked: all)'), h('div', { class: 'row' }, projBoxes)),
    field('Only for environments (comma separated, empty: all)', envs),
    h('div', null, h('div', { class: 'muted small' }, 'Only for levels (none checked: all)'), h('div', { class: 'row' }, levelBoxes)),
    h('div', null, h('div', { class: 'muted small' }, 'Notify channels'),
      chBoxes.length ? h('div', { class: 'row', id: 'rule-channels' }, chBoxes) : h('div', { class: 'muted small' }, 'No channels yet: add one below first.')),
    field('At most one alert per issue every (minutes; 0: every time)', throttle),
    h('label', { class: 'check' }, enabled, ' Enabled'),
    err,
    h('div', { class: 'row' }, h('button', { class: 'btn primary', type: 'submit', id: 'rule-save' }, rule ? 'Save rule' : 'Create rule'),
      h('button', { class: 'btn', type: 'button', onclick: () => done(false) }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = trig.value;
    const when = { type: t };
    if (t === 'frequency') Object.assign(when, { count: Number(count.value) || 1, window: win.value });
    if ((t === 'monitor_down' || t === 'monitor_up') && target.value.trim()) when.monitor = target.value.trim();
    if (t === 'dlq_growth' && target.value.trim()) when.consumer = target.value.trim();
    if (t.startsWith('ticket_') && prio.value) when.min_priority = prio.value;
    const checked = (boxes) => boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
    const body = {
      name: name.value.trim(),
      enabled: enabled.checked,
      when,
      filters: { project_ids: checked(projBoxes).map(Number), environments: list(envs.value), levels: checked(levelBoxes), tags: f.tags || {} },
      channels: checked(chBoxes).map(Number),
      throttle_minutes: throttle.value === '' ? null : Number(throttle.value),
    };
    try {
      if (rule) await api('PUT', `/api/alerts/rules/${rule.id}`, body);
      else await post('/api/alerts/rules', body);
      toast(rule ? 'Rule saved' : 'Rule created');
      done(true);
    } catch (ex) {
      err.replaceChildren(errorBox(ex));
    }
  });
  return form;
}

function channelTarget(c) {
  if (c.type === 'email') return (c.to || []).join(', ');
  return c.url || '';
}

/** The channel form (create when `ch` is null). */
function channelForm(ch, done) {
  const c = ch || { name: '', type: 'email', to: [] };
  const name = h('input', { type: 'text', id: 'channel-name', value: c.name || '', required: true, maxlength: 200 });
  const type = select('channel-type', [['email', 'Email'], ['slack', 'Slack incoming webhook'], ['webhook', 'Webhook (signed)']], c.type);
  if (ch) type.disabled = false;
  const target = h('input', { type: 'text', id: 'channel-target', value: channelTarget(c), required: true });
  const targetLabel = h('span');
  const showType = () => {
    targetLabel.textContent = type.value === 'email' ? 'Send to (comma separated addresses)' : type.value === 'slack' ? 'Slack webhook URL (https://hooks.slack.com/…)' : 'Webhook URL';
    target.placeholder = type.value === 'email' ? 'oncall@example.com' : 'https://…';
  };
  type.addEventListener('change', showType);
  showType();
  const rotate = h('input', { type: 'checkbox', id: 'channel-rotate' });
  const err = h('div');
  const form = h('form', { id: 'channel-form', class: 'stack' },
    h('h3', null, ch ? `Edit channel “${ch.name}”` : 'New channel'),
    field('Name', name), field('Type', type),
    h('label', { class: 'field' }, targetLabel, target),
    ch && ch.type === 'webhook' ? h('label', { class: 'check' }, rotate, ' Rotate the signing secret') : null,
    err,
    h('div', { class: 'row' }, h('button', { class: 'btn primary', type: 'submit', id: 'channel-save' }, ch ? 'Save channel' : 'Create channel'),
      h('button', { class: 'btn', type: 'button', onclick: () => done(false) }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), type: type.value };
    if (type.value === 'email') body.to = list(target.value);
    else body.url = target.value.trim();
    if (type.value === 'webhook' && ch && ch.type === 'webhook') body.secret = ch.secret || '';
    if (rotate.checked) body.rotate_secret = true;
    try {
      if (ch) await api('PUT', `/api/alerts/channels/${ch.id}`, body);
      else await post('/api/alerts/channels', body);
      toast(ch ? 'Channel saved' : 'Channel created');
      done(true);
    } catch (ex) {
      err.replaceChildren(errorBox(ex));
    }
  });
  return form;
}

function deliveryStatus(st) {
  const cls = st === 'delivered' ? 'resolved' : st === 'failed' ? 'regressed' : 'unresolved';
  return badge(st || 'pending', cls);
}

/** The fired alerts with, per channel, the status, attempts, last error and reply. */
function historyEl(fired, channels) {
  if (!fired.length) return h('div', { class: 'muted small', id: 'alert-history-empty' }, 'No alert has fired yet.');
  const chName = (id) => (channels.find((c) => c.id === id) || {}).name || `channel #${id}`;
  return h('div', { id: 'alert-history' }, fired.map((f) => {
    const a = f.alert || {};
    const ds = Array.isArray(f.deliveries) ? f.deliveries : [];
    const failed = ds.some((d) => d.status === 'failed');
    return h('details', { class: 'frame', dataset: { fired: f.id } },
      h('summary', null,
        h('span', { class: 'fn' }, a.rule_name || ''),
        h('span', { class: 'muted' }, a.reason || a.kind || ''),
        h('span', { class: 'file' }, a.title || ''),
        ds.map((d) => deliveryStatus(d.status)), failed ? h('span', { class: 'sr-only' }, 'a delivery failed') : null,
        a.at_ms ? timeEl(a.at_ms) : null),
      h('div', { class: 'vars' }, h('div', { class: 'table-wrap' }, h('table', { class: 'tbl deliveries' },
        h('thead', null, h('tr', null, h('th', null, 'Channel'), h('th', null, 'Status'), h('th', null, 'Attempts'), h('th', null, 'Last error'), h('th', null, 'Receiver replied'), h('th', null, 'Updated'))),
        h('tbody', null, ds.length ? ds.map((d) => h('tr', { dataset: { channel: d.channel_id } },
          h('td', null, chName(d.channel_id)), h('td', null, deliveryStatus(d.status)), h('td', { class: 'num' }, String(d.attempts ?? 0)),
          h('td', { class: 'small' }, d.last_error || '–'),
          h('td', null, d.reply ? h('pre', { class: 'snippet reply' }, d.reply) : h('span', { class: 'muted small' }, can('admin') ? '–' : 'admins only')),
          h('td', null, d.updated_ms ? timeEl(d.updated_ms) : '–'))) : h('tr', null, h('td', { colspan: 6, class: 'muted' }, 'No channel to deliver to.'))))),
      a.url ? h('div', { class: 'small' }, h('a', { href: a.url.replace(/^https?:\/\/[^/]+\/?/, '/') }, 'Open what fired it')) : null));
  }));
}

export async function view(ctx) {
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Alerts'),
    h('div', { class: 'muted' }, 'Rules watch for new issues, regressions, frequency, monitors, dead letters and tickets, and notify channels.'))));
  let rules; let channels = []; let fired = [];
  try {
    const r = await Promise.all([
      get('/api/alerts/rules'),
      can('admin') ? get('/api/alerts/channels') : Promise.resolve({ channels: [] }),
      get('/api/alerts/history?limit=50'),
    ]);
    rules = r[0].rules || [];
    channels = r[1].channels || [];
    fired = r[2].alerts || [];
  } catch (e) {
    if (ctx.alive()) root.append(e.status === 404 ? notAvailable('Alerts') : errorBox(e));
    return;
  }
  if (!ctx.alive()) return;
  const admin = can('admin');
  const reload = () => navigate(location.hash);
  const projects = session.projects || [];
  const chName = (id) => (channels.find((c) => c.id === id) || {}).name || `#${id}`;

  // Rules
  const ruleEditor = h('div', { id: 'rule-editor' });
  const openRule = (rule) => {
    ruleEditor.replaceChildren(ruleForm(rule, channels, projects, (saved) => (saved ? reload() : ruleEditor.replaceChildren())));
    const first = ruleEditor.querySelector('input');
    if (first) first.focus();
  };
  const ruleRows = rules.map((r) => h('tr', { dataset: { rule: r.id } },
    h('td', null, r.name),
    h('td', null, admin
      ? h('button', { class: ['btn small', r.enabled ? '' : 'muted'], type: 'button', dataset: { toggle: r.id }, 'aria-pressed': String(!!r.enabled),
        onclick: async () => {
          const body = { name: r.name, enabled: !r.enabled, when: r.when, filters: r.filters, channels: r.channels, throttle_minutes: r.throttle_minutes };
          if (await attempt(() => api('PUT', `/api/alerts/rules/${r.id}`, body), r.enabled ? 'Rule disabled' : 'Rule enabled')) reload();
        } }, r.enabled ? 'On' : 'Off')
      : badge(r.enabled ? 'on' : 'off', r.enabled ? 'resolved' : 'muted')),
    h('td', null, triggerText(r.when)),
    h('td', { class: 'small' }, (r.channels || []).map(chName).join(', ') || '–'),
    h('td', { class: 'small' }, r.throttle_minutes == null ? 'default' : `${r.throttle_minutes} min`),
    h('td', null, admin ? h('div', { class: 'row' },
      h('button', { class: 'btn small', type: 'button', dataset: { edit: r.id }, onclick: () => openRule(r) }, 'Edit'),
      h('button', { class: 'btn small danger', type: 'button', dataset: { delete: r.id }, onclick: async () => {
        if (!(await confirmDialog(`Delete the rule “${r.name}”? Its history stays.`, 'Delete'))) return;
        if ((await attempt(() => del(`/api/alerts/rules/${r.id}`), 'Rule deleted')) !== undefined) reload();
      } }, 'Delete')) : null)));
  const rulesPanel = panel('Rules', [
    rules.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'rules' },
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Enabled'), h('th', null, 'When'), h('th', null, 'Channels'), h('th', null, 'Throttle'), h('th'))),
      h('tbody', null, ruleRows))) : h('div', { class: 'muted small', id: 'no-rules' }, 'No rules yet.'),
    ruleEditor,
  ], admin ? h('button', { class: 'btn small primary', type: 'button', id: 'new-rule', onclick: () => openRule(null) }, 'New rule') : null);

  // Channels (admins only: they hold secrets)
  let channelsPanel = null;
  if (admin) {
    const chEditor = h('div', { id: 'channel-editor' });
    const openChannel = (c) => {
      chEditor.replaceChildren(channelForm(c, (saved) => (saved ? reload() : chEditor.replaceChildren())));
      const first = chEditor.querySelector('input');
      if (first) first.focus();
    };
    const rows = channels.map((c) => {
      const result = h('div', { class: 'small test-result' });
      return h('tr', { dataset: { channel: c.id } },
        h('td', null, c.name), h('td', null, h('code', null, c.type)), h('td', { class: 'small mono' }, channelTarget(c)),
        h('td', null, h('div', { class: 'row' },
          h('button', { class: 'btn small', type: 'button', dataset: { test: c.id }, onclick: async () => {
            result.replaceChildren(h('span', { class: 'muted' }, 'Sending…'));
            try {
              const r = await post(`/api/alerts/channels/${c.id}/test`);
              result.replaceChildren(badge('delivered', 'resolved'), r && r.answer ? ` ${typeof r.answer === 'string' ? r.answer : JSON.stringify(r.answer)}` : '');
            } catch (e) {
              result.replaceChildren(badge('failed', 'regressed'), ` ${e.message}`);
            }
          } }, 'Test'),
          h('button', { class: 'btn small', type: 'button', dataset: { edit: c.id }, onclick: () => openChannel(c) }, 'Edit'),
          h('button', { class: 'btn small danger', type: 'button', dataset: { delete: c.id }, onclick: async () => {
            if (!(await confirmDialog(`Delete the channel “${c.name}”?`, 'Delete'))) return;
            if ((await attempt(() => del(`/api/alerts/channels/${c.id}`), 'Channel deleted')) !== undefined) reload();
          } }, 'Delete')), result));
    });
    channelsPanel = panel('Channels', [
      channels.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'channels' },
        h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Type'), h('th', null, 'Sends to'), h('th'))),
        h('tbody', null, rows))) : h('div', { class: 'muted small', id: 'no-channels' }, 'No channels yet: add where alerts go (email, Slack, a webhook).'),
      chEditor,
    ], h('button', { class: 'btn small primary', type: 'button', id: 'new-channel', onclick: () => openChannel(null) }, 'New channel'));
  }

  const historyPanel = panel('Delivery history', historyEl(fired, channels));
  root.append(h('div', { class: 'stack' }, rulesPanel, channelsPanel, historyPanel));
}
