// Reply suggestions that learn (issue 19): the top 3 canned replies in the agent's reply box,
// each with its "why", and the admin page with what the learner achieves. Suggestions are
// never sent by themselves: a click only fills the reply box. All text is set as text.
import { h, clear } from '../dom.js';
import { get, post } from '../api.js';
import { errorBox, panel } from '../ui.js';

function ensureCss() {
  if (document.getElementById('suggest-css')) return;
  document.head.append(h('link', { id: 'suggest-css', rel: 'stylesheet', href: '/static/js/views/suggest.css' }));
}

/**
 * Mounts the suggestion strip for conversation `convId` above `input`. Suggestions load when the
 * box opens and come back when `/` is typed. Returns `{ node, sent(raw, body, canned) }`: call
 * `sent` after a reply went out so a used suggestion is recorded (edited or not).
 */
export function mountSuggestions({ convId, input, vars, render }) {
  ensureCss();
  const box = h('div', { class: 'chat-learned', id: 'chat-learned', hidden: true });
  let decision = null;
  let picked = null;
  let loading = null;

  async function load() {
    if (loading) return loading;
    loading = post(`/api/chat/conversations/${convId}/suggestions`).then((r) => {
      decision = r;
      draw();
    }, () => { box.hidden = true; }).finally(() => { loading = null; });
    return loading;
  }

  function draw() {
    clear(box);
    if (!decision || !decision.suggestions.length) { box.hidden = true; return; }
    box.hidden = false;
    box.append(h('span', { class: 'muted small' }, 'Suggested:'));
    for (const s of decision.suggestions) {
      box.append(h('button', {
        class: 'chat-learned-item', type: 'button', 'data-canned': String(s.canned_id), title: s.why.text,
        onclick: () => {
          const text = render(s.body, vars());
          input.value = text;
          picked = { canned_id: s.canned_id, text };
          box.hidden = true;
          input.focus();
        },
      }, h('strong', null, s.title || `/${s.shortcut}`), h('span', { class: 'muted chat-why' }, s.why.text)));
    }
  }

  input.addEventListener('input', () => {
    if (/(?:^|\s)\/$/.test(input.value.slice(0, input.selectionStart))) {
      if (decision) draw(); else load();
    }
  });
  load();

  return {
    node: box,
    sent(raw, body, canned) {
      if (!decision) return;
      let used = null;
      if (picked) {
        used = { canned_id: picked.canned_id, edited: body !== picked.text };
      } else {
        // A `/shortcut` typed by hand counts as that canned reply, unedited if it was alone.
        const word = raw.split(/\s+/).find((w) => w.startsWith('/') && canned.some((c) => c.shortcut === w.slice(1)));
        const c = word && canned.find((x) => x.shortcut === word.slice(1));
        if (c) used = { canned_id: c.id, edited: raw.trim() !== word };
      }
      if (!used) return;
      post(`/api/chat/suggestions/${decision.decision_id}/used`, used).catch(() => {});
      picked = null;
      decision = null;
      box.hidden = true;
    },
  };
}

const pct = (v) => (v == null ? '–' : `${(v * 100).toFixed(1)}%`);
const est = (e) => (e ? `${e.value.toFixed(3)} [${e.low.toFixed(3)}, ${e.high.toFixed(3)}] (n = ${e.n})` : '–');

/** `#/chat/suggestions`: what the learner achieves (admins). */
export async function admin(ctx) {
  ensureCss();
  const { root } = ctx;
  root.append(h('div', { class: 'page-head' }, h('h1', null, 'Reply suggestions'),
    h('a', { class: 'btn', href: '#/chat' }, 'Back to chat')));
  let s;
  let canned = [];
  try {
    [s, canned] = await Promise.all([get('/api/chat/suggestions/stats'),
      get('/api/chat/canned-responses').then((r) => r.canned_responses || [], () => [])]);
  } catch (e) {
    root.append(errorBox(e));
    return;
  }
  if (!ctx.alive()) return;
  const row = (k, v) => h('tr', null, h('th', null, k), h('td', null, v));
  root.append(panel('Outcomes', h('table', { class: 'suggest-figures', id: 'suggest-figures' },
    row('Suggestion lists shown', String(s.decisions)),
    row('Acceptance rate (a shown suggestion was sent)', pct(s.acceptance_rate)),
    row('Resolution rate, conversations with a used suggestion', `${pct(s.resolution_rate_with_suggestion)} of ${s.conversations_with_used_suggestion}`),
    row('Resolution rate, conversations without', `${pct(s.resolution_rate_without_suggestion)} of ${s.conversations_without_used_suggestion}`))));
  root.append(panel('Learned policy vs holdout (reward per conversation, 95% interval)', h('div', null,
    h('p', { class: 'muted small' }, `${pct(s.holdout_share)} of lists are shown in a uniformly random order (the holdout); the learned policy is evaluated on those by inverse propensity scoring.`),
    h('table', { class: 'suggest-figures' },
      row('Learned policy, IPS', est(s.ips)),
      row('Learned policy, SNIPS', est(s.snips)),
      row('Holdout (random order), observed', est(s.holdout_mean)),
      row('Policy lists, observed', est(s.policy_mean))))));
  const title = (id) => { const c = canned.find((x) => x.id === id); return c ? `/${c.shortcut} ${c.title}` : `#${id}`; };
  root.append(panel('Replies', h('table', { class: 'suggest-figures' },
    h('tr', null, h('th', null, 'Reply'), h('th', null, 'Used'), h('th', null, 'Resolved')),
    (s.model || []).map((m) => h('tr', null, h('td', null, title(m.canned_id)), h('td', null, String(m.used)), h('td', null, String(m.resolved)))))));
}
