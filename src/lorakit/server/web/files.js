// Files: upload a JSONL, see what the prepare stage finds in it (GET /v1/files/{id}/report), list and delete.
import { call, get } from "./api.js";
import { act, clear, copyButton, cursorPaged, h, number, paged, table, when } from "./ui.js";

const FINDINGS_PER_PAGE = 50;

function uploader() {
  const input = h("input", { type: "file", id: "upload-file", accept: ".jsonl,.json,.csv,.txt" });
  const status = h("span", { class: "muted", id: "upload-status" });
  const send = async (file) => {
    const form = new FormData();
    form.append("purpose", "fine-tune");
    form.append("file", file, file.name);
    status.textContent = `uploading ${file.name}…`;
    const made = await act(null, () => call("POST", "/v1/files", form));
    status.textContent = "";
    if (made) location.hash = `#/files/${made.id}`;
  };
  input.addEventListener("change", () => input.files[0] && send(input.files[0]));
  const zone = h("label", { class: "drop", for: "upload-file" },
    h("strong", {}, "Drop a JSONL file here, or choose one"),
    h("span", { class: "muted" }, "chat examples, DPO pairs or reinforcement tasks (OpenAI's formats; ShareGPT, "
      + "Alpaca, prompt/completion and CSV too)"), input, status);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]);
  });
  return zone;
}

function fileRows(files, refresh) {
  if (!files.length) return h("p", { class: "muted" }, "No files yet.");
  return table(["file", "id", "purpose", "status", "holds", "bytes", "uploaded", ""], files.map((f) => [
    h("a", { href: `#/files/${f.id}` }, f.filename), h("code", {}, f.id), f.purpose,
    h("span", { class: `status ${f.status}` }, f.status),
    f.status === "processed" && f.lorakit_kind ? `${f.lorakit_examples} ${f.lorakit_kind}` : "", number(f.bytes),
    when(f.created_at),
    h("button", { type: "button", class: "danger", onclick: (e) => act(e.target, async () => {
      await call("DELETE", `/v1/files/${f.id}`);
      refresh();
    }) }, "Delete"),
  ]), { class: "files" });
}

export function filesView(root) {
  const list = h("div");
  const refresh = () => clear(list, cursorPaged((after) => get(`/v1/files?limit=20${after ? `&after=${after}` : ""}`),
    (files) => fileRows(files, refresh)));
  refresh();
  clear(root, h("h1", {}, "Files"), uploader(), list);
}

function accounting(report) {
  const acc = report.accounting;
  const reasons = Object.entries(acc.dropped_by_reason || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  return h("section", { class: "counts" },
    h("div", {}, h("b", {}, acc.records), " records"),
    h("div", {}, h("b", {}, acc.used.train), " to train on"),
    acc.used.validation ? h("div", {}, h("b", {}, acc.used.validation), " validation") : null,
    h("div", { class: acc.dropped ? "bad" : "" }, h("b", {}, acc.dropped), " dropped", reasons ? ` (${reasons})` : ""),
    h("div", {}, h("b", {}, report.findings.length), " findings"));
}

function findings(report) {
  if (!report.findings.length) return h("p", { class: "good" }, "No findings: every line is usable as it is.");
  return paged(report.findings, FINDINGS_PER_PAGE, (items) => table(["line", "category", "severity", "what and the fix"],
    items.map((f) => [String(f.line), h("code", {}, f.category), h("span", { class: f.severity }, f.severity),
      f.message]), { class: "findings" }));
}

function tokens(report) {
  const tok = report.tokens, length = tok.train_length || {}, cost = report.openai_cost;
  const costLine = cost.usd !== null && cost.usd !== undefined
    ? `${cost.model}: ${number(cost.billed_tokens)} billed tokens × $${cost.usd_per_1m_training_tokens}/1M = `
      + `$${cost.usd.toFixed(2)} (rates as of ${cost.rates_as_of}; ${cost.note})`
    : `${cost.model}: ${cost.note || "no rate in conf/pricing"}`;
  return h("section", {},
    h("h2", {}, "Tokens"),
    h("ul", {},
      h("li", {}, `tokenizer: ${tok.model}`),
      h("li", {}, `length per example: p50 ${length.p50 ?? "–"}, p90 ${length.p90 ?? "–"}, p99 ${length.p99 ?? "–"}, `
        + `max ${length.max ?? "–"}`),
      h("li", {}, `per epoch: ${number(tok.per_epoch)} tokens, ${number(tok.assistant_trained_per_epoch)} of them `
        + `assistant tokens trained; × ${tok.epochs} epoch(s) = ${number(tok.total)} tokens`)),
    h("h2", {}, "Hosted fine-tuning cost (estimate)"), h("p", { class: "cost" }, costLine),
    report.decisions && report.decisions.length ? [h("h2", {}, "Decided from the data's size"),
      h("ul", {}, report.decisions.map((d) => h("li", {}, h("code", {}, `${d.setting}=${d.value}`), `: ${d.reason}`)))]
      : null);
}

export async function fileView(root, id) {
  const meta = await act(null, () => get(`/v1/files/${id}`));
  if (!meta) return;
  const body = h("div", {}, h("p", { class: "muted" }, "Checking the file as the prepare stage does…"));
  clear(root, h("p", {}, h("a", { href: "#/files" }, "← Files")),
    h("h1", {}, meta.filename), h("p", {}, h("code", {}, meta.id), " ", copyButton(meta.id), " ",
      h("span", { class: `status ${meta.status}` }, meta.status),
      meta.status === "processed" && meta.lorakit_kind ? ` ${meta.lorakit_examples} ${meta.lorakit_kind}` : ""),
    meta.purpose === "fine-tune" ? body : h("p", {}, `purpose ${meta.purpose}`));
  if (meta.purpose !== "fine-tune") return;
  const report = await act(null, () => get(`/v1/files/${id}/report`));
  if (!report) {
    clear(body, meta.status_details ? h("pre", { class: "details" }, meta.status_details) : null);
    return;
  }
  clear(body, meta.status === "error" ? h("p", { class: "bad", id: "refused-note" }, "A fine-tuning job refuses this "
      + "file until every line is usable (as OpenAI's do): fix the lines below and upload it again. python -m train "
      + "trains on it as it is, without the dropped lines.") : null,
    h("p", {}, `Read as data for a ${report.method} job: no validation split held out, as for a job without a `
      + "validation file."), accounting(report), h("h2", {}, "Findings"), findings(report), tokens(report));
}
