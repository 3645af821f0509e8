// The run page's chart: mean score per arm with its 95% CI, redrawn whenever htmx swaps in new data.
(function () {
  "use strict";
  let chart = null;

  function readData() {
    const node = document.getElementById("chart-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  const errorBars = {
    id: "errorBars",
    afterDatasetsDraw(c) {
      const data = c.$ftvp;
      if (!data) return;
      const meta = c.getDatasetMeta(0);
      const y = c.scales.y;
      const ctx = c.ctx;
      ctx.save();
      ctx.strokeStyle = "#1f2937";
      ctx.lineWidth = 1.5;
      meta.data.forEach((bar, i) => {
        const low = data.low[i];
        const high = data.high[i];
        if (low === null || high === null || low === undefined || high === undefined) return;
        const x = bar.x;
        const top = y.getPixelForValue(high);
        const bottom = y.getPixelForValue(low);
        ctx.beginPath();
        ctx.moveTo(x, top); ctx.lineTo(x, bottom);
        ctx.moveTo(x - 6, top); ctx.lineTo(x + 6, top);
        ctx.moveTo(x - 6, bottom); ctx.lineTo(x + 6, bottom);
        ctx.stroke();
      });
      if (data.target !== null && data.target !== undefined) {
        const ty = y.getPixelForValue(data.target);
        ctx.setLineDash([6, 4]);
        ctx.strokeStyle = "#b45309";
        ctx.beginPath();
        ctx.moveTo(c.chartArea.left, ty); ctx.lineTo(c.chartArea.right, ty);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = "#b45309";
        ctx.fillText("target " + data.target, c.chartArea.right - 70, ty - 4);
      }
      ctx.restore();
    },
  };

  function draw() {
    const canvas = document.getElementById("score-chart");
    const data = readData();
    if (!canvas || !data || typeof Chart === "undefined") return;
    const values = data.mean.map((v) => (v === null ? 0 : v));
    if (chart) {
      chart.$ftvp = data;
      chart.data.labels = data.labels;
      chart.data.datasets[0].data = values;
      chart.data.datasets[1].data = data.pass_rate.map((v) => (v === null ? 0 : v));
      chart.update("none");
      return;
    }
    chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: "Mean score (95% CI)", data: values, backgroundColor: "#2563eb" },
          { label: "Pass rate", data: data.pass_rate.map((v) => (v === null ? 0 : v)), backgroundColor: "#93c5fd" },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { min: 0, max: 1, title: { display: true, text: "score" } } },
      },
      plugins: [errorBars],
    });
    chart.$ftvp = data;
    chart.update("none");
  }

  // Refresh the results table every few live updates while the run goes on, and once when it ends.
  let polls = 0;
  function refreshResults(event) {
    const detail = event.detail || {};
    const swapped = [detail.elt && detail.elt.id, detail.target && detail.target.id];
    if (!swapped.includes("live") || typeof htmx === "undefined") return;
    const live = document.getElementById("live");
    const results = document.getElementById("results");
    if (!live || !results) return;
    polls += 1;
    const running = live.hasAttribute("data-running");
    if (!running || polls % 3 === 0) htmx.trigger(results, "refresh");
  }

  // Confusion matrices as stacked bars: one bar per true label, split by the predicted label.
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];
  const confusionCharts = {};
  function drawConfusions() {
    if (typeof Chart === "undefined") return;
    document.querySelectorAll("canvas[data-confusion]").forEach((canvas) => {
      const id = canvas.getAttribute("data-confusion");
      const node = document.getElementById(id);
      if (!node) return;
      const data = JSON.parse(node.textContent);
      if (confusionCharts[id]) confusionCharts[id].destroy();
      confusionCharts[id] = new Chart(canvas, {
        type: "bar",
        data: {
          labels: data.labels,
          datasets: data.labels.map((predicted, j) => ({
            label: "predicted " + predicted,
            data: data.matrix.map((row) => row[j]),
            backgroundColor: PALETTE[j % PALETTE.length],
          })),
        },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          scales: { x: { stacked: true, title: { display: true, text: "true label" } },
                    y: { stacked: true, title: { display: true, text: "cases" } } },
        },
      });
    });
  }

  document.addEventListener("DOMContentLoaded", drawConfusions);
  document.addEventListener("htmx:afterSwap", drawConfusions);
  window.addEventListener("load", drawConfusions);
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSwap", draw);
  document.addEventListener("htmx:afterSwap", refreshResults);
  window.addEventListener("load", draw);
})();
