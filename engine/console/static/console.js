// statewright console: live run pages (server-sent events, polling where unavailable)
// and an auto-refreshing runs list. Pages work without it; it only saves reloads.
"use strict";

function swap(id) {
  const target = document.getElementById(id);
  if (!target) return Promise.resolve();
  return fetch(target.dataset.source, { credentials: "same-origin", cache: "no-store" })
    .then((response) => (response.ok ? response.text() : null))
    .then((html) => {
      if (html !== null) target.innerHTML = html;
    })
    .catch(() => {});
}

function followRun(live) {
  let pending = false;
  const refresh = () => {
    if (pending) return;
    pending = true;
    swap("live").finally(() => { pending = false; });
  };
  if (window.EventSource) {
    const events = new EventSource(live.dataset.events);
    events.addEventListener("run", refresh);
    events.addEventListener("gone", () => events.close());
  } else {
    window.setInterval(refresh, 2000);
  }
}

function refreshRuns(rows) {
  const box = document.getElementById("auto-refresh");
  window.setInterval(() => {
    if (box && box.checked && document.visibilityState === "visible") swap("rows");
  }, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) followRun(live);
  const rows = document.getElementById("rows");
  if (rows) refreshRuns(rows);
});
