/* RED-PSS console: the little JavaScript it has. Pages read without it; this adds
   (1) refresh in place: a <main data-refresh="N"> is fetched again every N seconds (same URL, X-Console-Partial),
       not while the tab is hidden or while focus is on a control inside it;
   (2) the load charts (uPlot, shipped in this folder) from the JSON the load page embeds. */
(function () {
  "use strict";
  var main = document.getElementById("main");

  function refresh(seconds) {
    var busy = false;
    window.setInterval(function () {
      if (busy || document.hidden) { return; }
      var focused = document.activeElement;
      if (focused && focused !== main && main.contains(focused) && /^(INPUT|SELECT|BUTTON|TEXTAREA)$/.test(focused.tagName)) { return; }
      busy = true;
      fetch(window.location.href, { headers: { "X-Console-Partial": "1" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) { if (html !== null && html !== undefined) { main.innerHTML = html; main.dataset.refreshed = String(Date.now()); } })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { busy = false; });
    }, seconds * 1000);
  }

  var COLOURS = { runs: "#0b57d0", busy: "#1a6b2f", queued: "#a4161a", size: "#6b7280", p50: "#0b57d0", max: "#a4161a" };
  var LABELS = { runs: "runs started", busy: "busy workers", queued: "queued", size: "pool size", p50: "lateness p50 ms", max: "lateness max ms" };

  function charts() {
    var source = document.getElementById("load-data");
    if (!source || typeof window.uPlot !== "function") { return; }
    var pools = JSON.parse(source.textContent);
    window.consoleCharts = [];
    document.querySelectorAll("div.chart").forEach(function (box) {
      var pool = pools[box.dataset.pool];
      if (!pool) { return; }
      var names = box.dataset.series.split(",");
      var series = [{}].concat(names.map(function (name) { return { label: LABELS[name], stroke: COLOURS[name], width: 2 }; }));
      var values = [pool.t].concat(names.map(function (name) { return pool[name]; }));
      var width = Math.max(280, box.clientWidth || 320);
      var plot = new window.uPlot({ width: width, height: 200, series: series, scales: { x: { time: true } } }, values, box);
      box.setAttribute("role", "img");
      box.setAttribute("aria-label", names.map(function (n) { return LABELS[n]; }).join(", ") + " of pool " + box.dataset.pool +
        ": " + pool.t.length + " points; the table below has the figures");
      window.consoleCharts.push(plot);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (main && main.dataset.refresh) { refresh(Number(main.dataset.refresh) || 3); }
    charts();
  });
})();
