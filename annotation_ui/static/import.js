// The import page: refuse a too-large file before sending it, and show how much of it is uploaded.
// Without this script the server refuses the file (413) and the spinner alone shows the wait.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input || input.id !== "field-file" || !input.files || !input.files.length) { return; }
    var limit = Number(input.getAttribute("data-max-bytes"));
    var tooLarge = limit > 0 && input.files[0].size > limit;
    input.setCustomValidity(tooLarge ? input.getAttribute("data-too-large") : "");
    if (tooLarge) { input.reportValidity(); }
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.getElementById("upload-progress");
    var detail = event.detail || {};
    if (bar && detail.lengthComputable && detail.total > 0) {
      bar.value = Math.round((detail.loaded / detail.total) * 100);
    }
  });
})();
