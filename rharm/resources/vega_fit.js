/* rharm: draw a chart at the width of its container (rharm.charts.vega_bundle wraps vega-embed with this).
 *
 * Charts are built for the book's column at desktop width. Instead of letting the browser shrink the drawn SVG on a
 * narrow screen (which shrinks its text below reading size), the spec is refitted to the container before it is
 * drawn, and again when the window is resized:
 *   - every font is at least MIN_FONT px (axis labels, legends, titles, text marks);
 *   - below NARROW px side-by-side panels (hconcat, concat, facet and repeat columns) are stacked;
 *   - plot widths shrink so the whole chart, axes and legends included, fits the container;
 *   - heatmap cell labels (a text layer named "rharm-cell-text-<columns>") are dropped when cells get too narrow;
 *   - long titles wrap onto several lines.
 * After drawing, a chart still wider than its container is redrawn narrower (measured, at most twice).
 */
var rharmEmbedFitted = (function () {
  var MIN_FONT = 11, NARROW = 600, AXIS_PX = 110, SIDE_LEGEND_PX = 130, GAP_PX = 20, CHAR_PX = 6.8;
  var MIN_CELL_TEXT_PX = 26;
  var FONT_KEYS = ["fontSize", "labelFontSize", "titleFontSize", "subtitleFontSize"];

  function clone(x) { return JSON.parse(JSON.stringify(x)); }

  function minFonts(node) {
    if (Array.isArray(node)) { node.forEach(minFonts); return; }
    if (!node || typeof node !== "object") return;
    Object.keys(node).forEach(function (k) {
      var v = node[k];
      if (FONT_KEYS.indexOf(k) >= 0 && typeof v === "number" && v < MIN_FONT) node[k] = MIN_FONT;
      else if (k !== "data" && k !== "datasets" && k !== "values") minFonts(v);
    });
  }

  function withConfig(spec) {
    var c = spec.config = spec.config || {};
    function dflt(group, key, value) {
      c[group] = c[group] || {};
      if (typeof c[group][key] !== "number" || c[group][key] < value) c[group][key] = value;
    }
    dflt("axis", "labelFontSize", MIN_FONT); dflt("axis", "titleFontSize", 12);
    dflt("legend", "labelFontSize", MIN_FONT); dflt("legend", "titleFontSize", 12);
    dflt("header", "labelFontSize", 12); dflt("header", "titleFontSize", 12);
    dflt("title", "fontSize", 14); dflt("title", "subtitleFontSize", 12);
    dflt("text", "fontSize", MIN_FONT);
    return spec;
  }

  function wrapText(text, maxChars) {
    if (typeof text !== "string" || text.length <= maxChars) return text;
    var words = text.split(" "), lines = [], line = "";
    words.forEach(function (w) {
      if (line && (line + " " + w).length > maxChars) { lines.push(line); line = w; }
      else line = line ? line + " " + w : w;
    });
    if (line) lines.push(line);
    return lines;
  }

  // legends never wider than the chart: cap their title and label lengths (px) and gradient length
  function capLegends(node, width) {
    if (Array.isArray(node)) { node.forEach(function (n) { capLegends(n, width); }); return; }
    if (!node || typeof node !== "object") return;
    Object.keys(node).forEach(function (k) {
      var v = node[k];
      if (k === "legend" && v && typeof v === "object") {
        ["titleLimit", "labelLimit"].forEach(function (key) {
          if (typeof v[key] !== "number" || v[key] > width - 40) v[key] = Math.max(80, width - 40);
        });
        if (typeof v.gradientLength === "number" && v.gradientLength > width - 60) v.gradientLength = Math.max(80, width - 60);
        if (width < NARROW) {
          if (v.orient === undefined || v.orient === "right" || v.orient === "left") v.orient = "bottom";
          // a row of entries is as wide as all of them: wrap it into as many columns as fit (gradients ignore this)
          if (v.columns === undefined) v.columns = Math.max(1, Math.floor((width - 20) / 170));
        }
      } else if (k !== "data" && k !== "datasets" && k !== "values") capLegends(v, width);
    });
  }

  function wrapTitles(node, width) {
    if (Array.isArray(node)) { node.forEach(function (n) { wrapTitles(n, width); }); return; }
    if (!node || typeof node !== "object") return;
    var maxChars = Math.max(16, Math.floor((width - 30) / CHAR_PX));
    Object.keys(node).forEach(function (k) {
      var v = node[k];
      if (k === "title" || k === "subtitle") {
        if (typeof v === "string") node[k] = wrapText(v, maxChars);
        else if (v && typeof v === "object" && !Array.isArray(v)) {
          if (typeof v.text === "string") v.text = wrapText(v.text, maxChars);
          if (typeof v.subtitle === "string") v.subtitle = wrapText(v.subtitle, maxChars);
        }
      } else if (k !== "data" && k !== "datasets" && k !== "values") wrapTitles(v, width);
    });
  }

  function sideLegend(node) {
    var encs = [node.encoding || {}].concat((node.layer || []).map(function (l) { return l.encoding || {}; }));
    return encs.some(function (e) {
      return ["color", "fill", "shape", "size", "stroke", "opacity"].some(function (ch) {
        var c = e[ch];
        if (!c || typeof c !== "object" || !c.field || c.legend === null) return false;
        var orient = (c.legend || {}).orient || "right";
        return orient === "right" || orient === "left";
      });
    });
  }

  function plotWidth(node) {
    if (typeof node.width === "number") return node.width;
    var w = null;
    (node.layer || []).forEach(function (l) { if (typeof l.width === "number") w = l.width; });
    return w;
  }

  function estimate(node) {
    if (node.hconcat) return node.hconcat.reduce(function (s, n) { return s + estimate(n); }, 0) + GAP_PX * (node.hconcat.length - 1);
    if (node.vconcat) return Math.max.apply(null, node.vconcat.map(estimate));
    if (node.concat) {
      var cols = node.columns || node.concat.length, best = 0;
      for (var i = 0; i < node.concat.length; i += cols) {
        var row = node.concat.slice(i, i + cols);
        best = Math.max(best, row.reduce(function (s, n) { return s + estimate(n); }, 0) + GAP_PX * (row.length - 1));
      }
      return best;
    }
    if (node.facet || node.repeat) {
      var inner = node.spec ? estimate(node.spec) : 300;
      return (node.columns || 1) * inner + GAP_PX * ((node.columns || 1) - 1);
    }
    var w = plotWidth(node);
    return (w === null ? 300 : w) + AXIS_PX + (sideLegend(node) ? SIDE_LEGEND_PX : 0);
  }

  function setWidth(node, w) {
    var old = plotWidth(node);
    if (old === null) return;
    w = Math.max(60, Math.floor(w));
    if (typeof node.width === "number") node.width = w;
    (node.layer || []).forEach(function (l) { if (typeof l.width === "number") l.width = w; });
    // a square plot (scatter against a reference) stays square
    if (typeof node.height === "number" && node.height === old) node.height = w;
    if (node.layer) {
      node.layer = node.layer.filter(function (l) {
        var m = /^rharm-cell-text-(\d+)$/.exec(l.name || "");
        return !m || w / Math.max(1, +m[1]) >= MIN_CELL_TEXT_PX;
      });
    }
  }

  function fit(node, avail) {
    if (!node || typeof node !== "object") return;
    if (node.hconcat) {
      if (avail < NARROW) { node.vconcat = node.hconcat; delete node.hconcat; fit(node, avail); return; }
      var parts = node.hconcat.map(estimate), total = parts.reduce(function (a, b) { return a + b; }, 0);
      var room = avail - GAP_PX * (node.hconcat.length - 1);
      node.hconcat.forEach(function (n, i) { fit(n, total > room ? room * parts[i] / total : parts[i]); });
      return;
    }
    if (node.vconcat) { node.vconcat.forEach(function (n) { fit(n, avail); }); return; }
    if (node.concat) {
      if (avail < NARROW) node.columns = 1;
      var cols = node.columns || node.concat.length;
      node.concat.forEach(function (n) { fit(n, Math.min(estimate(n), (avail - GAP_PX * (cols - 1)) / cols)); });
      return;
    }
    if (node.facet || node.repeat) {
      if (avail < NARROW) node.columns = 1;
      if (node.spec) fit(node.spec, (avail - GAP_PX * ((node.columns || 1) - 1)) / (node.columns || 1));
      return;
    }
    var w = plotWidth(node);
    if (w === null) return;
    var overhead = estimate(node) - w;
    if (w + overhead > avail) setWidth(node, avail - overhead);
  }

  function fitted(spec, avail) {
    var s = withConfig(clone(spec));
    minFonts(s);
    fit(s, avail);
    capLegends(s, avail);
    wrapTitles(s, avail);
    return s;
  }

  function embedFitted(vegaEmbed) {
    return function (el, spec, opts) {
      var target = typeof el === "string" ? document.querySelector(el) : el;
      if (!target) return vegaEmbed(el, spec, opts);
      var state = {view: null, width: 0, timer: null};

      // the width the chart may take: from its left edge to the right edge of the text column (the chart's own
      // box shrink-wraps what it holds, so it cannot say) and never past the window
      function containerWidth() {
        var host = target.closest("article.bd-article, article, main") || document.body;
        var r = target.getBoundingClientRect(), right = document.documentElement.clientWidth;
        // every block box between the chart and the column bounds it (inline-level and flex/grid items shrink-wrap
        // what they hold, so they do not)
        for (var el = target.parentElement; el; el = el.parentElement) {
          var cs = getComputedStyle(el);
          if (/^(block|flow-root|list-item)$/.test(cs.display) && cs.float === "none") {
            var b = el.getBoundingClientRect();
            right = Math.min(right, b.right - (parseFloat(cs.paddingRight) || 0) - (parseFloat(cs.borderRightWidth) || 0));
          }
          if (el === host) break;
        }
        var w = Math.floor(right - r.left - 2);
        return w > 60 ? w : 660;
      }

      function draw(avail, attempt) {
        if (state.view) { state.view.finalize(); state.view = null; }
        state.width = containerWidth();
        return vegaEmbed(target, fitted(spec, avail), opts).then(function (res) {
          state.view = res;
          var svg = target.querySelector("svg");
          var drawn = svg ? parseFloat(svg.getAttribute("width")) : 0;
          var room = containerWidth();
          if (drawn > room + 1 && attempt < 2) return draw(avail - (drawn - room) - 4, attempt + 1);
          return res;
        });
      }

      window.addEventListener("resize", function () {
        clearTimeout(state.timer);
        state.timer = setTimeout(function () {
          if (Math.abs(containerWidth() - state.width) > 8) draw(containerWidth(), 0);
        }, 200);
      });
      return draw(containerWidth(), 0);
    };
  }

  return embedFitted;
})();
