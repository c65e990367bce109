// Trial page: shows each trial at one image pixel per device pixel (layout.js), records the
// answer with its viewing conditions and a client-generated id, preloads the next trial.
// An answer is retried with the same id until the server confirms it, so it is stored once.
// Stimuli are visible only while they are drawn exactly: a resize, zoom or move to another
// monitor re-lays the page out, or pauses it with a message until 1:1 is possible again.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("hit-data").textContent);
  const cfg = data.display;
  const trials = data.trials;
  const SLOTS = ["left", "reference", "right"];
  const $ = function (id) { return document.getElementById(id); };
  const imgs = { left: $("img-left"), right: $("img-right"), reference: $("img-reference") };
  const figs = { left: $("fig-left"), right: $("fig-right"), reference: $("fig-reference") };
  const wins = { left: $("choose-left"), right: $("choose-right"), reference: $("win-reference") };
  const status = $("status");
  const reducedMotion = window.matchMedia && matchMedia("(prefers-reduced-motion: reduce)").matches;
  let index = trials.findIndex(function (t) { return !t.answered; });
  let plan = null;       // the current layout (MdfLayout.plan), null while paused
  let loaded = false;    // the current trial's three images are decoded
  let busy = false;      // an answer is on its way
  let shownAt = null;    // performance.now() when the trial was first visible
  let rec = null;        // what happened during the current trial
  let showing = "left";  // toggle layout: the slot on view
  let lastCandidate = "left";
  let flickerOn = cfg.flicker_ms > 0 && !reducedMotion;
  let flickerTimer = null;
  let hiddenSince = null;
  let reports = 0, lastOutcome = null;
  let paused = null;     // the reason the stimuli are hidden, or null
  const cache = [];

  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    const a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.from(a, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function since() { return shownAt === null ? 0 : Math.round(performance.now() - shownAt); }

  function note(kind, detail) {
    if (rec && rec.events.length < 64) {
      rec.events.push(detail === undefined ? [since(), kind] : [since(), kind, String(detail)]);
    }
  }

  function touchFirst() {
    const m = window.matchMedia;
    return Boolean(m && m("(pointer: coarse)").matches && m("(hover: none)").matches) ||
      /Mobi|Android|iPhone|iPad|iPod|Tablet/.test(navigator.userAgent) ||
      (/Macintosh/.test(navigator.userAgent) && navigator.maxTouchPoints > 1);
  }

  function pointerKind() {
    const m = window.matchMedia;
    if (!m) { return "none"; }
    if (m("(pointer: fine)").matches) { return "fine"; }
    return m("(pointer: coarse)").matches ? "coarse" : "none";
  }

  function zoom() { return window.visualViewport ? visualViewport.scale : 1; }

  function report(outcome, layout) {
    if (outcome === lastOutcome || reports >= 20) { return; }
    lastOutcome = outcome;
    reports += 1;
    post(data.view_url, {
      outcome: outcome, layout: layout || null, dpr: window.devicePixelRatio, zoom: zoom(),
      viewport: [window.innerWidth, window.innerHeight], screen: [screen.width, screen.height],
      pointer: pointerKind(), touch_points: navigator.maxTouchPoints || 0,
    }, 0).catch(function () { /* the report is best effort */ });
  }

  const MESSAGES = {
    device: ["Please use a computer",
      "This study shows images at their exact pixel size and needs a computer (desktop or " +
      "laptop). Phones and tablets cannot take part; please open the same link on a computer."],
    zoomed: ["Please zoom back out",
      "The page is zoomed in, so the images would be enlarged. Pinch or zoom back out to " +
      "continue."],
    inexact: ["Please set the browser zoom to 100%",
      "At the current zoom or display scaling the images cannot be shown pixel for pixel. " +
      "Set your browser zoom to 100% (Ctrl+0, or Cmd+0 on a Mac). If the zoom already is " +
      "100%, this screen's scaling cannot show these images exactly: please use another " +
      "screen or computer."],
    enlarge: ["Please make the window larger",
      "The images must be shown at their true size and do not fit in this window. Maximise " +
      "the browser window or use a larger screen; the study continues as soon as they fit."],
  };

  function pause(outcome, p) {
    if (paused !== outcome) { note("pause", outcome); }
    paused = outcome;
    plan = null;
    delete document.body.dataset.ready;
    document.body.classList.add("paused");
    const msg = MESSAGES[outcome];
    $("pause-title").textContent = msg[0];
    let text = msg[1];
    if (outcome === "enlarge" && p) {
      text += " (This window: " + p.available[0] + " x " + p.available[1] + " px; needed: " +
        Math.ceil(p.needed[0]) + " x " + Math.ceil(p.needed[1]) + " px.)";
    }
    $("pause-text").textContent = text;
    $("pause").hidden = false;
    report(outcome, p && p.layout);
    stopFlicker();
  }

  function measure(slot) {
    const r = imgs[slot].getBoundingClientRect();
    return [r.left, r.top, r.width, r.height];
  }

  function setCaptions(toggle) {
    $("cap-left").textContent = toggle ? "A" : "Left";
    $("cap-right").textContent = toggle ? "B" : "Right";
    $("choose-left").setAttribute("aria-label", toggle ? "Image A (shown; Space switches)" :
      "The left image is closer to the reference");
    $("choose-right").setAttribute("aria-label", toggle ? "Image B (shown; Space switches)" :
      "The right image is closer to the reference");
    $("hint-side").hidden = toggle;
    $("hint-toggle").hidden = !toggle;
    $("toggle-tools").hidden = !toggle;
    $("answer-left").hidden = !toggle;
    $("answer-right").hidden = !toggle;
  }

  function render(slotOnView) {
    const toggle = plan && plan.layout === "toggle";
    SLOTS.forEach(function (slot) {
      figs[slot].classList.toggle("off", toggle && slot !== slotOnView);
    });
    if (toggle) {
      $("show-left").setAttribute("aria-pressed", String(slotOnView === "left"));
      $("show-right").setAttribute("aria-pressed", String(slotOnView === "right"));
      $("show-reference").setAttribute("aria-pressed", String(slotOnView === "reference"));
    }
  }

  // Lay the current trial out (or pause); called on every resize, zoom or ratio change.
  function layout(why) {
    if (index < 0 || index >= trials.length || !loaded) { return; }
    const t = trials[index];
    const dpr = window.devicePixelRatio;
    if (!cfg.allow_mobile && touchFirst()) { pause("device", null); return; }
    if (Math.abs(zoom() - 1) > 1e-3) { pause("zoomed", null); return; }
    const p = MdfLayout.plan({
      W: t.size[0], H: t.size[1], dpr: dpr, viewW: document.documentElement.clientWidth,
      viewH: document.documentElement.clientHeight, top: $("bar").getBoundingClientRect().bottom,
      bottom: $("controls").getBoundingClientRect().height,
      caption: $("cap-reference").getBoundingClientRect().height + 6,
      layout: cfg.layout, fit: cfg.fit,
    });
    if (p.outcome === "enlarge" || p.outcome === "inexact") { pause(p.outcome, p); return; }
    setCaptions(p.layout === "toggle");
    SLOTS.forEach(function (slot) {
      figs[slot].style.left = p.pos[slot][0] + "px";
      figs[slot].style.top = p.pos[slot][1] + "px";
      wins[slot].style.width = p.win[0] + "px";
      wins[slot].style.height = p.win[1] + "px";
      imgs[slot].style.width = p.img[0] + "px";
      imgs[slot].style.height = p.img[1] + "px";
      imgs[slot].style.left = p.offset[0] + "px";
      imgs[slot].style.top = p.offset[1] + "px";
    });
    const bad = SLOTS.filter(function (slot) {
      return !MdfLayout.exact(imgs[slot].getBoundingClientRect(), t.size[0], t.size[1], dpr);
    });
    if (bad.length) { pause("inexact", p); return; }
    const key = [p.outcome, p.layout, dpr, p.win.join("x"), p.pos.left.join(",")].join(" ");
    if (rec && rec.planKey !== null && rec.planKey !== key) {
      rec.layout_changes += 1;
      note("layout", p.outcome + " " + p.layout + " " + p.win.join("x"));
    }
    if (rec) { rec.planKey = key; }
    if (paused !== null) { note("resume", why || ""); paused = null; }
    plan = p;
    document.body.classList.remove("paused");
    $("pause").hidden = true;
    report(p.outcome, p.layout);
    render(p.layout === "toggle" ? showing : null);
    if (p.layout === "toggle") { startFlicker(); } else { stopFlicker(); }
    if (shownAt === null) {
      shownAt = performance.now();
      if (p.layout === "toggle") { see(showing); }
    }
    if (!busy) { document.body.dataset.ready = "1"; }
  }

  let pending = null;
  function relayout(why, detail) {
    if (detail !== undefined) { note(why, detail); }
    if (pending === null) {
      pending = requestAnimationFrame(function () { pending = null; layout(why); });
    }
  }

  function watchRatio() {
    if (!window.matchMedia) { return; }
    const dpr = window.devicePixelRatio;
    const mq = matchMedia("(resolution: " + dpr + "dppx)");
    mq.addEventListener("change", function once() {
      mq.removeEventListener("change", once);
      relayout("dpr", window.devicePixelRatio);
      watchRatio();
    });
  }

  // ---- toggle layout: one place, candidates switched by key, hover, tap or flicker
  function see(slot) {
    if (!rec) { return; }
    if (slot === "reference") { rec.reference_views += 1; rec.sawReference = true; }
    if (slot === "left") { rec.sawLeft = true; }
    if (slot === "right") { rec.sawRight = true; }
  }

  function show(slot, manual) {
    if (!plan || plan.layout !== "toggle" || slot === showing) { return; }
    if (slot !== "reference") { lastCandidate = slot; }
    if (manual && rec && slot !== "reference") { rec.toggles += 1; }
    showing = slot;
    see(slot);
    render(slot);
  }

  function other() { return lastCandidate === "left" ? "right" : "left"; }

  function startFlicker() {
    if (!flickerOn || flickerTimer !== null || !(cfg.flicker_ms > 0)) { return; }
    flickerTimer = setInterval(function () {
      if (showing !== "reference") { show(other(), false); }
    }, cfg.flicker_ms);
    if ($("flicker")) { $("flicker").setAttribute("aria-pressed", "true"); }
  }

  function stopFlicker() {
    if (flickerTimer !== null) { clearInterval(flickerTimer); flickerTimer = null; }
    if ($("flicker")) { $("flicker").setAttribute("aria-pressed", String(flickerOn)); }
  }

  function toggleFlicker() {
    if (!(cfg.flicker_ms > 0)) { return; }
    flickerOn = !flickerOn;
    note(flickerOn ? "flicker_on" : "flicker_off");
    if (flickerOn && plan && plan.layout === "toggle") { startFlicker(); } else { stopFlicker(); }
  }

  // ---- trials
  function preload(k) {
    if (k >= trials.length) { return; }
    SLOTS.forEach(function (slot) {
      const im = new Image();
      im.src = trials[k].urls[slot];
      cache.push(im);
    });
  }

  function setBusy(b) {
    busy = b;
    document.querySelectorAll(".choice, .answer").forEach(function (el) {
      el.setAttribute("aria-disabled", String(b));
    });
    if (b) { delete document.body.dataset.ready; }
  }

  function begin() {
    if (index < 0 || index >= trials.length) { window.location.assign(data.done_url); return; }
    const t = trials[index];
    $("pos").textContent = String(index + 1);
    $("kind-label").textContent = t.practice ? "Practice" : "";
    setBusy(true);
    loaded = false;
    plan = null;
    shownAt = null;
    hiddenSince = document.hidden ? performance.now() : null;
    showing = lastCandidate = "left";
    rec = { events: [], hidden_ms: 0, visibility_changes: 0, layout_changes: 0, toggles: 0,
            reference_views: 0, sawLeft: false, sawRight: false, sawReference: false,
            planKey: null };
    document.body.classList.add("loading");
    Promise.all(SLOTS.map(function (slot) {
      const im = imgs[slot];
      im.src = t.urls[slot];
      return im.decode();
    })).then(function () {
      if (trials[index] !== t) { return; }
      loaded = true;
      document.body.classList.remove("loading");
      setBusy(false);
      document.body.dataset.trial = String(t.id);
      layout("trial");
    }).catch(function () { status.textContent = "An image failed to load; reload the page."; });
    preload(index + 1);
  }

  // Sent again with the same answer_id (stored once) while the server answers 5xx or cannot be
  // reached: every 0.5, 1, 2, ... s, at most 30 s apart, for about 8 minutes. A 5xx is the
  // server's problem (it says so); the message never blames the participant's connection.
  const SAVED = " Your answers so far are saved; this one is sent again automatically.";
  function post(url, body, attempt) {
    return fetch(url, {
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
        .then(function () { return post(url, body, attempt + 1); });
    });
  }

  function viewOf(input) {
    const hidden = rec.hidden_ms + (hiddenSince === null ? 0 : performance.now() - hiddenSince);
    const toggle = plan.layout === "toggle";
    return {
      layout: plan.layout, fit: plan.crop ? "crop" : "full", dpr: window.devicePixelRatio,
      zoom: zoom(), viewport: [window.innerWidth, window.innerHeight],
      screen: [screen.width, screen.height],
      drawn: { left: measure("left"), right: measure("right"),
               reference: !toggle || rec.sawReference ? measure("reference") : null },
      window: plan.crop, input: input, hidden_ms: Math.round(hidden),
      visibility_changes: rec.visibility_changes, layout_changes: rec.layout_changes,
      toggles: rec.toggles, reference_views: rec.reference_views, events: rec.events,
    };
  }

  function choose(side, input) {
    if (busy || !loaded || plan === null || shownAt === null) { return; }
    if (side === "tie" && !cfg.allow_tie) { return; }
    if (plan.layout === "toggle" && !(rec.sawLeft && rec.sawRight)) {
      status.textContent = "Look at both A and B first (Space switches).";
      return;
    }
    const t = trials[index];
    const body = { answer_id: newId(), trial_id: t.id, side: side,
                   rt_ms: Math.round(performance.now() - shownAt), view: viewOf(input) };
    setBusy(true);
    stopFlicker();
    post(data.answer_url, body, 0).then(function (res) {
      if (!res.ok) {
        status.textContent = res.body.error || ("Error " + res.status);
        if (res.status === 409 || res.status === 410) {
          setTimeout(function () { window.location.reload(); }, 1500);
        } else {
          setBusy(false);
        }
        return;
      }
      status.textContent = "";
      t.answered = true;
      if (res.body.done) { window.location.assign(res.body.next || data.done_url); return; }
      index += 1;
      begin();
    }).catch(function () {
      status.textContent = "The study's server still cannot save answers. Your answers so far " +
        "are saved: please come back in a few minutes and reload this page to continue.";
    });
  }

  function inputOf(e) {
    const kind = e.pointerType;
    if (kind === "touch" || kind === "pen") { return kind; }
    if (kind === "mouse" || (kind === undefined && e.detail > 0)) { return "click"; }
    return "key";
  }

  // ---- wiring
  $("choose-left").addEventListener("click", function (e) {
    if (plan && plan.layout === "toggle") { show(other(), true); return; }
    choose("left", inputOf(e));
  });
  $("choose-right").addEventListener("click", function (e) {
    if (plan && plan.layout === "toggle") { show(other(), true); return; }
    choose("right", inputOf(e));
  });
  $("answer-left").addEventListener("click", function (e) { choose("left", inputOf(e)); });
  $("answer-right").addEventListener("click", function (e) { choose("right", inputOf(e)); });
  if ($("answer-tie")) {
    $("answer-tie").addEventListener("click", function (e) { choose("tie", inputOf(e)); });
  }
  ["left", "right"].forEach(function (slot) {
    const b = $("show-" + slot);
    b.addEventListener("mouseenter", function () { show(slot, true); });
    b.addEventListener("click", function () { show(slot, true); });
  });
  const refButton = $("show-reference");
  refButton.addEventListener("pointerdown", function () { show("reference", true); });
  ["pointerup", "pointerleave", "pointercancel"].forEach(function (ev) {
    refButton.addEventListener(ev, function () {
      if (showing === "reference") { show(lastCandidate, true); }
    });
  });
  refButton.addEventListener("click", function (e) {
    if (inputOf(e) !== "key") { return; }  // pointers: pressed and held (above)
    show(showing === "reference" ? lastCandidate : "reference", true);
  });
  if ($("flicker")) { $("flicker").addEventListener("click", toggleFlicker); }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    const k = e.key;
    const toggle = plan && plan.layout === "toggle";
    if (k === " " && toggle) {
      e.preventDefault();
      if (!e.repeat) { show(showing === "reference" ? lastCandidate : other(), true); }
      return;
    }
    if (e.repeat) { return; }
    if (k === "ArrowLeft" || k === "a" || k === "A") { e.preventDefault(); choose("left", "key"); }
    if (k === "ArrowRight" || k === "l" || k === "L") { e.preventDefault(); choose("right", "key"); }
    if ((k === "ArrowDown" || k === "n" || k === "N") && cfg.allow_tie) {
      e.preventDefault();
      choose("tie", "key");
    }
    if ((k === "r" || k === "R") && toggle) { show("reference", true); }
    if ((k === "f" || k === "F") && toggle) { toggleFlicker(); }
  });
  document.addEventListener("keyup", function (e) {
    if (e.key === " " && plan && plan.layout === "toggle") { e.preventDefault(); }
    if ((e.key === "r" || e.key === "R") && showing === "reference") { show(lastCandidate, true); }
  });
  document.addEventListener("visibilitychange", function () {
    if (!rec) { return; }
    if (document.hidden) {
      hiddenSince = performance.now();
      rec.visibility_changes += 1;
      note("hidden");
    } else {
      if (hiddenSince !== null) { rec.hidden_ms += performance.now() - hiddenSince; }
      hiddenSince = null;
      note("visible");
    }
  });
  window.addEventListener("resize", function () {
    relayout("resize", window.innerWidth + "x" + window.innerHeight);
  });
  if (window.visualViewport) {
    visualViewport.addEventListener("resize", function () {
      relayout("zoom", visualViewport.scale.toFixed(3));
    });
  }
  watchRatio();
  // a safety net for ratio or zoom changes that fire no event (some browsers, emulators):
  // compared twice a second
  let lastEnv = [window.devicePixelRatio, zoom()].join();
  setInterval(function () {
    const env = [window.devicePixelRatio, zoom()].join();
    if (env !== lastEnv) { relayout("dpr", window.devicePixelRatio); }
    lastEnv = env;
  }, 500);
  begin();
})();
