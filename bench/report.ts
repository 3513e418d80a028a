/**
 * Writes the results part of BENCHMARKS.md from bench/results/latest-{e2e,memory,micro}.json: the
 * machine, the end-to-end tables, the idle-connection table, the micro-benchmark ratios and every
 * target. Only the text between `<!-- results:start -->` and `<!-- results:end -->` is replaced; the
 * prose around it is kept.
 *
 * It also draws the side-by-side figures as SVG charts (bench/charts.ts) into bench/charts/, which the
 * generated block embeds: end-to-end throughput, latency, rfc6455 ÷ each other server and (when
 * recorded) messages per server CPU-second, idle memory (split into the node:net floor and the
 * server's own bytes when recorded) and handshakes/s, the masking micro-benchmark, and, when their latest
 * results exist, the deflate, client and HTTP/2 sections (whose tables are written by hand from
 * `bench/<section>.ts --markdown`). Same JSON, same bytes; a chart whose results are gone is removed.
 *
 *   npm run bench && node --import tsx bench/report.ts
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compact, renderFigure, type Bar, type BarGroup, type Figure, type Panel } from './charts.ts';
import type { ClientResults } from './client.ts';
import type { DeflateResults } from './deflate.ts';
import type { E2eResults, ScenarioSummary } from './e2e.ts';
import { formatBytes, formatMb, formatMicros, formatRate, markdownTable } from './format.ts';
import type { GroupResult } from './harness.ts';
import type { Http2Results } from './http2.ts';
import type { MemoryResults } from './memory.ts';
import type { MicroResults, TargetResult } from './micro.bench.ts';
import { SERVER_LABELS } from './servers/control.ts';

export interface ResultFile<T> {
  readonly section: string;
  readonly date: string;
  readonly seconds: number;
  readonly environment: Record<string, unknown>;
  readonly results: T;
}

const here = dirname(fileURLToPath(import.meta.url));
const START = '<!-- results:start -->';
const END = '<!-- results:end -->';

function load<T>(section: string): ResultFile<T> | null {
  const path = join(here, 'results', `latest-${section}.json`);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as ResultFile<T>) : null;
}

function ratio(stats: { median: number; min: number; max: number } | undefined): string {
  if (stats === undefined || !Number.isFinite(stats.median)) return '–';
  const bound = (value: number): string => (Number.isFinite(value) ? value.toFixed(2) : '?');
  return `**${stats.median.toFixed(2)}×** (${bound(stats.min)}–${bound(stats.max)})`;
}

/** Two decimals, or – for a missing figure (NaN is written to JSON as null). */
function fixed2(value: number | null | undefined): string {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(2) : '–';
}

/** A CPU fraction as a percentage, or –. */
function percent(value: number | null | undefined): string {
  return typeof value === 'number' && Number.isFinite(value) ? `${(100 * value).toFixed(0)} %` : '–';
}

function machine(file: ResultFile<unknown>): string {
  const env = file.environment;
  const load = (env['loadAverage'] as number[] | undefined)?.join(' / ') ?? '?';
  return `${file.section}: ${file.date.slice(0, 16).replace('T', ' ')} UTC, ${env['mode']} mode, ${(file.seconds / 60).toFixed(1)} min; ${env['cpu']} ×${env['cpus']}, ${env['platform']}-${env['arch']}, Node ${env['node']}; load average (1/5/15 min) at start ${load}`;
}

function e2eSection(file: ResultFile<E2eResults>): string {
  const results = file.results;
  const servers = Object.keys(SERVER_LABELS).filter((server) => results.scenarios[0]?.servers.some((row) => row.server === server));
  const out: string[] = [];
  const { rounds, warmupMs, durationMs, workers } = results.options;
  const source = results.source ?? { commit: null, srcModified: null };
  out.push(
    `rfc6455 at commit ${source.commit ?? '?'}${source.srcModified === true ? ' (with uncommitted changes in src/)' : ''}. ` +
      `${rounds} rounds; in each, every server in turn (order rotated), every scenario, ${warmupMs} ms warm-up then ${durationMs} ms measured; ` +
      `${workers} load-generator worker thread. Load average at start ${results.loadAverage.start.join(' / ')}, at end ${results.loadAverage.end.join(' / ')}. ` +
      `Servers: ${Object.entries(results.serverInfo)
        .map(([server, info]) => `${SERVER_LABELS[server as keyof typeof SERVER_LABELS]} = ${info?.['library'] ?? '?'}${info?.['bufferutil'] === true ? ' (native bufferutil loaded)' : info?.['bufferutil'] === false ? ' (JavaScript masking)' : ''}, run as ${info?.['runtime'] ?? '?'}`)
        .join('; ')}.`,
  );
  out.push('');
  out.push('### Summary: medians, and rfc6455 ÷ the others (median of per-round ratios, min–max)');
  out.push('');
  const header = ['scenario', 'metric', ...servers.map((server) => SERVER_LABELS[server as keyof typeof SERVER_LABELS])];
  const others = servers.filter((server) => server !== 'rfc6455');
  header.push(...others.map((server) => `rfc6455 ÷ ${SERVER_LABELS[server as keyof typeof SERVER_LABELS]}`));
  const rows: string[][] = [];
  for (const summary of results.scenarios) {
    const title = summary.scenario.title;
    const cell = (metric: string, value: (row: ScenarioSummary['servers'][number]) => string, pick: (r: ScenarioSummary['ratios'][number]) => { median: number; min: number; max: number }): string[] => [
      title,
      metric,
      ...servers.map((server) => {
        const row = summary.servers.find((candidate) => candidate.server === server);
        return row === undefined ? '–' : value(row);
      }),
      ...others.map((server) => {
        const found = summary.ratios.find((candidate) => candidate.denominator === server);
        return found === undefined ? '–' : ratio(pick(found));
      }),
    ];
    if (summary.scenario.focus === 'latency') {
      rows.push(cell('p99', (row) => formatMicros(row.p99Us.median), (r) => r.p99));
      rows.push(cell('p50', (row) => formatMicros(row.p50Us.median), (r) => r.p50));
    } else if (summary.scenario.focus === 'bytes') {
      rows.push(cell('MB/s', (row) => formatMb(row.mbPerSec.median), (r) => r.throughput));
    } else {
      rows.push(cell('msgs/s', (row) => formatRate(row.messagesPerSec.median), (r) => r.throughput));
    }
  }
  out.push(markdownTable(header, rows));
  out.push('');
  out.push('### Every scenario');
  out.push('');
  out.push(
    'worst: the slowest single round trip of all rounds (a stall shows here); srv ELU: event-loop utilization of the server (1.00 = never waiting for I/O); srv CPU: server process CPU time ÷ wall time (all threads); gen ELU: the load generator worker. "Saturated" names the side(s) at ELU ≥ 0.9.',
  );
  // Columns that only newer results have (messages per server CPU-second, the generator's CPU).
  const perCpu = (row: object): LooseStats | undefined => findStats(row, /^messagesPerServerCpuSecond$/);
  const genCpu = (row: object): LooseStats | undefined => findStats(row, /^clientCpu$/);
  const worst = (row: object): LooseStats | undefined => findStats(row, /^maxUs$/);
  const allRows = results.scenarios.flatMap((summary) => summary.servers);
  const withWorst = allRows.some((row) => worst(row) !== undefined);
  const withPerCpu = allRows.some((row) => perCpu(row) !== undefined);
  const withGenCpu = allRows.some((row) => genCpu(row) !== undefined);
  for (const summary of results.scenarios) {
    out.push('');
    out.push(`**${summary.scenario.title}** (binary messages)`);
    out.push('');
    out.push(
      markdownTable(
        [
          'server',
          'msgs/s',
          'min–max',
          'MB/s',
          'min–max',
          'p50',
          'p99',
          'p99 min–max',
          ...(withWorst ? ['worst'] : []),
          'srv ELU',
          'srv CPU',
          ...(withPerCpu ? ['msgs / srv CPU-s'] : []),
          'gen ELU',
          ...(withGenCpu ? ['gen CPU'] : []),
          'saturated',
        ],
        summary.servers.map((row) => [
          row.label,
          formatRate(row.messagesPerSec.median),
          `${formatRate(row.messagesPerSec.min)}–${formatRate(row.messagesPerSec.max)}`,
          formatMb(row.mbPerSec.median),
          `${formatMb(row.mbPerSec.min)}–${formatMb(row.mbPerSec.max)}`,
          formatMicros(row.p50Us.median),
          formatMicros(row.p99Us.median),
          `${formatMicros(row.p99Us.min)}–${formatMicros(row.p99Us.max)}`,
          ...(withWorst ? [formatMicros(worst(row)?.max ?? Number.NaN)] : []),
          fixed2(row.serverElu.median),
          percent(row.serverCpu.median),
          ...(withPerCpu ? [rate(perCpu(row)?.median ?? Number.NaN)] : []),
          fixed2(row.clientElu.median),
          ...(withGenCpu ? [percent(genCpu(row)?.median)] : []),
          row.limit,
        ]),
      ),
    );
  }
  return out.join('\n');
}

function memorySection(file: ResultFile<MemoryResults>): string {
  const results = file.results;
  const out: string[] = [];
  const source = results.source ?? { commit: null, srcModified: null };
  out.push(
    `rfc6455 at commit ${source.commit ?? '?'}${source.srcModified === true ? ' (with uncommitted changes in src/)' : ''}. ` +
      `${results.options.rounds} round(s), a fresh server process per measurement; RSS and V8 heap after a full GC, minus the baseline before connecting, ÷ connections. ` +
      `Open-file limit ${results.openFileLimit ?? '?'}. Load average at start ${results.loadAverage.start.join(' / ')}.`,
  );
  out.push('');
  // Newer results split RSS per connection into the node:net floor and the server's own bytes above it.
  const own = (row: object): LooseStats | undefined => findStats(row, /^ownBytesPerConnection$/);
  const withOwn = results.summaries.some((row) => own(row) !== undefined);
  out.push(
    markdownTable(
      ['server', 'connections', 'RSS / connection', 'min–max', ...(withOwn ? ['own bytes above the floor'] : []), 'V8 heap / connection', 'handshakes/s'],
      results.summaries.map((row) => [
        row.label,
        row.connections.toLocaleString('en-US'),
        formatBytes(row.rssPerConnection.median),
        `${formatBytes(row.rssPerConnection.min)}–${formatBytes(row.rssPerConnection.max)}`,
        ...(withOwn ? [formatBytes(own(row)?.median ?? Number.NaN)] : []),
        formatBytes(row.heapPerConnection.median),
        formatRate(row.handshakesPerSec.median),
      ]),
    ),
  );
  out.push('');
  for (const row of results.ratios ?? []) {
    const ownRatio = findStats(row, /^ownBytesPerConnection$/);
    out.push(
      `- ${row.connections.toLocaleString('en-US')} connections: rfc6455 ÷ ws RSS per connection **${fixed2(row.rssPerConnection)}×**` +
        (ownRatio === undefined ? '' : `, own bytes above the floor ${ratio(ownRatio)}`) +
        `, handshakes/s ${fixed2(row.handshakesPerSec)}×`,
    );
  }
  for (const skipped of results.skipped ?? []) out.push(`- skipped: ${skipped}`);
  return out.join('\n');
}

function microSection(file: ResultFile<MicroResults>): string {
  const groups: readonly GroupResult[] = file.results.groups;
  const rows: string[][] = [];
  for (const group of groups) {
    for (const r of group.ratios) rows.push([group.group, `${r.numerator} ÷ ${r.denominator}`, ratio(r.ratio)]);
  }
  return markdownTable(['group', 'ratio (ops/s)', 'median (min–max)'], rows);
}

function targetRows(
  e2e: ResultFile<E2eResults> | null,
  memory: ResultFile<MemoryResults> | null,
  micro: ResultFile<MicroResults> | null,
): string {
  const rows: string[][] = [];
  for (const t of e2e?.results.targets ?? []) rows.push([t.pass ? 'PASS' : '**MISS**', t.target, `${fixed2(t.measured)}×`]);
  for (const t of memory?.results.targets ?? []) rows.push([t.pass ? 'PASS' : '**MISS**', t.target, `${fixed2(t.measured)}×`]);
  const microTargets: readonly TargetResult[] = micro?.results.targets ?? [];
  for (const t of microTargets) if (Number.isFinite(t.measured)) rows.push([t.pass ? 'PASS' : '**MISS**', `micro: ${t.target}`, `${t.measured.toFixed(2)}×`]);
  const table = markdownTable(['', 'target', 'measured'], rows);
  // Newer e2e results name the targets they could not evaluate (a server or a scenario not run).
  const notEvaluated = (e2e?.results as { targetsNotEvaluated?: unknown } | undefined)?.targetsNotEvaluated;
  const missing = Array.isArray(notEvaluated) ? notEvaluated.filter((item): item is string => typeof item === 'string') : [];
  return missing.length === 0 ? table : `${table}\n\nNot evaluated (not run): ${missing.join('; ')}.`;
}

// ------------------------------------------------------------------------------------------ charts

/** Where the charts go, and how BENCHMARKS.md (at the repository root) links them. */
const CHART_DIR = join(here, 'charts');
const CHART_LINK = 'bench/charts';

export interface Chart {
  /** File name in bench/charts/. */
  readonly name: string;
  /** The image's alt text. */
  readonly alt: string;
  readonly figure: Figure;
}

/** A number from JSON, where NaN was written as null; anything else is NaN. */
function num(value: unknown): number {
  return typeof value === 'number' ? value : Number.NaN;
}

interface LooseStats {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** A `Stats` from JSON (or a plain number, as a median alone), null or missing fields as NaN. */
function looseStats(value: unknown): LooseStats | undefined {
  if (typeof value === 'number') return { median: value, min: Number.NaN, max: Number.NaN };
  if (value === null || typeof value !== 'object') return undefined;
  const record = value as Record<string, unknown>;
  if (!('median' in record)) return undefined;
  return { median: num(record['median']), min: num(record['min']), max: num(record['max']) };
}

/** The first field of `row` whose name matches `pattern` and holds a number or a `Stats`. */
function findStats(row: object, pattern: RegExp): LooseStats | undefined {
  for (const [key, value] of Object.entries(row)) {
    if (!pattern.test(key)) continue;
    const found = looseStats(value);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A bar of a median with its min–max, all divided by `unit` (1024: bytes shown in KiB). */
function bar(label: string, key: string, value: LooseStats | undefined, extra: Partial<Bar> = {}, unit = 1): Bar {
  return {
    label,
    key,
    value: (value?.median ?? Number.NaN) / unit,
    min: (value?.min ?? Number.NaN) / unit,
    max: (value?.max ?? Number.NaN) / unit,
    ...extra,
  };
}

/** `echo 16 B × 64 connections × 16 in flight` → `echo 16 B × 64 conn × 16 in flight`. */
function shortScenario(title: string): string {
  return title.replace(/ connections?\b/, ' conn').replace(/ WebSockets?\b/, ' WS');
}

function labelOf(server: string, label: unknown): string {
  return typeof label === 'string' ? label : ((SERVER_LABELS as Readonly<Record<string, string>>)[server] ?? server);
}

/** Servers in SERVER_LABELS order, then any other the results name, in their order. */
function serverOrder(names: readonly string[]): string[] {
  const known = Object.keys(SERVER_LABELS).filter((server) => names.includes(server));
  return [...known, ...names.filter((server, index) => !known.includes(server) && names.indexOf(server) === index)];
}

const rate = (value: number): string => (Number.isFinite(value) ? formatRate(value) : '–');
const mb = (value: number): string => (Number.isFinite(value) ? `${formatMb(value)} MB/s` : '–');
/** A value already in KiB. */
const kib = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(value >= 100 ? 0 : 1)} KiB` : '–');
const micros = (value: number): string => formatMicros(value);
const tickMicros = (value: number): string => (value >= 1000 ? `${compact(value / 1000)} ms` : `${compact(value)} µs`);

function footnote(file: ResultFile<unknown>, source: { readonly commit: string | null } | undefined): string {
  const env = file.environment;
  return (
    `bench/results/latest-${file.section}.json: ${file.date.slice(0, 16).replace('T', ' ')} UTC, ${String(env['mode'])} mode, ` +
    `${String(env['cpu'])} ×${String(env['cpus'])}, Node ${String(env['node'])}${source?.commit ? `, rfc6455 at ${source.commit}` : ''}`
  );
}

export function e2eCharts(file: ResultFile<E2eResults>): Chart[] {
  const results = file.results;
  const rounds = results.options?.rounds;
  const of = `median of ${rounds ?? '?'} round${rounds === 1 ? '' : 's'}, whiskers min–max`;
  const note = footnote(file, results.source);
  const scenarios = results.scenarios ?? [];
  const rowsOf = (summary: ScenarioSummary): ScenarioSummary['servers'][number][] => {
    const order = serverOrder(summary.servers.map((row) => row.server));
    return order.map((server) => summary.servers.find((row) => row.server === server)!);
  };
  const charts: Chart[] = [];
  const throughput = scenarios.filter((summary) => summary.scenario.focus !== 'latency');
  if (throughput.length > 0) {
    charts.push({
      name: 'e2e-throughput.svg',
      alt: 'End-to-end echo throughput of every server, per scenario',
      figure: {
        title: 'End-to-end echo: throughput per server (higher is better)',
        subtitle: `Binary messages over loopback, each server in its own process; ${of}.`,
        columns: 2,
        panels: throughput.map((summary): Panel => {
          const bytes = summary.scenario.focus === 'bytes';
          return {
            title: shortScenario(summary.scenario.title),
            unit: bytes ? 'MB/s of payload echoed (10^6 B/s)' : 'messages echoed per second',
            format: bytes ? mb : rate,
            tick: compact,
            groups: [{ bars: rowsOf(summary).map((row) => bar(labelOf(row.server, row.label), row.server, looseStats(bytes ? row.mbPerSec : row.messagesPerSec))) }],
          };
        }),
        footnote: note,
      },
    });
  }
  const latency = scenarios.filter((summary) => summary.scenario.focus === 'latency');
  if (latency.length > 0) {
    charts.push({
      name: 'e2e-latency.svg',
      alt: 'Round-trip latency at one connection and one message in flight, p99 and p50, per server',
      figure: {
        title: 'End-to-end echo: round-trip latency (lower is better)',
        subtitle: `One message in flight on one connection; ${of} (each round's percentile).`,
        columns: 2,
        panels: latency.flatMap((summary): Panel[] =>
          (['p99Us', 'p50Us'] as const).map((field) => ({
            title: `${field === 'p99Us' ? 'p99' : 'p50'}: ${shortScenario(summary.scenario.title)}`,
            unit: 'round trip, µs',
            format: micros,
            tick: tickMicros,
            groups: [{ bars: rowsOf(summary).map((row) => bar(labelOf(row.server, row.label), row.server, looseStats(row[field]))) }],
          })),
        ),
        footnote: note,
      },
    });
  }
  // rfc6455 ÷ each other server, per scenario: the median of the per-round ratios with their min–max,
  // against a dashed line at 1 (throughput: above is better; latency p99: below is better).
  const denominators = serverOrder([...new Set(scenarios.flatMap((summary) => (summary.ratios ?? []).map((ratio) => ratio.denominator)))]);
  if (denominators.length > 0) {
    charts.push({
      name: 'e2e-ratios.svg',
      alt: 'rfc6455 divided by each other server, per scenario',
      figure: {
        title: 'End-to-end echo: rfc6455 ÷ each other server',
        subtitle: 'Median of the per-round ratios, whiskers min–max; dashed line: level. Throughput: above 1 is rfc6455 ahead; p99 latency: below 1 is.',
        columns: 2,
        panels: denominators.map(
          (denominator): Panel => ({
            title: `rfc6455 ÷ ${labelOf(denominator, undefined)}`,
            unit: 'ratio (×)',
            format: (value) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '–'),
            tick: (value) => `${compact(value)}×`,
            reference: 1,
            clip: 2.5,
            groups: [
              {
                bars: scenarios.map((summary) => {
                  const found = (summary.ratios ?? []).find((candidate) => candidate.denominator === denominator);
                  const latency = summary.scenario.focus === 'latency';
                  const label = `${shortScenario(summary.scenario.title).replace(/ in flight$/, '')}${latency ? ', p99' : ''}`;
                  return bar(label, latency ? 'tcp' : 'rfc6455', looseStats(latency ? found?.p99 : found?.throughput));
                }),
              },
            ],
          }),
        ),
        footnote: note,
      },
    });
  }
  // Messages per second of server CPU time, when the results record it (any field named like
  // `messagesPerServerCpuSecond`): how much work a server does per message, whoever the limit was.
  const perCpu = /per(Server)?CpuSecond$/i;
  const cpuPanels = throughput
    .filter((summary) => summary.servers.some((row) => findStats(row, perCpu) !== undefined))
    .map(
      (summary): Panel => ({
        title: shortScenario(summary.scenario.title),
        unit: 'messages echoed per second of server CPU time',
        format: rate,
        tick: compact,
        groups: [{ bars: rowsOf(summary).map((row) => bar(labelOf(row.server, row.label), row.server, findStats(row, perCpu))) }],
      }),
    );
  if (cpuPanels.length > 0) {
    charts.push({
      name: 'e2e-cpu.svg',
      alt: 'Messages echoed per second of server CPU time, per server and scenario',
      figure: {
        title: 'End-to-end echo: messages per server CPU-second (higher is better)',
        subtitle: `The server process's CPU time (all its threads) over the measured window; ${of}.`,
        columns: 2,
        panels: cpuPanels,
        footnote: note,
      },
    });
  }
  return charts;
}

export function memoryCharts(file: ResultFile<MemoryResults>): Chart[] {
  const results = file.results;
  const summaries = results.summaries ?? [];
  const counts = [...new Set(summaries.map((row) => row.connections))];
  if (counts.length === 0) return [];
  const rounds = results.options?.rounds;
  const rowsAt = (count: number): MemoryResults['summaries'][number][] => {
    const mine = summaries.filter((row) => row.connections === count);
    return serverOrder(mine.map((row) => row.server)).map((server) => mine.find((row) => row.server === server)!);
  };
  // The split of RSS per connection into the floor (a bare node:net server's idle socket, the
  // results' `floor` server) and the server's own bytes above it, when the results have it.
  const floorKind = typeof (results as { floor?: unknown }).floor === 'string' ? (results as { floor?: string }).floor : undefined;
  const split = (row: MemoryResults['summaries'][number]): [number, number] | undefined => {
    if (floorKind === undefined) return undefined;
    if (row.server === floorKind) return Number.isFinite(row.rssPerConnection.median) ? [row.rssPerConnection.median, 0] : undefined;
    const floor = summaries.find((other) => other.server === floorKind && other.connections === row.connections)?.rssPerConnection.median;
    const own = findStats(row, /^ownBytesPerConnection$/)?.median;
    return floor !== undefined && own !== undefined && Number.isFinite(floor) && Number.isFinite(own) ? [floor, own] : undefined;
  };
  const withSplit = summaries.some((row) => split(row) !== undefined);
  const panels: Panel[] = [
    ...counts.map(
      (count): Panel => ({
        title: `RSS per idle connection, ${count.toLocaleString('en-US')} connections`,
        unit: `KiB (lower is better), median of ${rounds ?? '?'}, whiskers min–max`,
        format: kib,
        tick: compact,
        groups: [
          {
            bars: rowsAt(count).map((row) => {
              const parts = split(row);
              const note = row.server === floorKind ? ' (the floor)' : withSplit && parts === undefined ? ' (RSS only)' : '';
              const label = `${labelOf(row.server, row.label)}${note}`;
              return bar(label, row.server, looseStats(row.rssPerConnection), parts === undefined ? {} : { segments: parts.map((part) => part / 1024) }, 1024);
            }),
          },
        ],
      }),
    ),
    ...counts.map(
      (count): Panel => ({
        title: `Handshakes per second, ${count.toLocaleString('en-US')} connections`,
        unit: `opening handshakes/s, 128 at a time (higher is better), median of ${rounds ?? '?'}`,
        format: rate,
        tick: compact,
        groups: [
          {
            bars: rowsAt(count).map((row) =>
              bar(`${labelOf(row.server, row.label)}${row.server === floorKind ? ' (TCP connects)' : ''}`, row.server, looseStats(row.handshakesPerSec)),
            ),
          },
        ],
      }),
    ),
  ];
  return [
    {
      name: 'memory.svg',
      alt: 'RSS per idle connection and handshakes per second, per server',
      figure: {
        title: 'Idle connections: memory per connection and handshakes/s',
        subtitle: 'RSS after a full GC minus the baseline before connecting, ÷ connections; a fresh server process per measurement.',
        columns: counts.length >= 2 ? 2 : 1,
        panels,
        ...(withSplit ? { segments: ['floor (what any server on net.Socket pays)', "the server's own bytes"] } : {}),
        footnote: footnote(file, results.source),
      },
    },
  ];
}

/** The cases of the mask micro-benchmark, by size: MB/s of each implementation. */
export function microCharts(file: ResultFile<MicroResults>): Chart[] {
  const groups = (file.results.groups ?? []).filter((group) => group.group.startsWith('mask '));
  if (groups.length === 0) return [];
  const keyOf = (name: string): string =>
    name.startsWith('rfc6455') ? 'rfc6455' : /native/.test(name) ? 'bufferutil' : /^ws/.test(name) ? 'ws JS' : name.startsWith('byte loop') ? 'byte loop' : name;
  const gb = (value: number): string => (Number.isFinite(value) ? `${(value / 1000).toFixed(value >= 10_000 ? 1 : 2)} GB/s` : '–');
  return [
    {
      name: 'micro-mask.svg',
      alt: 'Masking throughput per implementation, per payload size',
      figure: {
        title: 'Micro-benchmark: unmasking a payload in place (higher is better)',
        subtitle: `GB/s (10^9 B/s), median of ${file.results.harness?.samples ?? '?'} interleaved samples, whiskers min–max; one process, one core.`,
        columns: 2,
        panels: groups.map(
          (group): Panel => ({
            title: group.group,
            unit: 'GB/s',
            format: gb,
            tick: (value) => compact(value / 1000),
            groups: [
              {
                bars: group.results.map((result) => {
                  // Several cases of one key (rfc6455 as shipped, at an odd offset, each engine alone): lighter and lighter.
                  const same = group.results.filter((other) => keyOf(other.name) === keyOf(result.name));
                  const shade = Math.min(0.75, 0.22 * same.indexOf(result));
                  // `ws JS fallback (bufferutil/fallback.js)` → `ws JS fallback`: the plot keeps its width.
                  const label = result.name.replace(/ \([^)]*\/[^)]*\)/, '');
                  return bar(label, keyOf(result.name), looseStats(result.mbPerSec ?? undefined), shade > 0 ? { shade } : {});
                }),
              },
            ],
          }),
        ),
        footnote: footnote(file, undefined),
      },
    },
  ];
}

export function deflateCharts(file: ResultFile<DeflateResults>): Chart[] {
  const results = file.results;
  const panels: Panel[] = [];
  const idle = results.idle?.summaries ?? [];
  if (idle.length > 0) {
    panels.push({
      title: results.idle.title ?? 'idle after one message each way',
      unit: `RSS per connection, KiB (lower is better), median of ${results.options?.memoryRounds ?? '?'}`,
      format: kib,
      tick: compact,
      groups: [{ bars: idle.map((row) => bar(`${labelOf(row.server, row.label)}${row.deflate ? '' : ' (deflate off)'}`, row.server, looseStats(row.rssPerConnection), row.deflate ? {} : { shade: 0.5 }, 1024)) }],
    });
  }
  const echo = results.echo?.scenarios ?? [];
  for (const summary of echo) {
    panels.push({
      title: summary.scenario.title.replace(/^deflate /, '').replace(/ connections\b/, ' conn'),
      unit: 'messages echoed per second (higher is better)',
      format: rate,
      tick: compact,
      groups: [{ bars: summary.servers.map((row) => bar(labelOf(row.server, row.label), row.server, looseStats(row.messagesPerSec))) }],
    });
  }
  if (echo.length > 0) {
    panels.push({
      title: 'Server CPU per echoed message',
      unit: 'µs of server CPU time per message (lower is better)',
      format: micros,
      tick: tickMicros,
      groups: echo.map(
        (summary): BarGroup => ({
          label: summary.scenario.title.replace(/^deflate echo /, '').replace(/ × .*/, ''),
          bars: summary.servers.map((row) => bar(labelOf(row.server, row.label), row.server, looseStats(row.serverCpuUsPerMessage))),
        }),
      ),
    });
  }
  if (panels.length === 0) return [];
  return [
    {
      name: 'deflate.svg',
      alt: 'permessage-deflate: idle memory, echo throughput and server CPU per message, rfc6455 beside ws',
      figure: {
        title: 'permessage-deflate: rfc6455 beside ws',
        subtitle: `Medians with min–max whiskers; echo: ${results.options?.rounds ?? '?'} rounds, JSON-like text, deflate both ways.`,
        columns: 2,
        panels,
        footnote: footnote(file, results.source),
      },
    },
  ];
}

export function clientCharts(file: ResultFile<ClientResults>): Chart[] {
  const results = file.results;
  const scenarios = results.scenarios ?? [];
  if (scenarios.length === 0) return [];
  const panels = scenarios.map((summary): Panel => {
    const bytes = summary.scenario.size >= 16 * 1024;
    return {
      title: shortScenario(summary.scenario.title),
      unit: bytes ? 'MB/s of payload echoed (higher is better)' : 'messages echoed per second (higher is better)',
      format: bytes ? mb : rate,
      tick: compact,
      groups: [
        {
          bars: summary.clients
            .filter((row) => row.runs > 0)
            .map((row) => bar(row.label, row.client, looseStats(bytes ? row.mbPerSec : row.messagesPerSec), row.client === 'rfc6455-events' ? { shade: 0.4 } : {})),
        },
      ],
    };
  });
  return [
    {
      name: 'client.svg',
      alt: 'Client throughput against one rfc6455 server, per client and scenario',
      figure: {
        title: 'Clients against one rfc6455 echo server: throughput (higher is better)',
        subtitle: `Each client in its own process; median of ${results.options?.rounds ?? '?'} rounds, whiskers min–max.`,
        columns: 2,
        panels,
        footnote: footnote(file, results.source),
      },
    },
  ];
}

export function http2Charts(file: ResultFile<Http2Results>): Chart[] {
  const results = file.results;
  const charts: Chart[] = [];
  const echo = results.echo ?? [];
  const sizes = [...new Set(echo.map((summary) => summary.scenario.size))];
  if (sizes.length > 0) {
    charts.push({
      name: 'http2-echo.svg',
      alt: 'WebSockets over HTTP/2 beside HTTP/1.1: echo throughput per message size and number of WebSockets',
      figure: {
        title: 'HTTP/2 (N streams, 1 session) beside HTTP/1.1 (N TLS connections): echo',
        subtitle: `16 messages in flight per WebSocket, TLS on both; median of ${results.options?.rounds ?? '?'} rounds, whiskers min–max.`,
        columns: 2,
        panels: sizes.map((size): Panel => {
          const mine = echo.filter((summary) => summary.scenario.size === size);
          return {
            title: `${size >= 1024 ? `${size / 1024} KiB` : `${size} B`} messages`,
            unit: 'messages echoed per second (higher is better)',
            format: rate,
            tick: compact,
            groups: mine.map(
              (summary): BarGroup => ({
                label: `${summary.scenario.sockets} WebSocket${summary.scenario.sockets === 1 ? '' : 's'}`,
                bars: summary.transports.map((row) => bar(row.transport, row.transport, looseStats(row.messagesPerSec))),
              }),
            ),
          };
        }),
        footnote: footnote(file, results.source),
      },
    });
  }
  const handshakes = results.handshakes ?? [];
  if (handshakes.length > 0) {
    charts.push({
      name: 'http2-handshake.svg',
      alt: 'Time to open a WebSocket over HTTP/2 and HTTP/1.1, per mode',
      figure: {
        title: 'Opening a WebSocket: HTTP/2 extended CONNECT beside HTTP/1.1 upgrade (lower is better)',
        subtitle: 'p50 over every round pooled; whiskers: the lowest and highest per-round p50.',
        columns: 1,
        panels: handshakes.map(
          (summary): Panel => ({
            title: summary.scenario.title[0]!.toUpperCase() + summary.scenario.title.slice(1),
            unit: 'time to open, p50',
            format: micros,
            tick: tickMicros,
            groups: [
              {
                bars: summary.modes.map((row) => ({
                  label: row.label,
                  key: row.mode.startsWith('h2') ? 'h2' : 'h1',
                  value: num(row.p50Us),
                  min: num(row.roundP50Us?.min),
                  max: num(row.roundP50Us?.max),
                })),
              },
            ],
          }),
        ),
        footnote: footnote(file, results.source),
      },
    });
  }
  return charts;
}

/** Markdown image lines for some charts. */
function images(charts: readonly Chart[]): string {
  return charts.map((chart) => `![${chart.alt}](${CHART_LINK}/${chart.name})`).join('\n\n');
}

/** Writes the charts to bench/charts/ (only those that changed) and removes the SVGs no longer drawn. */
function writeCharts(charts: readonly Chart[]): void {
  mkdirSync(CHART_DIR, { recursive: true });
  const names = new Set(charts.map((chart) => chart.name));
  for (const chart of charts) {
    const path = join(CHART_DIR, chart.name);
    const svg = renderFigure(chart.figure);
    if (!existsSync(path) || readFileSync(path, 'utf8') !== svg) writeFileSync(path, svg);
  }
  for (const name of readdirSync(CHART_DIR)) if (name.endsWith('.svg') && !names.has(name)) rmSync(join(CHART_DIR, name));
}

/** The generated block of BENCHMARKS.md, and the charts it embeds. */
export function renderResults(): { markdown: string; charts: Chart[] } {
  const e2e = load<E2eResults>('e2e');
  const memory = load<MemoryResults>('memory');
  const micro = load<MicroResults>('micro');
  const deflate = load<DeflateResults>('deflate');
  const client = load<ClientResults>('client');
  const http2 = load<Http2Results>('http2');
  const fanout = load<{ readonly markdown?: string }>('fanout');
  const e2eFigures = e2e === null ? [] : e2eCharts(e2e);
  const memoryFigures = memory === null ? [] : memoryCharts(memory);
  const microFigures = micro === null ? [] : microCharts(micro);
  const otherFigures = [
    ...(deflate === null ? [] : deflateCharts(deflate)),
    ...(client === null ? [] : clientCharts(client)),
    ...(http2 === null ? [] : http2Charts(http2)),
  ];
  const out: string[] = [START, '', '_Generated by `node --import tsx bench/report.ts` from `bench/results/latest-*.json`; do not edit by hand._', ''];
  out.push('### Runs');
  out.push('');
  for (const file of [e2e, memory, micro, deflate, client, http2, fanout]) if (file !== null) out.push(`- ${machine(file)}`);
  out.push('');
  out.push('### Targets');
  out.push('');
  out.push(targetRows(e2e, memory, micro));
  out.push('');
  if (e2e !== null) {
    out.push('## End-to-end echo');
    out.push('');
    if (e2eFigures.length > 0) out.push(images(e2eFigures), '');
    out.push(e2eSection(e2e));
    out.push('');
  }
  if (memory !== null) {
    out.push('## Idle connections');
    out.push('');
    if (memoryFigures.length > 0) out.push(images(memoryFigures), '');
    out.push(memorySection(memory));
    out.push('');
  }
  if (micro !== null) {
    out.push('## Protocol core (micro-benchmarks)');
    out.push('');
    if (microFigures.length > 0) out.push(images(microFigures), '');
    out.push(microSection(micro));
    out.push('');
  }
  if (fanout !== null && typeof fanout.results.markdown === 'string') {
    out.push('## Fan-out: topics');
    out.push('');
    out.push(fanout.results.markdown);
    out.push('');
  }
  if (otherFigures.length > 0) {
    out.push('## Charts of the deflate, client and HTTP/2 sections');
    out.push('');
    out.push('From their latest results; their tables and findings are in the sections below.');
    out.push('');
    out.push(images(otherFigures));
    out.push('');
  }
  out.push(END);
  return { markdown: out.join('\n'), charts: [...e2eFigures, ...memoryFigures, ...microFigures, ...otherFigures] };
}

function main(): void {
  const path = join(here, '..', 'BENCHMARKS.md');
  const { markdown, charts } = renderResults();
  const current = existsSync(path) ? readFileSync(path, 'utf8') : `# Benchmarks\n\n${START}\n${END}\n`;
  const start = current.indexOf(START);
  const end = current.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${path} has no ${START} … ${END} block`);
  writeCharts(charts);
  writeFileSync(path, current.slice(0, start) + markdown + current.slice(end + END.length));
  console.log(`updated ${path} and ${charts.length} chart(s) in ${CHART_DIR}`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
