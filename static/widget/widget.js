// Hearth chat widget loader. Embed:
//   <script async src="https://HEARTH/widget.js" data-hearth-site="SITE_KEY"></script>
// Draws only the bubble (in a shadow root, so the page's CSS cannot reach it); the chat
// module loads on the first open. Page API: Hearth.open() / close() / toggle(),
// Hearth.setVisitor({name, email}), Hearth.on("opened" | "closed" | "message", fn).
(() => {
  const me = document.currentScript;
  if (!me || window.Hearth) return;
  const base = new URL(me.src).origin;
  const site = me.dataset.hearthSite;
  const key = "hearth:" + site;
  const ls = {};
  let mod, loading, isOpen = false, visitor = null;
  const host = document.createElement("div");
  host.setAttribute("data-hearth-widget", "");
  const root = host.attachShadow({ mode: "open" });
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(
    ":host{all:initial}.b{position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;border-radius:50%;border:0;background:#d9480f;color:#fff;font:24px/1 sans-serif;cursor:pointer;box-shadow:0 2px 12px rgba(0,0,0,.25)}.n{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;border-radius:10px;background:#c92a2a;color:#fff;font:bold 12px/20px sans-serif;text-align:center}.n[hidden]{display:none}"
  );
  root.adoptedStyleSheets = [sheet];
  const btn = document.createElement("button");
  btn.className = "b";
  btn.setAttribute("aria-label", "Chat with us");
  btn.textContent = "\u{1F4AC}";
  const badge = document.createElement("span");
  badge.className = "n";
  badge.hidden = true;
  btn.append(badge);
  root.append(btn);
  const emit = (name, data) => {
    for (const f of ls[name] || []) {
      try { f(data); } catch (e) { console.error(e); }
    }
  };
  const setUnread = (n) => {
    badge.textContent = n > 9 ? "9+" : String(n);
    badge.hidden = !n;
  };
  const load = () =>
    (loading ||= import(base + "/widget/chat.js").then(
      (m) => (mod = m.mount({ base, site, key, root, emit, setUnread, visitor, close: () => api.close() })),
      (e) => { loading = null; throw e; },
    ));
  const api = {
    open() {
      isOpen = true;
      load().then((w) => w.open());
      emit("opened");
    },
    close() {
      isOpen = false;
      if (mod) mod.close();
      emit("closed");
    },
    toggle() {
      isOpen ? api.close() : api.open();
    },
    setVisitor(v) {
      visitor = v;
      if (mod) mod.setVisitor(v);
    },
    on(name, f) {
      (ls[name] ||= []).push(f);
    },
  };
  btn.addEventListener("click", api.toggle);
  window.Hearth = api;
  const attach = () => document.body.append(host);
  document.body ? attach() : addEventListener("DOMContentLoaded", attach);
  // The badge counts unread replies before the chat module is loaded.
  const token = localStorage.getItem(key);
  if (token)
    fetch(base + "/api/chat/my-chats", {
      headers: { "x-hearth-site-key": site, "x-hearth-visitor-token": token },
    })
      .then((r) => (r.ok ? r.json() : null))
      .then((b) => b && !mod && setUnread(b.conversations.reduce((a, c) => a + c.unread, 0)))
      .catch(() => {});
})();
