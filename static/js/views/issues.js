// The issue list: search, filters, sort, sparklines, bulk actions, keyboard navigation and
// live refresh from the bus.
import { h, sparkline, fmtNum, ago, when } from '../dom.js';
import { get, post, qs } from '../api.js';
import { can, navigate, errorBox, attempt, badge, statusLabel, currentProject, notAvailable } from '../ui.js';
import { tabs } from './insights.js';

const SORTS = [['last_seen', 'Last seen'], ['first_seen', 'First seen'], ['events', 'Events'], ['users', 'Users']];
const STATUSES = [['is:unresolved', 'Unresolved'], ['is:resolved', 'Resolved'], ['is:muted', 'Muted'], ['', 'All']];
const LEVELS = [['', 'Any level'], ['level:fatal', 'Fatal'], ['level:error', 'Error'], ['level:warning', 'Warning'], ['level:info', 'Info']];

/** Replaces the `key:` token in a query string with `token` (or removes it when empty). */
function setToken(query, key, token) {
  const rest = query.split(/\s+/).filter((t) => t && !t.startsWith(key + ':'));
  if (token) rest.unshift(token);
  return rest.join(' ');
}

function tokenOf(query, key) {
  return query.split(/\s+/).find((t) => t.startsWith(key + ':')) || '';
}

export async function list(ctx) {
  const { root } = ctx;
  const pid = Number(ctx.params[0]);
  const query = ctx.query.has('query') ? ctx.query.get('query') : 'is:unresolved';
  const sort = ctx.query.get('sort') || 'last_seen';
  const project = currentProject();
  const go = (q, so) => navigate(`#/projects/${pid}/issues${qs({ query: q, sort: so === 'last_seen' ? '' : so })}`);

  // Toolbar
  const search = h('input', {
    type: 'search', id: 'search', value: query, placeholder: 'Search: text, is:resolved, level:error, release:1.2, user:…, tag:value',
    'aria-label': 'Search issues', autocomplete: 'off', spellcheck: 'false',
  });
  const searchForm = h('form', { class: 'search', role: 'search' }, search);
  searchForm.addEventListener('submit', (e) => { e.preventDefault(); go(search.value.trim(), sort); });
  const mkSelect = (id, opts, cur, onchange, label) => {
    const sel = h('select', { id, 'aria-label': label }, opts.map(([v, t]) => h('option', { value: v }, t)));
    sel.value = cur;
    sel.addEventListener('change', () => onchange(sel.value));
    return sel;
  };
  const statusSel = mkSelect('filter-status', STATUSES, tokenOf(query, 'is'), (v) => go(setToken(search.value, 'is', v), sort), 'Status');
  const levelSel = mkSelect('filter-level', LEVELS, tokenOf(query, 'level'), (v) => go(setToken(search.value, 'level', v), sort), 'Level');
  const sortSel = mkSelect('sort', SORTS, sort, (v) => go(search.value.trim(), v), 'Sort by');

  // Bulk bar
  const selected = new Set();
  const selCount = h('span', { class: 'muted' });
  const bulkBtns = [];
  const bulk = (status, label) => {
    const b = h('button', { class: 'btn small', type: 'button', dataset: { bulk: status }, disabled: true }, label);
    b.addEventListener('click', async () => {
      const ids = [...selected];
      if (await attempt(() => post('/api/issues/bulk', { ids, status }), `${ids.length} issue(s) updated`)) {
        selected.clear();
        refresh();
      }
    });
    bulkBtns.push(b);
    return b;
  };
  const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select all', id: 'select-all' });
  const bulkbar = can('agent')
    ? h('div', { class: 'bulkbar' }, selectAll, selCount, bulk('resolved', 'Resolve'), bulk('muted', 'Mute'), bulk('unresolved', 'Unresolve'))
    : null;
  const updateSel = () => {
    selCount.textContent = selected.size ? `${selected.size} selected` : 'Select issues for bulk actions';
    for (const b of bulkBtns) b.disabled = selected.size === 0;
    for (const row of listEl.children) row.classList.toggle('selected', selected.has(Number(row.dataset.id)));
    selectAll.checked = selected.size > 0 && selected.size === listEl.children.length;
  };
  selectAll.addEventListener('change', () => {
    selected.clear();
    if (selectAll.checked) for (const row of listEl.children) selected.add(Number(row.dataset.id));
    for (const cb of listEl.querySelectorAll('input[type=checkbox]')) cb.checked = selectAll.checked;
    updateSel();
  });

  // The sparkline's range: the last 24 hours by hour, or the last 14 days by day (kept).
  let range = '24h';
  try { range = localStorage.getItem('hearth.spark') === '14d' ? '14d' : '24h'; } catch { /* private mode */ }
  const rangeBtn = h('button', { class: 'linkish', type: 'button', id: 'spark-range', title: 'Switch between 24 hours and 14 days' }, range === '14d' ? '14d' : '24h');
  rangeBtn.addEventListener('click', () => {
    range = range === '24h' ? '14d' : '24h';
    rangeBtn.textContent = range;
    try { localStorage.setItem('hearth.spark', range); } catch { /* private mode */ }
    load(false);
  });
  const listEl = h('ul', { class: 'issue-list', id: 'issue-list', role: 'listbox', 'aria-label': 'Issues' });
  const status = h('div');
  const more = h('div', { class: 'pager' });
  const head = h('div', { class: 'issue-head-row' },
    h('span'), h('span'), h('span', null, 'Issue'), h('span', { class: 'spark-cell' }, rangeBtn),
    h('span', { class: 'num-cell' }, 'Events'), h('span', { class: 'num-cell users-cell' }, 'Users'),
    h('span', { class: 'assignee-cell' }, 'Who'));

  root.append(
    h('div', { class: 'page-head' },
      h('div', null, h('h1', null, 'Issues'), h('div', { class: 'muted' }, project ? project.name : `Project #${pid}`)),
    ),
    tabs(pid, 'issues'),
    h('section', { class: 'panel' },
      h('div', { class: 'toolbar' }, searchForm, statusSel, levelSel, sortSel),
      bulkbar, head, status, listEl, more),
    h('div', { class: 'kbd-help' }, h('kbd', null, 'j'), ' / ', h('kbd', null, 'k'), ' move · ',
      h('kbd', null, 'Enter'), ' open · ', h('kbd', null, 'x'), ' select · ', h('kbd', null, '/'), ' search'));

  let counts = new Map();
  let cursor = null;

  // On a list of one status, every row has it: showing it again is noise.
  const showStatus = (st) => {
    const is = tokenOf(query, 'is');
    if (is === 'is:unresolved') return st === 'regressed';
    if (is === 'is:resolved') return st === 'resolved_next_release';
    if (is === 'is:muted') return false;
    return true;
  };

  function avatar(it) {
    if (it.assignee_id == null) return h('span', { class: 'avatar none', title: 'unassigned' }, '');
    const name = (it.assignee && it.assignee.name) || `user #${it.assignee_id}`;
    const initials = name.split(/[\s.@_-]+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
    return h('span', { class: 'avatar', title: `assigned to ${name}`, 'aria-label': `assigned to ${name}` }, initials);
  }

  function row(it) {
    const cb = can('agent') ? h('input', { type: 'checkbox', 'aria-label': 'Select issue', checked: selected.has(it.id), tabindex: '-1' }) : h('span');
    if (cb.tagName === 'INPUT') {
      cb.addEventListener('click', (e) => e.stopPropagation());
      cb.addEventListener('change', () => { cb.checked ? selected.add(it.id) : selected.delete(it.id); updateSel(); });
    }
    const li = h('li', {
      class: ['issue-row', counts.has(it.id) && counts.get(it.id) !== it.count ? 'fresh' : ''],
      role: 'option', tabindex: '0', dataset: { id: it.id, status: it.status || '' },
    },
    cb,
    h('span', { class: ['level', it.level || 'error'], title: it.level || 'error' }),
    h('div', { class: 'issue-main' },
      h('a', { class: 'issue-title', href: `#/issues/${it.id}`, tabindex: '-1' }, it.title || '(no title)'),
      h('div', { class: 'issue-sub' },
        // The status only where it says something: an unresolved list shows no "unresolved".
        showStatus(it.status) ? badge(statusLabel(it.status), it.status) : null,
        it.unhandled ? badge('unhandled', 'regressed') : null,
        h('span', { class: ['lvl-text', it.level || 'error'] }, it.level || 'error'),
        it.culprit ? h('span', { class: 'culprit', title: it.culprit }, it.culprit) : null),
      h('div', { class: 'issue-sub facts' },
        (it.releases || []).length ? h('span', { class: 'rel', title: `releases: ${(it.releases || []).join(', ')}` }, (it.releases || []).join(', ')) : null,
        it.environment ? h('span', { class: 'env' }, it.environment) : null,
        h('span', { title: `first seen ${when(it.first_seen_ms)}` }, `${ago(it.last_seen_ms)} · first seen ${ago(it.first_seen_ms)}`))),
    h('div', { class: 'spark-cell' }, sparkline(range === '14d' && Array.isArray(it.sparkline_14d) ? it.sparkline_14d : it.sparkline, range === '14d' ? 'days' : 'hours')),
    h('div', { class: 'num-cell events', title: `${it.count} events` }, fmtNum(it.count)),
    h('div', { class: 'num-cell users-cell', title: `${it.user_count} users` }, fmtNum(it.user_count)),
    h('div', { class: 'assignee-cell' }, avatar(it)));
    li.addEventListener('click', () => navigate(`#/issues/${it.id}`));
    return li;
  }

  async function load(append) {
    let r;
    try {
      r = await get(`/api/projects/${pid}/issues${qs({ query, sort, limit: 50, cursor: append ? cursor : '' })}`);
    } catch (e) {
      if (!ctx.alive()) return;
      status.replaceChildren(e.status === 404 && e.code !== 'not_found_project' && /route/.test(e.message)
        ? notAvailable('Issue tracking') : errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    status.replaceChildren();
    const items = (r && r.issues) || [];
    cursor = (r && r.next_cursor) || null;
    const focusedId = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.id;
    const rows = items.map(row);
    if (append) listEl.append(...rows);
    else listEl.replaceChildren(...rows);
    for (const it of items) counts.set(it.id, it.count);
    if (!listEl.children.length) {
      status.replaceChildren(h('div', { class: 'empty', id: 'no-issues' },
        query ? 'No issues match this search.' : 'No issues yet. Send an event with an SDK: see the project\'s setup page.'));
    }
    if (focusedId) {
      const again = listEl.querySelector(`[data-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
    more.replaceChildren(cursor ? h('button', { class: 'btn', type: 'button', onclick: () => load(true) }, 'Load more') : '');
    for (const id of [...selected]) if (!items.some((i) => i.id === id) && !append) selected.delete(id);
    if (bulkbar) updateSel();
  }

  let timer = null;
  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(() => { if (ctx.alive()) load(false); }, 250);
  }

  // Live: refetch (debounced) on anything that may change this list.
  ctx.onLive = (msg) => {
    const subj = msg.subject || '';
    if (!(subj.startsWith('issue.') || subj === 'event.stored' || subj.startsWith('$live.'))) return;
    const p = msg.payload && msg.payload.project_id;
    if (p != null && Number(p) !== pid) return;
    refresh();
  };

  // Keyboard: j/k or arrows move, Enter opens, x selects, / searches.
  const onKey = (e) => {
    if (!ctx.alive()) return;
    const t = e.target;
    const typing = t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT');
    if (e.key === '/' && !typing) { e.preventDefault(); search.focus(); search.select(); return; }
    if (typing || e.metaKey || e.ctrlKey || e.altKey) return;
    const rows = [...listEl.children];
    if (!rows.length) return;
    const i = rows.indexOf(document.activeElement);
    if (e.key === 'j' || e.key === 'ArrowDown') { e.preventDefault(); rows[Math.min(rows.length - 1, i + 1)].focus(); }
    else if (e.key === 'k' || e.key === 'ArrowUp') { e.preventDefault(); rows[Math.max(0, i - 1)].focus(); }
    else if (e.key === 'Enter' && i >= 0) { e.preventDefault(); navigate(`#/issues/${rows[i].dataset.id}`); }
    else if (e.key === 'x' && i >= 0) {
      const cb = rows[i].querySelector('input[type=checkbox]');
      if (cb) { cb.checked = !cb.checked; cb.dispatchEvent(new Event('change')); }
    }
  };
  document.addEventListener('keydown', onKey);
  ctx.cleanup = () => { document.removeEventListener('keydown', onKey); clearTimeout(timer); };

  await load(false);
}
