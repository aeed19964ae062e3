// meterkit pages: one script for setup, settings, live and status (body data-page picks the part).
// Talks only to the dongle's JSON API; no framework, no CDN: the dongle may have no internet.
"use strict";
const MASK = "********";   // a stored secret; posting it back means "keep it"
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const name in attrs || {}) node.setAttribute(name, attrs[name]);
  node.append(...children);
  return node;
}

// -- API: JSON in and out; a 401 asks for the admin password once, then retries -----------------

async function api(path, body, method) {
  const options = {method: method || (body === undefined ? "GET" : "POST"), headers: {}};
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
    if (response.status === 401 && await login()) response = await fetch(path, options);
  } catch (e) {
    return {ok: false, status: 0, data: {error: "the dongle does not answer"}};
  }
  let data = {};
  try { data = await response.json(); } catch (e) { /* empty or not JSON */ }
  return {ok: response.ok, status: response.status, data: data};
}

let loggingIn = null;

function login() {   // resolves true once a password is accepted (all waiting calls share it)
  if (loggingIn) return loggingIn;
  const box = el("form", {id: "login"},
    el("h2", {}, "Admin password needed"),
    el("label", {for: "login-password"}, "Admin password"),
    el("input", {id: "login-password", type: "password", autocomplete: "current-password"}),
    el("button", {type: "submit"}, "Log in"), el("p", {class: "error", id: "login-error"}));
  document.querySelector("main").prepend(el("section", {class: "login"}, box));
  $("login-password").focus();
  loggingIn = new Promise((resolve) => box.addEventListener("submit", async (event) => {
    event.preventDefault();
    const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({password: $("login-password").value})}).catch(() => null);
    if (r && r.ok) { box.parentNode.remove(); loggingIn = null; resolve(true); return; }
    $("login-error").textContent = r ? "wrong password" : "the dongle does not answer";
  }));
  return loggingIn;
}

// -- the config form (setup and settings): fields, checks that mirror the dongle's, tests -------

const PROFILES = [["auto", "Detect automatically"], ["dsmr5", "DSMR 5 (NL, BE e-MUCS)"],
  ["dsmr22", "DSMR 2.2 / 3 (older NL)"], ["smarty", "Smarty (LU, encrypted P1)"],
  ["mbus_dlms", "DLMS over M-Bus (AT)"], ["hdlc_dlms", "DLMS over HDLC (CH, NO, SE)"]];

const KEY_HINT = "32 hex digits from your grid operator, or empty. Luxembourg (Smarty) needs only " +
  "the encryption key; Austria needs both; Dutch and Belgian P1 ports need none.";

const FORM = [   // [legend, test, [[name, label, type, hint, attributes]]]
  ["Wi-Fi", "wifi", [
    ["wifi.ssid", "Network name (SSID)", "text", "", {maxlength: 32, autocomplete: "off"}],
    ["wifi.password", "Wi-Fi password", "password", "Empty for an open network.",
     {autocomplete: "new-password"}]]],
  ["Meter", "keys", [
    ["meter.profile", "Meter type", "select", ""],
    ["meter.key", "Encryption key", "key", KEY_HINT],
    ["meter.auth_key", "Authentication key", "key", "Only if your operator gave you one."]]],
  ["MQTT broker", "mqtt", [
    ["mqtt.host", "Broker host", "text", "Name or IP address; empty turns MQTT off.",
     {autocapitalize: "none", spellcheck: "false"}],
    ["mqtt.port", "Port", "number", "", {min: 1, max: 65535, inputmode: "numeric"}],
    ["mqtt.user", "User", "text", "", {autocapitalize: "none", autocomplete: "off"}],
    ["mqtt.password", "Password", "password", "", {autocomplete: "new-password"}],
    ["mqtt.tls", "Use TLS", "checkbox", ""],
    ["mqtt.ca_cert", "CA certificate (PEM)", "textarea", "Only for TLS with your own CA."],
    ["mqtt.base_topic", "Base topic", "text", "", {autocapitalize: "none"}],
    ["mqtt.discovery_prefix", "Home Assistant discovery prefix", "text", "",
     {autocapitalize: "none"}]]],
  ["Admin password", null, [
    ["admin.password", "Admin password", "password", "At least 8 characters; protects these pages.",
     {autocomplete: "new-password"}],
    ["admin.confirm", "Repeat the admin password", "password", "", {autocomplete: "new-password"}]]],
];

const hex32 = (v) => /^[0-9a-fA-F]{32}$/.test(v.replace(/ /g, "")) || !v ? "" :
  "must be 32 hex digits (16 bytes) or empty";
const topic = (v) => v && !/[+#]/.test(v) && v[0] !== "/" && v.slice(-1) !== "/" ? "" :
  "must be a topic like meterkit/kitchen: not empty, no + or #, no leading or trailing /";
const CHECKS = {
  "wifi.ssid": (v) => new TextEncoder().encode(v).length <= 32 ? "" : "must be at most 32 bytes long",
  "wifi.password": (v) => !v || (v.length >= 8 && v.length <= 63) || /^[0-9a-fA-F]{64}$/.test(v) ?
    "" : "must be empty (open network), 8..63 characters or 64 hex digits",
  "meter.key": hex32,
  "meter.auth_key": hex32,
  "mqtt.host": (v) => /^[A-Za-z0-9._:-]*$/.test(v) ? "" : "must be a host name or IP address",
  "mqtt.port": (v) => /^[0-9]+$/.test(v) && v >= 1 && v <= 65535 ? "" : "must be 1..65535",
  "mqtt.ca_cert": (v) => !v.trim() || /^-----BEGIN CERTIFICATE-----[^]*-----END CERTIFICATE-----$/
    .test(v.trim()) ? "" : "must be empty or a PEM certificate (-----BEGIN CERTIFICATE----- ...)",
  "mqtt.base_topic": topic,
  "mqtt.discovery_prefix": topic,
  "admin.password": (v) => !v || v.length >= 8 ? "" : "must be at least 8 characters long",
};

function field(name, label, type, hint, attributes) {
  const id = "f-" + name.replace(".", "-");
  const attrs = Object.assign({id: id, name: name, "aria-describedby": "err-" + name}, attributes);
  let input;
  if (type === "select") {
    input = el("select", attrs, ...PROFILES.map(([value, text]) => el("option", {value: value}, text)));
  } else if (type === "textarea") {
    input = el("textarea", Object.assign(attrs, {spellcheck: "false"}));
  } else {
    attrs.type = type === "key" ? "text" : type;
    if (type === "key") Object.assign(attrs, {autocomplete: "off", spellcheck: "false", maxlength: 64});
    input = el("input", attrs);
  }
  input.addEventListener("focus", () => { if (input.value === MASK) input.select(); });
  const box = el("div", {}, type === "checkbox" ? el("label", {class: "check"}, input, label)
    : el("label", {for: id}, label));
  if (type !== "checkbox") box.append(input);
  if (hint) box.append(el("p", {class: "hint"}, hint));
  box.append(el("p", {class: "error", id: "err-" + name}));
  return box;
}

function buildForm(form, saveLabel) {
  for (const [legend, test, fields] of FORM) {
    const set = el("fieldset", {}, el("legend", {}, legend));
    for (const spec of fields) set.append(field(...spec));
    if (test) {
      set.append(el("button", {type: "button", class: "secondary", "data-test": test},
        "Test " + (test === "keys" ? "keys" : legend)), el("output", {class: "msg", id: "test-" + test,
        "aria-live": "polite"}));
    }
    form.append(set);
  }
  form.append(el("p", {class: "error", id: "err-form", role: "alert"}),
    el("button", {type: "submit", id: "save"}, saveLabel), el("output", {class: "msg", id: "save-msg"}));
  if (document.body.dataset.page === "setup") scanWifi(form.elements["wifi.ssid"]);
  form.addEventListener("click", (event) => {
    const test = event.target.dataset.test;
    if (test) runTest(form, test);
  });
  const file = el("input", {type: "file", id: "ca-file", accept: ".pem,.crt,.cer"});
  file.addEventListener("change", async () => {
    if (file.files[0]) form.elements["mqtt.ca_cert"].value = await file.files[0].text();
  });
  $("err-mqtt.ca_cert").before(el("label", {for: "ca-file"}, "Load the certificate from a file"), file);
}

async function scanWifi(ssid) {
  const list = el("select", {id: "networks"}, el("option", {value: ""}, "Searching…"));
  ssid.parentNode.before(el("label", {for: "networks"}, "Networks nearby"), list);
  list.addEventListener("change", () => { if (list.value) ssid.value = list.value; });
  const r = await api("/api/wifi/scan");
  const networks = (r.data.networks || []).sort((a, b) => b.rssi - a.rssi);
  list.replaceChildren(el("option", {value: ""}, networks.length ? "Choose a network…" :
    "None found: type the name below"), ...networks.map((n) => el("option", {value: n.ssid},
    n.ssid + " (" + n.rssi + " dBm" + (n.secure ? ", secured)" : ", open)"))));
}

function fill(form, config) {
  for (const input of form.elements) {
    const [section, key] = (input.name || "").split(".");
    const value = config[section] && config[section][key];
    if (value === undefined) continue;
    if (input.type === "checkbox") input.checked = value; else input.value = value;
  }
  if (config.admin && config.admin.password) form.elements["admin.confirm"].value = MASK;
}

function values(form) {   // the form as a config document (admin.confirm stays in the page)
  const doc = {};
  for (const input of form.elements) {
    const [section, key] = (input.name || "").split(".");
    if (!key || key === "confirm") continue;
    const value = input.type === "checkbox" ? input.checked :
      key === "port" ? Number(input.value) : input.value.trim();
    (doc[section] = doc[section] || {})[key] = value;
  }
  return doc;
}

function check(form, setup) {   // {field: why} for what the dongle would refuse, or more
  const errors = {}, doc = values(form);
  for (const name in CHECKS) {
    const value = form.elements[name].value.trim();
    const why = value === MASK ? "" : CHECKS[name](value);
    if (why) errors[name] = why;
  }
  if (doc.meter.profile === "smarty" && !doc.meter.key) {
    errors["meter.key"] = "the smarty profile needs the meter's key";
  }
  if (doc.meter.auth_key && !doc.meter.key) errors["meter.auth_key"] = "set only together with the key";
  if (setup && !doc.admin.password) errors["admin.password"] = "choose a password for these pages";
  if (doc.admin.password !== form.elements["admin.confirm"].value) {
    errors["admin.confirm"] = "the two passwords differ";
  }
  return errors;
}

function showErrors(form, errors) {
  let first = null, general = [];
  for (const input of form.elements) if (input.name) input.removeAttribute("aria-invalid");
  for (const box of form.querySelectorAll(".error")) box.textContent = "";
  for (const name in errors) {
    const input = form.elements[name], box = $("err-" + name);
    if (!input || !box) { general.push(name + ": " + errors[name]); continue; }
    box.textContent = errors[name];
    input.setAttribute("aria-invalid", "true");
    if (!first) first = input;
  }
  $("err-form").textContent = general.join("; ");
  if (first) first.focus();
  return !first && !general.length;
}

async function runTest(form, test) {
  const v = values(form), out = $("test-" + test);
  const body = test === "wifi" ? v.wifi : test === "keys" ? {key: v.meter.key,
    auth_key: v.meter.auth_key} : {host: v.mqtt.host, port: v.mqtt.port, user: v.mqtt.user,
    password: v.mqtt.password, tls: v.mqtt.tls, ca: v.mqtt.ca_cert};
  out.className = "msg";
  out.textContent = "Testing…";
  const r = await api("/api/test/" + test, body);
  out.textContent = r.data.message || r.data.error || "no answer (HTTP " + r.status + ")";
  out.className = "msg " + (r.data.ok ? "ok" : "fail");
}

async function save(form, setup) {   // true once the dongle took the config
  const message = $("save-msg");
  message.textContent = "";
  if (!showErrors(form, check(form, setup))) return false;
  const r = await api("/api/config", values(form));
  if (!r.ok) {
    showErrors(form, r.data.errors || {form: r.data.error || "HTTP " + r.status});
    return false;
  }
  message.className = "msg ok";
  message.textContent = "Saved.";
  return true;
}

// -- pages --------------------------------------------------------------------------------------

async function initSetup() {
  const form = $("config");
  buildForm(form, "Save and connect");
  const r = await api("/api/config");
  if (r.ok) fill(form, r.data);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!await save(form, true)) return;
    const password = form.elements["admin.password"].value, ssid = form.elements["wifi.ssid"].value;
    form.hidden = true;
    $("done").hidden = false;
    const progress = $("progress");
    progress.textContent = "The dongle is joining " + (ssid || "your network") + "…";
    for (;;) {   // the access point stays up until the dongle is on the new network
      await new Promise((wake) => setTimeout(wake, 1500));
      const status = (await api("/api/status")).data;
      if (status.mode !== "normal") continue;
      await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
        body: JSON.stringify({password: password})}).catch(() => null);
      const ip = status.wifi && status.wifi.ip;
      progress.replaceChildren("Done. ", el("a", {href: "/live", id: "to-live"}, "Open the live page"),
        ip ? " — on your home network at http://" + ip + "/" : "");
      return;
    }
  });
}

async function initSettings() {
  const form = $("config");
  buildForm(form, "Save");
  const r = await api("/api/config");
  if (r.ok) fill(form, r.data);
  form.addEventListener("submit", (event) => { event.preventDefault(); save(form, false); });
  $("restore").addEventListener("click", async () => {
    const file = $("restore-file").files[0], out = $("restore-msg");
    if (!file) { out.className = "msg fail"; out.textContent = "choose a backup file first"; return; }
    const answer = await api("/api/restore", await file.text());
    const errors = answer.data.errors ? Object.keys(answer.data.errors).map((name) => name + ": " +
      answer.data.errors[name]).join("; ") : "";
    out.className = "msg " + (answer.ok ? "ok" : "fail");
    out.textContent = answer.ok ? "Restored." : errors || answer.data.error || "HTTP " + answer.status;
    if (answer.ok) fill(form, (await api("/api/config")).data);
  });
  device("reboot", "Reboot the dongle now?", "Rebooting: this page works again in a minute.");
  device("factory-reset", "Erase every setting and restart in setup mode?",
    "Erased. Join the dongle's own Wi-Fi network to set it up again.");
}

function device(action, question, done) {
  $(action).addEventListener("click", async () => {
    if (!confirm(question)) return;
    const r = await api("/api/" + action, {}), out = $("device-msg");
    out.className = "msg " + (r.ok ? "ok" : "fail");
    out.textContent = r.ok ? done : r.data.error || "HTTP " + r.status;
  });
}

const dash = (v) => v === undefined || v === null || v === "" ? "–" : String(v);

const PHASES = ["voltage_l", "current_l", "power_in_l", "power_out_l"];   // + phase number
const COUNTERS = [["energy_in", "From the grid", "kWh"], ["energy_in_t1", "From the grid, tariff 1", "kWh"],
  ["energy_in_t2", "From the grid, tariff 2", "kWh"], ["energy_out", "To the grid", "kWh"],
  ["energy_out_t1", "To the grid, tariff 1", "kWh"], ["energy_out_t2", "To the grid, tariff 2", "kWh"],
  ["gas", "Gas", "m³"]];

function initLive() {
  $("phases").append(...[1, 2, 3].map((n) => el("tr", {id: "phase" + n}, el("th", {scope: "row"},
    "L" + n), ...PHASES.map((name) => el("td", {class: "num", id: name + n}, "–")))));
  $("counters").append(...COUNTERS.map(([name, label, unit]) => el("tr", {id: "row-" + name, hidden: ""},
    el("th", {scope: "row"}, label), el("td", {class: "num"}, el("output", {id: name}, "–"), " " + unit))));
  const poll = async () => {
    const r = await api("/api/live");
    if (r.ok && r.data) showLive(r.data);
    setTimeout(poll, 3000);
  };
  poll();
  let range = "hour";
  const buttons = document.querySelectorAll("[data-range]");
  const redraw = async () => {
    const r = await api("/api/history?range=" + range);
    drawChart($("chart"), (r.data && r.data.points) || [], range);
  };
  for (const button of buttons) button.addEventListener("click", () => {
    range = button.dataset.range;
    for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
    $("chart-title").textContent = {hour: "Power, last hour", day: "Power, last 24 hours",
      month: "Energy per day, last 31 days"}[range];
    redraw();
  });
  redraw();
  setInterval(redraw, 30000);
}

function showLive(live) {
  const harmonized = live.harmonized || {};
  for (const name of ["power_in", "power_out", "timestamp", "meter_id"]) {
    $(name).textContent = dash(name in harmonized ? harmonized[name] : live[name]);
  }
  for (const n of [1, 2, 3]) {
    for (const name of PHASES) $(name + n).textContent = dash(harmonized[name + n]);
    $("phase" + n).hidden = !PHASES.some((name) => (name + n) in harmonized);
  }
  for (const [name] of COUNTERS) {
    $(name).textContent = dash(harmonized[name]);
    $("row-" + name).hidden = !(name in harmonized);
  }
  const rows = Object.keys(live.values || {}).sort().map((obis) => el("tr", {},
    el("th", {scope: "row"}, obis), el("td", {class: "num"},
      dash(live.values[obis].value) + " " + (live.values[obis].unit || ""))));
  $("values").replaceChildren(...rows);
}

function drawChart(canvas, points, range) {
  const scale = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * scale;
  canvas.height = h * scale;
  const g = canvas.getContext("2d");
  g.scale(scale, scale);
  g.font = "12px system-ui, sans-serif";
  g.fillStyle = "#5b6570";
  if (!points.length) { g.fillText("No history yet", 8, h / 2); return; }
  const left = 48, bottom = h - 20, top = 8, right = w - 8;
  const first = points[0][0], last = Math.max(points[points.length - 1][0], first + 1);
  const most = Math.max(1, ...points.map((p) => p[1])) * 1.05;   // headroom above the peak
  const x = (t) => left + (t - first) * (right - left) / (last - first);
  const y = (v) => bottom - Math.max(0, v) * (bottom - top) / most;
  g.strokeStyle = "#d5dae0";
  for (const v of [0, most / 2, most]) {
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(right, y(v)); g.stroke();
    g.fillText(String(Math.round(v)), 2, y(v) + 4);
  }
  const when = (t) => { const d = new Date(t * 1000); return range === "month" ?
    d.getDate() + "." + (d.getMonth() + 1) + "." : d.toTimeString().slice(0, 5); };
  g.fillText(when(first), left, h - 4);
  g.textAlign = "right";
  g.fillText(when(last) + (range === "month" ? "  kWh/day" : "  W"), right, h - 4);
  g.fillStyle = g.strokeStyle = "#c2410c";
  if (range === "month") {
    const bar = Math.max(2, (right - left) / points.length - 2);
    for (const [t, v] of points) g.fillRect(x(t) - (t === last ? bar : 0), y(v), bar, bottom - y(v));
    return;
  }
  g.lineWidth = 2;
  g.beginPath();
  points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
  g.stroke();
}

const STATUS = [   // [label, path in /api/status, format]
  ["Mode", "mode"], ["Firmware version", "version"], ["Uptime", "uptime_s", duration],
  ["Free heap", "heap_free", (v) => Math.round(v / 1024) + " KB"], ["Wi-Fi network", "wifi.ssid"],
  ["Wi-Fi connected", "wifi.connected", yesNo], ["IP address", "wifi.ip"],
  ["Signal (RSSI)", "rssi", (v) => v + " dBm"], ["MQTT connected", "mqtt.connected", yesNo],
  ["Readings queued", "mqtt.queued"], ["Readings dropped", "mqtt.dropped"],
  ["Frames decoded", "decoder.ok"], ["CRC errors", "decoder.crc"],
  ["Authentication failures", "decoder.auth"], ["Replayed frames", "decoder.replay"],
  ["Format errors", "decoder.format"], ["Last error", "decoder.last_error"],
  ["Crypto and CRC backends", "decoder.backends", (v) => typeof v === "object" ? JSON.stringify(v) : v],
  ["Meter", "meter.id"], ["Meter profile", "meter.profile"], ["Last telegram", "meter.last_telegram"],
];

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min";
}

function yesNo(v) { return v ? "yes" : "no"; }

function initStatus() {
  $("status").append(...STATUS.map(([label, path]) => el("tr", {}, el("th", {scope: "row"}, label),
    el("td", {id: "s-" + path}, "–"))));
  const poll = async () => {
    const r = await api("/api/status");
    if (r.ok) {
      for (const [, path, format] of STATUS) {
        const value = path.split(".").reduce((v, key) => (v == null ? v : v[key]), r.data);
        $("s-" + path).textContent = value == null || value === "" ? "–" : format ? format(value) : value;
      }
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    }
    setTimeout(poll, 5000);
  };
  poll();
}

({setup: initSetup, settings: initSettings, live: initLive, status: initStatus})[
  document.body.dataset.page]();
