// restyle's page: choose a photo and styles, submit a job to the HTTP API, follow it live
// (server-sent events read with fetch, so the bearer token travels in a header), download it.
"use strict";

const $ = (id) => document.getElementById(id);
const MAIN = ["strength", "size", "iterations", "preserve_color", "preset", "fast_model", "refine"];
const FINAL = new Set(["done", "failed", "cancelled"]);
const state = { content: null, styles: [], fields: [], job: null, follow: 0, next: null, objectUrls: [] };

// ---- the API ---------------------------------------------------------------------------------
function clientId() {  // this browser, for the server's per-client queue cap
  let id = localStorage.getItem("restyle-client");
  if (!id) {
    id = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("restyle-client", id);
  }
  return id;
}

function headers(extra = {}) {
  const token = localStorage.getItem("restyle-token");
  const all = { ...extra, "X-Restyle-Client": clientId() };
  return token ? { ...all, Authorization: `Bearer ${token}` } : all;
}

async function api(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401) return response;
    await askToken(localStorage.getItem("restyle-token") ? "That token was not accepted." : "");
  }
}

async function json(path, options) {
  const response = await api(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function askToken(message) {
  const dialog = $("token-dialog");
  $("token-error").hidden = !message;
  $("token-error").textContent = message;
  return new Promise((resolve) => {
    $("token-form").onsubmit = () => {
      localStorage.setItem("restyle-token", $("token-input").value.trim());
      resolve();
    };
    if (!dialog.open) dialog.showModal();
  });
}

async function blobUrl(path) {
  const response = await api(path);
  if (!response.ok) return null;
  const url = URL.createObjectURL(await response.blob());
  state.objectUrls.push(url);
  return url;
}

// ---- choosing images -------------------------------------------------------------------------
function thumb(src, name, onRemove) {
  const box = document.createElement("div");
  box.className = "thumb";
  const img = document.createElement("img");
  img.alt = name;
  Promise.resolve(src).then((url) => { if (url) img.src = url; });
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  const x = document.createElement("button");
  x.type = "button";
  x.className = "x";
  x.title = `remove ${name}`;
  x.textContent = "×";
  x.onclick = onRemove;
  box.append(img, label, x);
  return box;
}

function sourceUrl(source) {
  if (source.file) return (source.url ||= URL.createObjectURL(source.file));
  if (source.example) return blobUrl(`/api/examples/${encodeURIComponent(source.example)}/thumbnail`);
  return source.thumbnail ? blobUrl(source.thumbnail) : null;
}

function renderChosen() {
  const content = $("content-chosen");
  content.replaceChildren();
  if (state.content) content.append(thumb(sourceUrl(state.content), state.content.name, () => {
    state.content = null; renderChosen();
  }));
  const styles = $("style-chosen");
  styles.replaceChildren(...state.styles.map((s, i) => thumb(sourceUrl(s), s.name, () => {
    state.styles.splice(i, 1); renderChosen();
  })));
  for (const b of document.querySelectorAll("#content-examples button"))
    b.setAttribute("aria-pressed", String(state.content?.example === b.dataset.name));
  for (const b of document.querySelectorAll("#style-examples button"))
    b.setAttribute("aria-pressed", String(state.styles.some((s) => s.example === b.dataset.name)));
}

function addFiles(role, files) {
  const images = [...files].filter((f) => f.type.startsWith("image/") || !f.type);
  if (!images.length) return;
  if (role === "content") state.content = { file: images[0], name: images[0].name };
  else state.styles.push(...images.map((f) => ({ file: f, name: f.name })));
  renderChosen();
}

function setUpDrop(role) {
  const zone = $(`${role}-drop`);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over"); addFiles(role, e.dataTransfer.files);
  });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter") $(`${role}-file`).click(); });
  $(`${role}-file`).addEventListener("change", (e) => { addFiles(role, e.target.files); e.target.value = ""; });
}

async function loadExamples() {
  const examples = await json("/api/examples");
  for (const role of ["content", "style"]) {
    const list = $(`${role}-examples`);
    list.replaceChildren(...examples.map((ex) => {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.name = ex.name;
      b.title = ex.name.replace(/\.[a-z]+$/, "").replace(/[-_]/g, " ");
      b.setAttribute("role", "listitem");
      const img = document.createElement("img");
      img.alt = b.title;
      blobUrl(ex.thumbnail).then((url) => { if (url) img.src = url; });
      b.append(img);
      b.onclick = () => {
        const source = { example: ex.name, name: b.title };
        if (role === "content") state.content = source;
        else if (!state.styles.some((s) => s.example === ex.name)) state.styles.push(source);
        else state.styles = state.styles.filter((s) => s.example !== ex.name);
        renderChosen();
      };
      return b;
    }));
  }
}

// ---- options ---------------------------------------------------------------------------------
async function loadOptions() {
  const described = await json("/api/options");
  state.fields = described.fields;
  const names = new Set(state.fields.map((f) => f.name));
  $("strength-row").hidden = !names.has("strength");
  for (const preset of described.presets)
    if (preset !== "gatys") $("preset").append(new Option(preset, preset));
  const limits = described.limits;
  if (limits) {  // the page offers nothing this server refuses
    $("iterations").max = String(limits.max_iterations);
    $("refine").max = String(Math.min(Number($("refine").max), limits.max_iterations));
    for (const option of [...$("size").options])
      if (option.value !== "none" && Number(option.value) > limits.max_size) option.remove();
  }
  if (!$("iterations").dataset.touched) setIterations(state.fields.find((f) => f.name === "iterations")?.value ?? null);
  $("more-fields").replaceChildren(...state.fields.filter((f) => !MAIN.includes(f.name)).map(fieldInput));
}

function setIterations(value) {  // null: the automatic stop
  $("auto-stop").checked = value == null;
  $("iterations").disabled = value == null;
  if (value != null) $("iterations").value = value;
  $("iterations-out").textContent = value == null ? "auto" : $("iterations").value;
}

function fieldInput(field) {
  const row = document.createElement("label");
  row.className = "row";
  row.title = field.help;
  const span = document.createElement("span");
  span.textContent = field.name.replace(/_/g, " ");
  let input;
  if (field.kind === "bool") {
    input = document.createElement("select");
    input.append(new Option(`default (${field.value ? "on" : "off"})`, ""), new Option("on", "true"),
                 new Option("off", "false"));
  } else if (field.choices) {
    input = document.createElement("select");
    input.append(new Option(`default${field.default ? ` (${field.default})` : ""}`, ""),
                 ...field.choices.map((c) => new Option(c, c)));
  } else {
    input = document.createElement("input");
    input.type = "text";
    input.placeholder = field.default ?? (field.nullable ? "none" : "");
    input.inputMode = field.kind === "int" || field.kind === "float" ? "decimal" : "text";
  }
  input.dataset.field = field.name;
  row.append(span, input);
  return row;
}

function chosenOptions() {
  const options = { size: $("size").value === "none" ? null : Number($("size").value),
                    iterations: $("auto-stop").checked ? null : Number($("iterations").value) };
  if (!$("strength-row").hidden && $("strength").dataset.touched) options.strength = Number($("strength").value);
  if ($("preserve_color").value) options.preserve_color = $("preserve_color").value;
  if ($("preset").value) options.preset = $("preset").value;
  for (const input of document.querySelectorAll("#more-fields [data-field]"))
    if (input.value.trim() !== "") options[input.dataset.field] = input.value.trim();
  const model = fastOptions();  // a fast model: its styles and weights, no iterations (but refine)
  if (model) {
    for (const name of ["iterations", "strength", "style_blend"]) delete options[name];
    Object.assign(options, model);
  }
  return options;
}

function applyOptions(job) {
  const o = { ...job.options };
  $("size").value = o.size === null ? "none" : String(o.size ?? 512);
  if ($("size").selectedIndex < 0) $("size").append(new Option(`${o.size} px`, String(o.size), true, true));
  setIterations(o.iterations !== undefined ? o.iterations : job.config.iterations);
  if (o.strength != null) {
    $("strength").value = o.strength;
    $("strength").dataset.touched = "1";
    $("strength-out").textContent = Number(o.strength).toFixed(2);
  }
  $("preserve_color").value = o.preserve_color ?? "";
  $("preset").value = job.preset ?? "";
  for (const input of document.querySelectorAll("#more-fields [data-field]")) {
    const v = o[input.dataset.field];
    input.value = v === undefined ? "" : v === null ? (input.tagName === "SELECT" ? "" : "none")
      : Array.isArray(v) ? v.join(",")
      : typeof v === "object" ? Object.entries(v).map(([k, w]) => (w === 1 ? k : `${k}:${w}`)).join(",") : String(v);
  }
  const named = (item) => item.example ? { example: item.example, name: item.name }
    : { ref: `sha256:${item.sha256}`, name: item.name };
  state.content = { ...named(job.inputs.content), thumbnail: `/api/jobs/${job.id}/inputs/0` };
  state.styles = job.inputs.styles.map((s, i) => ({ ...named(s), thumbnail: `/api/jobs/${job.id}/inputs/${i + 1}` }));
  renderChosen();
  applyFast(job);
}

// ---- submitting ------------------------------------------------------------------------------
async function submit(event) {
  event.preventDefault();
  const error = $("form-error");
  error.hidden = true;
  if (!state.content) return showError("Choose a photo first (or pick an example).");
  const model = fastOptions();
  if (!model && !state.styles.length) return showError("Choose at least one style image (or a fast model).");
  if (model?.style_blend && !model.style_blend.some((w) => w > 0))
    return showError("Give at least one style a weight above 0.");
  const form = new FormData();
  const add = (key, s) => s.file ? form.append(key, s.file, s.name) : form.append(key, s.example || s.ref);
  add("content", state.content);
  if (!model) state.styles.forEach((s) => add("style", s));
  form.append("options", JSON.stringify(chosenOptions()));
  $("submit").disabled = true;
  try {
    const key = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
    const job = await json("/api/jobs", { method: "POST", body: form, headers: { "Idempotency-Key": key } });
    follow(job);
    refreshGallery();
    if (window.matchMedia("(max-width: 820px)").matches) $("live").scrollIntoView({ behavior: "smooth" });
  } catch (err) {
    showError(err.message);
  } finally {
    $("submit").disabled = false;
  }
}

function showError(message) {
  $("form-error").textContent = message;
  $("form-error").hidden = false;
}

// ---- following a job -------------------------------------------------------------------------
function follow(job) {
  const ticket = ++state.follow;
  state.job = job;
  state.curve = [];
  history.replaceState(null, "", `#job=${job.id}`);
  $("preview").hidden = true;
  $("preview-label").hidden = true;
  $("placeholder").hidden = false;
  $("placeholder").textContent = job.config.fast_model ? "Painting…" : "Waiting for the first preview…";
  show(job);
  if (FINAL.has(job.status)) return finished(job);
  stream(job.id, ticket);
}

async function stream(id, ticket, attempt = 0) {
  try {
    const response = await api(`/api/jobs/${id}/events`);
    if (!response.ok) throw new Error(`${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || ticket !== state.follow) { reader.cancel().catch(() => {}); break; }
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        handle(buffer.slice(0, cut), ticket);
        buffer = buffer.slice(cut + 2);
      }
    }
  } catch (err) { /* the connection dropped: follow it again below */ }
  if (ticket === state.follow && !FINAL.has(state.job.status))
    setTimeout(() => stream(id, ticket, attempt + 1), Math.min(8000, 500 * 2 ** attempt));
}

function handle(block, ticket) {
  if (ticket !== state.follow) return;
  let kind = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) kind = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  const d = JSON.parse(data);
  if (kind === "snapshot") {
    show(d.job);
    if (d.live) {
      state.curve = d.live.curve || [];
      if (d.live.preview) setPreview(d.live.preview.image, d.live.preview.label);
      if (d.live.progress) progress(d.live.progress);
    }
    if (FINAL.has(d.job.status)) finished(d.job);
  } else if (kind === "started") {
    serverState();
    state.curve = d.curve || [];
    state.job.status = "running";
    $("status-line").textContent = d.resumed_from ? `Resumed from iteration ${d.resumed_from}…` : "Started…";
  } else if (kind === "progress") {
    state.curve.push([d.iteration, d.losses.total, d.losses.content, d.losses.style]);
    progress(d);
  } else if (kind === "preview") {
    setPreview(d.image, d.label);
  } else if (kind === "status") {
    show(d.job);
    if (FINAL.has(d.status)) { finished(d.job); refreshGallery(); serverState(); }
  }
}

function setPreview(src, label) {
  $("preview").src = src;
  $("preview").hidden = false;
  $("placeholder").hidden = true;
  $("preview-label").textContent = label || "";
  $("preview-label").hidden = !label;
}

function show(job) {
  state.job = job;
  $("cancel").hidden = FINAL.has(job.status);
  $("finish").hidden = job.status !== "running";
  $("download").hidden = $("download-csv").hidden = job.status !== "done";
  const onePass = Boolean(job.config.fast_model && !job.config.refine);  // a fast model alone: no losses
  if (onePass) $("download-csv").hidden = true;
  $("curve").hidden = onePass;
  if (job.status === "queued")
    $("status-line").textContent = job.position > 1 ? `Queued: ${job.position - 1} job(s) ahead.` : "Queued: next in line.";
  else if (job.status === "running" && job.progress) progress(job.progress);
  else if (job.status === "running") $("status-line").textContent = "Starting…";
}

function progress(p) {
  const percent = Math.round(100 * (p.fraction ?? 0));
  $("fill").style.width = `${percent}%`;
  $("bar").setAttribute("aria-valuenow", String(percent));
  const eta = p.eta == null ? "" : ` · ${duration(p.eta)} left`;
  const about = p.remaining != null ? "about " : "";  // the automatic stop: the engine's estimate
  $("status-line").textContent = `Iteration ${p.iteration} of ${about}${p.total - 1}${eta} · loss ${p.losses.total.toPrecision(4)}`;
  drawCurve();
}

async function finished(job) {
  $("cancel").hidden = $("finish").hidden = true;
  if (job.status === "done") {
    $("fill").style.width = "100%";
    const p = job.progress, c = job.config;
    const made = c.fast_model && !c.refine ? `fast model ${c.fast_model}${p ? ` in ${duration(p.seconds)}` : ""}`
      : p ? `${p.iteration} iterations in ${duration(p.seconds)}` : "finished";
    const asked = p?.stop_reason?.startsWith("finished on request") ? " (finished on request)" : "";
    $("status-line").textContent = `Done: ${made}` +
      (job.resumed_from ? ` (resumed from iteration ${job.resumed_from})` : "") + asked + ".";
    const url = await blobUrl(job.links.result);
    if (url && state.job.id === job.id) setPreview(url);
    if (!state.curve?.length) loadCurve(job);
  } else {
    $("status-line").textContent = job.status === "failed" ? `Failed: ${job.error}` : "Cancelled.";
    if ($("preview").hidden) $("placeholder").textContent = job.status === "failed" ? job.error : "Cancelled.";
  }
}

async function loadCurve(job) {
  const response = await api(job.links.losses);
  if (!response.ok) return;
  const [head, ...rows] = (await response.text()).trim().split("\n");
  const cols = head.split(",");
  const at = (name) => cols.indexOf(name);
  state.curve = rows.map((r) => r.split(",").map(Number)).map((v) =>
    [v[at("iteration")], v[at("total")], v[at("content")], v[at("style")]]);
  drawCurve();
}

function drawCurve() {
  const canvas = $("curve");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, h);
  const points = state.curve || [];
  $("legend").hidden = points.length < 2;
  if (points.length < 2) return;
  const css = getComputedStyle(document.documentElement);
  const total = state.job?.progress?.total || points[points.length - 1][0] + 1;
  const x = (i) => 4 + (w - 8) * (i / Math.max(1, total - 1));
  // each loss on its own log scale: their shapes matter here, not their sizes (the CSV has the numbers)
  const line = (index, color, width) => {
    const series = points.filter((p) => p[index] > 0 && p[0] > 0).map((p) => [p[0], Math.log10(p[index])]);
    if (series.length < 2) return;
    const lo = Math.min(...series.map((p) => p[1])), hi = Math.max(...series.map((p) => p[1]));
    const y = (v) => h - 5 - (h - 10) * ((v - lo) / Math.max(1e-9, hi - lo));
    g.beginPath();
    g.strokeStyle = color; g.lineWidth = width; g.lineJoin = "round";
    series.forEach((p, k) => (k ? g.lineTo : g.moveTo).call(g, x(p[0]), y(p[1])));
    g.stroke();
  };
  line(2, css.getPropertyValue("--curve-content"), 1.5);
  line(3, css.getPropertyValue("--curve-style"), 1.5);
  line(1, css.getPropertyValue("--accent"), 2.5);
}

async function download(path, name) {
  const response = await api(path);
  if (!response.ok) return;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await response.blob());
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ---- the gallery -----------------------------------------------------------------------------
async function refreshGallery(more = false) {
  const page = await json(`/api/jobs?limit=12${more && state.next !== null ? `&before=${state.next}` : ""}`);
  state.next = page.next;
  $("more-jobs").hidden = page.next === null;
  const cards = page.jobs.map(card);
  if (more) $("jobs").append(...cards);
  else $("jobs").replaceChildren(...cards);
  if (!more && !page.jobs.length) $("jobs").textContent = "Nothing yet: your paintings will be kept here.";
}

function card(job) {
  const el = document.createElement("article");
  el.className = "job";
  el.dataset.id = job.id;
  const pic = document.createElement("div");
  pic.className = "pic";
  pic.title = "show this job";
  const img = document.createElement("img");
  img.alt = `job ${job.id}`;
  blobUrl(job.status === "done" ? job.links.thumbnail : `/api/jobs/${job.id}/inputs/0`).then((u) => { if (u) img.src = u; });
  pic.append(img);
  pic.onclick = () => { follow(job); window.scrollTo({ top: 0, behavior: "smooth" }); };
  const meta = document.createElement("div");
  meta.className = "meta";
  const status = document.createElement("span");
  status.className = `st ${job.status}`;
  status.textContent = job.status;
  const what = document.createElement("span");
  what.className = "what";
  const c = job.config;
  const styles = c.fast_model ? `fast model ${c.fast_model}`
    : job.inputs.styles.map((s) => s.name.replace(/\.[a-z]+$/i, "")).join(" + ");
  const asked = job.status === "done" && job.progress?.stop_reason?.startsWith("finished on request");
  const steps = c.fast_model ? (c.refine ? `refined ${c.refine} it` : "one pass")
    : asked ? `finished on request at ${job.progress.iteration} it` : `${c.iterations ?? "auto"} it`;
  what.textContent = `${job.inputs.content.name} × ${styles} · ${c.size ?? "full"} px · ${steps}` +
    (c.strength != null ? ` · strength ${c.strength}` : "") + (c.preserve_color ? ` · ${c.preserve_color}` : "") +
    (job.preset ? ` · ${job.preset}` : "");
  what.title = job.error || JSON.stringify(job.options);
  meta.append(status, what);
  const acts = document.createElement("div");
  acts.className = "acts";
  const button = (label, fn) => { const b = document.createElement("button"); b.type = "button"; b.textContent = label; b.onclick = fn; acts.append(b); };
  button("Run again", async () => {
    follow(await json(`/api/jobs/${job.id}/rerun`, { method: "POST" }));
    refreshGallery();
    window.scrollTo({ top: 0, behavior: "smooth" });
  });
  button("Edit", () => { applyOptions(job); $("compose").scrollIntoView({ behavior: "smooth" }); });
  if (job.status === "done") button("PNG", () => download(job.links.result, `restyle-${job.id}.png`));
  el.append(pic, meta, acts);
  return el;
}

// ---- helpers and start -----------------------------------------------------------------------
function duration(seconds) {
  if (seconds > 0 && seconds < 1) return `${Math.round(1000 * seconds)} ms`;  // a fast model's pass
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  return m < 60 ? `${m} min ${s} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}


async function serverState() {
  try {
    const s = await json("/api/server");
    $("version").textContent = s.version;
    const busy = s.workers.filter((w) => w.state === "busy").length;
    const pill = $("server-state");
    pill.textContent = `${s.workers.map((w) => w.device).join(", ") || "no workers"} · ${busy ? `${busy} busy` : "idle"}` +
      (s.counts.queued ? ` · ${s.counts.queued} queued` : "");
    pill.className = `pill ${s.workers.length ? "ok" : "bad"}`;
  } catch (err) {
    $("server-state").textContent = "server unreachable";
    $("server-state").className = "pill bad";
  }
}

async function start() {
  setUpDrop("content");
  setUpDrop("style");
  $("compose").addEventListener("submit", submit);
  $("iterations").addEventListener("input", () => {
    $("iterations").dataset.touched = "1";
    $("iterations-out").textContent = $("iterations").value;
  });
  $("auto-stop").addEventListener("change", () => {
    $("iterations").dataset.touched = "1";
    setIterations($("auto-stop").checked ? null : Number($("iterations").value));
  });
  $("strength").addEventListener("input", () => {  // untouched, the style weight (its default, or More options) rules
    $("strength").dataset.touched = "1";
    $("strength-out").textContent = Number($("strength").value).toFixed(2);
  });
  $("cancel").onclick = () => state.job && api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" });
  $("finish").onclick = async () => {  // the picture shown becomes the result
    if (!state.job) return;
    $("finish").hidden = true;
    const response = await api(`/api/jobs/${state.job.id}/finish`, { method: "POST" });
    if (!response.ok) $("status-line").textContent = (await response.json().catch(() => ({}))).error || "Could not finish.";
  };
  $("download").onclick = () => download(state.job.links.result, `restyle-${state.job.id}.png`);
  $("download-csv").onclick = () => download(state.job.links.losses, `restyle-${state.job.id}.losses.csv`);
  $("refresh").onclick = () => refreshGallery();
  $("more-jobs").onclick = () => refreshGallery(true);
  window.addEventListener("resize", drawCurve);
  await serverState();
  await Promise.all([loadOptions(), loadExamples(), refreshGallery(), loadModels()]);
  document.body.dataset.ready = "1";
  const wanted = location.hash.match(/^#job=([0-9a-f]+)$/);
  if (wanted) json(`/api/jobs/${wanted[1]}`).then(follow).catch(() => history.replaceState(null, "", "#"));
  setInterval(serverState, 5000);
}

start();
