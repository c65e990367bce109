// Exact-display layout of the trial page: where to put each stimulus so that one image pixel is
// one device pixel (no resampling), or which fallback the study's fit policy chooses.
//
// Chromium lays out in 1/64 CSS px and (under emulated pixel ratios) snaps images to whole CSS
// pixels, so every size and position here is a whole number of CSS px that is also a whole
// number of device px: multiples of `u` CSS px = `q` device px, where devicePixelRatio = q/u in
// lowest terms (grid()). An image of W x H pixels is drawn exactly only when q divides W and H.
// study/display.py documents the same rule for the server (quantum()).
(function () {
  "use strict";

  // {q: device px, u: CSS px} with dpr = q/u, or null when dpr is no such fraction (u <= 64).
  function grid(dpr) {
    if (!(dpr > 0) || !isFinite(dpr)) { return null; }
    for (let u = 1; u <= 64; u += 1) {
      const p = dpr * u;
      if (Math.abs(p - Math.round(p)) < 1e-4 * u && Math.round(p) >= 1) {
        return { q: Math.round(p), u: u };
      }
    }
    return null;
  }

  const GAP = 24;      // CSS px between images side by side (at least)
  const MARGIN = 8;    // CSS px kept free at the window's edges
  const MIN_CROP = 128; // image px: a smaller 1:1 window is not worth showing

  function floorTo(x, u) { return Math.floor(x / u + 1e-9) * u; }
  function ceilTo(x, u) { return Math.ceil(x / u - 1e-9) * u; }

  // The layout of one trial.
  // o: {W, H (image px), dpr, viewW, viewH (CSS px), top, bottom (CSS px taken by the bars),
  //     caption (CSS px under each image), layout ("side_by_side"|"toggle"),
  //     fit ("enlarge"|"crop"|"toggle")}
  // Returns {outcome, layout, q, u, img: [w, h] CSS, win: [w, h] CSS, crop: [x, y, w, h] image
  // px or null, offset: [x, y] CSS of the image inside its window, pos: {slot: [x, y]} CSS,
  // needed: [w, h] CSS px the study's layout needs and available: [w, h] CSS px}. outcome: "shown" (the study's layout, whole
  // images), "toggle" (the fit policy's toggle layout), "crop", "enlarge" (does not fit) or
  // "inexact" (this ratio cannot draw these images exactly).
  function plan(o) {
    const g = grid(o.dpr);
    const out = { outcome: "inexact", layout: o.layout, q: g ? g.q : null, u: g ? g.u : null,
                  crop: null, pos: {}, needed: [0, 0], available: [0, 0] };
    if (!g || o.W % g.q || o.H % g.q) { return out; }
    const u = g.u, q = g.q;
    const gap = ceilTo(GAP, u);
    const left = ceilTo(MARGIN, u);
    const top = ceilTo(o.top + MARGIN, u);
    const availW = floorTo(o.viewW - MARGIN, u) - left;
    const availH = floorTo(o.viewH - o.bottom - o.caption - MARGIN, u) - top;
    const w = (o.W / q) * u, h = (o.H / q) * u;
    function slots(layout) { return layout === "toggle" ? 1 : 3; }
    function fits(layout, ww, hh) {
      const n = slots(layout);
      return n * ww + (n - 1) * gap <= availW && hh <= availH;
    }
    const n0 = slots(o.layout);
    out.available = [o.viewW, o.viewH];
    out.needed = [n0 * w + (n0 - 1) * gap + 2 * left, h + top + o.bottom + o.caption + MARGIN];
    out.img = [w, h];
    let layout = o.layout, win = [w, h], crop = null;
    if (fits(layout, w, h)) {
      out.outcome = "shown";
    } else if (o.fit === "toggle" && layout === "side_by_side" && fits("toggle", w, h)) {
      layout = "toggle";
      out.outcome = "toggle";
    } else if (o.fit === "crop") {
      const n = slots(layout);
      const cw = Math.min(w, floorTo((availW - (n - 1) * gap) / n, u));
      const ch = Math.min(h, floorTo(availH, u));
      const minW = Math.min(w, (MIN_CROP / q) * u), minH = Math.min(h, (MIN_CROP / q) * u);
      if (cw < minW || ch < minH || cw <= 0 || ch <= 0) { out.outcome = "enlarge"; return out; }
      const cx = floorTo((w - cw) / 2, u), cy = floorTo((h - ch) / 2, u);
      win = [cw, ch];
      crop = [cx / u * q, cy / u * q, cw / u * q, ch / u * q];
      out.outcome = "crop";
    } else {
      out.outcome = "enlarge";
      return out;
    }
    const n = slots(layout);
    const total = n * win[0] + (n - 1) * gap;
    const x0 = left + Math.max(0, floorTo((availW - total) / 2, u));
    const y0 = top + Math.max(0, floorTo((availH - win[1]) / 2, u));
    const order = ["left", "reference", "right"];
    order.forEach(function (slot, k) {
      out.pos[slot] = layout === "toggle" ? [x0, y0] : [x0 + k * (win[0] + gap), y0];
    });
    out.layout = layout;
    out.win = win;
    out.crop = crop;
    out.offset = crop ? [-(crop[0] / q) * u, -(crop[1] / q) * u] : [0, 0];
    return out;
  }

  // Whether the element's drawn box is W x H device px on whole CSS and device pixels.
  function exact(rect, W, H, dpr) {
    function whole(x) { return Math.abs(x - Math.round(x)) <= 0.01; }
    return Math.abs(rect.width * dpr - W) <= 0.01 && Math.abs(rect.height * dpr - H) <= 0.01 &&
      whole(rect.left) && whole(rect.top) && whole(rect.left * dpr) && whole(rect.top * dpr);
  }

  window.MdfLayout = { grid: grid, plan: plan, exact: exact };
})();
