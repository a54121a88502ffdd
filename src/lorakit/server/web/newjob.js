// New job: method, base model, files, hyperparameters ("auto" leaves lorakit's choice), suffix, seed; for
// reinforcement, a grader with "Test this grader" on a sample (POST /v1/fine_tuning/alpha/graders/run).
import { call, everything } from "./api.js";
import { act, clear, h, number } from "./ui.js";

const HYPERPARAMETERS = {
  supervised: ["n_epochs", "batch_size", "learning_rate_multiplier"],
  dpo: ["n_epochs", "batch_size", "learning_rate_multiplier", "beta"],
  reinforcement: ["n_epochs", "batch_size", "learning_rate_multiplier", "compute_multiplier", "eval_interval",
    "eval_samples"],
};
const HOLDS = { supervised: "chat", dpo: "pairs", reinforcement: "tasks" };
const GRADERS = {
  string_check: { type: "string_check", name: "exact answer", input: "{{ sample.output_text }}",
    reference: "{{ item.answer }}", operation: "eq" },
  text_similarity: { type: "text_similarity", name: "close to the answer", input: "{{ sample.output_text }}",
    reference: "{{ item.answer }}", evaluation_metric: "fuzzy_match" },
  python: { type: "python", name: "python", source:
    "def grade(sample, item) -> float:\n    return float(sample['output_text'].strip() == item['answer'])\n" },
  score_model: { type: "score_model", name: "judge", model: "", range: [0, 1], input: [{ role: "user", content:
    "Answer: {{ sample.output_text }}\nExpected: {{ item.answer }}\nScore 0 to 1." }] },
};

function field(label, input, note) {
  return h("label", { class: "field" }, h("span", {}, label), input, note ? h("small", { class: "muted" }, note) : null);
}

function options(items, selected) {
  return items.map(([value, text]) => h("option", { value, selected: value === selected }, text));
}

function graderEditor() {
  const text = h("textarea", { id: "grader", rows: 8, spellcheck: "false" }, JSON.stringify(GRADERS.string_check, null, 2));
  const pick = h("select", { id: "grader-type" }, options(Object.keys(GRADERS).map((k) => [k, k]), "string_check"));
  pick.addEventListener("change", () => { text.value = JSON.stringify(GRADERS[pick.value], null, 2); });
  const sample = h("textarea", { id: "grader-sample", rows: 2 }, "Paris");
  const item = h("textarea", { id: "grader-item", rows: 2, spellcheck: "false" }, '{"answer": "Paris"}');
  const result = h("div", { id: "grader-result", class: "result" });
  const parsed = () => JSON.parse(text.value);
  const test = (e) => act(e.target, async () => {
    clear(result, h("span", { class: "muted" }, "grading…"));
    const run = await call("POST", "/v1/fine_tuning/alpha/graders/run",
      { grader: parsed(), model_sample: sample.value, item: JSON.parse(item.value) }).catch((err) => {
      clear(result);
      throw err;
    });
    const meta = run.metadata || {};
    const errors = Object.entries(meta.errors || {}).filter(([, v]) => v === true).map(([k]) => k);
    clear(result, h("b", {}, `reward ${number(run.reward)}`),
      Object.keys(run.sub_rewards || {}).length ? ` (${Object.entries(run.sub_rewards).map(([k, v]) => `${k} ${number(v)}`).join(", ")})` : "",
      ` in ${number(meta.execution_time, 3)} s`, errors.length ? h("div", { class: "bad" }, errors.join(", ")) : null,
      meta.error_message ? h("pre", { class: "details bad" }, meta.error_message) : null);
  });
  const box = h("fieldset", { id: "grader-box" }, h("legend", {}, "Grader"),
    field("start from", pick), field("grader (OpenAI's grader JSON)", text),
    h("div", { class: "row" }, field("a sample answer", sample), field("its task's fields (item)", item)),
    h("button", { type: "button", id: "grader-test", onclick: test }, "Test this grader"), result);
  box.grader = parsed;
  return box;
}

function hpValue(raw) {
  const v = raw.trim();
  if (v === "" || v === "auto") return "auto";
  const n = Number(v);
  return Number.isFinite(n) ? n : v;  // a word other than auto: the API says what is wrong with it
}

export async function newJobView(root) {
  const [models, files] = await Promise.all([act(null, () => everything("/v1/models")),
    act(null, () => everything("/v1/files?purpose=fine-tune"))]);
  if (!models || !files) return;
  const method = h("select", { id: "method" }, options(Object.keys(HOLDS).map((m) => [m, m]), "supervised"));
  const model = h("select", { id: "model" }, options(models.map((m) => [m.id, m.parent ? m.id : `${m.id} (base)`]),
    (models.find((m) => !m.parent) || {}).id));
  const fileOptions = (first) => [h("option", { value: "" }, first), ...files.map((f) =>
    h("option", { value: f.id }, `${f.filename} · ${f.id} · ${f.status}${f.lorakit_kind ? ` · ${f.lorakit_examples} ${f.lorakit_kind}` : ""}`))];
  const training = h("select", { id: "training-file" }, fileOptions("choose a file"));
  const validation = h("select", { id: "validation-file" }, fileOptions("none: every example trains"));
  const hp = h("div", { class: "row", id: "hyperparameters" });
  const suffix = h("input", { id: "suffix", maxlength: 64, placeholder: "e.g. support-bot" });
  const seed = h("input", { id: "seed", type: "number", min: 0, placeholder: "random" });
  const grader = graderEditor();
  const drawMethod = () => {
    clear(hp, HYPERPARAMETERS[method.value].map((name) => field(name, h("input", { name, value: "auto" }))));
    grader.hidden = method.value !== "reinforcement";
    const holds = HOLDS[method.value];
    const match = files.find((f) => f.lorakit_kind === holds && f.status === "processed");
    if (match && !training.value) training.value = match.id;
  };
  method.addEventListener("change", drawMethod);
  const create = (e) => act(e.target, async () => {
    const type = method.value;
    const hyperparameters = Object.fromEntries([...hp.querySelectorAll("input")].map((i) => [i.name, hpValue(i.value)]));
    const own = { hyperparameters, ...(type === "reinforcement" ? { grader: grader.grader() } : {}) };
    const body = { model: model.value, training_file: training.value, method: { type, [type]: own } };
    if (validation.value) body.validation_file = validation.value;
    if (suffix.value.trim()) body.suffix = suffix.value.trim();
    if (seed.value !== "") body.seed = Number(seed.value);
    const job = await call("POST", "/v1/fine_tuning/jobs", body);
    location.hash = `#/jobs/${job.id}`;
  });
  clear(root, h("h1", {}, "New fine-tuning job"), h("form", { class: "job", onsubmit: (e) => e.preventDefault() },
    h("div", { class: "row" }, field("method", method), field("base model", model,
      "this server's base model, or a model fine-tuned from it to train further")),
    h("div", { class: "row" }, field("training file", training, h("a", { href: "#/files" }, "upload one")),
      field("validation file", validation)),
    h("fieldset", {}, h("legend", {}, "Hyperparameters (auto: lorakit decides from the data's size)"), hp),
    h("div", { class: "row" }, field("suffix", suffix, "in the model's id: ft:<base>:<suffix>:<job>"), field("seed", seed)),
    grader, h("button", { type: "submit", id: "create-job", class: "primary", onclick: create }, "Start the job")));
  drawMethod();
}
