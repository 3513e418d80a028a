/**
 * Hand-made SVG bar charts for BENCHMARKS.md, with no dependency: a figure is a grid of small panels,
 * each a horizontal bar chart with its own axis (so a 16 B scenario in msgs/s and a 1 MiB one in MB/s
 * can sit side by side), a value at the end of every bar, min–max whiskers (cut at the axis' end when
 * asked), optional stacked segments (a bar split into parts) and an optional reference line (1.0 for
 * ratios).
 *
 * The output is deterministic (the same input gives the same bytes: no dates, no random ids, numbers
 * rounded), every text is escaped, and the figure has its own white background, so it reads the same
 * in GitHub's light and dark themes (GitHub shows an SVG as an image: no script, no external font).
 * Text widths are estimated from character classes, as no font metrics are available here.
 */

/** One bar: a median (or any value), optionally its min–max and its parts. */
export interface Bar {
  /** Row label, left of the bar. */
  readonly label: string;
  /** Colour key: bars with the same key get the same colour in every figure (see colorFor). */
  readonly key: string;
  /** NaN or a missing measurement: the row shows "–" and no bar. */
  readonly value: number;
  readonly min?: number;
  readonly max?: number;
  /** The text at the end of the bar; default: the panel's `format` of the value. */
  readonly text?: string;
  /** Mixes the key's colour with white (0 to 1), to tell apart two bars of one key (e.g. an option off). */
  readonly shade?: number;
  /** Stacked parts, left to right, summing to about `value`; each is shaded by its index (see Figure.segments). */
  readonly segments?: readonly number[];
}

/** Rows under an optional heading: e.g. the servers of one connection count. */
export interface BarGroup {
  readonly label?: string;
  readonly bars: readonly Bar[];
}

export interface Panel {
  readonly title: string;
  /** What the axis counts, shown under the title, e.g. `msgs/s, median of 5 rounds (whiskers: min–max)`. */
  readonly unit: string;
  readonly groups: readonly BarGroup[];
  /** Value labels at the bar ends. */
  readonly format: (value: number) => string;
  /** Tick labels; default `format`. */
  readonly tick?: (value: number) => string;
  /** A dashed vertical line, e.g. 1 for a ratio. */
  readonly reference?: number;
  /**
   * The axis ends at most this many times the largest bar (or the reference): a wilder whisker is cut
   * at the edge and drawn open-ended, so one outlier round does not flatten every bar.
   */
  readonly clip?: number;
}

export interface Figure {
  readonly title: string;
  readonly subtitle?: string;
  /** Panels per row (1 or 2 fit GitHub's text column). */
  readonly columns: number;
  readonly panels: readonly Panel[];
  /** Legend entries for stacked segments: the first is drawn full colour, the next ones lighter. */
  readonly segments?: readonly string[];
  /** A small grey line at the bottom (the source of the figures). */
  readonly footnote?: string;
}

const WIDTH = 880;
const MARGIN = 16;
const GUTTER = 24;
const FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif";
const TEXT = '#1f2328';
const MUTED = '#59636e';
const GRID = '#d8dee4';
const AXIS = '#8c959f';
const BAR_HEIGHT = 15;
const ROW_GAP = 5;
const GROUP_GAP = 8;

/** Colours by key, chosen to stay apart for common colour blindness and to read on white. */
const COLORS: Readonly<Record<string, string>> = {
  rfc6455: '#0969da',
  ws: '#e16f24',
  'ws-no-bufferutil': '#f0b429',
  tcp: '#6e7781',
  raw: '#6e7781',
  bun: '#8250df',
  h2: '#0969da',
  h1: '#1a7f37',
  'byte loop': '#6e7781',
  'ws JS': '#f0b429',
  bufferutil: '#e16f24',
};
const FALLBACK = ['#0969da', '#e16f24', '#8250df', '#1a7f37', '#6e7781', '#bf3989', '#0a7f8c', '#f0b429'];

/**
 * The colour of a key: a known key, or the first known key it starts with (`rfc6455-deflate` is
 * rfc6455's), else one of the fallback colours picked from the key's characters (stable across runs).
 */
export function colorFor(key: string): string {
  const exact = COLORS[key];
  if (exact !== undefined) return exact;
  const prefix = Object.keys(COLORS)
    .filter((known) => key.startsWith(known))
    .sort((a, b) => b.length - a.length)[0];
  if (prefix !== undefined) return COLORS[prefix]!;
  let sum = 0;
  for (const char of key) sum = (sum * 31 + char.charCodeAt(0)) >>> 0;
  return FALLBACK[sum % FALLBACK.length]!;
}

/** Escapes text for an SVG text node or attribute value. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char]!);
}

/** An estimate of a text's width in px, by character class (wide, narrow, digits, the rest). */
export function textWidth(text: string, size: number): number {
  let em = 0;
  for (const char of text) {
    if ('iljI.,:;|!\'’ ()[]'.includes(char)) em += 0.3;
    else if ('mwMW@%'.includes(char)) em += 0.85;
    else if (/[A-Z×÷–—]/.test(char)) em += 0.66;
    else if (/[0-9]/.test(char)) em += 0.56;
    else em += 0.53;
  }
  return em * size;
}

/** A number for an attribute: at most 2 decimals, no trailing zeros, no `-0`. */
function n(value: number): string {
  const rounded = Math.round(value * 100) / 100;
  return Object.is(rounded, -0) ? '0' : String(rounded);
}

/** 0, 250 k, 1.5 M: up to 3 significant digits with k/M/G. */
export function compact(value: number): string {
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  const [divisor, suffix] = abs >= 1e9 ? [1e9, ' G'] : abs >= 1e6 ? [1e6, ' M'] : abs >= 1e3 ? [1e3, ' k'] : [1, ''];
  const scaled = value / divisor;
  return `${Number(scaled.toPrecision(3))}${suffix}`;
}

/** Ticks from 0 to at least `max`: a step of 1, 2, 2.5 or 5 × 10^k, about `count` of them. */
function niceTicks(max: number, count: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((factor) => factor * power >= raw) ?? 10) * power;
  const ticks: number[] = [];
  for (let i = 0; ticks.length === 0 || ticks[ticks.length - 1]! < max - step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

function text(x: number, y: number, content: string, attributes: string): string {
  return `<text x="${n(x)}" y="${n(y)}" ${attributes}>${escapeXml(content)}</text>`;
}

/** A lighter shade of a #rrggbb colour (mixed with white), for the later stacked segments. */
function lighten(color: string, amount: number): string {
  const channel = (index: number): string => {
    const value = parseInt(color.slice(1 + 2 * index, 3 + 2 * index), 16);
    return Math.round(value + (255 - value) * amount)
      .toString(16)
      .padStart(2, '0');
  };
  return `#${channel(0)}${channel(1)}${channel(2)}`;
}

const SEGMENT_SHADES = [0, 0.55, 0.8];

/** One panel, drawn at the origin, `width` wide; returns its SVG and its height. */
function renderPanel(panel: Panel, width: number): { svg: string; height: number } {
  const tick = panel.tick ?? panel.format;
  const out: string[] = [];
  let y = 0;
  out.push(text(0, y + 13, panel.title, `font-size="13" font-weight="600" fill="${TEXT}"`));
  y += 18;
  out.push(text(0, y + 11, panel.unit, `font-size="11" fill="${MUTED}"`));
  y += 20;
  const bars = panel.groups.flatMap((group) => group.bars);
  const labelWidth = Math.ceil(
    Math.max(
      24,
      ...bars.map((bar) => textWidth(bar.label, 11) + (panel.groups.some((group) => group.label !== undefined) ? 10 : 0)),
      ...panel.groups.map((group) => (group.label === undefined ? 0 : textWidth(group.label, 11))),
    ) + 8,
  );
  const values = bars
    .flatMap((bar) => [bar.value, bar.max ?? Number.NaN, (bar.segments ?? []).reduce((sum, part) => sum + Math.max(0, part), 0)])
    .filter((value) => Number.isFinite(value));
  const medians = bars.map((bar) => bar.value).filter((value) => Number.isFinite(value));
  const limit = panel.clip === undefined ? Number.POSITIVE_INFINITY : panel.clip * Math.max(0, ...medians, panel.reference ?? 0);
  const top = Math.min(limit, Math.max(0, ...values, panel.reference ?? 0));
  const valueWidth = Math.ceil(Math.max(20, ...bars.map((bar) => textWidth(bar.text ?? (Number.isFinite(bar.value) ? panel.format(bar.value) : '–'), 11))) + 8);
  const plotX = labelWidth;
  const plotWidth = Math.max(60, width - labelWidth - valueWidth);
  const ticks = niceTicks(top, plotWidth >= 300 ? 5 : 4);
  const domain = ticks[ticks.length - 1]!;
  const x = (value: number): number => plotX + (Math.min(domain, Math.max(0, value)) / domain) * plotWidth;
  const plotTop = y;
  const rows: string[] = [];
  for (const [index, group] of panel.groups.entries()) {
    if (index > 0) y += GROUP_GAP;
    const indent = group.label === undefined ? 0 : 10;
    if (group.label !== undefined) {
      rows.push(text(0, y + 11, group.label, `font-size="11" font-weight="600" fill="${TEXT}"`));
      y += BAR_HEIGHT + ROW_GAP;
    }
    for (const bar of group.bars) {
      const middle = y + BAR_HEIGHT / 2;
      rows.push(text(indent, middle + 4, bar.label, `font-size="11" fill="${TEXT}"`));
      const color = lighten(colorFor(bar.key), Math.min(0.9, Math.max(0, bar.shade ?? 0)));
      let end = plotX;
      if (Number.isFinite(bar.value)) {
        const parts = bar.segments !== undefined && bar.segments.every((part) => Number.isFinite(part)) ? bar.segments : [bar.value];
        let from = 0;
        for (const [part, amount] of parts.entries()) {
          const fill = lighten(color, SEGMENT_SHADES[Math.min(part, SEGMENT_SHADES.length - 1)]!);
          const left = x(from);
          const right = x(from + amount);
          if (right - left > 0.01) rows.push(`<rect x="${n(left)}" y="${n(y)}" width="${n(right - left)}" height="${BAR_HEIGHT}" fill="${fill}" stroke="${color}" stroke-width="0.6"/>`);
          from += Math.max(0, amount);
        }
        end = x(Math.max(from, bar.value));
        if (bar.min !== undefined && bar.max !== undefined && Number.isFinite(bar.min) && Number.isFinite(bar.max) && bar.max > bar.min) {
          const [left, right] = [x(bar.min), x(bar.max)];
          // Cut at the axis' end: an arrowhead instead of the cap.
          const tip = bar.max > domain ? `M${n(right - 5)} ${n(middle - 4)}L${n(right)} ${n(middle)}L${n(right - 5)} ${n(middle + 4)}` : `M${n(right)} ${n(middle - 4)}V${n(middle + 4)}`;
          rows.push(`<path d="M${n(left)} ${n(middle)}H${n(right)}M${n(left)} ${n(middle - 4)}V${n(middle + 4)}${tip}" stroke="${TEXT}" stroke-width="1.2" fill="none"/>`);
          end = Math.max(end, right);
        }
      }
      const label = bar.text ?? (Number.isFinite(bar.value) ? panel.format(bar.value) : '–');
      rows.push(text(end + 4, middle + 4, label, `font-size="11" fill="${TEXT}"`));
      y += BAR_HEIGHT + ROW_GAP;
    }
  }
  const plotBottom = y - ROW_GAP + 4;
  // Grid and axis first, so the bars are drawn over them.
  for (const value of ticks) {
    const at = x(value);
    out.push(`<path d="M${n(at)} ${n(plotTop - 2)}V${n(plotBottom)}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(text(at, plotBottom + 13, tick(value), `font-size="10" fill="${MUTED}" text-anchor="middle"`));
  }
  out.push(`<path d="M${n(plotX)} ${n(plotTop - 2)}V${n(plotBottom)}H${n(plotX + plotWidth)}" stroke="${AXIS}" stroke-width="1" fill="none"/>`);
  out.push(...rows);
  // Over the bars, so a bar that ends near it does not hide it.
  if (panel.reference !== undefined && panel.reference <= domain) {
    const at = x(panel.reference);
    out.push(`<path d="M${n(at)} ${n(plotTop - 2)}V${n(plotBottom)}" stroke="${TEXT}" stroke-width="1" stroke-dasharray="4 3"/>`);
  }
  return { svg: out.join('\n'), height: plotBottom + 18 };
}

/** A figure of panels, `columns` per row, as a standalone SVG document (ends with a newline). */
export function renderFigure(figure: Figure): string {
  const body: string[] = [];
  let y = MARGIN;
  body.push(text(MARGIN, y + 15, figure.title, `font-size="16" font-weight="600" fill="${TEXT}"`));
  y += 22;
  if (figure.subtitle !== undefined) {
    body.push(text(MARGIN, y + 12, figure.subtitle, `font-size="11.5" fill="${MUTED}"`));
    y += 18;
  }
  if (figure.segments !== undefined && figure.segments.length > 0) {
    let x = MARGIN;
    for (const [index, label] of figure.segments.entries()) {
      const fill = lighten(MUTED, SEGMENT_SHADES[Math.min(index, SEGMENT_SHADES.length - 1)]!);
      body.push(`<rect x="${n(x)}" y="${n(y + 3)}" width="12" height="10" fill="${fill}" stroke="${MUTED}" stroke-width="0.6"/>`);
      body.push(text(x + 16, y + 12, label, `font-size="11" fill="${TEXT}"`));
      x += 16 + textWidth(label, 11) + 18;
    }
    y += 18;
  }
  y += 8;
  const columns = Math.max(1, Math.floor(figure.columns));
  const panelWidth = (WIDTH - 2 * MARGIN - (columns - 1) * GUTTER) / columns;
  for (let start = 0; start < figure.panels.length; start += columns) {
    const row = figure.panels.slice(start, start + columns).map((panel) => renderPanel(panel, panelWidth));
    for (const [index, panel] of row.entries()) {
      body.push(`<g transform="translate(${n(MARGIN + index * (panelWidth + GUTTER))} ${n(y)})">\n${panel.svg}\n</g>`);
    }
    y += Math.max(...row.map((panel) => panel.height)) + 16;
  }
  if (figure.footnote !== undefined) {
    body.push(text(MARGIN, y + 8, figure.footnote, `font-size="10" fill="${MUTED}"`));
    y += 14;
  }
  const height = Math.ceil(y + MARGIN - 4);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="${escapeXml(FONT)}" role="img">`,
    `<title>${escapeXml(figure.title)}</title>`,
    `<rect x="0.5" y="0.5" width="${WIDTH - 1}" height="${height - 1}" rx="6" fill="#ffffff" stroke="${GRID}"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
