// The page at GET /: classify tweets, show the model card and the live panel (GET /v1/stats).
// No framework and no build step. Tweet text only ever goes to POST /classify (and to POST /feedback when the user
// corrects a label), never into storage.
"use strict";

const STATS_EVERY_MS = 5000;
const ENTITY_KEY = "reputation.entity";
const TOKEN_KEY = "reputation.token";
const $ = (id) => document.getElementById(id);

class Unauthorized extends Error {}

let statsTimer = null;
let modelTimer = null;
let lastAnswer = null;
// This service's MAX_TWEETS, MAX_TEXT_CHARS, which characters the model reads and whether it takes corrections
// (POST /feedback), from /openapi.json: checked before sending.
let limits = null;
const UNREACHABLE = "The service cannot be reached: is it running, and is this its address?";

// Web storage, which a browser blocks where it refuses site data: the page then works without it (the token for as
// long as the page is open, the entity not remembered).
function read(area, key) {
  try {
    return window[area].getItem(key);
  } catch {
    return null;
  }
}

function write(area, key, value) {
  try {
    if (value === null) window[area].removeItem(key);
    else window[area].setItem(key, value);
  } catch {
    // blocked: nothing kept
  }
}

// Whether a token can be sent: printable ASCII, as the service's (a header cannot carry others: fetch refuses to try).
function sendable(value) {
  return /^[\x20-\x7e]+$/.test(value);
}

let heldToken = read("sessionStorage", TOKEN_KEY);
if (heldToken !== null && !sendable(heldToken)) heldToken = null; // kept by an earlier page that did not check

function token() {
  return heldToken;
}

function keepToken(value) {
  heldToken = value;
  write("sessionStorage", TOKEN_KEY, value);
}

async function api(path, body) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = "Bearer " + token();
  const init = { headers, cache: "no-store" };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Error(UNREACHABLE); // the browser's own words ("Failed to fetch") say nothing to a user
  }
  const answer = await response.json().catch(() => null);
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    const message = answer && answer.error ? answer.error.message : response.statusText;
    throw new Error(`${message} (HTTP ${response.status})`);
  }
  return answer;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function percent(x) {
  return (100 * x).toFixed(1) + "%";
}

// --- authentication -------------------------------------------------------------------------

function askForToken() {
  const rejected = token() !== null;
  keepToken(null);
  clearTimeout(statsTimer);
  clearTimeout(modelTimer);
  $("auth").hidden = false;
  $("auth-status").className = rejected ? "error" : "note";
  $("auth-status").textContent = rejected ? "That token was not accepted. Check it and try again."
    : "This service asks for its access token (AUTH_TOKEN).";
  $("token").focus();
}

function handle(error, where) {
  if (error instanceof Unauthorized) askForToken();
  else where.textContent = error.message;
}

async function useToken(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) {
    $("auth-status").textContent = "Type the token first.";
    return;
  }
  if (!sendable(value)) {
    $("auth-status").className = "error";
    $("auth-status").textContent = "A token holds only letters, digits and ASCII punctuation: this one holds another "
      + "character. Check it and try again.";
    return;
  }
  keepToken(value);
  $("token").value = "";
  if (await startPanels()) {
    $("auth-status").className = "note";
    $("auth-status").textContent = "Token accepted; it is kept in this tab only.";
  }
}

// --- classification -------------------------------------------------------------------------

function scoreBar(label, score) {
  const fill = el("span", { class: `fill ${label}` });
  fill.style.width = percent(score);
  return el("div", { class: "score" },
    el("span", { class: "score-name" }, label),
    el("span", { class: "bar", "aria-hidden": "true" }, fill),
    el("span", { class: "score-value" }, percent(score)));
}

function showResults(texts, entity, results, unjudged) {
  const list = el("ol", { class: "results" });
  texts.forEach((text, i) => {
    const r = results[i];
    const item = el("li", { class: "result" },
      el("p", { class: "tweet", dir: "auto" }, text),
      el("p", { class: "verdict" }, el("span", { class: `label ${r.label}` }, r.label)));
    if (typeof r.related === "number") { // the entity isolated: a right-to-left one cannot turn these words round
      item.querySelector(".verdict").append(` ${r.about ? "" : "not "}about `, entity ? el("bdi", {}, entity) : "the entity",
        ` (related ${percent(r.related)})`);
    }
    for (const [label, score] of Object.entries(r.scores)) item.append(scoreBar(label, score));
    if (limits && limits.feedback) item.append(correction(text, entity, r.label, i + 1));
    list.append(item);
  });
  const counts = {};
  for (const r of results) counts[r.label] = (counts[r.label] || 0) + 1;
  const summary = Object.entries(counts).map(([label, n]) => `${n} ${label}`).join(", ");
  const note = unjudged ? " Without an entity, whether they are about it is not judged." : "";
  $("results").replaceChildren(el("p", { class: "summary" },
    `${results.length} ${results.length === 1 ? "tweet" : "tweets"}: ${summary}.${note}`), list);
}

// A control under a result, where the service takes corrections: the right label, or "not about" the entity.
function correction(text, entity, label, number) {
  if (!entity) return el("p", { class: "note" }, "Give the entity to correct this label.");
  const choice = el("select", { "aria-label": `Right label for tweet ${number}` },
    ...limits.labels.map((name) => el("option", { value: name }, name)),
    el("option", { value: "" }, `not about ${entity}`));
  choice.value = label;
  const send = el("button", { type: "button", class: "secondary" }, "Correct");
  const status = el("span", { class: "note", role: "status" });
  let stored = null; // the choice stored last: stored once
  send.addEventListener("click", async () => {
    const body = choice.value ? { text, entity, label: choice.value } : { text, entity, related: false };
    send.disabled = true;
    try {
      await api("/feedback", body);
      stored = choice.value;
      status.className = "note";
      status.textContent = "Stored on this device, for the next adapted model.";
    } catch (error) {
      status.className = "error";
      handle(error, status);
      send.disabled = false;
    }
  });
  choice.addEventListener("change", () => {
    send.disabled = choice.value === stored;
    status.className = "note";
    status.textContent = "";
  });
  return el("div", { class: "row correction" }, choice, send, status);
}

async function loadLimits() {
  try {
    const spec = await api("/openapi.json");
    const schemas = spec.components.schemas;
    limits = {
      tweets: schemas.Batch.properties.tweets.maxItems,
      chars: schemas.Tweet.properties.text.maxLength,
      visible: new RegExp(schemas.Tweet.properties.text.pattern, "u"), // a character the model reads
      feedback: "/feedback" in spec.paths,
      labels: schemas.Feedback.properties.label.enum.filter((name) => name !== null), // null: "not about"
    };
  } catch {
    limits = null; // the service checks them anyway
  }
}

// Whether a line holds a character the model reads (not only spaces, zero-width or control characters).
function readable(text) {
  return limits ? limits.visible.test(text) : text !== "";
}

// The service's message in the form's words: its tweets[i] is line n of the box, its entity the field.
function inFormWords(message, lines) {
  return message.replace(/'(?:tweets\[(\d+)\]\.)?(text|entity)'/g, (whole, index, field) => {
    if (field === "entity") return "The entity";
    const line = lines[Number(index || 0)];
    return line ? `Line ${line.line}` : whole;
  });
}

// What is over this service's limits, in the words of the form ("" when nothing is).
function overLimits(lines, entity) {
  if (!limits) return "";
  const length = (text) => [...text].length; // characters, as the service counts them (not UTF-16 units)
  if (lines.length > limits.tweets) {
    return `${lines.length} tweets: this service takes at most ${limits.tweets} at a time (MAX_TWEETS).`;
  }
  const long = lines.find(({ text }) => length(text) > limits.chars);
  if (long) {
    return `Line ${long.line} has ${length(long.text)} characters: the limit is ${limits.chars} (MAX_TEXT_CHARS).`;
  }
  if (length(entity) > limits.chars) {
    return `The entity has ${length(entity)} characters: the limit is ${limits.chars} (MAX_TEXT_CHARS).`;
  }
  return "";
}

// An error in place of the results: what is shown and copied is never an earlier answer.
function showError(error) {
  lastAnswer = null;
  $("results").replaceChildren();
  $("copy").disabled = true;
  $("copy-status").textContent = "";
  handle(error, $("error"));
}

async function classify(event) {
  event.preventDefault();
  if ($("classify").disabled) return; // an answer is awaited: one request at a time, answers in order
  // Lines with nothing the model reads (blank, or only zero-width characters) are left out, as blank ones look.
  const lines = $("tweet").value.split("\n").map((t, i) => ({ line: i + 1, text: t.trim() }))
    .filter((l) => readable(l.text));
  const texts = lines.map((l) => l.text);
  const typed = $("entity").value.trim();
  write("localStorage", ENTITY_KEY, typed);
  const entity = readable(typed) ? typed : ""; // one of only invisible characters is none, as the service reads it
  $("error").textContent = "";
  const refused = texts.length ? overLimits(lines, entity) : "Type a tweet first (one per line for several).";
  if (refused) {
    showError(new Error(refused));
    $("tweet").focus();
    return;
  }
  const tweet = (text) => (entity ? { text, entity } : { text });
  const body = texts.length === 1 ? tweet(texts[0]) : { tweets: texts.map(tweet) };
  $("classify").disabled = true;
  try {
    const answer = await api("/classify", body);
    const results = (answer.results || [answer]).map(({ model, ...result }) => result); // one answer's model, below
    // What "Copy as JSON" copies: each tweet with its entity and answer, so that pasted results need no matching.
    lastAnswer = { results: texts.map((text, i) => ({ text, ...(entity ? { entity } : {}), ...results[i] })),
      model: answer.model };
    // a model with the relatedness head that says nothing of it: a pair model given no entity
    const unjudged = $("model").dataset.related === "yes" && !results.some((r) => "related" in r);
    showResults(texts, entity, results, unjudged);
    $("copy").disabled = false;
    $("copy-status").textContent = "";
  } catch (error) {
    error.message = inFormWords(error.message, lines); // reworded in place: an Unauthorized stays one
    showError(error);
  } finally {
    $("classify").disabled = false;
  }
}

async function copyJson() {
  const text = JSON.stringify(lastAnswer, null, 2);
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain http on the local network is no secure context: no Clipboard API there.
    const area = el("textarea", { readonly: "", class: "offscreen" });
    area.value = text;
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    $("copy").focus();
    if (!copied) {
      $("copy-status").textContent = "Copying was refused by the browser.";
      return;
    }
  }
  $("copy-status").textContent = "Copied the tweets and their answers as JSON.";
}

// --- model card -----------------------------------------------------------------------------

function megabytes(bytes) {
  return (bytes / 1e6).toFixed(1) + " MB";
}

// The model card; false where it could not be read (tried again every few seconds, unless the token was refused).
async function loadModel() {
  clearTimeout(modelTimer);
  let model;
  try {
    model = await api("/v1/model");
  } catch (error) {
    if (error instanceof Unauthorized) {
      askForToken();
    } else {
      $("model").replaceChildren(el("dt", {}, "Status"), el("dd", { class: "error" }, error.message));
      modelTimer = setTimeout(startPanels, STATS_EVERY_MS);
    }
    return false;
  }
  $("model").dataset.related = (model.outputs || []).includes("related") ? "yes" : "no";
  const validation = (model.metrics && model.metrics.validation) || {};
  const rows = [
    ["Name", model.name],
    ["Version", model.version],
    ["Base model", (model.base_model || "").split("/").pop()],
    ["Input", model.input_format === "entity+text" ? "entity and tweet" : "tweet only"],
    ["Labels", model.labels.join(", ") + ((model.outputs || []).includes("related")
      ? `; about the entity from related ${percent(model.related_threshold)}` : "")],
    ...(model.label_offsets ? [["Logit offsets", Object.entries(model.label_offsets)
      .map(([label, offset]) => `${label} ${offset > 0 ? "+" : ""}${offset}`).join(", ")]] : []),
    ["Quantisation", model.quantization],
    ["Model size", megabytes(model.model_bytes)],
    ["Max length", `${model.max_length} tokens`],
    ["Runtime", `${model.runtime}, ${model.threads} thread${model.threads === 1 ? "" : "s"}`],
  ];
  if (validation.accuracy !== undefined) {
    rows.push(["Validation", `accuracy ${validation.accuracy.toFixed(3)}, macro-F1 ${validation.macro_f1.toFixed(3)}`
      + ` (n = ${validation.n})`]);
  }
  if (validation.latency) {
    rows.push(["Latency per tweet", `${validation.latency.median_ms} ms median, ${validation.latency.p95_ms} ms p95`]);
  }
  $("model").replaceChildren(...rows.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))]));
  return true;
}

// --- live panel -----------------------------------------------------------------------------

function duration(seconds) {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function showStats(stats) {
  const five = stats.last_5m, hour = stats.last_60m;
  $("live-tweets").tBodies[0].replaceChildren(...Object.keys(hour.tweets).map((label) => el("tr", {},
    el("th", { scope: "row" }, el("span", { class: `label ${label}` }, label)),
    el("td", {}, String(five.tweets[label] || 0)), el("td", {}, String(hour.tweets[label])))));
  const sum = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);
  $("tweets-5").textContent = sum(five.tweets);
  $("tweets-60").textContent = sum(hour.tweets);
  $("rps").textContent = `${five.requests_per_second.toFixed(2)} (classify, 5 min)`;
  const ms = (x) => (x === undefined ? "-" : x.toFixed(1));
  $("latency").textContent = `${ms(stats.latency_ms.p50)} / ${ms(stats.latency_ms.p95)} ms (since start)`;
  $("errors").textContent = `${five.errors} / ${hour.errors}`;
  $("uptime").textContent = duration(stats.uptime_seconds);
  $("live-workers").tBodies[0].replaceChildren(...stats.workers.map((w) => el("tr", {},
    el("th", { scope: "row" }, `pid ${w.pid}`), el("td", {}, megabytes(w.resident_bytes)),
    el("td", {}, String(w.tweets_last_60m)))));
  $("live-status").textContent = `Updated ${new Date(stats.time * 1000).toLocaleTimeString()}, `
    + `every ${STATS_EVERY_MS / 1000} seconds, all workers together.`;
}

async function refreshStats() {
  clearTimeout(statsTimer);
  if (!document.hidden) { // no polling from a tab in the background
    try {
      showStats(await api("/v1/stats"));
      $("live-status").className = "note";
    } catch (error) {
      $("live-status").className = "error";
      handle(error, $("live-status"));
      if (error instanceof Unauthorized) return;
    }
  }
  statsTimer = setTimeout(refreshStats, STATS_EVERY_MS);
}

// --- start ----------------------------------------------------------------------------------

// This service's limits, the model card, then the live panel (again after a failure: the service may have restarted
// with other settings); true when the card could be read.
async function startPanels() {
  loadLimits();
  const ok = await loadModel();
  if (ok) refreshStats();
  return ok;
}

function start() {
  $("entity").value = read("localStorage", ENTITY_KEY) || "";
  $("classify-form").addEventListener("submit", classify);
  $("tweet").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("classify-form").requestSubmit();
    }
  });
  $("copy").addEventListener("click", copyJson);
  $("auth-form").addEventListener("submit", useToken);
  if (document.body.dataset.auth === "on") {
    $("auth").hidden = false;
    if (!token()) {
      loadLimits();
      $("model").replaceChildren(el("dt", {}, "Status"), el("dd", {}, "waiting for the access token"));
      $("token").focus();
      return;
    }
  }
  startPanels();
}

start();
