// The unit page's graphs, read and steered by hand: hovering or tapping a
// graph shows the time and the values there, dragging across it zooms to
// that range (a new address, so the zoom can be shared and Back undoes
// it), and in live mode the range line, graphs and statistics follow each
// committed sample (from /events). Without script the page is the same,
// only still.
//
// What it reads: each <figure class="graph"> carries data-readings, the
// values it plots (svg_graph.readings), and each <svg> in it says where
// its plot is (data-plot: left top width height, in its own units) and
// the time span it covers (data-start, data-end, microseconds).
(function () {
  "use strict";
  var DRAG = 8;              // CSS px of movement that makes a tap a drag
  var LIVE_EVERY = 1000;     // ms at least between two live refreshes
  var SVG = "http://www.w3.org/2000/svg";

  function pad(n, width) {
    var text = String(n);
    while (text.length < width) {
      text = "0" + text;
    }
    return text;
  }

  // Timestamps are the meter's wall time counted as if in UTC (times.py).
  function timeText(us) {
    var d = new Date(Math.floor(us / 1000));
    var text = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1, 2) + "-" +
      pad(d.getUTCDate(), 2) + " " + pad(d.getUTCHours(), 2) + ":" +
      pad(d.getUTCMinutes(), 2) + ":" + pad(d.getUTCSeconds(), 2);
    return d.getUTCMilliseconds() ? text + "." + pad(d.getUTCMilliseconds(), 3) : text;
  }

  // As the page writes a value: the meter's digits, thousands separated.
  function valueText(value) {
    var text = String(value);
    if (!/^-?\d+(\.\d+)?$/.test(text)) {
      return text;            // 1e+21, NaN: as they are
    }
    var sign = text.charAt(0) === "-" ? "-" : "";
    var parts = text.slice(sign.length).split(".");
    var whole = parts[0];
    var grouped = "";
    while (whole.length > 3) {
      grouped = "," + whole.slice(-3) + grouped;
      whole = whole.slice(0, -3);
    }
    return sign + whole + grouped + (parts.length > 1 ? "." + parts[1] : "");
  }

  function reading(value) {
    if (value === null) {
      return "\u2014";
    }
    if (Array.isArray(value)) {   // a bucket of several samples
      return valueText(value[0]) + " \u2013 " + valueText(value[1]);
    }
    return valueText(value);
  }

  // The index of the reading nearest to `ms` (ms after the start).
  function nearest(times, ms) {
    var lo = 0;
    var hi = times.length - 1;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (times[mid][1] < ms) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo > 0 && ms - times[lo - 1][1] < times[lo][0] - ms) {
      return lo - 1;
    }
    return lo;
  }

  function Plot(svg) {
    var box = svg.getAttribute("data-plot").split(" ").map(Number);
    this.svg = svg;
    this.left = box[0];
    this.top = box[1];
    this.width = box[2];
    this.height = box[3];
    this.start = Number(svg.getAttribute("data-start"));
    this.end = Number(svg.getAttribute("data-end"));
  }

  // The svg's own x for a pointer event, and back.
  Plot.prototype.unitsPerPixel = function () {
    return this.svg.viewBox.baseVal.width / this.svg.getBoundingClientRect().width;
  };
  Plot.prototype.x = function (event) {
    var rect = this.svg.getBoundingClientRect();
    var x = (event.clientX - rect.left) * this.unitsPerPixel();
    return Math.min(this.left + this.width, Math.max(this.left, x));
  };
  Plot.prototype.time = function (x) {
    return this.start + (x - this.left) / this.width * (this.end - this.start);
  };
  Plot.prototype.xOf = function (us) {
    return this.left + (us - this.start) / (this.end - this.start) * this.width;
  };
  Plot.prototype.mark = function (name, attributes) {
    var node = this.svg.querySelector("." + name);
    if (!node) {
      node = document.createElementNS(SVG, name === "cursor" ? "line" : "rect");
      node.setAttribute("class", name);
      this.svg.appendChild(node);
    }
    for (var key in attributes) {
      node.setAttribute(key, attributes[key]);
    }
    return node;
  };
  Plot.prototype.unmark = function (name) {
    var node = this.svg.querySelector("." + name);
    if (node) {
      node.parentNode.removeChild(node);
    }
  };

  function readout(figure) {
    var box = figure.querySelector(".readout");
    if (!box) {
      box = document.createElement("div");
      box.className = "readout";
      box.setAttribute("role", "status");
      figure.appendChild(box);
    }
    return box;
  }

  function show(figure, data, plot, event) {
    if (!data.t.length) {
      return;
    }
    var ms = (plot.time(plot.x(event)) - data.start) / 1000;
    var i = nearest(data.t, ms);
    var first = data.start + data.t[i][0] * 1000;
    var last = data.start + data.t[i][1] * 1000;
    var x = plot.xOf((first + last) / 2);
    plot.mark("cursor", {x1: x, x2: x, y1: plot.top, y2: plot.top + plot.height,
                         stroke: "#555", "stroke-dasharray": "3 3"});
    var box = readout(figure);
    box.textContent = "";
    var when = document.createElement("div");
    when.textContent = timeText(first) + (last !== first ? " \u2013 " + timeText(last).slice(11) : "");
    box.appendChild(when);
    var swatches = plot.svg.querySelectorAll("g.series");
    data.series.forEach(function (series, n) {
      var line = document.createElement("div");
      var swatch = document.createElement("span");
      swatch.className = "swatch";
      var color = swatches[n] ? swatches[n].getAttribute("stroke") : "#000";
      swatch.style.background = color;
      line.appendChild(swatch);
      line.appendChild(document.createTextNode(series.name + ": " + reading(series.v[i])));
      box.appendChild(line);
    });
    // Beside the cursor, on whichever side has room.
    var rect = figure.getBoundingClientRect();
    var px = (x / plot.unitsPerPixel()) + plot.svg.getBoundingClientRect().left - rect.left;
    box.style.top = "0.5rem";
    box.style.left = "0";
    var width = box.offsetWidth;
    box.style.left = Math.max(0, px + 12 + width > rect.width ? px - 12 - width : px + 12) + "px";
  }

  function hide(figure, plot) {
    plot.unmark("cursor");
    var box = figure.querySelector(".readout");
    if (box) {
      box.parentNode.removeChild(box);
    }
  }

  function zoomTo(from, to) {
    var query = new URLSearchParams(window.location.search);
    query.set("from", timeText(Math.floor(from / 1000000) * 1000000).slice(0, 19));
    query.set("to", timeText(Math.ceil(to / 1000000) * 1000000).slice(0, 19));
    query.delete("live");
    window.location.assign(window.location.pathname + "?" + query.toString());
  }

  function steer(figure) {
    var data = JSON.parse(figure.getAttribute("data-readings"));
    var svgs = figure.querySelectorAll("svg[data-plot]");
    Array.prototype.forEach.call(svgs, function (svg) {
      var plot = new Plot(svg);
      var down = null;
      svg.addEventListener("pointerdown", function (event) {
        down = {x: plot.x(event), clientX: event.clientX, id: event.pointerId};
        svg.setPointerCapture(event.pointerId);
      });
      svg.addEventListener("pointermove", function (event) {
        if (down && Math.abs(event.clientX - down.clientX) > DRAG) {
          var x = plot.x(event);
          plot.mark("zoom", {x: Math.min(x, down.x), width: Math.abs(x - down.x),
                             y: plot.top, height: plot.height,
                             fill: "rgba(31, 95, 153, .15)", stroke: "#1f5f99"});
        }
        if (down || event.pointerType === "mouse") {
          show(figure, data, plot, event);
        }
      });
      svg.addEventListener("pointerup", function (event) {
        if (!down) {
          return;
        }
        var from = down;
        down = null;
        plot.unmark("zoom");
        if (Math.abs(event.clientX - from.clientX) > DRAG) {
          var a = plot.time(from.x);
          var b = plot.time(plot.x(event));
          zoomTo(Math.min(a, b), Math.max(a, b));
          return;
        }
        show(figure, data, plot, event);     // a tap: the readout stays
      });
      svg.addEventListener("pointercancel", function () {
        down = null;
        plot.unmark("zoom");
      });
      svg.addEventListener("pointerleave", function (event) {
        if (event.pointerType === "mouse" && !down) {
          hide(figure, plot);
        }
      });
    });
  }

  function steerAll(root) {
    Array.prototype.forEach.call(root.querySelectorAll("figure.graph[data-readings]"), steer);
  }

  // Live: refetch this very address (its range is relative to now, so the
  // window keeps its length) and swap in what it shows, at most once a
  // LIVE_EVERY and never two at a time.
  function live(shown) {
    var state = shown.querySelector(".live-state");
    var source = new EventSource(shown.getAttribute("data-live"));
    var busy = false;
    var again = false;
    var last = 0;

    function say(text, kind) {
      state = document.querySelector("#shown .live-state");
      if (state) {
        state.textContent = text;
        state.className = "live-state " + kind;
      }
    }

    function refresh() {
      if (busy) {
        again = true;
        return;
      }
      var wait = last + LIVE_EVERY - Date.now();
      if (wait > 0) {
        busy = true;
        window.setTimeout(function () { busy = false; refresh(); }, wait);
        return;
      }
      busy = true;
      last = Date.now();
      fetch(window.location.href, {credentials: "same-origin"}).then(function (answer) {
        if (!answer.ok) {
          throw new Error("HTTP " + answer.status);
        }
        return answer.text();
      }).then(function (text) {
        var page = new DOMParser().parseFromString(text, "text/html");
        var fresh = page.getElementById("shown");
        var old = document.getElementById("shown");
        if (fresh && old) {
          old.innerHTML = fresh.innerHTML;
          steerAll(old);
          reveal(old);
          say("live", "live");
        }
      }).catch(function () {
        say("live, but the page could not be refreshed", "lost");
      }).then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
    }

    say("connecting...", "waiting");
    source.onopen = function () { say("live", "live"); };
    source.onerror = function () {
      say(source.readyState === EventSource.CLOSED ? "not live" : "reconnecting...", "lost");
    };
    source.addEventListener("sample", refresh);
    source.addEventListener("resync", refresh);
  }

  function reveal(root) {
    var link = root.querySelector(".live-link");
    if (link && window.EventSource && window.fetch) {
      link.hidden = false;
    }
  }

  steerAll(document);
  var shown = document.getElementById("shown");
  if (shown) {
    reveal(shown);
    if (shown.hasAttribute("data-live") && window.EventSource && window.fetch) {
      live(shown);
    }
  }
})();
