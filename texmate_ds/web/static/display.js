// A multiple-meter display that updates itself: each value as its sample
// is committed, from /events (Server-Sent Events), and its unit's status
// (static/status.js) back to live. Without script the page reloads
// itself at the display's refresh rate instead.
(function () {
  "use strict";
  var page = document.querySelector("[data-events]");
  if (!page || !window.EventSource) {
    return;
  }
  var state = page.querySelector(".live-state");
  var source = new EventSource(page.getAttribute("data-events"));

  function show(text, kind) {
    state.textContent = text;
    state.className = "live-state " + kind;
  }

  // As the server writes a value: the shortest text that reads back.
  function shown(value) {
    return value === null || value === undefined ? "\u2014" : String(value);
  }

  show("connecting...", "waiting");
  source.onopen = function () {
    show("live", "live");
  };
  source.onerror = function () {
    if (source.readyState !== EventSource.CLOSED) {
      show("reconnecting...", "lost");
      return;
    }
    // No live updates here (refused, or not this server): reload at the
    // display's refresh rate, as the page does without script.
    var refresh = parseInt(page.getAttribute("data-refresh"), 10);
    show("not live: reloads every " + refresh + " s", "lost");
    window.setTimeout(function () { window.location.reload(); }, refresh * 1000);
  };
  source.addEventListener("sample", function (event) {
    var sample = JSON.parse(event.data);
    if (window.txmStatus) {
      window.txmStatus.heard(sample.unit);
    }
    var cards = document.querySelectorAll(".card[data-unit]");
    for (var i = 0; i < cards.length; i++) {
      if (cards[i].getAttribute("data-unit") !== sample.unit) {
        continue;
      }
      var cells = cards[i].querySelectorAll("[data-field]");
      for (var j = 0; j < cells.length; j++) {
        var field = parseInt(cells[j].getAttribute("data-field"), 10);
        cells[j].querySelector(".value").textContent = shown(sample.values[field - 1]);
      }
      // To the second, as the page writes it ("YYYY-MM-DD HH:MM:SS[.ffffff]").
      cards[i].querySelector(".when").textContent = sample.timestamp.slice(0, 19);
    }
  });
  // Fell behind, or too much was missed: start over from the page.
  source.addEventListener("resync", function () {
    window.location.reload();
  });
})();
