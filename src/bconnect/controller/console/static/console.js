// bconnect admin console: confirmation for dangerous forms, and live regions.
// A live region (data-live="URL") is re-rendered by the server: every second its URL
// is fetched (same origin, the session cookie goes along) and the region replaced by
// the server's escaped HTML. No inline script anywhere (the CSP forbids it).
"use strict";

const POLL_MS = 1000;

function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
}

function liveRegion(region) {
  const url = region.dataset.live;
  let last = null;
  const tick = async () => {
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (response.status === 401) {
        window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (response.ok) {
        const html = await response.text();
        if (html !== last) {
          last = html;
          region.innerHTML = html;
          region.dispatchEvent(new CustomEvent("bconnect:updated"));
        }
      }
    } catch (error) {
      // the controller restarting or the network away: try again next tick
    }
    window.setTimeout(tick, POLL_MS);
  };
  window.setTimeout(tick, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  confirmForms();
  document.querySelectorAll("[data-live]").forEach(liveRegion);
});
