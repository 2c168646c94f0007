(function () {
  "use strict";
  var specs = {};
  var template = JSON.parse(document.getElementById("cs-template").textContent);
  // A packed report (page.page_scripts) carries plotly.js and the figures gzip-compressed:
  // unpacked here, plotly.js run from a blob: URL; `ready` settles when both are there.
  function unpack(id) {
    var bin = atob(document.getElementById(id).textContent.trim());
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text();
  }
  function runScript(code) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(new Blob([code], {type: "text/javascript"}));
      var s = document.createElement("script");
      s.onload = function () { URL.revokeObjectURL(url); resolve(); };
      s.onerror = reject;
      s.src = url;
      document.head.appendChild(s);
    });
  }
  var ready;
  if (document.getElementById("cs-figures-packed")) {
    if (!("DecompressionStream" in window)) {
      document.getElementById("cs-unpack-failed").hidden = false;
      ready = Promise.reject(new Error("DecompressionStream unavailable"));
    } else {
      ready = Promise.all([
        unpack("cs-plotly-packed").then(runScript),
        unpack("cs-figures-packed").then(function (text) { specs = JSON.parse(text); })
      ]);
    }
  } else {
    specs = JSON.parse(document.getElementById("cs-figures").textContent);
    ready = Promise.resolve();
  }
  var config = {displaylogo: false, responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"],
    toImageButtonOptions: {format: "svg"}};
  // Printing draws every figure: static (no hover machinery, no resize handlers), which
  // draws several times faster.
  var staticConfig = {staticPlot: true, responsive: false};
  var printing = false;
  // On paper a menu cannot be opened: the figure is drawn with one of its options applied
  // (a restyle of the traces) and that option named in its title, without the menu.
  function forPaper(spec, option) {
    var layout = Object.assign({}, spec.layout), data = spec.data;
    // Half a page wide, a legend beside the plot would squeeze it and lose its last
    // entries: on paper it runs in rows under the plot, whole.
    var named = data.filter(function (t) { return t.showlegend !== false && t.name; }).length;
    if (layout.showlegend !== false && named > 1 && (layout.legend || {}).orientation !== "h") {
      layout.legend = Object.assign({}, layout.legend || {}, {
        orientation: "h", x: 0, xanchor: "left", yref: "container", y: 0, yanchor: "bottom",
        font: {size: 9}
      });
      var rows = Math.ceil(named / 6);
      layout.height = (layout.height || 340) + 16 * rows;
      layout.margin = Object.assign({}, layout.margin || {}, {b: ((layout.margin || {}).b || 44) + 16 * rows});
    }
    var menu = (layout.updatemenus || [])[0];
    if (!menu || !menu.buttons || !menu.buttons.length) return {data: data, layout: layout};
    var button = menu.buttons[Math.min(option, menu.buttons.length - 1)];
    if (option !== (menu.active || 0) && button.method === "restyle") {
      data = data.map(function (trace, i) {
        var out = Object.assign({}, trace);
        Object.keys(button.args[0]).forEach(function (k) {
          var v = button.args[0][k];
          out[k] = Array.isArray(v) ? v[i % v.length] : v;
        });
        return out;
      });
    }
    var title = Object.assign({font: {size: 13}}, layout.title || {},
      {x: 0.02, xanchor: "left", y: 0.995, yanchor: "top"});
    title.text = (title.text ? title.text + " · " : "") + button.label;
    layout.title = title;
    layout.updatemenus = [];
    return {data: data, layout: layout};
  }
  function draw(el) {
    return ready.then(function () { return drawNow(el); });
  }
  function drawNow(el) {
    if (el.getAttribute("data-drawn")) return Promise.resolve();
    var spec = specs[el.getAttribute("data-fig")];
    if (!spec || !window.Plotly) return Promise.resolve();
    el.setAttribute("data-drawn", "1");
    if (printing) spec = forPaper(spec, +(el.getAttribute("data-option") || 0));
    var layout = Object.assign({}, spec.layout, {template: template, autosize: true});
    return Plotly.newPlot(el, spec.data, layout, printing ? staticConfig : config);
  }
  var plots = Array.prototype.slice.call(document.querySelectorAll(".plot[data-fig]"));
  var panels = Array.prototype.slice.call(document.querySelectorAll('[role="tabpanel"]'));
  // A figure marked data-print-options prints once per menu option (the donor heatmap: one
  // per treatment), since paper cannot switch.
  function expandOptions() {
    plots.slice().forEach(function (el) {
      if (!el.hasAttribute("data-print-options") || el.getAttribute("data-expanded")) return;
      el.setAttribute("data-expanded", "1");
      var spec = specs[el.getAttribute("data-fig")];
      var menu = spec && (spec.layout.updatemenus || [])[0];
      var box = el.closest("figure") || el;
      var after = box;
      for (var i = 1; menu && i < menu.buttons.length; i++) {
        var copy = box.cloneNode(true);
        copy.classList.add("print-only");
        var plot = copy.querySelector(".plot[data-fig]") || copy;
        plot.removeAttribute("id");
        plot.removeAttribute("data-drawn");
        plot.removeAttribute("data-print-options");
        plot.innerHTML = "";
        plot.setAttribute("data-option", String(i));
        after.parentNode.insertBefore(copy, after.nextSibling);
        after = copy;
        plots.push(plot);
      }
    });
  }
  // Draw every figure (printing, the PDF): tab panels shown, all figures drawn.
  window.csDrawAll = function (forPrint) {
    return ready.then(function () { return drawAll(forPrint); });
  };
  function drawAll(forPrint) {
    printing = !!forPrint;
    panels.forEach(function (p) { p.hidden = false; });
    if (printing) {
      expandOptions();
      // Figures drawn for the screen are drawn again for paper (its width, no menus).
      plots.forEach(function (el) {
        if (el.getAttribute("data-drawn") && window.Plotly) { Plotly.purge(el); el.removeAttribute("data-drawn"); }
      });
    }
    return Promise.all(plots.map(drawNow));
  }
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
        if (window.Plotly) panel.querySelectorAll(".plot[data-drawn]").forEach(function (el) { Plotly.Plots.resize(el); });
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

  // In a report whose every table must fit (main.fit-tables), a table box without a
  // .scroll-hint of its own gets one just before it, naming the column that stays in view
  // (its th.key), if any.
  document.querySelectorAll(".fit-tables .table-wrap").forEach(function (box) {
    var table = box.querySelector("table.data");
    if (!table || (table.id && document.querySelector('.scroll-hint[data-for="' + table.id + '"]'))) return;
    var key = table.querySelector("thead th.key");
    var hint = document.createElement("p");
    hint.className = "scroll-hint no-print";
    hint.hidden = true;
    hint.textContent = "The table scrolls sideways in its box" +
      (key ? "; the " + key.textContent.trim().toLowerCase() + " stays in view." : ".");
    box.parentNode.insertBefore(hint, box);
  });

  // A table box that scrolls sideways is marked data-scrolls and says so (its .scroll-hint,
  // e.g. the plate QC table on a phone); a long reason (details.more) offers "show all" only
  // where its lines do not hold it. Measured again when the window changes size or a
  // <details> (a plate's standards) opens or closes.
  function measure() {
    document.querySelectorAll(".table-wrap").forEach(function (box) {
      box.toggleAttribute("data-scrolls", box.scrollWidth > box.clientWidth + 1);
      var hint = box.previousElementSibling;
      if (hint && hint.classList.contains("scroll-hint") && !hint.hasAttribute("data-for")) {
        hint.hidden = !box.hasAttribute("data-scrolls");
      }
    });
    document.querySelectorAll(".scroll-hint[data-for]").forEach(function (hint) {
      var table = document.getElementById(hint.getAttribute("data-for"));
      var box = table && table.closest(".table-wrap");
      if (box) hint.hidden = !box.hasAttribute("data-scrolls");
    });
    document.querySelectorAll("details.more:not([open])").forEach(function (more) {
      var text = more.querySelector(".reason-text");
      if (text) more.toggleAttribute("data-fits", text.scrollHeight <= text.clientHeight + 1);
    });
  }
  var measuring = false;
  function remeasure() {
    if (measuring) return;
    measuring = true;
    requestAnimationFrame(function () { measuring = false; measure(); });
  }
  window.addEventListener("resize", remeasure);
  document.addEventListener("toggle", remeasure, true);  // toggle does not bubble
  measure();

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
