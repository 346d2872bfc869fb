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

function analysis(a) {
  const box = document.createElement("div");
  box.className = "analysis";
  box.dataset.phase = a.phase;
  const running = a.phase === "analysing" || a.phase === "paused";
  // Idle shows the last run as history (muted), never as the route's state.
  const last = running ? null : a.last_run;
  if (last) box.dataset.lastOutcome = last.outcome;
  const head = document.createElement("p");
  const step = running
    ? ` · step ${a.step + 1}/${a.steps.length} (${a.canary} at ${a.weight}%)` +
      ` · failed checks ${a.failed_checks}/${a.threshold}` : "";
  head.textContent = `canary analysis: ${a.phase}${step} · source ${a.source}` +
    (a.running_here ? "" : " · runs in another replica");
  box.appendChild(head);
  const reason = document.createElement("p");
  reason.className = "reason muted";
  if (running) {
    reason.textContent = a.reason ? `${a.last_decision}: ${a.reason}` : "";
  } else if (last) {
    reason.textContent = `last run: ${last.outcome.replace("_", " ")} at ${last.finished_at}` +
      ` (step ${last.step + 1}/${a.steps.length}, failed checks ${last.failed_checks}/${a.threshold})` +
      ` · ${last.reason}`;
  }
  box.appendChild(reason);
  const shown = running ? a.last_checks : (last ? last.last_checks : []);
  if (shown && shown.length) {
    const checks = document.createElement("table");
    checks.appendChild(row(["check", "value", "bound", "result"], true));
    for (const c of shown) {
      const result = c.passed === true ? "pass" : c.passed === false ? "FAIL" : (c.detail || "no data");
      const tr = row([c.name, c.value === null ? "–" : c.value.toPrecision(4), c.bound, result], false);
      tr.dataset.check = c.name;
      if (c.passed === false) tr.classList.add("bad");
      checks.appendChild(tr);
    }
    box.appendChild(checks);
  }
  return box;
}

function render(status) {
  document.getElementById("version").textContent = status.version;
  document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  document.getElementById("window").textContent =
    `req/s, errors and latencies are taken over the last ${status.window_s} s`;
  // The file on disk is not what serves (a rejected edit): say so above everything else.
  const file = document.getElementById("file");
  file.hidden = !status.file || status.file.serving;
  file.textContent = file.hidden ? "" :
    `the config file on disk (version ${status.file.version}) is NOT what serves: ${status.file.error}`;
  const root = document.getElementById("routes");
  root.replaceChildren();
  for (const route of status.routes) {
    const section = document.createElement("section");
    section.dataset.route = route.name;
    const title = document.createElement("h2");
    title.textContent = route.name + (route.shadow ? ` (shadow ${route.shadow.percent}% to ${route.shadow.variant})` : "");
    section.appendChild(title);
    const table = document.createElement("table");
    table.appendChild(row(["variant", "weight %", "req/s", "errors %", "p50 ms", "p99 ms", "total", "rotation", "runs (TorchServe model, version)", "ready"], true));
    for (const v of route.variants) {
      const rotation = v.ejected_s === null || v.ejected_s === undefined ? "in" : `ejected (${v.ejected_s.toFixed(0)} s left)`;
      const ready = v.ready.ready === null ? "–" : v.ready.ready ? "yes" : `NOT READY: ${v.ready.detail}`;
      const tr = row([v.name, String(v.weight), fmt(v.rate, 1), fmt(v.error_rate * 100, 1),
                      fmt(v.p50_ms, 1), fmt(v.p99_ms, 1), String(v.total), rotation,
                      `${v.model} ${v.version}`, ready], false);
      tr.dataset.variant = v.name;
      tr.dataset.ready = String(v.ready.ready);
      if (v.error_rate > 0 || rotation !== "in" || v.ready.ready === false) tr.classList.add("bad");
      table.appendChild(tr);
    }
    section.appendChild(table);
    if (route.analysis) section.appendChild(analysis(route.analysis));
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
