// Rubric task: a "current cell" (response x criterion) that digit keys score.
// Scores live in the radio groups themselves, so drafts and re-fills need nothing else.
(function () {
  "use strict";

  function rootOf(node) {
    var form = node && node.closest ? node.closest("#judgment-form") : null;
    return form ? form.querySelector(".kind-rubric") : null;
  }

  function cells(root) { return Array.prototype.slice.call(root.querySelectorAll(".criterion")); }

  function currentIndex(root) {
    var list = cells(root);
    for (var i = 0; i < list.length; i += 1) {
      if (list[i].classList.contains("current")) { return i; }
    }
    return 0;
  }

  function moveTo(root, index, scroll) {
    var list = cells(root);
    if (!list.length) { return; }
    index = Math.max(0, Math.min(index, list.length - 1));
    list.forEach(function (cell, i) {
      cell.classList.toggle("current", i === index);
      if (i === index) { cell.setAttribute("aria-current", "true"); } else { cell.removeAttribute("aria-current"); }
    });
    if (scroll) { list[index].scrollIntoView({ block: "nearest" }); }
  }

  function pick(input) {
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function init(form) {
    var root = form && form.querySelector(".kind-rubric");
    if (!root) { return; }
    var list = cells(root), first = 0;
    while (first < list.length - 1 && list[first].querySelector("input:checked")) { first += 1; }
    moveTo(root, first, false);
  }

  function onKey(event) {
    var root = rootOf(event.target), key = event.detail.key, keyEvent = event.detail.event;
    if (!root || keyEvent.ctrlKey || keyEvent.altKey || keyEvent.metaKey) { return; }
    var index = currentIndex(root);
    if (/^[0-9]$/.test(key)) {
      var input = cells(root)[index].querySelector('input[data-digit="' + key + '"]');
      if (input) {
        pick(input);
        moveTo(root, index + 1, true);
      }
    } else if (key === "n" || key === "j") {
      moveTo(root, index + 1, true);
    } else if (key === "p" || key === "k") {
      moveTo(root, index - 1, true);
    } else {
      var choice = root.querySelector('input[name=choice][data-rubric-key="' + key + '"]');
      if (!choice) { return; }
      pick(choice);
    }
    keyEvent.preventDefault();
  }

  document.addEventListener("prefstack:key", onKey, true);
  document.addEventListener("prefstack:task-ready", function (event) { init(event.target); }, true);
  document.addEventListener("focusin", function (event) {
    var root = rootOf(event.target), cell = event.target.closest && event.target.closest(".criterion");
    if (root && cell) { moveTo(root, cells(root).indexOf(cell), false); }
  });
})();
