// The fine-tuning page's loss curve, redrawn whenever htmx swaps in the job's latest progress.
(function () {
  "use strict";
  let chart = null;

  function draw() {
    const canvas = document.getElementById("loss-chart");
    const node = document.getElementById("loss-data");
    if (!canvas || !node || typeof Chart === "undefined") return;
    const data = JSON.parse(node.textContent);
    const points = data.losses.map((loss, i) => ({ x: i + 1, y: loss }));
    if (chart) {
      chart.data.datasets[0].data = points;
      chart.options.scales.x.max = data.total_steps || undefined;
      chart.update("none");
      return;
    }
    chart = new Chart(canvas, {
      type: "line",
      data: { datasets: [{ label: "training loss", data: points, borderColor: "#2563eb", pointRadius: 0, borderWidth: 2 }] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: { type: "linear", min: 1, max: data.total_steps || undefined, title: { display: true, text: "step" } },
          y: { min: 0, title: { display: true, text: "loss" } },
        },
      },
    });
  }

  window.addEventListener("load", draw);
  document.addEventListener("htmx:afterSwap", draw);
})();
