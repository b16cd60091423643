// The admin's ECharts: an element with data-chart="<kind>" is drawn by CHARTS[kind] from the
// JSON in the element data-source names, or fetched from data-url (once per address).
// Tooltips are HTML: every name in them goes through Harpoon.escapeHtml. Labels and
// legends are drawn on the canvas, where markup is only text.
(() => {
  const escape = Harpoon.escapeHtml;
  const percent = (value) => (value == null ? "—" : `${Math.round(value * 1000) / 10}%`);
  const day = (d) => d.slice(5);
  // Rows of {name, share}: one bar per row, the share of target accounts beside it.
  const shareBars = (rows, nameWidth, color, tooltip) => ({
    grid: {left: nameWidth, right: 48, top: 8, bottom: 8},
    tooltip: {trigger: "axis", axisPointer: {type: "shadow"}, ...tooltip},
    xAxis: {type: "value", max: 1, show: false},
    yAxis: {type: "category", inverse: true, data: rows.map((row) => row.name)},
    series: [{
      type: "bar", data: rows.map((row) => row.share), itemStyle: {color},
      label: {show: true, position: "right", formatter: (p) => percent(p.value)},
      showBackground: true,
    }],
  });

  // Counts per day with a legend above: one series each.
  const daily = (days, series, legend = {top: 0}) => ({
    grid: {left: 40, right: 16, top: 40, bottom: 28},
    tooltip: {trigger: "axis"},
    legend,
    xAxis: {type: "category", data: days.map(day)},
    yAxis: {type: "value", minInterval: 1},
    series,
  });

  const CHARTS = {
    follows: (chart, data, element) => chart.setOption({
      grid: {left: 40, right: 16, top: 16, bottom: 28},
      tooltip: {trigger: "axis"},
      xAxis: {type: "category", data: data.follows.days.map(day)},
      yAxis: {type: "value", minInterval: 1},
      series: [{type: "bar", name: element.dataset.seriesName, data: data.follows.counts, itemStyle: {color: "#0b6e4f"}}],
    }),

    kinds: (chart, data) => chart.setOption(daily(
      data.interactions.days,
      data.interactions.series.map((s) => ({type: "bar", stack: "all", name: s.label, data: s.counts})),
      {type: "scroll", top: 0},
    )),

    "stage-funnel": (chart, data) => chart.setOption({
      tooltip: {
        trigger: "item",
        formatter: (p) => `${escape(p.name)}<br>${escape(data.labels.at_stage)}: ${escape(p.data.accounts)}<br>${escape(data.labels.reached)}: ${escape(p.data.value)}`,
      },
      series: [{
        type: "funnel", sort: "none", left: "8%", width: "60%", top: 8, bottom: 8, minSize: "4%", gap: 2,
        label: {position: "right", formatter: (p) => `${p.name}  ${p.data.accounts}`},
        data: data.funnel.map((s) => ({name: s.name, value: s.reached, accounts: s.accounts})),
      }],
    }),

    "abm-metrics": (chart, data) => chart.setOption(shareBars(data.metrics, 130, "#0b6e4f", {valueFormatter: percent})),

    "abm-roles": (chart, data) => chart.setOption(shareBars(data.roles, 90, "#1d3fa8", {
      formatter: (ps) => `${escape(ps[0].name)}: ${percent(ps[0].value)} (${escape(data.roles[ps[0].dataIndex].accounts)} / ${escape(data.targets)})`,
    })),

    "abm-trend": (chart, data) => chart.setOption({
      grid: {left: 48, right: 16, top: 40, bottom: 28},
      tooltip: {trigger: "axis", valueFormatter: percent},
      legend: {top: 0},
      xAxis: {type: "category", data: data.trend.days.map(day)},
      yAxis: {type: "value", min: 0, max: 1, axisLabel: {formatter: percent}},
      series: data.trend.series.map((s) => ({type: "line", name: s.name, data: s.shares, showSymbol: false, connectNulls: false})),
    }),

    // Per item of an attribution dimension: its influenced pipeline and won revenue (CNY).
    "attribution-bars": (chart, data) => chart.setOption({
      grid: {left: 160, right: 24, top: 32, bottom: 8, containLabel: false},
      tooltip: {trigger: "axis", axisPointer: {type: "shadow"}, valueFormatter: (v) => `¥${Number(v).toLocaleString()}`},
      legend: {top: 0},
      xAxis: {type: "value", axisLabel: {formatter: (v) => (v >= 10000 ? `${v / 10000}万` : v)}},
      yAxis: {type: "category", inverse: true, data: data.names, axisLabel: {width: 150, overflow: "truncate"}},
      series: [
        {type: "bar", name: data.labels.pipeline, data: data.pipeline, itemStyle: {color: "#1d3fa8"}},
        {type: "bar", name: data.labels.revenue, data: data.revenue, itemStyle: {color: "#0b6e4f"}},
      ],
    }),

    "push-funnel": (chart, steps) => chart.setOption({
      animation: false,
      tooltip: {trigger: "item"},
      series: [{
        type: "funnel", sort: "none", left: "10%", width: "80%", minSize: "8%", gap: 2,
        label: {show: true, position: "inside", formatter: (p) => `${p.name} ${p.value}`},
        data: steps.map(([name, value]) => ({name, value})),
      }],
    }),

    "qr-scans": (chart, data) => chart.setOption(daily(data.days, [
      {type: "bar", name: data.names.follows, stack: "touches", data: data.follows},
      {type: "bar", name: data.names.scans, stack: "touches", data: data.scans},
      {type: "line", name: data.names.people, data: data.people, showSymbol: false},
    ])),

    "content-views": (chart, data) => chart.setOption(daily(data.days, [
      {type: "line", name: data.names.views, data: data.views, areaStyle: {opacity: 0.12}},
      {type: "line", name: data.names.readers, data: data.readers},
    ])),

    "contact-way-adds": (chart, data) => chart.setOption(daily(
      data.days,
      data.series.map((s) => ({type: "line", name: s.name, data: s.counts, showSymbol: false})),
      {type: "scroll", top: 0},
    )),

    "account-trend": (chart, data) => {
      const labels = data.labels;
      const shown = (value) => escape(value ?? "—");
      chart.setOption({
        grid: {left: 48, right: 16, top: 16, bottom: 28},
        tooltip: {
          trigger: "axis",
          formatter: (params) => {
            const [when, score, tier, stage, mqa, surging] = params[0].data;
            return [
              `<strong>${escape(when)}</strong>`,
              `${escape(labels.score)}: ${escape(score)}`,
              `${escape(labels.tier)}: ${shown(tier)}`,
              `${escape(labels.stage)}: ${shown(stage)}`,
              `${escape(labels.mqa)}: ${escape(mqa ? labels.yes : labels.no)}`,
              surging ? `${escape(labels.surging)} ↑` : "",
            ].filter(Boolean).join("<br>");
          },
        },
        xAxis: {type: "time", axisLabel: {formatter: "{MM}-{dd}", hideOverlap: true}},
        yAxis: {type: "value", min: 0},
        series: [{
          type: "line",
          name: labels.score,
          data: data.points,
          encode: {x: 0, y: 1},
          showSymbol: data.points.length < 40,
          itemStyle: {color: "#0b6e4f"},
          areaStyle: {opacity: 0.08},
          markPoint: {
            symbol: "pin", symbolSize: 34, label: {fontSize: 10},
            data: (() => {
              const first = data.points.find((p) => p[4]);
              return first ? [{coord: [first[0], first[1]], value: labels.mqa}] : [];
            })(),
          },
        }],
      });
    },

    // Columns as far apart as the width allows; a node as wide as its column leaves, and
    // the chart as tall as its rows need, so the nodes keep their shape. Redrawn on resize.
    "journey-graph": (chart, data, element) => {
      const columns = Math.max(...data.nodes.map((n) => n.x)) / data.column + 1;
      const rows = Math.max(...data.nodes.map((n) => n.y)) / data.row + 1;
      const gap = Math.min(data.column, (element.clientWidth - 40) / columns);
      const width = Math.max(110, Math.min(170, gap - 60));
      const height = width * 76 / 190;
      const rowGap = height + 40;
      const top = 40 + height / 2, bottom = 10 + height / 2;
      element.style.height = `${Math.round(top + bottom + (rows - 1) * rowGap)}px`;
      chart.resize();
      const names = data.names;
      // A rounded rectangle in a square box (kept in shape): links stop at its left and right edges.
      const shape = {
        symbol: "path://M8,0 H182 A8,8 0 0 1 190,8 V68 A8,8 0 0 1 182,76 H8 A8,8 0 0 1 0,68 V8 A8,8 0 0 1 8,0 Z",
        symbolSize: width,
        symbolKeepAspect: true,
      };
      const counts = (c) => `${escape(names.current)} ${c.current} · ${escape(names.entered)} ${c.entered} · ${escape(names.done)} ${c.done} · ${escape(names.skipped)} ${c.skipped}`;
      chart.setOption({
        color: ["#0b6e4f", "#b54708", "#2e6fbf", "#7a4fd6", "#616e7c"],
        legend: {data: data.categories.map((c) => c.name), top: 0},
        tooltip: {
          formatter: (p) => {
            if (p.dataType !== "node") return escape(p.data.label);
            return `<b>${escape(p.data.id)}</b> · ${escape(p.data.type_label)}<br>${escape(p.data.summary)}<br>${counts(p.data.counts)}`;
          },
        },
        series: [{
          type: "graph",
          layout: "none",
          roam: "move",
          top, bottom, left: width / 2 + 10, right: width / 2 + 10,
          ...shape,
          // A category's own symbol settings replace the series' ones.
          categories: data.categories.map((c) => ({...c, ...shape})),
          edgeSymbol: ["none", "arrow"],
          edgeSymbolSize: 8,
          label: {
            show: true,
            position: "inside",
            width: width - 14,
            overflow: "truncate",
            formatter: (p) => {
              const c = p.data.counts;
              return `{id|${p.data.entry ? "▶ " : ""}${p.data.id}}\n{counts|${names.current} ${c.current} · ${names.entered} ${c.entered}}\n{counts|${names.done} ${c.done} · ${names.skipped} ${c.skipped}}`;
            },
            rich: {
              id: {color: "#fff", fontWeight: "bold", fontSize: 12, lineHeight: 16},
              counts: {color: "#fff", fontSize: 10.5, lineHeight: 14},
            },
          },
          edgeLabel: {
            show: true,
            formatter: (p) => p.data.label,
            fontSize: 10,
            color: "#52606d",
            backgroundColor: "rgba(255, 255, 255, 0.85)",
            width: gap - width - 4,
            overflow: "truncate",
          },
          lineStyle: {color: "#9aa5b1", width: 1.5, opacity: 0.9},
          emphasis: {focus: "adjacency"},
          data: data.nodes.map((n) => ({...n, x: n.x / data.column * gap, y: n.y / data.row * rowGap})),
          links: data.links.map((l) => ({...l, lineStyle: {curveness: l.back ? 0.4 : (l.why === "next" ? 0 : 0.12)}})),
        }],
      });
    },
  };

  // Pages with charts of their own add them here from a script loaded after this one.
  window.HarpoonCharts = CHARTS;

  const fetched = new Map();
  const dataOf = (element) => {
    const {source, url} = element.dataset;
    if (source) return Promise.resolve(JSON.parse(document.getElementById(source).textContent));
    if (!fetched.has(url)) fetched.set(url, fetch(url).then((response) => response.json()));
    return fetched.get(url);
  };

  // Drawn once its animation has finished, so a screenshot (or a test) sees the whole chart.
  const draw = async (element) => {
    const data = await dataOf(element);
    const chart = echarts.init(element);
    const finished = new Promise((resolve) => chart.on("finished", resolve));
    const render = () => CHARTS[element.dataset.chart](chart, data, element);
    render();
    window.addEventListener("resize", () => { chart.resize(); render(); });
    return finished;
  };

  document.addEventListener("DOMContentLoaded", async () => {
    await Promise.all([...document.querySelectorAll("[data-chart]")].map(draw));
    document.body.dataset.chartsReady = "1";
  });
})();
