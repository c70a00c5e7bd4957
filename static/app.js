// Hearth dashboard entry point: session, hash router, top bar and live updates.
import { h, clear } from './js/dom.js';
import { get, post, setUnauthorizedHandler } from './js/api.js';
import { session, navigate, errorBox, toast } from './js/ui.js';
import * as auth from './js/views/auth.js';
import * as projects from './js/views/projects.js';
import * as issues from './js/views/issues.js';
import * as issue from './js/views/issue.js';
import * as stats from './js/views/stats.js';
import * as system from './js/views/system.js';
import * as extra from './js/views/extra.js';
import * as chat from './js/views/chat.js';
import * as suggest from './js/views/suggest.js'; // issue 19
import * as monitors from './js/views/monitors.js';
import * as alertsView from './js/views/alerts.js';
import * as insights from './js/views/insights.js';
import * as sourcemaps from './js/views/sourcemaps.js';

const app = document.getElementById('app');

// [pattern, view, nav key]; the first match wins.
const ROUTES = [
  [/^\/login$/, auth.login, null, true],
  [/^\/setup$/, auth.setup, null, true],
  [/^\/projects$/, projects.list, 'projects'],
  [/^\/projects\/(\d+)$/, projects.detail, 'projects'],
  [/^\/projects\/(\d+)\/issues$/, issues.list, 'issues'],
  [/^\/projects\/(\d+)\/stats$/, stats.view, 'stats'],
  [/^\/projects\/(\d+)\/feedback$/, insights.feedback, 'issues'],
  [/^\/projects\/(\d+)\/releases$/, insights.releases, 'issues'],
  [/^\/projects\/(\d+)\/transactions$/, insights.transactions, 'issues'],
  [/^\/projects\/(\d+)\/client-reports$/, insights.clientReports, 'issues'],
  [/^\/projects\/(\d+)\/crons$/, insights.crons, 'issues'],
  [/^\/projects\/(\d+)\/sourcemaps$/, sourcemaps.list, 'projects'],
  [/^\/issues$/, (ctx) => projectRedirect(ctx, 'issues'), 'issues'],
  [/^\/stats$/, (ctx) => projectRedirect(ctx, 'stats'), 'stats'],
  [/^\/issues\/(\d+)$/, issue.view, 'issues'],
  [/^\/issues\/(\d+)\/events\/([\w-]+)$/, issue.view, 'issues'],
  [/^\/monitors$/, monitors.list, 'monitors'],
  [/^\/monitors\/new$/, monitors.create, 'monitors'],
  [/^\/monitors\/([\w-]+)$/, monitors.detail, 'monitors'],
  [/^\/alerts$/, alertsView.view, 'alerts'],
  [/^\/mail$/, extra.mail, 'mail'],
  [/^\/chat$/, chat.inbox, 'chat'],
  [/^\/chat\/suggestions$/, suggest.admin, 'chat'], // issue 19
  [/^\/chat\/(\d+)$/, chat.inbox, 'chat'],
  [/^\/system$/, system.view, 'system'],
  [/^\/?$/, (ctx) => projectRedirect(ctx, 'issues'), 'issues'],
];

let current = null; // the live view context
let generation = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path, query: new URLSearchParams(query) };
}

function projectRedirect(ctx, what) {
  const p = session.projectId ?? (session.projects[0] && session.projects[0].id);
  if (p == null) {
    navigate('#/projects');
    return;
  }
  location.replace(`#/projects/${p}/${what}`);
}

async function route() {
  const { path, query } = parseHash();
  const gen = ++generation;
  if (current && current.cleanup) current.cleanup();
  current = null;
  let match = null;
  for (const [re, view, nav, pub] of ROUTES) {
    const m = path.match(re);
    if (m) { match = { view, nav, pub, params: m.slice(1) }; break; }
  }
  if (!match) {
    renderInto(h('div', { class: 'empty' }, 'Nothing here. ', h('a', { href: '#/' }, 'Go to the issues')));
    return;
  }
  if (!match.pub && !session.me) {
    navigate('#/login');
    return;
  }
  // A project-scoped route makes that project the current one.
  if (/^\/projects\/\d+/.test(path)) setProject(Number(match.params[0]));
  setNav(match.nav);
  const root = h('div', { class: 'view' });
  const ctx = {
    params: match.params,
    query,
    root,
    onLive: null,
    cleanup: null,
    alive: () => gen === generation,
    app: { loadMe, loadProjects },
  };
  current = ctx;
  renderInto(root);
  try {
    await match.view(ctx);
  } catch (e) {
    if (ctx.alive()) root.replaceChildren(errorBox(e));
  }
}

function renderInto(el) {
  clear(app).append(el);
}

function setNav(key) {
  document.getElementById('topbar').hidden = !session.me;
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.nav === key);
    if (a.dataset.nav === 'issues' || a.dataset.nav === 'stats') {
      a.href = session.projectId != null ? `#/projects/${session.projectId}/${a.dataset.nav}` : '#/projects';
    }
  }
}

function setProject(id) {
  if (session.projectId === id) return;
  session.projectId = id;
  try { localStorage.setItem('hearth.project', String(id)); } catch { /* private mode */ }
  const sel = document.getElementById('project-select');
  sel.value = String(id);
}

export async function loadProjects() {
  try {
    const r = await get('/api/projects');
    session.projects = (r && r.projects) || [];
  } catch {
    session.projects = [];
  }
  const sel = clear(document.getElementById('project-select'));
  for (const p of session.projects) sel.append(h('option', { value: String(p.id) }, p.name));
  if (!session.projects.length) sel.append(h('option', { value: '' }, 'No projects'));
  let saved = null;
  try { saved = Number(localStorage.getItem('hearth.project')); } catch { /* ignore */ }
  const pick = session.projects.find((p) => p.id === session.projectId)
    || session.projects.find((p) => p.id === saved) || session.projects[0];
  session.projectId = pick ? pick.id : null;
  if (pick) sel.value = String(pick.id);
}

/** Loads the signed-in user; false when nobody is signed in. */
export async function loadMe() {
  try {
    const r = await get('/api/auth/me');
    session.me = (r && (r.user || r)) || null;
  } catch {
    session.me = null;
  }
  const name = document.getElementById('me-name');
  if (session.me) {
    name.textContent = `${session.me.name || session.me.email} · ${session.me.role}`;
    await loadProjects();
    startLive();
  } else {
    stopLive();
  }
  document.getElementById('topbar').hidden = !session.me;
  return !!session.me;
}

// ---- live updates -------------------------------------------------------------------------

let source = null;

function startLive() {
  if (source || typeof EventSource === 'undefined') return;
  const dot = document.getElementById('live-dot');
  source = new EventSource('/api/live?subjects=' + encodeURIComponent('issue.>,event.stored'));
  const deliver = (msg) => {
    if (current && current.onLive) {
      try { current.onLive(msg); } catch (e) { console.error(e); }
    }
  };
  source.addEventListener('open', () => { dot.classList.add('on'); dot.title = 'Live updates: on'; });
  source.addEventListener('error', () => { dot.classList.remove('on'); dot.title = 'Live updates: reconnecting'; });
  // After (re)connecting or missing messages, the picture may be stale: ask for a refetch.
  source.addEventListener('ready', () => deliver({ subject: '$live.ready' }));
  source.addEventListener('missed', () => deliver({ subject: '$live.missed' }));
  source.addEventListener('message', (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    deliver(msg);
  });
}

function stopLive() {
  if (source) source.close();
  source = null;
  document.getElementById('live-dot').classList.remove('on');
}

// ---- start --------------------------------------------------------------------------------

async function start() {
  setUnauthorizedHandler(() => {
    if (session.me) {
      session.me = null;
      stopLive();
      toast('Your session ended; please log in again.', 'err');
    }
    navigate('#/login');
  });
  document.getElementById('logout').addEventListener('click', async () => {
    try { await post('/api/auth/logout'); } catch { /* the cookie may already be gone */ }
    session.me = null;
    stopLive();
    navigate('#/login');
  });
  document.getElementById('project-select').addEventListener('change', (e) => {
    const id = Number(e.target.value);
    if (!id) return;
    setProject(id);
    const { path } = parseHash();
    const tail = path.endsWith('/stats') ? 'stats' : 'issues';
    navigate(`#/projects/${id}/${tail}`);
  });
  // `/setup?token=...` (the link printed on first start) lands here when served by the dashboard.
  const token = new URLSearchParams(location.search).get('token');
  if (token && !location.hash.startsWith('#/setup')) {
    history.replaceState(null, '', '/#/setup?token=' + encodeURIComponent(token));
  }
  const signedIn = await loadMe();
  window.addEventListener('hashchange', route);
  if (!signedIn && !/^#\/(login|setup)/.test(location.hash)) {
    let needsSetup = false;
    try { needsSetup = !!(await get('/api/auth/setup')).needs_setup; } catch { /* older server */ }
    navigate(needsSetup ? '#/setup' : '#/login');
    return;
  }
  route();
}

start();
