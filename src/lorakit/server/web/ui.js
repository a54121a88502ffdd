// Small DOM helpers. Text from the API is only ever set as text (never as HTML).
import { ApiError } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const when = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "");

export function number(value, digits = 4) {
  if (value === null || value === undefined || value === "") return "";
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(digits) : String(value);
}

// The API's words for what went wrong, in the banner at the top; or nothing.
export function showError(err) {
  const banner = document.getElementById("error");
  if (!err) {
    banner.hidden = true;
    return;
  }
  const text = err instanceof ApiError ? err.message : `${err.message || err}`;
  clear(banner, h("span", { class: "message" }, text),
    err.code ? h("code", {}, err.code) : null,
    h("button", { type: "button", class: "link", onclick: () => showError(null) }, "dismiss"));
  banner.hidden = false;
}

// Run an action from a button: errors go to the banner, the button waits meanwhile.
export async function act(button, work) {
  showError(null);
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = h("textarea", { readonly: true, class: "offscreen" }, text); // a page served over plain http to a LAN
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  return undefined;
}

export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "copy", "data-copy": text, title: `Copy ${text}` }, label);
  button.addEventListener("click", async () => {
    try {
      await copyText(text);
      button.textContent = "Copied";
    } catch (err) {
      showError(err);
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

export function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

// A list shown `size` at a time, with Previous and Next.
export function paged(items, size, render) {
  const box = h("div", { class: "paged" });
  let at = 0;
  const draw = () => {
    const pages = Math.max(1, Math.ceil(items.length / size));
    clear(box, render(items.slice(at * size, (at + 1) * size)),
      items.length > size ? h("div", { class: "pager" },
        h("button", { type: "button", disabled: at === 0, onclick: () => { at -= 1; draw(); } }, "Previous"),
        h("span", {}, `page ${at + 1} of ${pages} (${items.length})`),
        h("button", { type: "button", disabled: at + 1 >= pages, onclick: () => { at += 1; draw(); } }, "Next"))
        : null);
  };
  draw();
  return box;
}

// A list the API pages (cursor paging): `load(after)` gives one page; Previous goes back through the cursors seen.
export function cursorPaged(load, render) {
  const box = h("div", { class: "paged" });
  const cursors = [null];
  const draw = async () => {
    const page = await load(cursors[cursors.length - 1]);
    clear(box, render(page.data), cursors.length > 1 || page.has_more ? h("div", { class: "pager" },
      h("button", { type: "button", disabled: cursors.length === 1,
        onclick: () => { cursors.pop(); act(null, draw); } }, "Previous"),
      h("span", {}, `page ${cursors.length}`),
      h("button", { type: "button", disabled: !page.has_more,
        onclick: () => { cursors.push(page.last_id); act(null, draw); } }, "Next")) : null);
  };
  box.ready = act(null, draw);
  box.refresh = () => act(null, draw);  // the same page again
  return box;
}
