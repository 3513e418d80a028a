/**
 * A raw WebSocket test server on `node:net`, for what a real server would never send: it reads the
 * client's upgrade request head, answers with a correct 101 or any crafted bytes, and reads the
 * client's frames exactly as they are on the wire (mask bit and key included). It never answers
 * anything on its own: pings, closes and the TCP FIN are all up to the test.
 *
 * Like RawClient it is written independently of src/ (frames are read with `readFrames` of
 * ./frames.ts, the accept key with ./raw-client.ts), so the client is checked against it and not
 * against itself. It listens on 127.0.0.1:0 with `allowHalfOpen`, so the client's FIN is observed
 * (`endedAt`) without Node ending our side for us. Every wait has a timeout, and `listen(t)` closes
 * the server and every socket in `t.after`.
 *
 *   const server = await RawServer.listen(t);
 *   const connecting = connect(server.url);
 *   const peer = await server.nextConnection();      // the request head has been read
 *   peer.accept();                                     // 101 with the right Sec-WebSocket-Accept
 *   const ws = await connecting;
 *   const frame = await peer.readFrame();             // masked, unmasked for us
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { readFrames, type ReadFrame } from './frames.ts';
import { acceptFor } from './raw-client.ts';

/** Default wait for anything from the network. */
export const RAW_SERVER_TIMEOUT = 2000;

/** Largest request head read before giving up. */
const MAX_HEAD_SIZE = 64 * 1024;

/** The client's upgrade request as received. */
export interface RequestHead {
  /** `GET /chat HTTP/1.1` */
  readonly requestLine: string;
  readonly method: string;
  readonly target: string;
  readonly httpVersion: string;
  /** Lower-case names; repeated fields joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  /** Every field as received, in order, with its original case. */
  readonly rawHeaders: readonly (readonly [string, string])[];
  /** Sec-WebSocket-Key (empty when there was none). */
  readonly key: string;
}

/** What a crafted 101 says: each field can be replaced, or left out with null. */
export interface Response101 {
  /** Default the correct accept value for the request's key. */
  accept?: string | null;
  /** Default `websocket`. */
  upgrade?: string | null;
  /** Default `Upgrade`. */
  connection?: string | null;
  /** More header lines, `Name: value`, in order. */
  headers?: readonly string[];
}

/** The size of the first frame in `bytes`, or null while its header or payload is incomplete. */
function completeFrameSize(bytes: Buffer): number | null {
  if (bytes.length < 2) return null;
  const byte1 = bytes[1]!;
  const length7 = byte1 & 0x7f;
  let size = 2 + ((byte1 & 0x80) !== 0 ? 4 : 0);
  let length: number;
  if (length7 === 126) {
    if (bytes.length < 4) return null;
    size += 2;
    length = bytes.readUInt16BE(2);
  } else if (length7 === 127) {
    if (bytes.length < 10) return null;
    size += 8;
    length = Number(bytes.readBigUInt64BE(2));
  } else {
    length = length7;
  }
  return bytes.length >= size + length ? size + length : null;
}

function parseHead(text: string): RequestHead {
  const [requestLine = '', ...lines] = text.split('\r\n');
  const [method = '', target = '', version = ''] = requestLine.split(' ');
  const headers: Record<string, string> = {};
  const rawHeaders: (readonly [string, string])[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    rawHeaders.push([name, value]);
    const lower = name.toLowerCase();
    headers[lower] = headers[lower] === undefined ? value : `${headers[lower]}, ${value}`;
  }
  return {
    requestLine,
    method,
    target,
    httpVersion: version.replace(/^HTTP\//, ''),
    headers,
    rawHeaders,
    key: headers['sec-websocket-key'] ?? '',
  };
}

/** One accepted TCP connection, seen from the server. */
export class RawServerConnection {
  readonly socket: Socket;
  /** When the client's FIN arrived (Date.now()), or null. */
  endedAt: number | null = null;
  /** When the socket closed (Date.now()), or null. */
  closedAt: number | null = null;
  socketError: Error | null = null;
  private buffer: Buffer = Buffer.alloc(0);
  private head: RequestHead | null = null;
  private readonly waiters = new Set<() => void>();
  private readonly timeout: number;

  constructor(socket: Socket, timeout: number) {
    this.socket = socket;
    this.timeout = timeout;
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      if (this.head === null) this.tryParseHead();
      this.wake();
    });
    socket.on('end', () => {
      this.endedAt ??= Date.now();
      this.wake();
    });
    socket.on('error', (error) => {
      this.socketError ??= error;
    });
    socket.on('close', () => {
      this.closedAt ??= Date.now();
      this.wake();
    });
  }

  /** The request head (after `RawServer.nextConnection` resolved). */
  get request(): RequestHead {
    if (this.head === null) throw new Error('the request head has not been read');
    return this.head;
  }

  /** Bytes received after the request head and not read as frames yet. */
  get buffered(): number {
    return this.head === null ? 0 : this.buffer.length;
  }

  /** When the client's side ended, by FIN or by the socket closing, whichever came first; else null. */
  get goneAt(): number | null {
    if (this.endedAt === null) return this.closedAt;
    if (this.closedAt === null) return this.endedAt;
    return Math.min(this.endedAt, this.closedAt);
  }

  private tryParseHead(): void {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end === -1) {
      if (this.buffer.length > MAX_HEAD_SIZE) this.socket.destroy(new Error('request head too large'));
      return;
    }
    this.head = parseHead(this.buffer.subarray(0, end).toString('latin1'));
    this.buffer = this.buffer.subarray(end + 4);
  }

  /** Resolves when `ready()` holds; rejects after `timeout` ms, or when the connection ends first (`endIsFinal`). */
  private waitFor(what: string, ready: () => boolean, timeout: number, endIsFinal: boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        reject(new Error(`${what}: ${why} (buffered ${this.buffer.length} bytes, fin ${this.endedAt !== null}, closed ${this.closedAt !== null})`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeout} ms`), timeout);
      const check = (): void => {
        if (ready()) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve();
        } else if (endIsFinal && this.goneAt !== null) {
          fail('the connection ended first');
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  private wake(): void {
    for (const check of [...this.waiters]) check();
  }

  /** Resolves once the request head has been read. */
  waitForRequest(timeout = this.timeout): Promise<RequestHead> {
    return this.waitFor('reading the request head', () => this.head !== null, timeout, true).then(() => this.head!);
  }

  /** A 101 response for this request, correct unless `options` says otherwise. */
  response101(options: Response101 = {}): string {
    const lines = ['HTTP/1.1 101 Switching Protocols'];
    const upgrade = options.upgrade === undefined ? 'websocket' : options.upgrade;
    const connection = options.connection === undefined ? 'Upgrade' : options.connection;
    const accept = options.accept === undefined ? acceptFor(this.request.key) : options.accept;
    if (upgrade !== null) lines.push(`Upgrade: ${upgrade}`);
    if (connection !== null) lines.push(`Connection: ${connection}`);
    if (accept !== null) lines.push(`Sec-WebSocket-Accept: ${accept}`);
    lines.push(...(options.headers ?? []));
    return lines.join('\r\n') + '\r\n\r\n';
  }

  /** Writes a 101 (see response101), followed in the same write by `after` (frames, say). */
  accept(options: Response101 = {}, after: Uint8Array = Buffer.alloc(0)): void {
    this.write(Buffer.concat([Buffer.from(this.response101(options), 'latin1'), after]));
  }

  write(data: string | Uint8Array): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Sends our FIN (the client may still write). */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Closes with a TCP reset. */
  reset(): void {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
  }

  /** Reads the next complete frame the client sent (unmasked for us; `masked` and `maskKey` as on the wire). */
  async readFrame(timeout = this.timeout): Promise<ReadFrame> {
    await this.waitFor('reading a client frame', () => this.head !== null && completeFrameSize(this.buffer) !== null, timeout, true);
    const size = completeFrameSize(this.buffer)!;
    const frame = readFrames(this.buffer.subarray(0, size))[0]!;
    this.buffer = this.buffer.subarray(size);
    return frame;
  }

  /** Reads the next `count` frames. */
  async readFrames(count: number, timeout = this.timeout): Promise<ReadFrame[]> {
    const deadline = Date.now() + timeout;
    const frames: ReadFrame[] = [];
    while (frames.length < count) frames.push(await this.readFrame(Math.max(0, deadline - Date.now())));
    return frames;
  }

  /** Reads the next frame, which must be a close frame; returns it with its code (null without one) and reason. */
  async readClose(timeout = this.timeout): Promise<{ frame: ReadFrame; code: number | null; reason: string }> {
    const frame = await this.readFrame(timeout);
    if (frame.opcode !== 0x8) throw new Error(`expected a close frame, got opcode ${frame.opcode} (${frame.payload.toString('hex')})`);
    if (frame.payload.length === 1) throw new Error('close frame with a 1-byte payload');
    const code = frame.payload.length === 0 ? null : frame.payload.readUInt16BE(0);
    return { frame, code, reason: frame.payload.subarray(2).toString('utf8') };
  }

  /** Resolves with the time the client's side ended (FIN or close). */
  async waitForEnd(timeout = this.timeout): Promise<number> {
    await this.waitFor('waiting for the client to end the connection', () => this.goneAt !== null, timeout, false);
    return this.goneAt!;
  }

  /** Resolves when the socket is fully closed. */
  async waitForClose(timeout = this.timeout): Promise<number> {
    await this.waitFor('waiting for the socket to close', () => this.closedAt !== null, timeout, false);
    return this.closedAt!;
  }
}

/** A `node:net` server on 127.0.0.1:0 handing out raw connections in arrival order. */
export class RawServer {
  readonly server: Server;
  readonly port: number;
  private readonly connections: RawServerConnection[] = [];
  private taken = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly timeout: number;

  private constructor(server: Server, timeout: number) {
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.timeout = timeout;
    server.on('connection', (socket: Socket) => {
      this.connections.push(new RawServerConnection(socket, timeout));
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Listens on 127.0.0.1:0; the server and every connection are closed in `t.after`. */
  static async listen(t: TestContext, timeout = RAW_SERVER_TIMEOUT): Promise<RawServer> {
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const raw = new RawServer(server, timeout);
    t.after(() => raw.close());
    return raw;
  }

  /** `ws://127.0.0.1:<port>/` */
  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  /** Every connection accepted so far. */
  get all(): readonly RawServerConnection[] {
    return this.connections;
  }

  /** The next connection not yet handed out, once its request head has been read. */
  async nextConnection(timeout = this.timeout): Promise<RawServerConnection> {
    const deadline = Date.now() + timeout;
    while (this.taken >= this.connections.length) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const index = this.waiters.indexOf(wake);
          if (index !== -1) this.waiters.splice(index, 1);
          reject(new Error(`no connection after ${timeout} ms`));
        }, Math.max(0, deadline - Date.now()));
        const wake = (): void => {
          clearTimeout(timer);
          resolve();
        };
        this.waiters.push(wake);
      });
    }
    const connection = this.connections[this.taken++]!;
    await connection.waitForRequest(Math.max(0, deadline - Date.now()));
    return connection;
  }

  /** Destroys every connection and closes the server. */
  async close(): Promise<void> {
    for (const connection of this.connections) connection.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
