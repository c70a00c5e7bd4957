// First-start setup (create the owner from the setup link) and login.
import { h, s } from '../dom.js';
import { post } from '../api.js';
import { navigate, errorBox } from '../ui.js';

function brand() {
  return h('div', { class: 'brand' },
    s('svg', { class: 'brand-mark', viewBox: '0 0 24 24', 'aria-hidden': 'true' },
      s('path', { d: 'M12 2c2 4 6 6 6 11a6 6 0 0 1-12 0c0-3 2-5 3-7 1 2 1 3 3 4 0-3-1-5 0-8z' })),
    h('span', null, 'Hearth'));
}

function field(label, input) {
  return h('label', { class: 'field' }, h('span', null, label), input);
}

function authForm(ctx, { title, intro, fields, submit, onSubmit, footer }) {
  const err = h('div');
  const btn = h('button', { class: 'btn primary', type: 'submit' }, submit);
  const form = h('form', { class: 'stack-form', novalidate: true }, fields, err, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    btn.disabled = true;
    try {
      await onSubmit();
      await ctx.app.loadMe();
      navigate('#/');
    } catch (ex) {
      err.replaceChildren(errorBox(ex));
    } finally {
      btn.disabled = false;
    }
  });
  ctx.root.append(h('div', { class: 'auth' }, brand(),
    h('section', { class: 'panel' }, h('div', { class: 'panel-body' },
      h('h1', null, title), intro ? h('p', { class: 'muted' }, intro) : null, form, footer))));
  const first = form.querySelector('input:not([type=hidden])');
  if (first) first.focus();
}

export async function login(ctx) {
  document.getElementById('topbar').hidden = true;
  const email = h('input', { type: 'email', name: 'email', id: 'login-email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', id: 'login-password', autocomplete: 'current-password', required: true });
  authForm(ctx, {
    title: 'Log in',
    fields: [field('Email', email), field('Password', password)],
    submit: 'Log in',
    onSubmit: () => post('/api/auth/login', { email: email.value.trim(), password: password.value }),
    footer: h('p', { class: 'muted small' }, 'First start? Open the setup link printed in the server log.'),
  });
}

export async function setup(ctx) {
  document.getElementById('topbar').hidden = true;
  const token = h('input', { type: 'text', name: 'token', id: 'setup-token', autocomplete: 'off', value: ctx.query.get('token') || '' });
  const name = h('input', { type: 'text', name: 'name', id: 'setup-name', autocomplete: 'name' });
  const email = h('input', { type: 'email', name: 'email', id: 'setup-email', autocomplete: 'username' });
  const password = h('input', { type: 'password', name: 'password', id: 'setup-password', autocomplete: 'new-password' });
  authForm(ctx, {
    title: 'Create the owner account',
    intro: 'This account owns Hearth: it manages users, projects and settings.',
    fields: [
      ctx.query.get('token') ? null : field('Setup token (from the link in the server log)', token),
      field('Your name', name), field('Email', email), field('Password (at least 10 characters)', password),
    ],
    submit: 'Create account',
    onSubmit: () => post('/api/auth/setup', {
      token: token.value.trim(), name: name.value.trim(), email: email.value.trim(), password: password.value,
    }),
  });
}
