// The trends page's charts: one line per arm (endpoint · strategy) over time for the mean score
// (with its 95% band), pass rate, cost per request, latency p95 and drift AUC; dashed vertical lines
// where the suite version, a prompt or an endpoint changed. Chart.js has no date adapter here, so the
// x axis is linear over "wall-clock" milliseconds (the server's local time, formatted as UTC).
(function () {
  "use strict";

  const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777",
    "#65a30d", "#7c3aed"];
  const MARKER_COLORS = { suite: "#111827", prompt: "#9333ea", endpoint: "#dc2626" };
  const MARKER_LETTERS = { suite: "S", prompt: "P", endpoint: "E" };

  function readData() {
    const node = document.getElementById("trends-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function dateLabel(ms, withTime) {
    const d = new Date(ms);
    const day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    return withTime ? day + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) : day;
  }

  function money(v) {
    if (v === null || v === undefined) return "—";
    if (v === 0) return "$0";
    if (Math.abs(v) >= 0.01) return "$" + v.toFixed(2);
    return "$" + v.toPrecision(3);
  }

  function color(i, alpha) {
    const hex = COLORS[i % COLORS.length];
    if (alpha === undefined) return hex;
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function points(series, key) {
    const ys = series[key];
    return series.t.map((t, i) => ({ x: t, y: ys[i] }));
  }

  // Vertical dashed lines at the changes (letters S, P, E on top) and an optional horizontal
  // reference line (drift AUC 0.5), drawn under the lines.
  const changeMarkers = {
    id: "changeMarkers",
    beforeDatasetsDraw(chart, _args, opts) {
      const area = chart.chartArea;
      const x = chart.scales.x;
      const ctx = chart.ctx;
      ctx.save();
      ctx.lineWidth = 1;
      ctx.font = "11px system-ui, sans-serif";
      ctx.textAlign = "center";
      (opts.markers || []).forEach((m) => {
        const px = x.getPixelForValue(m.t);
        if (px < area.left || px > area.right) return;
        const c = MARKER_COLORS[m.kind] || "#6b7280";
        ctx.strokeStyle = c;
        ctx.fillStyle = c;
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        ctx.moveTo(px, area.top + 12);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        ctx.fillText(MARKER_LETTERS[m.kind] || "?", px, area.top + 9);
      });
      if (opts.reference !== undefined && opts.reference !== null) {
        const py = chart.scales.y.getPixelForValue(opts.reference);
        ctx.setLineDash([6, 4]);
        ctx.strokeStyle = "#6b7280";
        ctx.fillStyle = "#6b7280";
        ctx.beginPath();
        ctx.moveTo(area.left, py);
        ctx.lineTo(area.right, py);
        ctx.stroke();
        ctx.textAlign = "left";
        ctx.fillText(opts.referenceLabel || String(opts.reference), area.left + 4, py - 4);
      }
      ctx.restore();
    },
  };

  function lineDataset(series, i, key) {
    return {
      label: series.name, data: points(series, key), group: i,
      borderColor: color(i), backgroundColor: color(i), borderWidth: 1.5,
      pointRadius: series.t.length > 60 ? 0 : 2, pointHoverRadius: 4, spanGaps: false, tension: 0,
    };
  }

  function chartOptions(data, opts) {
    return {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: {
        x: { type: "linear", min: data.range[0], max: data.range[1],
             ticks: { callback: (v) => dateLabel(v, false), maxTicksLimit: 8 } },
        y: Object.assign({ title: { display: true, text: opts.unit } }, opts.y || {}),
      },
      plugins: {
        changeMarkers: { markers: data.markers, reference: opts.reference, referenceLabel: opts.referenceLabel },
        legend: {
          labels: { filter: (item, chartData) => !chartData.datasets[item.datasetIndex].band },
          // Hiding an arm hides its band too.
          onClick: (_e, item, legend) => {
            const chart = legend.chart;
            const group = chart.data.datasets[item.datasetIndex].group;
            const visible = chart.isDatasetVisible(item.datasetIndex);
            chart.data.datasets.forEach((ds, j) => { if (ds.group === group) chart.setDatasetVisibility(j, !visible); });
            chart.update();
          },
        },
        tooltip: {
          filter: (item) => !item.dataset.band,
          callbacks: {
            title: (items) => items.length ? dateLabel(items[0].parsed.x, true) : "",
            label: (ctx) => ctx.dataset.label + ": " + opts.format(ctx.parsed.y),
          },
        },
      },
      onClick: (_e, elements, chart) => {
        const hit = elements.find((el) => !chart.data.datasets[el.datasetIndex].band);
        if (!hit) return;
        const series = data.series[chart.data.datasets[hit.datasetIndex].group];
        const run = series.run[hit.index];
        // Only a run id (a number) goes into the address: never text from the data.
        if (Number.isInteger(run) && run > 0) window.location.href = data.run_url.replace("/0/", "/" + run + "/");
      },
    };
  }

  function draw(data, canvasId, key, opts) {
    const canvas = document.getElementById(canvasId);
    if (!canvas) return;
    const datasets = [];
    data.series.forEach((s, i) => {
      if (opts.band) {
        datasets.push({ label: s.name + " (low)", data: points(s, "low"), group: i, band: true,
          borderWidth: 0, pointRadius: 0, pointHoverRadius: 0, fill: false, spanGaps: false });
        datasets.push({ label: s.name + " (high)", data: points(s, "high"), group: i, band: true,
          borderWidth: 0, pointRadius: 0, pointHoverRadius: 0, fill: "-1",
          backgroundColor: color(i, 0.12), spanGaps: false });
      }
      datasets.push(lineDataset(s, i, key));
    });
    new Chart(canvas, { type: "line", data: { datasets: datasets }, options: chartOptions(data, opts),
      plugins: [changeMarkers] });
  }

  function fixed(digits) {
    return (v) => (v === null || v === undefined ? "—" : v.toFixed(digits));
  }

  function init() {
    const data = readData();
    if (!data || !data.series.length || typeof Chart === "undefined") return;
    draw(data, "score-chart", "mean", { unit: "mean score", band: true, format: fixed(3),
      y: { suggestedMin: 0, suggestedMax: 1 } });
    draw(data, "pass-chart", "pass_rate", { unit: "pass rate", format: (v) => (v === null ? "—" : (100 * v).toFixed(1) + "%"),
      y: { min: 0, max: 1, ticks: { callback: (v) => Math.round(100 * v) + "%" } } });
    draw(data, "cost-chart", "cost", { unit: "USD per request", format: money,
      y: { beginAtZero: true, ticks: { callback: (v) => money(v) } } });
    draw(data, "latency-chart", "latency_p95", { unit: "ms", format: (v) => (v === null ? "—" : Math.round(v) + " ms"),
      y: { beginAtZero: true } });
    draw(data, "drift-chart", "drift_auc", { unit: "AUC", format: fixed(3), reference: 0.5,
      referenceLabel: "0.5: no drift", y: { suggestedMin: 0.4, suggestedMax: 1 } });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
