/*
 * Hearth capture script: reports uncaught errors and unhandled promise rejections from a web
 * page to Hearth. Include it with the project's DSN:
 *
 *   <script src="https://hearth.example.com/static/capture.js"
 *           data-dsn="https://<public key>@hearth.example.com/<project id>"
 *           data-release="web@1.2.3" data-environment="production"></script>
 *
 * or call HearthCapture.init({dsn, release, environment}) yourself, and
 * HearthCapture.captureException(err) / HearthCapture.captureMessage(text, level) by hand.
 * Reports are sent as text/plain (no CORS preflight) with the key in the query string.
 */
(function () {
  "use strict";
  var config = null;
  var sent = 0;
  var MAX_PER_PAGE = 50; // a broken loop must not flood the server

  function parseDsn(dsn) {
    var m = /^(https?):\/\/([^@]+)@([^/]+)(\/.*)?\/(\d+)\/?$/.exec(dsn || "");
    if (!m) return null;
    return { base: m[1] + "://" + m[3] + (m[4] || ""), key: m[2], project: m[5] };
  }

  function send(kind, body) {
    if (!config || sent >= MAX_PER_PAGE) return;
    sent += 1;
    body.release = body.release || config.release;
    body.environment = body.environment || config.environment;
    body.url = body.url || String(window.location.href);
    body.platform = "javascript";
    var url = config.base + "/api/" + config.project + "/capture/" + kind +
      "?sentry_key=" + encodeURIComponent(config.key);
    var payload = JSON.stringify(body);
    try {
      if (window.fetch) {
        window.fetch(url, { method: "POST", body: payload, keepalive: true, mode: "cors",
          headers: { "Content-Type": "text/plain;charset=UTF-8" } }).catch(function () {});
      } else if (navigator.sendBeacon) {
        navigator.sendBeacon(url, payload);
      }
    } catch (e) { /* reporting must never break the page */ }
  }

  function fromError(err, handled) {
    var e = err instanceof Error ? err : new Error(typeof err === "string" ? err : safeString(err));
    return {
      type: e.name || "Error",
      message: e.message || String(e),
      stacktrace: e.stack || "",
      handled: !!handled,
      user: config && config.user,
      tags: config && config.tags
    };
  }

  function safeString(v) {
    try { return JSON.stringify(v); } catch (e) { return String(v); }
  }

  var api = {
    init: function (opts) {
      var d = parseDsn(opts && opts.dsn);
      if (!d) { if (window.console) console.warn("HearthCapture: invalid DSN"); return; }
      config = { base: d.base, key: d.key, project: d.project,
        release: opts.release, environment: opts.environment, user: opts.user, tags: opts.tags };
    },
    setUser: function (user) { if (config) config.user = user; },
    captureException: function (err) { send("exception", fromError(err, true)); },
    captureMessage: function (text, level) {
      send("message", { message: String(text), level: level || "info",
        user: config && config.user, tags: config && config.tags });
    }
  };

  window.addEventListener("error", function (ev) {
    var body = fromError(ev.error || ev.message, false);
    if (!ev.error && ev.filename) {
      body.stacktrace = "at " + ev.filename + ":" + ev.lineno + ":" + ev.colno;
    }
    send("exception", body);
  });
  window.addEventListener("unhandledrejection", function (ev) {
    var body = fromError(ev.reason, false);
    if (!(ev.reason instanceof Error)) body.type = "UnhandledRejection";
    send("exception", body);
  });

  var script = document.currentScript;
  if (script && script.getAttribute("data-dsn")) {
    api.init({ dsn: script.getAttribute("data-dsn"),
      release: script.getAttribute("data-release") || undefined,
      environment: script.getAttribute("data-environment") || undefined });
  }
  window.HearthCapture = api;
})();
