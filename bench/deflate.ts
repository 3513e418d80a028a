/**
 * permessage-deflate (RFC 7692): what it costs a server, rfc6455 beside ws, both with deflate on.
 *
 * Two parts, both driven by bench/deflate-load.ts (the `ws` client, deflate offered with ws's default
 * offer, in a worker thread of this process; every server in its own process, started and stopped by
 * PID, see servers/control.ts):
 *
 * - **Idle after one message each way** (`deflate idle ...`): a fresh server process per measurement,
 *   warmed up with 100 connections that do the same exchange and close; a baseline after a full GC;
 *   then N connections, each sending one JSON-like text message (1 KiB, compressed by the client) and
 *   waiting for its echo (compressed by the server); then a settle time, a full GC, and RSS, V8 heap
 *   and `external` (zlib's memory is counted there) per connection. The same with deflate off on both
 *   sides (the plain echo servers, the client offering nothing) gives the reference; the difference is
 *   what deflate keeps per idle connection. Compression is checked from the bytes on the wire of the
 *   exchange, each way.
 * - **Echo** (`deflate echo ...`): every connection keeps W JSON-like text messages in flight, each
 *   echo inflated and compared by the client; over a window after a warm-up: messages/s, uncompressed
 *   payload MB/s, the server's CPU time (all its threads: ws compresses on libuv's pool) per second and
 *   per message, and the event-loop utilization of both sides; then bytes on the wire ÷ payload bytes
 *   each way over the whole run, every echo awaited (the client's socket counters: frame headers and
 *   masks included). Servers take turns within a round (order rotated); ratios are per round, then the
 *   median with min–max. The client compresses and inflates too, with ws's asynchronous zlib, on the
 *   same 2 cores: server CPU per message is the comparison that holds whoever is the limit.
 *
 * Both servers run their library's deflate defaults except the size threshold (servers/common.ts):
 * ws keeps a zlib deflate and inflate context per connection (context takeover both ways unless the
 * client asks otherwise), rfc6455 answers with server_no_context_takeover. The negotiated
 * Sec-WebSocket-Extensions of each server is recorded.
 *
 *   npm run bench -- --only=deflate [--quick] [--filter='deflate idle,deflate echo 1 KiB']
 *   node --import tsx bench/deflate.ts [--quick] [--filter=...]     prints the tables, writes no file
 *   node --import tsx bench/deflate.ts --markdown[=results file]   the tables of latest-deflate.json as Markdown
 *   BENCH_DEFLATE_LIBRARIES=rfc6455,ws BENCH_DEFLATE_ROUNDS=3 BENCH_DEFLATE_MEMORY_ROUNDS=3
 *   BENCH_DEFLATE_CONNECTIONS=1000 BENCH_DEFLATE_WARMUP_MS=400 BENCH_DEFLATE_DURATION_MS=1500
 */
import { pathToFileURL } from 'node:url';
import { DeflateSession, type DeflateLoadResult } from './deflate-load.ts';
import { formatBytes, formatMb, formatMicros, formatRate, formatRatio, formatTable, markdownTable, ratioCell, spread } from './format.ts';
import { finite, stats, type Stats } from './harness.ts';
import { openFileLimit } from './loadgen.ts';
import { progress as statusLine } from './progress.ts';
import { echoRounds, envNumber, roundedLoad, sectionMain, type SectionRun } from './section.ts';
import { DEFLATE_THRESHOLD, type StatsMessage } from './servers/common.ts';
import { SERVER_LABELS, sourceRevision, startServer, windowSnapshots, type ServerHandle, type ServerKind } from './servers/control.ts';

export type Library = 'rfc6455' | 'ws';

/** The echo server of each library with deflate on, and the plain one (the reference for memory). */
const DEFLATE_KIND: Readonly<Record<Library, ServerKind>> = { rfc6455: 'rfc6455-deflate', ws: 'ws-deflate' };
const PLAIN_KIND: Readonly<Record<Library, ServerKind>> = { rfc6455: 'rfc6455', ws: 'ws' };

export interface DeflateScenario {
  /** Matched by `--filter` prefixes. */
  readonly title: string;
  readonly size: number;
  readonly connections: number;
  readonly inFlight: number;
}

/**
 * The size of the one message each way of the idle measurement. BENCH_DEFLATE_IDLE_SIZE=40960 fills a
 * 32 KiB inflate window: the most history a default connection can keep.
 */
export const IDLE_MESSAGE_SIZE = Number(process.env['BENCH_DEFLATE_IDLE_SIZE'] ?? 1024);

export const DEFLATE_SCENARIOS: readonly DeflateScenario[] = [
  { title: 'deflate echo 1 KiB JSON × 64 connections × 4 in flight', size: 1024, connections: 64, inFlight: 4 },
  { title: 'deflate echo 16 KiB JSON × 64 connections × 4 in flight', size: 16 * 1024, connections: 64, inFlight: 4 },
];

export interface DeflateOptions {
  readonly libraries: readonly Library[];
  /** Echo rounds (each: every library's deflate server in turn, every scenario). */
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Idle measurements per server configuration. */
  readonly memoryRounds: number;
  readonly idleConnections: number;
  /** Wait after the last echo before measuring memory. */
  readonly settleMs: number;
}

export const QUICK_DEFLATE: DeflateOptions = {
  libraries: ['rfc6455', 'ws'],
  rounds: 2,
  warmupMs: 300,
  durationMs: 1000,
  memoryRounds: 1,
  idleConnections: 1000,
  settleMs: 300,
};
/** About two minutes on 2 cores: 12 idle measurements of 1,000 connections, 12 echo runs of 1.9 s. */
export const FULL_DEFLATE: DeflateOptions = {
  libraries: ['rfc6455', 'ws'],
  rounds: 3,
  warmupMs: 400,
  durationMs: 1500,
  memoryRounds: 3,
  idleConnections: 1000,
  settleMs: 500,
};

// ------------------------------------------------------------------------------------------ records

export interface IdleExchangeRecord {
  readonly round: number;
  readonly server: ServerKind;
  readonly deflate: boolean;
  readonly connections: number;
  readonly opened: number;
  readonly failed: number;
  /** Bytes on the wire of the one exchange, per connection: client to server and back. */
  readonly wireUpPerMessage: number;
  readonly wireDownPerMessage: number;
  readonly extensions: readonly string[];
  readonly baselineRss: number;
  readonly rss: number;
  readonly rssPerConnection: number;
  readonly heapPerConnection: number;
  readonly externalPerConnection: number;
  readonly errors: readonly string[];
  readonly loadAverage1: number;
}

export interface IdleExchangeSummary {
  readonly server: ServerKind;
  readonly label: string;
  readonly deflate: boolean;
  readonly runs: number;
  readonly rssPerConnection: Stats;
  readonly heapPerConnection: Stats;
  readonly externalPerConnection: Stats;
  readonly wireUpPerMessage: Stats;
  readonly wireDownPerMessage: Stats;
}

/** What deflate adds to an idle connection of one library: medians with deflate − medians without. */
export interface DeflateCost {
  readonly library: Library;
  readonly rssPerConnection: number;
  readonly heapPerConnection: number;
  readonly externalPerConnection: number;
}

export interface EchoRecord {
  readonly round: number;
  readonly server: ServerKind;
  readonly scenario: string;
  readonly messagesPerSec: number;
  readonly mbPerSec: number;
  readonly wireRatioUp: number;
  readonly wireRatioDown: number;
  readonly latencyUs: { readonly p50: number; readonly p99: number };
  readonly messages: number;
  readonly serverCpu: number;
  readonly serverElu: number;
  /** Server CPU time per echoed message, in microseconds. */
  readonly serverCpuUsPerMessage: number;
  /** The kernel's share of the server's CPU time (page faults and mmap of zlib's buffers land there). */
  readonly serverSystemShare: number;
  readonly clientElu: number;
  readonly clientCpu: number;
  readonly verified: number;
  readonly extensions: readonly string[];
  readonly errors: readonly string[];
  readonly loadAverage1: number;
}

export interface EchoServerSummary {
  readonly server: ServerKind;
  readonly label: string;
  readonly runs: number;
  readonly messagesPerSec: Stats;
  readonly mbPerSec: Stats;
  readonly wireRatioUp: Stats;
  readonly wireRatioDown: Stats;
  readonly p50Us: Stats;
  readonly p99Us: Stats;
  readonly serverCpu: Stats;
  readonly serverElu: Stats;
  readonly serverCpuUsPerMessage: Stats;
  readonly serverSystemShare: Stats;
  readonly clientElu: Stats;
  readonly clientCpu: Stats;
}

export interface EchoScenarioSummary {
  readonly scenario: DeflateScenario;
  readonly servers: readonly EchoServerSummary[];
  /** rfc6455 ÷ ws, per round: messages/s and server CPU per message. */
  readonly ratios: { readonly throughput: Stats; readonly cpuPerMessage: Stats } | null;
}

export interface DeflateResults {
  readonly options: DeflateOptions;
  readonly threshold: number;
  readonly source: { readonly commit: string | null; readonly srcModified: boolean | null };
  readonly serverInfo: Partial<Record<ServerKind, Record<string, unknown>>>;
  readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
  readonly idle: {
    readonly title: string | null;
    readonly runs: readonly IdleExchangeRecord[];
    readonly summaries: readonly IdleExchangeSummary[];
    readonly costs: readonly DeflateCost[];
  };
  readonly echo: { readonly runs: readonly EchoRecord[]; readonly scenarios: readonly EchoScenarioSummary[] };
}

// ------------------------------------------------------------------------------------------ measuring

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function measureIdle(
  kind: ServerKind,
  deflate: boolean,
  round: number,
  options: DeflateOptions,
  serverInfo: DeflateResults['serverInfo'],
): Promise<IdleExchangeRecord> {
  let server: ServerHandle | null = null;
  let session: DeflateSession | null = null;
  const load = { deflate, threshold: DEFLATE_THRESHOLD, size: IDLE_MESSAGE_SIZE, inFlight: 0, warmupMs: 0, durationMs: 0 };
  try {
    server = await startServer(kind);
    serverInfo[kind] = server.info;
    // Warm-up: the same exchange on 100 connections, so code and zlib's first allocations are in the baseline.
    const warm = await DeflateSession.open({ ...load, port: server.port, connections: 100 });
    await warm.close();
    await sleep(200);
    const baseline = await server.stats(true);
    session = await DeflateSession.open({ ...load, port: server.port, connections: options.idleConnections, connectTimeoutMs: 30_000 });
    const report = session.report;
    await sleep(options.settleMs);
    const loaded = await server.stats(true);
    const opened = report.opened;
    const perConnection = (value: number): number => (opened > 0 ? value / opened : Number.NaN);
    const errors = report.failed > 0 ? [`${report.failed} connections failed: ${report.errors.join('; ')}`] : [];
    const wireDown = perConnection(report.wireDown);
    // Frame header (2 or 4 bytes) included: a compressed 1 KiB echo is far below the payload size.
    if (deflate && !(wireDown < IDLE_MESSAGE_SIZE)) errors.push(`the echo took ${wireDown} bytes on the wire: not compressed`);
    return {
      round,
      server: kind,
      deflate,
      connections: options.idleConnections,
      opened,
      failed: report.failed,
      wireUpPerMessage: perConnection(report.wireUp),
      wireDownPerMessage: wireDown,
      extensions: report.extensions,
      baselineRss: baseline.rss,
      rss: loaded.rss,
      rssPerConnection: perConnection(loaded.rss - baseline.rss),
      heapPerConnection: perConnection(loaded.heapUsed - baseline.heapUsed),
      externalPerConnection: perConnection(loaded.external - baseline.external),
      errors,
      loadAverage1: roundedLoad()[0] ?? Number.NaN,
    };
  } finally {
    // The server first: its side closes first, and the TIME_WAIT states stay on its soon unused port.
    await server?.stop();
    await session?.close();
  }
}

function failedIdle(kind: ServerKind, deflate: boolean, round: number, options: DeflateOptions, error: unknown): IdleExchangeRecord {
  const nan = Number.NaN;
  return {
    round,
    server: kind,
    deflate,
    connections: options.idleConnections,
    opened: 0,
    failed: options.idleConnections,
    wireUpPerMessage: nan,
    wireDownPerMessage: nan,
    extensions: [],
    baselineRss: nan,
    rss: nan,
    rssPerConnection: nan,
    heapPerConnection: nan,
    externalPerConnection: nan,
    errors: [errorText(error)],
    loadAverage1: roundedLoad()[0] ?? nan,
  };
}

function systemShare(before: StatsMessage, after: StatsMessage): number {
  const user = after.cpuUser - before.cpuUser;
  const system = after.cpuSystem - before.cpuSystem;
  return user + system > 0 ? system / (user + system) : Number.NaN;
}

async function measureEcho(server: ServerHandle, scenario: DeflateScenario, options: DeflateOptions, round: number): Promise<EchoRecord> {
  const snapshots = windowSnapshots(server);
  const session = await DeflateSession.open({
    port: server.port,
    connections: scenario.connections,
    deflate: true,
    threshold: DEFLATE_THRESHOLD,
    size: scenario.size,
    inFlight: scenario.inFlight,
    warmupMs: options.warmupMs,
    durationMs: options.durationMs,
  });
  let result: DeflateLoadResult;
  try {
    const open = session.report;
    if (open.failed > 0) throw new Error(`${open.failed} of ${scenario.connections} connections failed: ${open.errors.join('; ')}`);
    result = await session.run(snapshots.hooks);
  } finally {
    await session.close();
  }
  const { before, after, usage } = await snapshots.read();
  return {
    round,
    server: server.kind,
    scenario: scenario.title,
    messagesPerSec: result.messagesPerSec,
    mbPerSec: result.mbPerSec,
    wireRatioUp: result.wireRatioUp,
    wireRatioDown: result.wireRatioDown,
    latencyUs: { p50: result.latencyUs.p50, p99: result.latencyUs.p99 },
    messages: result.messages,
    serverCpu: usage.cpu,
    serverElu: usage.elu,
    // The server's CPU rate between its two snapshots (taken when the window opened and closed, each
    // answered as soon as the server's event loop gets to it) ÷ the client's message rate in the window.
    serverCpuUsPerMessage: result.messagesPerSec > 0 ? (usage.cpu * 1e6) / result.messagesPerSec : Number.NaN,
    serverSystemShare: before !== null && after !== null ? systemShare(before, after) : Number.NaN,
    clientElu: result.clientElu,
    clientCpu: result.clientCpu,
    verified: result.verified,
    extensions: session.report.extensions,
    errors: result.errorCount > 0 ? [`${result.errorCount} errors: ${result.errors.join('; ')}`] : [],
    loadAverage1: roundedLoad()[0] ?? Number.NaN,
  };
}

function failedEcho(round: number, server: ServerKind, scenario: DeflateScenario, error: unknown): EchoRecord {
  const nan = Number.NaN;
  return {
    round,
    server,
    scenario: scenario.title,
    messagesPerSec: nan,
    mbPerSec: nan,
    wireRatioUp: nan,
    wireRatioDown: nan,
    latencyUs: { p50: nan, p99: nan },
    messages: 0,
    serverCpu: nan,
    serverElu: nan,
    serverCpuUsPerMessage: nan,
    serverSystemShare: nan,
    clientElu: nan,
    clientCpu: nan,
    verified: 0,
    extensions: [],
    errors: [errorText(error)],
    loadAverage1: roundedLoad()[0] ?? nan,
  };
}

// ------------------------------------------------------------------------------------------ summaries

function summarizeIdle(runs: readonly IdleExchangeRecord[], kinds: readonly (readonly [ServerKind, boolean])[]): IdleExchangeSummary[] {
  return kinds.map(([server, deflate]) => {
    const own = runs.filter((record) => record.server === server && record.errors.length === 0);
    return {
      server,
      label: SERVER_LABELS[server],
      deflate,
      runs: own.length,
      rssPerConnection: stats(own.map((record) => record.rssPerConnection)),
      heapPerConnection: stats(own.map((record) => record.heapPerConnection)),
      externalPerConnection: stats(own.map((record) => record.externalPerConnection)),
      wireUpPerMessage: stats(own.map((record) => record.wireUpPerMessage)),
      wireDownPerMessage: stats(own.map((record) => record.wireDownPerMessage)),
    };
  });
}

function deflateCosts(summaries: readonly IdleExchangeSummary[], libraries: readonly Library[]): DeflateCost[] {
  const costs: DeflateCost[] = [];
  for (const library of libraries) {
    const on = summaries.find((row) => row.server === DEFLATE_KIND[library]);
    const off = summaries.find((row) => row.server === PLAIN_KIND[library]);
    if (on === undefined || off === undefined) continue;
    costs.push({
      library,
      rssPerConnection: on.rssPerConnection.median - off.rssPerConnection.median,
      heapPerConnection: on.heapPerConnection.median - off.heapPerConnection.median,
      externalPerConnection: on.externalPerConnection.median - off.externalPerConnection.median,
    });
  }
  return costs;
}

function summarizeEcho(scenario: DeflateScenario, kinds: readonly ServerKind[], runs: readonly EchoRecord[], rounds: number): EchoScenarioSummary {
  const mine = runs.filter((run) => run.scenario === scenario.title && run.errors.length === 0);
  const servers = kinds.map((server): EchoServerSummary => {
    const own = mine.filter((run) => run.server === server);
    const of = (pick: (run: EchoRecord) => number): Stats => stats(finite(own.map(pick)));
    return {
      server,
      label: SERVER_LABELS[server],
      runs: own.length,
      messagesPerSec: of((run) => run.messagesPerSec),
      mbPerSec: of((run) => run.mbPerSec),
      wireRatioUp: of((run) => run.wireRatioUp),
      wireRatioDown: of((run) => run.wireRatioDown),
      p50Us: of((run) => run.latencyUs.p50),
      p99Us: of((run) => run.latencyUs.p99),
      serverCpu: of((run) => run.serverCpu),
      serverElu: of((run) => run.serverElu),
      serverCpuUsPerMessage: of((run) => run.serverCpuUsPerMessage),
      serverSystemShare: of((run) => run.serverSystemShare),
      clientElu: of((run) => run.clientElu),
      clientCpu: of((run) => run.clientCpu),
    };
  });
  let ratios: EchoScenarioSummary['ratios'] = null;
  if (kinds.includes(DEFLATE_KIND.rfc6455) && kinds.includes(DEFLATE_KIND.ws)) {
    const throughput: number[] = [];
    const cpuPerMessage: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const ours = mine.find((run) => run.round === round && run.server === DEFLATE_KIND.rfc6455);
      const theirs = mine.find((run) => run.round === round && run.server === DEFLATE_KIND.ws);
      if (ours === undefined || theirs === undefined) continue;
      throughput.push(ours.messagesPerSec / theirs.messagesPerSec);
      cpuPerMessage.push(ours.serverCpuUsPerMessage / theirs.serverCpuUsPerMessage);
    }
    ratios = { throughput: stats(finite(throughput)), cpuPerMessage: stats(finite(cpuPerMessage)) };
  }
  return { scenario, servers, ratios };
}

// ------------------------------------------------------------------------------------------ printing

const formatWire = (value: number): string => (Number.isFinite(value) ? value.toFixed(3) : '-');
const formatCpuUs = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(value >= 100 ? 0 : 1)} µs` : '-');

export function formatIdle(summaries: readonly IdleExchangeSummary[], costs: readonly DeflateCost[], connections: number): string {
  const rows = summaries.map((row) => [
    row.label,
    row.deflate ? 'on' : 'off',
    formatBytes(row.rssPerConnection.median),
    spread(row.rssPerConnection, formatBytes),
    formatBytes(row.heapPerConnection.median),
    spread(row.heapPerConnection, formatBytes),
    formatBytes(row.externalPerConnection.median),
    `${row.wireUpPerMessage.median.toFixed(0)} / ${row.wireDownPerMessage.median.toFixed(0)} B`,
  ]);
  const lines = [
    formatTable(['server', 'deflate', 'RSS/conn', 'min–max', 'V8 heap/conn', 'min–max', 'external/conn', 'wire up / down'], rows),
  ];
  for (const cost of costs) {
    lines.push(
      `  deflate adds per idle connection (${cost.library}, ${connections.toLocaleString('en-US')} connections, medians): RSS ${formatBytes(cost.rssPerConnection)}, ` +
        `V8 heap ${formatBytes(cost.heapPerConnection)}, external ${formatBytes(cost.externalPerConnection)}`,
    );
  }
  const ours = summaries.find((row) => row.server === DEFLATE_KIND.rfc6455);
  const theirs = summaries.find((row) => row.server === DEFLATE_KIND.ws);
  if (ours !== undefined && theirs !== undefined) {
    lines.push(`  rfc6455 / ws with deflate: RSS per connection ${formatRatio(ours.rssPerConnection.median / theirs.rssPerConnection.median)}`);
  }
  return lines.join('\n');
}

export function formatEchoScenario(summary: EchoScenarioSummary, options: DeflateOptions): string {
  const lines = [`${summary.scenario.title} (text, deflate both ways; median of ${options.rounds} rounds × ${(options.durationMs / 1000).toFixed(2)} s)`];
  const rows = summary.servers.map((row) => [
    row.label,
    formatRate(row.messagesPerSec.median),
    spread(row.messagesPerSec, formatRate),
    formatMb(row.mbPerSec.median),
    formatWire(row.wireRatioDown.median),
    formatWire(row.wireRatioUp.median),
    `${(100 * row.serverCpu.median).toFixed(0)}%`,
    formatCpuUs(row.serverCpuUsPerMessage.median),
    spread(row.serverCpuUsPerMessage, formatCpuUs),
    `${(100 * row.serverSystemShare.median).toFixed(0)}%`,
    row.serverElu.median.toFixed(2),
    row.clientElu.median.toFixed(2),
    `${(100 * row.clientCpu.median).toFixed(0)}%`,
    formatMicros(row.p50Us.median),
    formatMicros(row.p99Us.median),
  ]);
  lines.push(
    formatTable(
      ['server', 'msgs/s', 'min–max', 'MB/s', 'wire÷payload down', 'up', 'srv CPU', 'srv CPU/msg', 'min–max', 'of it sys', 'srv ELU', 'gen ELU', 'gen CPU', 'p50', 'p99'],
      rows,
    ),
  );
  if (summary.ratios !== null) {
    lines.push(`  rfc6455 / ws: msgs/s ${ratioCell(summary.ratios.throughput)}, server CPU per message ${ratioCell(summary.ratios.cpuPerMessage)}`);
  }
  return lines.join('\n');
}

const LEGEND = `MB/s: uncompressed payload echoed (10^6 B/s). wire÷payload: bytes on the wire (frames, headers and masks included) ÷ payload
bytes, server to client (down: the server's compression) and client to server (up: the ws client's). srv CPU: server process CPU
time ÷ wall time (all threads; ws compresses on libuv's pool); srv CPU/msg: that CPU time per echoed message, and the kernel's
share of it ("of it sys": page faults and mmap of zlib's buffers land there). gen ELU / gen CPU:
the ws client's thread, and the whole benchmark process (its zlib pool included). Both sides share 2 cores.
`;

/** The tables of a results file as Markdown, for BENCHMARKS.md (`bench/deflate.ts --markdown`). */
export function deflateMarkdown(file: { readonly date: string; readonly environment: Record<string, unknown>; readonly results: DeflateResults }): string {
  const { results } = file;
  const env = file.environment;
  const source = results.source;
  const out: string[] = [];
  out.push(
    `Run ${file.date.slice(0, 16).replace('T', ' ')} UTC, ${env['mode']} mode; ${env['cpu']} ×${env['cpus']}, ${env['platform']}-${env['arch']}, Node ${env['node']}; ` +
      `rfc6455 at ${source.commit ?? '?'}${source.srcModified === true ? ' (with uncommitted changes in src/)' : ''}; ` +
      `load average (1/5/15 min) at start ${results.loadAverage.start.join(' / ')}, at end ${results.loadAverage.end.join(' / ')}; threshold ${results.threshold} B on both sides.`,
  );
  const { summaries, costs, title } = results.idle;
  if (title !== null && summaries.length > 0) {
    out.push('', `**${title}** (median of ${results.options.memoryRounds}, min–max)`, '');
    out.push(
      markdownTable(
        ['server', 'deflate', 'RSS / connection', 'min–max', 'V8 heap / connection', 'min–max', 'external / connection', 'wire bytes up / down'],
        summaries.map((row) => [
          row.label,
          row.deflate ? 'on' : 'off',
          formatBytes(row.rssPerConnection.median),
          spread(row.rssPerConnection, formatBytes),
          formatBytes(row.heapPerConnection.median),
          spread(row.heapPerConnection, formatBytes),
          formatBytes(row.externalPerConnection.median),
          `${row.wireUpPerMessage.median.toFixed(0)} / ${row.wireDownPerMessage.median.toFixed(0)}`,
        ]),
      ),
    );
    out.push('');
    for (const cost of costs) {
      out.push(`- deflate adds per idle connection, ${cost.library}: RSS **${formatBytes(cost.rssPerConnection)}**, V8 heap ${formatBytes(cost.heapPerConnection)}, external ${formatBytes(cost.externalPerConnection)}`);
    }
  }
  for (const summary of results.echo.scenarios) {
    out.push('', `**${summary.scenario.title}** (median of ${results.options.rounds} rounds × ${(results.options.durationMs / 1000).toFixed(1)} s, min–max)`, '');
    out.push(
      markdownTable(
        ['server', 'msgs/s', 'min–max', 'payload MB/s', 'wire ÷ payload, server → client', 'client → server', 'server CPU', 'server CPU / msg', 'min–max', 'of it kernel', 'srv ELU', 'gen ELU', 'p50', 'p99'],
        summary.servers.map((row) => [
          row.label,
          formatRate(row.messagesPerSec.median),
          spread(row.messagesPerSec, formatRate),
          formatMb(row.mbPerSec.median),
          formatWire(row.wireRatioDown.median),
          formatWire(row.wireRatioUp.median),
          `${(100 * row.serverCpu.median).toFixed(0)} %`,
          formatCpuUs(row.serverCpuUsPerMessage.median),
          spread(row.serverCpuUsPerMessage, formatCpuUs),
          `${(100 * row.serverSystemShare.median).toFixed(0)} %`,
          row.serverElu.median.toFixed(2),
          row.clientElu.median.toFixed(2),
          formatMicros(row.p50Us.median),
          formatMicros(row.p99Us.median),
        ]),
      ),
    );
    if (summary.ratios !== null) {
      const cell = (value: Stats): string => `**${value.median.toFixed(2)}×** (${value.min.toFixed(2)}–${value.max.toFixed(2)})`;
      out.push('', `rfc6455 ÷ ws (per round): msgs/s ${cell(summary.ratios.throughput)}, server CPU per message ${cell(summary.ratios.cpuPerMessage)}`);
    }
  }
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------ running

export function deflateOptionsFor(quick: boolean): DeflateOptions {
  const base = quick ? QUICK_DEFLATE : FULL_DEFLATE;
  const librariesText = process.env['BENCH_DEFLATE_LIBRARIES'];
  let libraries = base.libraries;
  if (librariesText !== undefined && librariesText !== '') {
    const list = librariesText.split(',').map((item) => item.trim());
    for (const library of list) if (library !== 'rfc6455' && library !== 'ws') throw new RangeError(`BENCH_DEFLATE_LIBRARIES: unknown library ${library}`);
    libraries = list as Library[];
  }
  return {
    libraries,
    rounds: Math.max(1, Math.round(envNumber('BENCH_DEFLATE_ROUNDS') ?? base.rounds)),
    warmupMs: envNumber('BENCH_DEFLATE_WARMUP_MS') ?? base.warmupMs,
    durationMs: Math.max(100, envNumber('BENCH_DEFLATE_DURATION_MS') ?? base.durationMs),
    memoryRounds: Math.max(1, Math.round(envNumber('BENCH_DEFLATE_MEMORY_ROUNDS') ?? base.memoryRounds)),
    idleConnections: Math.max(1, Math.round(envNumber('BENCH_DEFLATE_CONNECTIONS') ?? base.idleConnections)),
    settleMs: base.settleMs,
  };
}

export function idleTitle(connections: number): string {
  return `deflate idle ${connections.toLocaleString('en-US')} connections after one ${IDLE_MESSAGE_SIZE / 1024} KiB message each way`;
}

export async function runDeflate(run: SectionRun): Promise<{ results: DeflateResults; missedTargets: number }> {
  const options = deflateOptionsFor(run.quick);
  const filter = run.filter ?? [];
  const selected = (title: string): boolean => filter.length === 0 || filter.some((prefix) => title.startsWith(prefix));
  const progress = run.progress ?? ((text: string) => process.stderr.write(`${text}\n`));
  const loadStart = roundedLoad();
  const source = sourceRevision();
  const serverInfo: DeflateResults['serverInfo'] = {};
  run.print(
    `rfc6455 at ${source.commit ?? 'unknown commit'}${source.srcModified === true ? ' with uncommitted changes in src/' : ''}; libraries ${options.libraries.join(', ')}; ` +
      `threshold ${DEFLATE_THRESHOLD} B on both sides; load average at start ${loadStart.join(' ')}`,
  );

  // Idle connections after one exchange, deflate on and off.
  let title: string | null = idleTitle(options.idleConnections);
  const idleRuns: IdleExchangeRecord[] = [];
  const idleKinds: (readonly [ServerKind, boolean])[] = options.libraries.flatMap((library) => [
    [DEFLATE_KIND[library], true] as const,
    [PLAIN_KIND[library], false] as const,
  ]);
  const limit = openFileLimit();
  if (!selected(title)) {
    title = null;
  } else if (limit !== null && limit < options.idleConnections + 200) {
    run.print(`skipped ${title}: ulimit -n is ${limit}; raise it to at least ${options.idleConnections + 200}`);
    title = null;
  }
  // The progress line (on a terminal): every idle measurement, then every echo run.
  const scenarios = DEFLATE_SCENARIOS.filter((scenario) => selected(scenario.title));
  const echoKinds = options.libraries.map((library) => DEFLATE_KIND[library]);
  const steps = (title === null ? 0 : options.memoryRounds * idleKinds.length) + options.rounds * echoKinds.length * scenarios.length;
  let done = 0;
  if (title !== null) {
    for (let round = 0; round < options.memoryRounds; round++) {
      const order = idleKinds.map((_kind, index) => idleKinds[(index + round) % idleKinds.length]!);
      for (const [kind, deflate] of order) {
        statusLine.update(`deflate · idle round ${round + 1}/${options.memoryRounds} · ${SERVER_LABELS[kind]}${deflate ? '' : ' (deflate off)'}`, done, steps);
        let record: IdleExchangeRecord;
        try {
          record = await measureIdle(kind, deflate, round, options, serverInfo);
        } catch (error) {
          record = failedIdle(kind, deflate, round, options, error);
        }
        idleRuns.push(record);
        done++;
        progress(
          `  round ${round + 1}/${options.memoryRounds}  ${SERVER_LABELS[kind].padEnd(24)}  ${options.idleConnections} idle after one exchange  ` +
            (record.errors.length > 0
              ? `ERROR ${record.errors.join('; ')}`
              : `RSS/conn ${formatBytes(record.rssPerConnection)}  heap/conn ${formatBytes(record.heapPerConnection)}  external/conn ${formatBytes(record.externalPerConnection)}  ` +
                `wire ${record.wireUpPerMessage.toFixed(0)}/${record.wireDownPerMessage.toFixed(0)} B  ${JSON.stringify(record.extensions)}`),
        );
      }
    }
  }
  const idleSummaries = title === null ? [] : summarizeIdle(idleRuns, idleKinds);
  const costs = deflateCosts(idleSummaries, options.libraries);
  if (title !== null) {
    run.print(
      `${title} (RSS, V8 heap and external after a full GC, minus the baseline, ÷ connections; median of ${options.memoryRounds}; ` +
        `wire: bytes of the exchange each way, frame included)\n${formatIdle(idleSummaries, costs, options.idleConnections)}\n`,
    );
  }

  // Echo with deflate on both sides.
  const echoRuns = await echoRounds({
    rounds: options.rounds,
    servers: echoKinds,
    scenarios,
    started: (server) => {
      serverInfo[server.kind] = server.info;
    },
    measure: (server, scenario, round) => {
      statusLine.update(`deflate · round ${round + 1}/${options.rounds} · ${SERVER_LABELS[server.kind]} · ${scenario.title.replace(/^deflate /, '')}`, done, steps);
      return measureEcho(server, scenario, options, round);
    },
    failed: failedEcho,
    measured: (record) => {
      done++;
      progress(
        `  round ${record.round + 1}/${options.rounds}  ${SERVER_LABELS[record.server].padEnd(24)}  ${record.scenario.padEnd(56)}  ` +
          (record.errors.length > 0
            ? `ERROR ${record.errors.join('; ')}`
            : `${formatRate(record.messagesPerSec).padStart(8)} msgs/s ${formatMb(record.mbPerSec).padStart(6)} MB/s  wire ${formatWire(record.wireRatioDown)} down ${formatWire(record.wireRatioUp)} up  ` +
              `srv CPU ${(100 * record.serverCpu).toFixed(0)}% ${formatCpuUs(record.serverCpuUsPerMessage)}/msg ELU ${record.serverElu.toFixed(2)}  gen ELU ${record.clientElu.toFixed(2)}`),
      );
    },
    progress,
  });
  statusLine.done();
  const echoSummaries = scenarios.map((scenario) => summarizeEcho(scenario, echoKinds, echoRuns, options.rounds));
  if (echoSummaries.length > 0) run.print(LEGEND);
  for (const summary of echoSummaries) run.print(`${formatEchoScenario(summary, options)}\n`);
  for (const kind of echoKinds) {
    const negotiated = new Set(echoRuns.filter((record) => record.server === kind).flatMap((record) => record.extensions));
    if (negotiated.size > 0) run.print(`  ${SERVER_LABELS[kind]} answered Sec-WebSocket-Extensions: ${[...negotiated].map((text) => `'${text}'`).join(', ')}`);
  }

  const failures = idleRuns.filter((record) => record.errors.length > 0).length + echoRuns.filter((record) => record.errors.length > 0).length;
  if (failures > 0) run.print(`warning: ${failures} measurement(s) failed; see the JSON file (idle.runs[].errors, echo.runs[].errors)`);
  return {
    results: {
      options,
      threshold: DEFLATE_THRESHOLD,
      source,
      serverInfo,
      loadAverage: { start: loadStart, end: roundedLoad() },
      idle: { title, runs: idleRuns, summaries: idleSummaries, costs },
      echo: { runs: echoRuns, scenarios: echoSummaries },
    },
    missedTargets: failures,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await sectionMain('deflate', runDeflate, deflateMarkdown);
}
