/**
 * The page `zns-slab serve` sends: one self-contained HTML document, its CSS and JavaScript
 * inline, no framework, no build step. It opens the event stream (`events`, relative, so it
 * also works under a path prefix) and redraws on each snapshot: the zone map (SVG made by the
 * server), the totals, the epochs. `document.title` and `body[data-frames]` count the
 * snapshots drawn (the tests read them). `?frames=N` draws N snapshots and stops (the stream
 * ends, the page settles: for screenshots).
 */
export const SERVE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zns-slab (connecting)</title>
<style>
  :root { --fg: #1d2330; --muted: #667085; --line: #e3e6eb; --card: #ffffff; --bg: #f5f6f8; --ok: #2f9e44; --bad: #c92a2a; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 12px; padding: 10px 18px; background: #1d2330; color: #fff; }
  header h1 { font-size: 16px; margin: 0; font-weight: 600; }
  header .target { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; color: #c8cfdb; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; flex: 1; }
  #status { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #495063; white-space: nowrap; }
  #status.live { background: var(--ok); }
  #status.down { background: var(--bad); }
  main { padding: 14px 18px; display: grid; gap: 14px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
  .card .k { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
  .card .v { font-size: 18px; font-weight: 600; margin-top: 2px; font-variant-numeric: tabular-nums; }
  .card .s { font-size: 12px; color: var(--muted); font-variant-numeric: tabular-nums; }
  .panel { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow-x: auto; }
  .panel h2 { font-size: 13px; margin: 0 0 8px; color: var(--muted); font-weight: 600; }
  #map svg { width: 100%; max-width: 1400px; height: auto; display: block; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
  th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
  th { color: var(--muted); font-weight: 600; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
  #notes { color: var(--muted); font-size: 12px; margin: 0; padding-left: 18px; }
  #error { color: var(--bad); font-weight: 600; }
  .grid2 { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 14px; align-items: start; }
  @media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
</style>
</head>
<body data-frames="0">
<header><h1>zns-slab</h1><span class="target" id="target">connecting…</span><span id="status">connecting</span></header>
<main>
  <div id="error" hidden></div>
  <div class="cards" id="cards"></div>
  <section class="panel"><h2 id="map-title">Zone map</h2><div id="map"></div></section>
  <div class="grid2">
    <section class="panel"><h2>Epochs</h2><table id="epochs"><thead><tr><th>epoch</th><th>state</th><th>zones</th><th>slabs</th><th>live objs</th><th>live</th><th>dead</th></tr></thead><tbody></tbody></table></section>
    <section class="panel"><h2>About these numbers</h2><ul id="notes"></ul></section>
  </div>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let frames = 0;
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n, u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? v + " B" : v.toFixed(1) + " " + units[u];
}
function epochColor(epoch) { return "hsl(" + Math.round((epoch * 137.508) % 360) + ", 62%, 45%)"; }
function card(k, v, s) {
  const d = document.createElement("div");
  d.className = "card";
  for (const [cls, text] of [["k", k], ["v", v], ["s", s || ""]]) {
    const e = document.createElement("div");
    e.className = cls;
    e.textContent = text;
    d.appendChild(e);
  }
  return d;
}
function ago(ms) { return ms < 1000 ? ms + " ms" : ms < 120000 ? (ms / 1000).toFixed(1) + " s" : Math.round(ms / 60000) + " min"; }
function render(s) {
  const t = s.totals, g = s.device.geometry;
  $("target").textContent = s.target + " — " + s.device.kind + " device, " + g.zoneCount + " zones of " + bytes(g.zoneSize) +
    (s.device.inUseBy !== null ? " — in use by pid " + s.device.inUseBy : "");
  const conds = Object.entries(t.byCondition).filter(([, n]) => n > 0).map(([c, n]) => n + " " + c).join(", ");
  const cards = [
    card("zones", String(t.zones), conds),
    card("written", bytes(t.writtenBytes), (100 * t.writtenBytes / t.capacityBytes).toFixed(1) + "% of " + bytes(t.capacityBytes)),
    card("device writes", s.rates ? bytes(s.rates.deviceBytesPerSecond) + "/s" : "…", "write pointers, since the last snapshot"),
  ];
  if (s.stats) {
    const c = s.stats.counters, d = s.stats.derived;
    cards.push(
      card("live", bytes(t.liveBytes), s.stats.liveObjects + " objects in " + s.stats.slabs + " slabs"),
      card("dead", bytes(t.deadBytes), "space amplification " + (d.spaceAmplification ?? "n/a")),
      card("unflushed", bytes(t.unflushedBytes), "written since the last flush"),
      card("puts/s", s.rates && s.rates.putsPerSecond !== null ? String(s.rates.putsPerSecond) : "…", c.puts + " puts, " + c.frees + " frees in all"),
      card("write amplification", String(d.writeAmplification ?? "n/a"), bytes(c.deviceBytesWritten) + " written for " + bytes(c.userBytesPut)),
      card("zone resets", String(c.zoneResets), bytes(c.zoneResetBytes) + " given back"),
      card("catalog", "commit " + s.catalog.commitSequence, "as of the last flush, " + ago(Math.max(0, Date.parse(s.takenAt) - Date.parse(s.catalog.changedAt))) + " before this snapshot"),
    );
  }
  $("cards").replaceChildren(...cards);
  $("map").innerHTML = s.svg;
  $("map-title").textContent = "Zone map (" + t.zones + " zones; " + new Date(s.takenAt).toLocaleTimeString() + ")";
  const body = $("epochs").tBodies[0];
  const rows = (s.stats ? s.stats.epochs : []).map((e) => {
    const tr = document.createElement("tr");
    const first = document.createElement("td");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = epochColor(e.epoch);
    first.append(sw, String(e.epoch) + (e.epoch === s.stats.epochCurrent ? " (current)" : ""));
    tr.appendChild(first);
    for (const v of [e.state, e.zones, e.slabs, e.liveObjects, bytes(e.liveBytes), bytes(e.deadBytes)]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.appendChild(td);
    }
    return tr;
  });
  if (rows.length === 0) { const tr = document.createElement("tr"); const td = document.createElement("td"); td.colSpan = 7; td.textContent = s.kind === "store" ? "no live epoch" : "a bare device: no epochs"; tr.appendChild(td); rows.push(tr); }
  body.replaceChildren(...rows);
  $("notes").replaceChildren(...s.notes.map((n) => { const li = document.createElement("li"); li.textContent = n; return li; }));
  $("error").hidden = true;
  frames++;
  document.body.dataset.frames = String(frames);
  document.body.dataset.zones = String(document.querySelectorAll("#map g[data-zone]").length);
  document.title = "zns-slab · " + t.zones + " zones · " + bytes(t.writtenBytes) + " written · snapshot " + frames;
}
function status(text, cls) { const e = $("status"); e.textContent = text; e.className = cls || ""; }
const wanted = Number(new URLSearchParams(location.search).get("frames") || "0");
const limited = Number.isSafeInteger(wanted) && wanted > 0;
const events = new EventSource(limited ? "events?limit=" + wanted : "events");
events.onmessage = (ev) => {
  render(JSON.parse(ev.data));
  if (limited && frames >= wanted) { events.close(); status("stopped after " + frames + " snapshots", ""); }
  else status("live · " + new Date().toLocaleTimeString(), "live");
};
events.addEventListener("failure", (ev) => { const f = JSON.parse(ev.data); const e = $("error"); e.textContent = "last snapshot failed: " + f.code + ": " + f.message; e.hidden = false; });
events.onerror = () => status("reconnecting…", "down");
</script>
</body>
</html>
`;
