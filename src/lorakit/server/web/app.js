// The page's frame: the views by their #address, and the API key asked once per browser session.
import { forgetKey, get, key, setKey } from "./api.js";
import { filesView, fileView } from "./files.js";
import { jobsView, jobView } from "./jobs.js";
import { modelsView } from "./models.js";
import { newJobView } from "./newjob.js";
import { playgroundView } from "./playground.js";
import { act, h, showError } from "./ui.js";

const main = document.getElementById("main");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key");
const forget = document.getElementById("forget-key");

const ROUTES = [
  [/^#\/files\/([\w-]+)$/, (m) => fileView(main, m[1])],
  [/^#\/files$/, () => filesView(main)],
  [/^#\/new$/, () => newJobView(main)],
  [/^#\/jobs\/([\w-]+)$/, (m) => jobView(main, m[1])],
  [/^#\/jobs$/, () => jobsView(main)],
  [/^#\/playground(\?.*)?$/, (m) => playgroundView(main, new URLSearchParams((m[1] || "").slice(1)))],
  [/^#\/models$/, () => modelsView(main)],
];

function route() {
  showError(null);
  const hash = location.hash || "#/jobs";
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", hash.startsWith(link.getAttribute("href")));
  }
  forget.hidden = !key();
  for (const [pattern, view] of ROUTES) {
    const m = hash.match(pattern);
    if (m) return view(m);
  }
  main.replaceChildren(h("p", {}, "No such page. ", h("a", { href: "#/jobs" }, "Jobs")));
  return undefined;
}

// A 401 from any call: ask for the key (kept in sessionStorage until the browser session ends; never in a URL).
window.addEventListener("lorakit:key", (e) => {
  keyForm.hidden = false;
  keyForm.querySelector(".why").textContent = key() ? e.detail.message : "This server needs its API key.";
  keyInput.focus();
});

keyForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  setKey(keyInput.value.trim());
  keyInput.value = "";
  const ok = await act(null, () => get("/v1/models"));
  if (ok) {
    keyForm.hidden = true;
    route();
  }
});

forget.addEventListener("click", () => {
  forgetKey();
  location.reload();
});

window.addEventListener("hashchange", route);
route();
