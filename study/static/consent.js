// Consent page: tells the server whether this is a touch-first device (phone or tablet), which
// the user agent alone misses for iPadOS; the server refuses such devices unless the study
// admits them. Without this script the server decides from the user agent.
(function () {
  "use strict";
  const field = document.getElementById("device");
  if (!field) { return; }
  const m = window.matchMedia;
  const coarse = Boolean(m && m("(pointer: coarse)").matches && m("(hover: none)").matches);
  const ipad = /Macintosh/.test(navigator.userAgent) && navigator.maxTouchPoints > 1;
  field.value = coarse || ipad ? "touch" : "computer";
})();
