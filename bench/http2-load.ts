/**
 * The child process of the http2 section (bench/http2.ts): the load generator for WebSockets over
 * HTTP/2 (RFC 8441) and over HTTP/1.1 with TLS, against one rfc6455 echo server listening with TLS
 * (`listen({ tls })`: both on one port). It runs pinned to its own core, the server on the other.
 *
 * Transports:
 *
 *   h2   ONE `node:http2` client session (ALPN h2); it waits for the server's SETTINGS with
 *        SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, then opens each WebSocket as an extended
 *        CONNECT stream (`:method CONNECT`, `:protocol websocket`, `:scheme https`, `:path`,
 *        `:authority`, `sec-websocket-version: 13`) answered by `:status 200`. Its receive windows
 *        (what the server may send before the client acknowledges) are a browser's by default, as
 *        Chrome sets them: 6 MiB per stream (SETTINGS_INITIAL_WINDOW_SIZE) and 15 MiB for the session
 *        (a WINDOW_UPDATE on stream 0); `clientWindow: 'node'` keeps Node's defaults (64 KiB − 1 both).
 *        The server's own receive windows are whatever `listen({ tls })` gives: Node's defaults.
 *   h1   one TLS connection per WebSocket (`tls.connect`, ALPN http/1.1), an HTTP/1.1 upgrade written
 *        by hand, the 101 and its Sec-WebSocket-Accept checked.
 *
 * Echo throughput: N WebSockets, each keeping W binary messages of S bytes in flight. The frames are
 * those of the raw load generator (bench/loadgen.ts `buildRings`): built and masked before the run,
 * several variants so a stale or reordered echo is caught, every echo compared byte for byte with the
 * unmasked frame the server must send back, each completed echo replaced at once (one write for all
 * the echoes a read completed). What runs at run time on this side is then the transport only: TLS,
 * and for h2 Node's HTTP/2 framing and flow control. After a warm-up, a window of `durationMs` counts
 * echoes, reads ('data' events), this process's CPU time and its event-loop utilization; then sending
 * stops, the echoes in flight are awaited and every WebSocket is closed with a close handshake (our
 * masked close frame, the server's close frame and end of stream or TCP close).
 *
 * Handshake latency, one at a time: the time from starting to open a WebSocket to its acceptance.
 *
 *   h2-stream       an extended CONNECT on an HTTP/2 session that is already open → `:status 200`
 *   h2-session      a new TCP + TLS connection, the HTTP/2 preface and SETTINGS, then the CONNECT → 200
 *   h1              a new TCP + TLS connection (full TLS 1.3 handshake), the upgrade request → 101
 *   h1-resumed      the same resuming the previous connection's TLS session (a 1.3 ticket: no certificate)
 *
 * Each WebSocket is closed (close handshake, untimed) before the next opens; `concurrency` > 1 opens
 * that many at once instead (h2 streams on one session, or that many TLS connections) and times each.
 *
 * With the parent, over IPC: parent → child `{ type: 'plan' }`; child → parent `ready`, `window` at
 * the edges of each measured window (the parent reads the server's CPU time there), one `result` per
 * measurement, `done`. It connects only to 127.0.0.1, every phase has a deadline, and it exits by
 * itself when its deadline passes or when the parent goes away.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { pathToFileURL } from 'node:url';
import { buildRings, LOOPBACK, variantCount, type FrameRing } from './loadgen.ts';
import { allowedCpus, describe, within } from './shared.ts';
import { MAX_REPORTED_ERRORS } from './workers.ts';

export type Transport = 'h2' | 'h1';
export type HandshakeMode = 'h2-stream' | 'h2-session' | 'h1' | 'h1-resumed';
export type ClientWindow = 'browser' | 'node';

/** Chrome's HTTP/2 receive windows: SETTINGS_INITIAL_WINDOW_SIZE, and the session's (stream 0). */
export const BROWSER_STREAM_WINDOW = 6 * 1024 * 1024;
export const BROWSER_SESSION_WINDOW = 15 * 1024 * 1024;

export interface EchoScenario {
  /** Group title, matched by `--filter` prefixes. */
  readonly title: string;
  /** Payload bytes per message. */
  readonly size: number;
  /** WebSockets: streams of one HTTP/2 session, or TLS connections. */
  readonly sockets: number;
  /** Messages in flight per WebSocket. */
  readonly inFlight: number;
}

export interface HandshakeScenario {
  readonly title: string;
  /** WebSockets opened (and closed) per mode, after `warmup` more that are not counted. */
  readonly count: number;
  readonly warmup: number;
  /** Opened at once: 1 is one at a time. */
  readonly concurrency: number;
}

export interface Http2Plan {
  readonly type: 'plan';
  readonly port: number;
  /** PEM file the client trusts: the server's self-signed certificate. */
  readonly caFile: string;
  readonly echo: readonly { readonly scenario: EchoScenario; readonly transports: readonly Transport[] }[];
  readonly handshakes: readonly { readonly scenario: HandshakeScenario; readonly modes: readonly HandshakeMode[] }[];
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The h2 client's receive windows: a browser's (6 MiB per stream, 15 MiB per session) or Node's defaults. */
  readonly clientWindow: ClientWindow;
  /** The child exits after this long, whatever happens. */
  readonly deadlineMs: number;
}

export interface Http2Ready {
  readonly type: 'ready';
  readonly info: Record<string, unknown>;
}

export interface Http2WindowEdge {
  readonly type: 'window';
  readonly phase: 'start' | 'end';
}

export interface EchoResult {
  readonly type: 'echo';
  readonly scenario: string;
  readonly transport: Transport;
  /** Echoes completed and verified inside the window. */
  readonly messages: number;
  readonly windowMs: number;
  readonly messagesPerSec: number;
  /** Payload bytes echoed per second, in 10^6 bytes. */
  readonly mbPerSec: number;
  /** This process's CPU time over the window (every thread), and per echoed message. */
  readonly cpuUs: number;
  readonly cpuUsPerMessage: number;
  /** cpuUs ÷ wall time: 1.0 is one core busy. */
  readonly cpu: number;
  readonly elu: number;
  /** 'data' events inside the window (TLS reads for h1, DATA frame payloads for h2), per echoed message. */
  readonly readsPerMessage: number;
  /** Time to open the N WebSockets (session or TLS connections, and every handshake). */
  readonly openMs: number;
  /** Echoes verified over the whole measurement, warm-up and drain included. */
  readonly verified: number;
  /** HTTP/2 only: the session's flow-control state at the end of the window (`session.state`). */
  readonly sessionState: Record<string, number> | null;
  readonly errors: readonly string[];
}

export interface HandshakeResult {
  readonly type: 'handshake';
  readonly scenario: string;
  readonly mode: HandshakeMode;
  /** Microseconds from starting to open each WebSocket to its acceptance, in the order taken. */
  readonly latenciesUs: readonly number[];
  /** Wall time of the counted handshakes (closes included), and this process's CPU time over it. */
  readonly windowMs: number;
  readonly cpuUs: number;
  /** h1-resumed: how many of the counted connections did resume their TLS session. */
  readonly resumed: number | null;
  readonly errors: readonly string[];
}

export interface Http2Done {
  readonly type: 'done';
  /** What the TLS connections and the HTTP/2 session negotiated (versions, cipher, ALPN, SETTINGS). */
  readonly negotiated: Record<string, unknown> | null;
}

export type Http2Report = Http2Ready | Http2WindowEdge | EchoResult | HandshakeResult | Http2Done;

const STEP_TIMEOUT_MS = 10_000;
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A masked client close frame, code 1000 (RFC 6455 §5.5.1): the key is 0x01020304. */
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0x01, 0x02, 0x03, 0x04, 0x03 ^ 0x01, 0xe8 ^ 0x02]);
const PATH = '/';

function report(message: Http2Report): Promise<void> {
  return new Promise((resolve) => {
    process.send!(message, undefined, {}, () => resolve());
  });
}

// ------------------------------------------------------------------------------------------ transports

/** One open WebSocket, whatever carries it. */
interface Carrier {
  write(bytes: Buffer): void;
  /** Every byte read after the handshake goes here, until `close()`. */
  onData: (chunk: Buffer) => void;
  /** The close handshake: our close frame, then the server's end of stream (h2) or TCP close (h1). */
  close(): Promise<void>;
}

class Tls {
  readonly ca: Buffer;
  readonly clientWindow: ClientWindow;
  /** The TLS session of the last h1 connection, for `h1-resumed`. */
  session: Buffer | null = null;
  /** What the first connection negotiated, for the record. */
  negotiated: Record<string, unknown> | null = null;

  constructor(caFile: string, clientWindow: ClientWindow) {
    this.ca = readFileSync(caFile);
    this.clientWindow = clientWindow;
  }
}

/** Opens an HTTP/2 session and waits for the server's SETTINGS, which must enable extended CONNECT. */
async function openSession(port: number, tls: Tls): Promise<ClientHttp2Session> {
  const browser = tls.clientWindow === 'browser';
  const session = http2Connect(`https://${LOOPBACK}:${port}`, {
    ca: tls.ca,
    servername: 'localhost',
    ...(browser ? { settings: { initialWindowSize: BROWSER_STREAM_WINDOW } } : {}),
  });
  session.on('error', () => undefined);
  try {
    const settings = await within(
      new Promise<{ enableConnectProtocol?: boolean }>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
        session.once('close', () => reject(new Error('the session closed before the server SETTINGS')));
      }),
      STEP_TIMEOUT_MS,
      'the server SETTINGS',
    );
    if (settings.enableConnectProtocol !== true) throw new Error('the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL = 1');
    if (browser) session.setLocalWindowSize(BROWSER_SESSION_WINDOW);
  } catch (error) {
    session.destroy();
    throw error;
  }
  if (tls.negotiated === null) {
    const socket = session.socket as TLSSocket;
    tls.negotiated = { h2Protocol: socket.alpnProtocol, h2TlsVersion: socket.getProtocol(), h2Cipher: socket.getCipher().name, localSettings: session.localSettings, remoteSettings: session.remoteSettings };
  }
  return session;
}

/** An extended CONNECT for one WebSocket (RFC 8441 §4); resolves once the server answers 200. */
function openStream(session: ClientHttp2Session): Promise<Carrier> {
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': PATH,
    ':authority': 'localhost',
    'sec-websocket-version': '13',
  });
  stream.on('error', () => undefined);
  return new Promise<Carrier>((resolve, reject) => {
    const onClose = (): void => reject(new Error(`stream closed before a response (RST code ${stream.rstCode})`));
    stream.once('close', onClose);
    stream.once('response', (headers) => {
      stream.off('close', onClose);
      const status = Number(headers[':status']);
      if (status !== 200) {
        stream.close();
        reject(new Error(`extended CONNECT answered ${status}`));
        return;
      }
      resolve(streamCarrier(stream));
    });
  });
}

function streamCarrier(stream: ClientHttp2Stream): Carrier {
  const carrier: Carrier = {
    write: (bytes) => void stream.write(bytes),
    onData: () => undefined,
    close: () =>
      new Promise<void>((resolve) => {
        stream.removeAllListeners('data');
        stream.on('data', () => undefined);
        if (stream.closed) {
          resolve();
          return;
        }
        stream.once('close', () => resolve());
        // The server answers our close frame with its own and ends its side: then ours ends too.
        stream.once('end', () => stream.end());
        stream.write(CLOSE_FRAME);
      }),
  };
  stream.on('data', (chunk: Buffer) => carrier.onData(chunk));
  return carrier;
}

/**
 * A new TLS connection (ALPN http/1.1) and an HTTP/1.1 upgrade; resolves once the 101 and its
 * Sec-WebSocket-Accept have been checked. `resume`: offer the last connection's TLS session.
 */
function openTlsWebSocket(port: number, tls: Tls, resume: boolean): Promise<{ carrier: Carrier; reused: boolean }> {
  const key = randomBytes(16).toString('base64');
  const socket = tlsConnect({
    host: LOOPBACK,
    port,
    ca: tls.ca,
    servername: 'localhost',
    ALPNProtocols: ['http/1.1'],
    ...(resume && tls.session !== null ? { session: tls.session } : {}),
  });
  socket.setNoDelay(true);
  socket.on('session', (session: Buffer) => {
    tls.session = session;
  });
  return new Promise((resolve, reject) => {
    let head: Buffer | null = Buffer.alloc(0);
    const fail = (error: Error): void => {
      head = null;
      socket.destroy();
      reject(error);
    };
    socket.on('error', (error) => {
      if (head !== null) fail(error);
    });
    socket.on('close', () => {
      if (head !== null) fail(new Error('closed during the handshake'));
    });
    socket.once('secureConnect', () => {
      if (tls.negotiated !== null && tls.negotiated['h1TlsVersion'] === undefined) {
        tls.negotiated['h1TlsVersion'] = socket.getProtocol();
        tls.negotiated['h1Cipher'] = socket.getCipher().name;
        tls.negotiated['h1Protocol'] = socket.alpnProtocol;
      }
      socket.write(
        `GET ${PATH} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    const carrier: Carrier = {
      write: (bytes) => void socket.write(bytes),
      onData: () => undefined,
      close: () =>
        new Promise<void>((resolveClose) => {
          socket.removeAllListeners('data');
          socket.on('data', () => undefined);
          if (socket.destroyed) {
            resolveClose();
            return;
          }
          socket.once('close', () => resolveClose());
          // The server closes TCP first after the close handshake (RFC 6455 §7.1.1); we follow.
          socket.once('end', () => socket.end());
          socket.write(CLOSE_FRAME);
        }),
    };
    socket.on('data', (chunk: Buffer) => {
      if (head === null) {
        carrier.onData(chunk);
        return;
      }
      const all: Buffer = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        head = all;
        if (all.length > 16 * 1024) fail(new Error('handshake response head over 16 KiB'));
        return;
      }
      head = null;
      const lines = all.subarray(0, end).toString('latin1').split('\r\n');
      if (!/^HTTP\/1\.1 101 /.test(lines[0] ?? '')) {
        fail(new Error(`handshake refused: ${lines[0]}`));
        return;
      }
      const expected = createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
      const accept = lines.find((line) => line.toLowerCase().startsWith('sec-websocket-accept:'));
      if (accept === undefined || accept.slice(accept.indexOf(':') + 1).trim() !== expected) {
        fail(new Error('wrong or missing Sec-WebSocket-Accept'));
        return;
      }
      resolve({ carrier, reused: socket.isSessionReused() });
      const rest = all.subarray(end + 4);
      if (rest.length > 0) carrier.onData(rest);
    });
  });
}

// ------------------------------------------------------------------------------------------ echo traffic

/** What every WebSocket of a measurement shares. */
class Traffic {
  sending = true;
  measuring = false;
  /** Echoes verified inside the window, and over the whole measurement. */
  messages = 0;
  verified = 0;
  /** 'data' events inside the window. */
  reads = 0;
  readonly send: FrameRing;
  readonly expect: FrameRing;
  readonly inFlight: number;
  readonly errors: string[] = [];

  constructor(size: number, inFlight: number, seed: number) {
    const rings = buildRings(size, false, variantCount(size, inFlight), seed, false);
    this.send = rings.send;
    this.expect = rings.expect;
    this.inFlight = inFlight;
  }

  error(message: string): void {
    if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push(message);
  }
}

/**
 * One WebSocket's pipeline, as a connection of bench/loadgen.ts: sends prebuilt frames, checks what
 * comes back against the expected frames with one compare per read (or per period of the layout),
 * counts completed echoes and replaces them with one write.
 */
class Pipe {
  private readonly traffic: Traffic;
  private readonly carrier: Carrier;
  private sendVariant = 0;
  private recvVariant = 0;
  private recvPos = 0;
  private outstanding = 0;
  private broken = false;
  private onDrained: (() => void) | null = null;

  constructor(traffic: Traffic, carrier: Carrier) {
    this.traffic = traffic;
    this.carrier = carrier;
    carrier.onData = (chunk) => this.onData(chunk);
  }

  start(): void {
    this.sendMessages(this.traffic.inFlight);
  }

  private sendMessages(count: number): void {
    const ring = this.traffic.send;
    const first = this.sendVariant;
    this.carrier.write(ring.bytes.subarray(ring.starts[first]!, ring.starts[first + count]!));
    const next = first + count;
    this.sendVariant = next >= ring.variants ? next - ring.variants : next;
    this.outstanding += count;
  }

  private onData(chunk: Buffer): void {
    const traffic = this.traffic;
    if (this.broken) return;
    if (traffic.measuring) traffic.reads++;
    const expect = traffic.expect;
    const { period, starts, bytes } = expect;
    const length = chunk.length;
    let variant = this.recvVariant;
    let position = this.recvPos;
    let completed = 0;
    let offset = 0;
    while (offset < length) {
      const take = Math.min(length - offset, period);
      const end = position + take;
      if (chunk.compare(bytes, position, end, offset, offset + take) !== 0) {
        this.broken = true;
        traffic.error(`echo mismatch in a ${length}-byte read at offset ${offset} (expected frame byte ${position})`);
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
    this.outstanding -= completed;
    traffic.verified += completed;
    if (traffic.measuring) traffic.messages += completed;
    if (traffic.sending) this.sendMessages(completed);
    else if (this.outstanding === 0) this.onDrained?.();
  }

  /** Messages sent whose echo has not come back (0 after a mismatch: nothing more is checked). */
  get waiting(): number {
    return this.broken ? 0 : this.outstanding;
  }

  /** Resolves once every message sent has come back (call after `sending` is cleared). */
  drained(): Promise<void> {
    if (this.outstanding === 0 || this.broken) return Promise.resolve();
    return new Promise((resolve) => {
      this.onDrained = resolve;
    });
  }

  close(): Promise<void> {
    return this.carrier.close();
  }
}

async function openCarriers(plan: Http2Plan, tls: Tls, transport: Transport, count: number): Promise<{ carriers: Carrier[]; session: ClientHttp2Session | null }> {
  if (transport === 'h2') {
    const session = await openSession(plan.port, tls);
    try {
      const carriers = await within(Promise.all(Array.from({ length: count }, () => openStream(session))), STEP_TIMEOUT_MS, `${count} extended CONNECTs`);
      return { carriers, session };
    } catch (error) {
      session.destroy();
      throw error;
    }
  }
  const opened = await within(
    Promise.allSettled(Array.from({ length: count }, () => openTlsWebSocket(plan.port, tls, false))),
    STEP_TIMEOUT_MS,
    `${count} TLS upgrades`,
  );
  const failed = opened.find((outcome) => outcome.status === 'rejected');
  if (failed !== undefined) {
    for (const outcome of opened) if (outcome.status === 'fulfilled') void outcome.value.carrier.close();
    throw (failed as PromiseRejectedResult).reason;
  }
  return { carriers: opened.map((outcome) => (outcome as PromiseFulfilledResult<{ carrier: Carrier }>).value.carrier), session: null };
}

function sessionState(session: ClientHttp2Session): Record<string, number> {
  const state = session.state;
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(state)) if (typeof value === 'number') out[name] = value;
  return out;
}

async function measureEcho(plan: Http2Plan, tls: Tls, scenario: EchoScenario, transport: Transport): Promise<EchoResult> {
  const traffic = new Traffic(scenario.size, scenario.inFlight, 0x48320000 + scenario.size);
  const openStart = performance.now();
  const { carriers, session } = await openCarriers(plan, tls, transport, scenario.sockets);
  const openMs = performance.now() - openStart;
  try {
    const pipes = carriers.map((carrier) => new Pipe(traffic, carrier));
    for (const pipe of pipes) pipe.start();
    await sleep(plan.warmupMs);
    traffic.measuring = true;
    const cpuStart = process.cpuUsage();
    const eluStart = performance.eventLoopUtilization();
    const wallStart = performance.now();
    void report({ type: 'window', phase: 'start' });
    await sleep(plan.durationMs);
    traffic.measuring = false;
    const cpu = process.cpuUsage(cpuStart);
    const elu = performance.eventLoopUtilization(eluStart).utilization;
    const windowMs = performance.now() - wallStart;
    void report({ type: 'window', phase: 'end' });
    const state = session === null ? null : sessionState(session);
    traffic.sending = false;
    await within(Promise.all(pipes.map((pipe) => pipe.drained())), STEP_TIMEOUT_MS, 'the echoes in flight').catch((error: unknown) => {
      const waiting = pipes.filter((pipe) => pipe.waiting > 0);
      throw new Error(
        `${describe(error)} (${waiting.length} of ${pipes.length} WebSockets still waiting for ${waiting.reduce((sum, pipe) => sum + pipe.waiting, 0)} echoes` +
          `${session === null ? '' : `; session ${JSON.stringify(sessionState(session))}`})`,
      );
    });
    await within(Promise.all(pipes.map((pipe) => pipe.close())), STEP_TIMEOUT_MS, 'the close handshakes');
    const messages = traffic.messages;
    const cpuUs = cpu.user + cpu.system;
    const messagesPerSec = (messages * 1000) / windowMs;
    return {
      type: 'echo',
      scenario: scenario.title,
      transport,
      messages,
      windowMs,
      messagesPerSec,
      mbPerSec: (messagesPerSec * scenario.size) / 1e6,
      cpuUs,
      cpuUsPerMessage: messages > 0 ? cpuUs / messages : Number.NaN,
      cpu: cpuUs / (windowMs * 1000),
      elu,
      readsPerMessage: messages > 0 ? traffic.reads / messages : Number.NaN,
      openMs,
      verified: traffic.verified,
      sessionState: state,
      errors: traffic.errors,
    };
  } finally {
    if (session !== null) {
      session.close();
      await within(new Promise<void>((resolve) => (session.closed ? resolve() : session.once('close', () => resolve()))), STEP_TIMEOUT_MS, 'the session close').catch(
        () => session.destroy(),
      );
    }
  }
}

// ------------------------------------------------------------------------------------------ handshakes

/** Opens one WebSocket by `mode` and resolves at its acceptance; `done` closes it (and its session, if its own). */
async function openOne(plan: Http2Plan, tls: Tls, mode: HandshakeMode, shared: ClientHttp2Session | null): Promise<{ done: () => Promise<void>; reused: boolean }> {
  if (mode === 'h2-stream') {
    const carrier = await openStream(shared!);
    return { done: () => carrier.close(), reused: false };
  }
  if (mode === 'h2-session') {
    const session = await openSession(plan.port, tls);
    const carrier = await openStream(session).catch((error: unknown) => {
      session.destroy();
      throw error;
    });
    return {
      done: async () => {
        await carrier.close();
        session.close();
        await new Promise<void>((resolve) => (session.closed ? resolve() : session.once('close', () => resolve())));
      },
      reused: false,
    };
  }
  const { carrier, reused } = await openTlsWebSocket(plan.port, tls, mode === 'h1-resumed');
  return { done: () => carrier.close(), reused };
}

async function measureHandshakes(plan: Http2Plan, tls: Tls, scenario: HandshakeScenario, mode: HandshakeMode): Promise<HandshakeResult> {
  const errors: string[] = [];
  const shared = mode === 'h2-stream' ? await openSession(plan.port, tls) : null;
  try {
    if (mode === 'h1-resumed' && tls.session === null) await (await openOne(plan, tls, 'h1', null)).done();
    const latencies: number[] = [];
    let resumed = 0;
    let cpuStart = process.cpuUsage();
    let wallStart = performance.now();
    const total = scenario.warmup + scenario.count;
    const concurrency = Math.max(1, scenario.concurrency);
    let windowOpen = false;
    for (let started = 0; started < total; ) {
      // The counted handshakes start with the first batch at or past the warm-up.
      const counted = started >= scenario.warmup;
      if (counted && !windowOpen) {
        windowOpen = true;
        void report({ type: 'window', phase: 'start' });
        cpuStart = process.cpuUsage();
        wallStart = performance.now();
      }
      const batch = Math.min(concurrency, total - started);
      started += batch;
      const opened = await within(
        Promise.allSettled(
          Array.from({ length: batch }, async () => {
            const t0 = performance.now();
            const one = await openOne(plan, tls, mode, shared);
            return { one, us: (performance.now() - t0) * 1000 };
          }),
        ),
        STEP_TIMEOUT_MS,
        `${batch} ${mode} handshake(s)`,
      );
      for (const outcome of opened) {
        if (outcome.status === 'rejected') {
          if (errors.length < MAX_REPORTED_ERRORS) errors.push(describe(outcome.reason));
        } else if (counted) {
          latencies.push(outcome.value.us);
          if (outcome.value.one.reused) resumed++;
        }
      }
      await within(
        Promise.all(opened.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value.one.done() : undefined))),
        STEP_TIMEOUT_MS,
        `closing ${batch} ${mode} WebSocket(s)`,
      );
    }
    const cpu = process.cpuUsage(cpuStart);
    const windowMs = performance.now() - wallStart;
    void report({ type: 'window', phase: 'end' });
    return {
      type: 'handshake',
      scenario: scenario.title,
      mode,
      latenciesUs: latencies,
      windowMs,
      cpuUs: cpu.user + cpu.system,
      resumed: mode === 'h1-resumed' ? resumed : null,
      errors,
    };
  } finally {
    if (shared !== null) {
      shared.close();
      await within(new Promise<void>((resolve) => (shared.closed ? resolve() : shared.once('close', () => resolve()))), STEP_TIMEOUT_MS, 'the session close').catch(
        () => shared.destroy(),
      );
    }
  }
}

// ------------------------------------------------------------------------------------------ main

function failedEcho(scenario: EchoScenario, transport: Transport, error: unknown): EchoResult {
  const nan = Number.NaN;
  return {
    type: 'echo',
    scenario: scenario.title,
    transport,
    messages: 0,
    windowMs: nan,
    messagesPerSec: nan,
    mbPerSec: nan,
    cpuUs: nan,
    cpuUsPerMessage: nan,
    cpu: nan,
    elu: nan,
    readsPerMessage: nan,
    openMs: nan,
    verified: 0,
    sessionState: null,
    errors: [describe(error)],
  };
}

async function main(): Promise<void> {
  const plan = await new Promise<Http2Plan>((resolve) => {
    process.once('message', (message) => resolve(message as Http2Plan));
  });
  setTimeout(() => {
    console.error(`http2-load: deadline of ${plan.deadlineMs} ms passed, exiting`);
    process.exit(3);
  }, plan.deadlineMs).unref();
  const stray: string[] = [];
  process.on('unhandledRejection', (reason) => {
    if (stray.length < MAX_REPORTED_ERRORS) stray.push(`unhandled rejection: ${describe(reason)}`);
  });
  const tls = new Tls(plan.caFile, plan.clientWindow);
  await report({
    type: 'ready',
    info: { runtime: import.meta.url.includes('/.build/') ? 'js' : 'tsx', cpus: allowedCpus(), openssl: process.versions.openssl, nghttp2: process.versions.nghttp2 },
  });
  for (const { scenario, transports } of plan.echo) {
    for (const transport of transports) {
      let result: EchoResult;
      try {
        result = await measureEcho(plan, tls, scenario, transport);
      } catch (error) {
        result = failedEcho(scenario, transport, error);
      }
      if (stray.length > 0) result = { ...result, errors: [...result.errors, ...stray.splice(0)] };
      await report(result);
    }
  }
  for (const { scenario, modes } of plan.handshakes) {
    for (const mode of modes) {
      let result: HandshakeResult;
      try {
        result = await measureHandshakes(plan, tls, scenario, mode);
      } catch (error) {
        result = { type: 'handshake', scenario: scenario.title, mode, latenciesUs: [], windowMs: Number.NaN, cpuUs: Number.NaN, resumed: null, errors: [describe(error)] };
      }
      if (stray.length > 0) result = { ...result, errors: [...result.errors, ...stray.splice(0)] };
      await report(result);
    }
  }
  await report({ type: 'done', negotiated: tls.negotiated });
  process.exit(0);
}

if (process.send !== undefined && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.on('disconnect', () => process.exit(0));
  await main();
}
