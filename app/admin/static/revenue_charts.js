// The revenue dashboard's charts, added to charts.js's registry (this script loads after
// it, before the page's charts are drawn). Names in tooltips go through escapeHtml.
(() => {
  const escape = Harpoon.escapeHtml;
  const yuan = (value) => (value == null ? "—" : `¥${Number(value).toLocaleString("zh-CN", {maximumFractionDigits: 0})}`);
  const percent = (value) => (value == null ? "—" : `${Math.round(value * 1000) / 10}%`);
  const short = (value) => (Math.abs(value) >= 10000 ? `¥${Math.round(value / 1000) / 10}万` : yuan(value));
  const TYPE_COLORS = {new: "#0b6e4f", renewal: "#2e6fbf", expansion: "#7a4fd6"};

  Object.assign(window.HarpoonCharts, {
    "revenue-bars": (chart, data) => chart.setOption({
      grid: {left: 64, right: 16, top: 40, bottom: 28},
      tooltip: {trigger: "axis", valueFormatter: yuan},
      legend: {top: 0},
      xAxis: {type: "category", data: data.buckets},
      yAxis: {type: "value", axisLabel: {formatter: short}},
      series: [
        {type: "bar", name: data.labels.pipeline, data: data.pipeline, itemStyle: {color: "#9aa5b1"}},
        ...data.won.map((s) => ({
          type: "bar", stack: "won", name: `${data.labels.won} · ${s.name}`, data: s.amounts,
          itemStyle: {color: TYPE_COLORS[s.type]},
        })),
      ],
    }),

    "revenue-rates": (chart, data) => chart.setOption({
      grid: {left: 48, right: 48, top: 40, bottom: 28},
      tooltip: {
        trigger: "axis",
        formatter: (ps) => [escape(ps[0].axisValue), ...ps.map((p) => `${escape(p.seriesName)}: ${p.seriesIndex === 0 ? percent(p.value) : escape(p.value ?? "—")}`)].join("<br>"),
      },
      legend: {top: 0},
      xAxis: {type: "category", data: data.buckets},
      yAxis: [
        {type: "value", min: 0, max: 1, axisLabel: {formatter: percent}},
        {type: "value", min: 0, splitLine: {show: false}},
      ],
      series: [
        {type: "line", name: data.labels.win_rate, data: data.win_rate, connectNulls: true, itemStyle: {color: "#0b6e4f"}},
        {type: "line", name: data.labels.cycle, yAxisIndex: 1, data: data.cycle, connectNulls: true, itemStyle: {color: "#b54708"}},
      ],
    }),

    "revenue-funnel": (chart, data) => chart.setOption({
      tooltip: {
        trigger: "item",
        formatter: (p) => `${escape(p.name)}<br>${escape(data.labels.at_stage)}: ${escape(p.data.accounts)}<br>${escape(data.labels.reached)}: ${escape(p.data.value)}`,
      },
      series: [{
        type: "funnel", sort: "none", left: "8%", width: "60%", top: 8, bottom: 8, minSize: "4%", gap: 2,
        label: {position: "right", formatter: (p) => `${p.name}  ${p.data.accounts} / ${p.data.value}`},
        data: data.funnel.map((s) => ({name: s.name, value: s.reached, accounts: s.accounts})),
      }],
    }),

    "revenue-nps": (chart, data) => chart.setOption({
      grid: {left: 110, right: 40, top: 8, bottom: 8},
      tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
      xAxis: {type: "value", show: false, minInterval: 1},
      yAxis: {type: "category", inverse: true, data: data.nps.map((r) => r.name)},
      series: [{
        type: "bar", name: data.labels.answers, label: {show: true, position: "right"},
        data: data.nps.map((r) => ({value: r.count, itemStyle: {color: {promoters: "#0b6e4f", passives: "#9aa5b1", detractors: "#d92d20"}[r.key]}})),
      }],
    }),
  });
})();
