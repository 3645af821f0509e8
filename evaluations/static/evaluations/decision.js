// The decision page's charts: cumulative cost (prompting against fine-tuning, the crossing marked)
// and quality against cost (each arm with its 95% CI, the Pareto frontier, the target).
(function () {
  "use strict";

  function readData() {
    const node = document.getElementById("decision-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function money(v) {
    if (v === null || v === undefined) return "unknown";
    if (v === 0) return "$0";
    if (Math.abs(v) >= 0.01) return "$" + v.toLocaleString(undefined, { maximumFractionDigits: 2, minimumFractionDigits: 2 });
    return "$" + v.toPrecision(3);
  }

  function cumulative(data) {
    const canvas = document.getElementById("cumulative-chart");
    const curves = data.curves;
    if (!canvas || !curves) return;
    const toPoints = (pts) => pts.map((p) => ({ x: p[0], y: p[1] }));
    const datasets = [
      { label: "Prompting: " + (data.prompting_arm || ""), data: toPoints(curves.prompting),
        borderColor: "#2563eb", backgroundColor: "#2563eb", pointRadius: 0, borderWidth: 2 },
      { label: "Fine-tuned: " + (data.fine_tuned_arm || ""), data: toPoints(curves.fine_tuned),
        borderColor: "#16a34a", backgroundColor: "#16a34a", pointRadius: 0, borderWidth: 2 },
    ];
    if (curves.crossing_month !== null && curves.crossing_month !== undefined) {
      datasets.push({ label: "Break-even (day " + Math.round(curves.crossing_days) + ")", type: "scatter",
        data: [{ x: curves.crossing_month, y: curves.crossing_cost }],
        borderColor: "#b45309", backgroundColor: "#b45309", pointRadius: 7, pointStyle: "rectRot" });
    }
    new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: { type: "linear", min: 0, title: { display: true, text: "months" } },
          y: { min: 0, title: { display: true, text: "cumulative cost (USD)" },
               ticks: { callback: (v) => money(v) } },
        },
        plugins: { tooltip: { callbacks: { label: (ctx) => ctx.dataset.label + ": " + money(ctx.parsed.y) + " at month " + ctx.parsed.x.toFixed(1) } } },
      },
    });
  }

  const ciAndTarget = {
    id: "ciAndTarget",
    afterDatasetsDraw(c) {
      const data = c.$ftvp;
      if (!data) return;
      const meta = c.getDatasetMeta(0);
      const y = c.scales.y;
      const ctx = c.ctx;
      ctx.save();
      ctx.strokeStyle = "#1f2937";
      ctx.lineWidth = 1.5;
      meta.data.forEach((pt, i) => {
        const p = data.points[i];
        if (p.low === null || p.high === null) return;
        const top = y.getPixelForValue(p.high);
        const bottom = y.getPixelForValue(p.low);
        ctx.beginPath();
        ctx.moveTo(pt.x, top); ctx.lineTo(pt.x, bottom);
        ctx.moveTo(pt.x - 5, top); ctx.lineTo(pt.x + 5, top);
        ctx.moveTo(pt.x - 5, bottom); ctx.lineTo(pt.x + 5, bottom);
        ctx.stroke();
      });
      const ty = y.getPixelForValue(data.target);
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = "#b45309";
      ctx.beginPath();
      ctx.moveTo(c.chartArea.left, ty); ctx.lineTo(c.chartArea.right, ty);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#b45309";
      ctx.fillText("target " + data.target, c.chartArea.left + 4, ty - 4);
      ctx.restore();
    },
  };

  const COLORS = { prompting: "#2563eb", fine_tuned: "#16a34a", hybrid: "#7c3aed" };

  function qualityCost(data) {
    const canvas = document.getElementById("quality-cost-chart");
    if (!canvas || !data.points.length) return;
    const xs = data.points.map((p) => p.x).filter((x) => x > 0);
    const logScale = xs.length > 1 && Math.max.apply(null, xs) / Math.min.apply(null, xs) > 50 && xs.length === data.points.length;
    const frontier = data.points.filter((p) => p.frontier).sort((a, b) => a.x - b.x);
    const chart = new Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          { label: "Arms", data: data.points.map((p) => ({ x: p.x, y: p.y })),
            pointBackgroundColor: data.points.map((p) => COLORS[p.family] || "#4b5563"),
            pointRadius: 6 },
          { label: "Pareto frontier", type: "line", data: frontier.map((p) => ({ x: p.x, y: p.y })),
            borderColor: "#9ca3af", borderWidth: 1.5, pointRadius: 0, fill: false },
        ],
      },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: {
          x: { type: logScale ? "logarithmic" : "linear", title: { display: true, text: "cost per request (USD)" },
               ticks: { callback: (v) => money(v) } },
          y: { min: 0, max: 1, title: { display: true, text: "mean score" } },
        },
        plugins: {
          tooltip: { callbacks: { label: (ctx) => {
            if (ctx.datasetIndex !== 0) return "frontier";
            const p = data.points[ctx.dataIndex];
            return p.label + ": " + p.y.toFixed(3) + " at " + money(p.x) + (p.frontier ? " (frontier)" : "");
          } } },
        },
      },
      plugins: [ciAndTarget],
    });
    chart.$ftvp = data;
    chart.update("none");
  }

  function draw() {
    const data = readData();
    if (!data || typeof Chart === "undefined") return;
    cumulative(data);
    qualityCost(data);
  }

  window.addEventListener("load", draw);
})();
