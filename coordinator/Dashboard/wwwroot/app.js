// Dashboard logic: loads the history from /api/metrics once, then follows /api/events (Server-Sent Events) for
// status and new step points; refetches the history only when the server compacted it or an epoch ended.
"use strict";

const PALETTE = ["#2e90fa", "#f79009", "#12b76a", "#9e77ed", "#f04438", "#0ba5ec", "#ee46bc", "#667085"];
const history = { generation: -1, steps: [], series: {}, epochs: { steps: [], series: {} }, epochPoints: -1 };
let status = null, loading = false, drawQueued = false, lastEpochFetch = 0;

const $ = id => document.getElementById(id);
const num = (v, digits = 4) => v === null || v === undefined ? "–"
  : v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6) ? Number(v).toExponential(digits - 1) : Number(v).toPrecision(digits);
const percent = v => v === null || v === undefined ? "–" : (v * 100).toFixed(2) + "%";
const integer = v => v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US");

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

function latency(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 1e-3 ? (seconds * 1e6).toFixed(0) + " µs" : seconds < 1 ? (seconds * 1e3).toFixed(1) + " ms" : seconds.toFixed(2) + " s";
}

async function loadHistory() {
  if (loading) return;
  loading = true;
  try {
    const response = await fetch("api/metrics", { cache: "no-store" });
    const m = await response.json();
    history.generation = m.steps.generation;
    history.steps = m.steps.steps;
    history.series = m.steps.series;
    history.epochs = m.epochs;
    history.epochPoints = m.epochs.steps.length;
    queueDraw();
  } catch (e) {
    console.warn("history fetch failed", e);
  } finally {
    loading = false;
  }
}

// New points continue the history when the generation matches and nothing was missed; otherwise refetch.
function appendPoints(points) {
  if (!points) return;
  if (points.generation !== history.generation || points.from > history.steps.length) { loadHistory(); return; }
  const skip = history.steps.length - points.from;
  if (points.steps.length <= skip) return;
  history.steps.push(...points.steps.slice(skip));
  for (const [name, values] of Object.entries(points.series))
    (history.series[name] ||= []).push(...values.slice(skip));
  queueDraw();
}

function renderStatus(s) {
  status = s;
  const t = s.training;
  $("state").textContent = t.state;
  $("state").className = "pill " + t.state;
  $("model").textContent = t.model;
  $("step").textContent = integer(t.step);
  $("step").dataset.value = t.step;
  $("total-steps").textContent = integer(t.totalSteps);
  $("progress").style.width = (t.totalSteps > 0 ? Math.min(100, 100 * t.step / t.totalSteps) : 0) + "%";
  $("epoch").textContent = t.epoch > 0 ? `${integer(t.epoch)} / ${integer(t.epochs)}` : "–";
  $("batch").textContent = t.epoch > 0 ? `batch ${integer(t.batch)} / ${integer(t.batchesPerEpoch)}` : "";
  $("elapsed").textContent = duration(t.elapsedSeconds);
  $("eta").textContent = t.state === "finished" ? "done" : duration(t.etaSeconds);
  $("loss").textContent = num(t.loss);
  $("accuracy").textContent = percent(t.accuracy);
  $("rate").textContent = integer(t.samplesPerSecond);
  $("grad-norm").textContent = num(t.gradNorm, 3);
  $("optimizer").textContent = `${s.run.optimizer} · ${s.run.mode}, ${s.run.threads} thread(s)`;
  $("lr").textContent = num(t.learningRate, 3);
  $("clips").textContent = integer(t.clipEvents);
  $("skipped").textContent = integer(t.skippedSteps);
  if (!$("config").textContent) $("config").textContent = JSON.stringify(s.run.config, null, 2);
  renderAlerts(t.alerts);
  renderCluster(s.cluster);
  renderWorkers(s.workers);
  $("messages").replaceChildren(...t.messages.map(m => Object.assign(document.createElement("li"), { textContent: m })));
  // Short epochs end several times a second: refetch for them at most every 2 s.
  if (t.epochPoints !== history.epochPoints && Date.now() - lastEpochFetch > 2000) {
    lastEpochFetch = Date.now();
    loadHistory();
  }
}

function renderAlerts(alerts) {
  $("alerts").hidden = alerts.length === 0;
  $("alert-list").replaceChildren(...alerts.map(a => {
    const li = document.createElement("li");
    li.textContent = (a.active ? "" : "(earlier) ") + a.message;
    li.className = a.active ? "active" : "inactive";
    li.dataset.kind = a.kind;
    return li;
  }));
}

const capital = s => s.charAt(0).toUpperCase() + s.slice(1);

// A badge, with the reason or detail beside it in small type (a lost worker's reason, a hung worker's request).
function badgeCell(className, value, detail) {
  const td = document.createElement("td");
  td.className = className;
  td.append(Object.assign(document.createElement("span"), { textContent: capital(value), className: className + "-" + value }));
  if (detail) td.append(Object.assign(document.createElement("small"), { textContent: detail, className: "detail" }));
  return td;
}

function renderCluster(cluster) {
  $("cluster").textContent = cluster ? `${capital(cluster.run)} · ${cluster.phase}` +
    (cluster.medianStepSeconds === null ? "" : ` · median step ${latency(cluster.medianStepSeconds)}`) : "";
}

function renderWorkers(workers) {
  const rows = workers.map(w => {
    const tr = document.createElement("tr");
    tr.dataset.worker = w.id;
    tr.dataset.health = w.health;
    const text = [w.id, w.address, w.heartbeatAgeSeconds === null ? "–" : w.heartbeatAgeSeconds.toFixed(1) + " s",
      latency(w.lastStepLatencySeconds), integer(w.samplesPerSecond), integer(w.shardsDone), integer(w.errors), w.cores]
      .map(value => Object.assign(document.createElement("td"), { textContent: value }));
    text[7].className = "cores";
    tr.append(text[0], text[1], badgeCell("state", w.state, w.reason), badgeCell("health", w.health, w.healthDetail), ...text.slice(2));
    return tr;
  });
  $("workers").tBodies[0].replaceChildren(...rows);
}

function queueDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => { drawQueued = false; drawCharts(); });
}

function drawCharts() {
  const xs = history.steps, s = history.series, e = history.epochs;
  drawChart($("chart-loss"), [
    { name: "train (per step)", color: PALETTE[0], xs, ys: s.loss || [] },
    { name: "train (epoch)", color: PALETTE[1], xs: e.steps, ys: e.series.trainLoss || [], dots: true },
    { name: "test (epoch)", color: PALETTE[2], xs: e.steps, ys: e.series.testLoss || [], dots: true },
  ], { legend: $("legend-loss"), log: "auto" });
  drawChart($("chart-accuracy"), [
    { name: "train (per step)", color: PALETTE[0], xs, ys: s.accuracy || [] },
    { name: "train (epoch)", color: PALETTE[1], xs: e.steps, ys: e.series.trainAccuracy || [], dots: true },
    { name: "test (epoch)", color: PALETTE[2], xs: e.steps, ys: e.series.testAccuracy || [], dots: true },
  ], { legend: $("legend-accuracy") });
  drawChart($("chart-rate"), [{ name: "samples/s", color: PALETTE[3], xs, ys: s.samplesPerSecond || [] }],
    { legend: $("legend-rate") });
  const layers = status ? status.training.layers : [];
  drawChart($("chart-grad"), [
    ...layers.map((layer, i) => ({ name: "layer " + layer, color: PALETTE[i % PALETTE.length], xs, ys: s["grad:" + layer] || [] })),
    { name: "global", color: "#344054", xs, ys: s.gradNorm || [], dashed: true },
  ], {
    log: true, legend: $("legend-grad"),
    thresholds: status ? [{ y: status.vanishingBelow, label: "vanishing" }, { y: status.explodingAbove, label: "exploding" }] : [],
  });
}

// A run that has ended sends its final state and closes the stream: the page keeps that state and stops listening.
const ENDED = ["finished", "failed", "interrupted"];

function connect() {
  const events = new EventSource("api/events");
  events.onopen = () => { $("connection").textContent = "live"; $("connection").className = "pill conn live"; };
  events.onerror = () => { $("connection").textContent = "reconnecting"; $("connection").className = "pill conn down"; };
  events.onmessage = message => {
    const update = JSON.parse(message.data);
    renderStatus(update.status);
    appendPoints(update.points);
    const training = update.status && update.status.training;
    if (training && ENDED.includes(training.state)) {
      events.close();
      const connection = $("connection");
      connection.textContent = training.endReason ? `${training.state}: ${training.endReason}` : training.state;
      connection.className = "pill conn ended " + training.state;
    }
  };
}

window.addEventListener("resize", queueDraw);
loadHistory().then(connect);
