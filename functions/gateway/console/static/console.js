// The console's script: model filters and the train dialog, a job's live
// timeline and curves (Server-Sent Events), run comparison, and folder
// uploads through presigned URLs. No framework, no build step.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// api calls the gateway's API with the console's cookie; the header marks
// the console's own writes (the gateway refuses cookie writes without it).
async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { "X-VP-Console": "1" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  const text = await resp.text();
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = { error: text }; }
  }
  if (!resp.ok) {
    const err = new Error((data && data.error) || resp.statusText);
    err.status = resp.status;
    err.body = data;
    throw err;
  }
  return data;
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 10000)) return v.toExponential(2);
  return String(Math.round(v * 1000) / 1000);
}

// ---- Curves ---------------------------------------------------------------

// drawCurves draws series ([{label, points: [{x, metrics}]}]) of one metric
// into svg: axes, grid, a line and a dot per point for each series.
function drawCurves(svg, series, metric) {
  $$("g.plot", svg).forEach((g) => g.remove());
  const W = 640, H = 300, L = 56, R = 16, T = 14, B = 34;
  const pts = series.map((s) => s.points.filter((p) => p.metrics && typeof p.metrics[metric] === "number"));
  const all = pts.flat();
  const g = svgEl("g", { class: "plot" });
  svg.appendChild(g);
  if (all.length === 0) return 0;
  let x0 = Math.min(...all.map((p) => p.x)), x1 = Math.max(...all.map((p) => p.x));
  let y0 = Math.min(...all.map((p) => p.metrics[metric])), y1 = Math.max(...all.map((p) => p.metrics[metric]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4, y = sy(yv);
    g.appendChild(svgEl("line", { class: "grid", x1: L, x2: W - R, y1: y, y2: y }));
    const t = svgEl("text", { x: L - 6, y: y + 4, "text-anchor": "end" });
    t.textContent = fmt(yv);
    g.appendChild(t);
    const xv = x0 + ((x1 - x0) * i) / 4, x = sx(xv);
    const tx = svgEl("text", { x, y: H - B + 16, "text-anchor": "middle" });
    tx.textContent = fmt(xv);
    g.appendChild(tx);
  }
  g.appendChild(svgEl("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  g.appendChild(svgEl("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const xl = svgEl("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" });
  xl.textContent = "step";
  g.appendChild(xl);
  pts.forEach((ps, i) => {
    const cls = "s" + (i % 6);
    const sorted = ps.slice().sort((a, b) => a.x - b.x);
    if (sorted.length > 1) {
      g.appendChild(svgEl("polyline", { class: "line " + cls, "data-series": series[i].label,
        points: sorted.map((p) => sx(p.x) + "," + sy(p.metrics[metric])).join(" ") }));
    }
    for (const p of sorted) {
      const c = svgEl("circle", { class: "dot " + cls, cx: sx(p.x), cy: sy(p.metrics[metric]), r: 3.5,
        "data-series": series[i].label, "data-x": p.x });
      const title = svgEl("title");
      title.textContent = `${series[i].label}: ${metric} ${fmt(p.metrics[metric])} at step ${p.x}`;
      c.appendChild(title);
      g.appendChild(c);
    }
  });
  return all.length;
}

// metricNames is every metric of the series' points, loss first.
function metricNames(series) {
  const names = new Set();
  series.forEach((s) => s.points.forEach((p) => Object.keys(p.metrics || {}).forEach((k) => names.add(k))));
  return Array.from(names).sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a.localeCompare(b)));
}

function curvesWith(series) {
  const svg = $("#curves"), select = $("#curve-metric"), empty = $("#curves-empty");
  const redraw = () => {
    const names = metricNames(series);
    const current = select.value;
    if (names.join() !== $$("option", select).map((o) => o.value).join()) {
      select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
      if (names.includes(current)) select.value = current;
    }
    const n = drawCurves(svg, series, select.value || names[0]);
    if (empty) empty.hidden = n > 0;
  };
  select.addEventListener("change", redraw);
  return redraw;
}

function pointOf(d) {
  return { x: d.step || d.epoch || 0, epoch: d.epoch, step: d.step, metrics: d.metrics || {} };
}

// ---- Models ---------------------------------------------------------------

function modelsPage() {
  const form = $("#model-filters");
  const count = $("#model-count [data-count]");
  const apply = () => {
    const fw = $("#f-framework").value, task = $("#f-task").value;
    const tag = $("#f-tag").value.toLowerCase(), q = $("#f-q").value.trim().toLowerCase();
    let n = 0;
    for (const card of $$(".card")) {
      const tags = card.dataset.tags ? card.dataset.tags.split(" ") : [];
      const show = (!fw || card.dataset.framework === fw) && (!task || card.dataset.task === task) &&
        (!tag || tags.includes(tag)) && (!q || card.dataset.text.includes(q));
      card.hidden = !show;
      if (show) n++;
    }
    count.textContent = String(n);
    const params = new URLSearchParams();
    if (fw) params.set("framework", fw);
    if (task) params.set("task", task);
    if ($("#f-tag").value) params.set("tag", $("#f-tag").value);
    if (q) params.set("q", $("#f-q").value.trim());
    history.replaceState(null, "", "/models" + (params.toString() ? "?" + params : ""));
  };
  form.addEventListener("change", apply);
  $("#f-q").addEventListener("input", apply);
  form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });

  const dialog = $("#train-dialog");
  if (!dialog) return;
  const tform = $("#train-form");
  let model = null;
  for (const b of $$("button.train")) {
    b.addEventListener("click", () => {
      model = b.dataset.model;
      $("[data-model]", dialog).textContent = model;
      const formats = b.dataset.formats.split(" ");
      let fits = 0;
      for (const o of $$("#t-dataset option")) {
        const ok = o.dataset.task === b.dataset.task && formats.includes(o.dataset.format);
        o.disabled = !ok;
        o.hidden = !ok;
        if (ok && fits++ === 0) o.selected = true;
      }
      $("[data-nodataset]", dialog).hidden = fits > 0;
      $("#train-submit").disabled = fits === 0;
      $("#t-epochs").value = b.dataset.epochs;
      $("#t-batch").value = b.dataset.batch;
      $("#t-lr").value = b.dataset.lr;
      $("#t-size").value = b.dataset.size === "0" ? "" : b.dataset.size;
      $("[data-error]", dialog).hidden = true;
      dialog.showModal();
    });
  }
  $("[data-close]", dialog).addEventListener("click", () => dialog.close());
  tform.addEventListener("submit", async (e) => {
    e.preventDefault();
    const [bucket, prefix] = $("#t-dataset").value.split("|");
    const num = (id) => (($(id).value === "") ? 0 : Number($(id).value));
    const body = {
      model,
      dataset: { bucket, prefix },
      hyperparameters: { epochs: num("#t-epochs"), batchSize: num("#t-batch"), learningRate: num("#t-lr"), imageSize: num("#t-size") },
      resources: { gpus: num("#t-gpus"), executor: $("#t-executor").value },
    };
    const out = $("[data-error]", dialog);
    try {
      $("#train-submit").disabled = true;
      const res = await api("POST", "/api/v1/jobs", body);
      location.assign("/jobs/" + res.jobId);
    } catch (err) {
      const fields = (err.body && err.body.fields) || [];
      out.textContent = fields.length ? fields.map((f) => f.field + ": " + f.reason).join("; ") : err.message;
      out.hidden = false;
      $("#train-submit").disabled = false;
    }
  });
}

// ---- A job ----------------------------------------------------------------

const stateOf = {
  "job.requested": "requested", "image.built": "queued", "run.started": "running",
  "image.failed": "failed",
};

function jobPage() {
  const box = $("#job");
  const id = box.dataset.job;
  const series = [{ label: id, points: [] }];
  const redraw = curvesWith(series);
  const timeline = $("#timeline");
  const seen = new Set($$("li[data-id]", timeline).map((li) => li.dataset.id));
  const setState = (s, reason) => {
    const st = $("#job-state");
    st.textContent = s;
    st.className = "state " + s;
    if (reason !== undefined) $("#job-reason").textContent = reason;
  };
  const terminal = (s) => ["succeeded", "failed", "cancelled"].includes(s);
  // refresh reads the job's status and outputs; once the job is known to
  // be over, it asks again (the ledger records the ending a moment after
  // the stream shows it) until the status says so too.
  const refresh = async (over) => {
    for (let i = 0; i < 20; i++) {
      try {
        const st = await api("GET", "/api/v1/jobs/" + id);
        if (over && !terminal(st.state)) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        if (!terminal($("#job-state").textContent) || terminal(st.state)) setState(st.state, st.reason || "");
        if (st.image) $("#lineage-image").textContent = st.image;
        if (st.runId) $("#lineage-run").textContent = st.runId;
        if (st.dataset) $("#lineage-dataset").textContent = st.dataset.digest;
        const arts = await api("GET", "/api/v1/jobs/" + id + "/artifacts");
        const ul = $("#artifacts");
        const items = arts.artifacts.map((a) => {
          const li = el("li");
          li.appendChild(el("a", { href: a.url, rel: "noopener" }, a.name));
          li.append(" ", el("code", { class: "digest" }, "sha256:" + a.sha256));
          return li;
        });
        if (arts.log) {
          const li = el("li");
          li.appendChild(el("a", { href: arts.log.url, rel: "noopener" }, "run log"));
          items.push(li);
        }
        if (items.length) ul.replaceChildren(...items);
        const cancel = $("#cancel-job");
        if (cancel && terminal(st.state)) cancel.remove();
        box.dataset.refreshed = "true";
        return;
      } catch (e) {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };
  const onEvent = (msg) => {
    let ce;
    try { ce = JSON.parse(msg.data); } catch (e) { return; }
    const type = (ce.type || "").replace("dev.visionplatform.", "");
    const d = ce.data || {};
    if (type === "run.progress") {
      if (!series[0].points.some((p) => p.id === ce.id)) {
        const p = pointOf(d);
        p.id = ce.id;
        series[0].points.push(p);
        redraw();
      }
      $("#progress-line").textContent = `Epoch ${d.epoch}, step ${d.step}`;
      if ($("#job-state").textContent !== "running") setState("running", "");
      return;
    }
    if (!seen.has(ce.id)) {
      seen.add(ce.id);
      const li = el("li", { "data-id": ce.id, "data-type": type });
      li.append(el("span", { class: "ev" }, type), " ", el("time", { datetime: ce.time }, (ce.time || "").replace("T", " ").slice(0, 19)),
        " ", el("span", { class: "src" }, ce.source));
      timeline.appendChild(li);
    }
    if (type === "image.built" && d.reference) $("#lineage-image").textContent = d.reference;
    if (type === "run.started" && d.runId) $("#lineage-run").textContent = d.runId;
    if (type === "run.finished") setState(d.status, d.reason || "");
    else if (type === "job.cancelled") setState("cancelling", d.reason || "");
    else if (stateOf[type]) setState(stateOf[type]);
    if (type === "run.finished" || type === "image.failed") refresh(true);
  };
  const es = new EventSource("/api/v1/jobs/" + id + "/events");
  for (const t of ["job.requested", "job.cancelled", "image.built", "image.failed", "run.started", "run.progress", "run.finished"]) {
    es.addEventListener(t, onEvent);
  }
  es.addEventListener("end", () => { es.close(); box.dataset.ended = "true"; refresh(true); });
  const cancel = $("#cancel-job");
  if (cancel) {
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        const res = await api("POST", "/api/v1/jobs/" + id + "/cancel", { reason: "cancelled in the console" });
        setState(res.state);
      } catch (e) {
        $("#job-reason").textContent = e.message;
        cancel.disabled = false;
      }
    });
  }
}

// ---- Compare --------------------------------------------------------------

async function comparePage() {
  const box = $("#compare");
  if (!box) return;
  const ids = box.dataset.jobs.split(" ");
  const series = ids.map((id) => ({ label: id, points: [] }));
  const redraw = curvesWith(series);
  const legend = $("#legend");
  legend.replaceChildren(...ids.map((id, i) => {
    const li = el("li");
    li.append(el("span", { class: "swatch s" + (i % 6), "aria-hidden": "true" }), id);
    return li;
  }));
  await Promise.all(ids.map(async (id, i) => {
    try {
      const res = await api("GET", "/api/v1/jobs/" + id + "/progress");
      series[i].points = res.points.map(pointOf);
    } catch (e) { /* shown as a run without points */ }
  }));
  redraw();
  box.dataset.loaded = "true";
}

// ---- Datasets -------------------------------------------------------------

function putWithProgress(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300 ? resolve() : reject(new Error(`PUT answered ${xhr.status}`)));
    xhr.onerror = () => reject(new Error("the upload failed (network)"));
    xhr.send(blob);
  });
}

async function pool(tasks, n) {
  let i = 0;
  const run = async () => { while (i < tasks.length) { const t = tasks[i++]; await t(); } };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, run));
}

function datasetsPage() {
  const form = $("#upload-form");
  if (!form) return;
  const status = $("#upload-status"), bar = $("#upload-progress");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const files = Array.from($("#u-folder").files);
    const rel = (f) => {
      const p = f.webkitRelativePath || f.name;
      const i = p.indexOf("/");
      return f.webkitRelativePath && i >= 0 ? p.slice(i + 1) : p;
    };
    const list = files.map((f) => ({ file: f, path: rel(f) })).filter((x) => x.path !== "dataset.yaml" && x.path !== "manifest.json");
    if (list.length === 0) { status.textContent = "The folder has no files."; return; }
    const body = {
      name: $("#u-name").value, version: $("#u-version").value, task: $("#u-task").value, format: $("#u-format").value,
      files: list.map((x) => ({ path: x.path, size: x.file.size })),
    };
    if ($("#u-train").value) body.train = { model: $("#u-train").value };
    $("#upload-submit").disabled = true;
    try {
      status.textContent = "Asking where to upload…";
      const up = await api("POST", "/api/v1/datasets", body);
      const byPath = new Map(list.map((x) => [x.path, x.file]));
      const total = list.reduce((n, x) => n + x.file.size, 0) || 1;
      const done = new Map();
      const tick = (key, n) => {
        done.set(key, n);
        let sum = 0;
        done.forEach((v) => { sum += v; });
        bar.value = Math.min(1, sum / total);
        status.textContent = `Uploaded ${Math.round(bar.value * 100)}%`;
      };
      bar.hidden = false;
      const tasks = [];
      for (const t of up.files) {
        const file = byPath.get(t.path);
        if (t.uploaded) { tick(t.key, t.size); continue; }
        if (t.url) { tasks.push(() => putWithProgress(t.url, file, (n) => tick(t.key, n)).then(() => tick(t.key, t.size))); continue; }
        const parts = t.parts || [];
        const partTasks = [];
        let offset = 0;
        for (const p of parts) {
          const start = offset;
          offset += p.size;
          const key = t.key + "#" + p.number;
          if (!p.url) { tick(key, p.size); continue; }
          partTasks.push(() => putWithProgress(p.url, file.slice(start, start + p.size), (n) => tick(key, n)).then(() => tick(key, p.size)));
        }
        tasks.push(async () => {
          await pool(partTasks, 2);
          await api("POST", "/api/v1/datasets/uploads/complete", { key: t.key, uploadId: t.uploadId, size: t.size });
        });
      }
      await pool(tasks, 4);
      status.textContent = "Writing dataset.yaml…";
      await putWithProgress(up.manifest.url, new Blob([up.manifest.body], { type: "application/yaml" }), () => {});
      bar.value = 1;
      status.textContent = `Uploaded ${list.length} files to ${up.bucket}/${up.prefix}; the intake takes over.`;
      form.dataset.done = "true";
    } catch (err) {
      const fields = (err.body && err.body.fields) || [];
      status.textContent = "Upload failed: " + (fields.length ? fields.map((f) => f.field + ": " + f.reason).join("; ") : err.message);
    } finally {
      $("#upload-submit").disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "models") modelsPage();
  if (page === "job") jobPage();
  if (page === "compare") comparePage();
  if (page === "datasets") datasetsPage();
});
