/**
 * A raw WebSocket test client on `node:net` (or `node:tls`) for traffic a real client would never send:
 * it does the HTTP upgrade by hand, builds every frame byte by byte (any FIN/RSV/opcode/mask/length,
 * lies included), writes raw bytes in chunks with delays, and reads what the server sends exactly as it
 * is on the wire: HTTP responses with their bodies, frames with their mask bit, TCP FIN and reset.
 *
 * It is written independently of src/ (no import from it), so the server is checked against it and not
 * against itself. It never answers anything on its own: pings, closes and FINs are all up to the test.
 * Every wait has a timeout (the client's `timeout`, overridable per call) and fails with what was
 * buffered, so a broken server makes a test fail fast instead of hanging.
 *
 *   const client = await RawClient.connect(port, { path: '/chat' });   // 101 checked, frame mode
 *   await client.sendFrame({ opcode: Opcode.Text, payload: 'hi' });     // masked with a random key
 *   const frame = await client.readFrame();                              // { opcode, payload, ... }
 *   await client.close(1000, 'bye');
 *   assert.deepStrictEqual(await client.expectClose(), { code: 1000, reason: '' });
 *   await client.waitForEnd();
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsConnectionOptions } from 'node:tls';

/** RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 6455 §5.2 opcodes, including reserved ones for negative tests. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  ReservedData3: 0x3,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
  ReservedControlB: 0xb,
} as const;

/** RSV bits as `FrameSpec.rsv` takes them. */
export const Rsv = { Rsv1: 4, Rsv2: 2, Rsv3: 1 } as const;

/** Default wait for anything from the network. */
export const DEFAULT_TIMEOUT = 2000;

/** Largest HTTP response head accepted before giving up. */
const MAX_HEAD_SIZE = 64 * 1024;

// ------------------------------------------------------------------ frames

export interface FrameSpec {
  /** Default true. */
  fin?: boolean;
  /** RSV bits as a 3-bit number: 4 = RSV1, 2 = RSV2, 1 = RSV3. Default 0. */
  rsv?: number;
  opcode: number;
  /** Bytes, or a string encoded as UTF-8. Default empty. */
  payload?: Uint8Array | string;
  /** Default true: a client frame is masked (RFC 6455 §5.3). */
  mask?: boolean;
  /** The 4-byte masking key; default a random one. */
  maskKey?: Uint8Array;
  /** Length field size: 'minimal' (default) or a forced 7-, 16- or 64-bit encoding. */
  lengthEncoding?: 'minimal' | 7 | 16 | 64;
  /** Writes this value in the length field instead of the payload's length (to lie about the size). */
  declaredLength?: number | bigint;
}

function toBytes(payload: Uint8Array | string | undefined): Buffer {
  if (payload === undefined) return Buffer.alloc(0);
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** Builds one frame (RFC 6455 §5.2) byte by byte; the payload is masked with a byte loop (§5.3). */
export function encodeFrame(spec: FrameSpec): Buffer {
  const payload = toBytes(spec.payload);
  const fin = spec.fin ?? true;
  const masked = spec.mask ?? true;
  const length = BigInt(spec.declaredLength ?? payload.length);
  let encoding = spec.lengthEncoding ?? 'minimal';
  if (encoding === 'minimal') encoding = length < 126n ? 7 : length <= 0xffffn ? 16 : 64;
  const extra = encoding === 7 ? 0 : encoding === 16 ? 2 : 8;
  const header = Buffer.alloc(2 + extra + (masked ? 4 : 0));
  header[0] = (fin ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f);
  const maskBit = masked ? 0x80 : 0;
  if (encoding === 7) {
    if (length > 125n) throw new RangeError('a 7-bit length field holds at most 125');
    header[1] = maskBit | Number(length);
  } else if (encoding === 16) {
    if (length > 0xffffn) throw new RangeError('a 16-bit length field holds at most 65535');
    header[1] = maskBit | 126;
    header.writeUInt16BE(Number(length), 2);
  } else {
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(BigInt.asUintN(64, length), 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const key = spec.maskKey ?? randomBytes(4);
  if (key.length !== 4) throw new RangeError('a masking key is 4 bytes');
  header.set(key, 2 + extra);
  const body = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, body]);
}

/** A close frame's payload (RFC 6455 §5.5.1): nothing, or a 2-byte code and a UTF-8 reason. */
export function closePayload(code?: number, reason = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2, 'utf8');
  return payload;
}

/** A frame as the server sent it. */
export interface ServerFrame {
  readonly fin: boolean;
  /** RSV bits as a 3-bit number (4 = RSV1). */
  readonly rsv: number;
  readonly opcode: number;
  /** Whether the mask bit was set (a server frame must not be masked: RFC 6455 §5.1). */
  readonly masked: boolean;
  /** The payload, unmasked if it was masked. */
  readonly payload: Buffer;
  /** The length field's size in bits as sent: 7, 16 or 64 (RFC 6455 §5.2 wants the minimal one). */
  readonly lengthEncoding: 7 | 16 | 64;
}

export interface CloseFrameInfo {
  /** The status code, or null for a close frame without a payload. */
  readonly code: number | null;
  readonly reason: string;
}

/** Reads a close frame's payload. Throws on a 1-byte payload or a reason that is not UTF-8. */
export function parseClosePayload(payload: Buffer): CloseFrameInfo {
  if (payload.length === 0) return { code: null, reason: '' };
  if (payload.length === 1) throw new Error('close frame payload of 1 byte (RFC 6455 §5.5.1 needs 0 or 2+)');
  const reason = new TextDecoder('utf-8', { fatal: true }).decode(payload.subarray(2));
  return { code: payload.readUInt16BE(0), reason };
}

/** RFC 6455 §4.2.2 item 5.4: the Sec-WebSocket-Accept value for a key. */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}

/** A fresh Sec-WebSocket-Key: base64 of 16 random bytes (RFC 6455 §4.1 item 7). */
export function randomKey(): string {
  return randomBytes(16).toString('base64');
}

// ------------------------------------------------------------------ HTTP

export interface HttpResponse {
  /** `HTTP/1.1 101 Switching Protocols` */
  readonly statusLine: string;
  readonly httpVersion: string;
  readonly status: number;
  readonly statusText: string;
  /** Lower-case names; repeated fields joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** Every field as received, in order, with its original case. */
  readonly rawHeaders: readonly (readonly [string, string])[];
  /** The body: Content-Length bytes, or everything up to the end of the connection without one. */
  readonly body: Buffer;
}

export interface OpenOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Connect over TLS; `true` uses `rejectUnauthorized: false` (self-signed test certificates). */
  tls?: boolean | TlsConnectionOptions;
  /** Default wait for this client's network operations, in ms. Default DEFAULT_TIMEOUT. */
  timeout?: number;
  /** Keep our side open after the server's FIN (default false: Node ends it at once, as TCP peers do). */
  allowHalfOpen?: boolean;
}

export interface ConnectOptions extends OpenOptions {
  /** Request target. Default `/`. */
  path?: string;
  /** Default GET. */
  method?: string;
  /** Default 1.1. */
  httpVersion?: string;
  /** Sec-WebSocket-Key; default a random valid one. */
  key?: string;
  /** Offered subprotocols (Sec-WebSocket-Protocol). */
  protocols?: readonly string[];
  /**
   * Header fields added to (or replacing, case-insensitively) the defaults: Host, Upgrade, Connection,
   * Sec-WebSocket-Key, Sec-WebSocket-Version. `null` removes a default field.
   */
  headers?: Readonly<Record<string, string | readonly string[] | null>>;
  /** Throw when a 101 response's Sec-WebSocket-Accept is wrong. Default true. */
  verifyAccept?: boolean;
}

/** Builds an upgrade request by hand (RFC 6455 §4.1). */
export function upgradeRequest(port: number, options: ConnectOptions = {}): { request: string; key: string } {
  const host = options.host ?? '127.0.0.1';
  const key = options.key ?? randomKey();
  const fields = new Map<string, [string, string | readonly string[]]>();
  const set = (name: string, value: string | readonly string[] | null): void => {
    if (value === null) fields.delete(name.toLowerCase());
    else fields.set(name.toLowerCase(), [name, value]);
  };
  set('Host', `${host}:${port}`);
  set('Upgrade', 'websocket');
  set('Connection', 'Upgrade');
  set('Sec-WebSocket-Key', key);
  set('Sec-WebSocket-Version', '13');
  if (options.protocols !== undefined) set('Sec-WebSocket-Protocol', options.protocols.join(', '));
  for (const [name, value] of Object.entries(options.headers ?? {})) set(name, value);
  let request = `${options.method ?? 'GET'} ${options.path ?? '/'} HTTP/${options.httpVersion ?? '1.1'}\r\n`;
  for (const [name, value] of fields.values()) {
    for (const item of typeof value === 'string' ? [value] : value) request += `${name}: ${item}\r\n`;
  }
  return { request: request + '\r\n', key };
}

function parseHead(head: string): Omit<HttpResponse, 'body'> {
  const lines = head.split('\r\n');
  const statusLine = lines[0] ?? '';
  const match = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(statusLine);
  if (match === null) throw new Error(`malformed HTTP status line: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  const rawHeaders: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`malformed HTTP header line: ${JSON.stringify(line)}`);
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    rawHeaders.push([name, value]);
    const lower = name.toLowerCase();
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  }
  return { statusLine, httpVersion: match[1]!, status: Number(match[2]), statusText: match[3] ?? '', headers, rawHeaders };
}

// ------------------------------------------------------------------ the client

export interface WriteOptions {
  /** Split the bytes into writes of at most this many bytes. */
  chunkSize?: number;
  /** Wait this many ms between chunks (default 0: one write per chunk, no wait). */
  delay?: number;
}

interface Waiter {
  /** Settles the wait if its condition holds, or if the connection ended and it never will. */
  check(): void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class RawClient {
  /** The TCP (or TLS) socket; use it directly for floods and resets. */
  readonly socket: Socket;
  /** Default wait for this client's network operations, in ms. */
  timeout: number;
  /** The handshake response (set by `connect`). */
  response: HttpResponse | null = null;
  /** The Sec-WebSocket-Key sent by `connect`. */
  key = '';

  private chunks: Buffer[] = [];
  private length = 0;
  private waiters = new Set<Waiter>();
  private finReceived = false;
  private socketClosed = false;
  private socketError: Error | null = null;

  private constructor(socket: Socket, timeout: number) {
    this.socket = socket;
    this.timeout = timeout;
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.wake();
    });
    socket.on('end', () => {
      this.finReceived = true;
      this.wake();
    });
    socket.on('error', (error) => {
      this.socketError = error;
    });
    socket.on('close', () => {
      this.socketClosed = true;
      this.wake();
    });
  }

  /** Opens a TCP (or TLS) connection and sends nothing. */
  static async open(port: number, options: OpenOptions = {}): Promise<RawClient> {
    const host = options.host ?? '127.0.0.1';
    const timeout = options.timeout ?? DEFAULT_TIMEOUT;
    const allowHalfOpen = options.allowHalfOpen ?? false;
    let socket: Socket;
    let event: string;
    if (options.tls === undefined || options.tls === false) {
      socket = netConnect({ port, host, allowHalfOpen });
      event = 'connect';
    } else {
      const tlsOptions = options.tls === true ? {} : options.tls;
      // (allowHalfOpen applies to plain TCP only.)
      socket = tlsConnect({ rejectUnauthorized: false, ...tlsOptions, port, host });
      event = 'secureConnect';
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`connect to ${host}:${port} timed out after ${timeout} ms`)), timeout);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      socket.once('error', fail);
      socket.once(event, () => {
        clearTimeout(timer);
        socket.off('error', fail);
        resolve();
      });
    });
    // Each write goes out as its own segment when the test asks for it (no Nagle coalescing).
    socket.setNoDelay(true);
    return new RawClient(socket, timeout);
  }

  /**
   * Opens a connection and sends an upgrade request built from `options`. Resolves with the client
   * once the response has arrived (`client.response`): after a 101 the client is in frame mode (the
   * accept key is checked); after a refusal the response body has been read too.
   */
  static async connect(port: number, options: ConnectOptions = {}): Promise<RawClient> {
    const client = await RawClient.open(port, options);
    try {
      const { request, key } = upgradeRequest(port, options);
      client.key = key;
      await client.write(request);
      const response = await client.readHttpResponse();
      client.response = response;
      if (response.status === 101 && (options.verifyAccept ?? true)) {
        const accept = response.headers['sec-websocket-accept'];
        if (accept !== acceptFor(key)) {
          throw new Error(`wrong Sec-WebSocket-Accept ${JSON.stringify(accept)} for key ${key}`);
        }
      }
      return client;
    } catch (error) {
      client.destroy();
      throw error;
    }
  }

  // ---------------------------------------------------------------- state

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.length;
  }

  /** The server's FIN arrived (or the connection is gone). */
  get ended(): boolean {
    return this.finReceived || this.socketClosed;
  }

  /** The socket is closed. */
  get closed(): boolean {
    return this.socketClosed;
  }

  /** The socket error, if any (ECONNRESET when the server reset the connection). */
  get error(): Error | null {
    return this.socketError;
  }

  // ---------------------------------------------------------------- writing

  /**
   * Writes raw bytes (a string is encoded as UTF-8), optionally in chunks with delays, and resolves
   * once everything is handed to the kernel. To flood without waiting, use `socket.write` directly.
   */
  async write(data: Uint8Array | string, options: WriteOptions = {}): Promise<void> {
    const bytes = toBytes(data);
    const chunkSize = options.chunkSize ?? Math.max(bytes.length, 1);
    if (bytes.length === 0) return;
    for (let offset = 0; offset < bytes.length; offset += chunkSize) {
      if (offset > 0 && options.delay !== undefined && options.delay > 0) await sleep(options.delay);
      await this.writeOnce(bytes.subarray(offset, offset + chunkSize));
    }
  }

  /** Writes one chunk and waits until it is handed to the kernel (bounded by `timeout`). */
  private writeOnce(bytes: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.socket.destroyed) {
        reject(new Error('write on a destroyed socket'));
        return;
      }
      const timer = setTimeout(
        () => reject(new Error(`writing ${bytes.length} bytes: not flushed after ${this.timeout} ms (is the server reading?)`)),
        this.timeout,
      );
      this.socket.write(bytes, (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
    });
  }

  /** Builds and writes one frame (masked with a random key unless `mask: false`). */
  sendFrame(spec: FrameSpec, options: WriteOptions = {}): Promise<void> {
    return this.write(encodeFrame(spec), options);
  }

  /** Writes several frames in one TCP write (to test ordering inside one read). */
  sendFrames(specs: readonly FrameSpec[], options: WriteOptions = {}): Promise<void> {
    return this.write(Buffer.concat(specs.map(encodeFrame)), options);
  }

  sendText(text: string): Promise<void> {
    return this.sendFrame({ opcode: Opcode.Text, payload: text });
  }

  sendBinary(data: Uint8Array): Promise<void> {
    return this.sendFrame({ opcode: Opcode.Binary, payload: data });
  }

  ping(payload: Uint8Array | string = ''): Promise<void> {
    return this.sendFrame({ opcode: Opcode.Ping, payload });
  }

  pong(payload: Uint8Array | string = ''): Promise<void> {
    return this.sendFrame({ opcode: Opcode.Pong, payload });
  }

  /** Sends a close frame (no payload when `code` is omitted). */
  close(code?: number, reason = ''): Promise<void> {
    return this.sendFrame({ opcode: Opcode.Close, payload: closePayload(code, reason) });
  }

  // ---------------------------------------------------------------- reading

  /**
   * Waits until `ready()` holds; rejects after `timeout` ms, or early once the connection has ended
   * and `ready()` is still false.
   */
  private waitFor(what: string, ready: () => boolean, timeout: number, endIsFinal = true): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        const error = this.socketError === null ? '' : `, error ${this.socketError.message}`;
        reject(
          new Error(`${what}: ${why} (buffered ${this.length} bytes, fin ${this.finReceived}, closed ${this.socketClosed}${error})`),
        );
      };
      const timer = setTimeout(() => fail(`timed out after ${timeout} ms`), timeout);
      const waiter: Waiter = {
        check: () => {
          if (ready()) {
            clearTimeout(timer);
            this.waiters.delete(waiter);
            resolve();
          } else if (endIsFinal && (this.finReceived || this.socketClosed)) {
            fail('the connection ended first');
          }
        },
      };
      this.waiters.add(waiter);
      if (endIsFinal && (this.finReceived || this.socketClosed)) fail('the connection had already ended');
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter.check();
  }

  /** The first `n` buffered bytes, without consuming them (joins chunks once as needed). */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks, this.length);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  /** Consumes and returns `n` buffered bytes. */
  private take(n: number): Buffer {
    const bytes = Buffer.from(this.peek(n)); // a copy: the caller owns it
    this.length -= n;
    let left = n;
    while (left > 0) {
      const first = this.chunks[0]!;
      if (first.length <= left) {
        this.chunks.shift();
        left -= first.length;
      } else {
        this.chunks[0] = first.subarray(left);
        left = 0;
      }
    }
    return bytes;
  }

  private waitForBytes(n: number, what: string, timeout: number): Promise<void> {
    return this.waitFor(what, () => this.length >= n, timeout);
  }

  /** Reads and consumes everything buffered. */
  takeAll(): Buffer {
    return this.take(this.length);
  }

  /**
   * Reads one HTTP response: status line, headers, and the body (Content-Length bytes, or up to the
   * end of the connection without Content-Length, except for 1xx, 204 and 304).
   */
  async readHttpResponse(timeout = this.timeout): Promise<HttpResponse> {
    const deadline = Date.now() + timeout;
    let headEnd = -1;
    await this.waitFor(
      'reading an HTTP response head',
      () => {
        if (this.length === 0) return false;
        headEnd = this.peek(Math.min(this.length, MAX_HEAD_SIZE)).indexOf('\r\n\r\n');
        return headEnd !== -1 || this.length >= MAX_HEAD_SIZE;
      },
      timeout,
    );
    if (headEnd === -1) throw new Error(`HTTP response head larger than ${MAX_HEAD_SIZE} bytes`);
    const head = parseHead(this.take(headEnd + 4).toString('latin1').slice(0, headEnd));
    const { status } = head;
    const contentLength = head.headers['content-length'];
    let body: Buffer;
    if (contentLength !== undefined) {
      if (!/^\d+$/.test(contentLength)) throw new Error(`malformed Content-Length ${JSON.stringify(contentLength)}`);
      const n = Number(contentLength);
      await this.waitForBytes(n, `reading a ${n}-byte HTTP body`, Math.max(0, deadline - Date.now()));
      body = this.take(n);
    } else if (status < 200 || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else {
      await this.waitFor('reading an HTTP body up to the end of the connection', () => this.ended, Math.max(0, deadline - Date.now()), false);
      body = this.takeAll();
    }
    return { ...head, body };
  }

  /** Reads one frame from the server. */
  async readFrame(timeout = this.timeout): Promise<ServerFrame> {
    const deadline = Date.now() + timeout;
    const left = (): number => Math.max(0, deadline - Date.now());
    await this.waitForBytes(2, 'reading a frame header', timeout);
    const b0 = this.peek(2)[0]!;
    const b1 = this.peek(2)[1]!;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    const headerLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
    await this.waitForBytes(headerLength, 'reading a frame header', left());
    const header = this.peek(headerLength);
    let length: number;
    if (len7 === 126) length = header.readUInt16BE(2);
    else if (len7 === 127) {
      const big = header.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`frame length ${big} is not a safe integer`);
      length = Number(big);
    } else length = len7;
    await this.waitForBytes(headerLength + length, `reading a ${length}-byte frame payload`, left());
    const frame = this.take(headerLength + length);
    const payload = frame.subarray(headerLength);
    if (masked) {
      const key = frame.subarray(headerLength - 4, headerLength);
      for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
    }
    const lengthEncoding = len7 === 126 ? 16 : len7 === 127 ? 64 : 7;
    return { fin: (b0 & 0x80) !== 0, rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload, lengthEncoding };
  }

  /** Reads a whole message: a data frame and its continuations (control frames in between are returned too). */
  async readMessage(timeout = this.timeout): Promise<{ opcode: number; payload: Buffer; controls: ServerFrame[] }> {
    const deadline = Date.now() + timeout;
    const controls: ServerFrame[] = [];
    const pieces: Buffer[] = [];
    let opcode = -1;
    for (;;) {
      const frame = await this.readFrame(Math.max(0, deadline - Date.now()));
      if (frame.opcode >= 0x8) {
        if (frame.opcode === Opcode.Close) throw new Error(`close frame while reading a message: ${describeFrame(frame)}`);
        controls.push(frame);
        continue;
      }
      if (opcode === -1) {
        if (frame.opcode === Opcode.Continuation) throw new Error('continuation frame without a message');
        opcode = frame.opcode;
      } else if (frame.opcode !== Opcode.Continuation) {
        throw new Error(`new data frame (opcode ${frame.opcode}) inside a fragmented message`);
      }
      pieces.push(frame.payload);
      if (frame.fin) return { opcode, payload: Buffer.concat(pieces), controls };
    }
  }

  /** Reads the next frame, which must be a close frame; returns its code and reason. */
  async expectClose(timeout = this.timeout): Promise<CloseFrameInfo> {
    const frame = await this.readFrame(timeout);
    if (frame.opcode !== Opcode.Close) throw new Error(`expected a close frame, got ${describeFrame(frame)}`);
    if (frame.masked) throw new Error('the server masked its close frame (RFC 6455 §5.1)');
    return parseClosePayload(frame.payload);
  }

  /** Resolves when the server's FIN arrives (or the connection is gone). */
  waitForEnd(timeout = this.timeout): Promise<void> {
    return this.waitFor('waiting for the end of the connection', () => this.ended, timeout, false);
  }

  /** Resolves when the socket is fully closed. */
  waitForClose(timeout = this.timeout): Promise<void> {
    return this.waitFor('waiting for the socket to close', () => this.socketClosed, timeout, false);
  }

  /** Waits `ms` and fails if any byte arrives meanwhile (the end of the connection is allowed). */
  async expectSilence(ms: number): Promise<void> {
    const before = this.length;
    await sleep(ms);
    if (this.length !== before) {
      throw new Error(`expected silence, got ${this.length - before} bytes: ${this.peek(this.length).subarray(before).toString('hex')}`);
    }
  }

  // ---------------------------------------------------------------- flow and teardown

  /** Stops reading from the socket (the server sees TCP backpressure). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Sends FIN. */
  end(): void {
    this.socket.end();
  }

  /** Closes the socket at once (FIN, or RST when unread data is pending). */
  destroy(): void {
    this.socket.destroy();
  }

  /** Closes the connection with a TCP reset. */
  reset(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }
}

/** A short description of a frame for assertion messages. */
export function describeFrame(frame: ServerFrame): string {
  const preview = frame.payload.subarray(0, 32).toString('hex');
  return `opcode ${frame.opcode} fin ${frame.fin} rsv ${frame.rsv} masked ${frame.masked} ${frame.payload.length} bytes [${preview}]`;
}
