// Ranking task: order the responses best first by key, drag and drop or click.
// The hidden `ranking` field (`B;A,C`) is the only state, so drafts and re-fills need nothing else;
// the chips are server-rendered and only moved between the pool and the ordered list.
(function () {
  "use strict";
  var dragged = null;

  function rootOf(node) {
    var form = node && node.closest ? node.closest("#judgment-form") : null;
    return form ? form.querySelector(".kind-ranking") : null;
  }

  function labelsOf(root) { return root.dataset.labels.split(""); }

  // State: placed labels best first, and whether each is tied with the one above.
  function read(root) {
    var known = labelsOf(root), state = { order: [], tied: [] };
    root.querySelector("input[name=ranking]").value.split(";").forEach(function (group) {
      group.split(",").forEach(function (label, index) {
        label = label.trim();
        if (known.indexOf(label) >= 0 && state.order.indexOf(label) < 0) {
          state.tied.push(index > 0 && state.order.length > 0);
          state.order.push(label);
        }
      });
    });
    return state;
  }

  function write(root, state) {
    var text = "";
    state.order.forEach(function (label, i) {
      text += (i === 0 ? "" : state.tied[i] ? "," : ";") + label;
    });
    var field = root.querySelector("input[name=ranking]");
    field.value = text;
    field.dispatchEvent(new Event("input", { bubbles: true }));  // the shell saves the draft
    render(root, state);
  }

  function chip(root, label) { return root.querySelector('.rank-chip[data-label="' + label + '"]'); }

  function render(root, state) {
    var list = root.querySelector(".ranking-order"), pool = root.querySelector(".ranking-pool"), rank = 0;
    state.order.forEach(function (label, i) {
      var node = chip(root, label), tied = i > 0 && state.tied[i];
      if (!tied) { rank += 1; }
      node.querySelector(".rank").textContent = String(rank);
      node.classList.toggle("tied", tied);
      node.querySelector(".tie-toggle").setAttribute("aria-pressed", String(tied));
      list.appendChild(node);
    });
    labelsOf(root).forEach(function (label) {
      if (state.order.indexOf(label) < 0) {
        var node = chip(root, label);
        node.querySelector(".rank").textContent = "";
        node.classList.remove("tied");
        pool.appendChild(node);
      }
    });
    list.classList.toggle("empty", state.order.length === 0);
  }

  function remove(state, label) {
    var i = state.order.indexOf(label);
    if (i < 0) { return; }
    // The next one was tied to this group's head: it becomes the head.
    if (!state.tied[i] && state.tied[i + 1]) { state.tied[i + 1] = false; }
    state.order.splice(i, 1);
    state.tied.splice(i, 1);
  }

  function insert(state, label, index) {
    remove(state, label);
    index = Math.min(index, state.order.length);
    // Dropped inside a tie group, it joins the group.
    state.order.splice(index, 0, label);
    state.tied.splice(index, 0, index > 0 && state.tied[index] === true);
  }

  function setPending(root, pending) {
    root.classList.toggle("tie-pending", pending);
    root.querySelector(".ranking-tie-pending").hidden = !pending;
  }

  function init(form) {
    var root = form && form.querySelector(".kind-ranking");
    if (root) {
      setPending(root, false);
      render(root, read(root));
    }
  }

  function onKey(event) {
    var root = rootOf(event.target), key = event.detail.key, keyEvent = event.detail.event;
    if (!root || keyEvent.ctrlKey || keyEvent.altKey || keyEvent.metaKey) { return; }
    var state = read(root), pending = root.classList.contains("tie-pending");
    if (key === "=") {
      setPending(root, state.order.length > 0);
    } else if (key === "Backspace") {
      state.order.pop();
      state.tied.pop();
      write(root, state);
      setPending(root, false);
    } else if (key === "Escape" && pending) {
      setPending(root, false);
    } else if (key === "0") {
      var allBad = root.querySelector("input[name=all_bad]");
      allBad.checked = !allBad.checked;
      allBad.dispatchEvent(new Event("change", { bubbles: true }));
    } else if (/^[0-9]$/.test(key)) {
      // Digits belong to this kind; only 0 means something.
    } else if (key.length === 1 && labelsOf(root).indexOf(key.toUpperCase()) >= 0) {
      var label = key.toUpperCase();
      if (state.order.indexOf(label) < 0) {
        state.order.push(label);
        state.tied.push(pending && state.order.length > 1);
        write(root, state);
      }
      setPending(root, false);
    } else {
      return;
    }
    keyEvent.preventDefault();
  }

  function dropIndex(list, y) {
    var chips = list.querySelectorAll(".rank-chip:not(.dragging)");
    for (var i = 0; i < chips.length; i += 1) {
      var box = chips[i].getBoundingClientRect();
      if (y < box.top + box.height / 2) { return i; }
    }
    return chips.length;
  }

  function zoneOf(target) {
    return target && target.closest ? target.closest(".ranking-order, .ranking-pool") : null;
  }

  document.addEventListener("prefstack:key", onKey, true);
  document.addEventListener("prefstack:task-ready", function (event) { init(event.target); }, true);

  document.addEventListener("click", function (event) {
    var root = rootOf(event.target), node = event.target.closest && event.target.closest(".rank-chip");
    if (!root || !node) { return; }
    var state = read(root), label = node.dataset.label, i = state.order.indexOf(label);
    if (event.target.closest(".tie-toggle")) {
      if (i > 0) {
        state.tied[i] = !state.tied[i];
        write(root, state);
      }
    } else if (i < 0) {
      state.order.push(label);
      state.tied.push(false);
      write(root, state);
    }
  });

  document.addEventListener("dragstart", function (event) {
    var node = event.target.closest && event.target.closest(".rank-chip");
    if (!node || !rootOf(node)) { return; }
    dragged = node.dataset.label;
    node.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged);
  });

  document.addEventListener("dragend", function (event) {
    if (event.target.classList) { event.target.classList.remove("dragging"); }
    dragged = null;
  });

  document.addEventListener("dragover", function (event) {
    if (dragged !== null && zoneOf(event.target) && rootOf(event.target)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
    }
  });

  document.addEventListener("drop", function (event) {
    var zone = zoneOf(event.target), root = rootOf(event.target);
    if (!zone || !root || dragged === null || !chip(root, dragged)) { return; }
    event.preventDefault();
    var state = read(root);
    if (zone.classList.contains("ranking-pool")) {
      remove(state, dragged);
    } else {
      insert(state, dragged, dropIndex(zone, event.clientY));
    }
    write(root, state);
  });
})();
