// Status at a glance (texmate_ds/status.py), kept current: each unit's
// age ("12 s ago") ticks every second and its badge goes from live to
// late to silent by itself, against the thresholds the page wrote on it
// (data-late, data-silent: microseconds of age). A new sample makes it
// live again: the home page listens to /events for its own units (its
// element with data-events); a display's script calls
// txmStatus.heard(code) on each sample it gets. Without script the page
// shows the statuses as they were when it was made.
(function () {
  "use strict";
  var page = document.querySelector("[data-now]");
  if (!page) {
    return;
  }
  var SECOND = 1e6, MINUTE = 60 * SECOND, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
  // The server's clock, which the page's times are on (the browser's may
  // be off): microseconds. Exact enough in a double until the year 2255.
  var offset = parseInt(page.getAttribute("data-now"), 10) - Date.now() * 1000;
  function serverNow() {
    return Date.now() * 1000 + offset;
  }

  // As status.age_text writes it.
  function ageText(age) {
    age = Math.max(age, 0);
    if (age < MINUTE) {
      return Math.floor(age / SECOND) + " s ago";
    }
    if (age < HOUR) {
      return Math.floor(age / MINUTE) + " min ago";
    }
    if (age < DAY) {
      return Math.floor(age / HOUR) + " h ago";
    }
    var days = Math.floor(age / DAY);
    return days === 1 ? "1 day ago" : days + " days ago";
  }

  function show(element, now) {
    var heard = element.getAttribute("data-heard");
    if (!heard) {
      return; // never heard from: "no samples" stays until a sample comes
    }
    var age = now - parseInt(heard, 10);
    var state = age > parseInt(element.getAttribute("data-silent"), 10) ? "silent"
      : age > parseInt(element.getAttribute("data-late"), 10) ? "late" : "live";
    element.className = "status status-" + state;
    element.querySelector(".status-badge").textContent = state;
    element.querySelector(".status-age").textContent = ageText(age);
  }

  function tick() {
    var now = serverNow();
    var all = document.querySelectorAll(".status[data-heard]");
    for (var i = 0; i < all.length; i++) {
      show(all[i], now);
    }
  }

  // A sample of unit `code` has just been committed: heard from now.
  function heard(code) {
    var now = serverNow();
    var all = document.querySelectorAll(".status[data-unit]");
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-unit") === code) {
        all[i].setAttribute("data-heard", String(now));
        show(all[i], now);
      }
    }
  }

  window.txmStatus = {heard: heard};
  window.setInterval(tick, 1000);

  var events = page.getAttribute("data-events");
  if (!events || !window.EventSource) {
    return;
  }
  var source = new EventSource(events);
  source.addEventListener("sample", function (event) {
    heard(JSON.parse(event.data).unit);
  });
  // Fell behind, or too much was missed: start over from the page.
  source.addEventListener("resync", function () {
    window.location.reload();
  });
  source.onerror = function () {
    // No live samples here (refused, or not this server): the ages would
    // grow for units that still upload, so the page is made again in a
    // minute. Meanwhile the browser retries a stream that only dropped.
    if (source.readyState === EventSource.CLOSED) {
      window.setTimeout(function () { window.location.reload(); }, 60000);
    }
  };
})();
