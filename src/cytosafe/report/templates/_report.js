(function () {
  "use strict";
  var specs = JSON.parse(document.getElementById("cs-figures").textContent);
  var template = JSON.parse(document.getElementById("cs-template").textContent);
  var config = {displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"],
    toImageButtonOptions: {format: "svg"}};
  // Printing draws every figure: static (no hover machinery, no resize handlers), which
  // draws several times faster.
  var staticConfig = {staticPlot: true, responsive: false};
  var printing = false;
  function draw(el) {
    if (el.getAttribute("data-drawn")) return Promise.resolve();
    var spec = specs[el.getAttribute("data-fig")];
    if (!spec || !window.Plotly) return Promise.resolve();
    el.setAttribute("data-drawn", "1");
    var layout = Object.assign({}, spec.layout, {template: template, autosize: true});
    return Plotly.newPlot(el, spec.data, layout, printing ? staticConfig : config);
  }
  var plots = Array.prototype.slice.call(document.querySelectorAll(".plot[data-fig]"));
  var panels = Array.prototype.slice.call(document.querySelectorAll('[role="tabpanel"]'));
  // Draw every figure (printing, the PDF): tab panels shown, all figures drawn.
  window.csDrawAll = function (forPrint) {
    printing = !!forPrint;
    panels.forEach(function (p) { p.hidden = false; });
    return Promise.all(plots.map(draw));
  };
  // Draw figures as they come into view: a study has dozens, most never looked at.
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { io.unobserve(e.target); draw(e.target); } });
    }, {rootMargin: "400px 0px"});
    plots.forEach(function (el) { io.observe(el); });
  } else {
    plots.forEach(draw);
  }
  // Printing shows every tab; afterwards the tabs are as they were.
  window.addEventListener("beforeprint", function () { window.csDrawAll(); });
  window.addEventListener("afterprint", function () {
    panels.forEach(function (p) {
      var tab = document.getElementById(p.getAttribute("aria-labelledby"));
      if (tab) p.hidden = tab.getAttribute("aria-selected") !== "true";
    });
  });

  document.querySelectorAll("[data-tabs]").forEach(function (box) {
    var tabs = Array.prototype.slice.call(box.querySelectorAll('[role="tab"]'));
    tabs.forEach(function (tab) {
      tab.addEventListener("click", function () {
        tabs.forEach(function (t) {
          var on = t === tab;
          t.setAttribute("aria-selected", on ? "true" : "false");
          document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
        });
        var panel = document.getElementById(tab.getAttribute("aria-controls"));
        panel.querySelectorAll(".plot[data-drawn]").forEach(function (el) { Plotly.Plots.resize(el); });
      });
    });
  });

  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var rows = document.getElementById(input.getAttribute("data-filter")).tBodies[0].rows;
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      for (var i = 0; i < rows.length; i++) {
        rows[i].hidden = q !== "" && rows[i].textContent.toLowerCase().indexOf(q) < 0;
      }
    });
  });

  var links = {};
  document.querySelectorAll("nav.toc a[href^='#']").forEach(function (a) { links[a.getAttribute("href").slice(1)] = a; });
  if ("IntersectionObserver" in window) {
    var spy = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (!e.isIntersecting) return;
        Object.keys(links).forEach(function (k) { links[k].classList.toggle("active", k === e.target.id); });
      });
    }, {rootMargin: "-10% 0px -80% 0px"});
    Object.keys(links).forEach(function (k) { var s = document.getElementById(k); if (s) spy.observe(s); });
  }
})();
