"use strict";
// Polls /status.json and redraws one table per route. No framework, no external requests.
const fmt = (x, digits) => (x === null || x === undefined ? "–" : x.toFixed(digits));

function row(cells, header) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const cell = document.createElement(header ? "th" : "td");
    cell.textContent = text;
    tr.appendChild(cell);
  }
  return tr;
}

function render(status) {
  document.getElementById("version").textContent = status.version;
  document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  const root = document.getElementById("routes");
  root.replaceChildren();
  for (const route of status.routes) {
    const section = document.createElement("section");
    section.dataset.route = route.name;
    const title = document.createElement("h2");
    title.textContent = route.name + (route.shadow ? ` (shadow ${route.shadow.percent}% to ${route.shadow.variant})` : "");
    section.appendChild(title);
    const table = document.createElement("table");
    table.appendChild(row(["variant", "weight %", "req/s", "errors %", "p50 ms", "p99 ms", "total"], true));
    for (const v of route.variants) {
      const tr = row([v.name, String(v.weight), fmt(v.rate, 1), fmt(v.error_rate * 100, 1),
                      fmt(v.p50_ms, 1), fmt(v.p99_ms, 1), String(v.total)], false);
      tr.dataset.variant = v.name;
      if (v.error_rate > 0) tr.classList.add("bad");
      table.appendChild(tr);
    }
    section.appendChild(table);
    root.appendChild(section);
  }
}

async function refresh() {
  try {
    const resp = await fetch("/status.json", { cache: "no-store" });
    if (resp.ok) render(await resp.json());
  } catch (err) {
    document.getElementById("updated").textContent = "gateway unreachable";
  }
}

refresh();
setInterval(refresh, 1000);
