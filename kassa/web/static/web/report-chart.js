// The chart of a report's figures, drawn by the vendored Chart.js from the JSON the page
// carries (json_script "chart-data"); the tables stay the record. A static file, not an
// inline script, so that the pages pass the Content-Security-Policy.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var source = document.getElementById("chart-data");
  var canvas = document.getElementById("report-chart");
  if (!source || !canvas || typeof Chart !== "function") { return; }
  var spec = JSON.parse(source.textContent);
  var money = new Intl.NumberFormat(spec.locale, {style: "currency", currency: spec.currency});
  var colors = ["#1a56db", "#e3a008", "#0e9f6e"];
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: spec.labels,
      datasets: spec.datasets.map(function (set, i) {
        return {label: set.label, data: set.data.map(Number), backgroundColor: colors[i % colors.length]};
      })
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      plugins: {
        legend: {display: spec.datasets.length > 1},
        tooltip: {callbacks: {label: function (item) { return item.dataset.label + ": " + money.format(item.parsed.y); }}}
      },
      scales: {y: {ticks: {callback: function (value) { return money.format(value); }}}}
    }
  });
});
