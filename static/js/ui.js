// Shared screen pieces: session state, role checks, toasts, confirmation, copy buttons.
import { h, copyText } from './dom.js';

export const session = {
  me: null, // {id, email, name, role}
  projects: [],
  projectId: null,
};

const RANK = { viewer: 0, agent: 1, admin: 2, owner: 3 };

/** Whether the signed-in user has at least `role`. The API checks again; this only hides buttons. */
export function can(role) {
  const mine = session.me && RANK[session.me.role];
  return mine != null && mine >= RANK[role];
}

export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

export function toast(msg, kind = '') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: ['toast', kind] }, msg);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'err' ? 6000 : 3000);
}

export function errorBox(e) {
  return h('div', { class: 'error-box', role: 'alert' }, e && e.message ? e.message : String(e));
}

/** Runs `f`, showing its error as a toast; returns its result or undefined. */
export async function attempt(f, okMsg) {
  try {
    const r = await f();
    if (okMsg) toast(okMsg);
    return r;
  } catch (e) {
    toast(e.message || String(e), 'err');
    return undefined;
  }
}

/** A modal yes/no in the page (not `window.confirm`, which would block WebDriver and tests). */
export function confirmDialog(text, okLabel = 'Confirm') {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

export function copyButton(getText, targetEl, label = 'Copy') {
  const b = h('button', { class: 'btn small copy', type: 'button', 'aria-label': label }, label);
  b.addEventListener('click', async () => {
    const ok = await copyText(getText(), targetEl);
    b.textContent = ok ? 'Copied' : 'Selected';
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

export function panel(title, body, headExtra) {
  return h('section', { class: 'panel' },
    title != null ? h('div', { class: 'panel-head' }, h('h2', null, title), headExtra) : null,
    h('div', { class: 'panel-body' }, body));
}

export function notAvailable(what) {
  return h('div', { class: 'note', dataset: { unavailable: what } }, 'Not available on this server yet.');
}

export function badge(text, cls = '') {
  return h('span', { class: ['badge', cls] }, text);
}

export function statusLabel(status) {
  return { resolved_next_release: 'resolved in next release' }[status] || status || 'unknown';
}

export function currentProject() {
  return session.projects.find((p) => p.id === session.projectId) || null;
}
