/**
 * Writes the results part of BENCHMARKS.md from bench/results/latest-{e2e,memory,micro}.json: the
 * machine, the end-to-end tables, the idle-connection table, the micro-benchmark ratios and every
 * target. Only the text between `<!-- results:start -->` and `<!-- results:end -->` is replaced; the
 * prose around it is kept.
 *
 *   npm run bench && node --import tsx bench/report.ts
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { E2eResults, ScenarioSummary } from './e2e.ts';
import { formatBytes, formatMb, formatMicros, formatRate, markdownTable } from './format.ts';
import type { GroupResult } from './harness.ts';
import type { MemoryResults } from './memory.ts';
import type { MicroResults, TargetResult } from './micro.bench.ts';
import { SERVER_LABELS } from './servers/control.ts';

interface ResultFile<T> {
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

function ratio(stats: { median: number; min: number; max: number }): string {
  return Number.isFinite(stats.median) ? `**${stats.median.toFixed(2)}×** (${stats.min.toFixed(2)}–${stats.max.toFixed(2)})` : '–';
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
    'srv ELU: event-loop utilization of the server (1.00 = never waiting for I/O); srv CPU: server process CPU time ÷ wall time (all threads); gen ELU: the load generator worker. "Saturated" names the side(s) at ELU ≥ 0.9.',
  );
  for (const summary of results.scenarios) {
    out.push('');
    out.push(`**${summary.scenario.title}** (binary messages)`);
    out.push('');
    out.push(
      markdownTable(
        ['server', 'msgs/s', 'min–max', 'MB/s', 'min–max', 'p50', 'p99', 'p99 min–max', 'srv ELU', 'srv CPU', 'gen ELU', 'saturated'],
        summary.servers.map((row) => [
          row.label,
          formatRate(row.messagesPerSec.median),
          `${formatRate(row.messagesPerSec.min)}–${formatRate(row.messagesPerSec.max)}`,
          formatMb(row.mbPerSec.median),
          `${formatMb(row.mbPerSec.min)}–${formatMb(row.mbPerSec.max)}`,
          formatMicros(row.p50Us.median),
          formatMicros(row.p99Us.median),
          `${formatMicros(row.p99Us.min)}–${formatMicros(row.p99Us.max)}`,
          row.serverElu.median.toFixed(2),
          `${(100 * row.serverCpu.median).toFixed(0)} %`,
          row.clientElu.median.toFixed(2),
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
  out.push(
    markdownTable(
      ['server', 'connections', 'RSS / connection', 'min–max', 'V8 heap / connection', 'handshakes/s'],
      results.summaries.map((row) => [
        row.label,
        row.connections.toLocaleString('en-US'),
        formatBytes(row.rssPerConnection.median),
        `${formatBytes(row.rssPerConnection.min)}–${formatBytes(row.rssPerConnection.max)}`,
        formatBytes(row.heapPerConnection.median),
        formatRate(row.handshakesPerSec.median),
      ]),
    ),
  );
  out.push('');
  for (const row of results.ratios) {
    out.push(
      `- ${row.connections.toLocaleString('en-US')} connections: rfc6455 ÷ ws RSS per connection **${row.rssPerConnection.toFixed(2)}×**, handshakes/s ${row.handshakesPerSec.toFixed(2)}×`,
    );
  }
  for (const skipped of results.skipped) out.push(`- skipped: ${skipped}`);
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
  for (const t of e2e?.results.targets ?? []) rows.push([t.pass ? 'PASS' : '**MISS**', t.target, `${t.measured.toFixed(2)}×`]);
  for (const t of memory?.results.targets ?? []) rows.push([t.pass ? 'PASS' : '**MISS**', t.target, `${t.measured.toFixed(2)}×`]);
  const microTargets: readonly TargetResult[] = micro?.results.targets ?? [];
  for (const t of microTargets) if (Number.isFinite(t.measured)) rows.push([t.pass ? 'PASS' : '**MISS**', `micro: ${t.target}`, `${t.measured.toFixed(2)}×`]);
  return markdownTable(['', 'target', 'measured'], rows);
}

export function renderResults(): string {
  const e2e = load<E2eResults>('e2e');
  const memory = load<MemoryResults>('memory');
  const micro = load<MicroResults>('micro');
  const out: string[] = [START, '', '_Generated by `node --import tsx bench/report.ts` from `bench/results/latest-*.json`; do not edit by hand._', ''];
  out.push('### Runs');
  out.push('');
  for (const file of [e2e, memory, micro]) if (file !== null) out.push(`- ${machine(file)}`);
  out.push('');
  out.push('### Targets');
  out.push('');
  out.push(targetRows(e2e, memory, micro));
  out.push('');
  if (e2e !== null) {
    out.push('## End-to-end echo');
    out.push('');
    out.push(e2eSection(e2e));
    out.push('');
  }
  if (memory !== null) {
    out.push('## Idle connections');
    out.push('');
    out.push(memorySection(memory));
    out.push('');
  }
  if (micro !== null) {
    out.push('## Protocol core (micro-benchmarks)');
    out.push('');
    out.push(microSection(micro));
    out.push('');
  }
  out.push(END);
  return out.join('\n');
}

function main(): void {
  const path = join(here, '..', 'BENCHMARKS.md');
  const rendered = renderResults();
  const current = existsSync(path) ? readFileSync(path, 'utf8') : `# Benchmarks\n\n${START}\n${END}\n`;
  const start = current.indexOf(START);
  const end = current.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${path} has no ${START} … ${END} block`);
  writeFileSync(path, current.slice(0, start) + rendered + current.slice(end + END.length));
  console.log(`updated ${path}`);
}

main();
