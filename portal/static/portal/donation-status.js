// The live donation status (portal/templates/donation_status.html): polls the status API, asks the provider after 15 s.
// A file, not an inline script: the Content-Security-Policy runs scripts from this site only (docs/security.md).
(function () {
  const live = document.getElementById("live");
  let shown = live.querySelector("#status-panel").dataset.status;
  if (shown !== "pending") return;
  const started = Date.now();
  let lastRefresh = 0;
  // Callbacks get lost: after 15 s ask the provider directly every ~10 s (or at once after a card return).
  let refreshNow = live.dataset.returned !== "";

  async function swapPanel() {
    const r = await fetch(live.dataset.panelUrl, {headers: {"Accept": "text/html"}});
    if (r.ok) { live.innerHTML = await r.text(); }
  }
  async function tick() {
    let body = null;
    try {
      const elapsed = Date.now() - started;
      if (refreshNow || (elapsed > 15000 && Date.now() - lastRefresh > 10000)) {
        refreshNow = false;
        lastRefresh = Date.now();
        const r = await fetch(live.dataset.refreshUrl, {method: "POST", headers: {"Accept": "application/json"}});
        if (r.ok) body = await r.json();
      }
      if (!body) {
        const r = await fetch(live.dataset.statusUrl, {headers: {"Accept": "application/json"}});
        if (r.ok) body = await r.json();
      }
      if (body && body.status && body.status !== shown) {
        shown = body.status;
        await swapPanel();
        const title = document.getElementById("status-title");
        if (title) { title.setAttribute("tabindex", "-1"); }
        if (shown !== "pending") return;
      }
    } catch (e) { /* the network blinked: keep polling */ }
    if (Date.now() - started > 15 * 60 * 1000) {  // stop after 15 minutes; the server keeps checking
      const note = document.createElement("p");
      note.className = "notice";
      note.textContent = live.dataset.stillWaiting;  // in the page's language (the template translates it)
      live.appendChild(note);
      return;
    }
    setTimeout(tick, 2000);
  }
  setTimeout(tick, 1000);
})();
