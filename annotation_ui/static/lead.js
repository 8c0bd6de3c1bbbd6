// The leads' item pages: sensitive blocks stay blurred until their reveal button is pressed.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("button.lead-reveal") : null;
    if (!button) { return; }
    var block = button.closest(".sensitive");
    if (block) {
      block.classList.add("is-revealed");
      button.setAttribute("aria-expanded", "true");
    }
  });
})();
