/** Small formatting helpers shared by the end-to-end, memory and deflate sections. */
import type { Stats } from './harness.ts';

/** 1234 → `1.23 k`, 1234567 → `1.23 M`. */
export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return value.toFixed(1);
}

export function formatMb(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (value >= 1000) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Microseconds, shown in µs, ms or s. */
export function formatMicros(us: number): string {
  if (!Number.isFinite(us)) return '-';
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(us >= 1e4 ? 1 : 2)} ms`;
  return `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  const sign = bytes < 0 ? '-' : '';
  const value = Math.abs(bytes);
  if (value >= 1024 * 1024) return `${sign}${(value / (1024 * 1024)).toFixed(1)} MiB`;
  if (value >= 1024) return `${sign}${(value / 1024).toFixed(value >= 10 * 1024 ? 1 : 2)} KiB`;
  return `${sign}${value.toFixed(0)} B`;
}

export function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : '-';
}

/** The range of a `stats` result: `min–max`. */
export function spread(value: Stats, format: (value: number) => string): string {
  return `${format(value.min)}–${format(value.max)}`;
}

/** A ratio's median with its range: `1.23x (1.10–1.40)`, or `-`. */
export function ratioCell(value: Stats): string {
  return Number.isFinite(value.median) ? `${formatRatio(value.median)} (${value.min.toFixed(2)}–${value.max.toFixed(2)})` : '-';
}

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], indent = '  '): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (row: readonly string[]): string =>
    indent +
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A Markdown table (for BENCHMARKS.md). */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (row: readonly string[]): string => `| ${row.join(' | ')} |`;
  return [line(header), `|${header.map((_cell, column) => (column === 0 ? '---' : '---:')).join('|')}|`, ...rows.map(line)].join('\n');
}
