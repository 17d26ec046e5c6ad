/**
 * The zone map: one cell per zone, filled from the bottom to its write pointer, coloured by
 * owning epoch (or by condition), the live part of the written bytes solid and the dead part
 * pale; zone GC marked on top (a frame on zones being or worth collecting, a letter on heads).
 * People would rather look at a device than read a thousand rows.
 */
import { GC_MIN_GAIN_FRACTION } from '../engine/gc.js';
import type { ZoneStats } from '../engine/stats.js';

export type ColorBy = 'epoch' | 'condition';

const CELL = 22;
const GAP = 3;
const COLUMNS = 32;
const MARGIN = 16;
const HEADER = 40;
const LEGEND_ROW = 18;
const MIN_WIDTH = 640;

const CONDITION_COLORS: Record<string, string> = {
  empty: '#d9d9d9',
  'implicit-open': '#2e86de',
  'explicit-open': '#1b4f9c',
  closed: '#f0a500',
  full: '#6ab04c',
  'read-only': '#8e44ad',
  offline: '#c0392b',
  'not-wp': '#7f8c8d',
};

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Distinct, stable hues for epoch ids (golden-angle steps). */
function epochColor(epoch: number): string {
  const hue = Math.round((epoch * 137.508) % 360);
  return `hsl(${hue}, 62%, 45%)`;
}

function mib(n: number): string {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

export function renderZoneMap(zones: readonly ZoneStats[], options: { title: string; colorBy: ColorBy }): string {
  const columns = Math.min(COLUMNS, Math.max(1, zones.length));
  const rows = Math.ceil(zones.length / columns);
  const legendKeys =
    options.colorBy === 'epoch'
      ? [...new Set(zones.map((z) => z.epoch).filter((e): e is number => e !== null))].sort((a, b) => a - b)
      : [...new Set(zones.map((z) => z.condition))];
  const legendRows = Math.ceil((legendKeys.length + 2 + 3) / 4); // + the two zone GC frames and the head letters
  // Wide enough for the subtitle and a legend row even when the device has few zones.
  const width = Math.max(MIN_WIDTH, MARGIN * 2 + columns * (CELL + GAP));
  const height = HEADER + rows * (CELL + GAP) + MARGIN + legendRows * LEGEND_ROW + MARGIN;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<title>${escapeXml(options.title)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${MARGIN}" y="${MARGIN + 8}" font-size="13" font-weight="bold">${escapeXml(options.title)}</text>`);
  out.push(`<text x="${MARGIN}" y="${MARGIN + 22}" fill="#555">${zones.length} zones · fill = write pointer · solid = live bytes, pale = dead bytes · colour = ${options.colorBy}</text>`);
  zones.forEach((z, k) => {
    const x = MARGIN + (k % columns) * (CELL + GAP);
    const y = HEADER + Math.floor(k / columns) * (CELL + GAP);
    const color =
      options.colorBy === 'epoch' ? (z.epoch === null ? CONDITION_COLORS[z.condition] ?? '#999' : epochColor(z.epoch)) : CONDITION_COLORS[z.condition] ?? '#999';
    const fill = Math.max(0, Math.min(1, z.fillPct / 100));
    const filled = fill * CELL;
    const written = z.liveBytes + z.deadBytes;
    const liveShare = written > 0 ? z.liveBytes / written : 1;
    const liveHeight = filled * liveShare;
    const tip = `zone ${z.index} · ${z.condition} · wp ${z.fillPct}% of ${mib(z.capacity)}` +
      (z.epoch !== null ? ` · epoch ${z.epoch} (${z.epochState ?? '?'}) · ${z.slabs} slabs · live ${mib(z.liveBytes)} · dead ${mib(z.deadBytes)}` : '');
    out.push(`<g data-zone="${z.index}"><title>${escapeXml(tip)}</title>`);
    out.push(`<rect class="zone" x="${x}" y="${y}" width="${CELL}" height="${CELL}" fill="#f4f4f4" stroke="#bbbbbb" stroke-width="1"/>`);
    if (filled > 0) {
      // Dead on top of live, both from the bottom: the pale band is what a reset would give back beyond live data.
      out.push(`<rect class="dead" x="${x}" y="${(y + CELL - filled).toFixed(2)}" width="${CELL}" height="${filled.toFixed(2)}" fill="${color}" fill-opacity="0.3"/>`);
      if (liveHeight > 0) {
        out.push(`<rect class="live" x="${x}" y="${(y + CELL - liveHeight).toFixed(2)}" width="${CELL}" height="${liveHeight.toFixed(2)}" fill="${color}"/>`);
      }
    }
    // Zone GC: a red frame while it is being collected, a dashed one when collecting it would
    // give back at least GC_MIN_GAIN_FRACTION, a letter on each head (U: puts, G: GC's moves).
    if (z.collecting) out.push(`<rect class="collecting" x="${x + 1}" y="${y + 1}" width="${CELL - 2}" height="${CELL - 2}" fill="none" stroke="#d7191c" stroke-width="3"/>`);
    else if (z.gcGainBytes >= GC_MIN_GAIN_FRACTION * z.capacity && z.gcGainBytes > 0) {
      out.push(`<rect class="collectable" x="${x + 1}" y="${y + 1}" width="${CELL - 2}" height="${CELL - 2}" fill="none" stroke="#d7191c" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    }
    if (z.head !== null) out.push(`<text class="head" x="${x + 4}" y="${y + 14}" font-size="12" font-weight="bold" fill="#222">${z.head === 'user' ? 'U' : 'G'}</text>`);
    out.push(`</g>`);
  });
  const legendY = HEADER + rows * (CELL + GAP) + MARGIN;
  const entries: [string, string, number][] = legendKeys.map((key) =>
    options.colorBy === 'epoch' ? [`epoch ${key}`, epochColor(key as number), 1] : [String(key), CONDITION_COLORS[String(key)] ?? '#999', 1],
  );
  if (options.colorBy === 'epoch') entries.push(['no epoch (free)', CONDITION_COLORS.empty!, 1]);
  entries.push(['dead (pale)', '#555555', 0.3]);
  const legendMarks: [string, string][] = [
    ['being collected (zone GC)', `stroke="#d7191c" stroke-width="3"`],
    ['worth collecting', `stroke="#d7191c" stroke-width="1.5" stroke-dasharray="4 3"`],
  ];
  entries.forEach(([label, color, opacity], k) => {
    const x = MARGIN + (k % 4) * 150;
    const y = legendY + Math.floor(k / 4) * LEGEND_ROW;
    out.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${color}" fill-opacity="${opacity}" stroke="#888" stroke-width="0.5"/>`);
    out.push(`<text x="${x + 17}" y="${y + 10}">${escapeXml(label)}</text>`);
  });
  legendMarks.forEach(([label, stroke], k) => {
    const n = entries.length + k;
    const x = MARGIN + (n % 4) * 150;
    const y = legendY + Math.floor(n / 4) * LEGEND_ROW;
    out.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="none" ${stroke}/>`);
    out.push(`<text x="${x + 17}" y="${y + 10}">${escapeXml(label)}</text>`);
  });
  {
    const n = entries.length + legendMarks.length;
    out.push(`<text x="${MARGIN + (n % 4) * 150}" y="${legendY + Math.floor(n / 4) * LEGEND_ROW + 10}">U / G: head zone for puts / for GC</text>`);
  }
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}
