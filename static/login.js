// Sign-in page: posts to /api/auth/login, which sets the session cookie, then goes to the
// dashboard. Messages are shown with textContent, never as HTML.
const form = document.getElementById('login-form');
const message = document.getElementById('message');

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  message.textContent = '';
  const body = {
    email: document.getElementById('email').value,
    password: document.getElementById('password').value,
  };
  try {
    const r = await fetch('/api/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify(body),
    });
    if (r.ok) {
      const next = new URLSearchParams(location.search).get('next');
      location.assign(next && next.startsWith('/') && !next.startsWith('//') ? next : '/');
      return;
    }
    const err = await r.json().catch(() => null);
    message.textContent = (err && err.error && err.error.message) || `Sign-in failed (${r.status})`;
  } catch (e) {
    message.textContent = 'Cannot reach the server: ' + e;
  }
});

// Before the owner exists there is nobody to sign in as: say where the setup link is.
fetch('/api/auth/setup').then((r) => r.json()).then((s) => {
  if (s.needs_setup) {
    message.textContent = 'No account exists yet: open the setup link printed in the server log.';
  }
}).catch(() => {});
