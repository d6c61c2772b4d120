// KeyPilot demo page: one request per (debounced) keystroke to /v1/predict; the answer
// drives the candidate strip and the keyboard layout. No build step, no framework.
"use strict";

const LAYOUTS = ["EN", "ZH", "SYM", "EMOJI", "NUM"];
const DEBOUNCE_MS = 60;

// Emoji such as ❤️ are two code points: split rows by grapheme, not by code point.
const graphemes = (s) => [...new Intl.Segmenter("en", { granularity: "grapheme" }).segment(s)].map((g) => g.segment);

// A key is a string (typed as is) or {label, act, wide} for keys that do something else.
const k = (label, act, wide = 1) => ({ label, act, wide });
const LETTER_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm"].map((row) => [...row]);
const KEYMAPS = {
  EN: [
    LETTER_ROWS[0], LETTER_ROWS[1],
    [k("⇧", "shift", 1.5), ...LETTER_ROWS[2], k("⌫", "backspace", 1.5)],
    [k("?123", "layout:SYM", 1.5), k("😊", "layout:EMOJI"), k("中", "layout:ZH"), k("space", "space", 4), ".", k("⏎", "enter", 1.5)],
  ],
  ZH: [
    LETTER_ROWS[0], LETTER_ROWS[1],
    [k("分词", "apostrophe", 1.5), ...LETTER_ROWS[2], k("⌫", "backspace", 1.5)],
    [k("?123", "layout:SYM", 1.5), k("😊", "layout:EMOJI"), k("英", "layout:EN"), k("空格", "space", 4), "。", k("⏎", "enter", 1.5)],
  ],
  SYM: [
    [..."1234567890"],
    [..."@#$%&-+()/"],
    [k("=\\<", "layout:NUM", 1.5), ..."*\"':;!?", k("⌫", "backspace", 1.5)],
    [k("ABC", "layout:EN", 1.5), k("😊", "layout:EMOJI"), ",", k("space", "space", 4), ".", k("⏎", "enter", 1.5)],
  ],
  EMOJI: [
    graphemes("😀😂🥰😍😊😉😎🤔"),
    graphemes("😭😅🙏👍👏🎉❤️🔥"),
    graphemes("✨💯🙌😴🤗😢😡👋"),
    [k("ABC", "layout:EN", 1.5), k("?123", "layout:SYM", 1.5), k("space", "space", 4), k("⌫", "backspace", 1.5)],
  ],
  NUM: [
    ["1", "2", "3", "-"],
    ["4", "5", "6", "+"],
    ["7", "8", "9", k("⌫", "backspace")],
    [k("ABC", "layout:EN"), "0", ".", k("⏎", "enter")],
  ],
};

const KIND_LABEL = { correction: "fix", completion: "complete", suggestion: "suggest" };

const $ = (id) => document.getElementById(id);
const state = {
  layout: "EN",      // layout drawn now; sent as prev_layout
  shift: false,
  screen: null,      // {blob, screenId}
  seq: 0,            // id of the latest request; answers to older ones are dropped
  inflight: null,    // AbortController of the request in flight
  timer: null,
  lastAnswer: null,
  answeredText: null, // the field text the shown answer is for
};
// For the browser test and for poking around in the console.
window.keypilot = { state, applyCandidate };

// ---------- text editing ----------

const LATIN_RUN = /[\p{Script=Latin}\d'’-]+$/u;
const PINYIN_RUN = /[a-z']+$/;
const isLatinWord = (s) => /^[\p{Script=Latin}\d'’-]+$/u.test(s);
const isHan = (s) => /^\p{Script=Han}+$/u.test(s);

function pinyinBuffer(text, layout = state.layout) {
  if (layout !== "ZH") return "";
  const m = text.match(PINYIN_RUN);
  return m ? m[0] : "";
}

// What tapping a candidate does to the field: a correction replaces the last word, a
// completion replaces the word being typed (or the pinyin buffer) or adds the next word,
// a suggestion fills the empty field.
function applyCandidate(text, cand, kind, layout) {
  const spaceAfter = isLatinWord(cand) ? " " : "";
  if (kind === "suggestion") {
    if (!text) return cand + spaceAfter;
    return text + (/\s$/.test(text) || !isLatinWord(cand) ? "" : " ") + cand + spaceAfter;
  }
  if (kind === "correction") {
    if (isHan(cand) && /\p{Script=Han}$/u.test(text)) {
      // Chinese has no spaces: the corrected word replaces as many trailing characters.
      const chars = [...text];
      const n = Math.min([...cand].length, chars.length);
      return chars.slice(0, chars.length - n).join("") + cand;
    }
    const m = text.match(/(\S+)(\s*)$/u);
    if (!m) return text + cand + spaceAfter;
    return text.slice(0, m.index) + cand + (m[2] || spaceAfter);
  }
  const buffer = pinyinBuffer(text, layout);
  if (buffer && !isLatinWord(cand)) return text.slice(0, -buffer.length) + cand;
  const m = text.match(LATIN_RUN);
  if (m && isLatinWord(cand)) return text.slice(0, m.index) + cand + spaceAfter;
  return text + cand + spaceAfter;
}

function setField(text) {
  const field = $("field");
  field.value = text;
  field.setSelectionRange(text.length, text.length);
  onTextChanged();
}

function insertAtCaret(s) {
  const field = $("field");
  const start = field.selectionStart ?? field.value.length;
  const end = field.selectionEnd ?? field.value.length;
  field.setRangeText(s, start, end, "end");
  onTextChanged();
}

function backspace() {
  const field = $("field");
  let start = field.selectionStart ?? field.value.length;
  const end = field.selectionEnd ?? field.value.length;
  if (start === end) {
    const before = graphemes(field.value.slice(0, start));
    if (!before.length) return;
    start -= before[before.length - 1].length;
  }
  field.setRangeText("", start, end, "end");
  onTextChanged();
}

// ---------- keyboard ----------

function renderKeyboard() {
  const kb = $("keyboard");
  kb.dataset.layout = state.layout;
  kb.replaceChildren(...KEYMAPS[state.layout].map((row) => {
    const rowEl = document.createElement("div");
    rowEl.className = "krow";
    for (const key of row) rowEl.append(keyButton(key));
    return rowEl;
  }));
}

function keyButton(key) {
  const el = document.createElement("button");
  el.type = "button";
  if (typeof key === "string") {
    el.className = "key";
    el.textContent = state.shift && state.layout === "EN" ? key.toUpperCase() : key;
    el.dataset.key = key;
  } else {
    el.className = "key fn" + (key.act === "space" ? " space" : "") + (key.act === "enter" ? " enter" : "");
    if (key.act === "shift" && state.shift) el.classList.add("on");
    el.textContent = key.label;
    el.dataset.act = key.act;
    el.style.flexGrow = key.wide;
  }
  return el;
}

function pressKey(el) {
  const act = el.dataset.act;
  if (!act) {
    insertAtCaret(el.textContent);
    if (state.shift) { state.shift = false; renderKeyboard(); }
  } else if (act.startsWith("layout:")) {
    state.layout = act.slice(7);
    renderKeyboard();
    renderComposing();
  } else if (act === "shift") {
    state.shift = !state.shift;
    renderKeyboard();
  } else if (act === "backspace") {
    backspace();
  } else if (act === "space") {
    const items = currentItems();
    // As in pinyin IMEs, space commits the first candidate for the buffer.
    if (pinyinBuffer($("field").value) && items.length) acceptItem(items[0]);
    else insertAtCaret(" ");
  } else if (act === "apostrophe") {
    insertAtCaret("'");
  } else if (act === "enter") {
    setField("");
  }
}

// ---------- candidate strip ----------

function currentItems() {
  const a = state.lastAnswer;
  if (!a) return [];
  const kind = a.shown_kind;
  return [...new Set(a.shown)].filter((t) => t && t.trim()).map((text) => ({ text, kind }));
}

function acceptItem(item) {
  setField(applyCandidate($("field").value, item.text, item.kind, state.layout));
  $("field").focus();
}

function renderStrip() {
  const items = currentItems();
  const strip = $("strip");
  strip.replaceChildren(...items.map((item, i) => {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "cand" + (i === 0 ? " best" : "");
    el.dataset.kind = item.kind;
    el.textContent = item.text;
    el.addEventListener("pointerdown", (ev) => { ev.preventDefault(); acceptItem(item); });
    return el;
  }));
  const kind = $("kind");
  kind.hidden = !items.length;
  if (items.length) {
    kind.textContent = KIND_LABEL[items[0].kind];
    kind.dataset.kind = items[0].kind;
  }
}

function renderComposing() {
  const buffer = pinyinBuffer($("field").value);
  const el = $("composing");
  el.hidden = !buffer;
  el.textContent = buffer;
}

// ---------- requests ----------

function onTextChanged() {
  renderComposing();
  invalidate();
  clearTimeout(state.timer);
  state.timer = setTimeout(predict, DEBOUNCE_MS);
}

// Answers to requests sent before this call no longer match the field (or the screen).
function invalidate() {
  state.seq++;
  state.inflight?.abort();
  $("strip").classList.add("stale");
}

async function predict(retried = false) {
  if (!state.screen) return;
  const seq = ++state.seq;
  state.inflight?.abort();
  const controller = new AbortController();
  state.inflight = controller;

  const text = $("field").value;
  const form = new FormData();
  form.set("text", text);
  form.set("prev_layout", state.layout);
  const userId = $("user-id").value.trim();
  if (userId) form.set("user_id", userId);
  if (state.screen.screenId && !retried) form.set("screen_id", state.screen.screenId);
  else form.set("image", state.screen.blob, "screen.png");

  const started = performance.now();
  let response, body;
  try {
    response = await fetch("/v1/predict", { method: "POST", body: form, signal: controller.signal });
    body = await response.json();
  } catch (err) {
    if (err.name !== "AbortError" && seq === state.seq) showError(`request failed: ${err.message}`);
    return;
  }
  if (seq !== state.seq) return;  // a newer keystroke was sent meanwhile
  if (!response.ok) {
    if (body.code === "unknown_screen_id" && !retried) return predict(true);
    showError(`${response.status}: ${body.detail}`);
    return;
  }
  showError("");
  state.screen.screenId = body.screen_id;
  applyAnswer(body, text, performance.now() - started);
}

function applyAnswer(answer, text, roundTripMs) {
  state.lastAnswer = answer;
  state.answeredText = text;
  $("strip").classList.remove("stale");
  const shownBefore = state.layout;
  if (answer.layout !== shownBefore) {
    state.layout = answer.layout;
    state.shift = false;
    renderKeyboard();
    $("keyboard").classList.remove("switched");
    void $("keyboard").offsetWidth;  // restart the CSS animation
    $("keyboard").classList.add("switched");
  }
  renderStrip();
  renderComposing();
  renderMeta(answer, shownBefore, roundTripMs);
}

function renderMeta(answer, shownBefore, roundTripMs) {
  const probs = $("layout-probs");
  probs.replaceChildren(...LAYOUTS.map((name) => {
    const p = answer.layout_probs?.[name] ?? 0;
    const el = document.createElement("span");
    el.className = "lp" + (name === answer.layout ? " active" : "");
    el.innerHTML = `<b></b><i style="--p:${(p * 100).toFixed(1)}%"></i>`;
    el.querySelector("b").textContent = `${name} ${p.toFixed(2)}`;
    return el;
  }));
  const t = answer.timing_ms || {};
  $("timing").textContent = `model ${fmt(t.total)} ms (screen ${fmt(t.screen)}, keystroke ${fmt(t.keystroke)})`
    + ` · round trip ${fmt(roundTripMs)} ms${answer.screen_cached ? " · screen cached" : ""}`;
  const note = $("switch-note");
  note.hidden = answer.layout === shownBefore;
  note.textContent = `keyboard switched ${shownBefore} → ${answer.layout}`;

  const rows = [
    ["task", answer.task],
    ["task probs", probsText(answer.task_probs)],
    ["layout", answer.layout_raw && answer.layout_raw !== answer.layout ? `${answer.layout} (raw ${answer.layout_raw}, held)` : answer.layout],
    ["experts", probsText(answer.expert_probs)],
    ["corrections", listText(answer.corrections)],
    ["completions", listText(answer.completions)],
    ["suggestion", answer.suggestion ? `${answer.suggestion.text} (${answer.suggestion.prob.toFixed(2)})` : "—"],
  ];
  fillList($("details"), rows);
}

const fmt = (x) => (typeof x === "number" ? x.toFixed(1) : "–");
const probsText = (obj) => Object.entries(obj || {}).map(([key, p]) => `${key} ${p.toFixed(2)}`).join(" · ");
const listText = (list) => (list || []).map((c) => `${c.text} ${c.prob.toFixed(2)}`).join(" · ") || "—";

function fillList(dl, rows) {
  dl.replaceChildren(...rows.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    return [dt, dd];
  }));
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message;
}

// ---------- screens ----------

function useScreen(blob, { context = "", prevLayout = "EN", expected = null } = {}) {
  invalidate();
  state.screen = { blob, screenId: null };
  const shot = $("shot");
  if (shot.src) URL.revokeObjectURL(shot.src);
  shot.src = URL.createObjectURL(blob);
  shot.hidden = false;
  $("screen-empty").hidden = true;
  $("screen").style.setProperty("--backdrop", `url("${shot.src}")`);
  state.layout = prevLayout;
  state.shift = false;
  state.lastAnswer = null;
  state.answeredText = null;
  renderKeyboard();
  renderStrip();
  $("expected-title").hidden = !expected;
  fillList($("expected"), expected ? Object.entries(expected) : []);
  setField(context);
  $("field").focus();
}

async function loadSamples() {
  let samples = [];
  try {
    samples = (await (await fetch("/v1/samples")).json()).samples;
  } catch (err) {
    showError(`could not list samples: ${err.message}`);
  }
  $("no-samples").hidden = samples.length > 0;
  $("samples").replaceChildren(...samples.map((s) => {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "sample";
    el.dataset.id = s.id;
    el.setAttribute("role", "option");
    el.innerHTML = `<img loading="lazy" alt=""><span class="sid"></span><span class="sctx"></span><span class="stag"></span>`;
    el.querySelector("img").src = s.image_url;
    el.querySelector(".sid").textContent = s.id;
    el.querySelector(".sctx").textContent = s.context ? `“${s.context}”` : "(empty field)";
    el.querySelector(".stag").textContent = `${s.task.replace("_", " ")} → ${s.layout}`;
    el.addEventListener("click", () => pickSample(s, el));
    return el;
  }));
}

async function pickSample(sample, el) {
  document.querySelectorAll(".sample.selected").forEach((x) => x.classList.remove("selected"));
  el.classList.add("selected");
  const blob = await (await fetch(sample.image_url)).blob();
  useScreen(blob, {
    context: sample.context,
    prevLayout: sample.prev_layout,
    expected: { task: sample.task, target: sample.target, layout: `${sample.prev_layout} → ${sample.layout}` },
  });
}

// ---------- wiring ----------

function init() {
  renderKeyboard();
  const kb = $("keyboard");
  // pointerdown + preventDefault keeps the focus (and the caret) in the text field.
  kb.addEventListener("pointerdown", (ev) => {
    const key = ev.target.closest(".key");
    if (!key) return;
    ev.preventDefault();
    key.classList.add("down");
    setTimeout(() => key.classList.remove("down"), 120);
    pressKey(key);
  });
  $("field").addEventListener("input", onTextChanged);
  // The physical keyboard gets the same Enter and pinyin-space behaviour as the drawn one.
  $("field").addEventListener("keydown", (ev) => {
    if (ev.isComposing) return;
    if (ev.key === "Enter") { ev.preventDefault(); setField(""); }
    if (ev.key === " " && pinyinBuffer($("field").value) && currentItems().length) {
      ev.preventDefault();
      acceptItem(currentItems()[0]);
    }
  });
  $("send").addEventListener("click", () => setField(""));
  $("user-id").addEventListener("change", onTextChanged);
  $("upload").addEventListener("change", (ev) => {
    const file = ev.target.files[0];
    if (file) {
      document.querySelectorAll(".sample.selected").forEach((x) => x.classList.remove("selected"));
      useScreen(file);
    }
  });
  loadSamples();
}

document.addEventListener("DOMContentLoaded", init);
