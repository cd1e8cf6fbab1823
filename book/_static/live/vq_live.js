/**
 * Live figures of the VQ-VAE Lessons book: models run in the reader's browser, with no kernel.
 *
 * Three widgets, each a `data-vq-live` kind: "code-editor" (lesson 3), "sweep-explorer" (lesson 4) and
 * "sampler" (lesson 5), described at their classes below.
 *
 * Lesson 3's code editor: a test digit's 7x7 map of codes beside the image the shipped VQ-VAE's decoder draws
 * from it. Pick a position of the map (click it, or move with the arrow keys), pick a code from the palette
 * (each code is shown as the image a map full of it decodes to), and the digit is decoded again at once. The
 * lesson's own edits are buttons: blank a row, copy rows 4 to 6 from another digit, reset.
 *
 * A page holds the widget as plain HTML (a Markdown cell of the lesson), which Colab and Jupyter show as text:
 *
 *     <div class="vq-live" data-vq-live="code-editor">
 *       <p class="vq-live-fallback">What a reader without JavaScript sees (the static figures above)</p>
 *     </div>
 *     <script type="module" src="../_static/live/vq_live.js"></script>
 *
 * Files, found beside this module (the book's build writes them with
 * `python -m vqvae_lessons export-onnx --out book/_static/live/generated --runtime .../onnxruntime-web/dist`):
 *
 *     generated/decoder.onnx   code indices int32 (N, 7, 7) -> images float32 (N, 28, 28, 1) in [0, 1]
 *     generated/codes.json     the test digits' code maps, each code's image, the codes by usage, the lesson's edits
 *     generated/sweep/*.onnx   lesson 4: the decoder of each point of the K/D sweep; sweep.json its codes, metrics
 *     generated/prior.onnx     lesson 5's gated PixelCNN: code maps int32 (N, 7, 7) -> logits (N, 7, 7, K)
 *     generated/prior.json     its name, K, and how far it lies from Keras (float16 weights)
 *     generated/ort/           onnxruntime-web's plain WebAssembly backend (its binary gzipped; unpacked here
 *                              with DecompressionStream, so the download is small on any static host)
 *
 * A widget starts (downloads the runtime and its models) only when the reader scrolls near it.
 *
 * For tests and the curious: each widget's element gets `data-state` ("loading", "ready" or "unavailable") and
 * `data-decodes` (how many decodes it has shown), and `window.vqLive.widgets` holds the widgets, each with its
 * `codes` (49 ints), `timings` (milliseconds: `ready_ms` from the module's start to the first image shown,
 * `ready_since_navigation_ms` the same from the page's navigation, `last_decode_ms` the last decode alone)
 * and `setCode(row, col, code)`; a sampler's element gets `data-samples` (draws finished), and the widget its
 * `codes` (16 x 49 ints, the last draw), `timings.last_sample_ms` and `sample()`.
 */

const HERE = new URL("./", import.meta.url);
const GENERATED = new URL("generated/", HERE);
const GRID = 7;
const SIZE = 28;
const started = performance.now();

window.vqLive = window.vqLive || { widgets: [] };

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function loadStyles() {
  if (document.querySelector("link[data-vq-live]")) return;
  document.head.append(element("link", { rel: "stylesheet", href: new URL("vq_live.css", HERE).href, "data-vq-live": "" }));
}

/** Bytes of a file that may be gzipped (a .gz the server sends as it is, or already unpacked by the browser). */
async function fetchMaybeGzipped(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes.buffer;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}

let ortModule = null; // one onnxruntime-web for the whole page
let runtime = null; // the default decoder's session and the editor's data, for the editor and the sampler

function loadOrt() {
  ortModule ??= (async () => {
    const ortDir = new URL("ort/", GENERATED);
    const [ort, wasmBinary] = await Promise.all([
      import(new URL("ort.wasm.min.mjs", ortDir).href),
      fetchMaybeGzipped(new URL("ort-wasm-simd-threaded.wasm.gz", ortDir)),
    ]);
    ort.env.wasm.wasmPaths = ortDir.href; // where the glue module lies; the binary is handed over below
    ort.env.wasm.wasmBinary = wasmBinary;
    ort.env.wasm.numThreads = 1; // a book page is not cross-origin isolated: no threads
    ort.env.wasm.proxy = false;
    ort.env.logLevel = "error";
    return ort;
  })();
  return ortModule;
}

function loadRuntime() {
  runtime ??= (async () => {
    const [ort, data] = await Promise.all([loadOrt(), fetch(new URL("codes.json", GENERATED)).then((r) => {
      if (!r.ok) throw new Error(`codes.json: HTTP ${r.status}`);
      return r.json();
    })]);
    const session = await ort.InferenceSession.create(new URL("decoder.onnx", GENERATED).href, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    const raw = atob(data.code_images);
    const codeImages = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) codeImages[i] = raw.charCodeAt(i);
    return { ort, session, data, codeImages };
  })();
  return runtime;
}

/** Draw images in [0, 1] (ink 1) as black ink on white paper. */
function draw(canvas, values, scale = 1) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(SIZE, SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const grey = 255 - Math.round(Math.min(1, Math.max(0, values[i] * scale)) * 255);
    image.data.set([grey, grey, grey, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}

class CodeEditor {
  constructor(root) {
    this.root = root;
    this.decodes = 0;
    this.timings = {};
    this.selected = [0, 0];
    root.dataset.state = "loading";
    this.status = element("p", { class: "vq-live-status", role: "status", "aria-live": "polite", text: "Loading the decoder…" });
    root.append(this.status);
  }

  async start() {
    const { ort, session, data, codeImages } = await loadRuntime();
    Object.assign(this, { ort, session, data, codeImages, k: data.num_embeddings });
    this.digits = new Map(data.digits.map((d) => [d.label, d]));
    this.build();
    const lesson = data.lesson;
    this.showDigit(this.digits.has(lesson.digit) ? lesson.digit : data.digits[0].label);
    this.select(lesson.position[0], lesson.position[1], false);
    await this.decode();
    this.timings.ready_ms = performance.now() - started;
    this.timings.ready_since_navigation_ms = performance.now(); // the page's time origin is its navigation
    for (const fallback of this.root.querySelectorAll(".vq-live-fallback")) fallback.hidden = true;
    this.root.dataset.state = "ready";
  }

  build() {
    const { data } = this;
    this.digitButtons = data.digits.map((d) =>
      element("button", { type: "button", class: "vq-live-digit", "aria-pressed": "false", text: String(d.label),
        "aria-label": `test digit ${d.label}`, onclick: () => this.showDigit(d.label, true) }));
    const digitBar = element("div", { class: "vq-live-bar", role: "group", "aria-label": "Test digit" },
      [element("span", { class: "vq-live-label", text: "Test digit:" }), ...this.digitButtons]);

    this.cells = [];
    const rows = [];
    for (let r = 0; r < GRID; r++) {
      const row = element("div", { role: "row", class: "vq-live-row" });
      for (let c = 0; c < GRID; c++) {
        const cell = element("button", { type: "button", role: "gridcell", class: "vq-live-cell", tabindex: "-1",
          onclick: () => this.select(r, c), onkeydown: (event) => this.moveSelection(event) });
        this.cells.push(cell);
        row.append(cell);
      }
      rows.push(row);
    }
    this.map = element("div", { class: "vq-live-map", role: "grid",
      "aria-label": "The digit's 7 by 7 map of codes: choose a position, then a code below" }, rows);

    this.canvas = element("canvas", { width: SIZE, height: SIZE, class: "vq-live-image", role: "img" });
    this.originalCanvas = element("canvas", { width: SIZE, height: SIZE, class: "vq-live-image", role: "img" });
    this.highlight = element("div", { class: "vq-live-highlight", "aria-hidden": "true" });
    const main = element("div", { class: "vq-live-main" }, [
      element("figure", { class: "vq-live-figure" }, [this.map, element("figcaption", { text: "Codes (7 × 7)" })]),
      element("figure", { class: "vq-live-figure" }, [
        element("div", { class: "vq-live-frame" }, [this.canvas, this.highlight]),
        element("figcaption", { text: "Decoded from the map" })]),
      element("figure", { class: "vq-live-figure" }, [this.originalCanvas,
        element("figcaption", { text: "Its own codes, unedited" })]),
    ]);

    this.partner = element("select", { class: "vq-live-select", "aria-label": "digit to copy rows from" },
      data.digits.map((d) => element("option", { value: String(d.label), text: String(d.label) })));
    const from = data.lesson.swap_from_row;
    const edits = element("div", { class: "vq-live-bar", role: "group", "aria-label": "The lesson's edits" }, [
      element("button", { type: "button", class: "vq-live-edit", "data-edit": "blank-row",
        text: "Blank the chosen row", onclick: () => this.blankRow() }),
      element("button", { type: "button", class: "vq-live-edit", "data-edit": "copy-rows",
        text: `Copy rows ${from}–${GRID - 1} from digit`, onclick: () => this.copyRows() }),
      this.partner,
      element("button", { type: "button", class: "vq-live-edit", "data-edit": "reset",
        text: "Reset", onclick: () => this.reset() }),
    ]);

    const used = data.usage.reduce((a, b) => a + b, 0);
    this.codeButtons = new Map();
    const palette = element("div", { class: "vq-live-palette", role: "group",
      "aria-label": "Codes, the most used first; each shows what a map full of it decodes to" });
    for (const code of data.codes_by_usage) {
      const thumbnail = element("canvas", { width: SIZE, height: SIZE, "aria-hidden": "true" });
      const pixels = this.codeImages.subarray(code * SIZE * SIZE, (code + 1) * SIZE * SIZE);
      draw(thumbnail, pixels, 1 / 255);
      const share = ((100 * data.usage[code]) / used).toFixed(1);
      const button = element("button", { type: "button", class: "vq-live-code", "data-code": String(code),
        title: `code ${code}: ${share}% of the test set's positions`,
        "aria-label": `code ${code}, ${share}% of test positions`,
        onclick: () => this.setCode(this.selected[0], this.selected[1], code),
        onkeydown: (event) => this.movePalette(event, button) },
        [thumbnail, element("span", { text: String(code) })]);
      this.codeButtons.set(code, button);
      palette.append(button);
    }
    const help = element("p", { class: "vq-live-help", text: "Choose a position of the map (click, or arrow keys), "
      + "then a code: the decoder draws the digit again in your browser. A code's tile shows a map full of it." });
    this.root.append(digitBar, main, edits, help, palette);
    this.root.append(this.status); // keep the status last
  }

  showDigit(label, decode = false) {
    const digit = this.digits.get(label);
    this.label = label;
    this.original = digit.codes.slice();
    this.codes = digit.codes.slice();
    this.digitButtons.forEach((b) => b.setAttribute("aria-pressed", String(b.textContent === String(label))));
    const pair = this.data.lesson.pairs.find(([top]) => top === label);
    const partner = pair ? pair[1] : [...this.digits.keys()].find((d) => d !== label);
    this.partner.value = String(partner);
    this.originalPixels = null;
    this.renderMap();
    if (decode) this.decode();
  }

  renderMap() {
    this.cells.forEach((cell, i) => {
      const [r, c] = [Math.floor(i / GRID), i % GRID];
      const edited = this.codes[i] !== this.original[i];
      cell.textContent = String(this.codes[i]);
      cell.classList.toggle("vq-live-edited", edited);
      cell.setAttribute("aria-label", `row ${r + 1}, column ${c + 1}: code ${this.codes[i]}${edited ? " (edited)" : ""}`);
    });
    this.select(...this.selected, false);
  }

  select(r, c, focus = true) {
    this.selected = [r, c];
    this.cells.forEach((cell, i) => {
      const on = i === r * GRID + c;
      cell.setAttribute("aria-selected", String(on));
      cell.tabIndex = on ? 0 : -1;
      if (on && focus) cell.focus();
    });
    const code = this.codes[r * GRID + c];
    this.codeButtons.forEach((b, k) => {
      b.setAttribute("aria-pressed", String(k === code));
      b.tabIndex = k === code ? 0 : -1; // one tab stop for the palette; the arrow keys move within it
    });
    this.highlight.style.left = `${(100 * c) / GRID}%`;
    this.highlight.style.top = `${(100 * r) / GRID}%`;
  }

  moveSelection(event) {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const [dr, dc] = moves[event.key];
    const [r, c] = this.selected;
    this.select(Math.min(GRID - 1, Math.max(0, r + dr)), Math.min(GRID - 1, Math.max(0, c + dc)));
  }

  movePalette(event, button) {
    const columns = getComputedStyle(button.parentElement).gridTemplateColumns.split(" ").length; // as laid out
    const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns, ArrowDown: columns }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const buttons = [...this.codeButtons.values()];
    const next = buttons[Math.min(buttons.length - 1, Math.max(0, buttons.indexOf(button) + step))];
    button.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  }

  setCode(r, c, code) {
    if (!(Number.isInteger(code) && code >= 0 && code < this.k)) throw new RangeError(`code ${code} not in [0, ${this.k})`);
    this.codes[r * GRID + c] = code;
    this.renderMap();
    return this.decode();
  }

  blankRow() {
    const r = this.selected[0];
    for (let c = 0; c < GRID; c++) this.codes[r * GRID + c] = this.data.blank_code;
    this.renderMap();
    return this.decode(`row ${r + 1} set to the most used code, ${this.data.blank_code} (blank paper)`);
  }

  copyRows() {
    const other = this.digits.get(Number(this.partner.value)).codes;
    for (let i = this.data.lesson.swap_from_row * GRID; i < GRID * GRID; i++) this.codes[i] = other[i];
    this.renderMap();
    return this.decode(`rows ${this.data.lesson.swap_from_row}–${GRID - 1} copied from the ${this.partner.value}`);
  }

  reset() {
    this.codes = this.original.slice();
    this.renderMap();
    return this.decode("the digit's own codes again");
  }

  async run(maps) {
    const n = maps.length / (GRID * GRID);
    const input = new this.ort.Tensor("int32", Int32Array.from(maps), [n, GRID, GRID]);
    const outputs = await this.session.run({ [this.session.inputNames[0]]: input });
    return outputs[this.session.outputNames[0]].data;
  }

  /** Decode the current map (and, once per digit, its own codes) and draw them. */
  async decode(what = null) {
    this.pending = (this.pending || Promise.resolve()).then(async () => {
      const t0 = performance.now();
      const pixels = await this.run(this.codes);
      const ms = performance.now() - t0;
      if (!this.originalPixels) {
        this.originalPixels = await this.run(this.original);
        draw(this.originalCanvas, this.originalPixels);
        this.originalCanvas.setAttribute("aria-label", `The test ${this.label} decoded from its own codes`);
      }
      draw(this.canvas, pixels);
      this.pixels = pixels;
      const edited = this.codes.filter((k, i) => k !== this.original[i]).length;
      this.canvas.setAttribute("aria-label", `A ${this.label} decoded from its map with ${edited} of 49 codes edited`);
      this.timings.last_decode_ms = ms;
      this.decodes += 1;
      this.root.dataset.decodes = String(this.decodes);
      const [r, c] = this.selected;
      this.status.textContent = `${what ? `${what[0].toUpperCase()}${what.slice(1)}. ` : ""}`
        + `Position (${r + 1}, ${c + 1}) holds code ${this.codes[r * GRID + c]}; ${edited} of 49 codes edited; `
        + `decoded in ${ms.toFixed(1)} ms.`;
    });
    return this.pending;
  }
}

let priorRuntime = null; // the prior's session, loaded only on a page with a sampler

function loadPrior() {
  priorRuntime ??= (async () => {
    const ort = await loadOrt();
    const [session, info] = await Promise.all([
      ort.InferenceSession.create(new URL("prior.onnx", GENERATED).href, {
        executionProviders: ["wasm"], graphOptimizationLevel: "all" }),
      fetch(new URL("prior.json", GENERATED)).then((r) => {
        if (!r.ok) throw new Error(`prior.json: HTTP ${r.status}`);
        return r.json();
      }),
    ]);
    return { session, info };
  })();
  return priorRuntime;
}

/** A small seeded generator of uniform numbers in [0, 1) (mulberry32): the same seed draws the same digits. */
function uniforms(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A code drawn from softmax(logits / temperature) by inverting its cumulative distribution at `u`; at
 * temperature 0, the most likely code (the first of equals). */
function drawCode(logits, offset, k, temperature, u) {
  let best = 0;
  for (let j = 1; j < k; j++) if (logits[offset + j] > logits[offset + best]) best = j;
  if (temperature === 0) return best;
  const top = logits[offset + best];
  const weights = new Float64Array(k);
  let total = 0;
  for (let j = 0; j < k; j++) total += weights[j] = Math.exp((logits[offset + j] - top) / temperature);
  let cumulative = 0;
  const target = u * total;
  for (let j = 0; j < k; j++) {
    cumulative += weights[j];
    if (cumulative > target) return j;
  }
  return k - 1;
}

/**
 * Lesson 5's sampler: 16 maps of codes drawn from the shipped gated PixelCNN prior, position by position in
 * raster order (49 passes of the prior over the whole batch, the plain loop of the lesson's exercise), decoded
 * row by row as they fill in (positions not drawn yet show the most used code, blank paper). A temperature
 * slider (0 takes the most likely code) and a seed.
 */
class Sampler {
  constructor(root) {
    this.root = root;
    this.count = 16;
    this.samples = 0;
    this.timings = {};
    root.dataset.state = "loading";
    this.status = element("p", { class: "vq-live-status", role: "status", "aria-live": "polite", text: "Loading the prior…" });
    root.append(this.status);
  }

  async start() {
    const [{ ort, session, data }, prior] = await Promise.all([loadRuntime(), loadPrior()]);
    Object.assign(this, { ort, decoder: session, data, prior: prior.session, info: prior.info, k: prior.info.num_codes });
    this.build();
    this.timings.loaded_since_navigation_ms = performance.now(); // the models are in: the first draw begins
    await this.sample();
    this.timings.ready_ms = performance.now() - started;
    this.timings.ready_since_navigation_ms = performance.now();
    for (const fallback of this.root.querySelectorAll(".vq-live-fallback")) fallback.hidden = true;
    this.root.dataset.state = "ready";
  }

  build() {
    this.temperature = element("input", { type: "range", min: "0", max: "2", step: "0.1", value: "1",
      id: "vq-live-temperature", "aria-describedby": "vq-live-temperature-value" });
    const shown = element("output", { id: "vq-live-temperature-value", for: "vq-live-temperature", text: "1.0" });
    this.temperature.addEventListener("input", () => { shown.textContent = Number(this.temperature.value).toFixed(1); });
    this.seed = element("input", { type: "number", min: "0", step: "1", value: "0", id: "vq-live-seed", class: "vq-live-seed" });
    this.button = element("button", { type: "button", class: "vq-live-edit", "data-action": "sample",
      text: `Draw ${this.count} digits`, onclick: () => this.sample() });
    const controls = element("div", { class: "vq-live-bar", role: "group", "aria-label": "Sampling settings" }, [
      element("label", { for: "vq-live-temperature", text: "Temperature" }), this.temperature, shown,
      element("label", { for: "vq-live-seed", text: "Seed" }), this.seed, this.button]);
    this.canvases = Array.from({ length: this.count }, (_, i) =>
      element("canvas", { width: SIZE, height: SIZE, class: "vq-live-sample", role: "img", "aria-label": `sample ${i + 1}` }));
    this.progress = element("progress", { max: "49", value: "0", class: "vq-live-progress",
      "aria-label": "positions drawn, of 49" });
    const grid = element("div", { class: "vq-live-samples" }, this.canvases);
    const help = element("p", { class: "vq-live-help", text: "Each map is drawn one code at a time, row by row "
      + "(raster order), each code from the prior's distribution given the codes before it; the decoder draws the "
      + "rows so far after each row. Same seed and temperature, same digits." });
    this.root.append(controls, this.progress, grid, help);
    this.root.append(this.status);
  }

  async run(session, maps, dims) {
    const input = new this.ort.Tensor("int32", maps, dims);
    const outputs = await session.run({ [session.inputNames[0]]: input });
    return outputs[session.outputNames[0]].data;
  }

  async show(codes, final) {
    const pixels = await this.run(this.decoder, codes, [this.count, GRID, GRID]);
    this.canvases.forEach((canvas, i) => {
      draw(canvas, pixels.subarray(i * SIZE * SIZE, (i + 1) * SIZE * SIZE));
      if (final) canvas.setAttribute("aria-label", `sample ${i + 1}: a digit decoded from a map drawn from the prior`);
    });
  }

  /** Draw `count` maps at the chosen temperature and seed, showing them as they fill in. */
  async sample() {
    if (this.busy) return this.busy;
    this.busy = (async () => {
      const temperature = Number(this.temperature.value);
      const seed = Math.max(0, Math.floor(Number(this.seed.value) || 0));
      const random = uniforms(seed);
      const cells = GRID * GRID;
      const codes = new Int32Array(this.count * cells).fill(this.data.blank_code);
      this.button.disabled = true;
      this.root.setAttribute("aria-busy", "true");
      const t0 = performance.now();
      let priorMs = 0;
      for (let position = 0; position < cells; position++) {
        const t = performance.now();
        const logits = await this.run(this.prior, codes, [this.count, GRID, GRID]);
        priorMs += performance.now() - t;
        for (let i = 0; i < this.count; i++) {
          codes[i * cells + position] = drawCode(logits, (i * cells + position) * this.k, this.k, temperature, random());
        }
        this.progress.value = position + 1;
        if (position % GRID === GRID - 1) {
          await this.show(codes, position === cells - 1);
          this.status.textContent = `Row ${(position + 1) / GRID} of ${GRID} drawn…`;
          await new Promise((resolve) => setTimeout(resolve, 0)); // let the page paint the rows so far
        }
      }
      const ms = performance.now() - t0;
      this.codes = Array.from(codes);
      this.timings.last_sample_ms = ms;
      this.timings.last_prior_ms = priorMs;
      this.samples += 1;
      this.root.dataset.samples = String(this.samples);
      this.status.textContent = `${this.count} digits drawn from ${this.info.model} at temperature `
        + `${temperature.toFixed(1)}, seed ${seed}, in ${(ms / 1000).toFixed(1)} s (${cells} passes of the prior).`;
      this.button.disabled = false;
      this.root.removeAttribute("aria-busy");
    })();
    try {
      return await this.busy;
    } finally {
      this.busy = null;
    }
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== null) node.textContent = text;
  return node;
}

/**
 * Lesson 4's explorer: choose K or D (the sweep varies one at a time, so a K off the base moves D back to the
 * base and the other way round); the point's own decoder (generated/sweep/NAME.onnx, fetched when first
 * chosen) decodes the 7x7 codes it gave 8 test digits, shown under the digits, and the point is marked on the
 * rate-distortion chart of the whole sweep (rate 49 log2 K bits per image against test PSNR).
 */
class SweepExplorer {
  constructor(root) {
    this.root = root;
    this.decodes = 0;
    this.timings = {};
    this.sessions = new Map();
    root.dataset.state = "loading";
    this.status = element("p", { class: "vq-live-status", role: "status", "aria-live": "polite", text: "Loading the sweep…" });
    root.append(this.status);
  }

  async start() {
    const [ort, sweep] = await Promise.all([loadOrt(), fetch(new URL("sweep.json", GENERATED)).then((r) => {
      if (!r.ok) throw new Error(`sweep.json: HTTP ${r.status}`);
      return r.json();
    })]);
    Object.assign(this, { ort, sweep });
    const raw = atob(sweep.images);
    this.images = Float32Array.from(raw, (c) => c.charCodeAt(0) / 255);
    this.count = this.images.length / (SIZE * SIZE);
    this.build();
    await this.choose(sweep.base[0], sweep.base[1]);
    this.timings.ready_ms = performance.now() - started;
    this.timings.ready_since_navigation_ms = performance.now();
    for (const fallback of this.root.querySelectorAll(".vq-live-fallback")) fallback.hidden = true;
    this.root.dataset.state = "ready";
  }

  build() {
    const [baseK, baseD] = this.sweep.base;
    const ks = [...new Set(this.sweep.points.filter((p) => p.D === baseD).map((p) => p.K))].sort((a, b) => a - b);
    const ds = [...new Set(this.sweep.points.filter((p) => p.K === baseK).map((p) => p.D))].sort((a, b) => a - b);
    const buttons = (label, values, pick) => element("div", { class: "vq-live-bar", role: "group", "aria-label": label },
      [element("span", { class: "vq-live-label", text: `${label}:` }), ...values.map((v) => element("button", {
        type: "button", class: "vq-live-choice", "data-choice": `${label[0]}${v}`, "aria-pressed": "false",
        text: String(v), onclick: () => pick(v) }))]);
    const kBar = buttons("K codes", ks, (k) => this.choose(k, baseD));
    const dBar = buttons("D dimensions", ds, (d) => this.choose(baseK, d));
    this.choiceButtons = [...kBar.querySelectorAll("button"), ...dBar.querySelectorAll("button")];

    this.originals = Array.from({ length: this.count }, (_, i) =>
      element("canvas", { width: SIZE, height: SIZE, class: "vq-live-sample", role: "img", "aria-label": `test digit ${i + 1}` }));
    this.originals.forEach((canvas, i) => draw(canvas, this.images.subarray(i * SIZE * SIZE, (i + 1) * SIZE * SIZE)));
    this.reconstructions = Array.from({ length: this.count }, () =>
      element("canvas", { width: SIZE, height: SIZE, class: "vq-live-sample vq-live-reconstruction", role: "img" }));
    const images = element("div", { class: "vq-live-pairs" }, [
      element("span", { class: "vq-live-label", text: "Test digits" }),
      element("div", { class: "vq-live-samples" }, this.originals),
      element("span", { class: "vq-live-label", text: "Reconstructions" }),
      element("div", { class: "vq-live-samples" }, this.reconstructions)]);
    this.root.append(kBar, dBar, images, this.chart());
    this.root.append(this.status);
  }

  /** The rate-distortion chart: the K line (joined) and the D points (at the base rate), each point a circle. */
  chart() {
    const [width, height, left, right, top, bottom] = [420, 230, 52, 16, 14, 42];
    const points = this.sweep.points;
    const rates = points.map((p) => p.rate_bits);
    const psnrs = points.map((p) => p.test_psnr_db);
    const [x0, x1] = [Math.min(...rates) - 10, Math.max(...rates) + 10];
    const [y0, y1] = [Math.floor(Math.min(...psnrs)) - 0.5, Math.ceil(Math.max(...psnrs)) + 0.5];
    const x = (v) => left + ((v - x0) / (x1 - x0)) * (width - left - right);
    const y = (v) => height - bottom - ((v - y0) / (y1 - y0)) * (height - top - bottom);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "vq-live-chart", role: "img",
      "aria-label": "Rate-distortion chart of the sweep: test PSNR against bits per image; the chosen point is marked" });
    chart.append(svg("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "vq-live-axis" }));
    chart.append(svg("line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "vq-live-axis" }));
    for (const rate of [...new Set(rates)].sort((a, b) => a - b)) {
      chart.append(svg("text", { x: x(rate), y: height - bottom + 14, "text-anchor": "middle", class: "vq-live-tick" }, String(rate)));
    }
    for (let v = Math.ceil(y0); v <= y1; v += 1) {
      chart.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "vq-live-tick" }, String(v)));
    }
    chart.append(svg("text", { x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle", class: "vq-live-tick" },
      "rate: bits per image (49 log2 K)"));
    chart.append(svg("text", { x: 12, y: (top + height - bottom) / 2, "text-anchor": "middle", class: "vq-live-tick",
      transform: `rotate(-90 12 ${(top + height - bottom) / 2})` }, "test PSNR (dB)"));
    const [baseK, baseD] = this.sweep.base;
    const kLine = points.filter((p) => p.D === baseD).sort((a, b) => a.K - b.K);
    chart.append(svg("polyline", { points: kLine.map((p) => `${x(p.rate_bits)},${y(p.test_psnr_db)}`).join(" "),
      class: "vq-live-line" }));
    this.markers = new Map();
    for (const p of points) {
      const marker = svg("circle", { cx: x(p.rate_bits), cy: y(p.test_psnr_db), r: 4, "data-name": p.name,
        class: p.D === baseD ? "vq-live-point" : "vq-live-point vq-live-d-point" });
      marker.append(svg("title", {}, `K = ${p.K}, D = ${p.D}: ${p.rate_bits} bits, ${p.test_psnr_db.toFixed(2)} dB`));
      marker.addEventListener("click", () => this.choose(p.K, p.D));
      this.markers.set(p.name, marker);
      chart.append(marker);
    }
    chart.append(svg("text", { x: width - right, y: top + 8, "text-anchor": "end", class: "vq-live-tick" },
      `line: K at D = ${baseD}; hollow dots: D at K = ${baseK}`));
    return element("figure", { class: "vq-live-figure vq-live-chart-figure" }, [chart,
      element("figcaption", { text: "The sweep's rate and test PSNR (red: the chosen point)" })]);
  }

  async session(point) {
    if (!this.sessions.has(point.name)) {
      this.sessions.set(point.name, this.ort.InferenceSession.create(
        new URL(`sweep/${point.name}.onnx`, GENERATED).href, { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
    }
    return this.sessions.get(point.name);
  }

  async choose(k, d) {
    const point = this.sweep.points.find((p) => p.K === k && p.D === d);
    this.pending = (this.pending || Promise.resolve()).then(async () => {
      const t0 = performance.now();
      const session = await this.session(point);
      const t1 = performance.now();
      const input = new this.ort.Tensor("int32", Int32Array.from(point.codes), [this.count, GRID, GRID]);
      const outputs = await session.run({ [session.inputNames[0]]: input });
      const pixels = outputs[session.outputNames[0]].data;
      const ms = performance.now() - t1;
      this.reconstructions.forEach((canvas, i) => {
        draw(canvas, pixels.subarray(i * SIZE * SIZE, (i + 1) * SIZE * SIZE));
        canvas.setAttribute("aria-label", `test digit ${i + 1} reconstructed with K = ${k}, D = ${d}`);
      });
      this.choiceButtons.forEach((b) => b.setAttribute("aria-pressed",
        String(b.dataset.choice === `K${k}` || b.dataset.choice === `D${d}`)));
      this.markers.forEach((m, name) => m.classList.toggle("vq-live-chosen", name === point.name));
      this.point = point.name;
      this.timings.last_load_ms = t1 - t0;
      this.timings.last_decode_ms = ms;
      this.decodes += 1;
      this.root.dataset.decodes = String(this.decodes);
      this.root.dataset.point = point.name;
      this.status.textContent = `K = ${k}, D = ${d}: ${point.rate_bits} bits per image, test PSNR `
        + `${point.test_psnr_db.toFixed(2)} dB, perplexity ${point.test_perplexity.toFixed(1)}, `
        + `${point.codes_used} of ${k} codes used; ${this.count} digits decoded in ${ms.toFixed(1)} ms.`;
    });
    return this.pending;
  }
}

const KINDS = { "code-editor": CodeEditor, sampler: Sampler, "sweep-explorer": SweepExplorer };

async function startAll() {
  const roots = [...document.querySelectorAll("[data-vq-live]")].filter((r) => !r.dataset.state);
  if (!roots.length) return;
  loadStyles();
  for (const root of roots) {
    const Kind = KINDS[root.dataset.vqLive];
    if (!Kind) {
      console.warn(`vq_live: unknown widget ${root.dataset.vqLive}`);
      continue;
    }
    const widget = new Kind(root);
    window.vqLive.widgets.push(widget);
    const start = () => widget.start().catch((error) => {
      root.dataset.state = "unavailable";
      widget.status.textContent = `The live figure could not start here (${error.message}); the lesson's static `
        + "figures show the same.";
      console.warn("vq_live:", error);
    });
    // Download the runtime and the models only when the reader comes near the widget.
    if (!("IntersectionObserver" in window)) {
      start();
      continue;
    }
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) {
        observer.disconnect();
        start();
      }
    }, { rootMargin: "800px 0px" });
    observer.observe(root);
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
else startAll();
