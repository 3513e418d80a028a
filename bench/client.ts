/**
 * Client-side throughput: our WebSocket client beside ws's, against the same server.
 *
 *   rfc6455 (for await)       our client with its async API: `for await` over messages, `await send()`
 *   rfc6455 (on 'message')    our client with its event API, each echo answered by a send nobody awaits
 *   ws + bufferutil           ws's client (`on('message')`, `send()`), masking with its native add-on
 *   ws, no bufferutil         the same with WS_NO_BUFFER_UTIL=1: ws masks in JavaScript
 *   raw loadgen (no library)  bench/loadgen.ts: raw sockets, frames built and masked before the run
 *
 * The server is the rfc6455 echo of the e2e section (bench/servers/rfc6455-echo.ts, compiled to
 * JavaScript), one process per round pinned to CPU 0 with taskset; each client runs in its own child
 * process (bench/client-load.ts, compiled the same way) pinned to CPU 1, so the JIT state of one
 * client never reaches another and a client never takes the server's core. In a round every client
 * runs in turn (the order rotated from round to round) every scenario: C connections each keeping W
 * binary messages in flight (send W, then one more per echo), every echo compared byte for byte with
 * what was sent, a warm-up, then a fixed window. Masking is in every row by construction: both
 * libraries mask each frame with a fresh key (RFC 6455 §5.3); the raw generator's frames are masked
 * before the run, which is what makes it the ceiling.
 *
 * Reported per client: messages/s and MB/s, and the client process's CPU time per echoed message
 * (`process.cpuUsage()`, every thread): where the server is the limit, throughput says little about
 * the client, its CPU per message still does. The server's CPU and both event-loop utilizations say
 * which side was saturated. Ratios are taken within a round; the median of the per-round ratios is
 * reported with their min and max.
 *
 *   node --import tsx bench/client.ts [--quick] [--filter=client 64 KiB]
 *   node --import tsx bench/client.ts --markdown        the tables of bench/results/latest-client.json
 *   BENCH_CLIENT_ROUNDS=3 BENCH_CLIENT_WARMUP_MS=400 BENCH_CLIENT_DURATION_MS=1500
 *   BENCH_CLIENT_KINDS=rfc6455,rfc6455-events,ws,ws-no-bufferutil,raw
 */
import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import type { ClientKind, ClientPlan, ClientReport, ClientResult, ClientScenario } from './client-load.ts';
import { formatMb, formatMicros, formatRate, formatRatio, formatTable, markdownTable, ratioCell, spread } from './format.ts';
import { finite, stats, type Stats } from './harness.ts';
import { progress as statusLine } from './progress.ts';
import { envNumber, loadScript, roundedLoad, sectionMain, type SectionRun } from './section.ts';
import { allowedCpus, pinningAvailable, type Pinning } from './shared.ts';
import type { StatsMessage } from './servers/common.ts';
import { sourceRevision, startServer, usageBetween, type ServerHandle } from './servers/control.ts';

export type { ClientKind, ClientScenario } from './client-load.ts';

export const CLIENT_SCENARIOS: readonly ClientScenario[] = [
  { title: 'client 16 B × 1 connection × 16 in flight', size: 16, connections: 1, inFlight: 16 },
  { title: 'client 16 B × 16 connections × 16 in flight', size: 16, connections: 16, inFlight: 16 },
  { title: 'client 64 KiB × 1 connection × 16 in flight', size: 64 * 1024, connections: 1, inFlight: 16 },
  { title: 'client 64 KiB × 16 connections × 16 in flight', size: 64 * 1024, connections: 16, inFlight: 16 },
];

export const CLIENT_KINDS: readonly ClientKind[] = ['rfc6455', 'rfc6455-events', 'ws', 'ws-no-bufferutil', 'raw'];

export const CLIENT_LABELS: Readonly<Record<ClientKind, string>> = {
  rfc6455: 'rfc6455 (for await)',
  'rfc6455-events': "rfc6455 (on 'message')",
  ws: 'ws + bufferutil',
  'ws-no-bufferutil': 'ws, no bufferutil',
  raw: 'raw loadgen (no library)',
};

/** Our rows, each compared with every other row. */
const OURS: readonly ClientKind[] = ['rfc6455', 'rfc6455-events'];

export interface ClientOptions {
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export const QUICK_CLIENT: ClientOptions = { rounds: 1, warmupMs: 150, durationMs: 400 };
export const FULL_CLIENT: ClientOptions = { rounds: 3, warmupMs: 400, durationMs: 1500 };

/** Event-loop utilization from which a side counts as saturated (as in the e2e section). */
const ELU_SATURATED = 0.9;

export interface ClientRunRecord {
  readonly round: number;
  readonly client: ClientKind;
  readonly scenario: string;
  readonly messagesPerSec: number;
  readonly mbPerSec: number;
  readonly messages: number;
  readonly windowMs: number;
  /** The client process's CPU time per echoed message, in µs. */
  readonly clientCpuUsPerMessage: number;
  /** The client process's CPU time ÷ wall time. */
  readonly clientCpu: number;
  readonly clientElu: number;
  /** The server process's CPU time ÷ wall time, over the client's window. */
  readonly serverCpu: number;
  readonly serverElu: number;
  readonly verified: number;
  readonly errors: readonly string[];
  readonly loadAverage1: number;
}

export interface ClientSummary {
  readonly client: ClientKind;
  readonly label: string;
  readonly runs: number;
  readonly messagesPerSec: Stats;
  readonly mbPerSec: Stats;
  readonly clientCpuUsPerMessage: Stats;
  readonly clientCpu: Stats;
  readonly clientElu: Stats;
  readonly serverCpu: Stats;
  readonly serverElu: Stats;
  /** `server`, `client`, `both` (each at ELU ≥ 0.9) or `neither`, by median ELU. */
  readonly limit: string;
}

export interface ClientRatio {
  readonly numerator: ClientKind;
  readonly denominator: ClientKind;
  /** Per-round ratio of messages/s (equal to the MB/s ratio: same size). */
  readonly throughput: Stats;
  /** Per-round ratio of client CPU per message (lower is better for the numerator). */
  readonly cpuPerMessage: Stats;
}

export interface ClientScenarioSummary {
  readonly scenario: ClientScenario;
  readonly clients: readonly ClientSummary[];
  readonly ratios: readonly ClientRatio[];
}

export interface ClientResults {
  readonly options: ClientOptions;
  /** The commit the server and our client were built from, and whether src/ had uncommitted changes. */
  readonly source: { readonly commit: string | null; readonly srcModified: boolean | null };
  /** The CPUs asked for, and those the processes were actually allowed (from /proc). */
  readonly pinning: { readonly requested: Pinning | null; readonly server: readonly (string | null)[]; readonly clients: Partial<Record<ClientKind, string | null>> };
  readonly serverInfo: Record<string, unknown>;
  readonly clientInfo: Partial<Record<ClientKind, Record<string, unknown>>>;
  readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] };
  readonly runs: readonly ClientRunRecord[];
  readonly scenarios: readonly ClientScenarioSummary[];
}

export function clientOptionsFor(quick: boolean): ClientOptions {
  const base = quick ? QUICK_CLIENT : FULL_CLIENT;
  return {
    rounds: Math.max(1, Math.round(envNumber('BENCH_CLIENT_ROUNDS') ?? base.rounds)),
    warmupMs: envNumber('BENCH_CLIENT_WARMUP_MS') ?? base.warmupMs,
    durationMs: Math.max(50, envNumber('BENCH_CLIENT_DURATION_MS') ?? base.durationMs),
  };
}

function kindsFromEnv(): ClientKind[] {
  const value = process.env['BENCH_CLIENT_KINDS'];
  if (value === undefined || value === '') return [...CLIENT_KINDS];
  const list = value.split(',').map((item) => item.trim()) as ClientKind[];
  for (const kind of list) if (!CLIENT_KINDS.includes(kind)) throw new RangeError(`BENCH_CLIENT_KINDS: unknown client ${kind}`);
  return list;
}

interface ChildHooks {
  readonly ready: (info: Record<string, unknown>) => void;
  readonly window: (phase: 'start' | 'end') => void;
  readonly result: (result: ClientResult) => void;
}

/**
 * Runs one client child over every scenario of the plan; resolves when it has reported them all and
 * exited. It is killed (SIGKILL, by its PID) if it outlives its own deadline by 10 s.
 */
function runChild(plan: ClientPlan, pinning: Pinning | null, hooks: ChildHooks): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (plan.kind === 'ws-no-bufferutil') env['WS_NO_BUFFER_UTIL'] = '1';
  else delete env['WS_NO_BUFFER_UTIL'];
  const script = loadScript('client-load');
  // taskset execs node in its own place: the PID spawn returns is node's.
  const [command, ...args] = pinning === null ? [process.execPath, ...script] : ['taskset', '-c', pinning.client, process.execPath, ...script];
  const child = spawn(command!, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env });
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (child.pid !== undefined) child.kill('SIGKILL');
      reject(new Error(`the ${plan.kind} client did not finish within ${plan.deadlineMs + 10_000} ms`));
    }, plan.deadlineMs + 10_000);
    child.on('message', (message: ClientReport) => {
      if (message.type === 'ready') hooks.ready(message.info);
      else if (message.type === 'window') hooks.window(message.phase);
      else if (message.type === 'result') hooks.result(message);
      else if (message.type === 'done') done = true;
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (done && code === 0) resolve();
      else reject(new Error(`the ${plan.kind} client exited with code ${code}, signal ${signal}${done ? '' : ' before reporting every scenario'}`));
    });
    child.send(plan);
  });
}

function snapshot(server: ServerHandle): Promise<StatsMessage | null> {
  return server.stats().catch((error: unknown) => {
    process.stderr.write(`stats of the server: ${error instanceof Error ? error.message : String(error)}\n`);
    return null;
  });
}

function failedRecord(round: number, client: ClientKind, scenario: string, error: unknown): ClientRunRecord {
  const nan = Number.NaN;
  return {
    round,
    client,
    scenario,
    messagesPerSec: nan,
    mbPerSec: nan,
    messages: 0,
    windowMs: nan,
    clientCpuUsPerMessage: nan,
    clientCpu: nan,
    clientElu: nan,
    serverCpu: nan,
    serverElu: nan,
    verified: 0,
    errors: [error instanceof Error ? error.message : String(error)],
    loadAverage1: roundedLoad()[0] ?? nan,
  };
}

/** Every scenario of one client against `server`, in one child process. */
async function measureClient(
  server: ServerHandle,
  kind: ClientKind,
  scenarios: readonly ClientScenario[],
  options: ClientOptions,
  round: number,
  pinning: Pinning | null,
  seen: (info: Record<string, unknown>) => void,
  /** Each scenario's result as it comes (the child runs them in order). */
  finished: (result: ClientResult) => void = () => {},
): Promise<ClientRunRecord[]> {
  // Per scenario: warm-up, window, the drain and the close handshakes, and room for a slow start.
  const deadlineMs = 30_000 + scenarios.length * (options.warmupMs + options.durationMs + 20_000);
  const plan: ClientPlan = { type: 'plan', kind, port: server.port, scenarios, warmupMs: options.warmupMs, durationMs: options.durationMs, deadlineMs };
  let before: Promise<StatsMessage | null> = Promise.resolve(null);
  let after: Promise<StatsMessage | null> = Promise.resolve(null);
  const pending: Promise<ClientRunRecord>[] = [];
  const record = async (result: ClientResult, first: Promise<StatsMessage | null>, second: Promise<StatsMessage | null>): Promise<ClientRunRecord> => {
    const [atStart, atEnd] = [await first, await second];
    const usage = atStart !== null && atEnd !== null ? usageBetween(atStart, atEnd) : { cpu: Number.NaN, elu: Number.NaN };
    return {
      round,
      client: kind,
      scenario: result.scenario,
      messagesPerSec: result.messagesPerSec,
      mbPerSec: result.mbPerSec,
      messages: result.messages,
      windowMs: result.windowMs,
      clientCpuUsPerMessage: result.cpuUsPerMessage,
      clientCpu: result.cpu,
      clientElu: result.elu,
      serverCpu: usage.cpu,
      serverElu: usage.elu,
      verified: result.verified,
      errors: result.errors,
      loadAverage1: roundedLoad()[0] ?? Number.NaN,
    };
  };
  let failure: unknown = null;
  try {
    await runChild(plan, pinning, {
      ready: seen,
      window: (phase) => {
        if (phase === 'start') before = snapshot(server);
        else after = snapshot(server);
      },
      result: (result) => {
        finished(result);
        pending.push(record(result, before, after));
        before = Promise.resolve(null);
        after = Promise.resolve(null);
      },
    });
  } catch (error) {
    failure = error;
  }
  const records = await Promise.all(pending);
  if (failure !== null) {
    for (const scenario of scenarios) {
      if (!records.some((candidate) => candidate.scenario === scenario.title)) records.push(failedRecord(round, kind, scenario.title, failure));
    }
  }
  return records;
}

function limitOf(serverElu: number, clientElu: number): string {
  const server = serverElu >= ELU_SATURATED;
  const client = clientElu >= ELU_SATURATED;
  return server && client ? 'both' : server ? 'server' : client ? 'client' : 'neither';
}

function summarize(scenario: ClientScenario, kinds: readonly ClientKind[], runs: readonly ClientRunRecord[], rounds: number): ClientScenarioSummary {
  const mine = runs.filter((run) => run.scenario === scenario.title && run.errors.length === 0 && run.messages > 0);
  const clients = kinds.map((client): ClientSummary => {
    const own = mine.filter((run) => run.client === client);
    const serverElu = stats(finite(own.map((run) => run.serverElu)));
    const clientElu = stats(finite(own.map((run) => run.clientElu)));
    return {
      client,
      label: CLIENT_LABELS[client],
      runs: own.length,
      messagesPerSec: stats(own.map((run) => run.messagesPerSec)),
      mbPerSec: stats(own.map((run) => run.mbPerSec)),
      clientCpuUsPerMessage: stats(finite(own.map((run) => run.clientCpuUsPerMessage))),
      clientCpu: stats(finite(own.map((run) => run.clientCpu))),
      clientElu,
      serverCpu: stats(finite(own.map((run) => run.serverCpu))),
      serverElu,
      limit: limitOf(serverElu.median, clientElu.median),
    };
  });
  const ratios: ClientRatio[] = [];
  for (const numerator of OURS.filter((kind) => kinds.includes(kind))) {
    for (const denominator of kinds) {
      if (denominator === numerator || OURS.includes(denominator)) continue;
      const throughput: number[] = [];
      const cpuPerMessage: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const ours = mine.find((run) => run.round === round && run.client === numerator);
        const other = mine.find((run) => run.round === round && run.client === denominator);
        if (ours === undefined || other === undefined) continue;
        throughput.push(ours.messagesPerSec / other.messagesPerSec);
        cpuPerMessage.push(ours.clientCpuUsPerMessage / other.clientCpuUsPerMessage);
      }
      ratios.push({ numerator, denominator, throughput: stats(throughput), cpuPerMessage: stats(finite(cpuPerMessage)) });
    }
  }
  return { scenario, clients, ratios };
}

const LEGEND = `msgs/s and MB/s (payload echoed, 10^6 B/s): median with min–max over rounds. CPU/msg: the client process's CPU time (every
thread, GC included) per echoed message; client CPU: that time ÷ wall time. cl ELU / srv ELU: event-loop utilization of the
client's thread and of the server's; a side at ELU ≥ ${ELU_SATURATED} is saturated. Server on one core, each client on the other.
`;

export function formatClientScenario(summary: ClientScenarioSummary, options: ClientOptions): string {
  const { scenario } = summary;
  const lines = [`${scenario.title} (binary, median of ${options.rounds} round(s) × ${(options.durationMs / 1000).toFixed(2)} s)`];
  const rows = summary.clients.map((row) => [
    row.label,
    formatRate(row.messagesPerSec.median),
    spread(row.messagesPerSec, formatRate),
    formatMb(row.mbPerSec.median),
    formatMicros(row.clientCpuUsPerMessage.median),
    spread(row.clientCpuUsPerMessage, formatMicros),
    `${(100 * row.clientCpu.median).toFixed(0)}%`,
    row.clientElu.median.toFixed(2),
    `${(100 * row.serverCpu.median).toFixed(0)}%`,
    row.serverElu.median.toFixed(2),
    row.limit,
  ]);
  lines.push(formatTable(['client', 'msgs/s', 'min–max', 'MB/s', 'CPU/msg', 'min–max', 'client CPU', 'cl ELU', 'srv CPU', 'srv ELU', 'saturated'], rows));
  for (const ratio of summary.ratios) {
    lines.push(
      `  ${CLIENT_LABELS[ratio.numerator]} / ${CLIENT_LABELS[ratio.denominator]}: msgs/s ${ratioCell(ratio.throughput)}, client CPU/msg ${ratioCell(ratio.cpuPerMessage)}`,
    );
  }
  return lines.join('\n');
}

/** One line per scenario and metric, every client side by side, with our rows ÷ ws + bufferutil. */
export function formatClientSummary(summaries: readonly ClientScenarioSummary[], kinds: readonly ClientKind[]): string {
  const ours = OURS.filter((kind) => kinds.includes(kind));
  const compared = kinds.includes('ws') ? ours : [];
  const header = ['scenario', 'metric', ...kinds.map((kind) => CLIENT_LABELS[kind]), ...compared.map((kind) => `${CLIENT_LABELS[kind]} / ws + bufferutil`)];
  const rows: string[][] = [];
  for (const summary of summaries) {
    const short = summary.scenario.title.replace(/^client /, '').replace(/ connections?/, ' conn').replace(/ in flight/, '');
    const bytes = summary.scenario.size >= 1024;
    const cell = (kind: ClientKind, value: (row: ClientSummary) => string): string => {
      const row = summary.clients.find((candidate) => candidate.client === kind);
      return row === undefined ? '-' : value(row);
    };
    const ratio = (kind: ClientKind, value: (row: ClientRatio) => Stats): string => {
      const row = summary.ratios.find((candidate) => candidate.numerator === kind && candidate.denominator === 'ws');
      return row === undefined ? '-' : formatRatio(value(row).median);
    };
    rows.push([
      short,
      bytes ? 'MB/s' : 'msgs/s',
      ...kinds.map((kind) => cell(kind, (row) => (bytes ? formatMb(row.mbPerSec.median) : formatRate(row.messagesPerSec.median)))),
      ...compared.map((kind) => ratio(kind, (row) => row.throughput)),
    ]);
    rows.push([
      short,
      'CPU/msg',
      ...kinds.map((kind) => cell(kind, (row) => formatMicros(row.clientCpuUsPerMessage.median))),
      ...compared.map((kind) => ratio(kind, (row) => row.cpuPerMessage)),
    ]);
  }
  return formatTable(header, rows);
}

export async function runClient(run: SectionRun): Promise<{ results: ClientResults; missedTargets: number }> {
  const options = clientOptionsFor(run.quick);
  const filter = run.filter ?? [];
  const scenarios = CLIENT_SCENARIOS.filter((scenario) => filter.length === 0 || filter.some((prefix) => scenario.title.startsWith(prefix)));
  const kinds = kindsFromEnv();
  const progress = run.progress ?? ((text: string) => process.stderr.write(`${text}\n`));
  const loadStart = roundedLoad();
  const source = sourceRevision();
  const pinning = pinningAvailable();
  const serverCpus: (string | null)[] = [];
  const clientCpus: Partial<Record<ClientKind, string | null>> = {};
  let serverInfo: Record<string, unknown> = {};
  const clientInfo: Partial<Record<ClientKind, Record<string, unknown>>> = {};
  const runs: ClientRunRecord[] = [];
  if (scenarios.length === 0) {
    run.print('no client scenario matches the filter');
  } else {
    run.print(
      `rfc6455 at ${source.commit ?? 'unknown commit'}${source.srcModified === true ? ' with uncommitted changes in src/' : ''}; ${options.rounds} round(s); ` +
        `each: one rfc6455 echo server, every client in turn (order rotated) in its own process, every scenario, ${options.warmupMs} ms warm-up + ${options.durationMs} ms measured; ` +
        `${pinning === null ? 'not pinned (no taskset or a single CPU)' : `server on CPU ${pinning.server}, clients on CPU ${pinning.client}`}; load average at start ${loadStart.join(' ')}`,
    );
  }
  const steps = options.rounds * kinds.length * scenarios.length;
  let done = 0;
  for (let round = 0; round < options.rounds && scenarios.length > 0; round++) {
    let server: ServerHandle | null = null;
    try {
      server = await startServer('rfc6455', pinning === null ? {} : { cpuList: pinning.server });
      serverInfo = server.info;
      serverCpus.push(allowedCpus(server.pid));
      const order = kinds.map((_kind, index) => kinds[(index + round) % kinds.length]!);
      for (const kind of order) {
        // The progress line (on a terminal): the scenario the child runs now.
        const base = done;
        const show = (index: number): void => {
          const scenario = scenarios[Math.min(index, scenarios.length - 1)]!;
          statusLine.update(`client · round ${round + 1}/${options.rounds} · ${CLIENT_LABELS[kind]} · ${scenario.title.replace(/^client /, '')}`, base + index, steps);
        };
        show(0);
        const records = await measureClient(
          server,
          kind,
          scenarios,
          options,
          round,
          pinning,
          (info) => {
            clientInfo[kind] = info;
            clientCpus[kind] = typeof info['cpus'] === 'string' ? info['cpus'] : null;
            if (kind === 'ws' && info['bufferutil'] !== true) run.print('warning: the ws client did not load native bufferutil');
          },
          () => {
            done++;
            if (done - base < scenarios.length) show(done - base);
          },
        );
        done = base + scenarios.length;
        for (const record of records) {
          runs.push(record);
          progress(
            `  round ${record.round + 1}/${options.rounds}  ${CLIENT_LABELS[kind].padEnd(24)}  ${record.scenario.padEnd(46)}  ` +
              (record.errors.length > 0
                ? `ERROR ${record.errors.join('; ')}`
                : `${formatRate(record.messagesPerSec).padStart(8)} msgs/s ${formatMb(record.mbPerSec).padStart(7)} MB/s  CPU/msg ${formatMicros(record.clientCpuUsPerMessage).padStart(8)}  ` +
                  `client CPU ${(100 * record.clientCpu).toFixed(0)}% ELU ${record.clientElu.toFixed(2)}  srv CPU ${(100 * record.serverCpu).toFixed(0)}% ELU ${record.serverElu.toFixed(2)}`),
          );
        }
      }
    } catch (error) {
      progress(`  round ${round + 1}: the server failed: ${error instanceof Error ? error.message : String(error)}`);
      for (const kind of kinds) {
        for (const scenario of scenarios) {
          if (!runs.some((record) => record.round === round && record.client === kind && record.scenario === scenario.title)) {
            runs.push(failedRecord(round, kind, scenario.title, error));
          }
        }
      }
    } finally {
      await server?.stop();
    }
    done = (round + 1) * kinds.length * scenarios.length;
  }
  statusLine.done();
  const summaries = scenarios.map((scenario) => summarize(scenario, kinds, runs, options.rounds));
  if (summaries.length > 0) run.print(LEGEND);
  for (const summary of summaries) run.print(`${formatClientScenario(summary, options)}\n`);
  if (summaries.length > 0) run.print(`summary (medians; ratios: median of per-round ratios)\n${formatClientSummary(summaries, kinds)}\n`);
  const failures = runs.filter((record) => record.errors.length > 0);
  if (failures.length > 0) run.print(`warning: ${failures.length} run(s) failed; see the JSON file (runs[].errors)`);
  const results: ClientResults = {
    options,
    source,
    pinning: { requested: pinning, server: serverCpus, clients: clientCpus },
    serverInfo,
    clientInfo,
    loadAverage: { start: loadStart, end: roundedLoad() },
    runs,
    scenarios: summaries,
  };
  // No performance target yet: a failed run is what `--check` reports.
  return { results, missedTargets: failures.length };
}

/** The summary of a results file as Markdown, for BENCHMARKS.md (`bench/client.ts --markdown`). */
export function clientMarkdown(file: { readonly date: string; readonly environment: Record<string, unknown>; readonly results: ClientResults }): string {
  const { results } = file;
  const env = file.environment;
  const { source, options, pinning } = results;
  const kinds = CLIENT_KINDS.filter((kind) => results.scenarios[0]?.clients.some((row) => row.client === kind && row.runs > 0));
  const out = [
    `Run ${file.date.slice(0, 16).replace('T', ' ')} UTC, ${env['mode']} mode (medians of ${options.rounds} round(s), ${options.warmupMs} ms warm-up + ${options.durationMs} ms measured); ` +
      `${env['cpu']} ×${env['cpus']}, ${env['platform']}-${env['arch']}, Node ${env['node']}; rfc6455 at ${source.commit ?? '?'}${source.srcModified === true ? ' (with uncommitted changes in src/)' : ''}; ` +
      `server on CPU ${[...new Set(pinning.server)].join('/') || '?'}, clients on CPU ${[...new Set(Object.values(pinning.clients))].join('/') || '?'}; ` +
      `load average (1/5/15 min) at start ${results.loadAverage.start.join(' / ')}, at end ${results.loadAverage.end.join(' / ')}.`,
    '',
    markdownTable(
      ['scenario', 'client', 'msgs/s', 'MB/s', 'client CPU / msg', 'client CPU', 'client ELU', 'server ELU', 'saturated'],
      results.scenarios.flatMap((summary) =>
        summary.clients
          .filter((row) => kinds.includes(row.client))
          .map((row) => [
            summary.scenario.title.replace(/^client /, ''),
            row.label,
            formatRate(row.messagesPerSec.median),
            formatMb(row.mbPerSec.median),
            formatMicros(row.clientCpuUsPerMessage.median),
            `${(100 * row.clientCpu.median).toFixed(0)} %`,
            row.clientElu.median.toFixed(2),
            row.serverElu.median.toFixed(2),
            row.limit,
          ]),
      ),
    ),
    '',
    'Our client ÷ the others, median of the per-round ratios (min–max); CPU/msg below 1 is less CPU than the other:',
    '',
    markdownTable(
      ['scenario', 'ratio', 'msgs/s', 'client CPU / msg'],
      results.scenarios.flatMap((summary) =>
        summary.ratios.map((ratio) => [
          summary.scenario.title.replace(/^client /, ''),
          `${CLIENT_LABELS[ratio.numerator]} ÷ ${CLIENT_LABELS[ratio.denominator]}`,
          ratioCell(ratio.throughput),
          ratioCell(ratio.cpuPerMessage),
        ]),
      ),
    ),
  ];
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await sectionMain('client', runClient, clientMarkdown);
}
