// Source maps (issue 20): a project's uploaded bundles (list, delete) and the event page's
// notes: which frames were mapped (with the minified frame beside), and "no source map for X".
// Every string here comes from uploads or events: it only ever becomes text.
import { h, fmtNum, timeEl } from '../dom.js';
import { get, del } from '../api.js';
import { can, panel, badge, attempt, confirmDialog } from '../ui.js';

const UPLOAD_HELP = 'npx @sentry/cli sourcemaps inject ./dist && '
  + 'SENTRY_AUTH_TOKEN=<Hearth API token> npx @sentry/cli --url ' + location.origin
  + ' sourcemaps upload --org hearth --project <project id or name> ./dist';

function fmtBytes(n) {
  if (n == null) return '–';
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + ' KB';
  return n + ' B';
}

/** `#/projects/:id/sourcemaps` */
export async function list(ctx) {
  const pid = Number(ctx.params[0]);
  const body = h('div', { id: 'sourcemaps' });
  ctx.root.append(
    h('div', { class: 'row between' },
      h('h1', null, 'Source maps'),
      h('a', { class: 'btn small', href: `#/projects/${pid}/issues` }, 'Issues')),
    panel('Upload', [
      h('p', { class: 'muted small' }, 'Build with source maps, then run in your build pipeline:'),
      h('pre', { class: 'mono', id: 'sourcemaps-help' }, UPLOAD_HELP),
    ]),
    body);
  const load = async () => {
    const r = await get(`/api/projects/${pid}/sourcemaps`);
    if (!ctx.alive()) return;
    const bundles = (r && r.bundles) || [];
    body.replaceChildren(panel(`Bundles (${bundles.length})`, bundles.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'tbl' },
        h('thead', null, h('tr', null, h('th', null, 'Uploaded'), h('th', null, 'Release'),
          h('th', null, 'Files'), h('th', null, 'Size'), h('th', null, ''))),
        h('tbody', null, bundles.map((b) => h('tr', { dataset: { bundle: String(b.id) } },
          h('td', null, timeEl(b.created_ms)),
          h('td', null, b.release || h('span', { class: 'muted' }, 'debug ids only')),
          h('td', null, (b.files || []).map((f) => h('div', { class: 'small' },
            badge(f.kind === 'source_map' ? 'map' : f.kind === 'minified_source' ? 'js' : f.kind),
            ' ', h('span', { class: 'mono' }, f.url),
            f.debug_id ? h('span', { class: 'muted mono' }, ` ${f.debug_id}`) : null))),
          h('td', null, fmtBytes(b.size), h('div', { class: 'muted small' }, `${fmtNum((b.files || []).length)} files`)),
          h('td', null, can('admin') ? h('button', {
            class: 'btn small danger', type: 'button',
            onclick: async () => {
              if (!(await confirmDialog('Delete this bundle? Events already stored stay as they are.', 'Delete'))) return;
              await attempt(async () => { await del(`/api/projects/${pid}/sourcemaps/${b.id}`); await load(); }, 'Bundle deleted');
            },
          }, 'Delete') : null))))))
      : h('div', { class: 'muted' }, 'No source maps uploaded for this project yet.')));
  };
  await load();
}

/** A badge for a mapped frame; its title names the minified frame it came from. */
export function frameBadge(f) {
  const d = f && f.data;
  if (!d || d.symbolicated !== true) return null;
  const was = [d.minified_function, d.minified_abs_path].filter(Boolean).join(' in ');
  const el = badge('mapped', 'mapped');
  el.title = `Mapped through a source map (${d.sourcemap || ''}); minified: ${was}`;
  return el;
}

/** The minified frame beside a mapped one, for the frame's details. */
export function minifiedLine(f, raw) {
  const d = f && f.data;
  if (!d || d.symbolicated !== true) return null;
  const loc = raw ? [raw.abs_path || raw.filename, raw.lineno, raw.colno].filter((x) => x != null).join(':') : d.minified_abs_path;
  return h('div', { class: 'muted small mono minified-frame' }, `minified: ${(raw && raw.function) || d.minified_function || '?'} at ${loc || '?'}`);
}

/** Notes for an event whose JavaScript frames could not be mapped. */
export function eventNotes(ev) {
  const errs = Array.isArray(ev && ev.errors) ? ev.errors : [];
  let missing = errs.filter((e) => e && (e.type === 'js_no_source' || e.type === 'js_invalid_source'));
  if (!missing.length && ev && (ev.platform === 'javascript' || ev.platform === 'node')) {
    // The project has no source maps at all (the server then leaves frames alone): name the
    // minified scripts of the exception's frames.
    const values = (ev.exception && Array.isArray(ev.exception.values)) ? ev.exception.values : [];
    const urls = new Set();
    for (const x of values) {
      for (const f of (x && x.stacktrace && Array.isArray(x.stacktrace.frames)) ? x.stacktrace.frames : []) {
        const u = f && (f.abs_path || f.filename);
        if (u && /\.(m|c)?js([?#]|$)/.test(u) && !(f.data && f.data.symbolicated) && f.context_line == null) urls.add(u);
      }
    }
    missing = [...urls].slice(0, 5).map((url) => ({ type: 'js_no_source', url }));
  }
  if (!missing.length) return null;
  return h('div', { class: 'note sourcemap-note', id: 'sourcemap-notes' }, missing.map((e) => {
    const file = String(e.url || '').split(/[?#]/)[0].split('/').pop() || String(e.url || '');
    return h('div', null,
      e.type === 'js_no_source'
        ? `No source map for ${file} — upload with: `
        : `The source map for ${file} could not be read (${e.hint || 'invalid'}); upload it again with: `,
      h('code', null, UPLOAD_HELP));
  }));
}
