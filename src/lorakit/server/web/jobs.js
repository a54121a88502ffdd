// Jobs: the list, and one job's page with its curves drawn from its metrics events, live while it runs.
import { call, everything, get } from "./api.js";
import { lineChart } from "./chart.js";
import { act, clear, copyButton, cursorPaged, h, number, paged, table, when } from "./ui.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 1500;
const CURVES = [
  ["Loss", [["train_loss", "training loss"], ["valid_loss", "validation loss", true]]],
  ["Reward", [["train_reward_mean", "training reward"], ["valid_reward_mean", "validation reward", true]]],
  ["Preference accuracy", [["train_rewards_accuracies", "training"], ["valid_rewards_accuracies", "validation", true]]],
];

function jobRows(jobs) {
  if (!jobs.length) return h("p", { class: "muted" }, "No jobs yet: ", h("a", { href: "#/new" }, "start one"), ".");
  return table(["job", "method", "model", "status", "fine-tuned model", "created"], jobs.map((j) => [
    h("a", { href: `#/jobs/${j.id}` }, j.id), j.method ? j.method.type : "supervised", j.model,
    h("span", { class: `status ${j.status}` }, j.status), j.fine_tuned_model || "", when(j.created_at)]),
  { class: "jobs" });
}

export function jobsView(root) {
  let live = false;  // a job shown is not over: the list is asked again every few seconds
  const list = cursorPaged((after) => get(`/v1/fine_tuning/jobs?limit=20${after ? `&after=${after}` : ""}`),
    (jobs) => {
      live = jobs.some((j) => !FINAL.has(j.status));
      return jobRows(jobs);
    });
  clear(root, h("h1", {}, "Jobs ", h("a", { href: "#/new", class: "button" }, "New job")), list);
  const again = () => {
    if (location.hash !== "#/jobs" || !list.isConnected) return;
    if (live) list.refresh();
    setTimeout(again, 3 * POLL_MS);
  };
  setTimeout(again, 3 * POLL_MS);
}

function hyperparameters(job) {
  const method = job.method || { type: "supervised" };
  const own = { ...(method[method.type] || {}).hyperparameters, ...job.hyperparameters };  // "auto" resolved once done
  return table(["hyperparameter", "value"], Object.entries(own).map(([k, v]) => [k, String(v)]), { class: "hp" });
}

function curves(events) {
  const points = {};
  for (const e of events) {
    if (e.type !== "metrics" || !e.data) continue;
    for (const [k, v] of Object.entries(e.data)) {
      if (typeof v === "number" && k !== "step" && k !== "total_steps") (points[k] ||= new Map()).set(e.data.step, v);
    }
  }
  const series = (k) => [...(points[k] || new Map()).entries()].sort((a, b) => a[0] - b[0]);
  return CURVES.map(([title, lines]) => [title, lines.map(([k, name, dots]) => ({ name, dots, points: series(k) }))])
    .filter(([title, lines]) => title === "Loss" || lines.some((l) => l.points.length))
    .map(([title, lines]) => lineChart(title, lines));
}

function controls(job, reload) {
  const post = (what) => (e) => act(e.target, async () => { await call("POST", `/v1/fine_tuning/jobs/${job.id}/${what}`); reload(); });
  const running = !FINAL.has(job.status) && job.status !== "paused";
  return h("div", { class: "controls" },
    h("button", { type: "button", disabled: !running, onclick: post("pause") }, "Pause"),
    h("button", { type: "button", disabled: job.status !== "paused", onclick: post("resume") }, "Resume"),
    h("button", { type: "button", class: "danger", disabled: FINAL.has(job.status), onclick: post("cancel") }, "Cancel"));
}

function checkpointTable(checkpoints) {
  if (!checkpoints.length) return h("p", { class: "muted" }, "Checkpoints are listed when the job has succeeded.");
  return table(["step", "metrics", "model"], checkpoints.map((c) => [String(c.step_number),
    Object.entries(c.metrics).filter(([k]) => k !== "step").map(([k, v]) => `${k} ${number(v)}`).join(", "),
    h("span", {}, h("code", {}, c.fine_tuned_model_checkpoint), " ", copyButton(c.fine_tuned_model_checkpoint))]),
  { class: "checkpoints" });
}

function summary(job) {
  const method = job.method ? job.method.type : "supervised";
  const last = job.lastStep;
  return h("dl", { class: "summary" },
    h("dt", {}, "status"), h("dd", {}, h("span", { class: `status ${job.status}`, id: "job-status" }, job.status),
      last ? ` step ${last.step} of ${last.total_steps}` : ""),
    h("dt", {}, "method"), h("dd", {}, method), h("dt", {}, "base model"), h("dd", {}, job.model),
    h("dt", {}, "training file"), h("dd", {}, h("a", { href: `#/files/${job.training_file}` }, job.training_file)),
    job.validation_file ? [h("dt", {}, "validation file"),
      h("dd", {}, h("a", { href: `#/files/${job.validation_file}` }, job.validation_file))] : null,
    h("dt", {}, "seed"), h("dd", {}, String(job.seed)), h("dt", {}, "created"), h("dd", {}, when(job.created_at)),
    job.finished_at ? [h("dt", {}, "finished"), h("dd", {}, when(job.finished_at))] : null,
    job.trained_tokens ? [h("dt", {}, "trained tokens"), h("dd", {}, number(job.trained_tokens))] : null,
    h("dt", {}, "fine-tuned model"), h("dd", {}, job.fine_tuned_model
      ? h("span", {}, h("code", { id: "fine-tuned-model" }, job.fine_tuned_model), " ", copyButton(job.fine_tuned_model),
        " ", h("a", { href: `#/playground?b=${encodeURIComponent(job.fine_tuned_model)}` }, "try it"))
      : h("span", { class: "muted" }, "when the job succeeds")));
}

export function jobView(root, id) {
  let events = [];  // every event seen so far, newest first (the API's order)
  const seen = new Set();
  let timer = null;
  const load = async () => {
    const job = await get(`/v1/fine_tuning/jobs/${id}`);
    const fresh = [];
    for (let after = null; ;) {  // newest first: page back until an event already seen
      const page = await get(`/v1/fine_tuning/jobs/${id}/events?limit=1000${after ? `&after=${after}` : ""}`);
      const unseen = page.data.filter((e) => !seen.has(e.id));
      fresh.push(...unseen);
      if (!page.has_more || unseen.length < page.data.length || !page.data.length) break;
      after = page.data[page.data.length - 1].id;
    }
    fresh.forEach((e) => seen.add(e.id));
    events = [...fresh, ...events];
    const all = events;
    const metrics = all.filter((e) => e.type === "metrics").sort((a, b) => b.data.step - a.data.step);
    job.lastStep = metrics.length ? metrics[0].data : null;
    const checkpoints = job.status === "succeeded" ? await everything(`/v1/fine_tuning/jobs/${id}/checkpoints`) : [];
    return { job, all, checkpoints };
  };
  const draw = ({ job, all, checkpoints }) => clear(root,
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")), h("h1", {}, job.id, " ", copyButton(job.id)),
    job.error && job.error.message ? h("pre", { class: "details bad" }, `${job.error.code}: ${job.error.message}`) : null,
    h("div", { class: "columns" }, h("div", {}, summary(job), controls(job, tick)),
      h("div", { class: "charts" }, curves(all))),
    h("h2", {}, "Hyperparameters"), hyperparameters(job),
    h("h2", {}, "Checkpoints"), checkpointTable(checkpoints),
    h("h2", {}, "Events"), paged(all, 50, (items) => table(["time", "level", "message"],
      items.map((e) => [when(e.created_at), e.level, e.message]), { class: "events" })));
  async function tick() {
    clearTimeout(timer);
    if (!root.isConnected || location.hash !== `#/jobs/${id}`) return;
    const loaded = await act(null, load);
    if (!loaded) return;
    draw(loaded);
    if (!FINAL.has(loaded.job.status)) timer = setTimeout(tick, POLL_MS);
  }
  tick();
}
