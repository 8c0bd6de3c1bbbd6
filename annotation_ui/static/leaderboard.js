// Leaderboard charts: each model's rating as a dot with its 95% interval as a whisker, drawn with
// the vendored uPlot from the page's JSON data island (again after htmx swaps in a new report).
(function () {
  "use strict";

  var plots = [];

  function whiskers(low, high) {
    return function (u) {
      var ctx = u.ctx;
      ctx.save();
      ctx.strokeStyle = "#8aa2e0";
      ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
      for (var i = 0; i < low.length; i++) {
        if (low[i] === null || high[i] === null) { continue; }
        var x = u.valToPos(i, "x", true);
        ctx.beginPath();
        ctx.moveTo(x, u.valToPos(low[i], "y", true));
        ctx.lineTo(x, u.valToPos(high[i], "y", true));
        ctx.stroke();
      }
      ctx.restore();
    };
  }

  function draw() {
    plots.forEach(function (plot) { plot.destroy(); });
    plots = [];
    var island = document.getElementById("leaderboard-chart-data");
    if (!island || !window.uPlot) { return; }
    var data = JSON.parse(island.textContent);
    document.querySelectorAll("[data-board]").forEach(function (box) {
      var board = data.boards[Number(box.dataset.board)];
      box.textContent = "";
      if (!board || board.models.length === 0) { return; }
      var xs = board.models.map(function (_, i) { return i; });
      var values = board.rating.concat(board.low, board.high).filter(function (v) { return v !== null; });
      var min = Math.min.apply(null, values), max = Math.max.apply(null, values), pad = Math.max((max - min) * 0.1, 10);
      var options = {
        width: Math.max(box.clientWidth, 280),
        height: 240,
        legend: { show: false },
        scales: { x: { time: false, range: [-0.5, board.models.length - 0.5] }, y: { range: [min - pad, max + pad] } },
        axes: [
          { splits: function () { return xs; }, values: function (u, splits) { return splits.map(function (i) { return board.models[i] || ""; }); }, rotate: board.models.length > 6 ? -45 : 0 },
          { label: box.dataset.label },
        ],
        series: [
          {},
          { label: box.dataset.label, stroke: "#2457d6", paths: function () { return null; }, points: { show: true, size: 9, fill: "#2457d6" } },
        ],
        hooks: { draw: [whiskers(board.low, board.high)] },
      };
      plots.push(new window.uPlot(options, [xs, board.rating], box));
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
