// Poll an analysis' status until it ends, then reload the page (no framework).
(function () {
  var box = document.querySelector("[data-poll]");
  if (!box) return;
  var bar = box.querySelector(".progress > div");
  var text = box.querySelector("[data-message]");
  function tick() {
    fetch(box.getAttribute("data-poll"), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        bar.style.width = Math.round(100 * (s.progress || 0)) + "%";
        text.textContent = s.status + (s.message ? ": " + s.message : "");
        if (s.status === "completed" || s.status === "failed") { window.location.reload(); }
        else { setTimeout(tick, 700); }
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  tick();
})();
