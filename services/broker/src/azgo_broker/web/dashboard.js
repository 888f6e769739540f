// azgo's dashboard: polls the broker's read-only JSON (/status, /api/*) and draws it.
// Charts are uPlot (vendored, /static/vendor/uplot); the board is SVG drawn here. The rules
// are not restated in the page: /api/game sends, for every move, the points it captured.
"use strict";

const POLL_STATUS_MS = 2000, POLL_CHARTS_MS = 5000, POLL_LISTS_MS = 10000;
const COLOURS = ["#1f6feb", "#d33a2c", "#2e9e44", "#8957e5", "#e6a100", "#444"];
const azgo = window.azgo = { charts: {}, eloPoints: 0, game: null, move: 0, errors: [] };

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}
const fmt = (x, digits = 2) => (x === null || x === undefined) ? "-" : Number(x).toFixed(digits);
const genId = (g) => (g === null || g === undefined || g < 0) ? "-" : String(g).padStart(6, "0");
function ago(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  return s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}
function bytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function every(ms, fn) {
  const run = () => fn().catch((e) => { azgo.errors.push(String(e)); $("#updated").textContent = `error: ${e.message}`; });
  run();
  setInterval(run, ms);
}

// --- status: summary cards and the worker table ---------------------------------------------
function card(label, value) { return el("div", { class: "card" }, el("b", {}, value), label); }

function drawStatus(s) {
  const model = s.model, t = s.totals, r = s.rates, learner = s.learner;
  $("#broker").textContent = `${s.broker.id} · azgo ${s.broker.version} · up ${ago(s.broker.uptime_s)}`;
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  const cards = [
    card("generation", model ? genId(model.generation) : "none"),
    card("games stored", t.games), card("positions stored", t.positions),
    card("games/s", fmt(r.games_per_s)), card("positions/s", fmt(r.positions_per_s, 1)),
    card("network in", bytes(t.bytes_in)), card("store", bytes(t.store_bytes)),
    card("requests refused", t.rejected),  // every refusal (azgo_batches_rejected_total), not only batches
  ];
  if (learner) cards.push(card("learner step", learner.step), card("loss", fmt(learner.loss_total, 3)));
  const latest = s.ratings && s.ratings.latest;
  if (latest) cards.push(card(`Elo (${s.ratings.anchor} = 0)`, `${latest.elo.toFixed(0)} ±${((latest.high - latest.low) / 2).toFixed(0)}`));
  $("#summary").replaceChildren(...cards);

  $("#worker-counts").textContent = Object.entries(s.workers_by_state).map(([k, n]) => `${k} ${n}`).join(" · ");
  const rows = s.workers.map((w) => {
    const tr = el("tr", { "data-worker": w.worker_id, "data-state": w.state },
      el("td", {}, w.worker_id), el("td", {}, w.host), el("td", {}, w.gpu || "-"),
      el("td", {}, el("span", { class: `state state-${w.state}` }, w.state)),
      el("td", {}, genId(w.generation)), el("td", { class: "num" }, w.games_total),
      el("td", { class: "num" }, fmt(w.games_per_s)), el("td", { class: "num" }, fmt(w.nn_evals_per_s, 0)),
      el("td", { class: "num" }, w.outbox), el("td", { class: "num" }, `${ago(w.last_seen_s)} ago`));
    if (w.state === "Error" && w.error) tr.title = w.error;
    return tr;
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "no self-play worker has said hello yet")));
  $("#workers tbody").replaceChildren(...rows);
  const warnings = (learner && learner.health_warnings) || [];
  $("#health-warnings").replaceChildren(...warnings.map((w) => el("div", { class: "warning" }, `⚠ ${w}`)));
}

// --- charts ---------------------------------------------------------------------------------
function chart(id, series, data, opts = {}) {
  const node = $(id);
  const width = Math.max(300, node.clientWidth || 420);
  const old = azgo.charts[id];
  if (old && old.series.length === series.length + 1) { old.setData(data); return old; }
  if (old) old.destroy();
  const u = new uPlot({
    width, height: 220, series: [opts.x || {}, ...series.map((s, i) => ({ stroke: COLOURS[i % COLOURS.length], width: 1.5, spanGaps: true, ...s }))],
    scales: { x: { time: opts.time !== false } }, axes: opts.axes, legend: { live: true },
  }, data, node);
  azgo.charts[id] = u;
  return u;
}

function column(series, name) { const i = series.columns.indexOf(name); return series.rows.map((r) => r[i]); }

async function pollSeries() {
  const s = await getJSON("/api/series?points=300");
  const t = column(s, "t");
  chart("#chart-rate", [{ label: "games/s" }, { label: "positions/s ÷ 10" }],
    [t, column(s, "games_per_s"), column(s, "positions_per_s").map((v) => v === null ? null : v / 10)]);
  chart("#chart-loss", [{ label: "policy" }, { label: "value" }, { label: "total" }],
    [t, column(s, "loss_policy"), column(s, "loss_value"), column(s, "loss_total")]);
  chart("#chart-spp", [{ label: "samples per position" }], [t, column(s, "samples_per_position")]);
  chart("#chart-health", [{ label: "black win share" }, { label: "resigned share" }, { label: "mean moves ÷ 100" }],
    [t, column(s, "black_win_share"), column(s, "resigned_share"), column(s, "mean_moves").map((v) => v === null ? null : v / 100)]);
  chart("#chart-net", [{ label: "kB/s in" }, { label: "sync s", scale: "s" }],
    [t, column(s, "bytes_in_per_s").map((v) => v === null ? null : v / 1000), column(s, "sync_s")],
    { axes: [{}, {}, { scale: "s", side: 1, grid: { show: false } }] });
}

async function pollElo() {
  const e = await getJSON("/api/elo?points=200");
  const gens = e.generations;
  const x = gens.map((g) => g.generation);
  const series = [{ label: "Elo", points: { show: true, size: 6 } },
    { label: "low", dash: [4, 4], width: 1, stroke: "#8fb3f0" }, { label: "high", dash: [4, 4], width: 1, stroke: "#8fb3f0" }];
  const data = [x, gens.map((g) => g.elo), gens.map((g) => g.low), gens.map((g) => g.high)];
  for (const a of e.anchors) {  // an anchor is a level line: GNU Go at its rating, random at 0
    series.push({ label: a.player, dash: [10, 5], width: 1 });
    data.push(x.map(() => a.elo));
  }
  chart("#chart-elo", series, data, { time: false, x: { label: "generation" } });
  azgo.eloPoints = x.length;
  $("#chart-elo").dataset.points = String(x.length);
  $("#elo-note").textContent = x.length ? `${e.total} rated, ${e.anchor} = 0` : "no evaluation yet";
}

// --- games and the board --------------------------------------------------------------------
// a game's key and query: self-play games by store batch and index, evaluation games by SGF file name
const gameKey = (g) => g.kind === "evaluation" ? `eval:${g.sgf}` : `${g.seq}/${g.index}`;
const gameQuery = (g) => g.kind === "evaluation" ? `sgf=${encodeURIComponent(g.sgf)}` : `seq=${g.seq}&index=${g.index}`;

async function pollGames() {
  const games = await getJSON("/api/games?limit=12");
  const rows = games.map((g) => {
    const key = gameKey(g);
    const label = g.kind === "evaluation" ? `${g.black} – ${g.white}` : `batch ${g.seq} #${g.index}`;
    const who = g.kind === "evaluation" ? "evaluation" : `${g.worker_id} · gen ${genId(g.generation)}`;
    const tr = el("tr", { "data-game": key, "data-kind": g.kind }, el("td", {}, g.kind === "evaluation" ? "eval" : "self-play"),
      el("td", {}, label), el("td", {}, who), el("td", { class: "num" }, g.moves), el("td", {}, g.result));
    if (azgo.game && gameKey(azgo.game) === key) tr.classList.add("selected");
    tr.addEventListener("click", () => loadGame(g));
    return tr;
  });
  $("#games tbody").replaceChildren(...rows);
  if (!azgo.game && games.length) await loadGame(games[0]);
}

async function loadGame(ref) {
  const g = await getJSON(`/api/game?${gameQuery(ref)}`);
  azgo.game = g;
  $("#game-title").textContent = g.kind === "evaluation"
    ? `evaluation · ${g.black} (B) – ${g.white} (W) · ${g.result}`
    : `batch ${g.seq} game ${g.index} · gen ${genId(g.generation)} · ${g.worker_id} · ${g.result}`;
  $("#sgf").href = g.sgf_url;
  $("#sgf").setAttribute("download", g.kind === "evaluation" ? g.sgf : `azgo-${g.seq}-${g.index}.sgf`);
  for (const tr of document.querySelectorAll("#games tbody tr")) tr.classList.toggle("selected", tr.dataset.game === gameKey(g));
  const slider = $("#slider");
  slider.max = String(g.moves.length);
  showMove(g.moves.length);
}

function stonesAt(g, k) {  // the stones after the first k moves: 0 empty, 1 black, 2 white
  const n = g.board_size, stones = new Array(n * n).fill(0);
  for (let t = 0; t < k; t++) {
    const m = g.moves[t];
    if (m < n * n) stones[m] = t % 2 === 0 ? 1 : 2;
    for (const p of g.captures[t]) stones[p] = 0;
  }
  return stones;
}

function showMove(k) {
  const g = azgo.game;
  if (!g) return;
  azgo.move = k = Math.max(0, Math.min(k, g.moves.length));
  $("#slider").value = String(k);
  $("#move-label").textContent = `move ${k} / ${g.moves.length}`;
  drawBoard(g.board_size, stonesAt(g, k), k > 0 ? g.moves[k - 1] : null);
}

function drawBoard(n, stones, last) {
  const NS = "http://www.w3.org/2000/svg", svg = $("#board"), step = 100 / (n + 1);
  const node = (tag, attrs) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const at = (i) => step * (i + 1);
  const parts = [];
  for (let i = 0; i < n; i++) {
    parts.push(node("line", { x1: at(0), y1: at(i), x2: at(n - 1), y2: at(i), stroke: "#333", "stroke-width": 0.25 }));
    parts.push(node("line", { x1: at(i), y1: at(0), x2: at(i), y2: at(n - 1), stroke: "#333", "stroke-width": 0.25 }));
  }
  stones.forEach((c, p) => {
    if (!c) return;
    const row = Math.floor(p / n), col = p % n;
    parts.push(node("circle", { cx: at(col), cy: at(row), r: step * 0.47, "data-point": p, class: c === 1 ? "stone black" : "stone white",
      fill: c === 1 ? "#111" : "#f7f7f7", stroke: "#111", "stroke-width": 0.3 }));
    if (p === last) parts.push(node("circle", { cx: at(col), cy: at(row), r: step * 0.18, fill: "none", stroke: "#d33a2c", "stroke-width": 0.6 }));
  });
  svg.replaceChildren(...parts);
}

// --- models ---------------------------------------------------------------------------------
async function pollModels() {
  const m = await getJSON("/api/models?limit=50");
  $("#model-count").textContent = m.total > m.generations.length ? `newest ${m.generations.length} of ${m.total}` : `${m.total}`;
  $("#models tbody").replaceChildren(...m.generations.map((g) => el("tr", { "data-generation": g.id },
    el("td", {}, g.id), el("td", {}, new Date(g.published * 1000).toLocaleString()), el("td", { class: "num" }, bytes(g.size)),
    el("td", {}, el("code", {}, g.sha256)), el("td", {}, el("a", { href: g.url, download: `${g.id}.safetensors` }, "download")))));
}

function wireControls() {
  $("#first").addEventListener("click", () => showMove(0));
  $("#prev").addEventListener("click", () => showMove(azgo.move - 1));
  $("#next").addEventListener("click", () => showMove(azgo.move + 1));
  $("#last").addEventListener("click", () => showMove(Infinity));
  $("#slider").addEventListener("input", (e) => showMove(Number(e.target.value)));
}

wireControls();
every(POLL_STATUS_MS, async () => drawStatus(await getJSON("/status")));
every(POLL_CHARTS_MS, async () => { await pollSeries(); await pollElo(); });
every(POLL_LISTS_MS, async () => { await pollGames(); await pollModels(); });
