// The status page polls its job's progress feed and updates itself until a final status.
// Every value goes into the page through textContent: job fields are data, never markup.
"use strict";

(() => {
  const POLL_MS = 1000;
  const MAX_BACKOFF_MS = 15000;
  const FINAL = new Set(["completed", "failed", "cancelled"]);
  const HEADLINES = {
    fetching: "Waiting to start…",
    processing: "Importing…",
    completed: "Import complete",
    failed: "Import failed",
    cancelled: "Import cancelled",
  };
  const COUNTS = {
    processed: "processed_contacts",
    total: "total_contacts",
    created: "created_contacts",
    updated: "updated_contacts",
    skipped: "skipped_contacts",
    failed: "failed_contacts",
    attempts: "attempts",
    "max-attempts": "max_attempts",
  };

  const root = document.getElementById("job");
  if (!root) return;
  const feed = root.dataset.progressUrl;
  const byId = (id) => document.getElementById(id);
  // A job's provider never changes: its label is the one the server rendered (the registry's).
  const providerLabel = byId("provider").textContent;
  const number = (n) => Number(n).toLocaleString("en-US");
  let failures = 0;

  function setText(id, value) {
    const element = byId(id);
    if (element && element.textContent !== value) element.textContent = value;
  }

  function renderBar(job) {
    const bar = byId("bar");
    const total = job.total_contacts;
    const done = Math.min(job.processed_contacts, total);
    if (total > 0) {
      bar.max = total;
      bar.value = done;
      setText("percent", `${Math.floor((100 * done) / total)}%`);
    } else if (job.status === "completed") {
      bar.max = 1;
      bar.value = 1;
      setText("percent", "100%");
    } else {
      bar.removeAttribute("value"); // indeterminate: the total is not known yet
      setText("percent", "");
    }
  }

  function setShown(id, shown) {
    const element = byId(id);
    if (element) element.hidden = !shown;
  }

  // The server words these (waiting, rate, eta): the page says here what it said when rendered.
  function renderPace(job) {
    setText("waiting", job.waiting || "");
    setShown("waiting", Boolean(job.waiting));
    setShown("counts-line", !job.waiting);
    setText("rate", job.rate || "");
    setText("eta", job.eta || "");
    setShown("pace", Boolean(job.rate || job.eta));
    setText("account", job.account_email || "");
    setShown("account-line", Boolean(job.account_email));
  }

  function render(job) {
    const final = FINAL.has(job.status);
    root.dataset.status = job.status;
    root.className = final ? `card done-${job.status}` : "card";
    setText("status", job.status);
    byId("status").className = `badge badge-${job.status}`;
    setText("headline", HEADLINES[job.status] || job.status);
    for (const [id, field] of Object.entries(COUNTS)) setText(id, number(job[field]));
    renderBar(job);
    renderPace(job);
    const error = byId("error");
    setText("error", job.error_message || "");
    error.hidden = !job.error_message;
    setText("live", final ? "Final" : "Updating live");
    const percent = byId("percent").textContent;
    document.title = `${percent ? `${percent} · ` : ""}${providerLabel} import`;
    return final;
  }

  async function poll() {
    let next = POLL_MS;
    try {
      const response = await fetch(feed, {
        cache: "no-store",
        credentials: "omit",
        headers: { Accept: "application/json" },
      });
      if (response.status === 404) {
        setText("live", "This link is no longer valid");
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      failures = 0;
      if (render(await response.json())) return;
    } catch (_error) {
      failures += 1;
      next = Math.min(POLL_MS * 2 ** failures, MAX_BACKOFF_MS);
      setText("live", "Connection lost, retrying…");
    }
    window.setTimeout(poll, next);
  }

  if (!FINAL.has(root.dataset.status)) window.setTimeout(poll, POLL_MS);
})();
