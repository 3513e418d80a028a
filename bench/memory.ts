/**
 * Idle connections: what each open WebSocket costs a server in memory, and how fast it completes
 * opening handshakes, for rfc6455 and ws, measured above a floor, with Bun beside them.
 *
 * Each measurement starts a fresh server process (bench/servers/), warms it up with 100 connections
 * that are then closed, takes a baseline after a full garbage collection, opens N connections through
 * the load generator (raw sockets, 128 handshakes in progress at a time, each 101 and
 * Sec-WebSocket-Accept checked), waits for things to settle, collects garbage again and reads the
 * server's RSS (VmRSS of /proc/<pid>/status, read by this process: the same way for Node and Bun).
 * Per connection = (RSS with N connections − baseline) / N; the V8 heap and `external` (Buffers) are
 * shown the same way. Kernel socket buffers are not in RSS and are not counted. Handshakes/s = N / time
 * from the first connect to the last 101.
 *
 * The floor is measured, not assumed: the plain `node:net` server (the TCP echo, bench/servers/
 * tcp-echo.ts) holding N sockets that connected and sent nothing, measured the same way in the same
 * round. What a WebSocket server adds per connection above it ("own bytes") is its RSS per connection
 * minus the floor's: the part a WebSocket library decides, and the one the targets compare. For the
 * floor, "handshakes/s" is TCP connects per second.
 *
 * Bun (bench/servers/bun-echo.ts, skipped with how to get it where the binary is missing) is not Node:
 * its connections sit on its own runtime (JavaScriptCore, uSockets), whose floor is not node:net's, so
 * it is shown by RSS per connection only, without own bytes.
 *
 * For an rfc6455 connection the figure includes what an idle handler holds: the echo handler of
 * `npm start` waiting in `for await`. ws's idle connection has no pending handler at all.
 *
 *   node --import tsx bench/memory.ts [--quick]
 *   BENCH_MEMORY_COUNTS=1000,10000 BENCH_MEMORY_ROUNDS=3 BENCH_MEMORY_SERVERS=tcp,rfc6455,ws,bun
 */
import { pathToFileURL } from 'node:url';
import { finite, stats, type Stats } from './harness.ts';
import { formatBytes, formatRate, formatRatio, formatTable, ratioCell } from './format.ts';
import { LoadSession, openFileLimit } from './loadgen.ts';
import { progress } from './progress.ts';
import { roundedLoad, type SectionRun } from './section.ts';
import { SERVER_LABELS, sourceRevision, startServer, unavailable, type ServerHandle, type ServerKind } from './servers/control.ts';

/** The server whose idle sockets are the floor: a bare node:net server. */
export const FLOOR: ServerKind = 'tcp';

/** Servers that are not Node: no own bytes above the node:net floor. */
const NOT_NODE: ReadonlySet<ServerKind> = new Set(['bun']);

const MEMORY_SERVERS: readonly ServerKind[] = ['tcp', 'rfc6455', 'ws', 'bun'];

export interface MemoryOptions {
  readonly counts: readonly number[];
  readonly rounds: number;
  readonly servers: readonly ServerKind[];
  /** Wait after the last handshake before measuring. */
  readonly settleMs: number;
}

export const QUICK_MEMORY: MemoryOptions = { counts: [1000, 10_000], rounds: 1, servers: MEMORY_SERVERS, settleMs: 300 };
export const FULL_MEMORY: MemoryOptions = { counts: [1000, 10_000], rounds: 3, servers: MEMORY_SERVERS, settleMs: 1000 };

export interface IdleRecord {
  readonly round: number;
  readonly server: ServerKind;
  readonly connections: number;
  readonly opened: number;
  readonly failed: number;
  /** Completed handshakes per second (for the floor: TCP connects per second). */
  readonly handshakesPerSec: number;
  /** VmRSS of the server process, from /proc/<pid>/status, after a full GC. */
  readonly baselineRss: number;
  readonly rss: number;
  readonly rssPerConnection: number;
  /**
   * rssPerConnection − the node:net floor's rssPerConnection at the same count in the same round. NaN
   * for the floor itself, for a server that is not Node (Bun) and when the floor's run failed.
   */
  readonly ownBytesPerConnection: number;
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
  /** Over rounds; NaN for the floor and for Bun (see IdleRecord). */
  readonly ownBytesPerConnection: Stats;
  readonly heapPerConnection: Stats;
  readonly externalPerConnection: Stats;
  readonly handshakesPerSec: Stats;
}

export interface MemoryTarget {
  readonly target: string;
  readonly measured: number;
  readonly comparison: '>=' | '<=';
  readonly required: number;
  readonly pass: boolean;
}

/** rfc6455 against the others at one connection count. */
export interface IdleRatio {
  readonly connections: number;
  /** rfc6455 / ws, median RSS per connection (floor included). */
  readonly rssPerConnection: number;
  /** rfc6455 / ws, median handshakes/s. */
  readonly handshakesPerSec: number;
  /** The node:net floor, median RSS per connection. */
  readonly floorRssPerConnection: number;
  /** rfc6455 own bytes / ws own bytes above the floor: median of per-round ratios, min–max. */
  readonly ownBytesPerConnection: Stats;
  /** rfc6455 / Bun, median RSS per connection (different floors: Bun is not Node). NaN without Bun. */
  readonly rssPerConnectionVsBun: number;
  /** rfc6455 / Bun, median handshakes/s. NaN without Bun. */
  readonly handshakesPerSecVsBun: number;
}

export interface MemoryResults {
  readonly options: MemoryOptions;
  /** The commit the rfc6455 server was built from, and whether src/ had uncommitted changes. */
  readonly source: { readonly commit: string | null; readonly srcModified: boolean | null };
  readonly openFileLimit: number | null;
  readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
  readonly runs: readonly IdleRecord[];
  readonly summaries: readonly IdleSummary[];
  /** rfc6455 against ws (and Bun), by connection count. */
  readonly ratios: readonly IdleRatio[];
  readonly targets: readonly MemoryTarget[];
  readonly skipped: readonly string[];
  /** The server whose idle sockets are the floor. */
  readonly floor: ServerKind;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The server's RSS after a full GC: VmRSS from /proc, or the server's own figure where /proc cannot be read. */
async function rssAfterGc(server: ServerHandle): Promise<{ rss: number; heapUsed: number; external: number }> {
  const stats = await server.stats(true);
  const fromProc = server.rssBytes();
  return { rss: Number.isFinite(fromProc) ? fromProc : stats.rss, heapUsed: stats.heapUsed, external: stats.external };
}

type MeasuredIdle = Omit<IdleRecord, 'ownBytesPerConnection'>;

async function measureIdle(kind: ServerKind, connections: number, round: number, options: MemoryOptions): Promise<MeasuredIdle> {
  let server: ServerHandle | null = null;
  let session: LoadSession | null = null;
  // The floor's sockets connect and stay silent; the others complete the opening handshake.
  const protocol = kind === 'tcp' ? 'tcp' : 'websocket';
  try {
    server = await startServer(kind);
    const warm = await LoadSession.open({ port: server.port, protocol, connections: 100, inFlight: 0, size: 0, warmupMs: 0, durationMs: 0 });
    await warm.close();
    await sleep(200);
    const baseline = await rssAfterGc(server);
    session = await LoadSession.open({
      port: server.port,
      protocol,
      connections,
      inFlight: 0,
      size: 0,
      warmupMs: 0,
      durationMs: 0,
      connectConcurrency: 128,
      connectTimeoutMs: 30_000,
    });
    const report = session.report;
    await sleep(options.settleMs);
    const loaded = await rssAfterGc(server);
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

function failedIdle(kind: ServerKind, connections: number, round: number, error: unknown): MeasuredIdle {
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

/** Each record with its own bytes above the floor measured in the same round at the same count. */
function withOwnBytes(measured: readonly MeasuredIdle[]): IdleRecord[] {
  return measured.map((record): IdleRecord => {
    const floor = measured.find((other) => other.server === FLOOR && other.round === record.round && other.connections === record.connections && other.errors.length === 0);
    const own = record.server === FLOOR || NOT_NODE.has(record.server) || floor === undefined ? Number.NaN : record.rssPerConnection - floor.rssPerConnection;
    return { ...record, ownBytesPerConnection: own };
  });
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

function serversFromEnv(fallback: readonly ServerKind[]): readonly ServerKind[] {
  const value = process.env['BENCH_MEMORY_SERVERS'];
  if (value === undefined || value === '') return fallback;
  const list = value.split(',').map((item) => item.trim()) as ServerKind[];
  for (const server of list) if (!MEMORY_SERVERS.includes(server)) throw new RangeError(`BENCH_MEMORY_SERVERS: unknown server ${server} (expected ${MEMORY_SERVERS.join(', ')})`);
  return list;
}

export function memoryOptionsFor(quick: boolean): MemoryOptions {
  const base = quick ? QUICK_MEMORY : FULL_MEMORY;
  const rounds = envList('BENCH_MEMORY_ROUNDS')?.[0];
  return { ...base, counts: envList('BENCH_MEMORY_COUNTS') ?? base.counts, rounds: rounds ?? base.rounds, servers: serversFromEnv(base.servers) };
}

function ownCell(row: IdleSummary): string {
  if (row.server === FLOOR) return '(floor)';
  if (NOT_NODE.has(row.server)) return 'n/a, not Node';
  return formatBytes(row.ownBytesPerConnection.median);
}

export function formatMemory(summaries: readonly IdleSummary[], ratios: readonly IdleRatio[]): string {
  const rows = summaries.map((row) => [
    row.label,
    row.connections.toLocaleString('en-US'),
    formatBytes(row.rssPerConnection.median),
    `${formatBytes(row.rssPerConnection.min)}–${formatBytes(row.rssPerConnection.max)}`,
    ownCell(row),
    formatBytes(row.heapPerConnection.median),
    formatBytes(row.externalPerConnection.median),
    `${formatRate(row.handshakesPerSec.median)}${row.server === FLOOR ? ' (connects)' : ''}`,
  ]);
  const lines = [formatTable(['server', 'connections', 'RSS/conn', 'min–max', 'own above floor', 'V8 heap/conn', 'external/conn', 'handshakes/s'], rows)];
  for (const ratio of ratios) {
    const count = ratio.connections.toLocaleString('en-US');
    lines.push(
      `  at ${count}: node:net floor ${formatBytes(ratio.floorRssPerConnection)}/conn; rfc6455 / ws own bytes above it ${ratioCell(ratio.ownBytesPerConnection)}, ` +
        `RSS per connection ${formatRatio(ratio.rssPerConnection)}, handshakes/s ${formatRatio(ratio.handshakesPerSec)}; ` +
        `rfc6455 / Bun RSS per connection ${formatRatio(ratio.rssPerConnectionVsBun)} (different floors), handshakes/s ${formatRatio(ratio.handshakesPerSecVsBun)}`,
    );
  }
  return lines.join('\n');
}

function summarizeIdle(runs: readonly IdleRecord[], counts: readonly number[], servers: readonly ServerKind[]): IdleSummary[] {
  const good = runs.filter((record) => record.errors.length === 0);
  const summaries: IdleSummary[] = [];
  for (const count of counts) {
    for (const server of servers) {
      const own = good.filter((record) => record.server === server && record.connections === count);
      summaries.push({
        server,
        label: SERVER_LABELS[server],
        connections: count,
        runs: own.length,
        rssPerConnection: stats(own.map((record) => record.rssPerConnection)),
        ownBytesPerConnection: stats(finite(own.map((record) => record.ownBytesPerConnection))),
        heapPerConnection: stats(own.map((record) => record.heapPerConnection)),
        externalPerConnection: stats(own.map((record) => record.externalPerConnection)),
        handshakesPerSec: stats(own.map((record) => record.handshakesPerSec)),
      });
    }
  }
  return summaries;
}

function idleRatios(runs: readonly IdleRecord[], summaries: readonly IdleSummary[], counts: readonly number[], rounds: number): IdleRatio[] {
  const ratios: IdleRatio[] = [];
  const row = (server: ServerKind, count: number): IdleSummary | undefined => summaries.find((candidate) => candidate.server === server && candidate.connections === count);
  for (const count of counts) {
    const ours = row('rfc6455', count);
    if (ours === undefined) continue;
    const ws = row('ws', count);
    const bun = row('bun', count);
    const floor = row(FLOOR, count);
    const perRound: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const find = (server: ServerKind): IdleRecord | undefined =>
        runs.find((record) => record.server === server && record.round === round && record.connections === count && record.errors.length === 0);
      const a = find('rfc6455');
      const b = find('ws');
      if (a !== undefined && b !== undefined) perRound.push(a.ownBytesPerConnection / b.ownBytesPerConnection);
    }
    const divide = (numerator: number, denominator: Stats | undefined): number => (denominator === undefined ? Number.NaN : numerator / denominator.median);
    ratios.push({
      connections: count,
      rssPerConnection: divide(ours.rssPerConnection.median, ws?.rssPerConnection),
      handshakesPerSec: divide(ours.handshakesPerSec.median, ws?.handshakesPerSec),
      floorRssPerConnection: floor?.rssPerConnection.median ?? Number.NaN,
      ownBytesPerConnection: stats(finite(perRound)),
      rssPerConnectionVsBun: divide(ours.rssPerConnection.median, bun?.rssPerConnection),
      handshakesPerSecVsBun: divide(ours.handshakesPerSec.median, bun?.handshakesPerSec),
    });
  }
  return ratios;
}

/**
 * At each count: rfc6455's own bytes per connection above the node:net floor at most half of ws's, and
 * rfc6455's handshakes/s at least 1.3× ws's.
 */
function memoryTargets(ratios: readonly IdleRatio[]): MemoryTarget[] {
  const targets: MemoryTarget[] = [];
  const add = (target: string, measured: number, comparison: '>=' | '<=', required: number): void => {
    if (!Number.isFinite(measured)) return;
    targets.push({ target, measured, comparison, required, pass: comparison === '>=' ? measured >= required : measured <= required });
  };
  for (const ratio of ratios) {
    const count = ratio.connections.toLocaleString('en-US');
    add(`idle ${count}: rfc6455 own bytes per connection above the node:net floor / ws's <= 0.5x`, ratio.ownBytesPerConnection.median, '<=', 0.5);
    add(`idle ${count}: rfc6455 / ws handshakes/s >= 1.3x`, ratio.handshakesPerSec, '>=', 1.3);
  }
  return targets;
}

export async function runMemory(run: SectionRun): Promise<{ results: MemoryResults; missedTargets: number }> {
  const options = memoryOptionsFor(run.quick);
  const filter = run.filter ?? [];
  const log = run.progress ?? ((text: string) => process.stderr.write(`${text}\n`));
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
  const servers = options.servers.filter((server) => {
    const reason = unavailable(server);
    if (reason !== null) skipped.push(reason);
    return reason === null;
  });
  if (!servers.includes(FLOOR)) skipped.push(`the node:net floor (${SERVER_LABELS[FLOOR]}): not in BENCH_MEMORY_SERVERS, so no own bytes and no own-bytes target`);
  for (const reason of skipped) run.print(`skipped ${reason}`);
  const loadStart = roundedLoad();
  const source = sourceRevision();
  if (counts.length > 0) {
    run.print(
      `rfc6455 at ${source.commit ?? 'unknown commit'}${source.srcModified === true ? ' with uncommitted changes in src/' : ''}; ${options.rounds} round(s); a fresh server per measurement; open-file limit ${limit ?? 'unknown'}; load average at start ${loadStart.join(' ')}`,
    );
  }
  const measured: MeasuredIdle[] = [];
  const steps = options.rounds * counts.length * servers.length;
  try {
    for (let round = 0; round < options.rounds; round++) {
      for (const count of counts) {
        const order = servers.map((_server, index) => servers[(index + round) % servers.length]!);
        for (const kind of order) {
          progress.update(`memory · round ${round + 1}/${options.rounds} · ${SERVER_LABELS[kind]} · idle ${count.toLocaleString('en-US')}`, measured.length, steps);
          let record: MeasuredIdle;
          try {
            record = await measureIdle(kind, count, round, options);
          } catch (error) {
            record = failedIdle(kind, count, round, error);
          }
          measured.push(record);
          log(
            `  round ${round + 1}/${options.rounds}  ${SERVER_LABELS[kind].padEnd(17)}  ${String(count).padStart(6)} idle  ` +
              (record.errors.length > 0
                ? `ERROR ${record.errors.join('; ')}`
                : `RSS/conn ${formatBytes(record.rssPerConnection)}  heap/conn ${formatBytes(record.heapPerConnection)}  ${formatRate(record.handshakesPerSec)} ${kind === FLOOR ? 'connects' : 'handshakes'}/s`),
          );
        }
      }
    }
  } finally {
    progress.done();
  }
  const runs = withOwnBytes(measured);
  const summaries = summarizeIdle(runs, counts, servers);
  const ratios = idleRatios(runs, summaries, counts, options.rounds);
  const targets = memoryTargets(ratios);
  if (summaries.length > 0) {
    run.print(
      `idle connections (RSS = VmRSS after a full GC, minus the baseline before connecting; median of ${options.rounds})\n` +
        `own above floor: RSS/conn − the node:net floor's (${SERVER_LABELS[FLOOR]}: N silent sockets, same round and count); Bun is not Node, its floor is its own\n` +
        `${formatMemory(summaries, ratios)}\n`,
    );
  }
  if (targets.length > 0) {
    run.print(['targets', ...targets.map((t) => `  ${t.pass ? 'PASS' : 'MISS'}  ${t.target}: measured ${t.measured.toFixed(2)}x`)].join('\n') + '\n');
  }
  const failures = runs.filter((record) => record.errors.length > 0).length;
  if (failures > 0) run.print(`warning: ${failures} measurement(s) failed; see the JSON file (runs[].errors)`);
  return {
    results: { options, source, openFileLimit: limit, loadAverage: { start: loadStart, end: roundedLoad() }, runs, summaries, ratios, targets, skipped, floor: FLOOR },
    missedTargets: targets.filter((target) => !target.pass).length + failures,
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick') || process.env['BENCH_QUICK'] === '1';
  await runMemory({ quick, print: (text) => console.log(text) });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
