// Wisp dashboard: live updates on top of server-rendered pages. Every page
// works without this script; it only refreshes numbers, charts and the
// rollout and mirror sections (fetch), shows the traffic editor's sum, and
// follows logs (EventSource).
"use strict";
(function () {
  var POLL_MS = 5000;

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(url + ": " + r.status); } return r.json(); });
  }

  // poll calls f (which returns a promise) every ms after the previous call
  // ended, so a slow answer never piles requests up.
  function poll(ms, f) {
    var next = function () { f().catch(function () {}).then(function () { setTimeout(next, ms); }); };
    setTimeout(next, ms);
  }

  // The services list: one row per service, one cell per number.
  var table = document.getElementById("services");
  if (table && table.dataset.live) {
    poll(POLL_MS, function () {
      return getJSON(table.dataset.live).then(function (data) {
        (data.services || []).forEach(function (s) {
          var row = table.querySelector('tr[data-service="' + CSS.escape(s.name) + '"]');
          if (!row) { return; }
          row.querySelectorAll("[data-k]").forEach(function (cell) {
            var v = s[cell.dataset.k];
            if (v !== undefined) { cell.textContent = String(v); }
          });
        });
        table.dataset.updated = String(Date.now());
      });
    });
  }

  // The sections that follow the service by themselves: a rollout's (a
  // step, a check, a pause) and the mirror report's (every copy counted).
  // When the live JSON's stamp of one differs from the page's, the page is
  // fetched once and those sections are replaced by the server's fresh
  // rendering of them, leaving the rest of the page (a form being edited)
  // alone. The page is fetched from the service page's own path
  // (data-page), not location's: after a refused change the page shown is
  // the answer to a form's POST (…/traffic), whose path answers no GET.
  function refreshSections(page, stamps) {
    var stale = Object.keys(stamps).filter(function (id) {
      var section = document.getElementById(id);
      return stamps[id] && section && section.dataset.updated !== stamps[id].updated;
    });
    if (stale.length === 0) { return Promise.resolve(); }
    return fetch(page, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(page + ": " + r.status); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        stale.forEach(function (id) {
          var section = document.getElementById(id), fresh = doc.getElementById(id);
          if (section && fresh) { section.replaceWith(document.importNode(fresh, true)); }
        });
      });
  }

  // A service's charts: SVG rendered by the server, refreshed in place.
  var live = document.getElementById("live");
  if (live && live.dataset.live) {
    poll(POLL_MS, function () {
      return getJSON(live.dataset.live).then(function (data) {
        Object.keys(data.charts || {}).forEach(function (v) {
          var box = live.querySelector('[data-charts="' + CSS.escape(v) + '"]');
          if (box) { box.innerHTML = data.charts[v]; }
        });
        live.dataset.updated = String(Date.now());
        return refreshSections(live.dataset.page, { rollout: data.rollout, mirror: data.mirror });
      });
    });
  }

  // The traffic editor's running sum.
  var editor = document.getElementById("traffic-editor");
  if (editor) {
    var out = document.getElementById("weight-sum");
    var sum = function () {
      var total = 0, bad = false;
      editor.querySelectorAll("input.weight").forEach(function (i) {
        var t = i.value.trim();
        if (t === "") { return; }
        if (!/^-?\d+$/.test(t)) { bad = true; return; }
        total += parseInt(t, 10);
      });
      out.textContent = bad ? "not a number" : total + "%" + (total === 100 ? "" : " (must be 100)");
      out.className = bad || total !== 100 ? "bad" : "ok";
    };
    editor.addEventListener("input", sum);
    sum();
  }

  // Following logs through the dashboard's stream of the logs API.
  var follow = document.getElementById("follow");
  if (follow) {
    var es = null;
    var lines = document.getElementById("log-lines");
    var status = document.getElementById("follow-status");
    var cell = function (tr, text, cls) {
      var td = document.createElement("td");
      td.textContent = text;
      if (cls) { td.className = cls; }
      tr.appendChild(td);
    };
    var seen = {};
    lines.querySelectorAll("tr[data-seq]").forEach(function (tr) { seen[tr.dataset.seq] = true; });
    follow.addEventListener("change", function () {
      if (!follow.checked) {
        if (es) { es.close(); es = null; }
        status.textContent = "stopped";
        return;
      }
      es = new EventSource(follow.dataset.stream);
      status.textContent = "connecting…";
      es.onopen = function () { status.textContent = "following"; };
      es.onerror = function () {
        // The browser retries a dropped stream by itself (with
        // Last-Event-ID); a refused one (not 200) stays closed.
        status.textContent = es && es.readyState === EventSource.CLOSED ? "stopped: the logs stream was refused (reload the page)" : "reconnecting…";
      };
      es.addEventListener("log", function (ev) {
        var e;
        try { e = JSON.parse(ev.data); } catch (err) { return; }
        if (seen[e.seq]) { return; }
        seen[e.seq] = true;
        var tr = document.createElement("tr");
        tr.className = "kind-" + e.kind;
        tr.dataset.seq = String(e.seq);
        cell(tr, new Date(e.time).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"));
        cell(tr, e.kind + (e.event ? " " + e.event : ""));
        cell(tr, e.version ? "v" + e.version : "");
        cell(tr, e.instance || "");
        cell(tr, e.message, "msg");
        lines.appendChild(tr);
        while (lines.children.length > 2000) { lines.removeChild(lines.firstChild); }
        tr.scrollIntoView({ block: "nearest" });
      });
    });
  }

  // A running build's log, streamed from the start until the build ends.
  var buildLog = document.getElementById("build-log");
  if (buildLog && buildLog.dataset.follow && window.TextDecoder) {
    var bstatus = document.getElementById("build-status");
    fetch(buildLog.dataset.follow, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok || !r.body) { throw new Error(String(r.status)); }
      var reader = r.body.getReader(), dec = new TextDecoder(), first = true;
      if (bstatus) { bstatus.textContent = "following the build's log…"; }
      var pump = function () {
        return reader.read().then(function (chunk) {
          if (chunk.done) {
            if (bstatus) { bstatus.textContent = "the build has ended: reload for its result"; }
            return;
          }
          if (first) { buildLog.textContent = ""; first = false; }
          buildLog.textContent += dec.decode(chunk.value, { stream: true });
          return pump();
        });
      };
      return pump();
    }).catch(function (err) {
      if (bstatus) { bstatus.textContent = "could not follow the log (" + err.message + "): reload"; }
    });
  }
})();
