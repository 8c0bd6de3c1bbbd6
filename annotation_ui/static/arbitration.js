// Arbitration case page keys: 1-9 choose (pairwise: the choices; ranking: append a response),
// j/k next/previous case, Ctrl+Enter saves the verdict. Keys typed into fields stay text.
(function () {
  "use strict";
  const page = document.getElementById("arbitration-case");
  if (!page) {
    return;
  }
  const letters = "ABCDEFGHI";

  function typing(target) {
    return target instanceof Element && target.closest("textarea, select, input[type=text], input[type=search], input:not([type])");
  }

  function addToRanking(field, key) {
    const count = page.querySelectorAll(".lead-responses .response").length;
    const number = Number(key);
    if (number > count) {
      return;
    }
    const letter = letters[number - 1];
    const placed = field.value.split(/[;,]/).map((part) => part.trim()).filter(Boolean);
    if (!placed.includes(letter)) {
      field.value = placed.length ? field.value.replace(/[;\s]*$/, "") + ";" + letter : letter;
    }
  }

  document.addEventListener("keydown", (event) => {
    const form = document.getElementById("verdict-form");
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      if (form) {
        event.preventDefault();
        form.requestSubmit();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) {
      return;
    }
    if (event.key === "j" || event.key === "k") {
      const link = document.getElementById(event.key === "j" ? "next-case" : "previous-case");
      if (link) {
        event.preventDefault();
        window.location.assign(link.href);
      }
      return;
    }
    if (!form || !/^[1-9]$/.test(event.key)) {
      return;
    }
    const radio = form.querySelector(`input[name="choice"][data-key="${event.key}"]`);
    if (radio) {
      event.preventDefault();
      radio.checked = true;
      radio.focus();
      return;
    }
    const ranking = document.getElementById("ranking");
    if (ranking) {
      event.preventDefault();
      addToRanking(ranking, event.key);
    }
  });
})();
