/**
 * The end-to-end load generator: raw `node:net` sockets, no WebSocket library.
 *
 * Each of C connections performs the opening handshake by hand (checking the 101 and
 * Sec-WebSocket-Accept), then keeps W masked messages of S bytes in flight: every echo that comes back
 * is compared byte for byte with the frame the server must send (RFC 6455 §5.2: unmasked, same opcode,
 * same payload), and each completed echo is replaced by a new message at once. It reports messages/s,
 * payload MB/s (10^6 bytes of payload echoed per second) and round-trip latency percentiles, measured
 * after a warm-up and over a fixed window, and stops by itself.
 *
 * Keeping its own cost small, so that what is measured is the server:
 * - Every frame is built before the run: V variants (different payloads and masking keys, so a
 *   reordered or stale echo is caught) laid out twice in one buffer, so any run of up to V consecutive
 *   frames is one contiguous `subarray`: replacing k echoes is one `write`, whatever k is.
 * - The expected echoes are laid out the same way: checking a read is one `Buffer.compare` per read (or
 *   per period of the layout), plus a loop over frame boundaries to count completed messages.
 * - Sockets read with `onread` into one reusable 256 KiB buffer per worker: no Buffer per read, no
 *   stream machinery, fewer read calls.
 * - One clock read per read event; latencies go into a fixed log-linear histogram (0.1 µs steps below
 *   1 ms, 1 % steps above), merged across workers.
 * - Connections are spread over worker threads (`workers`); the main thread only coordinates. Each
 *   worker reports its event-loop utilization and its own thread's CPU time: near 1.0 means the
 *   generator, not the server, was the limit.
 *
 * `protocol: 'tcp'` sends the same masked client frames to a plain TCP echo and expects them back
 * unchanged: the same bytes in, the ceiling of this machine.
 *
 * It only ever connects to 127.0.0.1, and every phase has a deadline.
 *
 *   node --import tsx bench/loadgen.ts --port 9001 --size 1024 --connections 64 --in-flight 16 --duration 5
 *   node --import tsx bench/loadgen.ts --port 9001 --idle 1000 --hold 5       # idle connections
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { formatMicros } from './format.ts';
import { MAX_REPORTED_ERRORS, measureTraffic, openConcurrently, post, serveWorker, TrafficState, WorkerGroup, type WindowHooks } from './workers.ts';

/** The only address the load generator talks to. */
export const LOOPBACK = '127.0.0.1';

/** RFC 6455 §1.3. */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

// ------------------------------------------------------------------------------------------ histogram

/** Buckets of 0.1 µs below 1 ms, then 1 % wide up to ~100 s. */
const LINEAR_BUCKETS = 10_000;
const LOG_STEP = 1.01;
const INV_LN_STEP = 1 / Math.log(LOG_STEP);
export const HISTOGRAM_SIZE = LINEAR_BUCKETS + 1200;

export function recordLatency(counts: Uint32Array, microseconds: number): void {
  let index: number;
  if (microseconds < 1000) index = microseconds <= 0 ? 0 : (microseconds * 10) | 0;
  else index = Math.min(HISTOGRAM_SIZE - 1, LINEAR_BUCKETS + ((Math.log(microseconds / 1000) * INV_LN_STEP) | 0));
  counts[index]!++;
}

/** The representative value of a bucket, in microseconds. */
function bucketValue(index: number): number {
  if (index < LINEAR_BUCKETS) return (index + 0.5) / 10;
  return 1000 * LOG_STEP ** (index - LINEAR_BUCKETS + 0.5);
}

export interface LatencySummary {
  /** Round-trip times in microseconds. */
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
  readonly count: number;
}

export function summarizeLatency(counts: Uint32Array): LatencySummary {
  let count = 0;
  let sum = 0;
  let max = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i]!;
    if (n === 0) continue;
    count += n;
    sum += n * bucketValue(i);
    max = i;
  }
  const percentile = (q: number): number => {
    if (count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * count));
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i]!;
      if (seen >= rank) return bucketValue(i);
    }
    return bucketValue(counts.length - 1);
  };
  return {
    p50: percentile(0.5),
    p90: percentile(0.9),
    p99: percentile(0.99),
    p999: percentile(0.999),
    max: count === 0 ? Number.NaN : bucketValue(max),
    mean: count === 0 ? Number.NaN : sum / count,
    count,
  };
}

// ------------------------------------------------------------------------------------------ frames

/** A deterministic pseudo-random generator (xorshift32), so runs send the same bytes. */
export function xorshift(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

function payloadFor(size: number, text: boolean, random: () => number): Buffer {
  const payload = Buffer.allocUnsafe(size);
  if (text) {
    for (let i = 0; i < size; i++) payload[i] = 0x20 + (random() % 95); // printable ASCII: valid UTF-8
  } else {
    let i = 0;
    for (; i + 4 <= size; i += 4) payload.writeUInt32LE(random(), i);
    for (; i < size; i++) payload[i] = random() & 0xff;
  }
  return payload;
}

function headerSize(length: number): number {
  return length < 126 ? 2 : length < 0x10000 ? 4 : 10;
}

/** Writes a frame header (RFC 6455 §5.2, minimal length encoding); returns its size. */
function writeHeader(target: Buffer, opcode: number, length: number, masked: boolean): number {
  target[0] = 0x80 | opcode;
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) {
    target[1] = maskBit | length;
    return 2;
  }
  if (length < 0x10000) {
    target[1] = maskBit | 126;
    target.writeUInt16BE(length, 2);
    return 4;
  }
  target[1] = maskBit | 127;
  target.writeUInt32BE(Math.floor(length / 0x100000000), 2);
  target.writeUInt32BE(length >>> 0, 6);
  return 10;
}

/** A client frame: FIN, the opcode, the mask bit, the key, the masked payload (RFC 6455 §5.3). */
function clientFrame(payload: Buffer, opcode: number, key: Buffer, into: Buffer, offset: number): number {
  const target = into.subarray(offset);
  let position = writeHeader(target, opcode, payload.length, true);
  key.copy(target, position);
  position += 4;
  for (let i = 0; i < payload.length; i++) target[position + i] = payload[i]! ^ key[i & 3]!;
  return position + payload.length;
}

/** The frame a server must answer with: same opcode and payload, unmasked (RFC 6455 §5.1). */
function serverFrame(payload: Buffer, opcode: number, into: Buffer, offset: number): number {
  const target = into.subarray(offset);
  const position = writeHeader(target, opcode, payload.length, false);
  payload.copy(target, position);
  return position + payload.length;
}

/**
 * V variants laid out twice: `starts[v]` is where frame v begins (v < 2V), `starts[2V]` the end, and
 * the period (bytes of V frames) is `starts[V]`. (Also the frames of bench/http2-load.ts.)
 */
export interface FrameRing {
  readonly bytes: Buffer;
  readonly starts: Int32Array;
  readonly variants: number;
  readonly period: number;
}

export function buildRings(size: number, text: boolean, variants: number, seed: number, tcp: boolean): { send: FrameRing; expect: FrameRing } {
  const random = xorshift(seed);
  const opcode = text ? OPCODE_TEXT : OPCODE_BINARY;
  const clientSize = headerSize(size) + 4 + size;
  const serverSize = headerSize(size) + size;
  const send = Buffer.allocUnsafe(2 * variants * clientSize);
  const sendStarts = new Int32Array(2 * variants + 1);
  const expectFrameSize = tcp ? clientSize : serverSize;
  const expect = tcp ? send : Buffer.allocUnsafe(2 * variants * serverSize);
  const expectStarts = new Int32Array(2 * variants + 1);
  for (let v = 0; v < variants; v++) {
    const payload = payloadFor(size, text, random);
    const key = Buffer.allocUnsafe(4);
    key.writeUInt32BE((random() | 0x01010101) >>> 0); // no zero byte: every byte of the payload is changed
    for (const copy of [v, v + variants]) {
      sendStarts[copy] = copy * clientSize;
      clientFrame(payload, opcode, key, send, copy * clientSize);
      expectStarts[copy] = copy * expectFrameSize;
      if (!tcp) serverFrame(payload, opcode, expect, copy * serverSize);
    }
  }
  sendStarts[2 * variants] = 2 * variants * clientSize;
  expectStarts[2 * variants] = 2 * variants * expectFrameSize;
  return {
    send: { bytes: send, starts: sendStarts, variants, period: variants * clientSize },
    expect: { bytes: expect, starts: expectStarts, variants, period: variants * expectFrameSize },
  };
}

/** Enough variants that one write can replace every message in flight, and a read is checked in few compares. */
export function variantCount(size: number, inFlight: number): number {
  const wanted = size >= 64 * 1024 ? 4 : Math.ceil((16 * 1024) / (size + 14));
  return Math.max(4, inFlight, Math.min(wanted, 1024));
}

// ------------------------------------------------------------------------------------------ worker

interface WorkerConfig {
  readonly kind: 'rfc6455-loadgen';
  readonly id: number;
  readonly port: number;
  readonly path: string;
  readonly protocol: 'websocket' | 'tcp';
  readonly connections: number;
  /** 0: idle connections (handshake only). */
  readonly inFlight: number;
  readonly size: number;
  readonly text: boolean;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly connectConcurrency: number;
  readonly connectTimeoutMs: number;
  /** The worker gives up and exits after this long, whatever happens. */
  readonly deadlineMs: number;
  readonly seed: number;
}

interface OpenedReport {
  readonly type: 'opened';
  readonly opened: number;
  readonly failed: number;
  /** From the first connect to the last completed handshake. */
  readonly elapsedMs: number;
  readonly errors: readonly string[];
}

interface WorkerResult {
  readonly type: 'result';
  /** Messages whose echo completed inside the measurement window. */
  readonly messages: number;
  /** Every echo completed and verified, warm-up included. */
  readonly verified: number;
  readonly windowMs: number;
  readonly histogram: Uint32Array;
  /** Event-loop utilization of this worker during the window. */
  readonly elu: number;
  /** CPU time of this worker thread / wall time during the window (NaN where /proc cannot be read). */
  readonly cpu: number;
  readonly errors: readonly string[];
  readonly errorCount: number;
}

/**
 * Time on CPU of the calling thread, in milliseconds (/proc/thread-self/schedstat, Linux 3.17+): a
 * worker reads its own, so the generator's CPU excludes the coordinator and the GC helper threads. NaN
 * where it cannot be read.
 */
function threadCpuMs(): number {
  try {
    const schedstat = readFileSync('/proc/thread-self/schedstat', 'latin1');
    return Number(schedstat.slice(0, schedstat.indexOf(' '))) / 1e6;
  } catch {
    return Number.NaN;
  }
}

class WorkerState extends TrafficState {
  readonly config: WorkerConfig;
  readonly send: FrameRing | null;
  readonly expect: FrameRing | null;
  readonly clients: Client[] = [];
  readonly histogram = new Uint32Array(HISTOGRAM_SIZE);
  /**
   * Every socket of the worker reads into this one buffer (`onread`): no allocation per read, and a
   * read is checked before the next one (libuv calls back synchronously after each read).
   */
  readonly readBuffer = Buffer.allocUnsafe(256 * 1024);

  constructor(config: WorkerConfig) {
    super();
    this.config = config;
    if (config.inFlight > 0) {
      const rings = buildRings(config.size, config.text, variantCount(config.size, config.inFlight), config.seed, config.protocol === 'tcp');
      this.send = rings.send;
      this.expect = rings.expect;
    } else {
      this.send = null;
      this.expect = null;
    }
  }
}

class Client {
  private readonly state: WorkerState;
  readonly socket: Socket;
  private readonly key: string;
  private head: Buffer[] | null = [];
  private headLength = 0;
  private open = false;
  private sendVariant = 0;
  private recvVariant = 0;
  private recvPos = 0;
  private readonly times: Float64Array;
  private timesHead = 0;
  private timesTail = 0;
  private onOpen: ((error: Error | null) => void) | null;

  constructor(state: WorkerState, onOpen: (error: Error | null) => void) {
    this.state = state;
    this.onOpen = onOpen;
    this.times = new Float64Array(Math.max(1, state.config.inFlight));
    this.key = randomBytes(16).toString('base64');
    const config = state.config;
    const socket = connect({
      host: LOOPBACK,
      port: config.port,
      noDelay: true,
      onread: {
        buffer: state.readBuffer,
        callback: (bytes: number): boolean => {
          if (this.head === null) this.onFrames(state.readBuffer, bytes);
          else this.onHandshake(Buffer.from(state.readBuffer.subarray(0, bytes)));
          return true;
        },
      },
    });
    this.socket = socket;
    socket.on('connect', () => {
      if (config.protocol === 'tcp') {
        this.head = null;
        this.opened(null);
        return;
      }
      socket.write(
        `GET ${config.path} HTTP/1.1\r\nHost: ${LOOPBACK}:${config.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('error', (error: Error) => {
      if (!this.open) this.opened(error);
      else if (!state.closing) state.error(`socket error: ${error.message}`);
    });
    socket.on('close', () => {
      if (!this.open) this.opened(new Error('closed during the handshake'));
      else if (!state.closing) state.error('the server closed a connection during the run');
    });
  }

  private opened(error: Error | null): void {
    if (error === null) this.open = true;
    const callback = this.onOpen;
    this.onOpen = null;
    callback?.(error);
    if (error !== null) this.socket.destroy();
  }

  private onHandshake(chunk: Buffer): void {
    const head = this.head!;
    head.push(chunk);
    this.headLength += chunk.length;
    const all = head.length === 1 ? chunk : Buffer.concat(head, this.headLength);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.headLength > 16 * 1024) this.opened(new Error('handshake response head over 16 KiB'));
      return;
    }
    this.head = null;
    const text = all.subarray(0, end).toString('latin1');
    const lines = text.split('\r\n');
    if (!/^HTTP\/1\.1 101 /.test(lines[0] ?? '')) {
      this.opened(new Error(`handshake refused: ${lines[0]}`));
      return;
    }
    const expected = createHash('sha1').update(this.key + WEBSOCKET_GUID).digest('base64');
    const accept = lines.find((line) => line.toLowerCase().startsWith('sec-websocket-accept:'));
    if (accept === undefined || accept.slice(accept.indexOf(':') + 1).trim() !== expected) {
      this.opened(new Error('wrong or missing Sec-WebSocket-Accept'));
      return;
    }
    this.opened(null);
    const rest = all.subarray(end + 4);
    if (rest.length > 0) this.onFrames(rest, rest.length);
  }

  /** Sends the first W messages. */
  start(now: number): void {
    this.sendMessages(this.state.config.inFlight, now);
  }

  private sendMessages(count: number, now: number): void {
    const ring = this.state.send!;
    const first = this.sendVariant;
    this.socket.write(ring.bytes.subarray(ring.starts[first]!, ring.starts[first + count]!));
    const next = first + count;
    this.sendVariant = next >= ring.variants ? next - ring.variants : next;
    const times = this.times;
    let tail = this.timesTail;
    for (let i = 0; i < count; i++) {
      times[tail] = now;
      tail = tail + 1 === times.length ? 0 : tail + 1;
    }
    this.timesTail = tail;
  }

  /** Checks echoed bytes (`chunk[0..length)`) against the expected frames, counts completed messages, replaces them. */
  private onFrames(chunk: Buffer, length: number): void {
    const state = this.state;
    const expect = state.expect;
    if (expect === null) {
      state.error(`unexpected ${length} bytes on an idle connection`);
      return;
    }
    const now = performance.now();
    const period = expect.period;
    const starts = expect.starts;
    const bytes = expect.bytes;
    let variant = this.recvVariant;
    let position = this.recvPos;
    let completed = 0;
    let offset = 0;
    while (offset < length) {
      const take = Math.min(length - offset, period);
      const end = position + take;
      if (chunk.compare(bytes, position, end, offset, offset + take) !== 0) {
        this.mismatch(chunk, offset, take, position);
        return;
      }
      while (starts[variant + 1]! <= end) {
        variant++;
        completed++;
      }
      position = end;
      if (variant >= expect.variants) {
        variant -= expect.variants;
        position -= period;
      }
      offset += take;
    }
    this.recvVariant = variant;
    this.recvPos = position;
    if (completed === 0) return;
    state.verified += completed;
    const times = this.times;
    let head = this.timesHead;
    if (state.measuring) {
      state.messages += completed;
      const histogram = state.histogram;
      for (let i = 0; i < completed; i++) {
        recordLatency(histogram, (now - times[head]!) * 1000);
        head = head + 1 === times.length ? 0 : head + 1;
      }
    } else {
      head = (head + completed) % times.length;
    }
    this.timesHead = head;
    if (state.sending) this.sendMessages(completed, now);
  }

  private mismatch(chunk: Buffer, offset: number, take: number, position: number): void {
    let at = 0;
    while (at < take && chunk[offset + at] === this.state.expect!.bytes[position + at]) at++;
    this.state.error(
      `echo mismatch at byte ${at} of a ${take}-byte read (expected ${this.state.expect!.bytes
        .subarray(position + at, position + at + 8)
        .toString('hex')}, got ${chunk.subarray(offset + at, offset + at + 8).toString('hex')})`,
    );
    this.socket.destroy();
  }
}

async function openAll(state: WorkerState): Promise<OpenedReport> {
  const { connections, connectConcurrency, connectTimeoutMs } = state.config;
  const counts = await openConcurrently(connections, connectConcurrency, connectTimeoutMs, (_index, done) => {
    const client = new Client(state, done);
    state.clients.push(client);
    return () => client.socket.destroy(new Error(`no handshake within ${connectTimeoutMs} ms`));
  });
  return { type: 'opened', ...counts };
}

function runTraffic(state: WorkerState): void {
  const { warmupMs, durationMs, id } = state.config;
  let cpuStart = Number.NaN;
  measureTraffic(
    state,
    { warmupMs, durationMs, postEdges: id === 0 },
    {
      start: (now) => {
        for (const client of state.clients) client.start(now);
      },
      reset: () => {
        state.messages = 0;
        state.histogram.fill(0);
        cpuStart = threadCpuMs();
      },
      done: (windowMs, elu) => {
        const cpu = (threadCpuMs() - cpuStart) / windowMs;
        const histogram = state.histogram.slice();
        post<WorkerResult>(
          {
            type: 'result',
            messages: state.messages,
            verified: state.verified,
            windowMs,
            histogram,
            elu,
            cpu,
            errors: state.errors,
            errorCount: state.errorCount,
          },
          [histogram.buffer],
        );
      },
    },
  );
}

function closeAll(state: WorkerState): void {
  state.closing = true;
  state.sending = false;
  for (const client of state.clients) client.socket.destroy();
}

serveWorker<WorkerConfig>(
  'rfc6455-loadgen',
  (config) => `load generator worker ${config.id}`,
  (config) => {
    const state = new WorkerState(config);
    return { open: () => openAll(state), go: () => runTraffic(state), close: () => closeAll(state) };
  },
);

// ------------------------------------------------------------------------------------------ coordinator

export interface LoadOptions {
  readonly port: number;
  /** Request target of the handshake. Default `/`. */
  readonly path?: string;
  /** `websocket` (default), or `tcp` for the plain echo: the same frames, expected back unchanged. */
  readonly protocol?: 'websocket' | 'tcp';
  readonly connections: number;
  /** Messages in flight per connection; 0 opens idle connections. */
  readonly inFlight: number;
  /** Payload bytes per message. */
  readonly size: number;
  /** Text messages (printable ASCII) instead of binary. Default false. */
  readonly text?: boolean;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Worker threads the connections are spread over. Default 1. */
  readonly workers?: number;
  /** Handshakes in progress at once, per worker. Default 128. */
  readonly connectConcurrency?: number;
  readonly connectTimeoutMs?: number;
}

export interface OpenReport {
  readonly opened: number;
  readonly failed: number;
  readonly elapsedMs: number;
  /** Completed handshakes per second, all workers together. */
  readonly handshakesPerSec: number;
  readonly errors: readonly string[];
}

export interface LoadResult {
  readonly protocol: 'websocket' | 'tcp';
  readonly size: number;
  readonly connections: number;
  readonly inFlight: number;
  readonly workers: number;
  readonly windowMs: number;
  readonly messages: number;
  readonly messagesPerSec: number;
  /** Payload bytes echoed per second, in 10^6 bytes. */
  readonly mbPerSec: number;
  readonly latencyUs: LatencySummary;
  /** Event-loop utilization of each worker during the window. */
  readonly workerElu: readonly number[];
  /** CPU time of each worker thread / wall time during the window (1.0: the worker kept a core busy). */
  readonly workerCpu: readonly number[];
  /** CPU time of this whole process (every thread) / wall time during the window. */
  readonly clientCpu: number;
  readonly verified: number;
  readonly errors: readonly string[];
  readonly errorCount: number;
}

/** The soft limit on open files of this process (Linux), or null when unknown. */
export function openFileLimit(): number | null {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (match === null) return null;
    return match[1] === 'unlimited' ? Infinity : Number(match[1]);
  } catch {
    return null;
  }
}

/**
 * A set of open connections spread over worker threads: `open()` connects and handshakes, then either
 * `run()` (traffic) or just hold them (idle), then `close()`.
 */
export class LoadSession {
  private readonly group: WorkerGroup<OpenedReport, WorkerResult>;
  private readonly options: LoadOptions;
  readonly report: OpenReport;

  private constructor(group: WorkerGroup<OpenedReport, WorkerResult>, options: LoadOptions, report: OpenReport) {
    this.group = group;
    this.options = options;
    this.report = report;
  }

  /** Starts the workers; resolves once every connection has completed its handshake (or failed). */
  static async open(options: LoadOptions): Promise<LoadSession> {
    if (!(options.port > 0 && options.port < 65536)) throw new RangeError(`bad port ${options.port}`);
    const count = Math.max(1, Math.min(options.workers ?? 1, Math.max(1, options.connections)));
    const deadlineMs = (options.connectTimeoutMs ?? 20_000) + options.warmupMs + options.durationMs + 60_000;
    const configs = Array.from({ length: count }, (_unused, id): WorkerConfig => ({
      kind: 'rfc6455-loadgen',
      id,
      port: options.port,
      path: options.path ?? '/',
      protocol: options.protocol ?? 'websocket',
      connections: Math.floor(options.connections / count) + (id < options.connections % count ? 1 : 0),
      inFlight: options.inFlight,
      size: options.size,
      text: options.text ?? false,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      connectConcurrency: options.connectConcurrency ?? 128,
      connectTimeoutMs: options.connectTimeoutMs ?? 20_000,
      deadlineMs,
      seed: 0x5eed0000 + id * 7919 + options.size,
    }));
    const { group, reports } = await WorkerGroup.open<OpenedReport, WorkerResult>(
      'load generator',
      import.meta.url,
      configs,
      (options.connectTimeoutMs ?? 20_000) + 30_000,
    );
    const opened = reports.reduce((sum, report) => sum + report.opened, 0);
    const elapsedMs = Math.max(...reports.map((report) => report.elapsedMs));
    return new LoadSession(group, options, {
      opened,
      failed: reports.reduce((sum, report) => sum + report.failed, 0),
      elapsedMs,
      handshakesPerSec: elapsedMs > 0 ? (opened * 1000) / elapsedMs : Number.NaN,
      errors: reports.flatMap((report) => report.errors).slice(0, MAX_REPORTED_ERRORS),
    });
  }

  /** Runs the traffic: warm-up, then the measured window. */
  async run(hooks: WindowHooks = {}): Promise<LoadResult> {
    const options = this.options;
    const { results, clientCpu } = await this.group.run(options.warmupMs + options.durationMs + 30_000, hooks);
    const histogram = new Uint32Array(HISTOGRAM_SIZE);
    for (const result of results) for (let i = 0; i < HISTOGRAM_SIZE; i++) histogram[i]! += result.histogram[i]!;
    const messagesPerSec = results.reduce((sum, result) => sum + (result.messages * 1000) / result.windowMs, 0);
    return {
      protocol: options.protocol ?? 'websocket',
      size: options.size,
      connections: options.connections,
      inFlight: options.inFlight,
      workers: this.group.size,
      windowMs: results.reduce((sum, result) => sum + result.windowMs, 0) / results.length,
      messages: results.reduce((sum, result) => sum + result.messages, 0),
      messagesPerSec,
      mbPerSec: (messagesPerSec * options.size) / 1e6,
      latencyUs: summarizeLatency(histogram),
      workerElu: results.map((result) => result.elu),
      workerCpu: results.map((result) => result.cpu),
      clientCpu,
      verified: results.reduce((sum, result) => sum + result.verified, 0),
      errors: results.flatMap((result) => result.errors).slice(0, MAX_REPORTED_ERRORS),
      errorCount: results.reduce((sum, result) => sum + result.errorCount, 0),
    };
  }

  /** Drops every connection and ends the workers (terminating any that do not end within 5 s). */
  close(): Promise<void> {
    return this.group.close();
  }
}

/** Opens the connections, runs the traffic, closes: one measurement. */
export async function runLoad(options: LoadOptions, hooks: WindowHooks = {}): Promise<LoadResult & { readonly open: OpenReport }> {
  const session = await LoadSession.open(options);
  try {
    const open = session.report;
    if (open.failed > 0) throw new Error(`${open.failed} of ${options.connections} connections failed: ${open.errors.join('; ')}`);
    const result = await session.run(hooks);
    return { ...result, open };
  } finally {
    await session.close();
  }
}

// ------------------------------------------------------------------------------------------ CLI


async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '9001' },
      path: { type: 'string', default: '/' },
      tcp: { type: 'boolean', default: false },
      text: { type: 'boolean', default: false },
      size: { type: 'string', default: '1024' },
      connections: { type: 'string', default: '64' },
      'in-flight': { type: 'string', default: '16' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      workers: { type: 'string', default: '1' },
      idle: { type: 'string' },
      hold: { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
    },
  });
  const port = Number(values.port);
  if (values.idle !== undefined) {
    const connections = Number(values.idle);
    const limit = openFileLimit();
    if (limit !== null && limit < connections + 100) console.error(`warning: ulimit -n is ${limit}, below ${connections} connections + 100`);
    const session = await LoadSession.open({ port, path: values.path, connections, inFlight: 0, size: 0, warmupMs: 0, durationMs: 0, workers: Number(values.workers) });
    const report = session.report;
    if (values.json) console.log(JSON.stringify(report));
    else console.log(`${report.opened} open, ${report.failed} failed, ${Math.round(report.handshakesPerSec)} handshakes/s ${report.errors.join('; ')}`);
    await new Promise((resolve) => setTimeout(resolve, Number(values.hold) * 1000));
    await session.close();
    return;
  }
  const result = await runLoad({
    port,
    path: values.path,
    protocol: values.tcp ? 'tcp' : 'websocket',
    text: values.text,
    size: Number(values.size),
    connections: Number(values.connections),
    inFlight: Number(values['in-flight']),
    warmupMs: Number(values.warmup) * 1000,
    durationMs: Number(values.duration) * 1000,
    workers: Number(values.workers),
  });
  if (values.json) {
    console.log(JSON.stringify(result));
  } else {
    const l = result.latencyUs;
    console.log(
      `${Math.round(result.messagesPerSec)} msgs/s, ${result.mbPerSec.toFixed(2)} MB/s payload, p50 ${formatMicros(l.p50)}, p99 ${formatMicros(l.p99)}, ` +
        `max ${formatMicros(l.max)}; worker ELU ${result.workerElu.map((elu) => elu.toFixed(2)).join('/')}, ` +
        `worker CPU ${result.workerCpu.map((cpu) => `${(100 * cpu).toFixed(0)}%`).join('/')}, process CPU ${(100 * result.clientCpu).toFixed(0)}%; ` +
        `${result.verified} echoes verified, ${result.errorCount} errors ${result.errors.join('; ')}`,
    );
  }
  if (result.errorCount > 0) process.exitCode = 1;
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
