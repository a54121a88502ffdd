// Playground: one conversation sent to two models side by side, each answer streamed as it is decoded.
import { everything, stream } from "./api.js";
import { act, clear, h } from "./ui.js";

function side(name, models, chosen) {
  const select = h("select", { class: "model", "data-side": name },
    models.map((m) => h("option", { value: m.id, selected: m.id === chosen }, m.id)));
  const log = h("div", { class: "transcript", "data-side": name });
  return { name, select, log, history: [], box: h("section", { class: "side" }, select, log) };
}

function bubble(role, text) {
  return h("div", { class: `turn ${role}` }, h("span", { class: "role" }, role), h("div", { class: "text" }, text));
}

async function answer(s, system, settings) {
  const messages = [...(system ? [{ role: "system", content: system }] : []), ...s.history];
  const out = bubble("assistant", "");
  out.classList.add("streaming");
  const text = out.querySelector(".text");
  s.log.append(out);
  let reply = "", finish = null;
  try {
    for await (const chunk of stream("/v1/chat/completions", { model: s.select.value, messages, stream: true, ...settings })) {
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) continue;
      reply += (choice.delta && choice.delta.content) || "";
      text.textContent = reply;
      finish = choice.finish_reason || finish;
    }
    s.history.push({ role: "assistant", content: reply });
    out.append(h("small", { class: "muted finish" }, `${s.select.value} · ${finish || "stopped"}`));
  } catch (err) {
    out.classList.add("bad");
    text.textContent = err.message;
    s.history.pop();  // the question goes back: ask again
    throw err;
  } finally {
    out.classList.remove("streaming");
    out.dataset.done = "true";
  }
}

export async function playgroundView(root, params) {
  const models = await act(null, () => everything("/v1/models"));
  if (!models) return;
  const base = (models.find((m) => !m.parent) || models[0]).id;
  const newest = models.filter((m) => m.parent && !/:ckpt-step-\d+$/.test(m.id)).sort((x, y) => y.created - x.created)[0];
  const tuned = params.get("b") || (newest || { id: base }).id;
  const sides = [side("a", models, params.get("a") || base), side("b", models, tuned)];
  const system = h("input", { id: "system", placeholder: "system prompt (optional)" });
  const temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0 });
  const maxTokens = h("input", { id: "max-tokens", type: "number", min: 1, value: 128 });
  const message = h("textarea", { id: "message", rows: 3, placeholder: "a message to both models" });
  const send = (e) => act(e.target, async () => {
    const content = message.value.trim();
    if (!content) return;
    message.value = "";
    for (const s of sides) {
      s.history.push({ role: "user", content });
      s.log.append(bubble("user", content));
    }
    const settings = { temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) };
    const results = await Promise.allSettled(sides.map((s) => answer(s, system.value.trim(), settings)));
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  });
  const reset = () => sides.forEach((s) => { s.history = []; clear(s.log); });
  clear(root, h("h1", {}, "Playground"),
    h("div", { class: "row" }, h("label", { class: "field wide" }, h("span", {}, "system"), system),
      h("label", { class: "field" }, h("span", {}, "temperature"), temperature),
      h("label", { class: "field" }, h("span", {}, "max tokens"), maxTokens)),
    h("div", { class: "sides" }, sides.map((s) => s.box)),
    h("form", { class: "compose", onsubmit: (e) => e.preventDefault() }, message,
      h("button", { type: "submit", id: "send", class: "primary", onclick: send }, "Send to both"),
      h("button", { type: "button", onclick: reset }, "New conversation")));
}
