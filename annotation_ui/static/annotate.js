// Keyboard flow and active-time tracking for the annotation form.
(function () {
  "use strict";
  var activeMs = 0;
  var since = document.hidden ? null : Date.now();

  function resetTimer() {
    activeMs = 0;
    since = document.hidden ? null : Date.now();
  }

  function elapsed() {
    return activeMs + (since === null ? 0 : Date.now() - since);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (since !== null) { activeMs += Date.now() - since; }
      since = null;
    } else {
      since = Date.now();
    }
  });

  function form() { return document.getElementById("judgment-form"); }

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" ||
      (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox") ||
      target.isContentEditable);
  }

  // Enter submits from the page itself or a choice; buttons, links and fields keep their own Enter.
  function submitsOnEnter(f, target) {
    if (!target || target === document.body || target === document.documentElement) { return true; }
    return f.contains(target) && target.tagName === "INPUT" && target.type === "radio";
  }

  document.addEventListener("keydown", function (event) {
    var f = form();
    if (!f || event.altKey || event.metaKey) { return; }
    if (event.key === "Enter" && (event.ctrlKey ? f.contains(event.target) || event.target === document.body
                                                 : submitsOnEnter(f, event.target))) {
      event.preventDefault();
      f.requestSubmit();
      return;
    }
    if (typing(event.target) || event.ctrlKey) { return; }
    var radio = f.querySelector('input[name="choice"][data-key="' + event.key + '"]');
    if (radio) {
      event.preventDefault();
      radio.checked = true;
      radio.focus();
      return;
    }
    if (event.key === "g") {
      var guidelines = document.getElementById("guidelines");
      if (guidelines) { guidelines.open = !guidelines.open; }
    }
  });

  document.addEventListener("submit", function (event) {
    var f = event.target;
    if (f && f.id === "judgment-form") {
      f.querySelector('input[name="time_spent_ms"]').value = String(Math.round(elapsed()));
    }
  }, true);

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail && event.detail.target && event.detail.target.id === "task") {
      resetTimer();
      window.scrollTo(0, 0);
    }
  });
})();
