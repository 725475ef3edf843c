// The Bulwark console's one script (docs/console.md). Pages work without it except the live overview and the
// playground. It never writes markup from data: every value goes in through textContent or an SVG attribute.

const SVG = "http://www.w3.org/2000/svg";

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

function el(name, attributes = {}, text) {
  const node = name.startsWith("svg:") ? document.createElementNS(SVG, name.slice(4)) : document.createElement(name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// ---- Overview: figures and charts from /console/api/overview, every two seconds ----

const seconds = (v) => (v === null || v === undefined ? "–" : v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`);
const triple = (p) => (p.count === 0 ? "no data yet" : `${seconds(p.p50)} / ${seconds(p.p95)} / ${seconds(p.p99)}`);
const number = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

function drawChart(target, points) {
  const width = 300, height = 60, max = Math.max(1, ...points);
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "spark", "aria-hidden": "true" });
  const step = width / Math.max(1, points.length - 1);
  const path = points.map((p, i) => `${i === 0 ? "M" : "L"}${(i * step).toFixed(1)},${(height - (p / max) * (height - 4) - 2).toFixed(1)}`).join(" ");
  svg.append(el("svg:path", { d: path || "M0,58", class: "line" }));
  svg.append(el("svg:text", { x: 4, y: 12, class: "max" }, `max ${number(max)}`));
  target.replaceChildren(svg);
}

function fillTable(body, rows, empty) {
  body.replaceChildren(...(rows.length === 0 ? [[empty, ""]] : rows).map(([k, v]) => {
    const tr = el("tr");
    tr.append(el("th", { scope: "row" }, k), el("td", {}, v));
    return tr;
  }));
}

function startOverview(section) {
  const history = { requests_rate: [], tokens_rate: [] };
  let previous = null;
  const set = (key, text) => { const node = section.querySelector(`[data-figure="${key}"]`); if (node) node.textContent = text; };
  async function tick() {
    let figures;
    try {
      const response = await fetch(section.dataset.source, { headers: { Accept: "application/json" } });
      if (response.status === 401) { location.assign("/console/sign-in"); return; }
      figures = await response.json();
    } catch { return; }
    const now = performance.now();
    if (previous) {
      const dt = (now - previous.at) / 1000;
      for (const [key, total] of [["requests_rate", "requests"], ["tokens_rate", "generationTokens"]]) {
        const rate = Math.max(0, (figures[total] - previous.figures[total]) / dt);
        history[key].push(rate);
        if (history[key].length > 150) history[key].shift();
        set(key, rate.toFixed(1));
        const chart = section.querySelector(`[data-chart="${key}"]`);
        if (chart) drawChart(chart, history[key]);
      }
    }
    previous = { at: now, figures };
    set("requests", number(figures.requests));
    set("generation_tokens", number(figures.generationTokens));
    set("ttft", triple(figures.timeToFirstToken));
    set("itl", triple(figures.interTokenLatency));
    set("duration", triple(figures.requestDuration));
    set("queue", triple(figures.queueTime));
    set("admission", `${figures.admissionRunning} / ${figures.admissionWaiting}`);
    set("kv", `${(figures.kvCacheUsage * 100).toFixed(1)} %`);
    set("prefix", figures.prefixCacheHitRate === null ? "no lookups yet" : `${(figures.prefixCacheHitRate * 100).toFixed(1)} %`);
    set("degradation", figures.degradation);
    set("isolated", figures.isolated ? "yes" : "no");
    fillTable(section.querySelector('[data-table="refusals"]'), Object.entries(figures.refusals).map(([k, v]) => [k, number(v)]), "none");
    fillTable(section.querySelector('[data-table="guard"]'), Object.entries(figures.guardVerdicts).map(([k, v]) => [k, number(v)]), "none");
    fillTable(section.querySelector('[data-table="upstreams"]'),
      figures.upstreams.map((u) => [`${u.pool} ${u.endpoint}`, u.healthy ? "healthy" : "down"]), "no upstream pools");
  }
  tick();
  setInterval(tick, 2000);
}

const overview = document.getElementById("overview");
if (overview) startOverview(overview);

// ---- Playground: streaming chat through the public API with an API key, never the console session ----

function startPlayground(section) {
  const form = section.querySelector("#playground-form");
  const transcript = section.querySelector("#pg-transcript");
  const stats = section.querySelector("#pg-stats");
  const note = section.querySelector("#pg-key-note");
  const messages = [];
  let minted = null; // { key, model, expires } held in this page's memory only

  function turn(role, text) {
    const p = el("p", { class: "turn" });
    p.append(el("span", { class: "role" }, role), el("span", { class: "content" }, text));
    transcript.append(p);
    return p.querySelector(".content");
  }

  async function keyFor(model) {
    const pasted = form.elements.key.value.trim();
    if (pasted) return pasted;
    if (minted && minted.model === model && Date.parse(minted.expires) - Date.now() > 60_000) return minted.key;
    const response = await fetch(section.dataset.mint, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify({ model }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error?.message ?? `minting a key failed (${response.status})`);
    minted = { key: body.key, model, expires: body.expires_at };
    note.textContent = `Using playground key ${body.id} for ${model}, valid until ${body.expires_at}.`;
    return minted.key;
  }

  // A textarea's JSON, or undefined when empty; a clear error (shown in the stats line) when it does not parse.
  function json(name, what) {
    const text = form.elements[name].value.trim();
    if (text === "") return undefined;
    try { return JSON.parse(text); } catch { throw new Error(`${what} is not valid JSON`); }
  }

  // The structured-output and tool options, as the API takes them.
  function options() {
    const chosen = {};
    const format = form.elements.response_format.value;
    if (format === "json_object") chosen.response_format = { type: "json_object" };
    if (format === "json_schema") {
      const schema = json("schema", "the JSON schema");
      if (schema === undefined) throw new Error("the JSON schema format needs a schema");
      chosen.response_format = { type: "json_schema", json_schema: { name: "playground", schema, strict: true } };
    }
    const tools = json("tools", "the tools list");
    if (tools !== undefined) {
      if (!Array.isArray(tools)) throw new Error("the tools list must be a JSON array");
      chosen.tools = tools;
      chosen.tool_choice = form.elements.tool_choice.value;
    }
    return chosen;
  }

  // The input guard's verdict on the request, from its audit record (written within a moment of the reply).
  async function showGuard(requestId) {
    const line = section.querySelector("#pg-guard");
    line.textContent = "";
    if (!requestId) return;
    for (let attempt = 0; attempt < 25; attempt++) {
      const response = await fetch(`${section.dataset.verdict}?request=${encodeURIComponent(requestId)}`, { credentials: "same-origin" });
      if (!response.ok) return;
      const body = await response.json();
      if (body.found) {
        const g = body.guard;
        line.textContent = g ? `Guard: ${g.decision}${typeof g.score === "number" ? ` (score ${g.score.toFixed(3)})` : ""}${g.rules?.length ? ` · rules ${g.rules.join(", ")}` : ""}` : "Guard: not scanned";
        section.dataset.guard = g ? g.decision : "none";
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  function number(name, integer) {
    const text = form.elements[name].value.trim();
    if (text === "") return undefined;
    return integer ? parseInt(text, 10) : parseFloat(text);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const model = form.elements.model.value;
    const text = form.elements.message.value;
    if (!text.trim()) return;
    const send = form.querySelector("#pg-send");
    send.disabled = true;
    stats.textContent = "";
    try {
      const chosen = options();
      const key = await keyFor(model);
      messages.push({ role: "user", content: text });
      turn("user", text);
      form.elements.message.value = "";
      const out = turn("assistant", "");
      const request = { model, messages, stream: true, stream_options: { include_usage: true },
        temperature: number("temperature"), top_p: number("top_p"), max_tokens: number("max_tokens", true), seed: number("seed", true), ...chosen };
      const started = performance.now();
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify(request),
        credentials: "omit",
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.error?.message ?? `the API answered ${response.status}`);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "", first = null, chunks = 0, usage = null, answer = "";
      const calls = [];
      const show = () => {
        out.textContent = answer + calls.map((c) => `${answer ? "\n" : ""}→ ${c.function.name}(${c.function.arguments})`).join("\n");
      };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of frame.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const data = line.slice(6);
            if (data === "[DONE]") continue;
            const chunk = JSON.parse(data);
            if (chunk.usage) usage = chunk.usage;
            const delta = chunk.choices?.[0]?.delta?.content;
            if (delta) {
              if (first === null) first = performance.now();
              chunks++;
              answer += delta;
              show();
            }
            // Tool calls stream as OpenAI's: id and name first, then argument fragments, by index.
            for (const part of chunk.choices?.[0]?.delta?.tool_calls ?? []) {
              if (first === null) first = performance.now();
              const call = calls[part.index] ??= { id: part.id, type: "function", function: { name: "", arguments: "" } };
              if (part.id) call.id = part.id;
              if (part.function?.name) call.function.name += part.function.name;
              if (part.function?.arguments) call.function.arguments += part.function.arguments;
              show();
            }
          }
        }
      }
      const finished = performance.now();
      messages.push(calls.length > 0 ? { role: "assistant", content: answer || null, tool_calls: calls } : { role: "assistant", content: answer });
      const tokens = usage?.completion_tokens ?? chunks;
      const ttft = first === null ? null : first - started;
      const rate = first !== null && finished > first && tokens > 1 ? (tokens - 1) / ((finished - first) / 1000) : null;
      stats.textContent = `TTFT ${ttft === null ? "–" : `${ttft.toFixed(0)} ms`} · ${rate === null ? "–" : rate.toFixed(1)} tokens/s · ${tokens} tokens`;
      section.dataset.done = String(messages.length);
      await showGuard(response.headers.get("x-request-id"));
    } catch (error) {
      if (messages.length > 0 && messages[messages.length - 1].role === "user") messages.pop();
      stats.textContent = `Error: ${error.message}`;
      section.dataset.error = error.message;
    } finally {
      send.disabled = false;
    }
  });
}

const playground = document.getElementById("playground");
if (playground) startPlayground(playground);
