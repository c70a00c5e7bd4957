// Projects: list, create, DSN keys with copy buttons and ready-to-paste SDK snippets.
import { h, timeEl } from '../dom.js';
import { get, post, api } from '../api.js';
import { can, navigate, panel, errorBox, copyButton, attempt, confirmDialog, badge, toast } from '../ui.js';

export async function list(ctx) {
  const { root } = ctx;
  const r = await get('/api/projects');
  if (!ctx.alive()) return;
  const projects = (r && r.projects) || [];
  root.append(h('div', { class: 'page-head' }, h('div', null, h('h1', null, projects.length ? 'Projects' : 'Create your first project'),
    h('div', { class: 'muted', id: 'projects-intro' }, projects.length ? 'Each project has its own issues and DSN keys.'
      : 'Name the app you want to watch. You get a DSN to paste into its Sentry SDK, then Hearth waits for the first event.'))));

  if (can('admin')) {
    const name = h('input', { type: 'text', id: 'new-project-name', placeholder: 'e.g. web-backend', required: true, 'aria-label': 'Project name' });
    const err = h('div');
    const form = h('form', { class: 'row', id: 'new-project' }, name,
      h('button', { class: 'btn primary', type: 'submit' }, 'Create project'), err);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.replaceChildren();
      try {
        const out = await post('/api/projects', { name: name.value.trim() });
        await ctx.app.loadProjects();
        toast(`Project ${out.project.name} created`);
        navigate(`#/projects/${out.project.id}`);
      } catch (ex) {
        err.replaceChildren(errorBox(ex));
      }
    });
    root.append(h('div', { class: 'panel pad' }, form));
    root.append(h('div', { class: 'pad' }));
  }

  if (!projects.length) {
    root.append(h('div', { class: 'empty panel' }, 'No projects yet.', can('admin') ? ' Create one above to get a DSN.' : ''));
    return;
  }
  const grid = h('div', { class: 'grid cols-3', id: 'project-list' });
  for (const p of projects) {
    grid.append(h('section', { class: 'panel card project-card', dataset: { id: p.id } },
      h('h2', null, h('a', { href: `#/projects/${p.id}/issues` }, p.name)),
      h('div', { class: 'muted small' }, 'Created ', timeEl(p.created_ms)),
      h('div', { class: 'row' },
        h('a', { class: 'btn small', href: `#/projects/${p.id}/issues` }, 'Issues'),
        h('a', { class: 'btn small', href: `#/projects/${p.id}/stats` }, 'Stats'),
        h('a', { class: 'btn small', href: `#/projects/${p.id}` }, 'Keys & setup'))));
  }
  root.append(grid);
}

/** SDK snippets keyed by tab name; `dsn` and `base` are plain strings placed as text. */
function snippets(dsn, base) {
  return {
    Python: `pip install sentry-sdk

import sentry_sdk
sentry_sdk.init(
    dsn="${dsn}",
    release="my-app@1.0.0",
    environment="production",
)`,
    Node: `npm install @sentry/node

const Sentry = require("@sentry/node");
Sentry.init({
  dsn: "${dsn}",
  release: "my-app@1.0.0",
  environment: "production",
});`,
    'Browser (Sentry SDK)': `npm install @sentry/browser

import * as Sentry from "@sentry/browser";
Sentry.init({ dsn: "${dsn}" });`,
    'Browser (capture.js)': `<!-- No SDK needed: Hearth's own tiny capture script -->
<script src="${base}/static/capture.js" data-dsn="${dsn}" defer></script>`,
    Rust: `# Cargo.toml
sentry = "0.49"

// main.rs
let _guard = sentry::init(("${dsn}", sentry::ClientOptions {
    release: sentry::release_name!(),
    ..Default::default()
}));`,
  };
}

export function snippetBox(text, id) {
  const pre = h('pre', { id }, h('code', null, text));
  return h('div', { class: 'snippet' }, pre, copyButton(() => text, pre));
}

export async function detail(ctx) {
  const { root } = ctx;
  const id = Number(ctx.params[0]);
  const [plist, keysR] = await Promise.all([get('/api/projects'), get(`/api/projects/${id}/keys`)]);
  if (!ctx.alive()) return;
  const project = ((plist && plist.projects) || []).find((p) => p.id === id);
  if (!project) {
    root.append(errorBox(new Error('No such project.')));
    return;
  }
  const keys = (keysR && keysR.keys) || [];
  // First run: until the project has an issue, the SDK setup comes first and a panel waits
  // for the first event, then opens its issue.
  let firstIssue = null;
  try { firstIssue = (((await get(`/api/projects/${id}/issues?query=&limit=1`)) || {}).issues || [])[0] || null; } catch { firstIssue = null; }
  if (!ctx.alive()) return;
  const waiting = firstIssue ? null : waitForFirstEvent(ctx, id);
  root.append(h('div', { class: 'page-head' },
    h('div', null, h('h1', null, project.name), h('div', { class: 'muted' }, `Project #${project.id} · created `, timeEl(project.created_ms))),
    h('div', { class: 'row' },
      h('a', { class: 'btn', href: `#/projects/${id}/issues` }, 'Issues'),
      h('a', { class: 'btn', href: `#/projects/${id}/stats` }, 'Stats'),
      h('a', { class: 'btn', href: `#/projects/${id}/sourcemaps` }, 'Source maps'))));

  if (waiting) root.append(waiting, h('div', { class: 'pad' }));
  const setupSlot = h('div');
  if (waiting) root.append(setupSlot, h('div', { class: 'pad' }));

  // Keys
  const tbody = h('tbody');
  for (const k of keys) {
    const key = k.key || {};
    const code = h('code', { class: 'dsn-text', dataset: { key: key.public_key } }, k.dsn);
    tbody.append(h('tr', { class: key.revoked_ms ? 'revoked' : '' },
      h('td', null, key.label || h('span', { class: 'muted' }, 'default')),
      h('td', null, h('div', { class: 'dsn' }, code, copyButton(() => k.dsn, code, 'Copy DSN'))),
      h('td', null, key.revoked_ms ? badge('revoked') : badge('active', 'resolved')),
      h('td', null, !key.revoked_ms && can('admin')
        ? h('button', {
          class: 'btn small danger', type: 'button', dataset: { action: 'revoke' },
          onclick: async () => {
            if (!(await confirmDialog(`Revoke this key? SDKs using it will be refused.`, 'Revoke'))) return;
            if (await attempt(() => post(`/api/projects/${id}/keys/${key.public_key}/revoke`), 'Key revoked')) navigate(location.hash);
          },
        }, 'Revoke') : null)));
  }
  let addKey = null;
  if (can('admin')) {
    const label = h('input', { type: 'text', placeholder: 'label, e.g. staging', 'aria-label': 'Key label' });
    addKey = h('form', { class: 'row' }, label, h('button', { class: 'btn small', type: 'submit' }, 'Add key'));
    addKey.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (await attempt(() => post(`/api/projects/${id}/keys`, { label: label.value.trim() }), 'Key added')) navigate(location.hash);
    });
  }
  root.append(panel('DSN keys', [
    h('div', { class: 'table-wrap' }, h('table', { class: 'tbl', id: 'keys' },
      h('thead', null, h('tr', null, h('th', null, 'Label'), h('th', null, 'DSN'), h('th', null, 'State'), h('th', null, ''))),
      tbody)),
  ], addKey));

  root.append(h('div', { class: 'pad' }));
  root.append(await groupingPanel(id));

  // Snippets for the first active key.
  const active = keys.find((k) => !(k.key && k.key.revoked_ms));
  const setupTarget = waiting ? setupSlot : root;
  if (!waiting) root.append(h('div', { class: 'pad' }));
  if (!active) {
    setupTarget.append(panel('Set up an SDK', h('div', { class: 'note' }, 'Add a key to get setup snippets.')));
    return;
  }
  const snips = snippets(active.dsn, location.origin);
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const body = h('div');
  const show = (name) => {
    for (const b of tabs.children) {
      b.classList.toggle('active', b.dataset.tab === name);
      b.setAttribute('aria-selected', String(b.dataset.tab === name));
    }
    body.replaceChildren(snippetBox(snips[name], 'snippet'));
  };
  for (const name of Object.keys(snips)) {
    tabs.append(h('button', { class: 'btn small', type: 'button', role: 'tab', dataset: { tab: name }, onclick: () => show(name) }, name));
  }
  show('Python');
  setupTarget.append(panel('Set up an SDK', [
    h('p', { class: 'muted' }, 'Any Sentry SDK works: point it at this DSN. Events show up under Issues within a second.'),
    h('div', { class: 'dsn' }, h('code', { id: 'setup-dsn' }, active.dsn), copyButton(() => active.dsn, null, 'Copy DSN')),
    h('div', { class: 'pad' }),
    tabs, body,
  ]));
}

/** "Waiting for the first event…": watches the live feed (and polls as a fallback), then
 * opens the first issue of project `id`. */
function waitForFirstEvent(ctx, id) {
  const box = h('section', { class: 'panel', id: 'first-event' }, h('div', { class: 'panel-body waiting' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    h('div', null, h('strong', null, 'Waiting for the first event…'),
      h('div', { class: 'muted small' }, 'Install an SDK with the DSN below and send an error; its issue opens here as soon as it arrives.'))));
  let busy = false;
  const check = async () => {
    if (busy || !ctx.alive()) return;
    busy = true;
    try {
      const first = (((await get(`/api/projects/${id}/issues?query=&limit=1`)) || {}).issues || [])[0];
      if (first && ctx.alive()) {
        box.replaceChildren(h('div', { class: 'panel-body' }, h('strong', null, 'First event received: '),
          h('a', { href: `#/issues/${first.id}`, id: 'first-issue-link' }, first.title || 'open the issue')));
        clearInterval(timer);
        setTimeout(() => { if (ctx.alive()) navigate(`#/issues/${first.id}`); }, 800);
      }
    } catch { /* try again */ }
    busy = false;
  };
  const timer = setInterval(check, 5000);
  ctx.onLive = (msg) => {
    const p = msg.payload || {};
    const subj = msg.subject || '';
    if ((subj === 'event.stored' || subj.startsWith('issue.')) && (p.project_id == null || Number(p.project_id) === id)) check();
  };
  ctx.cleanup = () => clearInterval(timer);
  return box;
}

// Issue grouping: the version (with the upgrade), and the project's fingerprint and stack-trace
// rules in Sentry's syntax. Rule text is user input: it only ever goes into textareas as text.
async function groupingPanel(id) {
  let g;
  try {
    g = ((await get(`/api/projects/${id}/grouping`)) || {}).grouping || {};
  } catch (ex) {
    return panel('Issue grouping', errorBox(ex));
  }
  const admin = can('admin');
  const info = h('div', { id: 'grouping-version' },
    `Grouping version ${g.version}`,
    g.upgrade_available ? h('span', { class: 'muted' }, ` · version ${g.latest_version} is available`) : null,
    g.in_transition ? h('div', { class: 'muted small' }, `Upgraded from version ${g.previous_version}; until `, timeEl(g.transition_until_ms, false),
      ' events also find their issues by the previous version\'s hash, so no issue is split.') : null);
  let upgrade = null;
  if (admin && g.upgrade_available) {
    upgrade = h('button', {
      class: 'btn small', type: 'button', id: 'grouping-upgrade',
      onclick: async () => {
        if (!(await confirmDialog(`Move this project to grouping version ${g.latest_version}? Existing issues keep receiving their events; new kinds of events are grouped the new way.`, 'Upgrade'))) return;
        if (await attempt(() => post(`/api/projects/${id}/grouping/upgrade`), 'Grouping upgraded')) navigate(location.hash);
      },
    }, `Upgrade to version ${g.latest_version}`);
  }
  const fp = h('textarea', { id: 'fingerprint-rules', 'aria-label': 'Fingerprint rules', readOnly: !admin, spellcheck: 'false',
    placeholder: 'error.type:ChunkLoadError -> chunkloaderror\nmessage:"*timeout*" -> timeouts' });
  fp.value = g.fingerprint_rules || '';
  const st = h('textarea', { id: 'stacktrace-rules', 'aria-label': 'Stack-trace rules', readOnly: !admin, spellcheck: 'false',
    placeholder: 'stack.module:vendor/** -app\nstack.function:retry_wrapper -group' });
  st.value = g.stacktrace_rules || '';
  const err = h('div', { id: 'grouping-error' });
  let form = null;
  if (admin && !g.upgrade_available) {
    form = h('form', { class: 'stack rules-editor', id: 'grouping-rules' },
      h('label', { for: 'fingerprint-rules' }, h('strong', null, 'Fingerprint rules'), h('span', { class: 'muted small' }, ' — matchers -> fingerprint; the first matching rule wins over the default grouping and SDK fingerprints')),
      fp,
      h('label', { for: 'stacktrace-rules' }, h('strong', null, 'Stack-trace rules'), h('span', { class: 'muted small' }, ' — matchers then +app / -app / +group / -group (^ callees, v callers)')),
      st, err,
      h('div', { class: 'row end' }, h('button', { class: 'btn primary small', type: 'submit' }, 'Save rules')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.replaceChildren();
      try {
        await api('PUT', `/api/projects/${id}/grouping`, { fingerprint_rules: fp.value, stacktrace_rules: st.value });
        toast('Grouping rules saved; they apply to new events');
      } catch (ex) {
        err.replaceChildren(errorBox(ex));
      }
    });
  } else {
    form = h('div', { class: 'stack rules-editor' },
      g.upgrade_available ? h('div', { class: 'note' }, `Rules take effect from grouping version 2.`) : null,
      h('strong', null, 'Fingerprint rules'), fp, h('strong', null, 'Stack-trace rules'), st);
  }
  const builtins = h('details', { class: 'small' }, h('summary', null, 'Built-in rules (always applied on version 2)'),
    h('pre', { id: 'builtin-fingerprint-rules' }, h('code', null, g.builtin_fingerprint_rules || '')),
    h('pre', { id: 'builtin-stacktrace-rules' }, h('code', null, g.builtin_stacktrace_rules || '')));
  return panel('Issue grouping', [h('div', { class: 'row between' }, info, upgrade), form, builtins]);
}
