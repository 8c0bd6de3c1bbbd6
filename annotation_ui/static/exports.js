// The export page: show only the options the chosen kind (and format) use. Without this
// script every option is shown and the server ignores those a kind does not read.
(function () {
  "use strict";
  function words(value) { return (value || "").split(/\s+/).filter(Boolean); }

  function update(form) {
    var kind = form.querySelector("[name=kind]");
    var format = form.querySelector("[name=format]");
    form.querySelectorAll("[data-kinds], [data-formats]").forEach(function (option) {
      var kinds = option.getAttribute("data-kinds");
      var formats = option.getAttribute("data-formats");
      var shown = (!kinds || !kind || words(kinds).indexOf(kind.value) !== -1) &&
                  (!formats || !format || words(formats).indexOf(format.value) !== -1);
      option.hidden = !shown;
      option.querySelectorAll("input, select").forEach(function (field) { field.disabled = !shown; });
    });
  }

  function setUp(root) {
    var form = root.querySelector ? root.querySelector("#export-form") : null;
    if (!form && root.id === "export-form") { form = root; }
    if (!form || form.dataset.enhanced) { return; }
    form.dataset.enhanced = "1";
    form.addEventListener("change", function (event) {
      var name = event.target && event.target.name;
      if (name === "kind" || name === "format") { update(form); }
    });
    update(form);
  }

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  document.addEventListener("htmx:afterSwap", function (event) { setUp(event.detail.target || document); });
  document.addEventListener("htmx:afterSettle", function () { setUp(document); });
})();
