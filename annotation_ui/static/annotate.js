// The annotation page: keys, active time, drafts, skip and help dialogs, guidelines panel,
// break reminder, sensitive blocks, word diff, and the pairwise task.
//
// Hooks for the task kinds' scripts (rubric.js, ranking.js, loaded by annotate.html for their kind):
// - The task form is `#judgment-form` (fields: annotation_ui/forms.py); its `data-kind` names the kind.
// - `prefstack:task-ready` is dispatched on the form (it bubbles) once the page has loaded (after
//   every deferred script ran) and after every swap of #task, after a saved draft was restored.
// - `prefstack:key` is dispatched on the form for each key pressed outside text fields and dialogs,
//   before this script handles the key, with detail {key, event}: call
//   `detail.event.preventDefault()` to claim it. Escape leaves a text field before anyone sees it.
// - Drafts: every named field of the form, hidden ones too, is saved to localStorage on each
//   `input`/`change` event (keyed by the form's `data-draft-key`), restored before task-ready and
//   removed after a successful submit. A script that sets a hidden field should dispatch a bubbling
//   `input` event on it so the draft follows.
// - Help overlay (`?`): the rows of `<template id="kind-help">` in the kind's partial come first.
// - Sensitive blocks: an element with class `sensitive` shows its `.content` blurred until it has
//   class `revealed`; a `[data-reveal="<id>"]` button (or `v`, or a click on the blur) reveals it.
// - After a 422 the server marks invalid fields with aria-invalid and a `.field-error` message.
// Strings this script shows come from data-* attributes of #workbench (translated in the template).
(function () {
  "use strict";
  var IDLE_MS = 2 * 60 * 1000;          // no input for this long: active time stops counting
  var BREAK_GAP_MS = 5 * 60 * 1000;     // no input for this long counts as a break
  var DRAFT_PREFIX = "prefstack:draft:";
  var DRAFT_DAYS = 7;
  var MAX_DIFF_CELLS = 4000000;

  // ---- active time: pauses while the tab is hidden and after IDLE_MS without input ----
  var activeMs = 0;
  var since = document.hidden ? null : Date.now();
  var lastInput = Date.now();

  function resetTimer() {
    activeMs = 0;
    lastInput = Date.now();
    since = document.hidden ? null : lastInput;
  }

  function stretchEnd(now) { return Math.min(now, lastInput + IDLE_MS); }

  function elapsed() {
    return activeMs + (since === null ? 0 : Math.max(0, stretchEnd(Date.now()) - since));
  }

  function noteInput() {
    var now = Date.now();
    if (since !== null && now - lastInput > IDLE_MS) {
      activeMs += Math.max(0, lastInput + IDLE_MS - since);
      since = now;
    }
    lastInput = now;
    noteWork(now);
  }

  document.addEventListener("visibilitychange", function () {
    var now = Date.now();
    if (document.hidden) {
      if (since !== null) { activeMs += Math.max(0, stretchEnd(now) - since); }
      since = null;
    } else {
      since = now;
      lastInput = now;
    }
  });
  ["mousedown", "mousemove", "wheel", "touchstart", "input"].forEach(function (name) {
    document.addEventListener(name, noteInput, { passive: true, capture: true });
  });

  // ---- break reminder: a work stretch survives swaps and reloads (sessionStorage) ----
  var lastWorkWrite = 0;

  function stored(name) { try { return Number(sessionStorage.getItem(name)) || 0; } catch (e) { return 0; } }
  function store(name, value) { try { sessionStorage.setItem(name, String(value)); } catch (e) { /* private mode */ } }

  function noteWork(now) {
    var last = stored("prefstack:last-work");
    if (!stored("prefstack:work-start") || now - last > BREAK_GAP_MS) { store("prefstack:work-start", now); }
    if (now - lastWorkWrite > 5000) { store("prefstack:last-work", now); lastWorkWrite = now; }
    checkBreak(now);
  }

  function checkBreak(now) {
    var bench = document.getElementById("workbench");
    var banner = document.getElementById("break-banner");
    var minutes = bench ? Number(bench.dataset.breakAfter) : 0;
    var start = stored("prefstack:work-start");
    if (banner && minutes && start && banner.hidden && now - start >= minutes * 60000) { banner.hidden = false; }
  }

  function dismissBreak() {
    var now = Date.now();
    store("prefstack:work-start", now);
    store("prefstack:last-work", now);
    document.getElementById("break-banner").hidden = true;
  }

  setInterval(function () { checkBreak(Date.now()); }, 30000);

  // ---- drafts ----
  function form() { return document.getElementById("judgment-form"); }

  function draftName(f) { return f && f.dataset.draftKey ? DRAFT_PREFIX + f.dataset.draftKey : null; }

  function draftable(el) {
    return el.name && el.name !== "csrf_token" && el.name !== "time_spent_ms" &&
      ["button", "submit", "file", "reset"].indexOf(el.type) < 0;
  }

  function saveDraft(f) {
    var name = draftName(f);
    if (!name) { return; }
    var fields = [];
    Array.prototype.forEach.call(f.elements, function (el) {
      if (!draftable(el)) { return; }
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked) { fields.push([el.name, el.value]); }
      } else {
        fields.push([el.name, el.value]);
      }
    });
    try { localStorage.setItem(name, JSON.stringify({ at: Date.now(), fields: fields })); } catch (e) { /* full */ }
  }

  function restoreDraft(f) {
    var name = draftName(f);
    var draft = null;
    try { draft = name && JSON.parse(localStorage.getItem(name) || "null"); } catch (e) { draft = null; }
    if (!draft || !draft.fields) { return; }
    var picked = {}, text = {};
    draft.fields.forEach(function (pair) {
      picked[pair[0] + "\u0000" + pair[1]] = true;
      (text[pair[0]] = text[pair[0]] || []).push(pair[1]);
    });
    Array.prototype.forEach.call(f.elements, function (el) {
      if (!draftable(el)) { return; }
      if (el.type === "radio" || el.type === "checkbox") {
        el.checked = picked[el.name + "\u0000" + el.value] === true;
      } else if (text[el.name] && text[el.name].length) {
        el.value = text[el.name].shift();
      }
    });
  }

  function removeDraft(key) { try { localStorage.removeItem(DRAFT_PREFIX + key); } catch (e) { /* none */ } }

  function dropOldDrafts() {
    try {
      var cutoff = Date.now() - DRAFT_DAYS * 86400000;
      for (var i = localStorage.length - 1; i >= 0; i--) {
        var key = localStorage.key(i);
        if (key && key.indexOf(DRAFT_PREFIX) === 0) {
          var draft = JSON.parse(localStorage.getItem(key) || "{}");
          if (!draft.at || draft.at < cutoff) { localStorage.removeItem(key); }
        }
      }
    } catch (e) { /* storage unavailable */ }
  }

  document.addEventListener("input", onFieldChange);
  document.addEventListener("change", onFieldChange);

  function onFieldChange(event) {
    var f = form();
    if (f && f.contains(event.target)) {
      if (event.target.name === "choice") { syncStrength(f); }
      if (event.target.name && event.target.name.indexOf("labels.") === 0) { countLabels(f); }
      saveDraft(f);
    }
    if (event.target.id === "skip-other" && event.target.value) {
      var other = document.querySelector('#skip-form input[name="reason"][value="other"]');
      if (other) { other.checked = true; }
    }
  }

  // ---- the task's life: ready after load and after each swap ----

  function ready() {
    var f = form();
    var task = document.getElementById("task");
    var panel = document.getElementById("guidelines-panel");
    if (panel && task) {
      var stale = panel.querySelector(".guidelines-stale");
      var version = task.dataset.guidelinesVersion;
      if (stale) { stale.hidden = !version || version === panel.dataset.version; }
    }
    labelMode = null;
    pendingLabel = false;
    diffShown = false;
    resetTimer();
    if (!f) { return; }
    restoreDraft(f);
    syncStrength(f);
    countLabels(f);
    var rewrite = f.querySelector("#rewrite");
    if (rewrite && rewrite.value) { document.getElementById("rewrite-box").hidden = false; }
    f.dispatchEvent(new CustomEvent("prefstack:task-ready", { bubbles: true }));
  }

  document.addEventListener("DOMContentLoaded", function () { dropOldDrafts(); ready(); checkBreak(Date.now()); });

  // The draft to drop once this request succeeds, kept on the requesting form: other requests
  // (the progress strip) start before this one ends.
  function requester(event) {
    var detail = event.detail || {};
    return (detail.requestConfig && detail.requestConfig.elt) || detail.elt || null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = requester(event);
    var f = form();
    if (elt && f && (elt === f || elt.id === "skip-form")) { elt.prefstackDraft = f.dataset.draftKey; }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = requester(event);
    var xhr = event.detail && event.detail.xhr;
    if (elt && elt.prefstackDraft && xhr && xhr.status >= 200 && xhr.status < 300) { removeDraft(elt.prefstackDraft); }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (askPending && event.detail && event.detail.target && event.detail.target.id === "clarifications-panel") {
      askPending = false;
      var question = document.getElementById("ask-question");
      if (question) { question.focus(); }
    }
    if (event.detail && event.detail.target && event.detail.target.id === "task") {
      var dialog = document.querySelector("dialog[open]");
      if (dialog) { dialog.close(); }
      ready();
      if (!document.querySelector("#task .error")) { window.scrollTo(0, 0); }
    }
  });

  document.addEventListener("submit", function (event) {
    var f = event.target;
    if (f && f.id === "judgment-form") {
      f.querySelector('input[name="time_spent_ms"]').value = String(Math.round(elapsed()));
    }
    if (f && f.id === "ask-form") {
      var task = document.getElementById("task"), panel = document.getElementById("guidelines-panel");
      f.elements.external_id.value = (task && task.dataset.externalId) || "";
      f.elements.guidelines_version.value = (panel && panel.dataset.version) || "";
    }
  }, true);

  // ---- pairwise: strength, labels, rewrite ----
  var labelMode = null;      // "A" or "B": digits toggle that response's labels
  var pendingLabel = false;  // `l` was pressed: the next letter picks the response

  function chosen(f) {
    var radio = f.querySelector('input[name="choice"]:checked');
    return radio ? radio.value : null;
  }

  function syncStrength(f) {
    var choice = chosen(f);
    var applies = choice === "A" || choice === "B" || choice === null;
    f.querySelectorAll('input[name="strength"]').forEach(function (radio) {
      if (!applies) { radio.checked = false; }
      radio.disabled = !applies;
    });
  }

  function countLabels(f) {
    f.querySelectorAll("details.labels").forEach(function (details) {
      var count = details.querySelectorAll("input:checked").length;
      var badge = details.querySelector(".label-count");
      if (badge) { badge.textContent = count ? String(count) : ""; }
    });
  }

  function openLabels(f, label) {
    var details = f.querySelector('details.labels[data-for="' + label + '"]');
    if (!details) { return false; }
    leaveLabels(f);
    details.open = true;
    details.classList.add("active");
    labelMode = label;
    var first = details.querySelector("input");
    if (first) { first.focus(); }
    return true;
  }

  function leaveLabels(f) {
    labelMode = null;
    f.querySelectorAll("details.labels.active").forEach(function (d) { d.classList.remove("active"); });
    if (document.activeElement && document.activeElement.closest("details.labels")) { document.activeElement.blur(); }
  }

  function sourceText(label) {
    var template = document.querySelector('#task template.source[data-label="' + label + '"]');
    return template ? template.content.textContent : "";
  }

  function openRewrite(f) {
    var box = f.querySelector("#rewrite-box");
    if (!box) { return false; }
    var choice = chosen(f);
    if (choice !== "A" && choice !== "B") {
      say(document.getElementById("workbench").dataset.msgChooseFirst);
      return true;
    }
    var area = box.querySelector("textarea");
    var other = sourceText(choice === "A" ? "B" : "A");
    if (!area.value || area.value === other) { area.value = sourceText(choice); }
    box.hidden = false;
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
    saveDraft(f);
    return true;
  }

  function discardRewrite(f) {
    var box = f.querySelector("#rewrite-box");
    box.querySelector("textarea").value = "";
    box.hidden = true;
    saveDraft(f);
  }

  function pick(input) {
    if (!input || input.disabled) { return false; }
    if (input.type === "checkbox" || !input.checked) { input.click(); }
    return true;
  }

  function pairwiseKey(f, event) {
    var key = event.key;
    if (pendingLabel) {
      pendingLabel = false;
      if (/^[a-z]$/i.test(key) && openLabels(f, key.toUpperCase())) { return true; }
    }
    if (labelMode) {
      var box = f.querySelector('details.labels[data-for="' + labelMode + '"]');
      if (/^[0-9]$/.test(key)) {
        pick(box.querySelector('input[data-digit="' + key + '"]'));
        return true;
      }
      if (key === "Escape") { leaveLabels(f); return true; }
      leaveLabels(f);
    }
    var radio = f.querySelector('input[name="choice"][data-key="' + key + '"], input[name="strength"][data-key="' + key + '"]');
    if (radio) {
      if (pick(radio)) { radio.focus(); }
      return true;
    }
    if (key === "l" && f.querySelector("details.labels")) { pendingLabel = true; return true; }
    if (key === "t") { return openRewrite(f); }
    return false;
  }

  // ---- word diff between responses A and B (textContent only, never model HTML) ----
  var diffShown = false;

  function words(text) {
    var parts = text.split(/(\s+)/), out = [];
    for (var i = 0; i < parts.length; i += 2) { out.push({ word: parts[i], space: parts[i + 1] || "" }); }
    return out.filter(function (w) { return w.word !== "" || w.space !== ""; });
  }

  // Marks every word of a and b that is not part of a longest common subsequence.
  function markChanges(a, b) {
    var start = 0, endA = a.length, endB = b.length;
    while (start < endA && start < endB && a[start].word === b[start].word) { start++; }
    while (endA > start && endB > start && a[endA - 1].word === b[endB - 1].word) { endA--; endB--; }
    var n = endA - start, m = endB - start, i, j;
    for (i = start; i < endA; i++) { a[i].changed = true; }
    for (j = start; j < endB; j++) { b[j].changed = true; }
    if (n === 0 || m === 0 || n * m > MAX_DIFF_CELLS) { return; }
    var table = new Uint32Array((n + 1) * (m + 1));
    for (i = n - 1; i >= 0; i--) {
      for (j = m - 1; j >= 0; j--) {
        table[i * (m + 1) + j] = a[start + i].word === b[start + j].word
          ? table[(i + 1) * (m + 1) + j + 1] + 1
          : Math.max(table[(i + 1) * (m + 1) + j], table[i * (m + 1) + j + 1]);
      }
    }
    i = 0; j = 0;
    while (i < n && j < m) {
      if (a[start + i].word === b[start + j].word) {
        a[start + i].changed = false; b[start + j].changed = false; i++; j++;
      } else if (table[(i + 1) * (m + 1) + j] >= table[i * (m + 1) + j + 1]) { i++; } else { j++; }
    }
  }

  function renderDiff(target, list, cls) {
    target.textContent = "";
    list.forEach(function (w) {
      if (w.changed && w.word) {
        var mark = document.createElement("mark");
        mark.className = cls;
        mark.textContent = w.word;
        target.appendChild(mark);
      } else {
        target.appendChild(document.createTextNode(w.word));
      }
      if (w.space) { target.appendChild(document.createTextNode(w.space)); }
    });
  }

  function toggleDiff() {
    var a = document.querySelector("#response-A .diff"), b = document.querySelector("#response-B .diff");
    if (!a || !b) { return false; }
    diffShown = !diffShown;
    if (diffShown && !a.hasChildNodes()) {
      var left = words(sourceText("A")), right = words(sourceText("B"));
      markChanges(left, right);
      renderDiff(a, left, "diff-del");
      renderDiff(b, right, "diff-ins");
    }
    [a, b].forEach(function (diff) {
      diff.hidden = !diffShown;
      diff.parentNode.querySelector(".markdown.content").hidden = diffShown;
      diff.closest(".response").classList.toggle("diffing", diffShown);
    });
    return true;
  }

  // ---- shared: sensitive blocks, dialogs, guidelines, messages ----
  function reveal(block) {
    if (!block) { return false; }
    block.classList.add("revealed");
    block.querySelectorAll("[data-reveal]").forEach(function (button) { button.hidden = true; });
    return true;
  }

  function revealNext() {
    var focused = document.activeElement && document.activeElement.closest(".sensitive:not(.revealed)");
    return reveal(focused || document.querySelector("#task .sensitive:not(.revealed)"));
  }

  function say(text) {
    var flash = document.getElementById("flash");
    if (!flash || !text) { return; }
    flash.className = "flash";
    flash.textContent = text;
    setTimeout(function () { if (flash.textContent === text) { flash.textContent = ""; flash.className = ""; } }, 4000);
  }

  function openSkip() {
    var dialog = document.getElementById("skip-dialog");
    if (!dialog) { return false; }
    dialog.showModal();
    return true;
  }

  function toggleHelp() {
    var dialog = document.getElementById("help-dialog");
    if (!dialog) { return false; }
    if (dialog.open) { dialog.close(); return true; }
    var rows = document.getElementById("help-kind");
    var template = document.querySelector("#task #kind-help");
    rows.textContent = "";
    if (template) { rows.appendChild(template.content.cloneNode(true)); }
    dialog.showModal();
    return true;
  }

  function toggleGuidelines() {
    var panel = document.getElementById("guidelines-panel");
    if (!panel) { return false; }
    panel.hidden = !panel.hidden;
    document.querySelector(".workbench-body").classList.toggle("with-guidelines", !panel.hidden);
    if (panel.hidden) {
      if (panel.contains(document.activeElement)) { document.activeElement.blur(); }
    } else {
      panel.focus({ preventScroll: true });
    }
    return true;
  }

  // The guidelines panel's tabs; `m` opens the Clarifications tab's question box (loaded by htmx).
  var askPending = false;

  function showPanelTab(tab) {
    var panel = document.getElementById("guidelines-panel");
    if (!panel || !tab) { return false; }
    panel.querySelectorAll('[role="tab"]').forEach(function (other) {
      var selected = other === tab;
      other.setAttribute("aria-selected", selected ? "true" : "false");
      document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
    });
    return true;
  }

  // Opening the tab by hand reloads it (answers may have come in), unless a question is being written.
  function refreshClarifications() {
    var panel = document.getElementById("clarifications-panel"), question = document.getElementById("ask-question");
    if (panel && question && !question.value && window.htmx) { window.htmx.trigger(panel, "prefstack:refresh"); }
  }

  function openAsk() {
    var panel = document.getElementById("guidelines-panel");
    if (!panel) { return false; }
    if (panel.hidden) { toggleGuidelines(); }
    showPanelTab(document.getElementById("tab-clarifications"));
    var question = document.getElementById("ask-question");
    askPending = !question;
    if (question) { question.focus(); }
    return true;
  }

  function sharedKey(f, key) {
    if (key === "r") {
      var rationale = f.querySelector('textarea[name="rationale"]');
      if (rationale) { rationale.focus(); }
      return Boolean(rationale);
    }
    if (key === "s") { return openSkip(); }
    if (key === "?") { return toggleHelp(); }
    if (key === "g") { return toggleGuidelines(); }
    if (key === "m") { return openAsk(); }
    if (key === "v") { return revealNext(); }
    if (key === "d") { return toggleDiff(); }
    return false;
  }

  function dialogKey(dialog, event) {
    if (dialog.id === "help-dialog" && event.key === "?") {
      event.preventDefault();
      dialog.close();
      return;
    }
    if (dialog.id !== "skip-dialog" || typing(event.target)) { return; }
    var radio = dialog.querySelector('input[name="reason"][data-key="' + event.key + '"]');
    if (radio) {
      event.preventDefault();
      radio.checked = true;
      radio.focus();
      if (radio.value === "other") { dialog.querySelector("#skip-other").focus(); }
    } else if (event.key === "Enter" && event.target.tagName !== "BUTTON") {
      event.preventDefault();
      dialog.querySelector("form").requestSubmit();
    }
  }

  // ---- the keyboard dispatcher ----
  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox") ||
      target.isContentEditable);
  }

  // Enter submits from the page itself or a choice; buttons, links and text fields keep their own Enter.
  function submitsOnEnter(f, target) {
    if (!target || target === document.body || target === document.documentElement) { return true; }
    return f.contains(target) && target.tagName === "INPUT" && (target.type === "radio" || target.type === "checkbox");
  }

  document.addEventListener("keydown", function (event) {
    var dialog = document.querySelector("dialog[open]");
    if (dialog) { dialogKey(dialog, event); return; }
    var f = form();
    if (!f || event.altKey || event.metaKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.preventDefault(); event.target.blur(); }
      else if (event.key === "Enter" && event.ctrlKey && f.contains(event.target)) { event.preventDefault(); f.requestSubmit(); }
      else if (event.key === "Enter" && event.ctrlKey && event.target.form && event.target.form.id === "ask-form") {
        event.preventDefault();
        event.target.form.requestSubmit();
      }
      return;
    }
    if (event.ctrlKey && event.key !== "Enter") { return; }
    var claim = new CustomEvent("prefstack:key", { bubbles: true, cancelable: true, detail: { key: event.key, event: event } });
    f.dispatchEvent(claim);
    if (event.defaultPrevented || claim.defaultPrevented) { return; }
    if (event.key === "Enter") {
      if (submitsOnEnter(f, event.target) || event.ctrlKey) { event.preventDefault(); f.requestSubmit(); }
      return;
    }
    var handled = (f.dataset.kind === "pairwise" && pairwiseKey(f, event)) || sharedKey(f, event.key);
    if (handled) { event.preventDefault(); }
  });

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-action], [data-reveal], .sensitive:not(.revealed) .content");
    if (!target) { return; }
    var f = form();
    if (target.dataset.reveal) { reveal(document.getElementById(target.dataset.reveal)); return; }
    if (!target.dataset.action) { reveal(target.closest(".sensitive")); return; }
    var actions = {
      "skip": openSkip,
      "help": toggleHelp,
      "guidelines": toggleGuidelines,
      "ask": openAsk,
      "panel-tab": function () {
        showPanelTab(target);
        if (target.id === "tab-clarifications") { refreshClarifications(); }
      },
      "dismiss-break": dismissBreak,
      "discard-rewrite": function () { if (f) { discardRewrite(f); } },
      "close-dialog": function () { target.closest("dialog").close(); }
    };
    if (actions[target.dataset.action]) { actions[target.dataset.action](); }
  });
})();
