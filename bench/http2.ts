/**
 * WebSockets over HTTP/2 (RFC 8441) beside WebSockets over HTTP/1.1, both with TLS, against the same
 * server: the rfc6455 echo of the other sections listening with `listen({ tls })`, which serves
 * HTTP/1.1 upgrades and HTTP/2 extended CONNECT on one port (bench/servers/rfc6455-echo.ts with
 * BENCH_TLS_KEY/BENCH_TLS_CERT, the tests' self-signed RSA 2048 certificate; Node's HTTP/2 defaults).
 *
 *   echo        N WebSockets as N streams of ONE HTTP/2 session (h2), or as N TLS connections (h1),
 *               each keeping W binary messages of S bytes in flight: messages/s, MB/s, and the CPU of
 *               both processes per echoed message
 *   handshake   the time to open one WebSocket: an extended CONNECT on an open HTTP/2 session (h2
 *               stream), a new HTTP/2 session and its CONNECT (h2 session), a new TLS connection and an
 *               HTTP/1.1 upgrade (h1), the same resuming a TLS session (h1 resumed); one at a time, and
 *               a batch at once
 *
 * The load generator is bench/http2-load.ts, compiled to JavaScript like the server, in its own child
 * process pinned to CPU 1 with taskset; the server runs pinned to CPU 0, one process per round. The h2
 * client advertises a browser's receive windows (Chrome's 6 MiB per stream and 15 MiB per session), so
 * what it can take is not the limit; the server's receive windows are Node's defaults, as
 * `listen({ tls })` leaves them (BENCH_HTTP2_CLIENT_WINDOW=node gives the client Node's too). Its
 * frames are built and masked before the run (as bench/loadgen.ts does), so on its side the run-time
 * work is the transport: TLS, and for h2 Node's HTTP/2 framing and flow control. In a round the child
 * runs every echo scenario over both transports (which one goes first alternates from scenario to
 * scenario and round to round), then the handshakes (the order of the modes rotated); the h2 ÷ h1
 * ratios are taken within a round, and the median of the per-round ratios is reported with their min
 * and max. The server's CPU and event-loop utilization are read at the edges of each measured window.
 *
 *   node --import tsx bench/http2.ts [--quick] [--filter=echo 64 KiB,handshake]
 *   node --import tsx bench/http2.ts --markdown        the tables of bench/results/latest-http2.json
 *   BENCH_HTTP2_ROUNDS=3 BENCH_HTTP2_WARMUP_MS=300 BENCH_HTTP2_DURATION_MS=1000 BENCH_HTTP2_HANDSHAKES=300
 *   BENCH_HTTP2_CLIENT_WINDOW=node     the h2 client with Node's 64 KiB receive windows instead of a browser's
 *   BENCH_HTTP2_SERVER_WINDOW=8388608  a diagnostic: the server's HTTP/2 receive windows at that size (its own
 *                                      http2 server, `attach()`ed; see bench/servers/rfc6455-echo.ts)
 *   BENCH_HTTP2_TRANSPORTS=h2          one transport only (default h2,h1)
 *   BENCH_HTTP2_CPU_PROF_DIR=dir       the server writes a V8 CPU profile there (`--cpu-prof`) as each round ends;
 *                                      summarise it with `node --import tsx bench/profile.ts --summarize=file`
 */
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { formatMb, formatMicros, formatRate, formatTable, markdownTable, ratioCell, spread } from './format.ts';
import { finite, stats, type Stats } from './harness.ts';
import type { ClientWindow, EchoResult, EchoScenario, HandshakeMode, HandshakeResult, HandshakeScenario, Http2Plan, Http2Report, Transport } from './http2-load.ts';
import { progress as statusLine } from './progress.ts';
import { envNumber, loadScript, roundedLoad, sectionMain, type SectionRun } from './section.ts';
import { allowedCpus, describe, pinningAvailable } from './shared.ts';
import type { StatsMessage } from './servers/common.ts';
import { sourceRevision, startServer, TLS_FIXTURES, type ServerHandle } from './servers/control.ts';

export type { EchoScenario, HandshakeMode, HandshakeScenario, Transport } from './http2-load.ts';

const KIB = 1024;

export const ECHO_SCENARIOS: readonly EchoScenario[] = [16, KIB, 64 * KIB].flatMap((size) =>
  [1, 16, 64].map(
    (sockets): EchoScenario => ({
      title: `echo ${size >= KIB ? `${size / KIB} KiB` : `${size} B`} × ${sockets} WebSocket${sockets === 1 ? '' : 's'} × 16 in flight`,
      size,
      sockets,
      inFlight: 16,
    }),
  ),
);

export const TRANSPORTS: readonly Transport[] = ['h2', 'h1'];

function transportsFromEnv(): Transport[] {
  const value = process.env['BENCH_HTTP2_TRANSPORTS'];
  if (value === undefined || value === '') return [...TRANSPORTS];
  const list = value.split(',').map((item) => item.trim()) as Transport[];
  for (const transport of list) if (!TRANSPORTS.includes(transport)) throw new RangeError(`BENCH_HTTP2_TRANSPORTS: unknown transport ${transport}`);
  return list;
}

export const TRANSPORT_LABELS: Readonly<Record<Transport, string>> = {
  h2: 'HTTP/2: N streams, 1 session',
  h1: 'HTTP/1.1: N TLS connections',
};

export const HANDSHAKE_LABELS: Readonly<Record<HandshakeMode, string>> = {
  'h2-stream': 'h2: CONNECT on an open session',
  'h2-session': 'h2: new TLS session + CONNECT',
  h1: 'h1: new TLS connection + upgrade',
  'h1-resumed': 'h1: resumed TLS session + upgrade',
};

/** The handshake scenarios: one at a time (every mode), and a batch at once (the cheap modes). */
function handshakeScenarios(count: number): { scenario: HandshakeScenario; modes: HandshakeMode[] }[] {
  const batch = 32;
  return [
    {
      scenario: { title: 'handshake, one at a time', count, warmup: Math.max(5, Math.round(count / 10)), concurrency: 1 },
      modes: ['h2-stream', 'h2-session', 'h1', 'h1-resumed'],
    },
    {
      scenario: { title: `handshake, ${batch} at once`, count: Math.max(batch, Math.round(count / batch) * batch), warmup: batch, concurrency: batch },
      modes: ['h2-stream', 'h1', 'h1-resumed'],
    },
  ];
}

export interface Http2Options {
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Counted handshakes per mode and round, one at a time (the batch scenario rounds it to batches). */
  readonly handshakes: number;
  /** The h2 client's receive windows: a browser's (default) or Node's defaults (BENCH_HTTP2_CLIENT_WINDOW=node). */
  readonly clientWindow: ClientWindow;
  /** BENCH_HTTP2_SERVER_WINDOW: the server's receive windows, or null for Node's defaults (what `listen({ tls })` gives). */
  readonly serverWindow: number | null;
}

export const QUICK_HTTP2: Http2Options = { rounds: 1, warmupMs: 100, durationMs: 300, handshakes: 64, clientWindow: 'browser', serverWindow: null };
export const FULL_HTTP2: Http2Options = { rounds: 3, warmupMs: 300, durationMs: 1000, handshakes: 300, clientWindow: 'browser', serverWindow: null };

/** Event-loop utilization from which a side counts as saturated (as in the other sections). */
const ELU_SATURATED = 0.9;

export interface EchoRecord {
  readonly round: number;
  readonly scenario: string;
  readonly transport: Transport;
  readonly messagesPerSec: number;
  readonly mbPerSec: number;
  readonly messages: number;
  readonly windowMs: number;
  /** The load generator process's CPU time per echoed message, in µs, and ÷ wall time. */
  readonly clientCpuUsPerMessage: number;
  readonly clientCpu: number;
  readonly clientElu: number;
  /** The server process's CPU time per echoed message, in µs, and ÷ wall time, over the same window. */
  readonly serverCpuUsPerMessage: number;
  readonly serverCpu: number;
  readonly serverElu: number;
  /** The generator's 'data' events per echoed message (h2: DATA frame payloads; h1: TLS reads). */
  readonly readsPerMessage: number;
  readonly openMs: number;
  readonly sessionState: Record<string, number> | null;
  readonly verified: number;
  readonly errors: readonly string[];
  readonly loadAverage1: number;
}

export interface HandshakeRecord {
  readonly round: number;
  readonly scenario: string;
  readonly mode: HandshakeMode;
  readonly count: number;
  /** Of this round's handshakes, µs. */
  readonly p50Us: number;
  readonly p99Us: number;
  /** WebSockets opened and closed per second over the counted ones (the closes are in the time). */
  readonly perSec: number;
  /** CPU time per WebSocket opened and closed, µs: the server's, and the generator's. */
  readonly serverCpuUsPerSocket: number;
  readonly clientCpuUsPerSocket: number;
  readonly resumed: number | null;
  /** Every latency, µs, rounded to 0.1 µs. */
  readonly latenciesUs: readonly number[];
  readonly errors: readonly string[];
  readonly loadAverage1: number;
}

export interface EchoTransportSummary {
  readonly transport: Transport;
  readonly label: string;
  readonly runs: number;
  readonly messagesPerSec: Stats;
  readonly mbPerSec: Stats;
  readonly serverCpuUsPerMessage: Stats;
  readonly clientCpuUsPerMessage: Stats;
  readonly serverCpu: Stats;
  readonly serverElu: Stats;
  readonly clientCpu: Stats;
  readonly clientElu: Stats;
  readonly readsPerMessage: Stats;
  readonly openMs: Stats;
  /** `server`, `client`, `both` (each at ELU ≥ 0.9) or `neither`, by median ELU. */
  readonly limit: string;
}

export interface EchoScenarioSummary {
  readonly scenario: EchoScenario;
  readonly transports: readonly EchoTransportSummary[];
  /** h2 ÷ h1, per round: messages/s, server CPU per message, generator CPU per message. */
  readonly ratio: { readonly throughput: Stats; readonly serverCpuPerMessage: Stats; readonly clientCpuPerMessage: Stats };
}

export interface HandshakeModeSummary {
  readonly mode: HandshakeMode;
  readonly label: string;
  /** Over every counted handshake of every round, µs. */
  readonly count: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  /** The per-round medians. */
  readonly roundP50Us: Stats;
  readonly perSec: Stats;
  readonly serverCpuUsPerSocket: Stats;
  readonly clientCpuUsPerSocket: Stats;
  /** h1 resumed: the share of connections that did resume. */
  readonly resumedShare: number | null;
  /** Per round: this mode's p50 ÷ h1's. */
  readonly p50VsH1: Stats;
}

export interface HandshakeScenarioSummary {
  readonly scenario: HandshakeScenario;
  readonly modes: readonly HandshakeModeSummary[];
}

export interface Http2Results {
  readonly options: Http2Options;
  readonly source: { readonly commit: string | null; readonly srcModified: boolean | null };
  readonly pinning: { readonly requested: { readonly server: string; readonly client: string } | null; readonly server: readonly (string | null)[]; readonly client: readonly (string | null)[] };
  readonly serverInfo: Record<string, unknown>;
  readonly clientInfo: Record<string, unknown>;
  readonly negotiated: Record<string, unknown> | null;
  readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
  readonly echoRuns: readonly EchoRecord[];
  readonly handshakeRuns: readonly HandshakeRecord[];
  readonly echo: readonly EchoScenarioSummary[];
  readonly handshakes: readonly HandshakeScenarioSummary[];
}

export function http2OptionsFor(quick: boolean): Http2Options {
  const base = quick ? QUICK_HTTP2 : FULL_HTTP2;
  return {
    rounds: Math.max(1, Math.round(envNumber('BENCH_HTTP2_ROUNDS') ?? base.rounds)),
    warmupMs: envNumber('BENCH_HTTP2_WARMUP_MS') ?? base.warmupMs,
    durationMs: Math.max(50, envNumber('BENCH_HTTP2_DURATION_MS') ?? base.durationMs),
    handshakes: Math.max(10, Math.round(envNumber('BENCH_HTTP2_HANDSHAKES') ?? base.handshakes)),
    clientWindow: clientWindowFromEnv(base.clientWindow),
    serverWindow: envNumber('BENCH_HTTP2_SERVER_WINDOW') || null,
  };
}

function clientWindowFromEnv(fallback: ClientWindow): ClientWindow {
  const value = process.env['BENCH_HTTP2_CLIENT_WINDOW'];
  if (value === undefined || value === '') return fallback;
  if (value !== 'browser' && value !== 'node') throw new RangeError(`BENCH_HTTP2_CLIENT_WINDOW=${value}: expected browser or node`);
  return value;
}

/** The server's CPU time (µs), CPU ÷ wall and event-loop utilization between two snapshots. */
function serverUsage(a: StatsMessage | null, b: StatsMessage | null): { cpuUs: number; cpu: number; elu: number } {
  if (a === null || b === null) return { cpuUs: Number.NaN, cpu: Number.NaN, elu: Number.NaN };
  const wallUs = (b.now - a.now) * 1000;
  const cpuUs = b.cpuUser - a.cpuUser + (b.cpuSystem - a.cpuSystem);
  const active = b.eluActive - a.eluActive;
  const idle = b.eluIdle - a.eluIdle;
  return { cpuUs, cpu: wallUs > 0 ? cpuUs / wallUs : Number.NaN, elu: active + idle > 0 ? active / (active + idle) : Number.NaN };
}

function snapshot(server: ServerHandle): Promise<StatsMessage | null> {
  return server.stats().catch((error: unknown) => {
    process.stderr.write(`stats of the server: ${error instanceof Error ? error.message : String(error)}\n`);
    return null;
  });
}

interface ChildOutcome {
  readonly echo: { readonly result: EchoResult; readonly server: { cpuUs: number; cpu: number; elu: number } }[];
  readonly handshakes: { readonly result: HandshakeResult; readonly server: { cpuUs: number; cpu: number; elu: number } }[];
  readonly info: Record<string, unknown>;
  readonly negotiated: Record<string, unknown> | null;
  readonly failure: unknown;
}

/**
 * Runs one load generator child over the plan against `server`; resolves with what it reported, and
 * the failure if it did not finish. It is killed (SIGKILL, by its PID) if it outlives its own deadline
 * by 10 s.
 */
async function runChild(server: ServerHandle, plan: Http2Plan, pinning: { client: string } | null, reported: () => void = () => {}): Promise<ChildOutcome> {
  const script = loadScript('http2-load');
  // taskset execs node in its own place: the PID spawn returns is node's.
  const [command, ...args] = pinning === null ? [process.execPath, ...script] : ['taskset', '-c', pinning.client, process.execPath, ...script];
  const child = spawn(command!, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending: Promise<void>[] = [];
  const echo: ChildOutcome['echo'] = [];
  const handshakes: ChildOutcome['handshakes'] = [];
  let info: Record<string, unknown> = {};
  let negotiated: Record<string, unknown> | null = null;
  let before: Promise<StatsMessage | null> = Promise.resolve(null);
  let after: Promise<StatsMessage | null> = Promise.resolve(null);
  let failure: unknown = null;
  try {
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        if (child.pid !== undefined) child.kill('SIGKILL');
        reject(new Error(`the http2 load generator did not finish within ${plan.deadlineMs + 10_000} ms`));
      }, plan.deadlineMs + 10_000);
      child.on('message', (message: Http2Report) => {
        if (message.type === 'ready') info = message.info;
        else if (message.type === 'window') {
          if (message.phase === 'start') before = snapshot(server);
          else after = snapshot(server);
        } else if (message.type === 'echo' || message.type === 'handshake') {
          reported();
          const [first, second] = [before, after];
          before = Promise.resolve(null);
          after = Promise.resolve(null);
          pending.push(
            (async () => {
              const usage = serverUsage(await first, await second);
              if (message.type === 'echo') echo.push({ result: message, server: usage });
              else handshakes.push({ result: message, server: usage });
            })(),
          );
        } else if (message.type === 'done') {
          negotiated = message.negotiated;
          done = true;
        }
      });
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (done && code === 0) resolve();
        else reject(new Error(`the http2 load generator exited with code ${code}, signal ${signal}${done ? '' : ' before reporting everything'}`));
      });
      child.send(plan);
    });
  } catch (error) {
    failure = error;
  }
  await Promise.all(pending);
  return { echo, handshakes, info, negotiated, failure };
}

function windowLabel(window: ClientWindow): string {
  return window === 'browser' ? "a browser's (6 MiB per stream, 15 MiB per session)" : "Node's defaults (64 KiB − 1 per stream and per session)";
}

function serverWindowLabel(window: number | null): string {
  return window === null ? "the server's, as listen({ tls }) sets them" : `${window} B per stream and per session (BENCH_HTTP2_SERVER_WINDOW, attach())`;
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function limitOf(serverElu: number, clientElu: number): string {
  const server = serverElu >= ELU_SATURATED;
  const client = clientElu >= ELU_SATURATED;
  return server && client ? 'both' : server ? 'server' : client ? 'client' : 'neither';
}

function summarizeEcho(scenario: EchoScenario, runs: readonly EchoRecord[], rounds: number): EchoScenarioSummary {
  const mine = runs.filter((run) => run.scenario === scenario.title && run.errors.length === 0 && run.messages > 0);
  const transports = TRANSPORTS.map((transport): EchoTransportSummary => {
    const own = mine.filter((run) => run.transport === transport);
    const serverElu = stats(finite(own.map((run) => run.serverElu)));
    const clientElu = stats(finite(own.map((run) => run.clientElu)));
    return {
      transport,
      label: TRANSPORT_LABELS[transport],
      runs: own.length,
      messagesPerSec: stats(own.map((run) => run.messagesPerSec)),
      mbPerSec: stats(own.map((run) => run.mbPerSec)),
      serverCpuUsPerMessage: stats(finite(own.map((run) => run.serverCpuUsPerMessage))),
      clientCpuUsPerMessage: stats(finite(own.map((run) => run.clientCpuUsPerMessage))),
      serverCpu: stats(finite(own.map((run) => run.serverCpu))),
      serverElu,
      clientCpu: stats(finite(own.map((run) => run.clientCpu))),
      clientElu,
      readsPerMessage: stats(finite(own.map((run) => run.readsPerMessage))),
      openMs: stats(finite(own.map((run) => run.openMs))),
      limit: limitOf(serverElu.median, clientElu.median),
    };
  });
  const throughput: number[] = [];
  const serverCpu: number[] = [];
  const clientCpu: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const h2 = mine.find((run) => run.round === round && run.transport === 'h2');
    const h1 = mine.find((run) => run.round === round && run.transport === 'h1');
    if (h2 === undefined || h1 === undefined) continue;
    throughput.push(h2.messagesPerSec / h1.messagesPerSec);
    serverCpu.push(h2.serverCpuUsPerMessage / h1.serverCpuUsPerMessage);
    clientCpu.push(h2.clientCpuUsPerMessage / h1.clientCpuUsPerMessage);
  }
  return {
    scenario,
    transports,
    ratio: { throughput: stats(throughput), serverCpuPerMessage: stats(finite(serverCpu)), clientCpuPerMessage: stats(finite(clientCpu)) },
  };
}

function summarizeHandshakes(scenario: HandshakeScenario, modes: readonly HandshakeMode[], runs: readonly HandshakeRecord[], rounds: number): HandshakeScenarioSummary {
  const mine = runs.filter((run) => run.scenario === scenario.title && run.count > 0);
  return {
    scenario,
    modes: modes.map((mode): HandshakeModeSummary => {
      const own = mine.filter((run) => run.mode === mode);
      const all = own.flatMap((run) => run.latenciesUs).sort((a, b) => a - b);
      const vsH1: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const ours = own.find((run) => run.round === round);
        const h1 = mine.find((run) => run.round === round && run.mode === 'h1');
        if (ours !== undefined && h1 !== undefined) vsH1.push(ours.p50Us / h1.p50Us);
      }
      const resumed = own.reduce((sum, run) => sum + (run.resumed ?? 0), 0);
      return {
        mode,
        label: HANDSHAKE_LABELS[mode],
        count: all.length,
        p50Us: percentile(all, 0.5),
        p90Us: percentile(all, 0.9),
        p99Us: percentile(all, 0.99),
        maxUs: all.length === 0 ? Number.NaN : all[all.length - 1]!,
        roundP50Us: stats(own.map((run) => run.p50Us)),
        perSec: stats(finite(own.map((run) => run.perSec))),
        serverCpuUsPerSocket: stats(finite(own.map((run) => run.serverCpuUsPerSocket))),
        clientCpuUsPerSocket: stats(finite(own.map((run) => run.clientCpuUsPerSocket))),
        resumedShare: mode === 'h1-resumed' && all.length > 0 ? resumed / all.length : null,
        p50VsH1: stats(finite(vsH1)),
      };
    }),
  };
}

const LEGEND = `msgs/s and MB/s (payload echoed, 10^6 B/s): median with min–max over rounds. srv CPU/msg and gen CPU/msg: CPU time of the
server process and of the load generator process (every thread) per echoed message; srv/gen ELU: event-loop utilization, a side at
ELU ≥ ${ELU_SATURATED} is saturated. reads/msg: the generator's 'data' events per echo (h2: DATA frames; h1: TLS reads). open: the time to open
the N WebSockets (h2: session + N CONNECTs; h1: N TLS connections + upgrades, all at once). Server on one core, generator on the other.
`;

function shortTitle(title: string): string {
  return title.replace(/^echo /, '').replace(/ WebSockets?/, ' WS').replace(/ in flight/, '');
}

export function formatEchoScenario(summary: EchoScenarioSummary, options: Http2Options): string {
  const lines = [`${summary.scenario.title} (binary, median of ${options.rounds} round(s) × ${(options.durationMs / 1000).toFixed(2)} s)`];
  const rows = summary.transports.map((row) => [
    row.label,
    formatRate(row.messagesPerSec.median),
    spread(row.messagesPerSec, formatRate),
    formatMb(row.mbPerSec.median),
    formatMicros(row.serverCpuUsPerMessage.median),
    formatMicros(row.clientCpuUsPerMessage.median),
    `${(100 * row.serverCpu.median).toFixed(0)}%`,
    row.serverElu.median.toFixed(2),
    `${(100 * row.clientCpu.median).toFixed(0)}%`,
    row.clientElu.median.toFixed(2),
    row.readsPerMessage.median.toFixed(2),
    `${row.openMs.median.toFixed(0)} ms`,
    row.limit,
  ]);
  lines.push(
    formatTable(['transport', 'msgs/s', 'min–max', 'MB/s', 'srv CPU/msg', 'gen CPU/msg', 'srv CPU', 'srv ELU', 'gen CPU', 'gen ELU', 'reads/msg', 'open', 'saturated'], rows),
  );
  const { ratio } = summary;
  lines.push(`  h2 ÷ h1: msgs/s ${ratioCell(ratio.throughput)}, server CPU/msg ${ratioCell(ratio.serverCpuPerMessage)}, generator CPU/msg ${ratioCell(ratio.clientCpuPerMessage)}`);
  return lines.join('\n');
}

export function formatHandshakeScenario(summary: HandshakeScenarioSummary, options: Http2Options): string {
  const { scenario } = summary;
  const lines = [
    `${scenario.title} (${scenario.count} counted per mode and round after ${scenario.warmup} more, ${options.rounds} round(s); each WebSocket closed before the next ${scenario.concurrency === 1 ? 'opens' : 'batch'})`,
  ];
  const rows = summary.modes.map((row) => [
    row.label,
    formatMicros(row.p50Us),
    spread(row.roundP50Us, formatMicros),
    formatMicros(row.p90Us),
    formatMicros(row.p99Us),
    formatMicros(row.maxUs),
    ratioCell(row.p50VsH1),
    formatRate(row.perSec.median),
    formatMicros(row.serverCpuUsPerSocket.median),
    formatMicros(row.clientCpuUsPerSocket.median),
    row.resumedShare === null ? '' : `${(100 * row.resumedShare).toFixed(0)}% resumed`,
  ]);
  lines.push(formatTable(['mode', 'p50', 'round p50s', 'p90', 'p99', 'max', 'p50 ÷ h1', 'open+close/s', 'srv CPU/WS', 'gen CPU/WS', ''], rows));
  return lines.join('\n');
}

/** One line per echo scenario: both transports' headline figure and the h2 ÷ h1 ratios. */
export function formatEchoSummary(summaries: readonly EchoScenarioSummary[]): string {
  const rows = summaries.map((summary) => {
    const bytes = summary.scenario.size >= 64 * KIB;
    const cell = (transport: Transport): string => {
      const row = summary.transports.find((candidate) => candidate.transport === transport);
      if (row === undefined) return '-';
      return bytes ? `${formatMb(row.mbPerSec.median)} MB/s` : `${formatRate(row.messagesPerSec.median)} msgs/s`;
    };
    return [shortTitle(summary.scenario.title), cell('h2'), cell('h1'), ratioCell(summary.ratio.throughput), ratioCell(summary.ratio.serverCpuPerMessage), ratioCell(summary.ratio.clientCpuPerMessage)];
  });
  return formatTable(['scenario', 'h2 (1 session)', 'h1 (N TLS conns)', 'h2 ÷ h1 throughput', 'h2 ÷ h1 srv CPU/msg', 'h2 ÷ h1 gen CPU/msg'], rows);
}

function failedEchoRecord(round: number, scenario: string, transport: Transport, error: unknown): EchoRecord {
  const nan = Number.NaN;
  return {
    round,
    scenario,
    transport,
    messagesPerSec: nan,
    mbPerSec: nan,
    messages: 0,
    windowMs: nan,
    clientCpuUsPerMessage: nan,
    clientCpu: nan,
    clientElu: nan,
    serverCpuUsPerMessage: nan,
    serverCpu: nan,
    serverElu: nan,
    readsPerMessage: nan,
    openMs: nan,
    sessionState: null,
    verified: 0,
    errors: [describe(error)],
    loadAverage1: roundedLoad()[0] ?? nan,
  };
}

function echoRecord(round: number, result: EchoResult, server: { cpuUs: number; cpu: number; elu: number }): EchoRecord {
  return {
    round,
    scenario: result.scenario,
    transport: result.transport,
    messagesPerSec: result.messagesPerSec,
    mbPerSec: result.mbPerSec,
    messages: result.messages,
    windowMs: result.windowMs,
    clientCpuUsPerMessage: result.cpuUsPerMessage,
    clientCpu: result.cpu,
    clientElu: result.elu,
    serverCpuUsPerMessage: result.messages > 0 ? server.cpuUs / result.messages : Number.NaN,
    serverCpu: server.cpu,
    serverElu: server.elu,
    readsPerMessage: result.readsPerMessage,
    openMs: result.openMs,
    sessionState: result.sessionState,
    verified: result.verified,
    errors: result.errors,
    loadAverage1: roundedLoad()[0] ?? Number.NaN,
  };
}

function handshakeRecord(round: number, result: HandshakeResult, server: { cpuUs: number }): HandshakeRecord {
  const sorted = [...result.latenciesUs].sort((a, b) => a - b);
  const count = sorted.length;
  return {
    round,
    scenario: result.scenario,
    mode: result.mode,
    count,
    p50Us: percentile(sorted, 0.5),
    p99Us: percentile(sorted, 0.99),
    perSec: count > 0 ? (count * 1000) / result.windowMs : Number.NaN,
    serverCpuUsPerSocket: count > 0 ? server.cpuUs / count : Number.NaN,
    clientCpuUsPerSocket: count > 0 ? result.cpuUs / count : Number.NaN,
    resumed: result.resumed,
    latenciesUs: result.latenciesUs.map((us) => Math.round(us * 10) / 10),
    errors: result.errors,
    loadAverage1: roundedLoad()[0] ?? Number.NaN,
  };
}

export async function runHttp2(run: SectionRun): Promise<{ results: Http2Results; missedTargets: number }> {
  const options = http2OptionsFor(run.quick);
  const filter = run.filter ?? [];
  const matches = (title: string): boolean => filter.length === 0 || filter.some((prefix) => title.startsWith(prefix));
  const echoScenarios = ECHO_SCENARIOS.filter((scenario) => matches(scenario.title));
  const handshakePlans = handshakeScenarios(options.handshakes).filter((plan) => matches(plan.scenario.title));
  const progress = run.progress ?? ((text: string) => process.stderr.write(`${text}\n`));
  const transports = transportsFromEnv();
  const cpuProfileDir = process.env['BENCH_HTTP2_CPU_PROF_DIR'];
  const loadStart = roundedLoad();
  const source = sourceRevision();
  const pinning = pinningAvailable();
  const serverCpus: (string | null)[] = [];
  const clientCpus: (string | null)[] = [];
  let serverInfo: Record<string, unknown> = {};
  let clientInfo: Record<string, unknown> = {};
  let negotiated: Record<string, unknown> | null = null;
  const echoRuns: EchoRecord[] = [];
  const handshakeRuns: HandshakeRecord[] = [];
  const nothing = echoScenarios.length === 0 && handshakePlans.length === 0;
  if (nothing) {
    run.print('no http2 scenario matches the filter');
  } else {
    run.print(
      `rfc6455 at ${source.commit ?? 'unknown commit'}${source.srcModified === true ? ' with uncommitted changes in src/' : ''}; ${options.rounds} round(s); ` +
        `each: one rfc6455 echo server with TLS (HTTP/1.1 + HTTP/2 on one port), one load generator process, every echo scenario over both transports ` +
        `(${options.warmupMs} ms warm-up + ${options.durationMs} ms measured), then the handshakes (${options.handshakes} per mode one at a time); ` +
        `h2 receive windows: client ${windowLabel(options.clientWindow)}, server ${serverWindowLabel(options.serverWindow)}; ` +
        `${pinning === null ? 'not pinned (no taskset or a single CPU)' : `server on CPU ${pinning.server}, load generator on CPU ${pinning.client}`}; load average at start ${loadStart.join(' ')}`,
    );
  }
  for (let round = 0; round < options.rounds && !nothing; round++) {
    let server: ServerHandle | null = null;
    const plan: Http2Plan = {
      type: 'plan',
      port: 0,
      caFile: TLS_FIXTURES.cert,
      echo: echoScenarios.map((scenario, index) => ({ scenario, transports: (index + round) % 2 === 0 ? transports : [...transports].reverse() })),
      handshakes: handshakePlans.map(({ scenario, modes }) => ({ scenario, modes: modes.map((_mode, index) => modes[(index + round) % modes.length]!) })),
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      clientWindow: options.clientWindow,
      deadlineMs: 60_000 + echoScenarios.length * 2 * (options.warmupMs + options.durationMs + 15_000) + handshakePlans.length * 60_000,
    };
    try {
      server = await startServer('rfc6455-tls', {
        ...(pinning === null ? {} : { cpuList: pinning.server }),
        ...(cpuProfileDir === undefined || cpuProfileDir === '' ? {} : { cpuProfileDir }),
      });
      serverInfo = server.info;
      serverCpus.push(allowedCpus(server.pid));
      // The progress line (on a terminal): the child runs the plan's steps in order, echo then handshakes.
      const labels = [
        ...plan.echo.flatMap(({ scenario, transports }) => transports.map((transport) => `${transport} · ${shortTitle(scenario.title)}`)),
        ...plan.handshakes.flatMap(({ scenario, modes }) => modes.map((mode) => `${scenario.title} · ${HANDSHAKE_LABELS[mode]}`)),
      ];
      const base = round * labels.length;
      let inRound = 0;
      const show = (): void => statusLine.update(`http2 · round ${round + 1}/${options.rounds} · ${labels[Math.min(inRound, labels.length - 1)] ?? ''}`, base + inRound, options.rounds * labels.length);
      show();
      const outcome = await runChild(server, { ...plan, port: server.port }, pinning, () => {
        inRound++;
        if (inRound < labels.length) show();
      });
      clientInfo = outcome.info;
      clientCpus.push(typeof outcome.info['cpus'] === 'string' ? outcome.info['cpus'] : null);
      negotiated = outcome.negotiated ?? negotiated;
      for (const { result, server: usage } of outcome.echo) {
        const record = result.messages > 0 || result.errors.length > 0 ? echoRecord(round, result, usage) : failedEchoRecord(round, result.scenario, result.transport, 'no echo in the window');
        echoRuns.push(record);
        progress(
          `  round ${round + 1}/${options.rounds}  ${record.transport}  ${record.scenario.padEnd(44)}  ` +
            (record.errors.length > 0
              ? `ERROR ${record.errors.join('; ')}`
              : `${formatRate(record.messagesPerSec).padStart(8)} msgs/s ${formatMb(record.mbPerSec).padStart(7)} MB/s  srv ${formatMicros(record.serverCpuUsPerMessage).padStart(8)}/msg ` +
                `CPU ${(100 * record.serverCpu).toFixed(0)}% ELU ${record.serverElu.toFixed(2)}  gen ${formatMicros(record.clientCpuUsPerMessage).padStart(8)}/msg CPU ${(100 * record.clientCpu).toFixed(0)}% ` +
                `ELU ${record.clientElu.toFixed(2)}  reads/msg ${record.readsPerMessage.toFixed(2)}`),
        );
      }
      for (const { result, server: usage } of outcome.handshakes) {
        const record = handshakeRecord(round, result, usage);
        handshakeRuns.push(record);
        progress(
          `  round ${round + 1}/${options.rounds}  ${record.scenario.padEnd(26)}  ${HANDSHAKE_LABELS[record.mode].padEnd(34)}  ` +
            `p50 ${formatMicros(record.p50Us).padStart(8)}  p99 ${formatMicros(record.p99Us).padStart(8)}  ${record.count} counted  srv ${formatMicros(record.serverCpuUsPerSocket)}/WS` +
            (record.resumed === null ? '' : `  ${record.resumed} resumed`) +
            (record.errors.length > 0 ? `  ERRORS ${record.errors.join('; ')}` : ''),
        );
      }
      if (outcome.failure !== null) throw outcome.failure;
    } catch (error) {
      progress(`  round ${round + 1}: ${describe(error)}`);
      for (const { scenario, transports } of plan.echo) {
        for (const transport of transports) {
          if (!echoRuns.some((record) => record.round === round && record.scenario === scenario.title && record.transport === transport)) {
            echoRuns.push(failedEchoRecord(round, scenario.title, transport, error));
          }
        }
      }
    } finally {
      await server?.stop();
    }
  }
  statusLine.done();
  const echo = echoScenarios.map((scenario) => summarizeEcho(scenario, echoRuns, options.rounds));
  const handshakes = handshakePlans.map(({ scenario, modes }) => summarizeHandshakes(scenario, modes, handshakeRuns, options.rounds));
  if (echo.length > 0) run.print(LEGEND);
  for (const summary of echo) run.print(`${formatEchoScenario(summary, options)}\n`);
  if (echo.length > 0) run.print(`echo summary (medians; ratios: median of per-round ratios, min–max)\n${formatEchoSummary(echo)}\n`);
  for (const summary of handshakes) run.print(`${formatHandshakeScenario(summary, options)}\n`);
  const failures = echoRuns.filter((record) => record.errors.length > 0).length + handshakeRuns.filter((record) => record.errors.length > 0).length;
  if (failures > 0) run.print(`warning: ${failures} run(s) failed or reported errors; see the JSON file (echoRuns[].errors, handshakeRuns[].errors)`);
  const results: Http2Results = {
    options,
    source,
    pinning: { requested: pinning, server: serverCpus, client: clientCpus },
    serverInfo,
    clientInfo,
    negotiated,
    loadAverage: { start: loadStart, end: roundedLoad() },
    echoRuns,
    handshakeRuns,
    echo,
    handshakes,
  };
  // No performance target: a failed run is what `--check` reports.
  return { results, missedTargets: failures };
}

/** The tables of a results file as Markdown, for BENCHMARKS.md (`bench/http2.ts --markdown`). */
export function http2Markdown(file: { readonly date: string; readonly seconds?: number; readonly environment: Record<string, unknown>; readonly results: Http2Results }): string {
  const { results } = file;
  const env = file.environment;
  const { source, options, pinning } = results;
  const negotiated = results.negotiated ?? {};
  const out = [
    `Run ${file.date.slice(0, 16).replace('T', ' ')} UTC, ${env['mode']} mode${file.seconds === undefined ? '' : `, ${file.seconds.toFixed(0)} s`} ` +
      `(medians of ${options.rounds} round(s), ${options.warmupMs} ms warm-up + ${options.durationMs} ms measured; ${options.handshakes} handshakes per mode and round); ` +
      `${env['cpu']} ×${env['cpus']}, ${env['platform']}-${env['arch']}, Node ${env['node']}; rfc6455 at ${source.commit ?? '?'}${source.srcModified === true ? ' (with uncommitted changes in src/)' : ''}; ` +
      `server on CPU ${[...new Set(pinning.server)].join('/') || '?'}, load generator on CPU ${[...new Set(pinning.client)].join('/') || '?'}; ` +
      `${String(negotiated['h2TlsVersion'] ?? '?')} ${String(negotiated['h2Cipher'] ?? '')}; h2 receive windows: client ${windowLabel(options.clientWindow ?? 'browser')}, server ${serverWindowLabel(options.serverWindow ?? null)}; ` +
      `load average (1/5/15 min) at start ${results.loadAverage.start.join(' / ')}, at end ${results.loadAverage.end.join(' / ')}.`,
    '',
    '**Echo**: N WebSockets × 16 binary messages in flight each; h2 = N streams of one HTTP/2 session, h1 = N TLS connections.',
    '',
    markdownTable(
      ['scenario', 'transport', 'msgs/s', 'min–max', 'MB/s', 'server CPU / msg', 'generator CPU / msg', 'server ELU', 'generator ELU', 'reads / msg', 'saturated'],
      results.echo.flatMap((summary) =>
        summary.transports.map((row) => [
          shortTitle(summary.scenario.title),
          row.transport,
          formatRate(row.messagesPerSec.median),
          spread(row.messagesPerSec, formatRate),
          formatMb(row.mbPerSec.median),
          formatMicros(row.serverCpuUsPerMessage.median),
          formatMicros(row.clientCpuUsPerMessage.median),
          row.serverElu.median.toFixed(2),
          row.clientElu.median.toFixed(2),
          row.readsPerMessage.median.toFixed(2),
          row.limit,
        ]),
      ),
    ),
    '',
    'h2 ÷ h1, median of the per-round ratios (min–max); CPU per message below 1 is less CPU for h2:',
    '',
    markdownTable(
      ['scenario', 'msgs/s', 'server CPU / msg', 'generator CPU / msg'],
      results.echo.map((summary) => [
        shortTitle(summary.scenario.title),
        ratioCell(summary.ratio.throughput),
        ratioCell(summary.ratio.serverCpuPerMessage),
        ratioCell(summary.ratio.clientCpuPerMessage),
      ]),
    ),
  ];
  for (const summary of results.handshakes) {
    out.push(
      '',
      `**${summary.scenario.title[0]!.toUpperCase()}${summary.scenario.title.slice(1)}** (${summary.scenario.count} per mode and round × ${options.rounds}, pooled; each closed before the next ${summary.scenario.concurrency === 1 ? 'opens' : 'batch'}):`,
      '',
      markdownTable(
        ['mode', 'p50', 'round p50s', 'p90', 'p99', 'p50 ÷ h1', 'opened + closed / s', 'server CPU / WS', 'generator CPU / WS'],
        summary.modes.map((row) => [
          row.label + (row.resumedShare === null ? '' : ` (${(100 * row.resumedShare).toFixed(0)} % resumed)`),
          formatMicros(row.p50Us),
          spread(row.roundP50Us, formatMicros),
          formatMicros(row.p90Us),
          formatMicros(row.p99Us),
          ratioCell(row.p50VsH1),
          formatRate(row.perSec.median),
          formatMicros(row.serverCpuUsPerSocket.median),
          formatMicros(row.clientCpuUsPerSocket.median),
        ]),
      ),
    );
  }
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await sectionMain('http2', runHttp2, http2Markdown);
}
