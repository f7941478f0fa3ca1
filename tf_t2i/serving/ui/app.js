// The page of a served text-to-image model (served by tf_t2i/serving/ui_server.py, or as
// plain files by any web server). It talks to the model only through TF Serving's REST
// API, at URLs relative to the page, so it works in front of a stock
// tensorflow_model_server behind a reverse proxy (serving/nginx.conf):
//   GET  v1/models/<model>/metadata  which signatures the model has, and their inputs
//   POST v1/models/<model>:predict   caption_words, serving_default, generate_with_maps
// ui-config.json (model name, batch limit, example captions) is optional; ?model=<name>
// in the page's URL picks the model. Everything the server sends is shown as text or as
// data: URLs of PNG bytes, never as HTML.
(function () {
  "use strict";

  // Seeds are int64 on the server; JSON numbers are exact integers only up to 2^53 - 1.
  const MAX_SEED = Number.MAX_SAFE_INTEGER;
  const NEW_SEED_RANGE = 2 ** 31;
  // Used when there is no ui-config.json (e.g. plain files behind nginx): the captions of
  // the shapes dataset, this repository's demo.
  const DEFAULT_CONFIG = {
    model: "t2i",
    max_batch_size: null,
    dataset: null,
    example_captions: ["a large red circle in the center", "a small blue square on the left",
                       "a green triangle at the top", "a big yellow star on the right"],
  };
  const WORD_CHECK_DELAY_MS = 400;

  const el = (id) => document.getElementById(id);
  const state = {
    config: Object.assign({}, DEFAULT_CONFIG),
    signatures: null,      // the model's SignatureDefs (REST metadata), null until read
    version: null,
    busy: false,
    wordCheck: 0,          // number of the latest vocabulary check (older answers ignored)
  };

  class ServerDown extends Error {}
  class RequestFailed extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function setMessage(text, kind) {
    const box = el("message");
    box.textContent = text;
    box.dataset.kind = text ? kind : "";
  }

  function modelPath() {
    return "v1/models/" + encodeURIComponent(el("model").value.trim() || DEFAULT_CONFIG.model);
  }

  // One REST call: the parsed JSON answer, RequestFailed with the server's error, or
  // ServerDown when nothing answers (fetch fails; a proxy's 502 / 504).
  async function callApi(path, body) {
    let response;
    try {
      response = await fetch(path, body === undefined ? {cache: "no-store"} : {
        method: "POST",
        cache: "no-store",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new ServerDown(String(error.message || error));
    }
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch (error) {
      json = null;
    }
    if (response.status === 502 || response.status === 504 ||
        (response.status === 503 && json === null)) {
      throw new ServerDown(json && json.error ? json.error : "HTTP " + response.status);
    }
    if (!response.ok) {
      const message = json && typeof json.error === "string" ? json.error : text.slice(0, 300);
      throw new RequestFailed(response.status, message);
    }
    if (json === null) {
      throw new RequestFailed(response.status, "The answer is not JSON.");
    }
    return json;
  }

  async function predict(signature, inputs) {
    const answer = await callApi(modelPath() + ":predict",
                                 {signature_name: signature, inputs: inputs});
    return answer.outputs;
  }

  // One line for the user: what went wrong and what to do.
  function describeFailure(error) {
    if (error instanceof ServerDown) {
      return "Cannot reach the model server: is it running? (" + error.message + ")";
    }
    if (!(error instanceof RequestFailed)) {
      return "Something went wrong on this page: " + error;
    }
    const message = error.message;
    const overLimit = /larger than maximum input batch size (\d+)/.exec(message);
    if (overLimit) {
      return "Too many images for one request: the server takes at most " + overLimit[1] +
             ". (" + message + ")";
    }
    if (/Empty caption/.test(message)) {
      return "The caption has no word the model can read: type a caption with words.";
    }
    if (error.status === 404) {
      return "The server has no model named \"" + el("model").value.trim() + "\": " + message;
    }
    return "The server refused the request (HTTP " + error.status + "): " + message;
  }

  function localWords(caption) {
    return caption.toLowerCase().split(/[^\p{L}\p{N}_]+/u).filter(Boolean);
  }

  // The words as the model reads them ([{word, known}]), through caption_words; null
  // when the model has no such signature.
  async function modelWords(caption) {
    if (!state.signatures || !state.signatures.caption_words) {
      return null;
    }
    const outputs = await predict("caption_words", {captions: [caption]});
    const count = outputs.num_words[0];
    return outputs.words[0].slice(0, count).map(
      (word, i) => ({word: word, known: Boolean(outputs.in_vocabulary[0][i])}));
  }

  function renderWords(words) {
    const box = el("caption-words");
    box.textContent = "";
    for (const item of words) {
      const chip = document.createElement("span");
      chip.className = "chip" + (item.known === false ? " unknown" : "");
      chip.textContent = item.word;
      chip.dataset.word = item.word;
      if (item.known === false) {
        chip.title = "Not in the model's vocabulary: read as an unknown word";
      }
      chip.addEventListener("mouseenter", () => highlightWord(item.word));
      chip.addEventListener("mouseleave", clearHighlight);
      box.appendChild(chip);
    }
  }

  async function checkWordsSoon() {
    const number = ++state.wordCheck;
    const caption = el("caption").value;
    renderWords(localWords(caption).map((word) => ({word: word})));
    await new Promise((resolve) => setTimeout(resolve, WORD_CHECK_DELAY_MS));
    if (number !== state.wordCheck || !/[\p{L}\p{N}_]/u.test(caption)) {
      return;
    }
    try {
      const words = await modelWords(caption.trim());
      if (words && number === state.wordCheck) {
        renderWords(words);
      }
    } catch (error) {
      // Shown when the user generates; a check while typing stays quiet.
    }
  }

  // --- Masks / attention maps: which words drew where. ---------------------------------
  function showOverlay(figure, thumb) {
    const overlay = figure.querySelector(".overlay");
    overlay.src = thumb.src;
    overlay.hidden = false;
    thumb.classList.add("active");
  }

  function highlightWord(word) {
    for (const chip of document.querySelectorAll("#caption-words .chip")) {
      chip.classList.toggle("active", chip.dataset.word === word);
    }
    for (const figure of document.querySelectorAll("#results .result")) {
      const thumbs = [...figure.querySelectorAll(".map-thumb")]
        .filter((thumb) => thumb.dataset.word === word);
      thumbs.forEach((thumb) => thumb.classList.add("active"));
      if (thumbs.length) {
        showOverlay(figure, thumbs[0]);
      }
    }
  }

  function clearHighlight() {
    document.querySelectorAll(".active").forEach((node) => node.classList.remove("active"));
    document.querySelectorAll("#results .overlay").forEach((overlay) => {
      overlay.hidden = true;
    });
  }

  function pngUrl(value) {
    return "data:image/png;base64," + value.b64;
  }

  function fileName(caption, seed) {
    const slug = caption.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "");
    return "t2i_" + slug.slice(0, 48) + "_seed" + seed + ".png";
  }

  function renderMaps(figure, outputs, i) {
    const maps = document.createElement("div");
    maps.className = "maps";
    outputs.map_png_bytes[i].forEach((png, j) => {
      const word = outputs.map_words[i][j];
      if (/\(padding\)$/.test(outputs.map_labels[i][j])) {
        return;  // word attention at a position past the caption: always empty
      }
      const thumb = document.createElement("img");
      thumb.className = "map-thumb";
      thumb.src = pngUrl(png);
      thumb.dataset.word = word;
      thumb.alt = thumb.title = outputs.map_labels[i][j] + (word ? " (" + word + ")" : "");
      thumb.addEventListener("mouseenter", () => {
        if (word) {
          highlightWord(word);
        }
        showOverlay(figure, thumb);
      });
      thumb.addEventListener("mouseleave", clearHighlight);
      maps.appendChild(thumb);
    });
    figure.appendChild(maps);
  }

  function renderResults(outputs, caption, seeds, withMaps) {
    const results = el("results");
    results.textContent = "";
    seeds.forEach((seed, i) => {
      const url = pngUrl(outputs.png_bytes[i]);
      const figure = document.createElement("figure");
      figure.className = "result";
      figure.dataset.seed = String(seed);
      const frame = document.createElement("div");
      frame.className = "frame";
      const image = document.createElement("img");
      image.className = "result-image";
      image.src = url;
      image.alt = caption + " (seed " + seed + ")";
      const overlay = document.createElement("img");
      overlay.className = "overlay";
      overlay.alt = "";
      overlay.hidden = true;
      frame.append(image, overlay);
      const label = document.createElement("figcaption");
      const seedText = document.createElement("span");
      seedText.className = "seed";
      seedText.textContent = "seed " + seed;
      const download = document.createElement("a");
      download.className = "download";
      download.href = url;
      download.download = fileName(caption, seed);
      download.textContent = "PNG";
      download.title = "Download this image as PNG";
      label.append(seedText, download);
      figure.append(frame, label);
      if (withMaps) {
        renderMaps(figure, outputs, i);
      }
      results.appendChild(figure);
    });
    if (withMaps) {
      const hint = document.createElement("p");
      hint.className = "hint maps-hint";
      // SSA-GAN's masks belong to generator blocks, the AttnGAN family's maps to words.
      const wordMaps = outputs.map_words.some((words) => words.some((word) => word));
      hint.textContent = wordMaps
        ? "Hover a word of the caption or a map: the maps of that word are laid over the " +
          "images (which words drew where)."
        : "The model's masks, one per generator block: hover one to lay it over its image " +
          "(light: where the caption modulates the features).";
      results.prepend(hint);
    }
  }

  // --- Reading the form. ---------------------------------------------------------------
  function readCount() {
    const input = el("count");
    const count = Number(input.value);
    const limit = input.max ? Number(input.max) : null;
    if (!Number.isInteger(count) || count < 1) {
      throw new Error("Number of images: a whole number from 1" +
                      (limit ? " to " + limit : "") + ".");
    }
    if (limit && count > limit) {
      input.value = String(limit);
      throw new Error("At most " + limit + " images per request (the server's batch " +
                      "limit): set to " + limit + ".");
    }
    return count;
  }

  function readSeeds(count) {
    const seed = Number(el("seed").value);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed + count - 1 > MAX_SEED) {
      throw new Error("Seed: a whole number from 0 to " + (MAX_SEED - count + 1) + ".");
    }
    return Array.from({length: count}, (_, i) => seed + i);
  }

  async function generate(event) {
    event.preventDefault();
    if (state.busy) {
      return;
    }
    const caption = el("caption").value.trim();
    if (!/[\p{L}\p{N}_]/u.test(caption)) {
      setMessage("Type a caption first: it needs at least one word.", "error");
      el("caption").focus();
      return;
    }
    let seeds;
    try {
      seeds = readSeeds(readCount());
    } catch (error) {
      setMessage(error.message, "error");
      return;
    }
    state.busy = true;
    el("generate").disabled = true;
    document.body.dataset.busy = "true";
    try {
      if (!state.signatures) {
        await loadMetadata();
      }
      state.wordCheck++;  // a pending check while typing must not redraw the words
      const words = await modelWords(caption);
      renderWords(words || localWords(caption).map((word) => ({word: word})));
      if (words && words.length === 0) {
        setMessage("The caption has no word the model can read: type a caption with words.",
                   "error");
        return;
      }
      const unknown = [...new Set((words || []).filter((w) => !w.known).map((w) => w.word))];
      setMessage("Generating " + seeds.length + " image" + (seeds.length > 1 ? "s" : "") +
                 "\u2026", "info");
      const withMaps = !el("maps-control").hidden && el("show-maps").checked;
      const inputs = {captions: seeds.map(() => caption), seeds: seeds};
      if (!el("truncation-control").hidden) {
        inputs.truncation = seeds.map(() => Number(el("truncation").value));
      }
      const outputs = await predict(withMaps ? "generate_with_maps" : "serving_default",
                                    inputs);
      renderResults(outputs, caption, seeds, withMaps);
      if (unknown.length) {
        setMessage("Words the model does not know (read as unknown): " + unknown.join(", ") +
                   ". The images were generated anyway.", "warning");
      } else {
        setMessage(seeds.length + " image" + (seeds.length > 1 ? "s" : "") + ", seed" +
                   (seeds.length > 1 ? "s " + seeds[0] + "\u2013" + seeds[seeds.length - 1]
                                     : " " + seeds[0]) + ".", "info");
      }
    } catch (error) {
      setMessage(describeFailure(error), "error");
    } finally {
      state.busy = false;
      el("generate").disabled = false;
      document.body.dataset.busy = "false";
    }
  }

  // --- Start-up: config, then the model's signatures. -----------------------------------
  async function loadConfig() {
    try {
      const response = await fetch("ui-config.json", {cache: "no-store"});
      if (response.ok) {
        const config = await response.json();
        for (const key of Object.keys(DEFAULT_CONFIG)) {
          if (config[key] !== undefined && config[key] !== null) {
            state.config[key] = config[key];
          }
        }
      }
    } catch (error) {
      // Optional: plain files in front of a stock TF Serving have no config.
    }
  }

  function describeModel() {
    const parts = ["Model \u201c" + el("model").value.trim() + "\u201d"];
    if (state.version) {
      parts.push("version " + state.version);
    }
    if (el("count").max) {
      parts.push("up to " + el("count").max + " images per request");
    }
    if (state.config.dataset) {
      parts.push("trained on " + state.config.dataset);
    }
    return parts.join(" \u00b7 ");
  }

  async function loadMetadata() {
    try {
      const answer = await callApi(modelPath() + "/metadata");
      const map = answer.metadata && answer.metadata.signature_def;
      state.signatures = (map && map.signature_def) || {};
      state.version = answer.model_spec && answer.model_spec.version;
      const inputs = (state.signatures.serving_default || {}).inputs || {};
      el("truncation-control").hidden = !("truncation" in inputs);
      el("maps-control").hidden = !state.signatures.generate_with_maps;
      el("model-info").textContent = describeModel();
      if (el("message").dataset.kind === "error") {
        setMessage("", "");
      }
    } catch (error) {
      state.signatures = null;
      el("model-info").textContent = "Not connected to a model.";
      setMessage(describeFailure(error), "error");
    }
  }

  function setUpExamples() {
    const box = el("examples");
    for (const caption of state.config.example_captions) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "example";
      button.textContent = caption;
      button.addEventListener("click", () => {
        el("caption").value = caption;
        checkWordsSoon();
        el("caption").focus();
      });
      box.appendChild(button);
    }
  }

  async function start() {
    await loadConfig();
    const params = new URLSearchParams(window.location.search);
    el("model").value = params.get("model") || state.config.model;
    if (state.config.max_batch_size) {
      el("count").max = String(state.config.max_batch_size);
      el("count").value = String(Math.min(Number(el("count").value),
                                          state.config.max_batch_size));
    }
    el("seed").max = String(MAX_SEED);
    el("seed").value = String(Math.floor(Math.random() * NEW_SEED_RANGE));
    setUpExamples();
    el("generate-form").addEventListener("submit", generate);
    el("new-seed").addEventListener("click", () => {
      el("seed").value = String(Math.floor(Math.random() * NEW_SEED_RANGE));
    });
    el("caption").addEventListener("input", checkWordsSoon);
    el("caption").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {  // Enter generates, Shift+Enter breaks
        event.preventDefault();
        el("generate-form").requestSubmit();
      }
    });
    el("model").addEventListener("change", () => {
      state.signatures = null;
      loadMetadata();
    });
    await loadMetadata();
    document.body.dataset.ready = "true";  // the browser test waits for this
  }

  start();
})();
