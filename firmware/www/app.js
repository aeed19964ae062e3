// meterkit pages: one script for setup, settings, live and status (body data-page picks the part).
// Talks only to the dongle's JSON API; no framework, no CDN: the dongle may have no internet.
"use strict";
const MASK = "********";   // a stored secret; posting it back means "keep it"
const $ = (id) => document.getElementById(id);

function say(id, ok, text) {   // a message next to a button: ok (green), failed (red) or neutral
  $(id).className = "msg" + (ok === null ? "" : ok ? " ok" : " fail");
  $(id).textContent = text;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const name in attrs || {}) node.setAttribute(name, attrs[name]);
  node.append(...children);
  return node;
}

// -- API: JSON in and out; a 401 asks for the admin password once, then retries -----------------

async function api(path, body) {   // {ok, status, data}; a body makes it a POST
  const options = body === undefined ? {} : {method: "POST", headers: JSON_TYPE,
    body: typeof body === "string" ? body : JSON.stringify(body)};
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

const JSON_TYPE = {"Content-Type": "application/json"};
const logIn = (password) => fetch("/api/login", {method: "POST", headers: JSON_TYPE,
  body: JSON.stringify({password: password})}).catch(() => null);
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
    const r = await logIn($("login-password").value);
    if (r && r.ok) { box.parentNode.remove(); loggingIn = null; resolve(true); return; }
    $("login-error").textContent = r ? "wrong password" : "the dongle does not answer";
  }));
  return loggingIn;
}

// -- pages (setup and settings: config.js) ------------------------------------------------------

const dash = (v) => v === undefined || v === null || v === "" ? "–" : String(v);

function initLive() {
  const poll = async () => {
    const r = await api("/api/live");
    if (r.ok) showLive(r.data);
    setTimeout(poll, 3000);
  };
  poll();
  let range = "hour";
  const buttons = document.querySelectorAll("[data-range]");
  const redraw = async () => {
    const r = await api("/api/history?range=" + range);
    drawChart($("chart"), r.data.points || [], range);
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

function showLive(live) {   // every output and cell named like a harmonized value shows it
  const harmonized = live.harmonized || {};
  for (const node of document.querySelectorAll("output[id], td[id]")) {
    node.textContent = dash(node.id in harmonized ? harmonized[node.id] : live[node.id]);
  }
  for (const row of document.querySelectorAll("section tbody tr")) {   // only what the meter sends
    row.hidden = ![...row.querySelectorAll("[id]")].some((node) => node.textContent !== "–");
  }
  const values = live.values || {};
  $("values").replaceChildren(...Object.keys(values).sort().map((obis) => el("tr", {},
    el("th", {scope: "row"}, obis), el("td", {class: "num"},
      dash(values[obis].value) + " " + (values[obis].unit || "")))));
}

const SPAN = {hour: 3600, day: 86400, month: 31 * 86400};   // seconds shown per chart range

function drawChart(canvas, points, range) {   // a line of W (hour, day), bars of kWh (month)
  const scale = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * scale;
  canvas.height = h * scale;
  const g = canvas.getContext("2d");
  g.scale(scale, scale);
  g.font = "12px system-ui, sans-serif";
  g.fillStyle = "#5b6570";
  if (!points.length) return g.fillText("No history yet", 8, h / 2);
  const bars = range === "month", left = 48, right = w - 8, top = 8, bottom = h - 20;
  const end = points[points.length - 1][0] + (bars ? 86400 : 0), start = end - SPAN[range];
  const most = Math.max(1, ...points.map((p) => p[1])) * 1.05;   // headroom above the peak
  const x = (t) => left + (t - start) * (right - left) / SPAN[range];
  const y = (v) => bottom - Math.max(0, v) * (bottom - top) / most;
  g.strokeStyle = "#d5dae0";
  for (const v of [0, most / 2, most]) {
    g.beginPath(); g.moveTo(left, y(v)); g.lineTo(right, y(v)); g.stroke();
    g.fillText(String(Math.round(v)), 2, y(v) + 4);
  }
  const when = (t) => { const d = new Date(t * 1000); return bars ?
    d.getDate() + "." + (d.getMonth() + 1) + "." : d.toTimeString().slice(0, 5); };
  g.fillText(when(start), left, h - 4);
  g.textAlign = "right";
  g.fillText(when(end) + (bars ? "  kWh/day" : "  W"), right, h - 4);
  g.fillStyle = g.strokeStyle = "#c2410c";
  if (bars) {
    for (const [t, v] of points) g.fillRect(x(t) + 1, y(v), x(86400) - x(0) - 2, bottom - y(v));
    return;
  }
  g.lineWidth = 2;
  g.beginPath();
  points.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
  g.stroke();
  if (points.length === 1) g.fillRect(x(points[0][0]) - 3, y(points[0][1]) - 3, 6, 6);
}

const STATUS_FORMAT = {   // /api/status path -> how a person reads it
  uptime_s: duration, heap_free: (v) => Math.round(v / 1024) + " KB", rssi: (v) => v + " dBm",
  "wifi.connected": yesNo, "mqtt.connected": yesNo,
  "decoder.backends": (v) => typeof v !== "object" ? v :
    Object.keys(v).map((name) => name + ": " + v[name]).join(", "),
};

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min";
}

function yesNo(v) { return v ? "yes" : "no"; }

function initStatus() {   // each cell's id is "s-" + its path in /api/status
  const poll = async () => {
    const r = await api("/api/status");
    if (r.ok) {
      for (const cell of document.querySelectorAll("#status td")) {
        const path = cell.id.slice(2);
        const value = path.split(".").reduce((v, key) => (v == null ? v : v[key]), r.data);
        const format = STATUS_FORMAT[path] || String;
        cell.textContent = value == null || value === "" ? "–" : format(value);
      }
      $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    }
    setTimeout(poll, 5000);
  };
  poll();
}

// each script adds its pages; they start once every script of the page has run
const PAGES = {live: initLive, status: initStatus};
document.addEventListener("DOMContentLoaded", () => PAGES[document.body.dataset.page]());
