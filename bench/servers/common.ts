/**
 * What every benchmark echo server shares: where to listen, the IPC channel to the benchmark that
 * started it, and the guarantees that it stops by itself.
 *
 * A server is started by bench/servers/control.ts as a child process with an IPC channel (`fork`
 * style). It listens on 127.0.0.1 (port 0 = any free port unless BENCH_SERVER_PORT is set), then sends
 * `{ type: 'listening', port, info }`. It answers `{ type: 'stats', gc }` with its memory and CPU
 * figures (under Bun, whose event-loop utilization is a stub, the event-loop fields are 0 and give NaN),
 * and exits:
 * - on SIGTERM or SIGINT, through `process.exit` (so `--cpu-prof` writes its profile);
 * - when the IPC channel closes (the benchmark process is gone);
 * - after BENCH_SERVER_LIFETIME_MS (default 15 minutes), whatever happens.
 * Run by hand (no IPC), it prints its address and runs until interrupted or its lifetime ends.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** The only address the benchmark servers listen on. */
export const HOST = '127.0.0.1';

/**
 * With BENCH_DEFLATE=1 in its environment, an echo server enables permessage-deflate (RFC 7692) with
 * its library's defaults, except the size threshold below which a message is sent uncompressed: both
 * libraries get this one, well under the smallest message of the deflate benchmarks (1 KiB), so every
 * message is compressed by both whatever each library's default and whether it compares with > or >=.
 */
export const DEFLATE_THRESHOLD = 256;

/**
 * With BENCH_FANOUT=1 an echo server runs the fan-out benchmark (bench/fanout.ts) instead of echoing:
 * a connection to FANOUT_PUBLISH_PATH is the publisher, whose every message goes to every other
 * connection (each subscribes to FANOUT_TOPIC), the way each library does it best: rfc6455's
 * `server.publish`, ws's broadcast loop from its README, Bun's `server.publish`.
 */
export function fanoutRequested(): boolean {
  return process.env['BENCH_FANOUT'] === '1';
}

export const FANOUT_PUBLISH_PATH = '/publish';
export const FANOUT_TOPIC = 'fan-out';

export function deflateRequested(): boolean {
  return process.env['BENCH_DEFLATE'] === '1';
}

/**
 * With BENCH_TLS_KEY and BENCH_TLS_CERT (PEM file paths) in its environment, an echo server listens
 * with TLS (`wss://`): the rfc6455 server then serves HTTP/1.1 upgrades and HTTP/2 extended CONNECT
 * (RFC 8441) on one port, as `listen({ tls })` does for users. Null without them.
 */
export function tlsRequested(): { readonly key: Buffer; readonly cert: Buffer } | null {
  const key = process.env['BENCH_TLS_KEY'];
  const cert = process.env['BENCH_TLS_CERT'];
  if (key === undefined || key === '' || cert === undefined || cert === '') return null;
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

/** The message a server sends once it listens. */
export interface ListeningMessage {
  readonly type: 'listening';
  readonly port: number;
  /** Server-specific facts worth recording (e.g. whether ws loaded native bufferutil). */
  readonly info: Record<string, unknown>;
}

/** The reply to `{ type: 'stats' }`. Times in microseconds (CPU) and milliseconds (event loop). */
export interface StatsMessage {
  readonly type: 'stats';
  readonly id: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** process.cpuUsage(): every thread of the process (JavaScript, GC helpers, libuv pool). */
  readonly cpuUser: number;
  readonly cpuSystem: number;
  /** performance.eventLoopUtilization() of the main thread, cumulative. */
  readonly eluIdle: number;
  readonly eluActive: number;
  /** performance.now() when the figures were taken. */
  readonly now: number;
}

interface StatsRequest {
  readonly type: 'stats';
  readonly id: number;
  /** Run a full garbage collection first (needs --expose-gc). */
  readonly gc?: boolean;
}

export function listenPort(): number {
  const fromEnv = process.env['BENCH_SERVER_PORT'];
  const port = fromEnv === undefined || fromEnv === '' ? 0 : Number(fromEnv);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`BENCH_SERVER_PORT=${fromEnv} is not a port`);
  return port;
}

function takeStats(id: number): StatsMessage {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  const elu = performance.eventLoopUtilization();
  return {
    type: 'stats',
    id,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    external: memory.external,
    arrayBuffers: memory.arrayBuffers,
    cpuUser: cpu.user,
    cpuSystem: cpu.system,
    eluIdle: elu.idle,
    eluActive: elu.active,
    now: performance.now(),
  };
}

/**
 * A full garbage collection: Node's `gc` (needs --expose-gc), twice, as the first pass can leave
 * objects with finalizers for the second; under Bun (bench/servers/bun-echo.ts), `Bun.gc(true)`, which
 * is synchronous and full. Nothing when neither exists.
 */
function collectGarbage(): void {
  const nodeGc = (globalThis as { gc?: () => void }).gc;
  if (nodeGc !== undefined) {
    nodeGc();
    nodeGc();
    return;
  }
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}

/**
 * Announces the server (IPC or stdout) and installs the exit paths. `name` is for the console line.
 */
export function announce(name: string, port: number, info: Record<string, unknown> = {}): void {
  const lifetime = Number(process.env['BENCH_SERVER_LIFETIME_MS'] ?? 15 * 60 * 1000);
  setTimeout(() => {
    console.error(`${name}: lifetime of ${lifetime} ms is over, exiting`);
    process.exit(3);
  }, lifetime).unref();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
  const send = process.send?.bind(process);
  if (send === undefined) {
    console.log(`${name} listening on ${HOST}:${port} ${JSON.stringify(info)}`);
    return;
  }
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw: unknown) => {
    const message = raw as Partial<StatsRequest>;
    if (message.type !== 'stats' || typeof message.id !== 'number') return;
    if (message.gc === true) collectGarbage();
    send(takeStats(message.id));
  });
  const listening: ListeningMessage = { type: 'listening', port, info };
  send(listening);
}
