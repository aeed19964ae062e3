// meterkit pages: the config form of setup and settings (loaded after app.js on those two pages).
"use strict";

// -- the config form (setup and settings): fields, checks that mirror the dongle's, tests -------

const PROFILES = [["auto", "Detect automatically"], ["dsmr5", "DSMR 5 (NL, BE e-MUCS)"],
  ["dsmr22", "DSMR 2.2 / 3 (older NL)"], ["smarty", "Smarty (LU, encrypted P1)"],
  ["mbus_dlms", "DLMS over M-Bus (AT)"], ["hdlc_dlms", "DLMS over HDLC (CH, NO, SE)"],
  ["modbus", "Modbus meters on RS485 (Eastron SDM, ABB B23)"]];
const BAUDS = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200];
const FRAMES = ["8N1", "8E1", "8O1", "8N2"];

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
  ["Modbus meters", "modbus", [   // shown for profile modbus; the rows fill the hidden fields
    ["meter.modbus", "", "hidden", ""],
    ["meter.line", "", "hidden", ""],
    ["meter.intervals", "Read intervals", "text", "Seconds per quantity, e.g. voltage=10 " +
     "current=5 energy=300; empty: those, power 5 s, the rest 60 s.", {maxlength: 256}],
    ["meter.modbus_timeout_ms", "Answer timeout (ms)", "number", "How long a meter may take " +
     "to answer.", {min: 20, max: 10000, inputmode: "numeric"}]]],
  ["MQTT broker", "mqtt", [
    ["mqtt.host", "Broker host", "text", "Name or IP address; empty turns MQTT off."],
    ["mqtt.port", "Port", "number", "", {min: 1, max: 65535, inputmode: "numeric"}],
    ["mqtt.user", "User", "text", "", {autocomplete: "off"}],
    ["mqtt.password", "Password", "password", "", {autocomplete: "new-password"}],
    ["mqtt.tls", "Use TLS", "checkbox", ""],
    ["mqtt.ca_cert", "CA certificate (PEM)", "textarea", "Only for TLS with your own CA."],
    ["mqtt.base_topic", "Base topic", "text", ""],
    ["mqtt.discovery_prefix", "Home Assistant discovery prefix", "text", ""]]],
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
  "meter.intervals": (v) => v.split(/\s+/).filter(Boolean).every((e) =>
    /^[A-Za-z0-9_-]{1,32}=[0-9]+$/.test(e) && e.split("=")[1] >= 1 && e.split("=")[1] <= 86400) ?
    "" : "must be name=seconds entries like voltage=10 (1..86400 s)",
  "meter.modbus_timeout_ms": (v) => /^[0-9]+$/.test(v) && v >= 20 && v <= 10000 ? "" :
    "must be 20..10000",
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
  if (type === "hidden") return el("div", {}, el("input", {type: "hidden", id: id, name: name}),
    el("p", {class: "error", id: "err-" + name}));
  if (type === "select") {
    input = el("select", attrs, ...PROFILES.map(([value, text]) => el("option", {value: value}, text)));
  } else if (type === "textarea") {
    input = el("textarea", Object.assign(attrs, {spellcheck: "false"}));
  } else {
    attrs.type = type === "key" ? "text" : type;
    if (type === "key") Object.assign(attrs, {autocomplete: "off", maxlength: 64});
    if (type === "key" || type === "text") Object.assign(attrs, {autocapitalize: "none", spellcheck: "false"});
    input = el("input", attrs);
  }
  input.addEventListener("focus", () => { if (input.value === MASK) input.select(); });
  input.addEventListener("input", () => {   // an edited field's old complaint no longer holds
    input.removeAttribute("aria-invalid");
    $("err-" + name).textContent = "";
  });
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
    if (test === "modbus") {
      modbusFields(form, set);
    } else if (test) {
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
  form.elements["meter.profile"].addEventListener("change", () => showProfile(form));
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
      input.type === "number" ? Number(input.value) : input.value.trim();
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
  const bus = doc.meter.profile === "modbus" && checkMeters();
  if (bus) errors["meter.modbus"] = bus;
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
  const v = values(form);
  const body = test === "wifi" ? v.wifi : test === "keys" ? {key: v.meter.key,
    auth_key: v.meter.auth_key} : {host: v.mqtt.host, port: v.mqtt.port, user: v.mqtt.user,
    password: v.mqtt.password, tls: v.mqtt.tls, ca: v.mqtt.ca_cert};
  say("test-" + test, null, "Testing…");
  const r = await api("/api/test/" + test, body);
  say("test-" + test, r.data.ok, r.data.message || r.data.error || "no answer (HTTP " + r.status + ")");
}

async function save(form, setup) {   // true once the dongle took the config
  say("save-msg", null, "");
  if (!showErrors(form, check(form, setup))) return false;
  const r = await api("/api/config", values(form));
  if (!r.ok) {
    showErrors(form, r.data.errors || {form: r.data.error || "HTTP " + r.status});
    return false;
  }
  say("save-msg", true, setup ? "Saved." : "Saved: the dongle restarts with it.");
  return true;
}

async function configForm(saveLabel, setup) {   // the form, filled from the dongle, saving to it
  const form = $("config");
  buildForm(form, saveLabel);
  const r = await api("/api/config");
  if (r.ok) fill(form, r.data);
  showProfile(form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await save(form, setup) && setup) joining(form);
  });
}

async function joining(form) {   // after the setup: wait for normal mode, log in, lead on
  const password = form.elements["admin.password"].value, ssid = form.elements["wifi.ssid"].value;
  form.hidden = true;
  $("done").hidden = false;
  const progress = $("progress");
  progress.textContent = "The dongle is joining " + (ssid || "your network") + "…";
  for (;;) {   // the access point stays up until the dongle is on the new network
    await new Promise((wake) => setTimeout(wake, 1500));
    const status = (await api("/api/status")).data;
    if (status.mode !== "normal") continue;
    await logIn(password);
    const ip = status.wifi && status.wifi.ip;
    progress.replaceChildren("Done: the dongle is on " + (ssid || "your network") + ". ",
      el("a", {href: "/live", id: "to-live"}, "Open the live page"),
      ip ? " — on your home network at http://" + ip + "/" : "");
    return;
  }
}

// -- Modbus: a row per meter (model, slave id, name, test) and the line, into hidden fields ----

let models = null, loading = null, rows = 0;   // the maps the dongle ships, asked for once

function modbusFields(form, set) {
  set.id = "modbus";
  const [meters, line] = set.querySelectorAll("div");   // the hidden fields' error boxes
  const add = el("button", {type: "button", class: "secondary", id: "mb-add"}, "Add a meter");
  add.addEventListener("click", () => { meterRow({}); syncModbus(form); });
  meters.before(el("div", {id: "mb-meters"}), add);
  const baud = el("select", {id: "mb-baud"}, el("option", {value: ""}, "The meter's factory line"),
    ...BAUDS.map((b) => el("option", {value: b}, b + " baud")));
  const frame = el("select", {id: "mb-frame"}, ...FRAMES.map((f) => el("option", {value: f}, f)));
  line.before(el("div", {class: "row"}, el("div", {}, el("label", {for: "mb-baud"}, "Bus speed"),
    baud), el("div", {}, el("label", {for: "mb-frame"}, "Data, parity, stop"), frame)),
  el("p", {class: "hint"}, "Every meter on the bus must be set to the same line."));
  for (const kind of ["change", "input"]) {
    set.addEventListener(kind, (event) => {
      syncModbus(form);
      if (event.target.closest("#mb-meters")) $("err-meter.modbus").textContent = "";
    });
  }
}

async function showProfile(form) {   // Modbus meters need no keys, the others no bus
  const modbus = form.elements["meter.profile"].value === "modbus";
  $("modbus").hidden = !modbus;
  for (const name of ["meter.key", "meter.auth_key"]) {
    form.elements[name].parentNode.hidden = modbus;
  }
  form.querySelector("[data-test=keys]").hidden = $("test-keys").hidden = modbus;
  if (!modbus || loading) return;
  loading = api("/api/modbus/models");
  models = (await loading).data.models || [];
  const [baud, frame] = form.elements["meter.line"].value.split(" ");
  if (baud && !BAUDS.includes(Number(baud))) $("mb-baud").append(el("option", {value: baud}, baud));
  $("mb-baud").value = baud || "";
  $("mb-frame").value = frame || "8N1";
  for (const entry of form.elements["meter.modbus"].value.split(/\s+/).filter(Boolean)) {
    const [model, slave, id] = entry.split(":");
    meterRow({model: model, slave: slave, id: id});
  }
  if (!rows) meterRow({});
  syncModbus(form);
}

function meterRow(meter) {   // ids mb-model-N, mb-slave-N, mb-id-N, mb-test-N, mb-result-N
  const n = rows++, id = (part) => "mb-" + part + "-" + n;
  const model = el("select", {id: id("model")},
    ...models.map((m) => el("option", {value: m.model}, m.name)));
  if (meter.model && !models.some((m) => m.model === meter.model)) {   // an alias (b23) kept
    model.append(el("option", {value: meter.model}, meter.model));
  }
  model.value = meter.model || "sdm630";
  const next = document.querySelectorAll("#mb-meters .meter").length + 1;
  const slave = el("input", {id: id("slave"), type: "number", min: 1, max: 247,
    inputmode: "numeric", value: meter.slave || next});
  const name = el("input", {id: id("id"), type: "text", maxlength: 64, autocapitalize: "none",
    spellcheck: "false", placeholder: "model-slave", value: meter.id || ""});
  const test = el("button", {type: "button", class: "secondary", id: id("test")}, "Test");
  const remove = el("button", {type: "button", class: "secondary", id: id("remove")}, "Remove");
  const row = el("div", {class: "meter"}, el("div", {class: "row"},
    el("div", {}, el("label", {for: id("model")}, "Model"), model),
    el("div", {}, el("label", {for: id("slave")}, "Slave id"), slave)),
    el("label", {for: id("id")}, "Name in the topics (optional)"), name, test, remove,
    el("output", {class: "msg", id: id("result"), "aria-live": "polite"}));
  row.addEventListener("input", () => say(id("result"), null, ""));   // that answer is old now
  row.addEventListener("change", () => say(id("result"), null, ""));
  remove.addEventListener("click", () => {
    const form = row.closest("form");
    row.remove();
    syncModbus(form);
  });
  test.addEventListener("click", async () => {   // one register read from that meter, now
    say(id("result"), null, "Testing…");
    const r = await api("/api/test/modbus", {model: model.value, slave: Number(slave.value),
      line: row.closest("form").elements["meter.line"].value});
    say(id("result"), r.data.ok, r.data.message || r.data.error ||
      "no answer (HTTP " + r.status + ")");
  });
  $("mb-meters").append(row);
}

function busMeters() {   // [{model, slave, id}] as the rows say
  return [...document.querySelectorAll("#mb-meters .meter")].map((row) => {
    const [model, slave, id] = row.querySelectorAll("select, input");
    return {model: model.value, slave: slave.value.trim(), id: id.value.trim()};
  });
}

function syncModbus(form) {   // the rows as meter.modbus ("sdm630:1 sdm120:2:wallbox"), meter.line
  form.elements["meter.modbus"].value = busMeters().map((m) =>
    m.model + ":" + m.slave + (m.id ? ":" + m.id : "")).join(" ");
  form.elements["meter.line"].value = $("mb-baud").value ?
    $("mb-baud").value + " " + $("mb-frame").value : "";
  const first = models && models.find((m) => m.model === (busMeters()[0] || {}).model);
  $("mb-baud").options[0].textContent = "The first meter's factory line" +
    (first ? " (" + first.line + ")" : "");
}

function checkMeters() {   // why the dongle would refuse the rows, mirroring config.modbus_meters
  const meters = busMeters(), seen = [];
  if (!meters.length) return "add the meters on the bus (model and slave id)";
  for (let i = 0; i < meters.length; i++) {
    const m = meters[i];
    if (!/^[0-9]+$/.test(m.slave) || m.slave < 1 || m.slave > 247) {
      return "meter " + (i + 1) + ": the slave id must be 1..247";
    }
    if (!/^[A-Za-z0-9_-]*$/.test(m.id)) {
      return "meter " + (i + 1) + ": the name may have letters, digits, - and _";
    }
    if (seen.includes(Number(m.slave))) return "slave " + m.slave + " is listed twice";
    seen.push(Number(m.slave));
  }
  return "";
}

function initSetup() { configForm("Save and connect", true); }

function initSettings() {
  configForm("Save", false);
  $("restore").addEventListener("click", async () => {
    const file = $("restore-file").files[0];
    if (!file) return say("restore-msg", false, "choose a backup file first");
    const r = await api("/api/restore", await file.text()), errors = r.data.errors || {};
    say("restore-msg", r.ok, r.ok ? "Restored: the dongle restarts with it." : Object.keys(errors)
      .map((name) => name + ": " + errors[name]).join("; ") || r.data.error || "HTTP " + r.status);
  });
  update();
  device("reboot", "Reboot the dongle now?", "Rebooting: this page works again in a minute.");
  device("factory-reset", "Erase every setting and restart in setup mode?",
    "Erased. Join the dongle's own Wi-Fi network to set it up again.");
}

async function update() {   // install a signed release through POST /api/ota/push
  const status = await api("/api/status");
  if (status.ok) $("running-version").textContent = status.data.version;
  $("update").addEventListener("click", async () => {
    say("update-msg", null, "Fetching and checking the release…");
    const r = await api("/api/ota/push", {url: $("update-url").value.trim(), force: false});
    say("update-msg", r.ok, r.ok ? "Version " + r.data.version + " installed: the dongle restarts"
      + " on it and keeps it once it runs healthy." : r.data.error || "HTTP " + r.status);
  });
}

function device(action, question, done) {
  $(action).addEventListener("click", async () => {
    if (!confirm(question)) return;
    const r = await api("/api/" + action, {});
    say("device-msg", r.ok, r.ok ? done : r.data.error || "HTTP " + r.status);
  });
}

PAGES.setup = initSetup;
PAGES.settings = initSettings;
