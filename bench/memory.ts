/**
 * Idle connections: what each open WebSocket costs a server in memory, and how fast it completes
 * opening handshakes, for rfc6455 and ws.
 *
 * Each measurement starts a fresh server process (bench/servers/), warms it up with 100 connections
 * that are then closed, takes a baseline after a full garbage collection, opens N connections through
 * the load generator (raw sockets, 128 handshakes in progress at a time, each 101 and
 * Sec-WebSocket-Accept checked), waits for things to settle, collects garbage again and reads the
 * server's RSS. Per connection = (RSS with N connections − baseline) / N; the V8 heap and `external`
 * (Buffers) are shown the same way. Kernel socket buffers are not in RSS and are not counted.
 * Handshakes/s = N / time from the first connect to the last 101.
 *
 * For an rfc6455 connection the figure includes what an idle handler holds: the echo handler of
 * `npm start` waiting in `for await`. ws's idle connection has no pending handler at all.
 *
 *   node --import tsx bench/memory.ts [--quick]
 *   BENCH_MEMORY_COUNTS=1000,10000 BENCH_MEMORY_ROUNDS=3
 */
import { pathToFileURL } from 'node:url';
import { stats, type Stats } from './harness.ts';
import { formatBytes, formatRate, formatRatio, formatTable } from './format.ts';
import { LoadSession, openFileLimit } from './loadgen.ts';
import { roundedLoad, type SectionRun } from './section.ts';
import { SERVER_LABELS, sourceRevision, startServer, type ServerHandle, type ServerKind } from './servers/control.ts';

export interface MemoryOptions {
  readonly counts: readonly number[];
  readonly rounds: number;
  readonly servers: readonly ServerKind[];
  /** Wait after the last handshake before measuring. */
  readonly settleMs: number;
}

export const QUICK_MEMORY: MemoryOptions = { counts: [1000, 10_000], rounds: 1, servers: ['rfc6455', 'ws'], settleMs: 300 };
export const FULL_MEMORY: MemoryOptions = { counts: [1000, 10_000], rounds: 3, servers: ['rfc6455', 'ws'], settleMs: 1000 };

export interface IdleRecord {
  readonly round: number;
  readonly server: ServerKind;
  readonly connections: number;
  readonly opened: number;
  readonly failed: number;
  readonly handshakesPerSec: number;
  readonly baselineRss: number;
  readonly rss: number;
  readonly rssPerConnection: number;
  readonly heapPerConnection: number;
  readonly externalPerConnection: number;
  readonly errors: readonly string[];
  readonly loadAverage1: number;
}

export interface IdleSummary {
  readonly server: ServerKind;
  readonly label: string;
  readonly connections: number;
  readonly runs: number;
  readonly rssPerConnection: Stats;
  readonly heapPerConnection: Stats;
  readonly externalPerConnection: Stats;
  readonly handshakesPerSec: Stats;
}

export interface MemoryTarget {
  readonly target: string;
  readonly measured: number;
  readonly required: number;
  readonly pass: boolean;
}

export interface MemoryResults {
  readonly options: MemoryOptions;
  /** The commit the rfc6455 server was built from, and whether src/ had uncommitted changes. */
  readonly source: { readonly commit: string | null; readonly srcModified: boolean | null };
  readonly openFileLimit: number | null;
  readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
  readonly runs: readonly IdleRecord[];
  readonly summaries: readonly IdleSummary[];
  /** rfc6455 / ws, median RSS per connection, by connection count. */
  readonly ratios: readonly { readonly connections: number; readonly rssPerConnection: number; readonly handshakesPerSec: number }[];
  readonly targets: readonly MemoryTarget[];
  readonly skipped: readonly string[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function measureIdle(kind: ServerKind, connections: number, round: number, options: MemoryOptions): Promise<IdleRecord> {
  let server: ServerHandle | null = null;
  let session: LoadSession | null = null;
  try {
    server = await startServer(kind);
    const warm = await LoadSession.open({ port: server.port, connections: 100, inFlight: 0, size: 0, warmupMs: 0, durationMs: 0 });
    await warm.close();
    await sleep(200);
    const baseline = await server.stats(true);
    session = await LoadSession.open({
      port: server.port,
      connections,
      inFlight: 0,
      size: 0,
      warmupMs: 0,
      durationMs: 0,
      connectConcurrency: 128,
      connectTimeoutMs: 30_000,
    });
    const report = session.report!;
    await sleep(options.settleMs);
    const loaded = await server.stats(true);
    const opened = report.opened;
    return {
      round,
      server: kind,
      connections,
      opened,
      failed: report.failed,
      handshakesPerSec: report.handshakesPerSec,
      baselineRss: baseline.rss,
      rss: loaded.rss,
      rssPerConnection: opened > 0 ? (loaded.rss - baseline.rss) / opened : Number.NaN,
      heapPerConnection: opened > 0 ? (loaded.heapUsed - baseline.heapUsed) / opened : Number.NaN,
      externalPerConnection: opened > 0 ? (loaded.external - baseline.external) / opened : Number.NaN,
      errors: report.failed > 0 ? [`${report.failed} handshakes failed: ${report.errors.join('; ')}`] : [],
      loadAverage1: roundedLoad()[0] ?? Number.NaN,
    };
  } finally {
    // The server goes first: its side of each connection closes first, and the TIME_WAIT states stay
    // on its (soon unused) port instead of taking the client's ephemeral ports.
    await server?.stop();
    await session?.close();
  }
}

function failedIdle(kind: ServerKind, connections: number, round: number, error: unknown): IdleRecord {
  const nan = Number.NaN;
  return {
    round,
    server: kind,
    connections,
    opened: 0,
    failed: connections,
    handshakesPerSec: nan,
    baselineRss: nan,
    rss: nan,
    rssPerConnection: nan,
    heapPerConnection: nan,
    externalPerConnection: nan,
    errors: [error instanceof Error ? error.message : String(error)],
    loadAverage1: roundedLoad()[0] ?? nan,
  };
}

function envList(name: string): number[] | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  return value.split(',').map((item) => {
    const number = Number(item.trim());
    if (!Number.isInteger(number) || number <= 0) throw new RangeError(`${name}: ${item} is not a positive integer`);
    return number;
  });
}

export function memoryOptionsFor(quick: boolean): MemoryOptions {
  const base = quick ? QUICK_MEMORY : FULL_MEMORY;
  const rounds = envList('BENCH_MEMORY_ROUNDS')?.[0];
  return { ...base, counts: envList('BENCH_MEMORY_COUNTS') ?? base.counts, rounds: rounds ?? base.rounds };
}

export function formatMemory(summaries: readonly IdleSummary[], ratios: MemoryResults['ratios']): string {
  const rows = summaries.map((row) => [
    row.label,
    row.connections.toLocaleString('en-US'),
    formatBytes(row.rssPerConnection.median),
    `${formatBytes(row.rssPerConnection.min)}–${formatBytes(row.rssPerConnection.max)}`,
    formatBytes(row.heapPerConnection.median),
    formatBytes(row.externalPerConnection.median),
    formatRate(row.handshakesPerSec.median),
  ]);
  const lines = [formatTable(['server', 'connections', 'RSS/conn', 'min–max', 'V8 heap/conn', 'external/conn', 'handshakes/s'], rows)];
  for (const ratio of ratios) {
    lines.push(
      `  rfc6455 / ws at ${ratio.connections.toLocaleString('en-US')}: RSS per connection ${formatRatio(ratio.rssPerConnection)}, handshakes/s ${formatRatio(ratio.handshakesPerSec)}`,
    );
  }
  return lines.join('\n');
}

export async function runMemory(run: SectionRun): Promise<{ results: MemoryResults; missedTargets: number }> {
  const options = memoryOptionsFor(run.quick);
  const filter = run.filter ?? [];
  const progress = run.progress ?? ((text: string) => process.stderr.write(`${text}\n`));
  const title = (count: number): string => `idle ${count} connections`;
  const limit = openFileLimit();
  const skipped: string[] = [];
  const counts = options.counts.filter((count) => {
    if (filter.length > 0 && !filter.some((prefix) => title(count).startsWith(prefix))) return false;
    if (limit !== null && limit < count + 200) {
      skipped.push(`${count} connections: ulimit -n is ${limit}; raise it to at least ${count + 200} (ulimit -n ${count + 1000})`);
      return false;
    }
    return true;
  });
  for (const reason of skipped) run.print(`skipped ${reason}`);
  const loadStart = roundedLoad();
  const source = sourceRevision();
  if (counts.length > 0) {
    run.print(
      `rfc6455 at ${source.commit ?? 'unknown commit'}${source.srcModified === true ? ' with uncommitted changes in src/' : ''}; ${options.rounds} round(s); a fresh server per measurement; open-file limit ${limit ?? 'unknown'}; load average at start ${loadStart.join(' ')}`,
    );
  }
  const runs: IdleRecord[] = [];
  for (let round = 0; round < options.rounds; round++) {
    for (const count of counts) {
      const order = options.servers.map((_server, index) => options.servers[(index + round) % options.servers.length]!);
      for (const kind of order) {
        let record: IdleRecord;
        try {
          record = await measureIdle(kind, count, round, options);
        } catch (error) {
          record = failedIdle(kind, count, round, error);
        }
        runs.push(record);
        progress(
          `  round ${round + 1}/${options.rounds}  ${SERVER_LABELS[kind].padEnd(17)}  ${String(count).padStart(6)} idle  ` +
            (record.errors.length > 0
              ? `ERROR ${record.errors.join('; ')}`
              : `RSS/conn ${formatBytes(record.rssPerConnection)}  heap/conn ${formatBytes(record.heapPerConnection)}  ${formatRate(record.handshakesPerSec)} handshakes/s`),
        );
      }
    }
  }
  const good = runs.filter((record) => record.errors.length === 0);
  const summaries: IdleSummary[] = [];
  for (const count of counts) {
    for (const server of options.servers) {
      const own = good.filter((record) => record.server === server && record.connections === count);
      summaries.push({
        server,
        label: SERVER_LABELS[server],
        connections: count,
        runs: own.length,
        rssPerConnection: stats(own.map((record) => record.rssPerConnection)),
        heapPerConnection: stats(own.map((record) => record.heapPerConnection)),
        externalPerConnection: stats(own.map((record) => record.externalPerConnection)),
        handshakesPerSec: stats(own.map((record) => record.handshakesPerSec)),
      });
    }
  }
  const ratios: { connections: number; rssPerConnection: number; handshakesPerSec: number }[] = [];
  const targets: MemoryTarget[] = [];
  for (const count of counts) {
    const ours = summaries.find((row) => row.server === 'rfc6455' && row.connections === count);
    const theirs = summaries.find((row) => row.server === 'ws' && row.connections === count);
    if (ours === undefined || theirs === undefined) continue;
    const ratio = {
      connections: count,
      rssPerConnection: ours.rssPerConnection.median / theirs.rssPerConnection.median,
      handshakesPerSec: ours.handshakesPerSec.median / theirs.handshakesPerSec.median,
    };
    ratios.push(ratio);
    if (Number.isFinite(ratio.rssPerConnection)) {
      targets.push({
        target: `idle ${count.toLocaleString('en-US')}: rfc6455 / ws RSS per connection <= 0.5x`,
        measured: ratio.rssPerConnection,
        required: 0.5,
        pass: ratio.rssPerConnection <= 0.5,
      });
    }
  }
  if (summaries.length > 0) {
    run.print(`idle connections (RSS after a full GC, minus the baseline before connecting; median of ${options.rounds})\n${formatMemory(summaries, ratios)}\n`);
  }
  if (targets.length > 0) {
    run.print(['targets', ...targets.map((t) => `  ${t.pass ? 'PASS' : 'MISS'}  ${t.target}: measured ${t.measured.toFixed(2)}x`)].join('\n') + '\n');
  }
  const failures = runs.length - good.length;
  if (failures > 0) run.print(`warning: ${failures} measurement(s) failed; see the JSON file (runs[].errors)`);
  return {
    results: { options, source, openFileLimit: limit, loadAverage: { start: loadStart, end: roundedLoad() }, runs, summaries, ratios, targets, skipped },
    missedTargets: targets.filter((target) => !target.pass).length + failures,
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick') || process.env['BENCH_QUICK'] === '1';
  await runMemory({ quick, print: (text) => console.log(text) });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
