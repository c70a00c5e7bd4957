// Sign-in page: posts to /api/auth/login, which sets the session cookie, then goes to the
// dashboard. Messages are shown with textContent, never as HTML.
const form = document.getElementById('login-form');
const message = document.getElementById('message');

// Where to go after signing in: only a path on this very origin. The URL parser decides, as
// the browser will ("/\\evil.example" and "/\tevil.example" are other hosts to it).
function safeNext(next) {
  if (!next || !next.startsWith('/')) return '/';
  let u;
  try {
    u = new URL(next, location.origin);
  } catch (e) {
    return '/';
  }
  if (u.origin !== location.origin) return '/';
  return u.pathname + u.search + u.hash;
}

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
      location.assign(safeNext(new URLSearchParams(location.search).get('next')));
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
