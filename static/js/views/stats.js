// Project stats: events per hour (7 days) and per day (30 days), top issues, affected users.
import { h, barChart, fmtNum } from '../dom.js';
import { get } from '../api.js';
import { panel, errorBox, currentProject, notAvailable } from '../ui.js';

const hourLabel = (t, long) => {
  const d = new Date(t);
  return long ? d.toLocaleString() : d.toLocaleDateString(undefined, { weekday: 'short' });
};
const dayLabel = (t, long) => {
  const d = new Date(t);
  return long ? d.toLocaleDateString() : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
};

function topList(items, metric, label) {
  const list = Array.isArray(items) ? items : [];
  if (!list.length) return h('div', { class: 'muted small' }, 'Nothing yet.');
  return h('table', { class: 'tbl' }, h('tbody', null, list.slice(0, 10).map((it) => h('tr', null,
    h('td', null, h('a', { href: `#/issues/${it.id}` }, it.title || `Issue #${it.id}`),
      it.culprit ? h('div', { class: 'muted small mono' }, it.culprit) : null),
    h('td', { class: 'num', title: label }, fmtNum(it[metric]))))));
}

export async function view(ctx) {
  const { root } = ctx;
  const pid = Number(ctx.params[0]);
  const project = currentProject();
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Stats'),
    h('div', { class: 'muted' }, project ? project.name : `Project #${pid}`))));
  let st;
  try {
    st = await get(`/api/projects/${pid}/stats`);
  } catch (e) {
    root.append(e.status === 404 && /no such route/.test(e.message) ? notAvailable('Project stats') : errorBox(e));
    return;
  }
  if (!ctx.alive()) return;
  const totals = st.totals || {};
  root.append(h('div', { class: 'cards' },
    ['events', 'issues', 'users'].map((k) => h('div', { class: 'panel card' },
      h('div', { class: 'muted small' }, { events: 'Events', issues: 'Issues', users: 'Affected users' }[k]),
      h('div', { class: 'big', id: `total-${k}` }, fmtNum(totals[k]))))));
  root.append(h('div', { class: 'pad' }));
  root.append(h('div', { class: 'stack' },
    panel('Events per hour, last 7 days', barChart(st.hourly, hourLabel, (t) => new Date(t).getHours() === 0)),
    panel('Events per day, last 30 days', barChart(st.daily, dayLabel, (t, i) => i % 5 === 0)),
    h('div', { class: 'grid cols-2' },
      panel('Top issues by events', topList(st.top_by_count, 'count', 'events')),
      panel('Top issues by affected users', topList(st.top_by_users, 'user_count', 'users')))));
  let timer = null;
  ctx.onLive = (msg) => {
    if (msg.subject === 'event.stored' || (msg.subject || '').startsWith('issue.')) {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        if (!ctx.alive()) return;
        try {
          const t = (await get(`/api/projects/${pid}/stats`)).totals || {};
          for (const k of ['events', 'issues', 'users']) {
            const el = document.getElementById(`total-${k}`);
            if (el) el.textContent = fmtNum(t[k]);
          }
        } catch { /* keep what we show */ }
      }, 1000);
    }
  };
  ctx.cleanup = () => clearTimeout(timer);
}
