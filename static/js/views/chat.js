// Chat inbox: mine / unassigned / all, a conversation with its timeline, replies with canned
// /shortcut completion, private notes, status, priority and assignment, all live over the chat
// WebSocket. Visitor text is only ever set as text.
import { h, clear, ago } from '../dom.js';
import { get, post, qs } from '../api.js';
import { session, errorBox, toast, can } from '../ui.js';
import { mountSuggestions } from './suggest.js'; // issue 19: reply suggestions that learn

const HEARTBEAT_MS = 20000;

function ensureCss() {
  if (document.getElementById('chat-css')) return;
  document.head.append(h('link', { id: 'chat-css', rel: 'stylesheet', href: '/static/js/views/chat.css' }));
}

/** `{{name | "fallback"}}` with `vars`; values stay text. */
export function renderCanned(body, vars) {
  return body.replace(/\{\{\s*([\w.]+)\s*(?:\|\s*(?:"([^"]*)"|'([^']*)'))?\s*\}\}/g, (_, name, f1, f2) => {
    const v = vars[name];
    return v && String(v).trim() ? String(v).trim() : (f1 ?? f2 ?? '');
  });
}

export async function inbox(ctx) {
  ensureCss();
  const { root } = ctx;
  const st = {
    view: ctx.query.get('view') || 'all',
    status: ctx.query.get('status') || '',
    open: ctx.params[0] ? Number(ctx.params[0]) : null,
    conv: null,
    visitor: null,
    lastSeq: 0,
    canned: [],
    ws: null,
    closed: false,
  };
  const list = h('div', { class: 'chat-list', id: 'chat-list' });
  const pane = h('div', { class: 'chat-pane', id: 'chat-pane' }, h('div', { class: 'empty' }, 'Pick a conversation.'));
  const presence = h('select', { id: 'chat-presence', 'aria-label': 'Your status' },
    h('option', { value: 'online' }, 'Online'), h('option', { value: 'away' }, 'Away'));
  const tabs = h('div', { class: 'tabs' }, ['mine', 'unassigned', 'all'].map((v) =>
    h('a', { href: `#/chat${qs({ view: v })}`, class: v === st.view ? 'active' : null, 'data-view': v },
      v[0].toUpperCase() + v.slice(1))));
  const statusSel = h('select', { 'aria-label': 'Status filter', onchange: (e) => { st.status = e.target.value; loadList(); } },
    ['', 'open', 'in_progress', 'resolved', 'closed'].map((s) => h('option', { value: s, selected: s === st.status }, s ? s.replace('_', ' ') : 'any status')));
  root.append(h('div', { class: 'page-head' }, h('h1', null, 'Chat'), h('div', { class: 'toolbar' }, tabs, statusSel, presence,
      can('admin') ? h('a', { class: 'btn', href: '#/chat/suggestions', id: 'chat-suggest-admin' }, 'Suggestions') : null)),
    h('div', { class: 'chat-grid' }, list, pane));

  const beat = () => post('/api/chat/agent/online', { status: presence.value }).catch(() => {});
  presence.addEventListener('change', beat);
  beat();
  const timer = setInterval(beat, HEARTBEAT_MS);
  get('/api/chat/canned-responses').then((r) => { st.canned = r.canned_responses || []; }).catch(() => {});

  async function loadList() {
    let r;
    try {
      r = await get('/api/chat/conversations' + qs({ view: st.view, status: st.status }));
    } catch (e) {
      clear(list).append(errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    clear(list);
    if (!r.conversations.length) list.append(h('div', { class: 'empty' }, 'No conversations here.'));
    for (const c of r.conversations) {
      const who = (c.visitor && (c.visitor.name || c.visitor.email)) || `Visitor #${c.visitor_id}`;
      list.append(h('a', {
        class: ['chat-row', c.id === st.open ? 'active' : null],
        href: `#/chat/${c.id}${qs({ view: st.view })}`,
        'data-conv': String(c.id),
      },
      h('div', { class: 'chat-row-top' }, h('strong', null, who),
        c.unread ? h('span', { class: 'badge' }, String(c.unread)) : null,
        h('span', { class: 'muted small' }, ago(c.updated_ms))),
      h('div', { class: 'muted small ellipsis' }, c.preview || c.subject || ''),
      h('div', { class: 'small' }, h('span', { class: 'chip' }, c.status.replace('_', ' ')), ' ',
        h('span', { class: 'chip' }, c.priority), c.channel === 'email' ? h('span', { class: 'chip' }, 'email') : null)));
    }
  }

  function entryNode(m) {
    const kind = m.author.kind;
    const cls = ['chat-msg', kind === 'visitor' ? 'in' : 'out', m.private ? 'note' : null];
    return h('div', { class: cls, 'data-seq': String(m.seq) },
      h('div', { class: 'muted small' }, `${m.author.name || kind}${m.private ? ' · private note' : ''} · ${new Date(m.time_ms).toLocaleTimeString()}`),
      m.attachment ? attachmentNode(m.attachment) : h('div', { class: 'chat-body' }, m.body));
  }

  // A file link; images (raster types only) also get a preview from the same authenticated URL.
  function attachmentNode(a) {
    const url = `/api/chat/session/${st.open}/files/${a.id}`;
    const link = h('a', { class: 'chat-body', href: url }, `📎 ${a.name} (${Math.ceil(a.size / 1024)} KB)`);
    if (!/^image\/(png|jpeg|gif|webp)$/.test(a.content_type || '')) return link;
    return h('div', {}, link, h('img', { class: 'chat-preview', src: url, alt: a.name, loading: 'lazy' }));
  }

  function activityNode(f) {
    return h('div', { class: 'chat-activity muted small', 'data-seq': String(f.seq) },
      f.type === 'conversation.status' ? `${f.data.author.name} set the status to ${f.data.body.replace('_', ' ')}` : `${f.data.author.name}: ${f.data.body}`);
  }

  async function openConv(id) {
    st.open = id;
    let r;
    try {
      r = await get(`/api/chat/conversations/${id}`);
    } catch (e) {
      clear(pane).append(errorBox(e));
      return;
    }
    if (!ctx.alive() || st.open !== id) return;
    st.conv = r.conversation;
    st.visitor = r.visitor;
    st.lastSeq = 0;
    const timeline = h('div', { class: 'chat-timeline', id: 'chat-timeline' });
    st.timeline = timeline;
    for (const m of r.messages) addEntry({ seq: m.seq, type: m.kind, data: m });
    st.typing = h('div', { class: 'muted small chat-typing' });
    const input = h('textarea', { id: 'chat-input', placeholder: 'Reply… (type / for canned responses)', rows: '3' });
    const note = h('input', { type: 'checkbox', id: 'chat-note' });
    const suggest = h('div', { class: 'chat-suggest', id: 'chat-suggest', hidden: true });
    // issue 19: learned suggestions (top 3 with their why) when the box opens or `/` is typed
    const learned = mountSuggestions({ convId: id, input, vars, render: renderCanned });
    const send = async () => {
      const raw = input.value.trim();
      const body = expandShortcuts(raw);
      if (!body) return;
      input.value = '';
      suggest.hidden = true;
      try {
        await post(`/api/chat/session/${id}/message`, { client_msg_id: crypto.randomUUID(), body, private: note.checked });
        if (!note.checked) learned.sent(raw, body, st.canned); // issue 19
      } catch (e) {
        input.value = body;
        toast(e.message, 'err');
      }
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); send(); }
    });
    let typedAt = 0;
    input.addEventListener('input', () => {
      showSuggestions(input, suggest);
      if (Date.now() - typedAt > 3000 && st.ws && st.ws.readyState === 1) {
        typedAt = Date.now();
        st.ws.send(JSON.stringify({ t: 'typing', conv: id, on: true }));
      }
    });
    const statusSel = h('select', { id: 'chat-status', 'aria-label': 'Status', onchange: (e) => post(`/api/chat/conversations/${id}/status`, { status: e.target.value }).then(refreshConv, (err) => toast(err.message, 'err')) },
      ['open', 'in_progress', 'resolved', 'closed'].map((s) => h('option', { value: s, selected: s === st.conv.status }, s.replace('_', ' '))));
    const prioSel = h('select', { id: 'chat-priority', 'aria-label': 'Priority', onchange: (e) => post(`/api/chat/conversations/${id}/priority`, { priority: e.target.value }).then(refreshConv, (err) => toast(err.message, 'err')) },
      ['urgent', 'high', 'normal', 'low'].map((p) => h('option', { value: p, selected: p === st.conv.priority }, p)));
    const assignBtn = h('button', { class: 'btn', id: 'chat-assign-me', onclick: () => post(`/api/chat/conversations/${id}/assign`, { user_id: st.conv.assignee === session.me.id ? null : session.me.id }).then(refreshConv, (err) => toast(err.message, 'err')) },
      st.conv.assignee === session.me.id ? 'Unassign me' : 'Assign to me');
    const v = st.visitor || {};
    const details = h('div', { class: 'chat-details panel' },
      h('h3', null, v.name || v.email || `Visitor #${st.conv.visitor_id}`),
      h('dl', { class: 'kv' },
        h('dt', null, 'Email'), h('dd', null, v.email || '–'),
        h('dt', null, 'Verified'), h('dd', null, v.verified ? `yes (${v.user_id})` : 'no'),
        h('dt', null, 'Page'), h('dd', { class: 'ellipsis' }, v.page_url || '–'),
        h('dt', null, 'Browser'), h('dd', { class: 'ellipsis small' }, v.user_agent || '–'),
        h('dt', null, 'Channel'), h('dd', null, st.conv.channel)),
      r.previous_conversations.length ? h('div', null, h('h4', null, 'Previous conversations'),
        r.previous_conversations.map((c) => h('div', null, h('a', { href: `#/chat/${c.id}` }, `#${c.id} ${c.subject || ''}`)))) : null,
      // The Sentry side: the issue this ticket's feedback came from, and the user's issues.
      r.linked_issue && r.linked_issue.issue_id ? h('div', null, h('h4', null, 'From feedback on'),
        h('a', { href: `#/issues/${r.linked_issue.issue_id}` }, `Issue #${r.linked_issue.issue_id}`)) : null,
      r.user_issues && r.user_issues.length ? h('div', null, h('h4', null, 'Sentry issues for this user'),
        r.user_issues.map((i) => h('div', { class: 'ellipsis' }, h('a', { href: `#/issues/${i.id}` }, i.title || `Issue #${i.id}`),
          h('span', { class: 'muted small' }, ` ${i.count}×`)))) : null);
    clear(pane).append(
      h('div', { class: 'chat-head' }, h('strong', null, `#${id} ${st.conv.subject || ''}`), statusSel, prioSel, assignBtn),
      h('div', { class: 'chat-main' }, h('div', { class: 'chat-col' }, timeline, st.typing,
        h('div', { class: 'chat-compose' }, learned.node, suggest, input,
          h('div', { class: 'row' }, h('label', null, note, ' Private note'), h('button', { class: 'btn primary', id: 'chat-send', onclick: send }, 'Send')))),
      details));
    timeline.scrollTop = timeline.scrollHeight;
    if (st.ws && st.ws.readyState === 1) st.ws.send(JSON.stringify({ t: 'resume', conv: id, after_seq: st.lastSeq }));
    markSeen();
  }

  async function refreshConv() {
    if (st.open) await openConv(st.open);
    loadList();
  }

  function addEntry(f) {
    if (!st.timeline || f.seq <= st.lastSeq) return;
    st.lastSeq = f.seq;
    st.timeline.append(f.type === 'message.created' ? entryNode(f.data) : activityNode(f));
    st.timeline.scrollTop = st.timeline.scrollHeight;
  }

  function markSeen() {
    if (st.open && st.lastSeq) post(`/api/chat/session/${st.open}/seen`, { seq: st.lastSeq }).catch(() => {});
  }

  function vars() {
    const v = st.visitor || {};
    return { 'visitor.name': v.name, 'visitor.email': v.email, 'agent.name': session.me && session.me.name };
  }

  function expandShortcuts(text) {
    return text.split(' ').map((w) => {
      const c = w.startsWith('/') && st.canned.find((x) => x.shortcut === w.slice(1));
      return c ? renderCanned(c.body, vars()) : w;
    }).join(' ');
  }

  function showSuggestions(input, box) {
    const m = input.value.slice(0, input.selectionStart).match(/(?:^|\s)\/([\w-]*)$/);
    if (!m) { box.hidden = true; return; }
    const hits = st.canned.filter((c) => c.shortcut.startsWith(m[1])).slice(0, 6);
    clear(box);
    box.hidden = !hits.length;
    for (const c of hits) {
      box.append(h('button', { class: 'chat-suggestion', type: 'button', 'data-shortcut': c.shortcut, onclick: () => {
        const start = input.selectionStart - m[1].length - 1;
        input.value = input.value.slice(0, start) + renderCanned(c.body, vars()) + input.value.slice(input.selectionStart);
        box.hidden = true;
        input.focus();
      } }, h('strong', null, '/' + c.shortcut), ' ', h('span', { class: 'muted' }, c.title)));
    }
  }

  let retry = 0;
  function connect() {
    if (st.closed) return;
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/chat/ws`);
    st.ws = ws;
    let listTimer = null;
    ws.onopen = () => {
      retry = 0;
      // Whatever happened while disconnected: the open conversation resumes by seq, the list refetches.
      if (st.open && st.timeline) ws.send(JSON.stringify({ t: 'resume', conv: st.open, after_seq: st.lastSeq }));
      loadList();
    };
    ws.onmessage = (e) => {
      let f;
      try { f = JSON.parse(e.data); } catch { return; }
      if (f.t === 'ev') {
        if (f.conv === st.open) {
          addEntry(f);
          if (f.type === 'message.created') { st.typing.textContent = ''; markSeen(); }
        }
        clearTimeout(listTimer);
        listTimer = setTimeout(loadList, 150);
        if (f.type === 'message.created' && f.data.author.kind === 'visitor' && document.hidden && window.Notification && Notification.permission === 'granted') {
          new Notification(`Chat: ${f.data.author.name || 'visitor'}`, { body: f.data.body.slice(0, 120) });
        }
      } else if (f.t === 'typing' && f.conv === st.open && f.from.kind === 'visitor' && st.typing) {
        st.typing.textContent = f.on ? `${f.from.name || 'The visitor'} is typing…` : '';
        clearTimeout(st.typingOff);
        st.typingOff = setTimeout(() => { if (st.typing) st.typing.textContent = ''; }, 30000);
      } else if (f.t === 'ping') {
        ws.send('{"t":"pong"}');
      }
    };
    ws.onclose = () => {
      if (st.closed) return;
      setTimeout(connect, Math.min(30000, 500 * 2 ** retry++));
    };
  }

  ctx.cleanup = () => {
    st.closed = true;
    clearInterval(timer);
    if (st.ws) st.ws.close();
  };
  if (window.Notification && Notification.permission === 'default') {
    root.querySelector('.page-head').append(h('button', { class: 'btn', onclick: () => Notification.requestPermission() }, 'Enable notifications'));
  }
  await loadList();
  connect();
  if (st.open) await openConv(st.open);
}
