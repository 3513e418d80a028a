/**
 * The load generator of the permessage-deflate benchmarks (RFC 7692): the `ws` client, with its
 * default deflate offer (`permessage-deflate; client_max_window_bits`), in a worker thread of the
 * benchmark process, against an echo server running in its own process.
 *
 * Why not bench/loadgen.ts: that generator compares every echo byte for byte with frames built before
 * the run, and a compressed echo has no fixed bytes: they depend on the server's compressor, its level
 * and, with context takeover, on every earlier message of the connection. Here the client inflates
 * each echo and compares the message with the one it sent. The client therefore does the work a real
 * client does, compression included: throughput is that of a server under a ws client on the same
 * machine, and the server's CPU time per message (read from the server process) is the comparison
 * that does not depend on which side was the limit.
 *
 * Messages are JSON-like text (arrays of event records with repeated keys and varying values, pure
 * ASCII, of exactly the requested size), built from a fixed seed in several variants, so context
 * takeover does not see the same message over and over.
 *
 * Two modes:
 * - idle (`inFlight: 0`): every connection sends one message and waits for its echo, then stays open
 *   until `close()`. `open()` resolves when every echo is back; what each exchange took on the wire
 *   (each way, frame header and mask included) is reported.
 * - echo: every connection keeps `inFlight` messages in flight and replaces each echo at once; after a
 *   warm-up, a window measures messages/s, payload (uncompressed) bytes/s and round-trip latency; then
 *   sending stops, every echo is awaited, and the bytes on the wire each way over the whole run, read
 *   from the sockets' own counters (`bytesWritten`, `bytesRead`), are divided by the payload bytes of
 *   the messages they carried.
 *
 * It only connects to 127.0.0.1; every phase has a deadline, and the worker exits by itself after its
 * last one.
 *
 *   node --import tsx bench/deflate-load.ts --port <port> --size 16384 --connections 64 --in-flight 8 --duration 3
 *   node --import tsx bench/deflate-load.ts --port <port> --idle 1000 --hold 10 [--no-deflate]
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import WebSocket from 'ws';
import { formatMicros } from './format.ts';
import { HISTOGRAM_SIZE, LOOPBACK, recordLatency, summarizeLatency, xorshift, type LatencySummary } from './loadgen.ts';
import { measureTraffic, openConcurrently, post, serveWorker, TrafficState, WorkerGroup, type WindowHooks } from './workers.ts';

/**
 * Message variants each connection cycles through: at least 16, and at least 128 KiB of them, so a
 * message comes back only after four 32 KiB deflate windows (RFC 7692 §7.1.2.1, 15 window bits) of
 * other messages. Context takeover then gains from what JSON messages share (keys, structure), as it
 * would in real traffic, and never from finding the very same message in its window.
 */
export function variantCount(size: number): number {
  return Math.max(16, Math.ceil((128 * 1024) / size));
}

// ------------------------------------------------------------------------------------------ messages

const EVENTS = ['page_view', 'click', 'add_to_cart', 'checkout', 'search', 'login', 'logout', 'share', 'scroll', 'purchase'];
const REGIONS = ['eu-west-1', 'eu-central-1', 'us-east-1', 'us-west-2', 'ap-south-1', 'sa-east-1'];
const TAGS = ['mobile', 'desktop', 'beta', 'returning', 'new', 'promo', 'organic', 'paid', 'referral'];
const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyz0123456789';

function pick<T>(list: readonly T[], random: () => number): T {
  return list[random() % list.length]!;
}

function token(length: number, random: () => number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += ALPHANUMERIC[random() % ALPHANUMERIC.length];
  return text;
}

/** One event record: the keys repeat from record to record, the values do not. */
function eventRecord(random: () => number): string {
  const id = 100_000 + (random() % 900_000);
  const timestamp = 1_764_460_800_000 + (random() % 86_400_000);
  const amount = (random() % 100_000) / 100;
  const tags = [pick(TAGS, random), pick(TAGS, random)];
  return (
    `{"id":${id},"event":"${pick(EVENTS, random)}","user":"u_${token(8, random)}","session":"${token(12, random)}",` +
    `"ts":${timestamp},"region":"${pick(REGIONS, random)}","amount":${amount.toFixed(2)},"items":${random() % 12},` +
    `"tags":${JSON.stringify(tags)},"consent":${random() % 2 === 0}}`
  );
}

const NOTE_OVERHEAD = '{"note":""}'.length;

/**
 * A JSON array of event records of exactly `size` bytes (ASCII, so bytes = characters), closed by a
 * `{"note":"..."}` record whose random text takes up what the last whole record left.
 */
export function jsonMessage(size: number, seed: number): string {
  const random = xorshift(seed);
  let text = '[';
  for (;;) {
    const record = eventRecord(random);
    // Room for the record, a comma, the note record and the closing bracket.
    if (text.length + record.length + 1 + NOTE_OVERHEAD + 1 > size) break;
    text += text.length > 1 ? `,${record}` : record;
  }
  const separator = text.length > 1 ? ',' : '';
  const noteLength = size - text.length - separator.length - NOTE_OVERHEAD - 1;
  if (noteLength < 0) throw new RangeError(`a JSON message needs at least ${NOTE_OVERHEAD + 2} bytes, got ${size}`);
  text += `${separator}{"note":"${token(noteLength, random)}"}]`;
  if (text.length !== size) throw new Error(`jsonMessage: built ${text.length} bytes instead of ${size}`);
  return text;
}

/** The variants every connection cycles through, as Buffers (sent as text frames). */
export function messageVariants(size: number, seed: number): Buffer[] {
  return Array.from({ length: variantCount(size) }, (_unused, v) => Buffer.from(jsonMessage(size, seed + v * 7919), 'latin1'));
}

// ------------------------------------------------------------------------------------------ worker

/** The session's options, every default filled in. */
interface WorkerConfig extends Required<DeflateLoadOptions> {
  readonly kind: 'rfc6455-deflate-loadgen';
  /** The worker gives up and exits after this long, whatever happens. */
  readonly deadlineMs: number;
}

/** Sent once every connection is open (echo mode) or has had its one exchange (idle mode). */
export interface DeflateOpenReport {
  readonly type: 'opened';
  readonly opened: number;
  readonly failed: number;
  /** From the first connect to the last open connection (idle mode: to the last echo). */
  readonly elapsedMs: number;
  /** The distinct Sec-WebSocket-Extensions answers of the server ('' when none). */
  readonly extensions: readonly string[];
  /** Idle mode: the exchange's bytes on the wire, summed over the connections (frames: header, mask, payload). */
  readonly wireUp: number;
  readonly wireDown: number;
  readonly errors: readonly string[];
}

interface WorkerResult {
  readonly type: 'result';
  /** Echoes completed and verified inside the window. */
  readonly messages: number;
  /** Messages handed to the client library inside the window. */
  readonly sent: number;
  /** Every echo verified, warm-up included. */
  readonly verified: number;
  readonly windowMs: number;
  /**
   * Bytes the sockets wrote (client to server) and read (server to client) over the whole run, warm-up
   * included, counted once every echo is back, and the messages they carried: a ratio from these is
   * exact, where one from the window alone would count bytes read but not yet inflated by the client.
   */
  readonly wireUp: number;
  readonly wireDown: number;
  readonly sentTotal: number;
  /** Messages still without an echo when the counters were read (0 unless the drain timed out). */
  readonly undrained: number;
  readonly histogram: Uint32Array;
  readonly elu: number;
  readonly errors: readonly string[];
  readonly errorCount: number;
}

class WorkerState extends TrafficState {
  readonly config: WorkerConfig;
  readonly variants: readonly Buffer[];
  readonly clients: Client[] = [];
  readonly histogram = new Uint32Array(HISTOGRAM_SIZE);
  readonly extensions = new Set<string>();
  /** Messages handed to the client library inside the window, and over the whole run. */
  sent = 0;
  sentTotal = 0;
  /** Idle mode: the exchanges' bytes on the wire, each way. */
  wireUp = 0;
  wireDown = 0;

  constructor(config: WorkerConfig) {
    super();
    this.config = config;
    this.variants = messageVariants(config.size, config.seed);
  }

  /** Bytes written and read by every connection's socket so far. */
  wireTotals(): { up: number; down: number } {
    let up = 0;
    let down = 0;
    for (const client of this.clients) {
      if (client.socket === null) continue;
      up += client.socket.bytesWritten;
      down += client.socket.bytesRead;
    }
    return { up, down };
  }
}

class Client {
  private readonly state: WorkerState;
  readonly ws: WebSocket;
  socket: Socket | null = null;
  private extensions = '';
  private open = false;
  private onOpen: ((error: Error | null) => void) | null;
  /** Variant indices and send times of the messages in flight, oldest first (a ring). */
  private readonly inFlightVariants: Int32Array;
  private readonly sentAt: Float64Array;
  private head = 0;
  private count = 0;
  private nextVariant: number;
  private upAtOpen = 0;
  private downAtOpen = 0;

  constructor(state: WorkerState, index: number, onOpen: (error: Error | null) => void) {
    this.state = state;
    this.onOpen = onOpen;
    const config = state.config;
    const capacity = Math.max(1, config.inFlight);
    this.inFlightVariants = new Int32Array(capacity);
    this.sentAt = new Float64Array(capacity);
    this.nextVariant = (index * 5) % state.variants.length;
    this.ws = new WebSocket(`ws://${LOOPBACK}:${config.port}/`, {
      perMessageDeflate: config.deflate ? { threshold: config.threshold } : false,
      handshakeTimeout: config.connectTimeoutMs,
    });
    this.ws.on('upgrade', (response) => {
      this.socket = response.socket;
      // As the server wrote it (ws's own `extensions` property keeps only the extension names).
      this.extensions = response.headers['sec-websocket-extensions'] ?? '';
    });
    this.ws.on('open', () => this.onWsOpen());
    // The default binaryType ('nodebuffer') delivers every message as one Buffer.
    this.ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => this.onMessage(data as Buffer, isBinary));
    this.ws.on('error', (error: Error) => {
      if (!this.open) this.opened(error);
      else if (!state.closing) state.error(`socket error: ${error.message}`);
    });
    this.ws.on('close', (code: number) => {
      if (!this.open) this.opened(new Error(`closed during the handshake (${code})`));
      else if (!state.closing) state.error(`the server closed a connection during the run (${code})`);
    });
  }

  private onWsOpen(): void {
    const state = this.state;
    const extensions = this.extensions;
    state.extensions.add(extensions);
    if (state.config.deflate && !extensions.includes('permessage-deflate')) {
      this.opened(new Error(`the server did not accept permessage-deflate (Sec-WebSocket-Extensions: '${extensions}')`));
      return;
    }
    if (this.socket === null) {
      this.opened(new Error('no socket after the upgrade'));
      return;
    }
    this.upAtOpen = this.socket.bytesWritten;
    this.downAtOpen = this.socket.bytesRead;
    if (state.config.inFlight === 0) this.send(1, performance.now());
    else this.opened(null);
  }

  private opened(error: Error | null): void {
    if (error === null) this.open = true;
    const callback = this.onOpen;
    this.onOpen = null;
    callback?.(error);
    if (error !== null) this.ws.terminate();
  }

  /** Messages sent whose echo has not come back. */
  get pending(): number {
    return this.count;
  }

  start(now: number): void {
    this.send(this.state.config.inFlight, now);
  }

  private send(messages: number, now: number): void {
    const state = this.state;
    const capacity = this.inFlightVariants.length;
    for (let i = 0; i < messages; i++) {
      const variant = this.nextVariant;
      this.nextVariant = variant + 1 === state.variants.length ? 0 : variant + 1;
      const slot = (this.head + this.count) % capacity;
      this.inFlightVariants[slot] = variant;
      this.sentAt[slot] = now;
      this.count++;
      this.ws.send(state.variants[variant]!, { binary: false });
    }
    state.sentTotal += messages;
    if (state.measuring) state.sent += messages;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    const state = this.state;
    if (this.count === 0) {
      state.error(`an unexpected ${data.length}-byte message`);
      return;
    }
    const slot = this.head;
    const expected = state.variants[this.inFlightVariants[slot]!]!;
    if (isBinary || !data.equals(expected)) {
      state.error(`echo mismatch: got a ${isBinary ? 'binary' : 'text'} message of ${data.length} bytes, expected text of ${expected.length}`);
      this.ws.terminate();
      return;
    }
    const now = performance.now();
    this.head = slot + 1 === this.inFlightVariants.length ? 0 : slot + 1;
    this.count--;
    state.verified++;
    if (state.config.inFlight === 0) {
      // Idle mode: the one exchange is over; what it took on the wire, each way.
      state.wireUp += this.socket!.bytesWritten - this.upAtOpen;
      state.wireDown += this.socket!.bytesRead - this.downAtOpen;
      this.opened(null);
      return;
    }
    if (state.measuring) {
      state.messages++;
      recordLatency(state.histogram, (now - this.sentAt[slot]!) * 1000);
    }
    if (state.sending) this.send(1, now);
  }
}

async function openAll(state: WorkerState): Promise<DeflateOpenReport> {
  const { connections, connectConcurrency, connectTimeoutMs } = state.config;
  // The handshake has its own timeout (ws's handshakeTimeout); this one also covers the idle echo.
  const counts = await openConcurrently(connections, connectConcurrency, 2 * connectTimeoutMs, (index, done) => {
    const client = new Client(state, index, done);
    state.clients.push(client);
    return () => client.ws.terminate();
  });
  return { type: 'opened', ...counts, extensions: [...state.extensions], wireUp: state.wireUp, wireDown: state.wireDown };
}

/** How long the end of a run waits for the echoes still in flight before it reads the byte counters. */
const DRAIN_TIMEOUT_MS = 15_000;

function pendingEchoes(state: WorkerState): number {
  let pending = 0;
  for (const client of state.clients) pending += client.pending;
  return pending;
}

/** Resolves when every echo is back, or after `timeoutMs`. */
async function drain(state: WorkerState, timeoutMs: number): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (pendingEchoes(state) > 0 && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 5));
}

function runTraffic(state: WorkerState): void {
  const { warmupMs, durationMs } = state.config;
  const wireStart = state.wireTotals();
  measureTraffic(
    state,
    { warmupMs, durationMs, postEdges: true },
    {
      start: (now) => {
        for (const client of state.clients) client.start(now);
      },
      reset: () => {
        state.messages = 0;
        state.sent = 0;
        state.histogram.fill(0);
      },
      done: (windowMs, elu) => {
        const histogram = state.histogram.slice();
        const { messages, sent } = state;
        void drain(state, DRAIN_TIMEOUT_MS).then(() => {
          const wireEnd = state.wireTotals();
          post<WorkerResult>(
            {
              type: 'result',
              messages,
              sent,
              verified: state.verified,
              windowMs,
              wireUp: wireEnd.up - wireStart.up,
              wireDown: wireEnd.down - wireStart.down,
              sentTotal: state.sentTotal,
              undrained: pendingEchoes(state),
              histogram,
              elu,
              errors: state.errors,
              errorCount: state.errorCount,
            },
            [histogram.buffer],
          );
        });
      },
    },
  );
}

serveWorker<WorkerConfig>(
  'rfc6455-deflate-loadgen',
  () => 'deflate load generator',
  (config) => {
    const state = new WorkerState(config);
    return {
      open: () => openAll(state),
      go: () => runTraffic(state),
      close: () => {
        state.closing = true;
        state.sending = false;
        for (const client of state.clients) client.ws.terminate();
      },
    };
  },
);

// ------------------------------------------------------------------------------------------ coordinator

export interface DeflateLoadOptions {
  readonly port: number;
  readonly connections: number;
  /** Offer permessage-deflate (ws's default client offer). */
  readonly deflate: boolean;
  /** The client's own threshold: messages under it are sent uncompressed. */
  readonly threshold: number;
  /** Payload bytes per message (JSON-like text). */
  readonly size: number;
  /** Messages in flight per connection; 0 = one message each way, then idle. */
  readonly inFlight: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly connectConcurrency?: number;
  readonly connectTimeoutMs?: number;
  readonly seed?: number;
}

export interface DeflateLoadResult {
  readonly windowMs: number;
  readonly messages: number;
  readonly messagesPerSec: number;
  /** Uncompressed payload echoed per second, in 10^6 bytes. */
  readonly mbPerSec: number;
  /**
   * Bytes on the wire ÷ payload bytes over the whole run (every echo back), client to server (the ws
   * client's compression) and back (the server's); frame headers and masks included.
   */
  readonly wireRatioUp: number;
  readonly wireRatioDown: number;
  readonly latencyUs: LatencySummary;
  /** Event-loop utilization of the generator's thread (ws's zlib work runs on libuv's pool, outside it). */
  readonly clientElu: number;
  /** CPU time of the whole benchmark process (generator thread, zlib pool, coordinator) / wall time. */
  readonly clientCpu: number;
  readonly verified: number;
  readonly errors: readonly string[];
  readonly errorCount: number;
}

/** The connections of one measurement, held by one worker thread: `open()`, then `run()` or hold, then `close()`. */
export class DeflateSession {
  private readonly group: WorkerGroup<DeflateOpenReport, WorkerResult>;
  private readonly options: DeflateLoadOptions;
  readonly report: DeflateOpenReport;

  private constructor(group: WorkerGroup<DeflateOpenReport, WorkerResult>, options: DeflateLoadOptions, report: DeflateOpenReport) {
    this.group = group;
    this.options = options;
    this.report = report;
  }

  /** Starts the worker; resolves once every connection is open (idle mode: has had its exchange) or failed. */
  static async open(options: DeflateLoadOptions): Promise<DeflateSession> {
    if (!(options.port > 0 && options.port < 65536)) throw new RangeError(`bad port ${options.port}`);
    const connectTimeoutMs = options.connectTimeoutMs ?? 20_000;
    const config: WorkerConfig = {
      kind: 'rfc6455-deflate-loadgen',
      port: options.port,
      connections: options.connections,
      deflate: options.deflate,
      threshold: options.threshold,
      size: options.size,
      inFlight: options.inFlight,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      connectConcurrency: options.connectConcurrency ?? 128,
      connectTimeoutMs,
      // Opening (with the idle echo), the run, and a margin; an idle session is held for a while after.
      deadlineMs: 2 * connectTimeoutMs + options.warmupMs + options.durationMs + 120_000,
      seed: options.seed ?? 0x7692 + options.size,
    };
    const { group, reports } = await WorkerGroup.open<DeflateOpenReport, WorkerResult>(
      'deflate load generator',
      import.meta.url,
      [config],
      2 * connectTimeoutMs + 30_000,
    );
    return new DeflateSession(group, options, reports[0]!);
  }

  /** Echo mode: warm-up, then the measured window. */
  async run(hooks: WindowHooks = {}): Promise<DeflateLoadResult> {
    const options = this.options;
    const { results, clientCpu } = await this.group.run(options.warmupMs + options.durationMs + DRAIN_TIMEOUT_MS + 30_000, hooks);
    const result = results[0]!;
    const messagesPerSec = (result.messages * 1000) / result.windowMs;
    return {
      windowMs: result.windowMs,
      messages: result.messages,
      messagesPerSec,
      mbPerSec: (messagesPerSec * options.size) / 1e6,
      wireRatioUp: result.sentTotal > 0 ? result.wireUp / (result.sentTotal * options.size) : Number.NaN,
      wireRatioDown: result.verified > 0 ? result.wireDown / (result.verified * options.size) : Number.NaN,
      latencyUs: summarizeLatency(result.histogram),
      clientElu: result.elu,
      clientCpu,
      verified: result.verified,
      errors: result.undrained > 0 ? [...result.errors, `${result.undrained} echoes missing ${DRAIN_TIMEOUT_MS} ms after the run`] : result.errors,
      errorCount: result.errorCount + (result.undrained > 0 ? 1 : 0),
    };
  }

  /** Drops every connection and ends the worker (terminated if it does not end within 5 s). */
  close(): Promise<void> {
    return this.group.close();
  }
}

// ------------------------------------------------------------------------------------------ CLI

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '9001' },
      size: { type: 'string', default: '1024' },
      connections: { type: 'string', default: '64' },
      'in-flight': { type: 'string', default: '8' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '0.5' },
      threshold: { type: 'string', default: '256' },
      'no-deflate': { type: 'boolean', default: false },
      idle: { type: 'string' },
      hold: { type: 'string', default: '0' },
    },
  });
  const base = { port: Number(values.port), deflate: !values['no-deflate'], threshold: Number(values.threshold), size: Number(values.size) };
  if (values.idle !== undefined) {
    const session = await DeflateSession.open({ ...base, connections: Number(values.idle), inFlight: 0, warmupMs: 0, durationMs: 0 });
    const report = session.report;
    const perConnection = (bytes: number): string => (report.opened > 0 ? (bytes / report.opened).toFixed(0) : '-');
    console.log(
      `${report.opened} open after one message each way, ${report.failed} failed; extensions ${JSON.stringify(report.extensions)}; ` +
        `wire per exchange: ${perConnection(report.wireUp)} B up, ${perConnection(report.wireDown)} B down for ${base.size} B of payload ${report.errors.join('; ')}`,
    );
    await new Promise((resolve) => setTimeout(resolve, Number(values.hold) * 1000));
    await session.close();
    return;
  }
  const session = await DeflateSession.open({
    ...base,
    connections: Number(values.connections),
    inFlight: Number(values['in-flight']),
    warmupMs: Number(values.warmup) * 1000,
    durationMs: Number(values.duration) * 1000,
  });
  try {
    const result = await session.run();
    const l = result.latencyUs;
    console.log(
      `${Math.round(result.messagesPerSec)} msgs/s, ${result.mbPerSec.toFixed(2)} MB/s payload; wire ÷ payload ${result.wireRatioUp.toFixed(3)} up, ` +
        `${result.wireRatioDown.toFixed(3)} down; p50 ${formatMicros(l.p50)}, p99 ${formatMicros(l.p99)}; generator ELU ${result.clientElu.toFixed(2)}, ` +
        `process CPU ${(100 * result.clientCpu).toFixed(0)}%; extensions ${JSON.stringify(session.report.extensions)}; ${result.verified} echoes verified, ${result.errorCount} errors ${result.errors.join('; ')}`,
    );
    if (result.errorCount > 0) process.exitCode = 1;
  } finally {
    await session.close();
  }
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
