// Models: the base model, adapters given at start, fine-tuned models and their checkpoints; delete a fine-tuned one.
import { call, everything } from "./api.js";
import { act, clear, copyButton, h, table, when } from "./ui.js";

export function kindOf(model) {
  if (!model.parent) return "base";
  if (/:ckpt-step-\d+$/.test(model.id)) return "checkpoint";
  return model.id.startsWith("ft:") ? "fine-tuned" : "adapter";
}

function deleteButton(model, reload) {
  const button = h("button", { type: "button", class: "danger", "data-model": model.id }, "Delete");
  button.addEventListener("click", () => {
    if (button.dataset.armed !== "true") {  // a second click deletes
      button.dataset.armed = "true";
      button.textContent = "Click again to delete";
      setTimeout(() => { button.dataset.armed = "false"; button.textContent = "Delete"; }, 4000);
      return;
    }
    act(button, async () => {
      await call("DELETE", `/v1/models/${encodeURIComponent(model.id)}`);
      reload();
    });
  });
  return button;
}

export async function modelsView(root) {
  const reload = () => modelsView(root);
  const models = await act(null, () => everything("/v1/models"));
  if (!models) return;
  clear(root, h("h1", {}, "Models"),
    h("p", { class: "muted" }, "Deleting a fine-tuned model stops serving it and its checkpoints; its job's files stay "
      + "on the server."),
    table(["model", "kind", "base", "created", ""], models.map((m) => {
      const kind = kindOf(m);
      return [h("span", {}, h("code", {}, m.id), " ", copyButton(m.id)), kind, m.parent || "", when(m.created),
        h("span", { class: "actions" }, h("a", { href: `#/playground?b=${encodeURIComponent(m.id)}` }, "try"),
          kind === "base" ? null : deleteButton(m, reload))];
    }), { class: "models" }));
}
