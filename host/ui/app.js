// gantry's dashboard: one module, no framework. Pages are drawn from the HTTP API and kept live
// by the daemon's one event stream (`/api/v1/events`); nothing polls. A login (the secret, an
// account, or in mode `none` the daemon's local token) sets an HttpOnly session cookie, and every
// change sends the CSRF token the login answered, so no other site can act through this page.

import { memoryBar, sparkline } from "./charts.js";

const main = document.getElementById("main");
const live = document.getElementById("live");

// ---- small helpers ---------------------------------------------------------------------------

// What a list of children puts on the page: absent ones (null, false) are skipped, not written.
const shown = (children) => children.flat(Infinity).filter((child) => child != null && child !== false);

// Replaces an element's children as h() takes them.
const fill = (node, ...children) => node.replaceChildren(...shown(children));

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of shown(children)) node.append(child instanceof Node ? child : String(child));
  return node;
}

const time = (ms) => (ms ? new Date(ms).toLocaleString() : "");
// Where an attempt runs: its GPUs here, or the provider and its id there (`slurm#4127`).
const where = (a) => (a.remote ? `${a.remote.provider}#${a.remote.id ?? "?"}` : a.gpus.join(","));
const mib = (m) => (m == null ? "?" : m >= 1024 ? `${(m / 1024).toFixed(1)} GiB` : `${m} MiB`);
const esc = encodeURIComponent;

function field(label, input) {
  const id = `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  input.id = id;
  return [h("label", { for: id }, label), input];
}

function showError(where, error) {
  where.replaceChildren(h("p", { class: "error", role: "alert" }, error.message || String(error)));
}

// ---- the API -----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail !== undefined ? body.detail : body;
    super(Array.isArray(detail) ? detail.join("\n") : typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const csrf = sessionStorage.getItem("gantry-csrf");
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  if (response.status === 401) {
    showLogin();
    throw new ApiError(401, parsed);
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

// ---- the event stream: one per page, reconnecting with backoff ------------------------------------

// A page registers for events, and for cleanup, with the element it draws into: a page left
// while it was still loading (its element no longer in the document) registers nothing.
const listeners = new Map();
function on(root, kind, handler) {
  if (!root.isConnected) return;
  if (!listeners.has(kind)) listeners.set(kind, new Set());
  listeners.get(kind).add(handler);
}
function clearListeners() { listeners.clear(); }

let stream = null, retry = 1000, staleSince = null;
function connect() {
  if (loginShown) return;
  if (stream) stream.close();
  stream = new EventSource("/api/v1/events", { withCredentials: true });
  stream.onopen = () => {
    retry = 1000;
    const wasStale = staleSince !== null;
    staleSince = null;
    live.className = "live";
    live.textContent = "live";
    if (wasStale) route();
  };
  stream.onerror = () => {
    stream.close();
    stream = null;
    if (loginShown) return;
    staleSince ??= Date.now();
    live.className = "stale";
    live.textContent = `reconnecting; stale since ${new Date(staleSince).toLocaleTimeString()}`;
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 30_000);
  };
  for (const kind of ["job", "run", "gpus", "node", "lagged"]) {
    stream.addEventListener(kind, (event) => {
      let data = null;
      try { data = JSON.parse(event.data); } catch { data = event.data; }
      for (const handler of listeners.get(kind) ?? []) handler(data);
    });
  }
}

// Runs `work` once per burst of events instead of once per event.
function debounce(work, ms = 250) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(work, ms); };
}

// ---- login -----------------------------------------------------------------------------------------

let loginShown = false;
async function showLogin() {
  if (loginShown) return;
  loginShown = true;
  if (stream) { stream.close(); stream = null; }
  live.className = "";
  live.textContent = "signed out";
  let mode = "secret";
  try { mode = (await (await fetch("/api/auth/check")).json()).mode; } catch { /* the form still works */ }
  const user = h("input", { name: "username", autocomplete: "username", type: "email" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const message = h("div");
  const hint = {
    none: "This daemon belongs to the user running it: paste the token from local.token in its state directory.",
    secret: "Enter the server's secret.",
    users: "Log in with your account.",
  }[mode];
  const form = h("form", { class: "grid", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await login(password.value, mode === "users" ? user.value : undefined);
    } catch (error) { showError(message, error); }
  } },
  mode === "users" ? field("E-mail", user) : null,
  field(mode === "none" ? "Token" : "Password", password),
  h("div", { class: "wide" }, h("button", { type: "submit" }, "Log in")),
  h("div", { class: "wide" }, message));
  main.replaceChildren(h("h1", {}, "Log in"), h("p", { class: "muted" }, hint), form);
  password.focus();
}

async function login(password, username) {
  const response = await fetch("/api/auth/login", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(username ? { username, password } : { password }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  sessionStorage.setItem("gantry-csrf", body.csrf_token);
  loginShown = false;
  connect();
  route();
}

// ---- pages -----------------------------------------------------------------------------------------

const pages = {
  gpus: gpusPage, jobs: jobsPage, job: jobPage, queues: queuesPage, files: filesPage,
  rules: rulesPage, logs: logsPage, plugins: pluginsPage, providers: providersPage, account: accountPage, nodes: nodesPage,
};

// Seed 001/004's console addresses (`/ui/gpu`, `/ui/command`, …) open the matching page.
const SEED_PAGES = { gpu: "gpus", command: "files", state: "queues", rule: "rules", setting: "rules", log: "logs" };
function seedPage() {
  return SEED_PAGES[location.pathname.replace(/^\/ui\/?/, "").replace(/\/$/, "")];
}

let leaving = [];
function onLeave(root, cleanup) {
  if (root.isConnected) leaving.push(cleanup);
  else cleanup();
}

async function route() {
  if (loginShown) return;
  for (const cleanup of leaving) cleanup();
  leaving = [];
  clearListeners();
  const [name, arg] = (location.hash.replace(/^#\/?/, "").split("?")[0] || seedPage() || "gpus").split("/");
  const page = pages[name] ?? gpusPage;
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${name === "job" ? "jobs" : name}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  // Each visit draws into an element of its own, so a page still loading when it was left
  // can't draw over the next one.
  const root = h("div");
  main.replaceChildren(root);
  try {
    await page(arg, root);
  } catch (error) {
    if (error.status !== 401 && root.isConnected) showError(root, error);
  }
}

// GPUs: a card per GPU, live from the `gpus` event; the host; "would a job of N GiB start now?".
async function gpusPage(_, root) {
  const node = await api("GET", "/api/v1/node");
  const history = new Map();
  await Promise.all(node.gpus.map(async (g) => {
    const index = g.reading.index;
    try { history.set(index, (await api("GET", `/api/v1/gpus/${index}`)).history); } catch { history.set(index, []); }
  }));
  let progress = new Map();
  const loadProgress = async () => {
    try {
      const status = await api("GET", "/api/v1/gpu/status");
      progress = new Map(status.data.gpus.map((g) => [g.gpu_id, g.task_progress]));
    } catch { progress = new Map(); }
  };
  await loadProgress();
  const cards = h("div", { class: "cards", id: "gpu-cards" });
  const hostBlock = h("p", { class: "muted", id: "host" });
  const helper = h("div", { class: "card" });
  let gpus = node.gpus;
  const draw = () => {
    cards.replaceChildren(...gpus.map((g) => gpuCard(g, history.get(g.reading.index) ?? [], progress)));
    helperResult();
  };
  const showHost = (node) => {
    const host = node.host;
    hostBlock.textContent = `${host.hostname} · ${host.cpu_cores} cores, CPU ${host.cpu_percent.toFixed(0)} % · load ${host.load_average.map((l) => l.toFixed(2)).join(" ")} · memory ${mib(host.memory_used_mib)} of ${mib(host.memory_total_mib)}${node.simulated ? " · simulated GPUs" : ""}`;
  };
  showHost(node);

  const need = h("input", { type: "number", min: "0", step: "0.5", value: "8" });
  const count = h("input", { type: "number", min: "1", step: "1", value: "1" });
  const answer = h("p", { id: "fit-answer", role: "status" });
  function helperResult() {
    const wantMib = Math.round(Number(need.value) * 1024), wantGpus = Math.max(1, Number(count.value) | 0);
    const free = (g) => g.reading.memory_free_mib - (g.reading.memory_reserved_mib ?? 0);
    const fits = gpus.filter((g) => g.reading.status === "available" && free(g) >= wantMib).sort((a, b) => free(b) - free(a));
    answer.textContent = fits.length >= wantGpus
      ? `A job needing ${wantGpus} GPU(s) with ${mib(wantMib)} each would start now on GPU ${fits.slice(0, wantGpus).map((g) => g.reading.index).join(", ")} (free memory now; the policy decides).`
      : `A job needing ${wantGpus} GPU(s) with ${mib(wantMib)} each would wait: ${fits.length} GPU(s) have that much free now.`;
  }
  need.addEventListener("input", helperResult);
  count.addEventListener("input", helperResult);
  helper.append(h("h3", {}, "Would my job start now?"), h("form", { class: "grid", onsubmit: (e) => e.preventDefault() }, field("Memory per GPU (GiB)", need), field("GPUs", count)), answer);

  root.replaceChildren(h("h1", {}, "GPUs"), hostBlock, cards, h("h2", {}, "Free GPUs"), helper);
  draw();
  // What bench/dashboard.py reads as the first meaningful render.
  if (performance.getEntriesByName("gantry:gpus-drawn").length === 0) performance.mark("gantry:gpus-drawn");
  // Training progress and the host are read again when the GPUs change, at most once a second.
  const refreshProgress = debounce(async () => {
    await loadProgress();
    draw();
    try { showHost(await api("GET", "/api/v1/node")); } catch { /* the next change tries again */ }
  }, 1000);
  on(root, "gpus", (summaries) => {
    gpus = summaries;
    for (const g of summaries) {
      const r = g.reading;
      if (r.status !== "available") continue;
      const list = history.get(r.index) ?? [];
      const foreign = r.processes.filter((p) => p.job == null).reduce((sum, p) => sum + (p.used_memory_mib ?? 0), 0);
      list.push({ at_ms: Date.now(), memory_used_mib: r.memory_used_mib, memory_foreign_mib: foreign, utilization_gpu: r.utilization_gpu });
      while (list.length > 0 && list[0].at_ms < Date.now() - 600_000) list.shift();
      history.set(r.index, list);
    }
    draw();
    refreshProgress();
  });
}

function gpuCard(summary, samples, progress) {
  const r = summary.reading;
  if (r.status !== "available") {
    return h("section", { class: "card", "data-gpu": r.index }, h("h3", {}, `GPU ${r.index}`), h("p", { class: "error" }, `unavailable: ${r.error ?? r.reason ?? "the driver does not answer"}`));
  }
  const ours = r.processes.filter((p) => p.job != null).reduce((sum, p) => sum + (p.used_memory_mib ?? 0), 0);
  const others = Math.max(0, r.memory_used_mib - ours);
  const task = progress.get(r.index);
  const rows = r.processes.map((p) => h("tr", { "data-pid": p.pid },
    h("td", {}, p.user ?? "?"), h("td", {}, p.pid), h("td", {}, mib(p.used_memory_mib)),
    h("td", {}, p.job != null ? h("a", { href: `#/job/${p.job}` }, `job ${p.job}`) : ""),
    h("td", { class: "muted" }, (p.command ?? "").slice(0, 60))));
  return h("section", { class: "card", "data-gpu": r.index, "aria-label": `GPU ${r.index}` },
    h("h3", {}, `GPU ${r.index} · ${r.name}`),
    h("div", { class: "row" },
      h("span", {}, `${r.utilization_gpu ?? "?"} % util`),
      h("span", {}, `${r.temperature_c ?? "?"} °C`),
      h("span", {}, `${r.power_draw_w != null ? r.power_draw_w.toFixed(0) : "?"} / ${r.power_limit_w != null ? r.power_limit_w.toFixed(0) : "?"} W`),
      h("span", {}, `${mib(r.memory_used_mib)} of ${mib(r.memory_total_mib)}`)),
    memoryBar(ours, others, r.memory_total_mib),
    h("div", { class: "legend row muted" }, h("span", { class: "ours" }, `jobs ${mib(ours)}`), h("span", { class: "others" }, `others ${mib(others)}`), h("span", { class: "free" }, `free ${mib(r.memory_free_mib)}`)),
    sparkline(samples, r.memory_total_mib),
    task ? h("p", {}, `training: ${task.progress != null ? task.progress.toFixed(1) + " %" : ""} ${task.step != null ? `step ${task.step}/${task.total_steps ?? "?"}` : ""} ${task.loss != null ? `loss ${task.loss}` : ""}`) : null,
    r.processes.length === 0 ? h("p", { class: "muted" }, "no processes")
      : h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "user"), h("th", {}, "pid"), h("th", {}, "memory"), h("th", {}, "job"), h("th", {}, "command"))), h("tbody", {}, rows))));
}

// Jobs: filters, pages, live updates, and the submit form.
async function jobsPage(_, root) {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const state = h("select", {}, ["", "waiting", "held", "running", "succeeded", "failed", "cancelled"].map((s) => h("option", { value: s, selected: params.get("state") === s }, s || "any")));
  const queue = h("input", { value: params.get("queue") ?? "" });
  const owner = h("input", { value: params.get("owner") ?? "" });
  const run = h("input", { type: "number", min: "1", value: params.get("run") ?? "" });
  const table = h("div", { class: "scroll" });
  const pager = h("div", { class: "row" });
  const limit = 50;
  let offset = Number(params.get("offset") ?? 0);
  const load = async () => {
    const query = new URLSearchParams({ offset, limit });
    if (state.value) query.set("state", state.value);
    if (queue.value) query.set("queue", queue.value);
    if (owner.value) query.set("owner", owner.value);
    if (run.value) query.set("run", run.value);
    if (params.get("array")) query.set("array", params.get("array"));
    const page = await api("GET", `/api/v1/jobs?${query}`);
    table.replaceChildren(jobTable(page.jobs));
    pager.replaceChildren(
      h("span", { class: "muted" }, `${page.total === 0 ? 0 : offset + 1}–${offset + page.jobs.length} of ${page.total}`),
      h("button", { class: "plain", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - limit); load(); } }, "Newer"),
      h("button", { class: "plain", disabled: offset + limit >= page.total, onclick: () => { offset += limit; load(); } }, "Older"));
  };
  const filters = h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); offset = 0; load(); } },
    ...field("State", state), ...field("Queue", queue), ...field("Owner", owner), ...field("Run", run), h("button", { type: "submit" }, "Filter"));
  // On a federation master, the nodes it may submit on for the caller.
  const fleet = (await api("GET", "/api/v1/nodes")).filter((n) => n.accepts_actions).map((n) => n.name);
  root.replaceChildren(h("h1", {}, "Jobs"), filters, table, pager, h("h2", {}, "Submit a job"), submitForm(fleet));
  await load();
  on(root, "job", debounce(load));
}

function jobTable(jobs) {
  return h("table", { id: "jobs" },
    h("thead", {}, h("tr", {}, ["id", "state", "owner", "queue", "GPUs", "memory", "tries", "command"].map((c) => h("th", {}, c)))),
    h("tbody", {}, jobs.map((j) => {
      const attempt = j.attempts[j.attempts.length - 1];
      return h("tr", { "data-job": j.id },
        h("td", {}, h("a", { href: `#/job/${j.id}` }, j.id), j.array ? h("span", { class: "muted" }, ` (${j.array.id}.${j.array.index})`) : null),
        h("td", { class: `state-${j.state}` }, j.state),
        h("td", {}, j.spec.owner ?? ""),
        h("td", {}, j.queue),
        h("td", {}, attempt ? where(attempt) : ""),
        h("td", {}, mib(j.memory_mib)),
        h("td", {}, j.attempts.length),
        h("td", {}, j.redacted ? h("span", { class: "muted" }, "(not yours to see)") : j.spec.commands.join(" && ").slice(0, 120)));
    })));
}

// A job here (`12`) or on a federation node through this master (`a1:12`): its API route.
function jobRoute(ref) {
  const at = String(ref).lastIndexOf(":");
  return at < 0 ? `/api/v1/jobs/${esc(ref)}` : `/api/v1/nodes/${esc(ref.slice(0, at))}/jobs/${esc(ref.slice(at + 1))}`;
}

function submitForm(fleet = []) {
  const node = h("select", {}, h("option", { value: "" }, "this server"), fleet.length ? h("option", { value: "any" }, "any node with room") : null, fleet.map((n) => h("option", { value: n }, n)));
  const commands = h("textarea", { rows: "3", required: true, placeholder: "python train.py --lr 3e-4" });
  const queue = h("input", { placeholder: "optional" });
  const gpus = h("input", { value: "1", pattern: "\\d+(\\.\\.\\d+)?", title: "N or MIN..MAX" });
  const memory = h("input", { type: "number", min: "0", value: "0" });
  const retries = h("input", { type: "number", min: "0", placeholder: "the rules' default" });
  const priority = h("input", { type: "number", value: "0" });
  const after = h("input", { placeholder: "job ids, comma-separated" });
  const env = h("textarea", { rows: "2", placeholder: "KEY=value, one per line" });
  const message = h("div", { role: "status" });
  return h("form", { class: "grid", id: "submit", onsubmit: async (event) => {
    event.preventDefault();
    const [min, max] = gpus.value.split("..").map(Number);
    const spec = {
      commands: commands.value.split("\n").filter((l) => l.trim() !== ""),
      gpus: { min, max: max || min },
      memory_mib: Number(memory.value),
      priority: Number(priority.value),
    };
    if (queue.value) spec.queue = queue.value;
    if (retries.value !== "") spec.retries = Number(retries.value);
    if (after.value.trim()) spec.after = after.value.split(",").map((s) => Number(s.trim()));
    const vars = env.value.split("\n").filter((l) => l.includes("="));
    if (vars.length) spec.env = Object.fromEntries(vars.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    try {
      const answer = await api("POST", node.value ? `/api/v1/nodes/${esc(node.value)}/jobs` : "/api/v1/jobs", spec);
      const ref = answer.node ? `${answer.node}:${answer.ids[0]}` : `${answer.ids[0]}`;
      message.replaceChildren(h("span", { class: "notice" }, "submitted: "), h("a", { href: `#/job/${ref}` }, `job ${ref}`));
    } catch (error) { showError(message, error); }
  } },
  ...field("Commands (one per line)", commands), ...field("Queue", queue), ...field("GPUs (N or MIN..MAX)", gpus),
  ...field("Memory per GPU (MiB)", memory), ...field("Retries", retries), ...field("Priority", priority),
  ...field("After jobs", after), ...field("Environment", env), ...(fleet.length ? field("Node", node) : []),
  h("div", { class: "wide" }, h("button", { type: "submit" }, "Submit")), h("div", { class: "wide" }, message));
}

// One job: its attempts, actions and its log, followed live. A job on another node (`a1:12`)
// is shown and acted on through this master, which acts as the caller there.
async function jobPage(id, root) {
  const base = jobRoute(id);
  const remote = String(id).includes(":");
  const view = h("div");
  const log = h("pre", { class: "log", id: "log", "aria-live": "off" });
  const message = h("div", { role: "status" });
  const draw = async () => {
    const job = await api("GET", base);
    const act = (verb) => h("button", { class: "plain", onclick: async () => {
      try { await api("POST", `${base}/${verb}`); message.textContent = `${verb}: done`; draw(); } catch (error) { showError(message, error); }
    } }, verb);
    fill(view,
      h("p", {}, h("span", { class: `state-${job.state}`, id: "job-state" }, job.state), " · queue ", job.queue, " · owner ", job.spec.owner ?? "", " · submitted ", time(job.submitted_ms)),
      job.array ? h("p", { class: "muted" }, `element ${job.array.index} of array `, h("a", { href: `#/jobs?array=${job.array.id}` }, `${job.array.id}`)) : null,
      job.usage ? h("p", { class: "muted", id: "job-usage" }, `${job.usage.gpu_hours.toFixed(3)} GPU-hours · peak GPU memory ${mib(job.usage.gpu_memory_peak_mib)}`) : null,
      job.reason ? h("p", { class: "muted" }, job.reason) : null,
      job.redacted ? h("p", { class: "muted" }, "Not yours: its commands, environment and log are not shown.") : h("pre", { class: "log" }, job.spec.commands.join("\n")),
      h("div", { class: "row" }, act("cancel"), act("hold"), act("release"), act("retry")),
      message,
      h("h2", {}, "Attempts"),
      h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, ["#", "where", "started", "ended", "exit", "peak RSS", "peak GPU memory", "note"].map((c) => h("th", {}, c)))),
        h("tbody", {}, job.attempts.map((a) => h("tr", {}, h("td", {}, a.number), h("td", {}, where(a), a.remote?.state ? h("span", { class: "muted" }, ` ${a.remote.state}`) : null), h("td", {}, time(a.started_ms)), h("td", {}, time(a.ended_ms)),
          h("td", {}, a.exit_code ?? (a.signal != null ? `signal ${a.signal}` : "")), h("td", {}, a.peak_rss_kib != null ? mib(Math.round(a.peak_rss_kib / 1024)) : ""),
          h("td", {}, mib(a.gpu_memory_peak_mib)), h("td", {}, a.note ?? "")))))));
    return job;
  };
  root.replaceChildren(h("h1", {}, `Job ${id}`), view, h("h2", {}, "Log"), log);
  const job = await draw();
  // A node's jobs change as its reports reach this master.
  const changes = remote ? "node" : "job";
  on(root, changes, debounce(draw));
  if (job.redacted || job.attempts.length === 0) {
    log.textContent = job.redacted ? "" : "(no attempt yet; the log appears when it starts)";
    if (!job.redacted) on(root, changes, debounce(() => { if (location.hash === `#/job/${id}`) route(); }, 500));
    return;
  }
  if (remote) {
    // Page by page through the master, until the attempt has ended.
    let offset = 0;
    let stopped = false;
    onLeave(root, () => { stopped = true; });
    while (!stopped) {
      const chunk = await api("GET", `${base}/log?offset=${offset}`);
      log.append(chunk.data);
      if (chunk.data) log.scrollTop = log.scrollHeight;
      if (chunk.complete) { draw(); break; }
      if (chunk.next_offset === offset) await new Promise((done) => setTimeout(done, 1000));
      offset = chunk.next_offset;
    }
    return;
  }
  const follow = new EventSource(`/api/v1/jobs/${esc(id)}/log?follow=true`, { withCredentials: true });
  follow.addEventListener("log", (event) => {
    const chunk = JSON.parse(event.data);
    log.append(chunk.data);
    log.scrollTop = log.scrollHeight;
  });
  follow.addEventListener("end", () => follow.close());
  follow.onerror = () => follow.close();
  onLeave(root, () => follow.close());
}

// Queues and runs (seed 004's state page, seed 001's schedulers).
async function queuesPage(_, root) {
  const body = h("div");
  const message = h("div", { role: "status" });
  const draw = async () => {
    const [runs, queues, files, waiting] = await Promise.all([api("GET", "/api/v1/runs"), api("GET", "/api/v1/queues"), api("GET", "/api/v1/command-files"), api("GET", "/api/v1/jobs?state=waiting&limit=200")]);
    // The order a pass offers them in: priority, then (not shown) the owner's recent use, then age.
    const order = waiting.jobs.slice().sort((a, b) => b.spec.priority - a.spec.priority || a.id - b.id);
    const start = (mode, index) => h("button", { class: "plain", onclick: async () => {
      try { await api("POST", `/api/scheduler/${mode}/start?config_index=${index}`); message.textContent = `started ${mode} file ${index}`; draw(); } catch (error) { showError(message, error); }
    } }, "start");
    body.replaceChildren(
      h("h2", {}, "Runs"),
      runs.length === 0 ? h("p", { class: "muted" }, "No runs yet.") : h("div", { class: "scroll" }, h("table", { id: "runs" },
        h("thead", {}, h("tr", {}, ["run", "file", "mode", "state", "jobs", "done", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, runs.map((r) => h("tr", {}, h("td", {}, r.id), h("td", {}, r.file), h("td", {}, r.mode), h("td", {}, r.state), h("td", {}, r.counts.total),
          h("td", {}, r.counts.succeeded + r.counts.failed + r.counts.cancelled),
          h("td", {}, r.state === "running" ? h("button", { class: "plain", onclick: async () => {
            try { await api("POST", `/api/v1/runs/${r.id}/stop`); draw(); } catch (error) { showError(message, error); }
          } }, "stop") : "")))))),
      h("h2", {}, "Queues"),
      queues.length === 0 ? h("p", { class: "muted" }, "No queues yet.") : h("div", { class: "scroll" }, h("table", { id: "queues" },
        h("thead", {}, h("tr", {}, ["queue", "waiting", "running", "done", "parallelism", "backoff until", "last error"].map((c) => h("th", {}, c)))),
        h("tbody", {}, queues.map((q) => {
          const parallelism = h("input", { type: "number", min: "1", value: q.parallelism, "aria-label": `parallelism of ${q.name}`, style: "width: 5rem" });
          parallelism.addEventListener("change", async () => {
            try { await api("PUT", `/api/v1/queues/${esc(q.name)}`, { parallelism: Number(parallelism.value) }); } catch (error) { showError(message, error); }
          });
          return h("tr", {}, h("td", {}, q.name), h("td", {}, q.counts.waiting + q.counts.held), h("td", {}, q.counts.running),
            h("td", {}, q.counts.succeeded + q.counts.failed + q.counts.cancelled), h("td", {}, parallelism), h("td", {}, time(q.backoff_until_ms)), h("td", {}, q.last_error ?? ""));
        })))),
      h("h2", {}, "Waiting, in the order they start"),
      order.length === 0 ? h("p", { class: "muted" }, "Nothing waits.") : h("div", { class: "scroll" }, h("table", { id: "waiting" },
        h("thead", {}, h("tr", {}, ["job", "owner", "queue", "priority", "why it waits"].map((c) => h("th", {}, c)))),
        h("tbody", {}, order.map((j) => {
          const priority = h("input", { type: "number", value: j.spec.priority, "aria-label": `priority of job ${j.id}`, style: "width: 5rem" });
          priority.addEventListener("change", async () => {
            try { await api("PATCH", `/api/v1/jobs/${j.id}`, { priority: Number(priority.value) }); } catch (error) { showError(message, error); }
          });
          return h("tr", { "data-job": j.id }, h("td", {}, h("a", { href: `#/job/${j.id}` }, j.id)), h("td", {}, j.spec.owner ?? ""), h("td", {}, j.queue), h("td", {}, priority), h("td", { class: "muted" }, j.reason ?? ""));
        })))),
      h("h2", {}, "Start a command file"),
      h("table", {}, h("tbody", {}, [...files.single.map((f) => ["single", f]), ...files.multi.map((f) => ["multi", f])].filter(([, f]) => f.exists).map(([mode, f]) =>
        h("tr", {}, h("td", {}, mode), h("td", {}, f.file_name), h("td", {}, start(mode, f.index)))))));
  };
  root.replaceChildren(h("h1", {}, "Queues & runs"), message, body);
  await draw();
  const redraw = debounce(draw, 400);
  on(root, "job", redraw);
  on(root, "run", redraw);
}

// Command files (seed 001's command page): edit as text, checked by the parser plugin.
async function filesPage(_, root) {
  const list = h("div");
  const editor = h("div");
  const drawList = async () => {
    const files = await api("GET", "/api/v1/command-files");
    const entries = [...files.single.map((f) => ["single", f]), ...files.multi.map((f) => ["multi", f])];
    list.replaceChildren(h("table", {}, h("tbody", {}, entries.map(([mode, f]) => h("tr", {},
      h("td", {}, mode), h("td", {}, f.exists ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); edit(mode, f.index); } }, f.file_name) : h("span", { class: "muted" }, `${f.file_name} (none yet)`)))))),
    h("div", { class: "row" }, ["single", "multi"].map((mode) => h("button", { class: "plain", onclick: async () => {
      try { const view = await api("POST", `/api/v1/command-files/${mode}`); await drawList(); edit(mode, view.index); } catch (error) { showError(editor, error); }
    } }, `new ${mode} file`))));
  };
  const edit = async (mode, index) => {
    const view = await api("GET", `/api/v1/command-files/${mode}/${index}`);
    const text = h("textarea", { id: "command-text", spellcheck: "false", "aria-label": `${view.path}` });
    text.value = view.text;
    const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
    const problems = h("ul", { class: "diagnostics", id: "diagnostics" });
    const message = h("div", { role: "status" });
    let bad = new Set();
    const numbers = () => {
      const lines = text.value.split("\n").length;
      gutter.replaceChildren(...Array.from({ length: lines }, (_, i) => h("div", { class: bad.has(i + 1) ? "bad" : null }, i + 1)));
    };
    text.addEventListener("input", numbers);
    text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });
    numbers();
    const save = async () => {
      try {
        await api("PUT", `/api/v1/command-files/${mode}/${index}`, { text: text.value });
        bad = new Set();
        problems.replaceChildren();
        message.replaceChildren(h("span", { class: "notice" }, "saved"));
      } catch (error) {
        const lines = Array.isArray(error.body?.detail) ? error.body.detail : [error.message];
        bad = new Set(lines.map((l) => Number((/:(\d+):\d+:/.exec(l) ?? [])[1])).filter((n) => n > 0));
        problems.replaceChildren(...lines.map((l) => h("li", {}, l)));
        message.replaceChildren(h("span", { class: "error" }, "not saved: the parser found problems"));
      }
      numbers();
    };
    editor.replaceChildren(h("h2", {}, view.path), h("div", { class: "editor" }, gutter, text), problems, message,
      h("div", { class: "row" }, h("button", { onclick: save }, "Save"),
        h("button", { class: "plain", onclick: async () => { try { await api("POST", `/api/v1/command-files/${mode}/${index}/reset`); edit(mode, index); } catch (error) { showError(message, error); } } }, "Reset to backup"),
        h("button", { class: "plain", onclick: async () => { try { await api("DELETE", `/api/v1/command-files/${mode}/${index}`); editor.replaceChildren(); drawList(); } catch (error) { showError(message, error); } } }, "Delete")));
  };
  root.replaceChildren(h("h1", {}, "Command files"), list, editor);
  await drawList();
}

// Rules (applied at the next pass) and settings (at the next start).
async function rulesPage(_, root) {
  const [rules, settings] = await Promise.all([api("GET", "/api/v1/rules"), api("GET", "/api/v1/settings")]);
  const message = h("div", { role: "status", id: "rules-message" });
  const inputs = new Map();
  const rulesForm = h("form", { class: "grid", id: "rules", onsubmit: async (event) => {
    event.preventDefault();
    const changes = {};
    for (const [key, [input, before]] of inputs) {
      if (input.value === before) continue;
      try { changes[key] = JSON.parse(input.value); } catch { changes[key] = input.value; }
    }
    try {
      const saved = await api("PUT", "/api/v1/rules", changes);
      for (const [key, [input]] of inputs) {
        if (key in saved) { input.value = JSON.stringify(saved[key]); inputs.set(key, [input, input.value]); }
      }
      message.replaceChildren(h("span", { class: "notice" }, "saved; the next scheduling pass uses them"));
    } catch (error) { showError(message, error); }
  } }, Object.entries(rules).map(([key, value]) => {
    const text = JSON.stringify(value);
    const input = h("input", { name: key, value: text });
    inputs.set(key, [input, text]);
    return field(key, input);
  }), h("div", { class: "wide" }, h("button", { type: "submit" }, "Save rules")));
  const settingsRows = Object.entries(settings).map(([key, s]) => {
    const input = h("input", { value: JSON.stringify(s.value), "aria-label": key });
    return h("tr", {}, h("td", {}, key), h("td", {}, input), h("td", { class: "muted" }, s.description, s.warning ? h("div", { class: "error" }, s.warning) : null),
      h("td", {}, s.requires_restart ? "applies after restart" : "applies now"),
      h("td", {}, h("button", { class: "plain", onclick: async () => {
        let value; try { value = JSON.parse(input.value); } catch { value = input.value; }
        try { const answer = await api("PUT", "/api/v1/settings", { [key]: value }); message.replaceChildren(h("span", { class: "notice" }, answer.message)); } catch (error) { showError(message, error); }
      } }, "Save")));
  });
  root.replaceChildren(h("h1", {}, "Rules & settings"), message, h("h2", {}, "Rules"), h("p", { class: "muted" }, "Values in JSON (numbers, true/false, \"text\", null)."), rulesForm,
    h("h2", {}, "Settings"), h("div", { class: "scroll" }, h("table", {}, h("tbody", {}, settingsRows))));
}

// Logs (seed 001's log page): bindings and a viewer.
async function logsPage(_, root) {
  const bindings = await api("GET", "/api/log/bindings");
  const viewer = h("pre", { class: "log" });
  const show = async (b) => {
    try {
      const answer = await api("GET", `/api/log/content?mode=${b.mode}&config_index=${b.config_index}&queue_id=${b.queue_id}&process_index=${b.process_index}&lines=500`);
      viewer.textContent = answer.content;
    } catch (error) { showError(viewer, error); }
  };
  const rows = Object.values(bindings).map((b) => h("tr", {}, h("td", {}, `${b.mode} ${b.config_index}, queue ${b.queue_id}, process ${b.process_index}`), h("td", {}, b.log_path), h("td", {}, h("button", { class: "plain", onclick: () => show(b) }, "show"))));
  root.replaceChildren(h("h1", {}, "Logs"), h("p", { class: "muted" }, "A job's own log follows live on its page; bound logs are read when shown."),
    rows.length === 0 ? h("p", { class: "muted" }, "No log bindings.") : h("table", {}, h("tbody", {}, rows)), viewer);
}

// Plugins: what is loaded, its health, and a reload.
async function pluginsPage(_, root) {
  const table = h("div", { class: "scroll" });
  const message = h("div", { role: "status" });
  // What a plugin may do, as `gantry plugin list` says it: its bounds, then each grant.
  const may = (m) => {
    if (!m) return "";
    const grants = [["env", m.env], ["read", m.read_only_dirs], ["http", m.http_base_urls]].filter(([, v]) => v.length).map(([what, v]) => `${what} ${v.join(" ")}`);
    const bounds = [`${m.timeout_ms} ms a call`, `${m.memory_mib} MiB`].concat(m.max_jobs == null ? [] : [`${m.max_jobs} jobs a file`]);
    return bounds.concat(grants.length ? grants : ["no files, network or environment"]).join("; ");
  };
  const draw = (plugins) => table.replaceChildren(h("table", {}, h("thead", {}, h("tr", {}, ["name", "kind", "version", "WIT", "state", "calls", "failures", "may", "last error"].map((c) => h("th", {}, c)))),
    h("tbody", {}, plugins.map((p) => h("tr", {}, h("td", {}, p.name), h("td", {}, p.kind), h("td", {}, p.version ?? ""), h("td", {}, p.wit_version ?? ""), h("td", {}, p.state ?? ""), h("td", {}, p.calls ?? ""), h("td", {}, p.failures ?? ""), h("td", {}, may(p.may)), h("td", { class: "error" }, p.last_error ?? ""))))));
  draw(await api("GET", "/api/v1/plugins"));
  root.replaceChildren(h("h1", {}, "Plugins"), h("button", { onclick: async () => { try { draw(await api("POST", "/api/v1/plugins/reload")); message.textContent = "reloaded"; } catch (error) { showError(message, error); } } }, "Reload plugins"), message, table);
}

// A remote attempt's cost so far at its provider's price, e.g. "0.0125 EUR (3 EUR/h)".
function cost(c) {
  if (!c) return "";
  return `${c.total.toFixed(4)} ${c.currency} (${c.per_hour} ${c.currency}/h)`;
}

// Providers: where jobs go when they leave this server, whether each answers, and the jobs
// running there now.
async function providersPage(_, root) {
  const list = h("div", { class: "scroll", id: "providers" });
  const running = h("div", { class: "scroll", id: "remote-jobs" });
  const options = (o) => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(" ");
  const load = async () => {
    const [providers, jobs] = await Promise.all([api("GET", "/api/v1/providers"), api("GET", "/api/v1/jobs?state=running&limit=200")]);
    list.replaceChildren(providers.length === 0
      ? h("p", { class: "muted" }, "No providers: configure one as [providers.NAME] in gantry.toml (see config/providers.toml).")
      : h("table", {}, h("thead", {}, h("tr", {}, ["name", "plugin", "base URL", "state", "calls", "failures", "last answer", "options", "last error"].map((c) => h("th", {}, c)))),
        h("tbody", {}, providers.map((p) => h("tr", { "data-provider": p.name }, h("td", {}, p.name), h("td", {}, p.plugin), h("td", {}, p.api_url ? `${p.base_url} (and ${p.api_url})` : p.base_url), h("td", { class: `provider-${p.state}` }, p.state),
          h("td", {}, p.calls), h("td", {}, p.failures), h("td", {}, time(p.last_ok_ms)), h("td", {}, options(p.options)), h("td", { class: "error" }, p.last_error ?? ""))))));
    const remote = jobs.jobs.filter((j) => j.attempts.length && j.attempts[j.attempts.length - 1].remote);
    running.replaceChildren(remote.length === 0 ? h("p", { class: "muted" }, "No job runs on a provider now.") : h("table", {},
      h("thead", {}, h("tr", {}, ["job", "where", "its state there", "cost so far", "owner", "command"].map((c) => h("th", {}, c)))),
      h("tbody", {}, remote.map((j) => {
        const a = j.attempts[j.attempts.length - 1];
        return h("tr", { "data-job": j.id }, h("td", {}, h("a", { href: `#/job/${j.id}` }, j.id)), h("td", {}, where(a)), h("td", {}, a.remote.state ?? ""), h("td", { class: "cost" }, cost(a.remote.cost)), h("td", {}, j.spec.owner ?? ""),
          h("td", {}, j.redacted ? h("span", { class: "muted" }, "(not yours to see)") : j.spec.commands.join(" && ").slice(0, 120)));
      }))));
  };
  await load();
  root.replaceChildren(h("h1", {}, "Providers"), list, h("h2", {}, "Running there"), running, h("h2", {}, "Wait here or pay there?"), waitOrPay());
  on(root, "job", debounce(load));
}

// How long GPUs would wait on this node, beside every provider's offers for them now
// (`GET /api/v1/offers`), cheapest first.
function waitOrPay() {
  const count = h("input", { type: "number", min: "1", max: "64", step: "1", value: "1" });
  const need = h("input", { type: "number", min: "0", step: "1", value: "0" });
  const kind = h("input", { type: "text", placeholder: "A100" });
  const out = h("div", { id: "offers", role: "status" });
  const ask = async () => {
    try {
      const q = new URLSearchParams({ gpu: kind.value, count: String(Math.max(1, Number(count.value) | 0)), memory_mib: String(Math.round(Number(need.value) * 1024)) });
      const o = await api("GET", `/api/v1/offers?${q}`);
      const guessed = o.here.from_history ? `, ${o.here.from_history} of them by the typical run time of their command here` : "";
      const here = o.here.never ? `never: ${o.here.never}`
        : o.here.start_ms == null ? "unknown: a job on the GPUs it needs has no time limit and no run time here to go by"
        : o.here.start_ms <= Date.now() ? "free now" : `about ${Math.round((o.here.start_ms - Date.now()) / 60000)} min, after the jobs running here and those waiting ahead, by their time limits${guessed}`;
      fill(out, h("p", { id: "wait-here" }, `Here: ${here} (${o.here.ahead} job(s) waiting ahead).`),
        o.offers.length === 0 ? h("p", { class: "muted" }, "No provider answered with prices.") : h("div", { class: "scroll" }, h("table", {},
          h("thead", {}, h("tr", {}, ["provider", "GPU", "count", "memory", "region", "per hour", "free now", "price from"].map((c) => h("th", {}, c)))),
          h("tbody", {}, o.offers.map((r) => h("tr", { "data-offer": r.provider }, h("td", {}, r.provider || `(${r.plugin})`), h("td", {}, r.gpu_type), h("td", {}, r.count), h("td", {}, `${r.memory_gib} GiB`), h("td", {}, r.region),
            h("td", { class: "price" }, `${r.price_per_hour.toFixed(2)} ${r.currency}`), h("td", {}, r.as_of ? "?" : (r.available ? "yes" : "no")),
            h("td", { title: r.source }, r.as_of ? `catalog, ${r.as_of}` : "live")))))),
        o.unanswered.map((u) => h("p", { class: "error" }, `${u.provider}: ${u.reason}`)));
    } catch (error) { showError(out, error); }
  };
  return h("div", { class: "card" }, h("form", { class: "grid", id: "offer-form", onsubmit: (e) => { e.preventDefault(); ask(); } },
    field("GPUs", count), field("Memory per GPU (GiB)", need), field("GPU type", kind), h("div", { class: "wide" }, h("button", { type: "submit" }, "Compare"))), out);
}

// Nodes (seed 003's master page): a section per federation node with its GPUs, live from the
// `node` events a master sends as reports arrive; the age of each report ticks in the page.
async function nodesPage(_, root) {
  const nodes = new Map((await api("GET", "/api/v1/nodes")).map((n) => [n.name, { view: n, heard: Date.now() }]));
  const list = h("div", { id: "nodes" });
  const section = ({ view, heard }) => {
    const report = view.report;
    // The master's judgement when it sent the view, aged since then as the master ages it.
    const age = view.last_seen_ms ? Math.max(0, Math.round((Date.now() - view.last_seen_ms) / 1000)) : null;
    const interval = report ? report.interval_ms / 1000 : 3;
    const since = (Date.now() - heard) / 1000;
    const status = view.status === "offline" || (age !== null && age >= view.offline_after_ms / 1000 && since > 0) ? "offline"
      : view.status === "stale" || (age !== null && age > 2 * interval) ? "stale" : view.status;
    return h("section", { class: "card", "data-node": view.name, "aria-label": `node ${view.name}` },
      h("h3", {}, `${view.name} · `, h("span", { class: `node-${status}` }, status), view.address ? h("span", { class: "muted" }, ` · ${view.address}`) : null),
      h("p", { class: "muted" }, age === null ? "never reported" : `last report ${age} s ago`,
        report && view.via === "pull" ? ` · pulled (seed 003 slave): no job counts · ${report.node.host.hostname ?? ""}` : "",
        report && view.via !== "pull" ? ` · jobs: ${report.jobs.running} running, ${report.jobs.waiting + report.jobs.held} waiting · ${report.node.host.hostname ?? ""}` : ""),
      view.error ? h("p", { class: "error", role: "status" }, `last pull failed: ${view.error}`) : null,
      report ? h("div", { class: "cards" }, report.node.gpus.map((g) => gpuCard(g, [], new Map()))) : null,
      report && report.running.length ? h("div", { class: "scroll" }, h("table", { "aria-label": `jobs running on ${view.name}` },
        h("thead", {}, h("tr", {}, ["job", "owner", "queue", "GPUs", "memory", "started"].map((c) => h("th", {}, c)))),
        h("tbody", {}, report.running.map((j) => h("tr", { "data-job": `${view.name}:${j.id}` },
          // Only a node that takes actions from this master shows its jobs through it.
          h("td", {}, view.accepts_actions ? h("a", { href: `#/job/${view.name}:${j.id}` }, `${view.name}:${j.id}`) : `${view.name}:${j.id}`),
          h("td", {}, j.owner ?? ""), h("td", {}, j.queue), h("td", {}, j.gpus.join(",")), h("td", {}, mib(j.memory_mib)), h("td", {}, time(j.started_ms))))))) : null);
  };
  const draw = () => list.replaceChildren(...[...nodes.values()].map(section));
  fill(root, h("h1", {}, "Nodes"),
    nodes.size === 0 ? h("p", { class: "muted" }, "No nodes report here: issue one with `gantry node add NAME` and give it the printed [federation] section.") : null, list);
  draw();
  on(root, "node", (view) => { nodes.set(view.name, { view, heard: Date.now() }); draw(); });
  const ticker = setInterval(draw, 1000);
  onLeave(root, () => clearInterval(ticker));
}

// The caller: who they are, their quota and use; accounts and tokens in users mode.
async function accountPage(_, root) {
  const [me, quota, check] = await Promise.all([api("GET", "/auth/users/me"), api("GET", "/api/v1/quota"), fetch("/api/auth/check").then((r) => r.json())]);
  const cap = (c) => `GPUs ${c.gpus ?? "no limit"}, memory ${c.memory_mib != null ? mib(c.memory_mib) : "no limit"}`;
  const sections = [
    h("p", {}, `${me.email ?? me.name ?? ""} · role ${me.role}`),
    h("p", {}, `May hold ${cap(quota.cap)}; holds ${quota.holds.gpus} GPU(s), ${mib(quota.holds.memory_mib)}; recent use ${quota.recent_gpu_hours.toFixed(2)} GPU-hours.`),
    h("button", { class: "plain", onclick: async () => { try { await api("POST", "/api/auth/logout"); } finally { sessionStorage.removeItem("gantry-csrf"); showLogin(); } } }, "Log out"),
  ];
  if (check.mode === "users") {
    const tokens = await api("GET", "/api/v1/tokens");
    const name = h("input", { required: true });
    const shown = h("p", { role: "status" });
    sections.push(h("h2", {}, "API tokens"), h("table", {}, h("tbody", {}, tokens.map((t) => h("tr", {}, h("td", {}, t.name), h("td", {}, time(t.created_ms)), h("td", {}, h("button", { class: "plain", onclick: async () => { await api("DELETE", `/api/v1/tokens/${esc(t.id)}`); route(); } }, "revoke")))))),
      h("form", { class: "row", onsubmit: async (e) => { e.preventDefault(); try { const t = await api("POST", "/api/v1/tokens", { name: name.value }); shown.textContent = `token (shown once): ${t.token}`; } catch (error) { showError(shown, error); } } }, ...field("New token's name", name), h("button", { type: "submit" }, "Create")), shown);
    if (me.role === "admin") {
      const users = await api("GET", "/api/v1/users");
      const said = h("p", { role: "status" });
      const change = async (u, body) => { try { await api("PATCH", `/api/v1/users/${esc(u.id)}`, body); route(); } catch (error) { showError(said, error); } };
      const rows = users.map((u) => {
        const role = h("select", { "aria-label": `role of ${u.email}` }, ["viewer", "user", "admin"].map((r) => h("option", { value: r, selected: u.role === r }, r)));
        role.addEventListener("change", () => change(u, { role: role.value }));
        const unix = h("input", { value: u.unix_user ?? "", "aria-label": `Unix user of ${u.email}`, style: "width: 8rem" });
        unix.addEventListener("change", () => change(u, { unix_user: unix.value }));
        return h("tr", {}, h("td", {}, u.email), h("td", {}, role), h("td", {}, unix),
          h("td", {}, h("button", { class: "plain", onclick: () => change(u, { is_active: !u.is_active }) }, u.is_active ? "deactivate" : "activate")));
      });
      const email = h("input", { type: "email", required: true });
      const password = h("input", { type: "password", required: true, minlength: "8", autocomplete: "new-password" });
      const newRole = h("select", {}, ["user", "viewer", "admin"].map((r) => h("option", { value: r }, r)));
      sections.push(h("h2", {}, "Accounts"), h("div", { class: "scroll" }, h("table", { id: "accounts" }, h("thead", {}, h("tr", {}, ["e-mail", "role", "Unix user", ""].map((c) => h("th", {}, c)))), h("tbody", {}, rows))), said,
        h("form", { class: "grid", id: "new-account", onsubmit: async (e) => { e.preventDefault(); try { await api("POST", "/api/v1/users", { email: email.value, password: password.value, role: newRole.value }); route(); } catch (error) { showError(said, error); } } },
          ...field("New account's e-mail", email), ...field("Password", password), ...field("Role", newRole), h("div", { class: "wide" }, h("button", { type: "submit" }, "Create account"))));
    }
  }
  root.replaceChildren(h("h1", {}, "Account"), ...sections);
}

// ---- start -----------------------------------------------------------------------------------------

// A link with `#token=…` (what `gantry serve` can print, as Jupyter does) logs in with it; the
// fragment never reaches the server's logs and is removed from the address bar at once.
async function start() {
  window.addEventListener("hashchange", route);
  const token = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");
  if (token) {
    history.replaceState(null, "", `${location.pathname}#/gpus`);
    try { await login(token); return; } catch { /* the login form says why */ }
  }
  connect();
  route();
}

start();
