// Quality dashboard charts, drawn with the vendored uPlot from the report's JSON data island.
// Runs on page load and again whenever htmx swaps in a new report (filters applied).
(function () {
  "use strict";

  var plots = [];

  function seriesOf(box) {
    var kind = box.dataset.chart;
    if (kind === "volume") {
      return [{ label: box.dataset.x }, { label: box.dataset.label, stroke: "#2457d6", fill: "rgba(36, 87, 214, 0.15)", paths: bars() }];
    }
    return [
      { label: box.dataset.x },
      { label: box.dataset.label, stroke: "#2457d6", width: 2, points: { show: true } },
      { label: box.dataset.low, stroke: "#8aa2e0", dash: [4, 4] },
      { label: box.dataset.high, stroke: "#8aa2e0", dash: [4, 4] },
    ];
  }

  var palette = ["#2457d6", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

  // A chart with one line per project: the island holds {labels: [...], data: [x, ...series]}.
  function multiSeries(box, entry) {
    return [{ label: box.dataset.x }].concat(entry.labels.map(function (label, index) {
      return { label: label, stroke: palette[index % palette.length], width: 2, points: { show: true } };
    }));
  }

  function bars() {
    return window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.6, 40] }) : undefined;
  }

  function draw() {
    plots.forEach(function (plot) { plot.destroy(); });
    plots = [];
    var island = document.getElementById("quality-chart-data");
    if (!island || !window.uPlot) { return; }
    var data = JSON.parse(island.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var entry = data[box.dataset.chart];
      var multi = entry && !Array.isArray(entry);
      var series = multi ? entry.data : entry;
      box.textContent = "";
      if (!series || series[0].length === 0 || (multi && entry.labels.length === 0)) { return; }
      var options = {
        width: Math.max(box.clientWidth, 280),
        height: 220,
        series: multi ? multiSeries(box, entry) : seriesOf(box),
        scales: { x: { time: true } },
        axes: [{}, {}],
      };
      plots.push(new window.uPlot(options, series, box));
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
