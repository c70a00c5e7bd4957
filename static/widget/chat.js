// Hearth chat widget: the chat module, loaded by widget.js on the first open.
// Everything a visitor or agent writes is shown with textContent, never as HTML. No eval, no
// inline scripts or styles (constructed stylesheets only), so it runs under the page's CSP.

const CSS = `
:host{all:initial}
.p{position:fixed;right:20px;bottom:88px;z-index:2147483000;width:360px;max-width:calc(100vw - 40px);height:520px;max-height:calc(100vh - 120px);display:flex;flex-direction:column;background:#fff;color:#1f2328;border-radius:12px;box-shadow:0 4px 24px rgba(0,0,0,.25);font:14px/1.4 system-ui,sans-serif;overflow:hidden}
.p[hidden],[hidden]{display:none}
.h{background:#d9480f;color:#fff;padding:12px 14px;display:flex;align-items:center;gap:8px}
.h .t{font-weight:600;flex:1}
.h .s{font-size:12px;opacity:.9}
.h button{background:none;border:0;color:#fff;font-size:20px;cursor:pointer}
.m{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px}
.im{display:block;max-width:100%;max-height:200px;margin-top:6px;border-radius:6px}
.g{max-width:80%;padding:7px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}
.g.v{align-self:flex-end;background:#d9480f;color:#fff}
.g.a{align-self:flex-start;background:#f1f3f5}
.g.x{align-self:center;background:none;color:#868e96;font-size:12px}
.g.pending{opacity:.6}
.w{font-size:11px;color:#868e96;margin-bottom:2px}
.y{padding:0 12px 4px;font-size:12px;color:#868e96;min-height:16px}
.f{display:flex;border-top:1px solid #e9ecef}
.f textarea{flex:1;border:0;padding:10px;font:inherit;resize:none;height:44px;outline:none}
.f button,.o button,.c button{background:#d9480f;color:#fff;border:0;padding:0 14px;cursor:pointer;font:inherit}
.o,.c{padding:14px;display:flex;flex-direction:column;gap:8px}
.o input,.o textarea{font:inherit;padding:7px;border:1px solid #ced4da;border-radius:6px}
.o textarea{height:90px;resize:vertical}
.o button,.c button{padding:8px;border-radius:6px}
.c .r{display:flex;gap:6px;justify-content:center}
.c .r button{width:40px}
.c .r button.on{background:#862e0a}
.e{color:#c92a2a;font-size:12px}
`;

const IMAGE = /^image\/(png|jpeg|gif|webp)$/;
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};

const uid = () =>
  (crypto.randomUUID ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2));

export function mount(ctx) {
  return new Widget(ctx);
}

class Widget {
  constructor(ctx) {
    this.ctx = ctx;
    this.api = ctx.base + "/api/chat";
    this.token = localStorage.getItem(ctx.key) || "";
    this.visitor = ctx.visitor;
    this.conv = null;
    this.lastSeq = 0;
    this.pending = new Map(); // client_msg_id -> {body, node}
    this.unread = 0;
    this.isOpen = false;
    this.ws = null;
    this.retry = 0;
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    ctx.root.adoptedStyleSheets = [...ctx.root.adoptedStyleSheets, sheet];
    this.build();
  }

  build() {
    const p = (this.panel = el("div", "p"));
    p.hidden = true;
    p.setAttribute("role", "dialog");
    const h = el("div", "h");
    this.title = el("div", "t", "Chat");
    this.status = el("div", "s", "");
    const x = el("button", "", "\u00D7");
    x.setAttribute("aria-label", "Close chat");
    x.addEventListener("click", () => this.ctx.close());
    const head = el("div", "");
    head.style.flex = "1";
    head.append(this.title, this.status);
    h.append(head, x);
    this.list = el("div", "m");
    this.list.setAttribute("aria-live", "polite");
    this.typing = el("div", "y", "");
    this.form = el("form", "f");
    this.input = el("textarea");
    this.input.placeholder = "Write a message\u2026";
    this.input.maxLength = 8000;
    const send = el("button", "", "Send");
    send.type = "submit";
    const file = el("input");
    file.type = "file";
    file.hidden = true;
    const clip = el("button", "", "\u{1F4CE}");
    clip.type = "button";
    clip.setAttribute("aria-label", "Attach a file");
    clip.addEventListener("click", () => file.click());
    file.addEventListener("change", () => {
      if (file.files[0]) this.upload(file.files[0]);
      file.value = "";
    });
    this.form.append(clip, file, this.input, send);
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener("input", () => this.typingOn());
    this.offline = this.buildOffline();
    this.csat = this.buildCsat();
    p.append(h, this.list, this.typing, this.csat, this.offline, this.form);
    this.ctx.root.append(p);
  }

  buildOffline() {
    const o = el("form", "o");
    o.hidden = true;
    this.offlineNote = el("div", "", "");
    this.oName = el("input");
    this.oName.placeholder = "Your name";
    this.oEmail = el("input");
    this.oEmail.type = "email";
    this.oEmail.required = true;
    this.oEmail.placeholder = "Your email";
    this.oText = el("textarea");
    this.oText.required = true;
    this.oText.placeholder = "How can we help?";
    this.oErr = el("div", "e", "");
    const b = el("button", "", "Send");
    b.type = "submit";
    o.append(this.offlineNote, this.oName, this.oEmail, this.oText, this.oErr, b);
    o.addEventListener("submit", async (e) => {
      e.preventDefault();
      this.oErr.textContent = "";
      try {
        await this.call("POST", "/widget/offline", {
          name: this.oName.value,
          email: this.oEmail.value,
          message: this.oText.value,
        });
        o.replaceChildren(el("div", "", "Thanks! We got your message and will reply by email."));
      } catch (err) {
        this.oErr.textContent = err.message;
      }
    });
    return o;
  }

  buildCsat() {
    const c = el("div", "c");
    c.hidden = true;
    const q = el("div", "", "How did we do?");
    const row = el("div", "r");
    this.rating = 0;
    for (let i = 1; i <= 5; i++) {
      const b = el("button", "", String(i));
      b.type = "button";
      b.addEventListener("click", () => {
        this.rating = i;
        for (const x of row.children) x.classList.toggle("on", Number(x.textContent) <= i);
      });
      row.append(b);
    }
    const comment = el("textarea");
    comment.placeholder = "Anything to add? (optional)";
    const send = el("button", "", "Send rating");
    send.type = "button";
    send.addEventListener("click", async () => {
      if (!this.rating || !this.conv) return;
      try {
        await this.call("POST", `/session/${this.conv}/csat`, { rating: this.rating, comment: comment.value });
        c.replaceChildren(el("div", "", "Thank you for your feedback!"));
      } catch (err) {
        c.append(el("div", "e", err.message));
      }
    });
    c.append(q, row, comment, send);
    return c;
  }

  async call(method, path, body) {
    const headers = { "x-hearth-site-key": this.ctx.site };
    if (this.token) headers["x-hearth-visitor-token"] = this.token;
    if (body) headers["content-type"] = "application/json";
    const r = await fetch(this.api + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const b = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((b.error && b.error.message) || "request failed (" + r.status + ")");
    return b;
  }

  async open() {
    this.isOpen = true;
    this.panel.hidden = false;
    this.unread = 0;
    this.ctx.setUnread(0);
    if (!this.started) {
      this.started = this.start().catch((e) => this.system("Chat is unavailable: " + e.message));
    }
    await this.started;
    this.markSeen();
    this.input.focus();
  }

  close() {
    this.isOpen = false;
    this.panel.hidden = true;
  }

  setVisitor(v) {
    this.visitor = v;
    if (this.token) this.session().catch(() => {});
  }

  async session() {
    const v = this.visitor || {};
    const s = await this.call("POST", "/widget/session", {
      site_key: this.ctx.site,
      visitor_token: this.token || undefined,
      name: v.name,
      email: v.email,
      user_id: v.user_id,
      user_hash: v.user_hash,
      page_url: location.href.slice(0, 500),
    });
    this.token = s.visitor_token;
    localStorage.setItem(this.ctx.key, this.token);
    return s;
  }

  async start() {
    const s = await this.session();
    this.wsBase = s.websocket_url;
    this.pingMs = s.ping_ms || 5000;
    this.title.textContent = s.site.name;
    this.setState(s.state, s.next_open_ms, s.agents);
    const mine = await this.call("GET", "/my-chats");
    const active = mine.conversations.find((c) => c.status === "open" || c.status === "in_progress") || mine.conversations[0];
    if (active) {
      this.conv = active.id;
      const h = await this.call("GET", `/session/${this.conv}`);
      for (const m of h.messages) this.render(m);
      if (h.conversation.status === "resolved") this.csat.hidden = false;
      this.connect();
    }
  }

  setState(state, nextOpen, agents) {
    this.state = state;
    if (state === "online") {
      this.status.textContent = agents && agents.length ? "Online \u2014 " + agents.map((a) => a.name).join(", ") : "Online";
    } else if (state === "away") {
      this.status.textContent = "Away \u2014 we'll reply by email";
    } else {
      const when = nextOpen
        ? new Date(nextOpen).toLocaleString([], { weekday: "long", hour: "2-digit", minute: "2-digit" })
        : "";
      this.status.textContent = when ? "Closed \u2014 back " + when : "Closed";
    }
    const offline = state !== "online" && !this.conv;
    this.offline.hidden = !offline;
    this.form.hidden = offline;
    this.offlineNote.textContent =
      state === "closed" && nextOpen
        ? "We're closed right now and back " + new Date(nextOpen).toLocaleString([], { weekday: "long", hour: "2-digit", minute: "2-digit" }) + ". Leave a message and we'll answer by email."
        : "Nobody is online right now. Leave a message and we'll answer by email.";
  }

  system(text) {
    this.list.append(el("div", "g x", text));
    this.list.scrollTop = this.list.scrollHeight;
  }

  render(m) {
    if (m.seq <= this.lastSeq) return;
    this.lastSeq = m.seq;
    const mine = m.author.kind === "visitor";
    if (m.client_msg_id && this.pending.has(m.client_msg_id)) {
      const p = this.pending.get(m.client_msg_id);
      p.node.classList.remove("pending");
      this.pending.delete(m.client_msg_id);
      return;
    }
    if (m.kind && m.kind !== "message.created") {
      this.system(m.kind === "conversation.status" ? "Status: " + m.body.replace("_", " ") : m.body);
      return;
    }
    const wrap = el("div", "g " + (mine ? "v" : "a"));
    if (!mine) {
      wrap.append(el("div", "w", m.author.name));
      this.title.textContent = m.author.name;
    }
    if (m.attachment) {
      const a = el("button", "", "\u{1F4CE} " + m.attachment.name);
      a.type = "button";
      a.addEventListener("click", () => this.download(m.attachment));
      wrap.append(a);
      if (IMAGE.test(m.attachment.content_type || "")) this.preview(m.attachment, wrap);
    } else {
      wrap.append(document.createTextNode(m.body));
    }
    this.list.append(wrap);
    this.list.scrollTop = this.list.scrollHeight;
    if (!mine) {
      this.ctx.emit("message", { body: m.body, author: m.author.name });
      if (!this.isOpen) this.ctx.setUnread(++this.unread);
    }
  }

  event(f) {
    if (f.type === "message.created") {
      this.typing.textContent = "";
      this.render(f.data);
    } else if (f.type === "conversation.status") {
      if (f.seq > this.lastSeq) {
        this.lastSeq = f.seq;
        this.system(f.data.body === "resolved" ? "This conversation was resolved." : "Status: " + f.data.body.replace("_", " "));
        this.csat.hidden = f.data.body !== "resolved";
      }
    } else if (f.seq > this.lastSeq) {
      this.lastSeq = f.seq;
    }
    if (this.isOpen) this.markSeen();
  }

  connect() {
    if (!this.conv || this.ws) return;
    const q = new URLSearchParams({ site_key: this.ctx.site, visitor_token: this.token, after_seq: String(this.lastSeq) });
    const ws = (this.ws = new WebSocket(`${this.wsBase}/${this.conv}?${q}`));
    const watchdog = () => {
      clearTimeout(this.dog);
      // Two missed pings: the link is dead even if the browser has not noticed.
      this.dog = setTimeout(() => ws.close(), 2 * this.pingMs + 1000);
    };
    ws.onopen = () => {
      this.retry = 0;
      watchdog();
      // Sends not acknowledged before the drop go again; the client id makes that safe.
      for (const [id, p] of this.pending) this.frame({ t: "send", conv: this.conv, client_msg_id: id, body: p.body });
    };
    ws.onmessage = (e) => {
      watchdog();
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      if (f.t === "ev" && f.conv === this.conv) this.event(f);
      else if (f.t === "typing" && f.from.kind === "agent") this.showTyping(f);
      else if (f.t === "presence") this.setState(f.agents_online ? "online" : "away");
      else if (f.t === "ping") this.frame({ t: "pong" });
      else if (f.t === "error" && f.client_msg_id && this.pending.has(f.client_msg_id)) {
        const p = this.pending.get(f.client_msg_id);
        this.pending.delete(f.client_msg_id);
        p.node.classList.remove("pending");
        p.node.append(el("div", "e", f.message));
      }
    };
    ws.onclose = () => {
      clearTimeout(this.dog);
      this.ws = null;
      const wait = Math.min(30000, 500 * 2 ** this.retry++) * (0.8 + Math.random() * 0.4);
      setTimeout(() => this.connect(), wait);
    };
  }

  frame(f) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(f));
  }

  showTyping(f) {
    clearTimeout(this.typingOff);
    this.typing.textContent = f.on ? f.from.name + " is typing\u2026" : "";
    // A lost "off" never sticks.
    if (f.on) this.typingOff = setTimeout(() => (this.typing.textContent = ""), 30000);
  }

  typingOn() {
    const now = Date.now();
    if (this.conv && now - (this.typedAt || 0) > 3000) {
      this.typedAt = now;
      this.frame({ t: "typing", conv: this.conv, on: true });
    }
  }

  markSeen() {
    if (this.conv && this.lastSeq) this.frame({ t: "seen", conv: this.conv, seq: this.lastSeq });
  }

  async upload(f) {
    if (!this.conv) return this.system("Send a message first, then attach files.");
    const headers = { "x-hearth-site-key": this.ctx.site, "x-hearth-visitor-token": this.token, "content-type": f.type || "application/octet-stream" };
    const r = await fetch(`${this.api}/session/${this.conv}/upload?name=${encodeURIComponent(f.name)}`, { method: "POST", headers, body: f });
    if (!r.ok) {
      const b = await r.json().catch(() => ({}));
      this.system((b.error && b.error.message) || "upload failed");
    }
  }

  // An image is previewed from the same visitor-scoped download URL (fetched with the widget's
  // credential headers; shown through a blob: URL, never as HTML).
  async preview(a, wrap) {
    try {
      const r = await fetch(`${this.api}/session/${this.conv}/files/${a.id}`, {
        headers: { "x-hearth-site-key": this.ctx.site, "x-hearth-visitor-token": this.token },
      });
      if (!r.ok) return;
      const img = el("img", "im");
      img.alt = a.name;
      img.src = URL.createObjectURL(await r.blob());
      wrap.append(img);
    } catch (_) {
      // The download button stays.
    }
  }

  async download(a) {
    const r = await fetch(`${this.api}/session/${this.conv}/files/${a.id}`, {
      headers: { "x-hearth-site-key": this.ctx.site, "x-hearth-visitor-token": this.token },
    });
    if (!r.ok) return;
    const url = URL.createObjectURL(await r.blob());
    const link = el("a");
    link.href = url;
    link.download = a.name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async send() {
    const body = this.input.value.trim();
    if (!body) return;
    this.input.value = "";
    const id = uid();
    const node = el("div", "g v pending");
    node.append(document.createTextNode(body));
    this.list.append(node);
    this.list.scrollTop = this.list.scrollHeight;
    this.csat.hidden = true;
    if (!this.conv) {
      try {
        const v = this.visitor || {};
        const r = await this.call("POST", "/start", {
          initial_message: body,
          client_id: id,
          customer_name: v.name,
          customer_email: v.email,
        });
        this.conv = r.chat_id;
        node.classList.remove("pending");
        if (r.message) this.lastSeq = r.message.seq;
        this.connect();
      } catch (err) {
        node.append(el("div", "e", err.message));
      }
      return;
    }
    this.pending.set(id, { body, node });
    this.frame({ t: "typing", conv: this.conv, on: false });
    this.frame({ t: "send", conv: this.conv, client_msg_id: id, body });
  }
}
