/**
 * The child process of the client section (bench/client.ts): drives ONE client implementation against
 * an echo server, one scenario after another, and reports each over IPC. One implementation per
 * process, so what the JIT learned from one library neither helps nor hurts another.
 *
 *   rfc6455           our client, read with `for await` and answered with `await ws.send()`
 *   rfc6455-events    our client, read with `on('message')` and answered with a send nobody awaits
 *   ws                ws's client, `on('message')` and `send()`, with its native add-on bufferutil
 *   ws-no-bufferutil  the same with WS_NO_BUFFER_UTIL=1 (set by the parent): ws masks in JavaScript
 *   raw               bench/loadgen.ts: raw sockets, every frame built before the run: the ceiling
 *
 * Each connection keeps `inFlight` binary messages in flight: it sends that many, then one more per
 * echo. Every echo is compared byte for byte with the payload sent, as the raw generator compares its
 * frames, so every row does the work of reading what came back. After a warm-up, a window of
 * `durationMs` counts echoes and this process's CPU time (`process.cpuUsage()`: every thread, GC
 * included); then sending stops, the echoes still in flight are awaited, and the connections close, so
 * the server is idle again before the next scenario.
 *
 * With the parent, over IPC: parent → child `{ type: 'plan' }`; child → parent `ready` (what it
 * loaded), `window` at the edges of each measured window (the parent reads the server's CPU there),
 * `result` per scenario, `done`. It connects only to 127.0.0.1, and exits by itself when its deadline
 * passes or when the parent goes away.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { LOOPBACK, runLoad, xorshift } from './loadgen.ts';
import { allowedCpus, describe, within } from './shared.ts';
import { MAX_REPORTED_ERRORS } from './workers.ts';

export type ClientKind = 'rfc6455' | 'rfc6455-events' | 'ws' | 'ws-no-bufferutil' | 'raw';

export interface ClientScenario {
  /** Group title, matched by `--filter` prefixes. */
  readonly title: string;
  /** Payload bytes per message. */
  readonly size: number;
  readonly connections: number;
  /** Messages in flight per connection. */
  readonly inFlight: number;
}

export interface ClientPlan {
  readonly type: 'plan';
  readonly kind: ClientKind;
  readonly port: number;
  readonly scenarios: readonly ClientScenario[];
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The child exits after this long, whatever happens. */
  readonly deadlineMs: number;
}

export interface ClientReady {
  readonly type: 'ready';
  /** The library and how it runs (e.g. whether ws loaded native bufferutil, the CPUs this process may use). */
  readonly info: Record<string, unknown>;
}

export interface ClientWindowEdge {
  readonly type: 'window';
  readonly phase: 'start' | 'end';
}

export interface ClientResult {
  readonly type: 'result';
  readonly scenario: string;
  /** Echoes completed and verified inside the window. */
  readonly messages: number;
  readonly windowMs: number;
  readonly messagesPerSec: number;
  /** Payload bytes echoed per second, in 10^6 bytes. */
  readonly mbPerSec: number;
  /** CPU time of this process over the window, every thread. */
  readonly cpuUs: number;
  readonly cpuUsPerMessage: number;
  /** cpuUs ÷ wall time: 1.0 is one core busy. */
  readonly cpu: number;
  /** Event-loop utilization of the thread that runs the connections. */
  readonly elu: number;
  /** Echoes verified over the whole scenario, warm-up and drain included. */
  readonly verified: number;
  readonly errors: readonly string[];
}

export type ClientReport = ClientReady | ClientWindowEdge | ClientResult | { readonly type: 'done' };

/** Distinct payloads sent in turn, so a stale or reordered echo does not compare equal. */
const VARIANTS = 4;
const CONNECT_TIMEOUT_MS = 10_000;
const DRAIN_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 5_000;

function payloadVariants(size: number): Buffer[] {
  const random = xorshift(0xc11e0000 + size);
  return Array.from({ length: VARIANTS }, () => {
    const payload = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) payload[i] = random() & 0xff;
    return payload;
  });
}

/** What every connection of a scenario shares. */
class Traffic {
  /** Echoes are answered with a new message while set: from the start to the end of the window. */
  sending = true;
  /** Echoes verified so far, every connection. */
  echoes = 0;
  readonly variants: readonly Buffer[];
  readonly inFlight: number;
  readonly errors: string[] = [];

  constructor(variants: readonly Buffer[], inFlight: number) {
    this.variants = variants;
    this.inFlight = inFlight;
  }

  error(message: string): void {
    if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push(message);
  }
}

/** One connection's side of the pipeline: which payload goes next, which echo is due, how many are out. */
class Pipeline {
  private readonly traffic: Traffic;
  private nextSend = 0;
  private nextEcho = 0;
  private outstanding = 0;
  private onDrained: (() => void) | null = null;

  constructor(traffic: Traffic) {
    this.traffic = traffic;
  }

  nextPayload(): Buffer {
    const variants = this.traffic.variants;
    const payload = variants[this.nextSend]!;
    this.nextSend = this.nextSend + 1 === variants.length ? 0 : this.nextSend + 1;
    this.outstanding++;
    return payload;
  }

  /** Checks an echo; true when it is to be answered with the next message. */
  echoed(data: Buffer): boolean {
    const traffic = this.traffic;
    const expected = traffic.variants[this.nextEcho]!;
    if (!data.equals(expected)) traffic.error(`echo mismatch: ${data.length} bytes, expected ${expected.length} (message ${this.nextEcho} of the cycle)`);
    this.nextEcho = this.nextEcho + 1 === traffic.variants.length ? 0 : this.nextEcho + 1;
    this.outstanding--;
    traffic.echoes++;
    if (traffic.sending) return true;
    if (this.outstanding === 0) this.onDrained?.();
    return false;
  }

  /** Resolves once every message sent has come back (call after `sending` is cleared). */
  drained(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onDrained = resolve;
    });
  }
}

interface BenchConnection {
  readonly pipeline: Pipeline;
  /** Sends the first `inFlight` messages; from then on each echo is answered while `sending`. */
  start(): void;
  /** The close handshake. */
  close(): Promise<void>;
}

type Opener = (port: number, traffic: Traffic) => Promise<BenchConnection>;

function url(port: number): string {
  return `ws://${LOOPBACK}:${port}/`;
}

/** Our client. `iterate`: the async API (`for await`, `await send`); else the event API. */
function rfc6455Opener(iterate: boolean): Opener {
  return async (port, traffic) => {
    // Imported here, not at the top, so the ws and raw rows still run when the client cannot load.
    const { connect } = await import('../src/index.ts');
    const ws = await connect(url(port), { perMessageDeflate: false });
    const pipeline = new Pipeline(traffic);
    let reading: Promise<void> = Promise.resolve();
    return {
      pipeline,
      start() {
        if (iterate) {
          reading = (async () => {
            for await (const message of ws) {
              if (pipeline.echoed(message.data)) await ws.send(pipeline.nextPayload());
            }
          })().catch((error: unknown) => traffic.error(`rfc6455 for await: ${describe(error)}`));
        } else {
          ws.on('message', (message) => {
            if (pipeline.echoed(message.data)) void ws.send(pipeline.nextPayload());
          });
        }
        for (let i = 0; i < traffic.inFlight; i++) {
          ws.send(pipeline.nextPayload()).catch((error: unknown) => traffic.error(`rfc6455 send: ${describe(error)}`));
        }
      },
      async close() {
        await ws.close();
        await reading;
      },
    };
  };
}

/** ws's client, the way its README uses it; with or without bufferutil is this process's environment. */
const wsOpener: Opener = async (port, traffic) => {
  const { default: WebSocket } = await import('ws');
  // ws offers permessage-deflate by default; the echo server declines it, this only says so up front.
  const socket = new WebSocket(url(port), { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', (error) => traffic.error(`ws: ${error.message}`));
  const pipeline = new Pipeline(traffic);
  return {
    pipeline,
    start() {
      socket.on('message', (data) => {
        if (pipeline.echoed(data as Buffer)) socket.send(pipeline.nextPayload());
      });
      for (let i = 0; i < traffic.inFlight; i++) socket.send(pipeline.nextPayload());
    },
    close() {
      return new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close(1000);
      });
    },
  };
};

function report(message: ClientReport): Promise<void> {
  return new Promise((resolve) => {
    process.send!(message, undefined, {}, () => resolve());
  });
}

async function measureLibrary(plan: ClientPlan, scenario: ClientScenario, open: Opener): Promise<ClientResult> {
  const traffic = new Traffic(payloadVariants(scenario.size), scenario.inFlight);
  const connections = await within(
    Promise.all(Array.from({ length: scenario.connections }, () => open(plan.port, traffic))),
    CONNECT_TIMEOUT_MS,
    `opening ${scenario.connections} connection(s)`,
  );
  for (const connection of connections) connection.start();
  await sleep(plan.warmupMs);
  const echoesStart = traffic.echoes;
  const cpuStart = process.cpuUsage();
  const eluStart = performance.eventLoopUtilization();
  const wallStart = performance.now();
  void report({ type: 'window', phase: 'start' });
  await sleep(plan.durationMs);
  const messages = traffic.echoes - echoesStart;
  const cpu = process.cpuUsage(cpuStart);
  const elu = performance.eventLoopUtilization(eluStart).utilization;
  const windowMs = performance.now() - wallStart;
  void report({ type: 'window', phase: 'end' });
  traffic.sending = false;
  await within(Promise.all(connections.map((connection) => connection.pipeline.drained())), DRAIN_TIMEOUT_MS, 'the echoes in flight');
  await within(Promise.all(connections.map((connection) => connection.close())), CLOSE_TIMEOUT_MS, 'the close handshakes');
  const cpuUs = cpu.user + cpu.system;
  const messagesPerSec = (messages * 1000) / windowMs;
  return {
    type: 'result',
    scenario: scenario.title,
    messages,
    windowMs,
    messagesPerSec,
    mbPerSec: (messagesPerSec * scenario.size) / 1e6,
    cpuUs,
    cpuUsPerMessage: messages > 0 ? cpuUs / messages : Number.NaN,
    cpu: cpuUs / (windowMs * 1000),
    elu,
    verified: traffic.echoes,
    errors: traffic.errors,
  };
}

async function measureRaw(plan: ClientPlan, scenario: ClientScenario): Promise<ClientResult> {
  const result = await runLoad(
    {
      port: plan.port,
      size: scenario.size,
      connections: scenario.connections,
      inFlight: scenario.inFlight,
      warmupMs: plan.warmupMs,
      durationMs: plan.durationMs,
      workers: 1,
    },
    {
      onWindowStart: () => void report({ type: 'window', phase: 'start' }),
      onWindowEnd: () => void report({ type: 'window', phase: 'end' }),
    },
  );
  // clientCpu is this process's CPU time ÷ wall time over the window (the worker and the idle main thread).
  const cpuUs = result.clientCpu * result.windowMs * 1000;
  return {
    type: 'result',
    scenario: scenario.title,
    messages: result.messages,
    windowMs: result.windowMs,
    messagesPerSec: result.messagesPerSec,
    mbPerSec: result.mbPerSec,
    cpuUs,
    cpuUsPerMessage: result.messages > 0 ? cpuUs / result.messages : Number.NaN,
    cpu: result.clientCpu,
    elu: result.workerElu[0] ?? Number.NaN,
    verified: result.verified,
    errors: result.errors,
  };
}

function libraryInfo(kind: ClientKind): Record<string, unknown> {
  const info: Record<string, unknown> = {
    runtime: import.meta.url.includes('/.build/') ? 'js' : 'tsx',
    cpus: allowedCpus(),
  };
  if (kind === 'ws' || kind === 'ws-no-bufferutil') {
    const require = createRequire(import.meta.url);
    // The very module instance ws masks with: does it call the native add-on?
    // ws's `exports` map hides lib/: reach the file by its path.
    const bufferUtil = require(join(dirname(require.resolve('ws/package.json')), 'lib', 'buffer-util.js')) as { mask: (...args: unknown[]) => void };
    const source = String(bufferUtil.mask);
    info['library'] = `ws@${(require('ws/package.json') as { version: string }).version}`;
    info['bufferutil'] = source.includes('bufferUtil.mask') || source.includes('websocketMask');
    info['WS_NO_BUFFER_UTIL'] = process.env['WS_NO_BUFFER_UTIL'] ?? null;
  } else {
    info['library'] = kind === 'raw' ? 'none (bench/loadgen.ts)' : 'rfc6455 (this repository)';
  }
  return info;
}

async function main(): Promise<void> {
  const plan = await new Promise<ClientPlan>((resolve) => {
    process.once('message', (message) => resolve(message as ClientPlan));
  });
  setTimeout(() => {
    console.error(`client-load (${plan.kind}): deadline of ${plan.deadlineMs} ms passed, exiting`);
    process.exit(3);
  }, plan.deadlineMs).unref();
  // A send nobody awaits (the event API) must not end the process if it fails: count it instead.
  const stray: string[] = [];
  process.on('unhandledRejection', (reason) => {
    if (stray.length < MAX_REPORTED_ERRORS) stray.push(`unhandled rejection: ${describe(reason)}`);
  });
  await report({ type: 'ready', info: libraryInfo(plan.kind) });
  const open = plan.kind === 'rfc6455' ? rfc6455Opener(true) : plan.kind === 'rfc6455-events' ? rfc6455Opener(false) : wsOpener;
  for (const scenario of plan.scenarios) {
    let result: ClientResult;
    try {
      result = plan.kind === 'raw' ? await measureRaw(plan, scenario) : await measureLibrary(plan, scenario, open);
    } catch (error) {
      result = failedResult(scenario, error);
    }
    if (stray.length > 0) result = { ...result, errors: [...result.errors, ...stray.splice(0)] };
    await report(result);
  }
  await report({ type: 'done' });
  // Whatever a failed scenario left open ends here.
  process.exit(0);
}

function failedResult(scenario: ClientScenario, error: unknown): ClientResult {
  const nan = Number.NaN;
  return {
    type: 'result',
    scenario: scenario.title,
    messages: 0,
    windowMs: nan,
    messagesPerSec: nan,
    mbPerSec: nan,
    cpuUs: nan,
    cpuUsPerMessage: nan,
    cpu: nan,
    elu: nan,
    verified: 0,
    errors: [describe(error)],
  };
}

if (process.send !== undefined && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.on('disconnect', () => process.exit(0));
  await main();
}
