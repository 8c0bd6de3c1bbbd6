/* Gold feedback in training projects: Enter or n goes to the next task. */
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    var next = document.getElementById("gold-next");
    if (!next || event.ctrlKey || event.altKey || event.metaKey || document.querySelector("dialog[open]")) { return; }
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) { return; }
    if (event.key === "n" || (event.key === "Enter" && target !== next)) {
      event.preventDefault();
      next.form.requestSubmit();
    }
  });
})();
