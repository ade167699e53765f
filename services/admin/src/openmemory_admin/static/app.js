// The OpenMemory dashboard: one script for every page; it renders from the REST API (/api/v1).
"use strict";

const API = "/api/v1";
let csrf = "";
let me = null;

const $ = (sel, root = document) => root.querySelector(sel);
const content = () => $("#content");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function flash(message, error = false) {
  const box = $("#flash");
  box.textContent = message || "";
  box.className = error ? "error" : "";
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const method = (options.method || "GET").toUpperCase();
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  let body = options.body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(API + path, { method, headers, body, credentials: "same-origin" });
  if (response.status === 401 && document.body.dataset.page !== "login") {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("signed out");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const data = await response.json();
      detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
    } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

async function guarded(work) {
  try {
    await work();
  } catch (error) {
    if (error.message !== "signed out") flash(error.message, true);
  }
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const tags = (names) => (names || []).map((n) => el("span", { class: "tag" }, n));
const outcome = (result) => (result.status === "applied" ? "Done." : "Accepted: it will be applied shortly.");

// ---- sign-in ---------------------------------------------------------------------------------

// Where to go after signing in: `next` only if the browser's own URL parser resolves it to this
// origin ("/\host/x" and "/<tab>/host/x" do not), else the overview. The target is made absolute,
// so a same-origin path that starts with "//" (from "/.//host/x") cannot be read as another host.
function sameOriginTarget(next) {
  if (!next) return "/";
  let url;
  try {
    url = new URL(next, location.origin);
  } catch (_) {
    return "/";
  }
  if (url.origin !== location.origin) return "/";
  return location.origin + url.pathname + url.search + url.hash;
}

function renderLogin() {
  const input = el("input", { type: "password", id: "api-key", name: "api_key", placeholder: "om_…", size: 48, required: true, autocomplete: "off" });
  const form = el("form", { class: "card login", id: "login-form" },
    el("p", {}, "Sign in with an OpenMemory API key (", el("code", {}, "make run"), " prints the first one)."),
    el("label", { class: "field" }, el("span", {}, "API key"), input),
    el("button", { class: "primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      await api("/session", { method: "POST", body: { api_key: input.value } });
      location.href = sameOriginTarget(new URLSearchParams(location.search).get("next"));
    });
  });
  content().append(form);
}

// ---- overview --------------------------------------------------------------------------------

function bars(counts) {
  const max = Math.max(1, ...counts.map((c) => c.count));
  return el("div", { class: "bars" }, counts.slice(0, 12).map((c) => [
    el("span", {}, c.name), el("div", { class: "bar", style: null, dataset: { width: (100 * c.count) / max } }), el("span", { class: "muted" }, c.count),
  ]));
}

function sizeBars(root) {
  for (const bar of root.querySelectorAll(".bar")) bar.style.width = bar.dataset.width + "%";
}

function dayChart(days) {
  const width = 600, height = 140, pad = 18;
  const max = Math.max(1, ...days.map((d) => d.count));
  const step = days.length ? Math.min(40, (width - 2 * pad) / days.length) : 0;
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "memories created per day" });
  days.forEach((d, i) => {
    const h = ((height - 2 * pad) * d.count) / max;
    chart.append(svg("rect", { x: pad + i * step + 1, y: height - pad - h, width: Math.max(1, step - 2), height: h },
      svg("title", {}, `${d.name}: ${d.count}`)));
  });
  if (days.length) chart.append(svg("text", { x: pad, y: height - 4 }, days[0].name));
  if (days.length > 1) chart.append(svg("text", { x: pad + days.length * step, y: height - 4, "text-anchor": "end" }, days[days.length - 1].name));
  return chart;
}

function feedItem(a) {
  return el("li", { dataset: { memory: a.memory_id } },
    el("strong", {}, a.change), " ", el("span", { class: "muted" }, `${a.app} · ${when(a.at)}`), el("br"),
    el("a", { href: `/memory?id=${a.memory_id}` }, a.text || a.memory_id));
}

// Today's LLM tokens against the daily budget (GET /llm-usage); nothing when the local extractor runs.
function llmUsageLine(usage) {
  if (!usage || usage.extractor !== "llm") return null;
  const part = (name, u) => `${name} ${u.tokens} tokens` + (u.budget ? ` of ${u.budget}` : "") + (u.spent ? " (budget spent: extracting locally until midnight UTC)" : "");
  return el("p", { class: "muted", id: "llm-usage" }, `LLM today (${usage.day}): ` + part("you", usage.user) + (usage.total ? " · " + part("everyone", usage.total) : ""));
}

async function renderOverview() {
  const [stats, recent, usage] = await Promise.all([api("/stats"), api("/activity?limit=30"), api("/llm-usage").catch(() => null)]);
  const states = stats.by_state;
  const feed = el("ul", { class: "feed", id: "activity-feed" }, recent.map(feedItem));
  const root = el("div", {},
    llmUsageLine(usage),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("div", { class: "muted" }, "Memories"), el("div", { class: "total", id: "total" }, stats.total),
        el("div", { class: "muted" }, `${states.active || 0} active · ${states.paused || 0} paused · ${states.archived || 0} archived · ${states.pending || 0} pending review`)),
      el("div", { class: "card" }, el("div", { class: "muted" }, "Apps"), el("div", { class: "total" }, stats.by_app.length)),
      el("div", { class: "card" }, el("div", { class: "muted" }, "Categories"), el("div", { class: "total" }, stats.by_category.length)),
      el("div", { class: "card" }, el("div", { class: "muted" }, "Embedding model"), el("div", {}, stats.embedding_model))),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "Live activity"), feed),
      el("div", { class: "card" }, el("h2", {}, "Memories over time"), dayChart(stats.per_day))),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h2", {}, "By app"), bars(stats.by_app)),
      el("div", { class: "card" }, el("h2", {}, "By category"), bars(stats.by_category))));
  content().append(root);
  sizeBars(root);
  const stream = new EventSource(API + "/activity/stream");
  // data-live: connected, so every later change shows here (the server sends once it listens).
  stream.onopen = () => { feed.dataset.live = "true"; };
  stream.onerror = () => { delete feed.dataset.live; };
  stream.onmessage = (message) => {
    const activity = JSON.parse(message.data);
    feed.prepend(feedItem(activity));
    if (activity.change === "ADD") $("#total").textContent = Number($("#total").textContent) + 1;
  };
  window.addEventListener("beforeunload", () => stream.close());
}

// ---- memories --------------------------------------------------------------------------------

async function renderMemories() {
  const params = new URLSearchParams(location.search);
  const [apps, categories] = await Promise.all([api("/apps"), api("/categories")]);
  const option = (value, label, selected) => el("option", { value, selected: selected ? "selected" : null }, label);
  const form = el("form", { class: "inline", id: "filters" },
    el("input", { name: "text", placeholder: "Search text", value: params.get("text") || "" }),
    el("select", { name: "app" }, option("", "All apps"), apps.map((a) => option(a.app, a.app, params.get("app") === a.app))),
    el("select", { name: "category" }, option("", "All categories"), categories.map((c) => option(c.name, c.name, params.get("category") === c.name))),
    el("select", { name: "state" }, option("", "Every state"), ["active", "paused", "archived", "pending"].map((s) => option(s, s, params.get("state") === s))),
    el("label", {}, "from ", el("input", { type: "date", name: "since", value: params.get("since") || "" })),
    el("label", {}, "to ", el("input", { type: "date", name: "until", value: params.get("until") || "" })),
    el("select", { name: "sort" }, [["created_desc", "Newest"], ["created_asc", "Oldest"], ["updated_desc", "Recently changed"]].map(([v, l]) => option(v, l, params.get("sort") === v))),
    el("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    location.search = next.toString();
  });
  const query = new URLSearchParams();
  for (const key of ["text", "app", "category", "state", "sort", "page"]) if (params.get(key)) query.set(key, params.get(key));
  if (params.get("since")) query.set("since", params.get("since") + "T00:00:00Z");
  if (params.get("until")) query.set("until", params.get("until") + "T23:59:59Z");
  const page = await api("/memories?" + query.toString());
  const checks = [];
  const rows = page.memories.map((m) => {
    const check = el("input", { type: "checkbox", value: m.id, "aria-label": "select" });
    checks.push(check);
    return el("tr", { dataset: { id: m.id } },
      el("td", {}, check),
      el("td", { class: "text" }, el("a", { href: `/memory?id=${m.id}` }, m.text)),
      el("td", {}, m.app), el("td", {}, tags(m.categories)),
      el("td", { class: `state-${m.state}` }, m.state), el("td", { class: "muted" }, when(m.created_at)),
      el("td", {}, el("button", { type: "button", class: "edit", onclick: () => inlineEdit(m) }, "Edit")));
  });
  const bulk = (action) => () => guarded(async () => {
    const ids = checks.filter((c) => c.checked).map((c) => c.value);
    if (!ids.length) return flash("Select memories first.", true);
    if (action === "delete" && !confirm(`Delete ${ids.length} memories?`)) return;
    flash(outcome(await api("/memories/actions", { method: "POST", body: { action, ids } })));
    setTimeout(() => location.reload(), 400);
  });
  const pages = Math.max(1, Math.ceil(page.total / page.page_size));
  const go = (n) => { params.set("page", n); location.search = params.toString(); };
  content().append(form,
    el("div", { class: "toolbar" }, el("span", { class: "muted", id: "count" }, `${page.total} memories`),
      ["pause", "resume", "archive", "delete"].map((a) => el("button", { type: "button", id: `bulk-${a}`, class: a === "delete" ? "danger" : null, onclick: bulk(a) }, a[0].toUpperCase() + a.slice(1)))),
    el("table", { id: "memory-table" },
      el("thead", {}, el("tr", {}, el("th", {}, el("input", { type: "checkbox", "aria-label": "select all", onchange: (e) => checks.forEach((c) => { c.checked = e.target.checked; }) })),
        ["Memory", "App", "Categories", "State", "Created", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)),
    el("div", { class: "pager" },
      el("button", { type: "button", disabled: page.page <= 1 ? "disabled" : null, onclick: () => go(page.page - 1) }, "Previous"),
      el("span", {}, `Page ${page.page} of ${pages}`),
      el("button", { type: "button", disabled: page.page >= pages ? "disabled" : null, onclick: () => go(page.page + 1) }, "Next")));
}

function inlineEdit(memory) {
  const row = $(`tr[data-id="${memory.id}"]`);
  const cell = row.querySelector("td.text");
  const area = el("textarea", { name: "text" }, memory.text);
  const save = el("button", { type: "button", class: "primary save" }, "Save");
  save.addEventListener("click", () => guarded(async () => {
    flash(outcome(await api(`/memories/${memory.id}`, { method: "PATCH", body: { text: area.value } })));
    setTimeout(() => location.reload(), 400);
  }));
  cell.replaceChildren(area, save, el("button", { type: "button", onclick: () => location.reload() }, "Cancel"));
}

// ---- one memory ------------------------------------------------------------------------------

function graphDrawing(center, graphs) {
  const width = 760, height = 416;
  const nodes = new Map();
  const edges = [];
  nodes.set(center, { x: width / 2, y: height / 2 });
  const others = [];
  for (const g of graphs) {
    if (!nodes.has(g.entity)) others.push(g.entity);
    for (const e of g.edges) {
      if (!others.includes(e.entity) && e.entity !== center) others.push(e.entity);
      const [from, to] = e.direction === "out" ? [g.entity, e.entity] : [e.entity, g.entity];
      edges.push({ from, to, label: e.relation, closed: e.valid_to !== null });
    }
  }
  others.forEach((name, i) => {
    const angle = (2 * Math.PI * i) / Math.max(1, others.length);
    nodes.set(name, { x: width / 2 + 300 * Math.cos(angle), y: height / 2 + 170 * Math.sin(angle) });
  });
  const drawing = svg("svg", { class: "graph", id: "entity-graph", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "entity neighbourhood" });
  for (const e of edges) {
    const a = nodes.get(e.from), b = nodes.get(e.to);
    if (!a || !b) continue;
    drawing.append(svg("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: e.closed ? "closed" : "" }));
    drawing.append(svg("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 3, "text-anchor": "middle" }, e.label));
  }
  for (const [name, p] of nodes) {
    drawing.append(svg("circle", { cx: p.x, cy: p.y, r: 6, fill: name === center ? "#2f6fde" : "#69737d" }));
    drawing.append(svg("text", { x: p.x, y: p.y + 18, "text-anchor": "middle" }, name));
  }
  return drawing;
}

async function renderMemory() {
  const id = new URLSearchParams(location.search).get("id") || "";
  const detail = await api(`/memories/${encodeURIComponent(id)}`);
  const m = detail.memory;
  const root = el("div", {});
  if (!m) {
    root.append(el("p", {}, "This memory was deleted. Its history:"));
  } else {
    const setState = (action) => () => guarded(async () => {
      flash(outcome(await api("/memories/actions", { method: "POST", body: { action, ids: [m.id] } })));
      setTimeout(() => location.reload(), 400);
    });
    const area = el("textarea", { id: "edit-text" }, m.text);
    root.append(el("div", { class: "card" },
      el("p", { id: "memory-text" }, m.text),
      m.state === "pending" ? el("p", { id: "held", class: "state-pending" }, `Held for review: ${m.metadata.held || "it reads as an instruction to an assistant"}. Approve to let apps find it, or delete it.`) : "",
      el("p", {}, tags(m.categories), " ", el("span", { class: `state-${m.state}` }, m.state), " · ", m.app, " · created ", when(m.created_at),
        m.occurred_at ? ` · refers to ${when(m.occurred_at)}` : "", m.superseded_by ? el("span", {}, " · replaced by ", el("a", { href: `/memory?id=${m.superseded_by}` }, "a newer memory")) : ""),
      el("p", {}, "Entities: ", tags(m.entities)),
      el("div", { class: "toolbar" },
        m.state === "active" ? el("button", { type: "button", id: "pause", onclick: setState("pause") }, "Pause") : el("button", { type: "button", id: "resume", onclick: setState("resume") }, m.state === "pending" ? "Approve" : "Resume"),
        el("button", { type: "button", id: "archive", onclick: setState("archive") }, "Archive"),
        el("button", { type: "button", id: "delete", class: "danger", onclick: () => guarded(async () => {
          if (!confirm("Delete this memory?")) return;
          flash(outcome(await api(`/memories/${m.id}`, { method: "DELETE" })));
          setTimeout(() => { location.href = "/memories"; }, 400);
        }) }, "Delete")),
      el("h2", {}, "Edit"), area,
      el("button", { type: "button", class: "primary", id: "save", onclick: () => guarded(async () => {
        flash(outcome(await api(`/memories/${m.id}`, { method: "PATCH", body: { text: area.value } })));
        setTimeout(() => location.reload(), 400);
      }) }, "Save")));
    const related = await api(`/memories/${m.id}/related`);
    root.append(el("div", { class: "card" }, el("h2", {}, "Related memories"),
      related.memories.length ? el("ul", {}, related.memories.map((h) => el("li", {}, el("a", { href: `/memory?id=${h.memory.id}` }, h.memory.text), el("span", { class: "muted" }, ` (${h.signals.join(", ")})`)))) : el("p", { class: "muted" }, "None.")));
    root.append(el("div", { class: "card" }, el("h2", {}, "Its entities' neighbourhood"),
      related.graph.length ? graphDrawing(related.graph[0].entity, related.graph) : el("p", { class: "muted" }, "No relations for its entities yet.")));
  }
  root.append(el("div", { class: "card" }, el("h2", {}, "History"),
    el("table", { id: "history" }, el("tbody", {}, detail.history.map((e) => el("tr", {},
      el("td", {}, e.change), el("td", {}, e.app), el("td", { class: "muted" }, when(e.at)),
      el("td", { class: "text" }, (e.after || e.before || {}).text || "")))))));
  root.append(el("div", { class: "card" }, el("h2", {}, "Access log"),
    detail.access_log.length ? el("table", { id: "access-log" }, el("tbody", {}, detail.access_log.map((a) => el("tr", {},
      el("td", {}, a.app), el("td", {}, a.kind), el("td", {}, a.query || ""), el("td", { class: "muted" }, when(a.at)))))) : el("p", { class: "muted" }, "No app has read it yet.")));
  content().append(root);
}

// ---- apps ------------------------------------------------------------------------------------

async function renderApps() {
  const apps = await api("/apps");
  const toggle = (app, field, value, label) => el("button", { type: "button", class: `toggle-${field}`, onclick: () => guarded(async () => {
    await api(`/apps/${encodeURIComponent(app.app)}`, { method: "PATCH", body: { [field]: value } });
    location.reload();
  }) }, label);
  content().append(apps.length ? el("table", { id: "apps-table" },
    el("thead", {}, el("tr", {}, ["App", "Created", "Accessed", "Last access", "Status", "Read", "Write", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, apps.map((a) => el("tr", { dataset: { app: a.app } },
      el("td", {}, el("a", { href: `/memories?app=${encodeURIComponent(a.app)}` }, a.app)),
      el("td", {}, a.memories_created), el("td", {}, a.memories_accessed), el("td", { class: "muted" }, when(a.last_accessed)),
      el("td", { class: "status" }, a.paused ? "paused" : "active"),
      el("td", {}, toggle(a, "can_read", !a.can_read, a.can_read ? "allowed" : "denied")),
      el("td", {}, toggle(a, "can_write", !a.can_write, a.can_write ? "allowed" : "denied")),
      el("td", {}, toggle(a, "paused", !a.paused, a.paused ? "Resume" : "Pause")))))) : el("p", { class: "muted" }, "No app has used this memory yet."));
}

// ---- connect, keys ---------------------------------------------------------------------------

async function renderConnect() {
  const clients = [["claude", "Claude Desktop"], ["cursor", "Cursor"], ["windsurf", "Windsurf"], ["cline", "Cline"], ["vscode", "VS Code"], ["claude-code", "Claude Code"]];
  const out = el("div", { id: "snippets" });
  const pick = el("select", { id: "client" }, clients.map(([v, l]) => el("option", { value: v }, l)));
  content().append(el("div", { class: "card" },
    el("p", {}, "Pick a client: a new key, bound to that client, is minted and shown once with its configuration."),
    el("div", { class: "toolbar" }, pick, el("button", { type: "button", class: "primary", id: "mint", onclick: () => guarded(async () => {
      const made = await api("/connect", { method: "POST", body: { client: pick.value } });
      out.replaceChildren(el("p", {}, "Key (shown once): ", el("code", { id: "new-key" }, made.api_key)),
        ...Object.entries(made.snippets).flatMap(([name, text]) => [el("h2", {}, name), el("pre", {}, text)]));
    }) }, "Mint key and show snippets"))), out);
}

async function renderKeys() {
  const keys = await api("/keys");
  const shown = el("div", { id: "created" });
  const form = el("form", { class: "inline", id: "new-key-form" },
    el("input", { name: "label", placeholder: "Label" }), el("input", { name: "app", placeholder: "App (blank: any)" }),
    el("label", {}, el("input", { type: "checkbox", name: "read", checked: "checked" }), " read"),
    el("label", {}, el("input", { type: "checkbox", name: "write", checked: "checked" }), " write"),
    el("label", {}, el("input", { type: "checkbox", name: "admin" }), " admin"),
    me.scopes.includes("operator") ? el("label", {}, el("input", { type: "checkbox", name: "operator" }), " operator") : null,
    el("input", { name: "expires_in_days", type: "number", min: 1, placeholder: "Expires in days" }),
    el("button", { class: "primary", type: "submit" }, "Create key"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const data = new FormData(form);
      const scopes = ["read", "write", "admin", "operator"].filter((s) => data.get(s));
      const body = { label: data.get("label"), scopes, app: data.get("app") || "*" };
      if (data.get("expires_in_days")) body.expires_in_days = Number(data.get("expires_in_days"));
      const made = await api("/keys", { method: "POST", body });
      shown.replaceChildren(el("p", {}, "New key (shown once, copy it now): ", el("code", { id: "new-key" }, made.api_key)));
    });
  });
  content().append(form, shown, el("table", { id: "keys-table" },
    el("thead", {}, el("tr", {}, ["Prefix", "Label", "App", "Scopes", "Created", "Expires", "Last used", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, keys.map((k) => el("tr", { dataset: { prefix: k.prefix } },
      el("td", {}, el("code", {}, `om_${k.prefix}`)), el("td", {}, k.label), el("td", {}, k.app), el("td", {}, k.scopes.join(", ")),
      el("td", { class: "muted" }, when(k.created_at)), el("td", { class: "muted" }, when(k.expires_at)), el("td", { class: "muted" }, when(k.last_used_at)),
      el("td", {}, k.revoked ? "revoked" : el("button", { type: "button", class: "danger", onclick: () => guarded(async () => {
        if (!confirm(`Revoke om_${k.prefix}?`)) return;
        await api(`/keys/${k.prefix}`, { method: "DELETE" });
        location.reload();
      }) }, "Revoke")))))));
}

// ---- settings --------------------------------------------------------------------------------

// Your write guard: what happens to secrets and personal data in what you add or import.
async function renderGuard() {
  if (!me.scopes.includes("admin")) return;
  const current = await api("/settings/guard");
  const choice = (name, label) => el("label", { class: "field" }, el("span", {}, label),
    el("select", { name }, ["redact", "refuse", "allow"].map((o) => el("option", { value: o, selected: o === current[name] ? "selected" : null }, o))));
  const form = el("form", { id: "guard-form", class: "card" },
    el("h2", {}, "Write guard (applies to your next write)"),
    el("p", { class: "muted" }, "redact stores [redacted: <kind>] in place of what is found; refuse stores nothing and says why; allow keeps it."),
    choice("secrets", "Secrets (keys, tokens, passwords, card numbers, IBANs)"),
    choice("email", "E-mail addresses"), choice("phone", "Phone numbers"),
    el("button", { class: "primary", type: "submit" }, "Save"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      await api("/settings/guard", { method: "PUT", body: Object.fromEntries(new FormData(form)) });
      flash("Saved.");
    });
  });
  content().append(form);
}

async function renderSettings() {
  await renderGuard();
  if (!me.scopes.includes("operator")) {
    // The system's settings are shared by every user: only an operator key may see or change them.
    content().append(el("p", { class: "card muted", id: "operator-only" },
      "These settings apply to every user of this server, so they need a key with the operator scope. " +
      "Sign in with such a key (the first key `make run` printed has it) to see and change them."));
    return;
  }
  const current = await api("/settings");
  const field = (part, name, label, value, type = "text") => el("label", { class: "field" }, el("span", {}, label),
    el("input", { name: `${part}.${name}`, type, value: value ?? "", placeholder: type === "password" ? (current[part].api_key_set ? "set (leave blank to keep)" : "not set") : "" }));
  const select = (part, name, label, value, options) => el("label", { class: "field" }, el("span", {}, label),
    el("select", { name: `${part}.${name}` }, options.map((o) => el("option", { value: o, selected: o === value ? "selected" : null }, o))));
  const llm = current.llm, emb = current.embedder;
  const form = el("form", { id: "settings-form", class: "card" },
    el("h2", {}, "Extraction (applies to ingest within seconds)"),
    select("llm", "extractor", "Extractor", llm.extractor, ["local", "llm"]),
    field("llm", "base_url", "LLM base URL", llm.base_url), field("llm", "model", "LLM model", llm.model),
    field("llm", "api_key", "LLM API key", "", "password"),
    el("label", { class: "field" }, el("span", {}, "Custom instructions"), el("textarea", { name: "llm.custom_instructions" }, llm.custom_instructions || "")),
    el("h2", {}, "Embeddings (apply within seconds; stored memories are re-embedded)"),
    select("embedder", "provider", "Provider", emb.provider, ["local", "openai"]),
    field("embedder", "model", "Model", emb.model), field("embedder", "base_url", "Base URL", emb.base_url),
    field("embedder", "api_key", "API key", "", "password"),
    el("button", { class: "primary", type: "submit" }, "Save"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const body = { llm: {}, embedder: {} };
      for (const [key, value] of new FormData(form)) {
        const [part, name] = key.split(".");
        if (name === "api_key") { if (value) body[part][name] = value; continue; }
        body[part][name] = value === "" ? null : value;
      }
      if (body.llm.custom_instructions === null) body.llm.custom_instructions = "";
      await api("/settings", { method: "PUT", body });
      flash("Saved.");
    });
  });
  content().append(form);
}

// ---- review queue --------------------------------------------------------------------------------

async function renderReview() {
  if (!me.scopes.includes("admin")) {
    content().append(el("p", { class: "card muted", id: "review-admin-only" }, "Reviewing needs a key with the admin scope."));
    return;
  }
  const [setting, queue] = await Promise.all([api("/settings/review"), api("/review?page_size=200")]);
  const levels = ["off", "llm-changes", "all"];
  const level = el("select", { name: "review", id: "review-level" }, levels.map((l) => el("option", { value: l, selected: l === setting.review ? "selected" : null }, l)));
  const apps = el("input", { name: "apps", id: "review-apps", size: 40, placeholder: "cursor=all, claude=off",
    value: Object.entries(setting.apps).map(([app, l]) => `${app}=${l}`).join(", ") });
  const form = el("form", { id: "review-form", class: "card" },
    el("h2", {}, "What waits for your approval"),
    el("p", { class: "muted" }, "off: only memories that read as instructions to an assistant. llm-changes: also the model's updates and deletions of stored memories. all: also every new memory. An app's own setting wins over yours."),
    el("label", { class: "field" }, el("span", {}, "Review"), level),
    el("label", { class: "field" }, el("span", {}, "Per app"), apps),
    el("button", { class: "primary", type: "submit" }, "Save"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const overrides = Object.fromEntries(apps.value.split(",").map((p) => p.trim()).filter(Boolean).map((p) => p.split("=").map((x) => x.trim())));
      await api("/settings/review", { method: "PUT", body: { review: level.value, apps: overrides } });
      flash("Saved.");
    });
  });
  const empty = () => el("p", { class: "muted", id: "no-review" }, "Nothing waits for review.");
  let waiting = queue.total;
  // The decided rows leave the table once the server took the decision (a reload could still list
  // them while ingest applies it).
  const decide = (decision, ids) => guarded(async () => {
    if (!ids.length) return flash("Tick at least one change first.", true);
    flash(outcome(await api(`/review/${decision}`, { method: "POST", body: { ids } })));
    for (const id of ids) $(`#review-table tr[data-id="${CSS.escape(id)}"]`)?.remove();
    waiting = Math.max(0, waiting - ids.length);
    if (!$("#review-table tbody tr")) $("#review-queue").replaceWith(empty());
    else $("#review-count").textContent = `${waiting} waiting. `;
  });
  const ticked = () => [...document.querySelectorAll("#review-table input[type=checkbox]:checked")].map((box) => box.value);
  const what = (i) => i.kind === "new" ? i.text : [el("div", {}, `${i.kind === "update" ? "Replace" : "Delete"}: `, i.target_text ?? "(no longer stored)"),
    i.kind === "update" ? el("div", {}, "With: ", i.text) : ""];
  // Node.append takes nodes, not arrays (an array would be added as its text): one wrapper.
  content().append(form, queue.items.length ? el("div", { id: "review-queue" },
    el("p", {}, el("span", { id: "review-count" }, `${queue.total} waiting. `),
      el("button", { type: "button", id: "approve-selected", onclick: () => decide("approve", ticked()) }, "Approve selected"), " ",
      el("button", { type: "button", class: "danger", id: "reject-selected", onclick: () => decide("reject", ticked()) }, "Reject selected")),
    el("table", { id: "review-table" },
      el("thead", {}, el("tr", {}, ["", "Change", "What", "App", "Why", "When", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, queue.items.map((i) => el("tr", { dataset: { id: i.id } },
        el("td", {}, el("input", { type: "checkbox", value: i.id })), el("td", {}, i.kind), el("td", { class: "text" }, what(i)),
        el("td", {}, i.app), el("td", { class: "text" }, i.reason), el("td", { class: "muted" }, when(i.created_at)),
        el("td", {}, el("button", { type: "button", class: "approve", onclick: () => decide("approve", [i.id]) }, "Approve"), " ",
          el("button", { type: "button", class: "danger reject", onclick: () => decide("reject", [i.id]) }, "Reject")))))))
    : empty());
}

// ---- consolidation -------------------------------------------------------------------------------

const memoryLink = (id, text) => el("a", { href: `/memory?id=${encodeURIComponent(id)}` }, text);

// What POST /consolidate found: near-duplicates (kept, merged, similarity), expired temporary
// memories and plans whose date has passed.
function consolidationPlan(report) {
  const parts = [el("p", { class: "muted", id: "consolidation-summary" },
    `${report.memories} active memories read in ${report.seconds.toFixed(1)} s` +
    (report.truncated ? " (the newest only: a run reads at most that many)." : "."))];
  if (!report.merges.length && !report.expiries.length) {
    parts.push(el("p", { id: "nothing-to-consolidate" }, "Nothing to consolidate: no near-duplicates, and no temporary memory whose time is over."));
  }
  if (report.merges.length) parts.push(el("h2", {}, `Near-duplicates (${report.merges.length})`),
    el("table", { id: "merge-table" },
      el("thead", {}, el("tr", {}, ["Kept", "Merged into it (archived when applied)", "Similarity"].map((h) => el("th", {}, h)))),
      el("tbody", {}, report.merges.map((m) => el("tr", { dataset: { keep: m.keep } },
        el("td", { class: "kept" }, memoryLink(m.keep, m.keep_text)),
        el("td", { class: "merged" }, el("ul", {}, m.merged.map((id, i) => el("li", { dataset: { id } }, memoryLink(id, m.merged_texts[i]))))),
        el("td", { class: "similarity" }, m.similarity.toFixed(2)))))));
  if (report.expiries.length) parts.push(el("h2", {}, `Temporary memories whose time is over (${report.expiries.length})`),
    el("table", { id: "expiry-table" },
      el("thead", {}, el("tr", {}, ["Memory (archived when applied)", "Expired"].map((h) => el("th", {}, h)))),
      el("tbody", {}, report.expiries.map((e) => el("tr", { dataset: { id: e.memory_id } },
        el("td", { class: "text" }, memoryLink(e.memory_id, e.text)), el("td", { class: "muted" }, when(e.expired_at)))))));
  if (report.past_plan_count) parts.push(el("h2", {}, `Plans whose date has passed (${report.past_plan_count})`),
    el("p", { class: "muted" }, "Search results note them as past; they are not changed."),
    el("ul", { id: "past-plans" }, report.past_plans.map((p) => el("li", {}, memoryLink(p.memory_id, p.text), el("span", { class: "muted" }, ` (${p.period})`)))));
  return el("div", {}, parts);
}

// What applying did: each memory changed, with why (ingest checked every action again).
function consolidationDone(report) {
  if (report.pending) {
    return el("p", { id: "consolidation-pending" }, "Accepted: the changes are being applied and show on the Memories page in a moment.");
  }
  if (!report.applied.length) {
    return el("p", { id: "nothing-to-consolidate" }, "Nothing to consolidate: nothing was changed.");
  }
  return el("div", {},
    el("p", { id: "consolidation-done" }, `Done: ${report.applied.length} memories changed.`),
    el("table", { id: "applied-table" },
      el("thead", {}, el("tr", {}, ["Memory", "Now", "Why"].map((h) => el("th", {}, h)))),
      el("tbody", {}, report.applied.map((s) => el("tr", { dataset: { id: s.id } },
        el("td", { class: "text" }, memoryLink(s.id, s.memory)),
        el("td", { class: `state state-${s.state || "active"}` }, s.state || "active"),
        el("td", { class: "muted" }, s.note || ""))))));
}

async function renderConsolidation() {
  if (!me.scopes.includes("admin")) {
    // The route's rule: merging archives memories, which is the user's oversight, not an app's.
    content().append(el("p", { class: "card muted", id: "consolidation-admin-only" },
      "Consolidation archives memories, so it needs a key with the admin scope. Sign in with such a key (the first key `make run` printed has it) to preview and apply it."));
    return;
  }
  const result = el("div", { id: "consolidation-result" });
  const preview = el("button", { type: "button", class: "primary", id: "consolidate-preview" }, "Preview");
  const apply = el("button", { type: "button", class: "danger", id: "consolidate-apply", disabled: true }, "Apply");
  // Apply plans again (the memories may have changed since the preview), so it is offered only
  // right after a preview that found something to do.
  const run = (dryRun) => guarded(async () => {
    if (!dryRun && !confirm("Merge the near-duplicates and archive the expired memories? Archived memories can be made active again.")) return;
    flash("");
    preview.disabled = apply.disabled = true;
    result.replaceChildren(el("p", { class: "muted", id: "consolidation-busy" }, dryRun ? "Looking for near-duplicates…" : "Applying…"));
    try {
      const report = await api("/consolidate", { method: "POST", body: { dry_run: dryRun } });
      result.replaceChildren(dryRun ? consolidationPlan(report) : consolidationDone(report));
      apply.disabled = !dryRun || !(report.merges.length || report.expiries.length);
    } catch (error) {
      result.replaceChildren();
      throw error;
    } finally {
      preview.disabled = false;
    }
  });
  preview.addEventListener("click", () => run(true));
  apply.addEventListener("click", () => run(false));
  content().append(el("div", { class: "card" },
    el("p", {}, "Merge your near-duplicate memories (the one that says most is kept) and archive temporary memories whose time is over. Ingest archives expired temporary memories on its own (daily by default), but merges only when asked. Preview changes nothing; Apply does it."),
    el("p", { class: "muted", id: "consolidation-undo" }, "Nothing is deleted: merged and expired memories are archived. To undo a merge, open the archived memory from the ",
      el("a", { href: "/memories?state=archived" }, "Memories page (archived)"), " and press Resume."),
    el("div", { class: "toolbar" }, preview, apply)), result);
}

// ---- export / import, dead letters ----------------------------------------------------------------

function renderData() {
  const file = el("input", { type: "file", id: "import-file", accept: ".json,.zip" });
  const source = el("select", { id: "import-source" },
    el("option", { value: "" }, "OpenMemory export (this dashboard's, or a zip)"),
    el("option", { value: "chatgpt" }, "ChatGPT data export (conversations.json)"),
    el("option", { value: "claude" }, "Claude data export (conversations.json)"));
  const assistant = el("input", { type: "checkbox", id: "import-assistant" });
  content().append(
    el("div", { class: "card" }, el("h2", {}, "Export"), el("p", {}, "All your memories, their history and your graph, as one JSON file."),
      el("a", { class: "button", href: API + "/export", id: "export" }, "Download export")),
    el("div", { class: "card" }, el("h2", {}, "Import"),
      el("p", {}, "An export of this dashboard, an OpenMemory export zip (memories.json, memories.jsonl.gz), or the conversations.json of a ChatGPT or Claude data export: your messages become memories, with their conversation's title and time; importing a file again adds nothing twice."),
      source, " ", el("label", {}, assistant, " also the assistant's messages"), el("br"),
      file, " ", el("button", { type: "button", class: "primary", id: "import", onclick: () => guarded(async () => {
        if (!file.files.length) return flash("Choose a file first.", true);
        const headers = { "Content-Type": "application/octet-stream" };
        if (!source.value) {
          const done = await api("/import", { method: "POST", body: file.files[0], headers });
          return flash(`Imported ${done.memories} memories (${done.source}).`);
        }
        const path = `/import/${source.value}?include_assistant=${assistant.checked}`;
        const done = await api(path, { method: "POST", body: file.files[0], headers });
        flash(`Imported ${done.messages} messages of ${done.conversations} conversations: ${done.added} memories added, ${done.skipped} messages imported before.`);
      }) }, "Import")));
}

async function renderDeadLetters() {
  const letters = await api("/dead-letters");
  const act = (letter, method, path) => () => guarded(async () => {
    await api(path, { method });
    location.reload();
  });
  content().append(letters.length ? el("table", { id: "dead-letters" },
    el("thead", {}, el("tr", {}, ["When", "Kind", "Reason", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, letters.map((l) => el("tr", {},
      el("td", { class: "muted" }, when(l.at)), el("td", {}, l.kind), el("td", { class: "text" }, l.error),
      el("td", {}, el("button", { type: "button", onclick: act(l, "POST", `/dead-letters/${l.sequence}/retry`) }, "Retry"), " ",
        el("button", { type: "button", class: "danger", onclick: act(l, "DELETE", `/dead-letters/${l.sequence}`) }, "Discard"))))))
    : el("p", { class: "muted", id: "no-letters" }, "Nothing failed. Commands that cannot be applied show up here, with the reason."));
}

// ---- webhooks --------------------------------------------------------------------------------

async function renderWebhooks() {
  const operator = me.scopes.includes("operator");
  if (!me.scopes.includes("admin") && !operator) {
    content().append(el("p", { class: "card muted", id: "webhooks-admin-only" }, "Webhooks need a key with the admin scope."));
    return;
  }
  const [hooks, failures] = await Promise.all([api("/webhooks"), api("/webhooks/failures")]);
  const kinds = ["ADD", "UPDATE", "DELETE"];
  const shown = el("div", { id: "new-webhook" });
  const list = el("div", { id: "webhooks" });
  const act = (method, path, body) => () => guarded(async () => {
    await api(path, { method, body });
    location.reload();
  });
  const showHooks = (hooks) => list.replaceChildren(hooks.length ? el("table", { id: "webhooks-table" },
    el("thead", {}, el("tr", {}, ["URL", "Events", "Created", "Status", "Failed", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, hooks.map((h) => el("tr", { dataset: { id: h.id } },
      el("td", { class: "text" }, h.url, h.all_users ? " (every user)" : ""),
      el("td", {}, h.kinds.length ? h.kinds.join(", ") : "all"), el("td", { class: "muted" }, when(h.created_at)),
      el("td", { class: `status state-${h.enabled ? "active" : "paused"}` }, h.enabled ? "active" : "paused"), el("td", { class: "failures" }, h.failures),
      el("td", {}, el("button", { type: "button", class: "toggle-enabled", onclick: act("PATCH", `/webhooks/${h.id}`, { enabled: !h.enabled }) }, h.enabled ? "Pause" : "Resume"), " ",
        el("button", { type: "button", class: "danger delete", onclick: () => confirm(`Delete the webhook to ${h.url}?`) && act("DELETE", `/webhooks/${h.id}`)() }, "Delete"))))))
    : el("p", { class: "muted", id: "no-webhooks" }, "No webhooks yet."));
  const form = el("form", { id: "webhook-form", class: "card" },
    el("h2", {}, "Add a webhook"),
    el("p", { class: "muted" }, "An https:// endpoint that receives your memory events, signed with a secret shown once (README, \"Webhooks\"). No event kind ticked: every kind."),
    el("input", { name: "url", type: "url", required: true, size: 50, placeholder: "https://example.com/hooks/openmemory" }), " ",
    kinds.map((k) => el("label", {}, el("input", { type: "checkbox", name: k }), ` ${k} `)),
    operator ? el("label", {}, el("input", { type: "checkbox", name: "all_users" }), " every user's events ") : null,
    el("button", { class: "primary", type: "submit" }, "Add"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      const data = new FormData(form);
      const body = { url: data.get("url"), kinds: kinds.filter((k) => data.get(k)), all_users: Boolean(data.get("all_users")) };
      const made = await api("/webhooks", { method: "POST", body });
      // No reload: it would lose the secret, which no later answer holds.
      shown.replaceChildren(el("p", { class: "card" }, `Signing secret for ${made.url} (shown once, copy it now): `, el("code", { id: "webhook-secret" }, made.secret)));
      form.reset();
      flash("Added.");
      showHooks(await api("/webhooks"));
    });
  });
  showHooks(hooks);
  content().append(form, shown, list,
    el("h2", {}, "Failed deliveries"), failures.length ? el("table", { id: "webhook-failures" },
    el("thead", {}, el("tr", {}, ["When", "Webhook", "Event", "Attempts", "Reason", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, failures.map((f) => el("tr", {},
      el("td", { class: "muted" }, when(f.at)), el("td", { class: "text" }, f.url), el("td", {}, `${f.change} ${f.memory_id}`),
      el("td", {}, f.attempts), el("td", { class: "text" }, f.error),
      el("td", {}, el("button", { type: "button", onclick: act("POST", `/webhooks/failures/${f.sequence}/retry`) }, "Retry"), " ",
        el("button", { type: "button", class: "danger", onclick: act("DELETE", `/webhooks/failures/${f.sequence}`) }, "Discard"))))))
    : el("p", { class: "muted", id: "no-webhook-failures" }, "Nothing failed. Deliveries that fail every attempt show up here, with the reason."));
}

// ---- start -----------------------------------------------------------------------------------

const PAGES = {
  login: renderLogin, overview: renderOverview, memories: renderMemories, memory: renderMemory, review: renderReview, consolidation: renderConsolidation, apps: renderApps,
  connect: renderConnect, keys: renderKeys, settings: renderSettings, data: renderData, "dead-letters": renderDeadLetters,
  webhooks: renderWebhooks,
};

async function start() {
  const page = document.body.dataset.page;
  if (page !== "login") {
    me = await api("/session");
    csrf = me.csrf_token;
    $("#who").textContent = me.user_id;
    $("#sign-out").addEventListener("click", () => guarded(async () => {
      await api("/session", { method: "DELETE" });
      location.href = "/login";
    }));
  }
  await PAGES[page]();
}

guarded(start);
