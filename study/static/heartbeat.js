// Trial page: renews the HIT's lease while the page is open (study.leases), so a participant
// who takes long over a screen keeps the HIT, while an id that never opens or answers it loses
// it after the short first lease. Stops once the server says the HIT is no longer this page's.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("hit-data").textContent);
  if (!data.heartbeat_url || !data.heartbeat_ms) { return; }
  const timer = setInterval(function () {
    fetch(data.heartbeat_url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Requested-With": "mdf-study" },
      body: "{}",
      credentials: "same-origin",
    }).then(function (r) {
      if (r.status === 404 || r.status === 410) { clearInterval(timer); }
    }).catch(function () { /* the next beat tries again */ });
  }, data.heartbeat_ms);
})();
