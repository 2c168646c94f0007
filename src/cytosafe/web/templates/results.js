(function () {
  "use strict";
  // The analysis page's standard curves: each drawn when its curve is opened (a study has
  // dozens); a click on a standard point ticks (or unticks) its checkbox in the exclusion
  // form, and the figure rings the points ticked so far.
  var specs = JSON.parse(document.getElementById("cs-figures").textContent);
  var template = JSON.parse(document.getElementById("cs-template").textContent);
  var config = {displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"],
    toImageButtonOptions: {format: "svg"}};

  function ticked(el) {
    // The points of the figure whose checkbox is ticked, for the "ticked" trace.
    var xs = [], ys = [];
    el.data.forEach(function (trace) {
      if (trace.meta === "ticked" || !trace.customdata) return;
      trace.customdata.forEach(function (id, i) {
        var box = document.getElementById(id);
        if (box && box.checked) { xs.push(trace.x[i]); ys.push(trace.y[i]); }
      });
    });
    return {x: xs, y: ys};
  }

  function refresh(el) {
    if (!el.data || !window.Plotly) return;
    var at = el.data.findIndex(function (t) { return t.meta === "ticked"; });
    if (at < 0) return;
    var t = ticked(el);
    Plotly.restyle(el, {x: [t.x], y: [t.y], showlegend: t.x.length > 0}, [at]);
  }

  function draw(el) {
    if (el.getAttribute("data-drawn") || !window.Plotly) return;
    var spec = specs[el.getAttribute("data-std")];
    if (!spec) return;
    el.setAttribute("data-drawn", "1");
    var layout = Object.assign({}, spec.layout, {template: template, autosize: true});
    Plotly.newPlot(el, spec.data, layout, config).then(function () {
      refresh(el);
      el.on("plotly_click", function (event) {
        // The ring of a ticked point lies over it: take the point that has a checkbox.
        var point = (event.points || []).filter(function (pt) {
          return typeof pt.customdata === "string";
        })[0];
        var id = point && point.customdata;
        var box = typeof id === "string" ? document.getElementById(id) : null;
        if (!box) return;
        box.checked = !box.checked;
        box.dispatchEvent(new Event("change", {bubbles: true}));
      });
    });
  }

  var plots = Array.prototype.slice.call(document.querySelectorAll(".plot[data-std]"));
  plots.forEach(function (el) {
    var box = el.closest("details");
    if (!box || box.open) draw(el);
    if (box) box.addEventListener("toggle", function () { if (box.open) draw(el); });
  });
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input || input.name !== "wells") return;
    var curve = input.closest("details") || document;
    curve.querySelectorAll(".plot[data-std][data-drawn]").forEach(refresh);
  });
})();
