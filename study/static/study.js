// Trial page: shows each trial, records the answer with a client-generated id, preloads the next.
// An answer is retried with the same id until the server confirms it, so it is stored once.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("hit-data").textContent);
  const trials = data.trials;
  let index = trials.findIndex(function (t) { return !t.answered; });
  let shownAt = null;
  let busy = false;
  const imgs = {
    left: document.getElementById("img-left"),
    right: document.getElementById("img-right"),
    reference: document.getElementById("img-reference"),
  };
  const status = document.getElementById("status");
  const cache = [];

  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    const a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.from(a, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function preload(k) {
    if (k >= trials.length) { return; }
    ["reference", "left", "right"].forEach(function (slot) {
      const im = new Image();
      im.src = trials[k].urls[slot];
      cache.push(im);
    });
  }

  function setBusy(b) {
    busy = b;
    document.getElementById("choose-left").disabled = b;
    document.getElementById("choose-right").disabled = b;
  }

  function show() {
    if (index < 0 || index >= trials.length) { window.location.assign(data.done_url); return; }
    const t = trials[index];
    document.getElementById("pos").textContent = String(index + 1);
    document.getElementById("kind-label").textContent = t.kind === "practice" ? "Practice" : "";
    setBusy(true);
    shownAt = null;
    let pending = 3;
    function loaded() {
      pending -= 1;
      if (pending === 0) {
        shownAt = performance.now();
        setBusy(false);
        document.body.dataset.trial = String(t.id);
      }
    }
    ["reference", "left", "right"].forEach(function (slot) {
      imgs[slot].onload = loaded;
      imgs[slot].onerror = function () { status.textContent = "An image failed to load; reload the page."; };
      imgs[slot].src = t.urls[slot];
    });
    preload(index + 1);
  }

  // Sent again with the same answer_id (stored once) while the server answers 5xx or cannot be
  // reached: every 0.5, 1, 2, ... s, at most 30 s apart, for about 8 minutes. A 5xx is the
  // server's problem (it says so); the message never blames the participant's connection.
  const SAVED = " Your answers so far are saved; this one is sent again automatically.";
  function send(body, attempt) {
    return fetch(data.answer_url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Requested-With": "mdf-study" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    }).then(function (r) {
      if (r.status >= 500) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          const e = new Error("server " + r.status);
          e.server = j.error || "The study's server has a problem saving answers (not your connection)." + SAVED;
          throw e;
        });
      }
      return r.json().then(function (j) { return { ok: r.ok, status: r.status, body: j }; });
    }).catch(function (err) {
      if (attempt >= 24) { throw err; }
      status.textContent = err.server || ("The study's server cannot be reached right now." + SAVED);
      return new Promise(function (res) { setTimeout(res, Math.min(30000, 500 * Math.pow(2, attempt))); })
        .then(function () { return send(body, attempt + 1); });
    });
  }

  function choose(side) {
    if (busy || shownAt === null || index < 0 || index >= trials.length) { return; }
    setBusy(true);
    const t = trials[index];
    const body = { answer_id: newId(), trial_id: t.id, side: side,
                   rt_ms: Math.round(performance.now() - shownAt) };
    send(body, 0).then(function (res) {
      if (!res.ok) {
        status.textContent = res.body.error || ("Error " + res.status);
        if (res.status === 409 || res.status === 410) { setTimeout(function () { window.location.reload(); }, 1500); }
        return;
      }
      status.textContent = "";
      t.answered = true;
      if (res.body.done) { window.location.assign(res.body.next || data.done_url); return; }
      index += 1;
      show();
    }).catch(function () {
      status.textContent = "The study's server still cannot save answers. Your answers so far " +
        "are saved: please come back in a few minutes and reload this page to continue.";
    });
  }

  document.getElementById("choose-left").addEventListener("click", function () { choose("left"); });
  document.getElementById("choose-right").addEventListener("click", function () { choose("right"); });
  document.addEventListener("keydown", function (e) {
    if (e.repeat) { return; }
    if (e.key === "ArrowLeft" || e.key === "a" || e.key === "A") { e.preventDefault(); choose("left"); }
    if (e.key === "ArrowRight" || e.key === "l" || e.key === "L") { e.preventDefault(); choose("right"); }
  });
  show();
})();
