// One page for both one-time links: the first-start setup link (creates the owner) and the
// set-password link an owner hands a new user. Text is set with textContent only.
const token = new URLSearchParams(location.search).get('token') || '';
const form = document.getElementById('setup-form');
const message = document.getElementById('message');
const intro = document.getElementById('intro');
const title = document.getElementById('title');
let kind = null;

async function errorText(r) {
  const err = await r.json().catch(() => null);
  return (err && err.error && err.error.message) || `Request failed (${r.status})`;
}

async function init() {
  if (!token) {
    intro.textContent = 'This page needs the link printed by the server (it contains ?token=…).';
    return;
  }
  const r = await fetch('/api/auth/setup?token=' + encodeURIComponent(token));
  if (!r.ok) {
    message.textContent = await errorText(r);
    return;
  }
  const s = await r.json();
  if (!s.link) {
    intro.textContent = s.needs_setup
      ? 'This link is invalid or expired. Restart hearth for a new one (it is printed in the log).'
      : 'This link is invalid, used or expired. Sign in at /login or ask an owner for a new link.';
    return;
  }
  kind = s.link.kind;
  if (kind === 'setup') {
    intro.textContent = 'Create the owner account. This link works once.';
    document.getElementById('email').required = true;
  } else {
    title.textContent = 'Choose your password';
    intro.textContent = 'Set the password for ' + (s.link.email || 'your account') + '.';
    document.getElementById('email-row').hidden = true;
    document.getElementById('name-row').hidden = true;
    document.getElementById('submit').textContent = 'Set password';
  }
  form.hidden = false;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  message.textContent = '';
  const password = document.getElementById('password').value;
  const [url, body] = kind === 'setup'
    ? ['/api/auth/setup', {
        token,
        email: document.getElementById('email').value,
        name: document.getElementById('name').value,
        password,
      }]
    : ['/api/auth/password', { token, password }];
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify(body),
    });
    if (r.ok) {
      location.assign('/');
      return;
    }
    message.textContent = await errorText(r);
  } catch (e) {
    message.textContent = 'Cannot reach the server: ' + e;
  }
});

init().catch((e) => { message.textContent = 'Cannot reach the server: ' + e; });
