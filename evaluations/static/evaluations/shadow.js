// A shadow's agreement, cost and latency per day, candidate against the live calls.
(function () {
  "use strict";

  function line(id, labels, datasets, yTitle, yMax) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, spanGaps: true,
        scales: { y: { min: 0, max: yMax, title: { display: true, text: yTitle } } },
      },
    });
  }

  function draw() {
    const node = document.getElementById("shadow-data");
    if (!node || typeof Chart === "undefined") return;
    const d = JSON.parse(node.textContent);
    const set = (label, data, color) => ({ label: label, data: data, borderColor: color, backgroundColor: color, pointRadius: 2, borderWidth: 2 });
    line("shadow-agreement", d.days, [set("agreement", d.agreement, "#2563eb")], "agreement", 1);
    line("shadow-cost", d.days, [set("candidate", d.candidate_cost, "#16a34a"), set("live", d.live_cost, "#dc2626")], "USD per request");
    line("shadow-latency", d.days, [set("candidate p50", d.candidate_latency, "#16a34a"), set("live p50", d.live_latency, "#dc2626")], "ms");
  }

  window.addEventListener("load", draw);
})();
