// speciesgan studio page: talks to /api/* only; every text from the server goes in via textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  species: [],        // [{id, name, category}] chosen: the first is drawn, the rest mix in
  seed: 0,
  around: null,       // {seed, count, index} while showing "more like this"
  records: [],        // records of the pictures in the grid (for the ZIP)
  gridToken: 0,
  stripToken: 0,
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function say(text, error = false) {
  const box = $("messages");
  box.replaceChildren();
  if (text) box.append(el("p", { class: error ? "error" : "", text }));
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    const problem = type.includes("json") ? await response.json() : { error: response.statusText };
    const hint = problem.suggestions && problem.suggestions.length
      ? ` Did you mean: ${problem.suggestions.join(", ")}?` : "";
    throw new Error(problem.error + hint);
  }
  return type.includes("json") ? response.json() : response.blob();
}

// ---------------------------------------------------------------- 1. find a species
function suggestionBox(input, list, onPick) {
  let timer = null;
  let token = 0;
  async function update() {
    const mine = ++token;
    const query = input.value;
    if (!query.trim()) { list.replaceChildren(); return; }
    const answer = await api(`/api/species?q=${encodeURIComponent(query)}`);
    if (mine !== token) return;
    list.replaceChildren(...answer.matches.map((entry) => {
      const item = el("li", { role: "option", "data-id": String(entry.id) },
        el("span", { text: entry.name }),
        el("span", { class: "category", text: entry.category || "category unknown" }));
      item.addEventListener("click", () => { list.replaceChildren(); input.value = ""; onPick(entry); });
      return item;
    }));
    if (!answer.matches.length) list.append(el("li", { text: "no species match" }));
  }
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 120); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && list.firstChild && list.firstChild.dataset.id) list.firstChild.click();
  });
}

function renderChosen() {
  const box = $("chosen");
  box.replaceChildren(...state.species.map((entry, position) => {
    const remove = el("button", { type: "button", "aria-label": `remove ${entry.name}`, text: "×" });
    remove.addEventListener("click", () => {
      state.species.splice(position, 1);
      speciesChanged();
    });
    return el("span", { class: "chip" }, `${entry.name}${entry.category ? ` (${entry.category})` : ""} `, remove);
  }));
}

function speciesChanged() {
  renderChosen();
  const any = state.species.length > 0;
  $("see").hidden = !any;
  $("mix-search-box").hidden = !any || state.species.length >= state.info.max_mix;
  $("mix").hidden = state.species.length < 2;
  state.around = null;
  if (!any) return;
  $("mix-left").textContent = state.species[0].name;
  $("mix-right").textContent = state.species.slice(1).map((s) => s.name).join(" → ");
  loadGrid();
  if (state.species.length > 1) loadStrip();
}

// ---------------------------------------------------------------- 2. see it
function figure(picture, onClick) {
  const url = `data:image/png;base64,${picture.png}`;
  const record = picture.record;
  const image = el("img", { src: url, alt: `${record.species.map((s) => s.name).join(" + ")}, seed ${record.seed} #${record.index}` });
  if (onClick) image.addEventListener("click", onClick);
  const sidecar = URL.createObjectURL(new Blob([JSON.stringify(record, null, 2) + "\n"], { type: "application/json" }));
  const step = record.step ? ` · step ${record.step.seed}` : "";
  return el("figure", {},
    image,
    el("figcaption", {}, `seed ${record.seed} #${record.index}${step} `,
      el("a", { href: url, download: `${picture.name}.png`, class: "png", text: "PNG" }),
      el("a", { href: sidecar, download: `${picture.name}.json`, class: "json", text: "JSON" })));
}

function gridRequest() {
  const n = Number($("count").value) || 16;
  const request = { species: [state.species[0].id], seed: state.seed, n };
  if (state.around) {
    request.around = state.around;
    request.step = Number($("step").value);
  }
  return request;
}

async function loadGrid() {
  const mine = ++state.gridToken;
  $("seed").value = state.seed;
  $("back").hidden = $("step-label").hidden = !state.around;
  $("grid-title").textContent = state.around
    ? `more like seed ${state.around.seed} #${state.around.index}` : `${state.species[0].name}, seed ${state.seed}`;
  try {
    const answer = await api("/api/pictures", gridRequest());
    if (mine !== state.gridToken) return;
    say(answer.messages.join(" "));
    state.records = answer.pictures.map((p) => p.record);
    $("grid").replaceChildren(...answer.pictures.map((picture) => figure(picture, () => {
      state.around = { seed: picture.record.seed, count: picture.record.count, index: picture.record.index };
      loadGrid();
    })));
    $("grid").dataset.ready = String(mine);
  } catch (error) { say(error.message, true); }
}

async function downloadZip() {
  try {
    const blob = await api("/api/zip", { records: state.records });
    const link = el("a", { href: URL.createObjectURL(blob), download: "speciesgan-grid.zip" });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) { say(error.message, true); }
}

// ---------------------------------------------------------------- 3. mix it
function mixWeights() {
  // the slider walks A -> B (-> C): between two neighbours the weights move linearly
  const segments = state.species.length - 1;
  const position = (Number($("mix-slider").value) / 100) * segments;
  const segment = Math.min(Math.floor(position), segments - 1);
  const f = position - segment;
  const weights = state.species.map(() => 0);
  weights[segment] = 1 - f;
  weights[segment + 1] = f;
  return weights;
}

async function loadStrip() {
  const mine = ++state.stripToken;
  const weights = mixWeights();
  $("mix-weights").textContent = state.species
    .map((s, i) => `${s.name} ${Math.round(weights[i] * 100)}%`).join(" · ");
  try {
    const answer = await api("/api/pictures", {
      species: state.species.map((s) => s.id), mix: weights, seed: state.seed, n: 8,
    });
    if (mine !== state.stripToken) return;
    $("strip").replaceChildren(...answer.pictures.map((picture) => figure(picture, null)));
    $("strip").dataset.ready = String(mine);
  } catch (error) { say(error.message, true); }
}

// ---------------------------------------------------------------- honest panel
function fmt(value) {
  return value === null || value === undefined ? "not computed" : Number(value).toPrecision(3);
}

function renderMetrics(panel) {
  const box = $("metrics");
  if (!panel.available) {
    box.replaceChildren(el("p", { class: "muted", text: `No run figures: ${panel.note}.` }));
    return;
  }
  const head = el("tr", {}, el("th", { text: "figure" }), el("th", { text: "value" }), el("th", { text: "floor" }));
  const rows = panel.headline.map((row) => el("tr", {},
    el("td", { text: `${row.name} (${row.direction})` }), el("td", { text: fmt(row.value) }),
    el("td", { text: row.floor === null ? row.floor_note : `${fmt(row.floor)} (${row.floor_note})` })));
  const worst = panel.worst.map((row) => el("li", { text: `${row.species}: ${fmt(row.accuracy)}` }));
  box.replaceChildren(el("table", {}, head, ...rows),
    el("p", { text: "Species it draws worst (generated accuracy):" }), el("ol", {}, ...worst));
  if (panel.note) box.append(el("p", { class: "muted", text: panel.note }));
}

// ---------------------------------------------------------------- start
async function start() {
  state.info = await api("/api/info");
  $("model").textContent = `${state.info.generator} · sha256 ${state.info.generator_sha256.slice(0, 12)}… · `
    + `${state.info.species_count} species · ${state.info.image_size} px`;
  $("count").value = state.info.default_pictures;
  $("count").max = state.info.max_pictures;
  renderMetrics(state.info.metrics);
  suggestionBox($("search"), $("suggestions"), (entry) => { state.species = [entry]; speciesChanged(); });
  suggestionBox($("mix-search"), $("mix-suggestions"), (entry) => {
    if (state.species.some((s) => s.id === entry.id)) { say(`${entry.name} is already in the mix`); return; }
    state.species.push(entry);
    speciesChanged();
  });
  $("new-seeds").addEventListener("click", () => {
    state.seed = Math.floor(Math.random() * 1e9);
    loadGrid();
    if (state.species.length > 1) loadStrip();
  });
  $("seed").addEventListener("change", () => { state.seed = Math.max(0, Math.floor(Number($("seed").value) || 0)); loadGrid(); });
  $("count").addEventListener("change", loadGrid);
  $("step").addEventListener("change", loadGrid);
  $("back").addEventListener("click", () => { state.around = null; loadGrid(); });
  $("zip").addEventListener("click", downloadZip);
  let timer = null;
  $("mix-slider").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(loadStrip, 80); });
}

start().catch((error) => say(`cannot reach the studio server: ${error.message}`, true));
