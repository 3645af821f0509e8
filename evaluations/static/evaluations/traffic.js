// The traffic page's charts, from the summary the page embeds with json_script ("traffic-data"):
// calls per day stacked by endpoint and by tag, cost per day, latency p50/p95, tokens per request
// and errors per day. One point per calendar day of the window.
(function () {
  "use strict";

  const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777",
    "#65a30d", "#7c3aed"];

  function readData() {
    const node = document.getElementById("traffic-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function money(v) {
    if (v === null || v === undefined) return "—";
    if (v === 0) return "$0";
    if (Math.abs(v) >= 0.01) return "$" + v.toFixed(2);
    return "$" + v.toPrecision(3);
  }

  function base(yTitle, stacked, tick) {
    return {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: stacked, ticks: { maxTicksLimit: 10 } },
        y: { stacked: stacked, beginAtZero: true, title: { display: true, text: yTitle },
             ticks: tick ? { callback: tick } : {} },
      },
      plugins: { legend: { position: "bottom" } },
    };
  }

  function chart(id, type, labels, datasets, options) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, { type: type, data: { labels: labels, datasets: datasets }, options: options });
  }

  function stackedBars(series) {
    return series.map((s, i) => ({ label: s.name, data: s.calls, backgroundColor: COLORS[i % COLORS.length] }));
  }

  function line(label, data, i) {
    return { label: label, data: data, borderColor: COLORS[i % COLORS.length],
      backgroundColor: COLORS[i % COLORS.length], spanGaps: true, pointRadius: 2, tension: 0.2 };
  }

  function draw() {
    const data = readData();
    if (!data || typeof Chart === "undefined") return;
    const days = data.days;
    const labels = days.map((d) => d.date);
    const pick = (key) => days.map((d) => d[key]);
    chart("traffic-volume-chart", "bar", labels, stackedBars(data.series.endpoint), base("calls", true));
    chart("traffic-tag-chart", "bar", labels, stackedBars(data.series.tag), base("calls", false));
    const cost = base("USD", false, money);
    cost.plugins.tooltip = { callbacks: { label: (c) => c.dataset.label + ": " + money(c.parsed.y) } };
    chart("traffic-cost-chart", "line", labels, [line("cost", pick("cost"), 0)], cost);
    chart("traffic-latency-chart", "line", labels,
      [line("p50", pick("latency_p50"), 1), line("p95", pick("latency_p95"), 2)], base("ms", false));
    chart("traffic-tokens-chart", "bar", labels,
      [{ label: "prompt", data: pick("prompt_tokens_per_request"), backgroundColor: COLORS[0] },
       { label: "completion", data: pick("completion_tokens_per_request"), backgroundColor: COLORS[2] }],
      base("tokens per request", true));
    chart("traffic-errors-chart", "bar", labels,
      [{ label: "errors", data: pick("errors"), backgroundColor: COLORS[4] }], base("errors", false));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
