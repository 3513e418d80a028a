/**
 * WebSockets over HTTP/2 (RFC 8441) on the wire: real node:http2 client sessions on 127.0.0.1 against
 * `listen({ tls })` and `attach()`ed `http2.createSecureServer`s. Every session runs over a tap that
 * parses the HTTP/2 frames both ways, so END_STREAM, RST_STREAM codes and GOAWAY are checked as sent,
 * not as Node's client reports them (it emits 'end' on a reset stream too). WebSocket frames on a
 * stream are built with test/helpers/raw-client.ts's encoder and read back byte by byte.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  connect as http2Connect,
  constants as h2,
  createSecureServer,
  createServer as createH2cServer,
  type Http2Server,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureServerOptions,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import {
  connect,
  HandshakeError,
  WebSocketDisconnect,
  WebSocketException,
  WebSocketServer,
  type Handler,
  type ServerOptions,
  type WebSocket,
} from '../src/index.ts';
import { compress, inflate } from './helpers/deflate.ts';
import { connectHeaders, extendedConnect, FIXTURE_CERT, readBody, TLS, webSocketOverStream, type ConnectResponse } from './helpers/h2-client.ts';
import { closePayload, encodeFrame, Opcode, parseClosePayload, RawClient, type FrameSpec, type ServerFrame } from './helpers/raw-client.ts';
import { deferred, until, withTimeout, type Deferred } from './helpers/server.ts';

/** Every wait in this file is bounded by this (a hang fails the test, it does not stall the suite). */
const WAIT = 3000;
const KiB = 1024;
const MiB = 1024 * KiB;

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

// ------------------------------------------------------------------ the HTTP/2 frame tap

/** HTTP/2 frame types (RFC 9113 §6) and the END_STREAM flag. */
const FrameType = { Data: 0, Headers: 1, RstStream: 3, Settings: 4, GoAway: 7 } as const;
const END_STREAM = 0x1;
const CLIENT_PREFACE = 24;

interface H2Frame {
  /** `in`: server to client; `out`: client to server. */
  readonly direction: 'in' | 'out';
  /** Order of arrival at the tap, both directions counted together. */
  readonly seq: number;
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** Parses the HTTP/2 frames passing between a client session and its TLS socket (RFC 9113 §4.1). */
class H2Tap {
  readonly frames: H2Frame[] = [];
  private readonly pending = { in: Buffer.alloc(0), out: Buffer.alloc(0) };
  private prefaceLeft = CLIENT_PREFACE;

  feed(direction: 'in' | 'out', chunk: Buffer): void {
    let bytes = chunk;
    if (direction === 'out' && this.prefaceLeft > 0) {
      const skip = Math.min(this.prefaceLeft, bytes.length);
      this.prefaceLeft -= skip;
      bytes = bytes.subarray(skip);
    }
    let buffer = this.pending[direction].length === 0 ? bytes : Buffer.concat([this.pending[direction], bytes]);
    while (buffer.length >= 9) {
      const length = buffer.readUIntBE(0, 3);
      if (buffer.length < 9 + length) break;
      this.frames.push({
        direction,
        seq: this.frames.length,
        type: buffer[3]!,
        flags: buffer[4]!,
        streamId: buffer.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(buffer.subarray(9, 9 + length)),
      });
      buffer = buffer.subarray(9 + length);
    }
    this.pending[direction] = Buffer.from(buffer);
  }

  of(streamId: number, direction: 'in' | 'out' = 'in'): H2Frame[] {
    return this.frames.filter((frame) => frame.streamId === streamId && frame.direction === direction);
  }

  /** Whether a DATA or HEADERS frame with END_STREAM went that way on the stream. */
  endStream(streamId: number, direction: 'in' | 'out' = 'in'): boolean {
    return this.of(streamId, direction).some(
      (frame) => (frame.type === FrameType.Data || frame.type === FrameType.Headers) && (frame.flags & END_STREAM) !== 0,
    );
  }

  /**
   * An orderly end of the server's side (RFC 8441 §5: END_STREAM is the FIN): END_STREAM, and no
   * RST_STREAM but, after it, one with NO_ERROR (RFC 9113 §8.1: a server that sent a complete
   * response may reset the rest without error; browsers never end their side). Never CANCEL.
   */
  assertOrderlyEnd(streamId: number): void {
    const frames = this.of(streamId);
    const end = frames.findIndex(
      (frame) => (frame.type === FrameType.Data || frame.type === FrameType.Headers) && (frame.flags & END_STREAM) !== 0,
    );
    assert.notEqual(end, -1, `the server's END_STREAM on stream ${streamId}`);
    const reset = frames.findIndex((frame) => frame.type === FrameType.RstStream);
    if (reset === -1) return;
    assert.ok(reset > end, `RST_STREAM only after END_STREAM on stream ${streamId}`);
    assert.equal(frames[reset]!.payload.readUInt32BE(0), 0, `an RST_STREAM after END_STREAM carries NO_ERROR on stream ${streamId}`);
  }

  /** The error code of the RST_STREAM that went that way on the stream, or null. */
  rstCode(streamId: number, direction: 'in' | 'out' = 'in'): number | null {
    const frame = this.of(streamId, direction).find((candidate) => candidate.type === FrameType.RstStream);
    return frame === undefined ? null : frame.payload.readUInt32BE(0);
  }

  /** The server's GOAWAY frames: last stream id and error code (RFC 9113 §6.8). */
  goaways(): { seq: number; lastStreamId: number; code: number }[] {
    return this.frames
      .filter((frame) => frame.direction === 'in' && frame.type === FrameType.GoAway)
      .map((frame) => ({ seq: frame.seq, lastStreamId: frame.payload.readUInt32BE(0) & 0x7fffffff, code: frame.payload.readUInt32BE(4) }));
  }

  /** Bytes of DATA the server sent on the stream. */
  dataBytes(streamId: number): number {
    return this.of(streamId).reduce((sum, frame) => sum + (frame.type === FrameType.Data ? frame.payload.length : 0), 0);
  }
}

/** A client session over a tap, with the SETTINGS the server sent first. */
interface Client {
  readonly session: ClientHttp2Session;
  readonly tap: H2Tap;
  readonly remoteSettings: Settings;
}

// ------------------------------------------------------------------ raw WebSocket frames on a stream

/** A WebSocket over an accepted stream, driven frame by frame. */
class RawStream {
  readonly stream: ClientHttp2Stream;
  readonly tap: H2Tap;
  private chunks: Buffer[] = [];
  private length = 0;
  private readonly waiters = new Set<() => void>();
  private isClosed = false;

  constructor(client: Client, response: ConnectResponse) {
    assert.equal(response.status, 200, 'the extended CONNECT was accepted');
    this.stream = response.stream;
    this.tap = client.tap;
    this.stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.length += chunk.length;
      this.wake();
    });
    this.stream.on('close', () => {
      this.isClosed = true;
      this.wake();
    });
  }

  get id(): number {
    return this.stream.id!;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The server ended its side with END_STREAM (seen on the wire). */
  get sawEndStream(): boolean {
    return this.tap.endStream(this.id);
  }

  /** The code of the server's RST_STREAM on this stream, or null. */
  get rstCode(): number | null {
    return this.tap.rstCode(this.id);
  }

  send(spec: FrameSpec): void {
    this.stream.write(encodeFrame(spec));
  }

  sendText(text: string): void {
    this.send({ opcode: Opcode.Text, payload: text });
  }

  close(code?: number, reason = ''): void {
    this.send({ opcode: Opcode.Close, payload: closePayload(code, reason) });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private wait(what: string, ready: () => boolean, timeout: number): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (error === undefined) resolve();
        else reject(error);
      };
      const check = (): void => {
        if (ready()) done();
        else if (this.isClosed) done(new Error(`${what}: the stream closed first (buffered ${this.length}, RST ${this.rstCode})`));
      };
      const timer = setTimeout(() => done(new Error(`${what}: timed out after ${timeout} ms (buffered ${this.length})`)), timeout);
      this.waiters.add(check);
      check();
    });
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    const joined = Buffer.concat(this.chunks, this.length);
    this.chunks = [joined];
    return joined.subarray(0, n);
  }

  private take(n: number): Buffer {
    const bytes = Buffer.from(this.peek(n));
    this.chunks[0] = this.chunks[0]!.subarray(n);
    if (this.chunks[0].length === 0) this.chunks.shift();
    this.length -= n;
    return bytes;
  }

  /** The size of the complete frame at the front of the buffer, or null while it is incomplete. */
  private frameSize(): number | null {
    if (this.length < 2) return null;
    const second = this.peek(2)[1]!;
    const lengthField = second & 0x7f;
    const header = 2 + (lengthField === 126 ? 2 : lengthField === 127 ? 8 : 0) + ((second & 0x80) !== 0 ? 4 : 0);
    if (this.length < header) return null;
    const bytes = this.peek(header);
    const payload = lengthField === 126 ? bytes.readUInt16BE(2) : lengthField === 127 ? Number(bytes.readBigUInt64BE(2)) : lengthField;
    return this.length >= header + payload ? header + payload : null;
  }

  async readFrame(timeout = WAIT): Promise<ServerFrame> {
    await this.wait('reading a frame', () => this.frameSize() !== null, timeout);
    const bytes = this.take(this.frameSize()!);
    const lengthField = bytes[1]! & 0x7f;
    const masked = (bytes[1]! & 0x80) !== 0;
    let offset = 2 + (lengthField === 126 ? 2 : lengthField === 127 ? 8 : 0);
    let payload: Buffer;
    if (masked) {
      const key = bytes.subarray(offset, offset + 4);
      offset += 4;
      payload = Buffer.from(bytes.subarray(offset));
      for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
    } else {
      payload = bytes.subarray(offset);
    }
    return {
      fin: (bytes[0]! & 0x80) !== 0,
      rsv: (bytes[0]! >> 4) & 7,
      opcode: bytes[0]! & 0x0f,
      masked,
      payload,
      lengthEncoding: lengthField === 126 ? 16 : lengthField === 127 ? 64 : 7,
    };
  }

  /** Reads the next frame, which must be a close frame; returns its code and reason. */
  async expectClose(timeout = WAIT): Promise<{ code: number | null; reason: string }> {
    const frame = await this.readFrame(timeout);
    assert.equal(frame.opcode, Opcode.Close, `a close frame, not opcode ${frame.opcode}`);
    assert.equal(frame.masked, false);
    return parseClosePayload(frame.payload);
  }

  /** Echo round trip of one text message. */
  async echo(text: string, timeout = WAIT): Promise<void> {
    this.sendText(text);
    const frame = await this.readFrame(timeout);
    assert.deepEqual([frame.opcode, frame.masked, frame.payload.toString()], [Opcode.Text, false, text]);
  }

  waitClosed(timeout = WAIT): Promise<void> {
    return this.wait('waiting for the stream to close', () => this.isClosed, timeout);
  }

  /**
   * The end of a closing handshake: the server's END_STREAM must come, then the stream closes, by
   * our END_STREAM or the server's RST_STREAM(NO_ERROR) after its END_STREAM (see assertOrderlyEnd).
   */
  async finish(timeout = WAIT): Promise<void> {
    await until(() => this.sawEndStream, timeout, `the server's END_STREAM on stream ${this.id}`);
    if (!this.stream.closed) this.stream.end();
    await this.waitClosed(timeout);
    this.tap.assertOrderlyEnd(this.id);
  }

  /** Bytes received on the stream and not read yet. */
  get buffered(): number {
    return this.length;
  }
}

// ------------------------------------------------------------------ per-test environment

/** Everything a test opens, closed in t.after: client connections first, then servers. */
class Env {
  private readonly sessions = new Set<ClientHttp2Session>();
  private readonly wsServers = new Set<WebSocketServer>();
  private readonly h2Servers = new Set<{ server: Http2SecureServer | Http2Server; sessions: Set<Http2Session>; sockets: Set<Socket> }>();
  private readonly clients = new Set<WebSocket>();
  private readonly raws = new Set<RawClient>();
  private readonly parked: Deferred<void>[] = [];

  constructor(t: TestContext) {
    t.after(() => this.cleanup());
  }

  /** `listen({ tls })` a server built by the test; returns its port. */
  async listen(server: WebSocketServer): Promise<number> {
    this.wsServers.add(server);
    const { port } = await server.listen({ tls: TLS });
    return port;
  }

  /** A standalone server with one handler for every path. */
  async serve(handler: Handler, options: ServerOptions = {}): Promise<{ server: WebSocketServer; port: number }> {
    const server = new WebSocketServer(options).route('*', handler);
    return { server, port: await this.listen(server) };
  }

  track(server: WebSocketServer): void {
    this.wsServers.add(server);
  }

  /** A `node:http2` secure server on 127.0.0.1:0 that counts its TCP connections and sessions. */
  async http2Server(
    options: SecureServerOptions = {},
    onRequest?: (request: Http2ServerRequest, response: Http2ServerResponse) => void,
  ): Promise<{ server: Http2SecureServer; port: number; connections: () => number; sessions: Set<Http2Session> }> {
    const server = onRequest === undefined ? createSecureServer({ ...TLS, ...options }) : createSecureServer({ ...TLS, ...options }, onRequest);
    const record = { server, sessions: new Set<Http2Session>(), sockets: new Set<Socket>() };
    this.h2Servers.add(record);
    let connections = 0;
    server.on('connection', (socket: Socket) => {
      connections++;
      record.sockets.add(socket);
    });
    server.on('session', (session: Http2Session) => record.sessions.add(session));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as AddressInfo).port, connections: () => connections, sessions: record.sessions };
  }

  /** A cleartext HTTP/2 (h2c) server on 127.0.0.1:0. */
  async h2cServer(onRequest: (request: Http2ServerRequest, response: Http2ServerResponse) => void): Promise<{ server: Http2Server; port: number }> {
    const server = createH2cServer(onRequest);
    const record = { server, sessions: new Set<Http2Session>(), sockets: new Set<Socket>() };
    this.h2Servers.add(record);
    server.on('connection', (socket: Socket) => record.sockets.add(socket));
    server.on('session', (session: Http2Session) => record.sessions.add(session));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as AddressInfo).port };
  }

  /**
   * An HTTP/2 session to 127.0.0.1:port over TLS (ALPN h2), or cleartext (h2c) with `tls: false`,
   * through a frame tap; waits for the server's SETTINGS.
   */
  async session(port: number, { settings = {}, tls = true }: { settings?: Settings; tls?: boolean } = {}): Promise<Client> {
    const tap = new H2Tap();
    const socket = tls
      ? tlsConnect({ host: '127.0.0.1', port, ca: FIXTURE_CERT, servername: 'localhost', ALPNProtocols: ['h2'] })
      : netConnect({ host: '127.0.0.1', port });
    // node:http2 turns Nagle off on its own sockets; through the tap it cannot, and every small frame
    // (WINDOW_UPDATE) would wait for a delayed ACK.
    socket.setNoDelay(true);
    const tapped = new Duplex({
      read() {
        socket.resume();
      },
      write(chunk: Buffer, _encoding, callback) {
        tap.feed('out', chunk);
        socket.write(chunk, callback);
      },
      final(callback) {
        socket.end();
        callback();
      },
      destroy(error, callback) {
        socket.destroy();
        callback(error);
      },
    });
    socket.on('data', (chunk: Buffer) => {
      tap.feed('in', chunk);
      if (!tapped.push(chunk)) socket.pause();
    });
    socket.on('end', () => tapped.push(null));
    socket.on('error', (error) => tapped.destroy(error));
    socket.on('close', () => tapped.destroy());
    const session = http2Connect(`${tls ? 'https' : 'http'}://localhost:${port}`, { createConnection: () => tapped, settings });
    session.on('error', () => undefined);
    this.sessions.add(session);
    const remoteSettings = await withTimeout(
      new Promise<Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      }),
      WAIT,
      'the server SETTINGS',
    );
    return { session, tap, remoteSettings };
  }

  /** An extended CONNECT that must be accepted, driven frame by frame. */
  async raw(client: Client, path: string, headers: OutgoingHttpHeaders = {}): Promise<RawStream> {
    return new RawStream(client, await extendedConnect(client.session, path, headers));
  }

  /** Our WebSocket in the client role over an accepted extended CONNECT. */
  async webSocket(client: Client, path: string, headers: OutgoingHttpHeaders = {}): Promise<WebSocket> {
    const ws = webSocketOverStream(await extendedConnect(client.session, path, headers));
    this.clients.add(ws);
    return ws;
  }

  /** `connect()` over HTTP/1.1 with TLS, trusting the fixture certificate. */
  async connectH1(url: string): Promise<WebSocket> {
    const ws = await withTimeout(connect(url, { ca: FIXTURE_CERT }), WAIT, `connecting to ${url}`);
    this.clients.add(ws);
    return ws;
  }

  /** A raw HTTP/1.1 upgrade over TLS (no ALPN, so HTTP/1.1 on an allowHTTP1 server). */
  async rawH1(port: number, path: string, headers: Readonly<Record<string, string | null>> = {}): Promise<RawClient> {
    const client = await RawClient.connect(port, { tls: { servername: 'localhost', ca: FIXTURE_CERT }, path, headers });
    this.raws.add(client);
    return client;
  }

  /** A promise a handler can wait on forever: released when the test ends. */
  park(): Promise<void> {
    const release = deferred();
    this.parked.push(release);
    return release.promise;
  }

  private async cleanup(): Promise<void> {
    for (const release of this.parked) release.resolve();
    for (const ws of this.clients) ws.terminate();
    for (const raw of this.raws) raw.destroy();
    for (const session of this.sessions) session.destroy();
    await Promise.all([...this.wsServers].map((server) => withTimeout(server.close({ timeout: 100 }), 2000, 'closing a WebSocketServer')));
    await Promise.all(
      [...this.h2Servers].map(({ server, sessions, sockets }) => {
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        return withTimeout(new Promise<void>((resolve) => server.close(() => resolve())), 2000, 'closing an http2 server');
      }),
    );
  }
}

// ------------------------------------------------------------------ handlers

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

/** An echo handler that records how its connection ended (the WebSocketDisconnect its receive raised). */
function recordingEcho(ends: WebSocketDisconnect[]): Handler {
  return async (ws) => {
    await ws.accept();
    try {
      for (;;) await ws.send(await ws.receive());
    } catch (error) {
      if (!(error instanceof WebSocketDisconnect)) throw error;
      ends.push(error);
    }
  };
}

/** The refusal of an extended CONNECT, read to its end, with what the wire showed. */
interface Refusal {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * Sends an extended CONNECT that must be refused and checks the refusal is a complete HTTP/2 response:
 * a text body of exactly content-length bytes ending with END_STREAM, no HTTP/1.1 upgrade fields, and
 * no reset once the client has ended its side.
 */
async function refusedOver(client: Client, path: string, headers: OutgoingHttpHeaders = {}): Promise<Refusal> {
  const response = await extendedConnect(client.session, path, headers);
  const body = await withTimeout(readBody(response.stream), WAIT, `the body of the ${response.status}`);
  response.stream.end();
  if (!response.stream.closed) await withTimeout(new Promise((resolve) => response.stream.once('close', resolve)), WAIT, 'the refused stream closing');
  const id = response.stream.id!;
  assert.notEqual(response.status, 200, `refused, not accepted: ${body}`);
  assert.equal(response.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(Number(response.headers['content-length']), Buffer.byteLength(body), 'content-length is the body length');
  for (const name of ['upgrade', 'connection', 'sec-websocket-accept']) assert.equal(response.headers[name], undefined, name);
  client.tap.assertOrderlyEnd(id);
  return { status: response.status, headers: response.headers, body };
}

/** Opens a request that must not be served (after GOAWAY): what happened to it. */
async function attempt(client: Client, path: string): Promise<string> {
  let stream: ClientHttp2Stream;
  try {
    stream = client.session.request(connectHeaders(path));
  } catch (error) {
    return `throws ${(error as { code?: string }).code}`;
  }
  return withTimeout(
    new Promise<string>((resolve) => {
      stream.on('error', (error: { code?: string }) => resolve(`error ${error.code}`));
      stream.once('response', (headers) => resolve(`status ${headers[':status']}`));
      stream.once('close', () => resolve(`closed, RST ${stream.rstCode}`));
    }),
    WAIT,
    'a request after GOAWAY',
  );
}

// ================================================================== tests

describe('echo over an HTTP/2 stream', () => {
  test('text, binary, empty and a 4 MiB message echo on one stream; the handler sees httpVersion 2.0', async (t) => {
    const env = new Env(t);
    const versions: string[] = [];
    const { port } = await env.serve(async (ws) => {
      versions.push(ws.httpVersion);
      await echo(ws);
    });
    const client = await env.session(port);
    assert.equal(client.remoteSettings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3)');
    const ws = await env.raw(client, '/echo');

    ws.sendText('héllo, h2');
    let frame = await ws.readFrame();
    assert.deepEqual([frame.fin, frame.rsv, frame.opcode, frame.masked, frame.payload.toString()], [true, 0, Opcode.Text, false, 'héllo, h2']);

    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    ws.send({ opcode: Opcode.Binary, payload: bytes });
    frame = await ws.readFrame();
    assert.equal(frame.opcode, Opcode.Binary);
    assert.deepEqual(frame.payload, bytes);

    ws.send({ opcode: Opcode.Text, payload: '' });
    ws.send({ opcode: Opcode.Binary, payload: Buffer.alloc(0) });
    const empties = [await ws.readFrame(), await ws.readFrame()];
    assert.deepEqual(
      empties.map((f) => [f.opcode, f.payload.length]),
      [
        [Opcode.Text, 0],
        [Opcode.Binary, 0],
      ],
    );

    // 4 MiB: 64 times the default stream window, so HTTP/2 flow control runs both ways.
    const big = randomBytes(4 * MiB);
    ws.send({ opcode: Opcode.Binary, payload: big });
    frame = await ws.readFrame(10_000);
    assert.deepEqual([frame.fin, frame.opcode, frame.lengthEncoding, frame.payload.length], [true, Opcode.Binary, 64, big.length]);
    assert.equal(sha256(frame.payload), sha256(big));
    assert.ok(client.tap.dataBytes(ws.id) >= big.length, 'every byte came as DATA on the stream');
    assert.deepEqual(versions, ['2.0']);
  });

  test('an HTTP/1.1 upgrade over TLS on the same port is served too, with httpVersion 1.1', async (t) => {
    const env = new Env(t);
    const versions: string[] = [];
    const { port } = await env.serve(async (ws) => {
      versions.push(ws.httpVersion);
      await echo(ws);
    });
    const h1 = await env.connectH1(`wss://127.0.0.1:${port}/h1`);
    await h1.send('over HTTP/1.1');
    assert.equal(await withTimeout(h1.receiveText(), WAIT, 'the h1 echo'), 'over HTTP/1.1');
    assert.equal(h1.httpVersion, '1.1');

    const client = await env.session(port);
    const ws = await env.raw(client, '/h2');
    await ws.echo('over HTTP/2');
    assert.deepEqual(versions, ['1.1', '2.0']);
  });
});

describe('the request over HTTP/2', () => {
  test('path parameters, query, cookies, host from :authority; subprotocol and extra headers in the 200', async (t) => {
    const env = new Env(t);
    let seen: Record<string, unknown> = {};
    const server = new WebSocketServer({ subprotocols: ['chat.v2', 'chat.v1'] }).route('/items/{id}', async (ws) => {
      seen = {
        path: ws.path,
        url: ws.url,
        params: { ...ws.params },
        q: ws.query.get('q'),
        cookies: { ...ws.cookies },
        host: ws.headers.host,
        authority: ws.headers[':authority'],
        offered: [...ws.subprotocols],
        remoteAddress: ws.remoteAddress,
      };
      await ws.accept({ headers: { 'Set-Cookie': 'session=abc', 'X-Extra': 'yes' } });
      assert.equal(ws.subprotocol, 'chat.v1');
      for await (const message of ws) await ws.send(`${ws.params.id}:${message.text}`);
    });
    const port = await env.listen(server);
    const client = await env.session(port);
    const response = await extendedConnect(client.session, '/items/42?q=a%20b', {
      ':authority': 'example.test:8443',
      cookie: 'a=1; b=2',
      'sec-websocket-protocol': 'chat.v1, chat.v2',
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers['sec-websocket-protocol'], 'chat.v1', "the client's preferred one the server speaks");
    assert.equal(response.headers['x-extra'], 'yes');
    assert.deepEqual(response.headers['set-cookie'], ['session=abc']);
    for (const name of ['sec-websocket-accept', 'upgrade', 'connection', 'sec-websocket-extensions', 'content-length']) {
      assert.equal(response.headers[name], undefined, `no ${name} in the 200`);
    }
    const accepted = client.tap.of(response.stream.id!).find((frame) => frame.type === FrameType.Headers)!;
    assert.equal(accepted.flags & END_STREAM, 0, 'the 200 leaves the stream open');

    const ws = new RawStream(client, response);
    ws.sendText('x');
    assert.equal((await ws.readFrame()).payload.toString(), '42:x');
    assert.deepEqual(seen, {
      path: '/items/42',
      url: '/items/42?q=a%20b',
      params: { id: '42' },
      q: 'a b',
      cookies: { a: '1', b: '2' },
      host: 'example.test:8443',
      authority: 'example.test:8443',
      offered: ['chat.v1', 'chat.v2'],
      remoteAddress: '127.0.0.1',
    });
  });

  test('permessage-deflate is negotiated over HTTP/2 and compressed frames go both ways', async (t) => {
    const env = new Env(t);
    const { port } = await env.serve(echo, { perMessageDeflate: true });
    const client = await env.session(port);
    const response = await extendedConnect(client.session, '/', { 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' });
    const extensions = response.headers['sec-websocket-extensions'];
    assert.equal(typeof extensions, 'string');
    assert.match(extensions as string, /^permessage-deflate(;|$)/);
    const ws = new RawStream(client, response);
    const text = 'compress me over HTTP/2 '.repeat(200);
    ws.send({ opcode: Opcode.Text, rsv: 4, payload: compress(text) });
    const frame = await ws.readFrame();
    assert.equal(frame.opcode, Opcode.Text);
    assert.equal(frame.rsv, 4, 'RSV1: the echo is compressed (over the 1 KiB threshold)');
    assert.ok(frame.payload.length < text.length / 4);
    assert.equal(inflate(frame.payload).toString(), text);

    // Not offered: not negotiated.
    const plain = await extendedConnect(client.session, '/');
    assert.equal(plain.headers['sec-websocket-extensions'], undefined);
  });
});

describe('refusals over HTTP/2: the HTTP/1.1 statuses as HTTP/2 responses', () => {
  test('404, 426, 403 (origin, WebSocketException, no accept), 401 from verify, 500 from a plain Error: the same as over HTTP/1.1', async (t) => {
    const env = new Env(t);
    const errors: unknown[] = [];
    const server = new WebSocketServer({
      allowedOrigins: ['https://good.example'],
      verify: (ws) => {
        if (ws.path === '/verify') throw new HandshakeError(401, 'who are you?', { 'WWW-Authenticate': 'Bearer' });
      },
      onError: (error) => errors.push(error),
    })
      .route('/ok', echo)
      .route('/verify', echo)
      .route('/exception', () => {
        throw new WebSocketException(4003, 'no ticket');
      })
      .route('/error', () => {
        throw new Error('boom');
      })
      .route('/returns', () => undefined);
    const port = await env.listen(server);
    const client = await env.session(port);

    const cases: {
      name: string;
      path: string;
      h2: OutgoingHttpHeaders;
      h1: Record<string, string | null>;
      status: number;
      body: string;
      headers?: Record<string, string>;
    }[] = [
      { name: 'no route', path: '/nope', h2: {}, h1: {}, status: 404, body: 'no WebSocket route for this path\n' },
      {
        name: 'version 8',
        path: '/ok',
        h2: { 'sec-websocket-version': '8' },
        h1: { 'Sec-WebSocket-Version': '8' },
        status: 426,
        body: 'Sec-WebSocket-Version must be 13\n',
        headers: { 'sec-websocket-version': '13' },
      },
      {
        name: 'no version',
        path: '/ok',
        h2: { 'sec-websocket-version': undefined },
        h1: { 'Sec-WebSocket-Version': null },
        status: 426,
        body: 'Sec-WebSocket-Version must be 13\n',
        headers: { 'sec-websocket-version': '13' },
      },
      {
        name: 'origin',
        path: '/ok',
        h2: { origin: 'https://evil.example' },
        h1: { Origin: 'https://evil.example' },
        status: 403,
        body: 'origin not allowed\n',
      },
      { name: 'WebSocketException before accept', path: '/exception', h2: {}, h1: {}, status: 403, body: 'no ticket\n' },
      {
        name: 'HandshakeError from verify',
        path: '/verify',
        h2: {},
        h1: {},
        status: 401,
        body: 'who are you?\n',
        headers: { 'www-authenticate': 'Bearer' },
      },
      { name: 'plain Error', path: '/error', h2: {}, h1: {}, status: 500, body: 'Internal Server Error\n' },
      { name: 'no accept', path: '/returns', h2: {}, h1: {}, status: 403, body: 'the handler did not accept the connection\n' },
    ];
    for (const { name, path, h2: h2Headers, h1: h1Headers, status, body, headers = {} } of cases) {
      const refusal = await refusedOver(client, path, h2Headers);
      assert.equal(refusal.status, status, `${name} over HTTP/2: ${refusal.body}`);
      assert.equal(refusal.body, body, name);
      for (const [field, value] of Object.entries(headers)) assert.equal(refusal.headers[field], value, `${name}: ${field}`);
      const h1 = (await env.rawH1(port, path, h1Headers)).response!;
      assert.equal(h1.status, status, `${name} over HTTP/1.1: ${h1.statusLine}`);
      assert.equal(h1.body.toString(), body, `${name} over HTTP/1.1`);
      if (status === 426) assert.equal(h1.headers['upgrade'], 'websocket', 'HTTP/1.1 names the protocol; HTTP/2 has no Upgrade');
    }
    assert.deepEqual(
      errors.map((error) => (error as Error).message),
      ['boom', 'boom'],
      'onError saw the plain Error once per HTTP version',
    );
    // An allowed origin, and no Origin at all, are accepted on the same session.
    for (const headers of [{ origin: 'https://good.example' }, {}]) await (await env.raw(client, '/ok', headers)).echo('in');
  });

  test('408 when the handler never accepts within handshakeTimeout', async (t) => {
    const env = new Env(t);
    const { port } = await env.serve(() => env.park(), { handshakeTimeout: 150 });
    const client = await env.session(port);
    const started = Date.now();
    const refusal = await refusedOver(client, '/slow');
    assert.equal(refusal.status, 408);
    assert.equal(refusal.body, 'handshake timed out\n');
    assert.ok(Date.now() - started >= 140, `refused after the timeout, not before (${Date.now() - started} ms)`);
  });

  test('503 beyond maxSessionStreams on one session, while a second session still gets WebSockets', async (t) => {
    const env = new Env(t);
    const { server, port } = await env.serve(echo, { maxSessionStreams: 2 });
    const first = await env.session(port);
    const a = await env.raw(first, '/a');
    const b = await env.raw(first, '/b');
    const refusal = await refusedOver(first, '/c');
    assert.equal(refusal.status, 503);
    assert.equal(refusal.body, 'too many WebSockets on this HTTP/2 connection\n');

    const second = await env.session(port);
    await (await env.raw(second, '/d')).echo('second session');
    await a.echo('a still open');
    await b.echo('b still open');

    // A WebSocket that ends makes room on its session again.
    a.close(1000);
    assert.equal((await a.expectClose()).code, 1000);
    await a.finish();
    await until(() => server.clients.size === 2, WAIT, 'the server forgetting the closed stream');
    await (await env.raw(first, '/e')).echo('room again');
  });
});

describe('requests that are not ours', () => {
  test('a plain CONNECT and a CONNECT for another :protocol reach the "connect" listener; GET reaches the request handler', async (t) => {
    const env = new Env(t);
    const { server: http2, port } = await env.http2Server({ allowHTTP1: true }, (request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end(`app ${request.method} ${request.url}`);
    });
    env.track(new WebSocketServer().route('*', echo).attach(http2));
    const tunnels: (string | undefined)[][] = [];
    http2.on('connect', (request: Http2ServerRequest, response: Http2ServerResponse) => {
      tunnels.push([request.headers[':authority'], request.headers[':protocol'] as string | undefined]);
      response.writeHead(418);
      response.end('tunnel');
    });
    const client = await env.session(port);

    const read = async (stream: ClientHttp2Stream): Promise<string> => {
      const status = await withTimeout(new Promise<number>((resolve) => stream.once('response', (headers) => resolve(Number(headers[':status'])))), WAIT, 'a response');
      return `${status} ${await withTimeout(readBody(stream), WAIT, 'a body')}`;
    };
    assert.equal(await read(client.session.request({ ':method': 'CONNECT', ':authority': 'tunnel.example:443' })), '418 tunnel');
    const other = client.session.request({ ':method': 'CONNECT', ':protocol': 'webtransport', ':scheme': 'https', ':path': '/', ':authority': 'localhost' });
    assert.equal(await read(other), '418 tunnel');
    assert.deepEqual(tunnels, [
      ['tunnel.example:443', undefined],
      ['localhost', 'webtransport'],
    ]);
    assert.equal(await read(client.session.request({ ':path': '/page?x=1' })), '200 app GET /page?x=1');
    // Ours on the same session.
    await (await env.raw(client, '/ws')).echo('still ours');

    // Without a 'connect' listener, Node answers both CONNECTs 405.
    http2.removeAllListeners('connect');
    const plain = client.session.request({ ':method': 'CONNECT', ':authority': 'tunnel.example:443' });
    plain.end();
    assert.match(await read(plain), /^405 /);
    const webtransport = client.session.request({ ':method': 'CONNECT', ':protocol': 'webtransport', ':scheme': 'https', ':path': '/', ':authority': 'localhost' });
    webtransport.end();
    assert.match(await read(webtransport), /^405 /);
  });

  test('{ unmatched: "ignore" }: an unmatched extended CONNECT reaches the server\'s own stream and connect listeners', async (t) => {
    const env = new Env(t);
    const { server: http2, port } = await env.http2Server({ allowHTTP1: true }, (_request, response) => response.end('app'));
    env.track(new WebSocketServer().route('/ws', echo).attach(http2, { unmatched: 'ignore' }));
    const streamPaths: string[] = [];
    http2.on('stream', (_stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => streamPaths.push(headers[':path'] ?? ''));
    http2.on('connect', (request: Http2ServerRequest, response: Http2ServerResponse) => {
      response.writeHead(418, { 'x-path': request.headers[':path'] ?? '' });
      response.end('teapot');
    });
    const client = await env.session(port);
    const other = await extendedConnect(client.session, '/other');
    assert.equal(other.status, 418);
    assert.equal(other.headers['x-path'], '/other');
    assert.equal(await withTimeout(readBody(other.stream), WAIT, 'the body'), 'teapot');
    await (await env.raw(client, '/ws')).echo('ours');
    assert.deepEqual(streamPaths, ['/other'], "the server's 'stream' listeners never see a stream we took");
  });

  test('the standalone server answers an HTTP/2 GET with 405 + allow: CONNECT and an HTTP/1.1 GET with 426', async (t) => {
    const env = new Env(t);
    const { port } = await env.serve(echo);
    const client = await env.session(port);
    const stream = client.session.request({ ':path': '/' });
    const headers = await withTimeout(new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve)), WAIT, 'the GET response');
    const body = await withTimeout(readBody(stream), WAIT, 'the GET body');
    assert.equal(headers[':status'], 405);
    assert.equal(headers['allow'], 'CONNECT');
    assert.equal(headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(Number(headers['content-length']), Buffer.byteLength(body));
    assert.match(body, /extended CONNECT/);
    assert.equal(client.tap.endStream(stream.id!), true);

    const h1 = await RawClient.open(port, { tls: { servername: 'localhost', ca: FIXTURE_CERT } });
    t.after(() => h1.destroy());
    await h1.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const response = await h1.readHttpResponse();
    assert.equal(response.status, 426);
    assert.equal(response.headers['sec-websocket-version'], '13');
    assert.equal(response.headers['upgrade'], 'websocket');
    assert.equal(response.httpVersion, '1.1');
  });
});

describe('multiplexing', () => {
  test('50 WebSockets on one session, one TCP connection, each echoing its own messages', async (t) => {
    const env = new Env(t);
    const { server: http2, port, connections, sessions } = await env.http2Server({ allowHTTP1: true });
    const wss = new WebSocketServer().route('/echo/{n}', async (ws) => {
      await ws.accept();
      for await (const message of ws) await ws.send(`${ws.params.n}|${message.text}`);
    });
    env.track(wss.attach(http2));
    const client = await env.session(port);
    const count = 50;
    const sockets = await Promise.all(Array.from({ length: count }, (_, i) => env.webSocket(client, `/echo/${i}`)));
    assert.equal(wss.clients.size, count);
    const ids = new Set(client.tap.frames.filter((frame) => frame.direction === 'out' && frame.type === FrameType.Headers).map((frame) => frame.streamId));
    assert.equal(ids.size, count, 'one stream per WebSocket');

    await withTimeout(
      Promise.all(
        sockets.map(async (ws, i) => {
          for (let k = 0; k < 5; k++) void ws.send(`${i}.${k}`);
          for (let k = 0; k < 5; k++) assert.equal(await ws.receiveText(), `${i}|${i}.${k}`);
        }),
      ),
      5000,
      'every echo',
    );
    await withTimeout(Promise.all(sockets.map((ws) => ws.close(1000, 'bye'))), WAIT, 'closing them all');
    assert.equal(connections(), 1, 'one TCP connection');
    assert.equal(sessions.size, 1, 'one HTTP/2 session');
    assert.equal(client.session.closed, false, 'the session outlives its WebSockets');
    await until(() => wss.clients.size === 0, WAIT, 'the server forgetting every stream');
  });

  test('a stalled stream does not block another on the same session; its output stays bounded and it gets 1008', async (t) => {
    const env = new Env(t);
    const maxBufferedAmount = 256 * KiB;
    const chunk = Buffer.alloc(16 * KiB, 0x61);
    let maxBuffered = 0;
    let writes = 0;
    const floodStopped = deferred<string>();
    const floodEnded = deferred<WebSocketDisconnect>();
    const server = new WebSocketServer({ maxBufferedAmount, outboundHighWaterMark: 64 * KiB, slowConsumer: 'close', closeTimeout: 4000 })
      .route('/flood', async (ws) => {
        await ws.accept();
        while (ws.state === 'open') {
          void ws.send(chunk);
          writes++;
          maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
          await nextTurn();
        }
        floodStopped.resolve(ws.state);
        try {
          await ws.receive();
        } catch (error) {
          floodEnded.resolve(error as WebSocketDisconnect);
        }
      })
      .route('/echo', echo);
    const port = await env.listen(server);
    const client = await env.session(port);
    const b = await env.raw(client, '/echo');
    const a = await env.raw(client, '/flood');
    a.stream.pause(); // A's reader stops: its stream window fills, and the server's writes to it queue up.

    assert.equal(await withTimeout(floodStopped.promise, WAIT, 'the server giving up on A'), 'closing');
    assert.ok(maxBuffered > 64 * KiB, `A's output backed up (${maxBuffered} bytes)`);
    assert.ok(maxBuffered <= maxBufferedAmount + chunk.length + 64, `A's output stays bounded: ${maxBuffered} bytes`);

    // B on the same session, same TCP connection, answers promptly while A is stuck.
    let slowest = 0;
    for (let i = 0; i < 20; i++) {
      const started = Date.now();
      await b.echo(`b${i}`, 2000);
      slowest = Math.max(slowest, Date.now() - started);
    }
    // Blocked, B would wait for A's closeTimeout (4 s) at least.
    assert.ok(slowest < 1000, `B's slowest echo took ${slowest} ms`);
    const queuedForA = [...server.clients].find((ws) => ws.path === '/flood')!.bufferedAmount;
    assert.ok(queuedForA > 0, 'A was still stalled while B echoed');

    // A reads again: everything the server queued, then the 1008, then END_STREAM after our answer.
    a.stream.resume();
    let dataFrames = 0;
    let frame = await a.readFrame();
    while (frame.opcode === Opcode.Binary) {
      assert.equal(frame.payload.length, chunk.length);
      dataFrames++;
      frame = await a.readFrame();
    }
    assert.equal(frame.opcode, Opcode.Close);
    assert.deepEqual(parseClosePayload(frame.payload), { code: 1008, reason: 'slow consumer' });
    assert.ok(dataFrames > 0 && dataFrames < writes, `A got ${dataFrames} of ${writes} messages sent (the rest were refused)`);
    t.diagnostic(`A: max bufferedAmount ${maxBuffered} B (limit ${maxBufferedAmount}), ${dataFrames}/${writes} messages delivered; B: slowest echo ${slowest} ms, A still had ${queuedForA} B queued`);
    a.close(1008);
    await a.finish();
    const ended = await withTimeout(floodEnded.promise, WAIT, "A's handler ending");
    assert.equal(ended.code, 1008);
    await b.echo('B is still open');
  });
});

describe('closing over HTTP/2', () => {
  test('a client close: the server answers, ends the stream with END_STREAM, and the session carries a new WebSocket', async (t) => {
    const env = new Env(t);
    const ends: WebSocketDisconnect[] = [];
    const { port } = await env.serve(recordingEcho(ends));
    const client = await env.session(port);
    const ws = await env.raw(client, '/one');
    await ws.echo('before');
    ws.close(1000, 'bye');
    // RFC 6455 §5.5.1: the code is echoed (the reason is not, as over HTTP/1.1).
    assert.deepEqual(await ws.expectClose(), { code: 1000, reason: '' });
    await until(() => ws.sawEndStream, WAIT, "the server's END_STREAM");
    assert.equal(ws.closed, false, 'our side is still open until we end it');
    await ws.finish();
    assert.equal(ws.buffered, 0, 'nothing after the close frame');
    await until(() => ends.length === 1, WAIT, 'the handler seeing the close');
    assert.deepEqual([ends[0]!.code, ends[0]!.reason, ends[0]!.initiator], [1000, 'bye', 'peer']);

    assert.equal(client.session.closed || client.session.destroyed, false, 'the session stays open');
    assert.equal(client.tap.goaways().length, 0, 'no GOAWAY');
    await (await env.raw(client, '/two')).echo('a new WebSocket on the same session');
  });

  test('a server close: code and reason reach the client, and its answer ends the stream both ways', async (t) => {
    const env = new Env(t);
    const closed = deferred<string>();
    const { port } = await env.serve(async (ws) => {
      await ws.accept();
      const text = (await ws.receive()).text;
      await ws.close(4000, `done with ${text}`);
      closed.resolve(ws.state);
    });
    const client = await env.session(port);
    const ws = await env.raw(client, '/');
    ws.sendText('this');
    assert.deepEqual(await ws.expectClose(), { code: 4000, reason: 'done with this' });
    assert.equal(ws.sawEndStream, false, 'the stream stays open for our answer');
    ws.close(4000, 'ok');
    await ws.finish();
    assert.equal(await withTimeout(closed.promise, WAIT, "the server's close() resolving"), 'closed');
    const next = await env.raw(client, '/');
    next.sendText('that');
    assert.deepEqual(await next.expectClose(), { code: 4000, reason: 'done with that' }, 'the session carries the next one');
  });

  test('a client RST_STREAM (CANCEL) gives that handler 1006; the other stream on the session goes on', async (t) => {
    const env = new Env(t);
    const ends: WebSocketDisconnect[] = [];
    const errors: unknown[] = [];
    const { port } = await env.serve(recordingEcho(ends), { onError: (error) => errors.push(error) });
    const client = await env.session(port);
    const a = await env.raw(client, '/a');
    const b = await env.raw(client, '/b');
    await a.echo('a');
    a.stream.close(h2.NGHTTP2_CANCEL);
    await a.waitClosed();
    assert.equal(client.tap.rstCode(a.id, 'out'), h2.NGHTTP2_CANCEL);
    await until(() => ends.length === 1, WAIT, 'the handler seeing the reset');
    assert.deepEqual([ends[0]!.code, ends[0]!.initiator], [1006, 'transport']);
    await b.echo('b goes on');
    assert.equal(client.session.closed, false);
    assert.deepEqual(errors, [], 'a cancelled stream is not reported as an error');
  });

  test('a client END_STREAM without a close frame (the HTTP/2 FIN) gives the handler 1006 and the server ends its side', async (t) => {
    const env = new Env(t);
    const ends: WebSocketDisconnect[] = [];
    const { port } = await env.serve(recordingEcho(ends));
    const client = await env.session(port);
    const ws = await env.raw(client, '/');
    await ws.echo('x');
    ws.stream.end();
    await ws.waitClosed();
    assert.equal(ws.sawEndStream, true, 'the server ended its side in turn');
    client.tap.assertOrderlyEnd(ws.id);
    await until(() => ends.length === 1, WAIT, 'the handler');
    assert.deepEqual([ends[0]!.code, ends[0]!.initiator], [1006, 'transport']);
  });

  test('a session destroyed mid-connection gives 1006 to every WebSocket on it, and only to those', async (t) => {
    const env = new Env(t);
    const ends: WebSocketDisconnect[] = [];
    const { server, port } = await env.serve(recordingEcho(ends));
    const doomed = await env.session(port);
    for (const path of ['/1', '/2', '/3']) await (await env.raw(doomed, path)).echo(path);
    const other = await env.session(port);
    const survivor = await env.raw(other, '/survivor');
    doomed.session.destroy();
    await until(() => ends.length === 3, WAIT, 'every handler on the destroyed session');
    assert.deepEqual(
      ends.map((end) => [end.code, end.initiator]),
      Array.from({ length: 3 }, () => [1006, 'transport']),
    );
    await survivor.echo('still here');
    assert.equal(server.clients.size, 1);
  });

  test('terminate() resets only that stream with RST_STREAM CANCEL, not the session', async (t) => {
    const env = new Env(t);
    const { port } = await env.serve(async (ws) => {
      await ws.accept();
      for await (const message of ws) {
        if (message.text === 'die') ws.terminate();
        else await ws.send(message);
      }
    });
    const client = await env.session(port);
    const a = await env.raw(client, '/a');
    const b = await env.raw(client, '/b');
    a.sendText('die');
    await a.waitClosed();
    assert.equal(a.rstCode, h2.NGHTTP2_CANCEL, 'RST_STREAM(CANCEL) on the wire (RFC 8441: the TCP RST)');
    assert.equal(a.buffered, 0, 'no close frame');
    await b.echo('b is unaffected');
    assert.equal(client.session.closed, false);
    assert.equal(client.tap.goaways().length, 0);
  });

  test('terminate() sends no END_STREAM before its RST_STREAM (a FIN before the reset)', async (t) => {
    const env = new Env(t);
    const { port } = await env.serve(async (ws) => {
      await ws.accept();
      await ws.receive();
      ws.terminate();
      await env.park();
    });
    const client = await env.session(port);
    const ws = await env.raw(client, '/');
    ws.sendText('die');
    await ws.waitClosed();
    assert.equal(ws.rstCode, h2.NGHTTP2_CANCEL);
    const frames = client.tap.of(ws.id).map((frame) => `${frame.type}/${frame.flags & END_STREAM}/${frame.payload.length}`);
    assert.equal(ws.sawEndStream, false, `server frames on the stream (type/END_STREAM/length): ${frames.join(' ')}`);
  });

  test('a handler that returns after terminate() is not reported to onError', async (t) => {
    const env = new Env(t);
    const errors: unknown[] = [];
    const done = deferred();
    const { server, port } = await env.serve(
      async (ws) => {
        await ws.accept();
        await ws.receive();
        ws.terminate();
        done.resolve();
        // Returning: the server closes the connection with 1000, as it would over HTTP/1.1.
      },
      { onError: (error) => errors.push(error) },
    );
    const client = await env.session(port);
    const ws = await env.raw(client, '/');
    ws.sendText('die');
    await ws.waitClosed();
    await withTimeout(done.promise, WAIT, 'the handler');
    await until(() => server.clients.size === 0, WAIT, 'the server forgetting the connection');
    assert.deepEqual(
      errors.map((error) => (error as { code?: string }).code ?? String(error)),
      [],
      'terminate() is not an error, and nothing is written after it',
    );
  });
});

describe('graceful shutdown over HTTP/2', () => {
  test('close() sends 1001 on every stream, then GOAWAY on the session, and completes', async (t) => {
    const env = new Env(t);
    const { server, port } = await env.serve(echo, { closeTimeout: 2000 });
    const client = await env.session(port);
    const goaway = deferred<number>();
    client.session.once('goaway', (code: number) => goaway.resolve(code));
    const sockets = [await env.webSocket(client, '/a'), await env.webSocket(client, '/b')];
    const raw = await env.raw(client, '/raw');
    const ids = [raw.id, ...client.tap.frames.filter((f) => f.direction === 'out' && f.type === FrameType.Headers).map((f) => f.streamId)];

    const started = Date.now();
    const closing = server.close();
    assert.deepEqual(await raw.expectClose(), { code: 1001, reason: 'server shutting down' });
    raw.close(1001);
    await raw.finish();
    for (const ws of sockets) {
      await assert.rejects(withTimeout(ws.receive(), WAIT, 'the close'), (error: unknown) => {
        return error instanceof WebSocketDisconnect && error.code === 1001 && error.reason === 'server shutting down';
      });
    }
    await withTimeout(closing, WAIT, 'the shutdown');
    assert.ok(Date.now() - started < 1500, `the closing handshakes ended it, not the timeout (${Date.now() - started} ms)`);
    assert.equal(await withTimeout(goaway.promise, WAIT, "the client's goaway event"), h2.NGHTTP2_NO_ERROR);
    const goaways = client.tap.goaways();
    assert.ok(goaways.length >= 1);
    assert.equal(goaways[0]!.code, h2.NGHTTP2_NO_ERROR);
    assert.ok(goaways[0]!.lastStreamId >= Math.max(...ids), 'GOAWAY lets the open streams finish');
    for (const id of new Set(ids)) {
      // The server's side may be done before the frames have crossed to the client's tap.
      await until(() => client.tap.endStream(id), WAIT, `stream ${id} ended with END_STREAM`);
      client.tap.assertOrderlyEnd(id);
    }

    // Nothing new is served: the session is going away, and the listener is closed.
    const late = await attempt(client, '/late');
    t.diagnostic(`a CONNECT after GOAWAY: ${late}`);
    assert.doesNotMatch(late, /status 200/);
    await assert.rejects(env.session(port));
  });

  test('the close frames reach the wire before GOAWAY (as server.ts shutdown() intends)', async (t) => {
    const env = new Env(t);
    const { server, port } = await env.serve(echo, { closeTimeout: 2000 });
    const client = await env.session(port);
    const raw = await env.raw(client, '/');
    const closing = server.close();
    await raw.expectClose();
    raw.close(1001);
    await raw.finish();
    await withTimeout(closing, WAIT, 'the shutdown');
    const closeData = client.tap.of(raw.id).find((frame) => frame.type === FrameType.Data)!;
    const goaway = client.tap.goaways()[0]!;
    assert.ok(closeData.seq < goaway.seq, `close frame DATA #${closeData.seq}, GOAWAY #${goaway.seq}`);
  });

  test('an extended CONNECT while an attached server shuts down gets 503; the http2 server keeps serving', async (t) => {
    const env = new Env(t);
    const { server: http2, port } = await env.http2Server({ allowHTTP1: true }, (_request, response) => response.end('app'));
    const wss = new WebSocketServer().route('*', echo).attach(http2);
    env.track(wss);
    const client = await env.session(port);
    const open = await env.raw(client, '/open');
    const closing = wss.close({ timeout: 2000 });
    assert.deepEqual(await open.expectClose(), { code: 1001, reason: 'server shutting down' });
    // The open WebSocket has not answered: the shutdown is still waiting for it.
    const refusal = await refusedOver(client, '/late');
    assert.equal(refusal.status, 503);
    assert.equal(refusal.body, 'server shutting down\n');
    open.close(1001);
    await open.finish();
    await withTimeout(closing, WAIT, 'the shutdown');
    assert.equal(client.tap.goaways().length, 0, 'an attached server keeps its sessions');
    const get = client.session.request({ ':path': '/' });
    assert.equal(await withTimeout(readBody(get), WAIT, 'a GET'), 'app');
  });
});

describe('attach() and the SETTINGS', () => {
  test('attach() turns on enableConnectProtocol for the sessions that follow', async (t) => {
    const env = new Env(t);
    const { server: http2, port } = await env.http2Server({ allowHTTP1: true }, (_request, response) => response.end('app'));
    const before = await env.session(port);
    assert.notEqual(before.remoteSettings.enableConnectProtocol, true, 'off before attach()');
    env.track(new WebSocketServer().route('*', echo).attach(http2));
    const after = await env.session(port);
    assert.equal(after.remoteSettings.enableConnectProtocol, true);
    await (await env.raw(after, '/')).echo('attached');
  });

  test('attach() throws TypeError for a server created with enableConnectProtocol: false, and leaves it untouched', async (t) => {
    const env = new Env(t);
    const { server: http2 } = await env.http2Server({ settings: { enableConnectProtocol: false } });
    const wss = new WebSocketServer().route('*', echo);
    env.track(wss);
    assert.throws(() => wss.attach(http2), (error: unknown) => error instanceof TypeError && /enableConnectProtocol/.test(error.message));
    assert.equal(Object.hasOwn(http2, 'emit'), false, "'stream' is not intercepted");
    assert.equal(http2.listenerCount('upgrade'), 0);
  });
});

describe('h2c and the heartbeat', () => {
  test('attach() to a cleartext HTTP/2 server (h2c): extended CONNECT is served, GET still reaches the app', async (t) => {
    const env = new Env(t);
    const { server: h2c, port } = await env.h2cServer((request, response) => response.end(`app ${request.url}`));
    const versions: string[] = [];
    env.track(
      new WebSocketServer()
        .route('/ws', async (ws) => {
          versions.push(ws.httpVersion);
          await echo(ws);
        })
        .attach(h2c),
    );
    const client = await env.session(port, { tls: false });
    assert.equal(client.remoteSettings.enableConnectProtocol, true);
    const ws = new RawStream(client, await extendedConnect(client.session, '/ws', { ':scheme': 'http' }));
    await ws.echo('cleartext');
    assert.deepEqual(versions, ['2.0']);
    assert.equal(await withTimeout(readBody(client.session.request({ ':path': '/page' })), WAIT, 'a GET'), 'app /page');
    const refusal = await refusedOver(client, '/nope', { ':scheme': 'http' });
    assert.equal(refusal.status, 404);
  });

  test('the heartbeat closes a stream whose reader stalled while its handler is behind (1011)', async (t) => {
    const env = new Env(t);
    const states: string[] = [];
    const { server, port } = await env.serve(
      async (ws) => {
        await ws.accept();
        // More than the stream window: some of it stays queued while the client does not read.
        for (let i = 0; i < 16; i++) void ws.send(Buffer.alloc(16 * KiB, 0x62));
        await env.park(); // never receives: its inbound queue fills and reading stops
      },
      { heartbeatInterval: 100, inboundHighWaterMark: 32 * KiB, closeTimeout: 3000 },
    );
    const client = await env.session(port);
    const ws = await env.raw(client, '/');
    ws.stream.pause();
    for (let i = 0; i < 8; i++) ws.send({ opcode: Opcode.Binary, payload: Buffer.alloc(16 * KiB, 0x63) });
    const connection = [...server.clients][0]!;
    await until(() => connection.state !== 'open', 2000, 'the heartbeat giving up on the stalled stream');
    states.push(connection.state);
    ws.stream.resume();
    let frame = await ws.readFrame();
    while (frame.opcode !== Opcode.Close) frame = await ws.readFrame();
    assert.deepEqual(parseClosePayload(frame.payload), { code: 1011, reason: 'heartbeat timeout' });
    assert.deepEqual(states, ['closing']);
  });

  test('idleTimeout closes a quiet stream with 1001 "idle timeout" and ends it; the session stays up', async (t) => {
    const env = new Env(t);
    const { port } = await env.serve(echo, { idleTimeout: 150 });
    const client = await env.session(port);
    const ws = await env.raw(client, '/');
    await ws.echo('then nothing');
    const started = Date.now();
    assert.deepEqual(await ws.expectClose(2000), { code: 1001, reason: 'idle timeout' });
    assert.ok(Date.now() - started >= 100, `closed after the idle time, not at once (${Date.now() - started} ms)`);
    ws.close(1001);
    await ws.finish();
    assert.equal(client.session.closed, false, 'the session carries on');
    await (await env.raw(client, '/again')).echo('a new stream');
  });
});

describe('bad input from the network over HTTP/2', () => {
  test('an unmasked client frame gets 1002 on that stream; the session keeps serving the others', async (t) => {
    const env = new Env(t);
    const ends: WebSocketDisconnect[] = [];
    const { port } = await env.serve(recordingEcho(ends));
    const client = await env.session(port);
    const bad = await env.raw(client, '/bad');
    const good = await env.raw(client, '/good');
    bad.stream.write(encodeFrame({ opcode: Opcode.Text, payload: 'unmasked', mask: false }));
    const close = await bad.expectClose();
    assert.equal(close.code, 1002);
    await bad.finish();
    await until(() => ends.length === 1, WAIT, 'the handler');
    assert.deepEqual([ends[0]!.code, ends[0]!.initiator], [1002, 'local']);
    await good.echo('unaffected');
    assert.equal(client.tap.goaways().length, 0);
  });

  test('a message over maxMessageSize gets 1009', async (t) => {
    const env = new Env(t);
    const { port } = await env.serve(echo, { maxMessageSize: 1024 });
    const client = await env.session(port);
    const ws = await env.raw(client, '/');
    await ws.echo('small is fine');
    ws.send({ opcode: Opcode.Binary, payload: Buffer.alloc(2000) });
    assert.equal((await ws.expectClose()).code, 1009);
    await ws.finish();
  });
});
