/**
 * The client (`connect()`) on the wire, against our own server and against the `ws` package's: what the
 * other side actually receives (messages, fragments, pings, close codes, TCP FINs, request headers,
 * TLS client certificates, compressed byte counts), and what the client makes of what it is sent
 * (refusals, redirects, timeouts, aborts, backpressure, events).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer as WsServer, type ServerOptions as WsServerOptions, type WebSocket as WsSocket } from 'ws';
import {
  connect,
  HandshakeError,
  serve,
  WebSocketDisconnect,
  WebSocketException,
  WebSocketServer,
  type ClientOptions,
  type Handler,
  type Message,
  type WebSocket,
} from '../src/index.ts';
import { readFrames, serverFrame } from './helpers/frames.ts';
import { acceptFor } from './helpers/raw-client.ts';
import { deferred, Harness, sleep, until, withTimeout, type Deferred } from './helpers/server.ts';

const MiB = 1024 * 1024;
/** Every wait in this file is bounded by this (a hang fails the test, it does not stall the suite). */
const WAIT = 3000;

const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));
const KEY = fixture('key.pem');
const CERT = fixture('cert.pem');

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

// ------------------------------------------------------------------ fixtures

/** Our clients, the `ws` servers, raw servers and relays a test opens, all closed in t.after. */
class Env {
  readonly h: Harness;
  private readonly clients = new Set<WebSocket>();
  private readonly wsServers = new Set<WsServer>();
  private readonly netServers = new Set<{ server: NetServer; sockets: Set<Socket> }>();

  constructor(t: TestContext) {
    t.after(() => this.cleanup());
    this.h = new Harness(t);
  }

  /** connect(), the connection closed (dropped) after the test. */
  async connect(url: string, options: ClientOptions = {}): Promise<WebSocket> {
    const client = await withTimeout(connect(url, options), WAIT, `connecting to ${url}`);
    this.clients.add(client);
    return client;
  }

  /** A `ws` WebSocketServer on 127.0.0.1:0; `connections` yields its server-side sockets in order. */
  async wsServer(options: WsServerOptions = {}): Promise<{ wss: WsServer; url: string; port: number; next(): Promise<WsSocket> }> {
    const wss = new WsServer({ host: '127.0.0.1', port: 0, ...options });
    this.wsServers.add(wss);
    const queue: WsSocket[] = [];
    const waiting: Deferred<WsSocket>[] = [];
    wss.on('connection', (socket) => {
      const waiter = waiting.shift();
      if (waiter !== undefined) waiter.resolve(socket);
      else queue.push(socket);
    });
    await new Promise<void>((resolve) => wss.once('listening', resolve));
    const port = (wss.address() as AddressInfo).port;
    const next = (): Promise<WsSocket> => {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      const waiter = deferred<WsSocket>();
      waiting.push(waiter);
      return withTimeout(waiter.promise, WAIT, 'waiting for a ws connection');
    };
    return { wss, url: `ws://127.0.0.1:${port}`, port, next };
  }

  /** A raw TCP server on 127.0.0.1:0 (its sockets are destroyed after the test). */
  async netServer(onConnection: (socket: Socket) => void, options: { allowHalfOpen?: boolean } = {}): Promise<{ port: number; sockets: Set<Socket> }> {
    const sockets = new Set<Socket>();
    const server = createNetServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      onConnection(socket);
    });
    this.netServers.add({ server, sockets });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as AddressInfo).port, sockets };
  }

  /** An https.Server with the fixture certificate on 127.0.0.1:0. */
  async httpsServer(options: HttpsOptions = {}, app?: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ server: HttpsServer; port: number }> {
    const server = app === undefined ? createHttpsServer({ key: KEY, cert: CERT, ...options }) : createHttpsServer({ key: KEY, cert: CERT, ...options }, app);
    this.h.trackHttp(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as AddressInfo).port };
  }

  /**
   * A TCP relay in front of 127.0.0.1:`target` that records the bytes each way and the order in
   * which each side sent its FIN (half-closes are passed on, so the order is the endpoints' own).
   */
  async relay(target: number): Promise<Relay> {
    const record: Relay = { port: 0, up: [], down: [], fins: [], closed: deferred() };
    const { port } = await this.netServer(
      (inbound) => {
        const outbound = netConnect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
        let open = 2;
        const closedOne = (): void => {
          if (--open === 0) record.closed.resolve();
        };
        inbound.on('close', closedOne);
        outbound.on('close', closedOne);
        outbound.on('error', () => inbound.destroy());
        inbound.on('error', () => outbound.destroy());
        inbound.on('data', (chunk: Buffer) => {
          record.up.push(chunk);
          outbound.write(chunk);
        });
        outbound.on('data', (chunk: Buffer) => {
          record.down.push(chunk);
          inbound.write(chunk);
        });
        inbound.on('end', () => {
          record.fins.push('client');
          outbound.end();
        });
        outbound.on('end', () => {
          record.fins.push('server');
          inbound.end();
        });
      },
      { allowHalfOpen: true },
    );
    record.port = port;
    return record;
  }

  private async cleanup(): Promise<void> {
    for (const client of this.clients) client.terminate();
    for (const wss of this.wsServers) {
      for (const socket of wss.clients) socket.terminate();
    }
    await Promise.all(
      [...this.wsServers].map((wss) => withTimeout(new Promise<void>((resolve) => wss.close(() => resolve())), 2000, 'closing a ws server')),
    );
    await Promise.all(
      [...this.netServers].map(({ server, sockets }) => {
        for (const socket of sockets) socket.destroy();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      }),
    );
  }
}

interface Relay {
  port: number;
  /** Bytes from the client to the server. */
  up: Buffer[];
  /** Bytes from the server to the client. */
  down: Buffer[];
  /** Which endpoint's FIN reached the relay, in order. */
  fins: ('client' | 'server')[];
  closed: Deferred<void>;
}

/** The WebSocket frames the client sent through a relay (after its HTTP request). */
function clientFrames(relay: Relay): ReturnType<typeof readFrames> {
  const bytes = Buffer.concat(relay.up);
  const end = bytes.indexOf('\r\n\r\n');
  assert.ok(end > 0, 'the relay saw the HTTP request');
  return readFrames(bytes.subarray(end + 4));
}

/**
 * A raw TCP server that reads each upgrade request and calls `answer` with its Sec-WebSocket-Key and
 * what followed the request in the same read; the test writes the response by hand.
 */
async function rawUpgradeServer(env: Env, answer: (socket: Socket, key: string, rest: Buffer) => void): Promise<{ port: number }> {
  return env.netServer((socket) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const key = /^sec-websocket-key: *(\S+)/im.exec(head.subarray(0, end).toString())?.[1] ?? '';
      answer(socket, key, head.subarray(end + 4));
    };
    socket.on('data', onData);
  });
}

const switching = (key: string, extra = ''): string =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n${extra}\r\n`;

/** Rejects unless `promise` rejects with a WebSocketDisconnect of this code, reason and initiator. */
async function assertDisconnect(promise: Promise<unknown>, code: number, reason: string, initiator: WebSocketDisconnect['initiator']): Promise<WebSocketDisconnect> {
  let caught: unknown;
  try {
    await withTimeout(promise, WAIT, 'waiting for the disconnect');
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof WebSocketDisconnect, `expected a WebSocketDisconnect, got ${String(caught)}`);
  assert.deepEqual({ code: caught.code, reason: caught.reason, initiator: caught.initiator }, { code, reason, initiator });
  return caught;
}

/** Rejects unless `promise` rejects with a HandshakeError; returns it. */
async function handshakeError(promise: Promise<unknown>): Promise<HandshakeError> {
  let caught: unknown;
  try {
    const ws = await withTimeout(promise, WAIT, 'waiting for the refusal');
    (ws as WebSocket).terminate();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof HandshakeError, `expected a HandshakeError, got ${String(caught)}`);
  return caught;
}

/** A message's [type, text or hex] for readable comparisons. */
const show = (message: Message): [string, string] => [message.type, message.binary ? message.data.toString('hex') : message.text];

/** What a `ws` socket received: [isBinary, data]. */
function wsMessages(socket: WsSocket): { received: [boolean, Buffer][]; next(): Promise<[boolean, Buffer]> } {
  const received: [boolean, Buffer][] = [];
  let read = 0;
  socket.on('message', (data, isBinary) => {
    received.push([isBinary, Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[])]);
  });
  return {
    received,
    async next() {
      await until(() => received.length > read, WAIT, 'waiting for a message at the ws server');
      return received[read++]!;
    },
  };
}

// ------------------------------------------------------------------ messages

describe('messages', () => {
  const SAMPLES: (string | Buffer)[] = ['hello', Buffer.from([0, 1, 2, 0xfe, 0xff]), '', Buffer.alloc(0), 'héllo € 😀 𝄞 中文'];

  test('text, binary, empty and multi-byte UTF-8 messages reach our server intact and come back', async (t) => {
    const env = new Env(t);
    const seen: [string, string][] = [];
    const { url } = await env.h.serve(async (ws) => {
      await ws.accept();
      for await (const message of ws) {
        seen.push(show(message));
        await ws.send(message);
      }
    });
    const client = await env.connect(url);
    for (const sample of SAMPLES) await client.send(sample);
    const echoed: [string, string][] = [];
    for (let i = 0; i < SAMPLES.length; i++) echoed.push(show(await withTimeout(client.receive(), WAIT, 'echo')));
    const expected = SAMPLES.map((s): [string, string] => (typeof s === 'string' ? ['text', s] : ['binary', s.toString('hex')]));
    assert.deepEqual(seen, expected, 'what the server received');
    assert.deepEqual(echoed, expected, 'what came back');
  });

  test('the same messages reach a ws server with the right isBinary', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer();
    const client = await env.connect(url);
    const server = wsMessages(await next());
    for (const sample of SAMPLES) await client.send(sample);
    const got: [boolean, string][] = [];
    for (let i = 0; i < SAMPLES.length; i++) {
      const [isBinary, data] = await server.next();
      got.push([isBinary, isBinary ? data.toString('hex') : data.toString('utf8')]);
    }
    assert.deepEqual(
      got,
      SAMPLES.map((s): [boolean, string] => (typeof s === 'string' ? [false, s] : [true, s.toString('hex')])),
    );
  });

  test('sendFragments([...]): several masked frames on the wire, one message at our server', async (t) => {
    const env = new Env(t);
    const seen: [string, string][] = [];
    const { port } = await env.h.serve(async (ws) => {
      await ws.accept();
      for await (const message of ws) seen.push(show(message));
    });
    const relay = await env.relay(port);
    const client = await env.connect(`ws://127.0.0.1:${relay.port}/`);
    await client.sendFragments(['Hel', 'lo, ', 'wörld']);
    await client.send('after');
    await until(() => seen.length === 2, WAIT, 'the server received both messages');
    assert.deepEqual(seen, [
      ['text', 'Hello, wörld'],
      ['text', 'after'],
    ]);
    const frames = clientFrames(relay).map((f) => [f.opcode, f.fin, f.masked, f.payload.toString('utf8')]);
    assert.deepEqual(frames, [
      [1, false, true, 'Hel'],
      [0, false, true, 'lo, '],
      [0, true, true, 'wörld'],
      [1, true, true, 'after'],
    ]);
  });

  test('sendFragments(async generator): a ws server receives one binary message, the concatenation', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer();
    const client = await env.connect(url);
    const server = wsMessages(await next());
    const parts = [randomBytes(10), randomBytes(70_000), Buffer.alloc(0), randomBytes(3)];
    async function* produce(): AsyncGenerator<Uint8Array> {
      for (const part of parts) {
        await sleep(5);
        yield part;
      }
    }
    await withTimeout(client.sendFragments(produce()), WAIT, 'sendFragments');
    await client.send('next');
    const [isBinary, data] = await server.next();
    assert.equal(isBinary, true);
    assert.ok(data.equals(Buffer.concat(parts)), 'the concatenation of the fragments');
    const [isBinary2, data2] = await server.next();
    assert.deepEqual([isBinary2, data2.toString()], [false, 'next']);
    assert.equal(server.received.length, 2);
  });

  test('a 16 MiB message each way with our server (maxMessageSize 17 MiB on both sides)', async (t) => {
    const env = new Env(t);
    const payload = randomBytes(16 * MiB);
    let serverSaw = '';
    const { url } = await env.h.serve(
      async (ws) => {
        await ws.accept();
        for await (const message of ws) {
          serverSaw = `${message.byteLength} ${sha256(message.data)}`;
          await ws.send(message);
        }
      },
      { maxMessageSize: 17 * MiB },
    );
    const client = await env.connect(url, { maxMessageSize: 17 * MiB });
    await withTimeout(client.send(payload), 10_000, 'sending 16 MiB');
    const back = await withTimeout(client.receive(), 10_000, 'receiving 16 MiB');
    assert.equal(serverSaw, `${payload.length} ${sha256(payload)}`);
    assert.equal(back.binary, true);
    assert.equal(back.byteLength, payload.length);
    assert.ok(back.data.equals(payload), 'the echo differs');
  });

  test('a 16 MiB message each way with a ws server', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer({ maxPayload: 17 * MiB });
    const client = await env.connect(url, { maxMessageSize: 17 * MiB });
    const socket = await next();
    const server = wsMessages(socket);
    const payload = randomBytes(16 * MiB);
    await withTimeout(client.send(payload), 10_000, 'sending 16 MiB');
    const [isBinary, data] = await server.next();
    assert.equal(isBinary, true);
    assert.ok(data.equals(payload), 'what the ws server received differs');
    const down = randomBytes(16 * MiB);
    socket.send(down);
    const back = await withTimeout(client.receive(), 10_000, 'receiving 16 MiB');
    assert.equal(back.byteLength, down.length);
    assert.ok(back.data.equals(down), 'what the client received differs');
  });
});

// ------------------------------------------------------------------ ping and pong

describe('ping and pong', () => {
  test('client.ping(payload): our server sees the ping, the client gets the pong with the payload', async (t) => {
    const env = new Env(t);
    const pings: string[] = [];
    const { url } = await env.h.serve(async (ws) => {
      ws.on('ping', (payload) => pings.push(payload.toString()));
      await ws.accept();
      for await (const _ of ws);
    });
    const client = await env.connect(url);
    const pong = deferred<Buffer>();
    client.on('pong', (payload) => pong.resolve(payload));
    await client.ping(Buffer.from('are you there'));
    assert.equal((await withTimeout(pong.promise, WAIT, 'pong')).toString(), 'are you there');
    assert.deepEqual(pings, ['are you there']);
  });

  test('client.ping(payload) to a ws server: ws sees the ping, the client gets the pong', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer();
    const client = await env.connect(url);
    const socket = await next();
    const ping = deferred<Buffer>();
    socket.on('ping', (payload) => ping.resolve(payload));
    const pong = deferred<Buffer>();
    client.on('pong', (payload) => pong.resolve(payload));
    await client.ping(Buffer.from([1, 2, 3]));
    assert.deepEqual([...(await withTimeout(ping.promise, WAIT, 'ping at ws'))], [1, 2, 3]);
    assert.deepEqual([...(await withTimeout(pong.promise, WAIT, 'pong'))], [1, 2, 3]);
  });

  test('a ping from a ws server is answered at once with the same payload (no receive() pending)', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer();
    const client = await env.connect(url);
    const socket = await next();
    const clientPing = deferred<Buffer>();
    client.on('ping', (payload) => clientPing.resolve(payload));
    const pong = deferred<Buffer>();
    socket.on('pong', (payload) => pong.resolve(payload));
    socket.ping('from ws');
    assert.equal((await withTimeout(pong.promise, WAIT, 'pong at ws')).toString(), 'from ws');
    assert.equal((await withTimeout(clientPing.promise, WAIT, 'ping event')).toString(), 'from ws');
  });

  test('a ping from our server is answered with the same payload', async (t) => {
    const env = new Env(t);
    const pong = deferred<Buffer>();
    const { url } = await env.h.serve(async (ws) => {
      ws.on('pong', (payload) => pong.resolve(payload));
      await ws.accept();
      await ws.ping(Buffer.from('from us'));
      for await (const _ of ws);
    });
    await env.connect(url);
    assert.equal((await withTimeout(pong.promise, WAIT, 'pong at our server')).toString(), 'from us');
  });

  test('heartbeat: answered pings keep the connection open; an unanswered one closes it with 1011', async (t) => {
    const env = new Env(t);
    // A ws server that answers pings: several beats go by and the connection stays open.
    const answering = await env.wsServer();
    const alive = await env.connect(answering.url, { heartbeatInterval: 50 });
    const aliveSocket = await answering.next();
    let alivePings = 0;
    aliveSocket.on('ping', () => alivePings++);
    await sleep(300);
    assert.ok(alivePings >= 3, `the server saw ${alivePings} pings`);
    assert.equal(alive.state, 'open');
    assert.equal(aliveSocket.readyState, aliveSocket.OPEN);

    // autoPong: false: the server's socket takes pings and never answers them.
    const silent = await env.wsServer({ autoPong: false });
    const started = Date.now();
    const client = await env.connect(silent.url, { heartbeatInterval: 50 });
    const socket = await silent.next();
    let pings = 0;
    socket.on('ping', () => pings++);
    const closed = deferred<[number, string]>();
    socket.on('close', (code, reason) => closed.resolve([code, reason.toString()]));
    assert.deepEqual(await withTimeout(closed.promise, WAIT, 'the ws server sees the close'), [1011, 'heartbeat timeout']);
    const elapsed = Date.now() - started;
    assert.ok(pings >= 1, 'the server saw the ping it did not answer');
    assert.ok(elapsed >= 90 && elapsed < 1500, `closed after ${elapsed} ms`);
    await assertDisconnect(client.receive(), 1011, 'heartbeat timeout', 'local');
  });

  test('idleTimeout: a silent connection is closed with 1001 "idle timeout"', async (t) => {
    const env = new Env(t);
    const seen = deferred<WebSocketDisconnect>();
    const { url } = await env.h.serve(async (ws) => {
      await ws.accept();
      try {
        await ws.receive();
      } catch (error) {
        seen.resolve(error as WebSocketDisconnect);
      }
    });
    const started = Date.now();
    const client = await env.connect(url, { idleTimeout: 150 });
    const error = await withTimeout(seen.promise, WAIT, 'the server sees the close');
    const elapsed = Date.now() - started;
    assert.ok(error instanceof WebSocketDisconnect);
    assert.deepEqual([error.code, error.reason, error.initiator], [1001, 'idle timeout', 'peer']);
    assert.ok(elapsed >= 120, `closed after ${elapsed} ms`);
    await assertDisconnect(client.receive(), 1001, 'idle timeout', 'local');
  });
});

// ------------------------------------------------------------------ closing

describe('closing', () => {
  test('client close(4000, "done"): our server sees the code and reason; close() resolves; receive() rejects (local)', async (t) => {
    const env = new Env(t);
    const seen = deferred<WebSocketDisconnect>();
    const { url } = await env.h.serve(async (ws) => {
      await ws.accept();
      try {
        await ws.receive();
      } catch (error) {
        seen.resolve(error as WebSocketDisconnect);
      }
    });
    const client = await env.connect(url);
    await withTimeout(client.close(4000, 'done'), WAIT, 'close() resolves');
    assert.equal(client.state, 'closed');
    const error = await withTimeout(seen.promise, WAIT, 'the server sees the close');
    assert.deepEqual([error.code, error.reason, error.initiator], [4000, 'done', 'peer']);
    await assertDisconnect(client.receive(), 4000, 'done', 'local');
  });

  test('client close(4000, "done") to a ws server: ws sees the code and reason', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer();
    const client = await env.connect(url);
    const socket = await next();
    const closed = deferred<[number, string]>();
    socket.on('close', (code, reason) => closed.resolve([code, reason.toString()]));
    await withTimeout(client.close(4000, 'done'), WAIT, 'close() resolves');
    assert.deepEqual(await withTimeout(closed.promise, WAIT, 'ws close'), [4000, 'done']);
    await assertDisconnect(client.receive(), 4000, 'done', 'local');
  });

  test('our server closes with 4001 "bye": receive() rejects (peer), for await throws', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(async (ws) => {
      await ws.accept();
      await ws.send('before');
      await ws.close(4001, 'bye');
    });
    const first = await env.connect(url);
    assert.equal((await withTimeout(first.receive(), WAIT, 'message')).text, 'before');
    await assertDisconnect(first.receive(), 4001, 'bye', 'peer');

    const second = await env.connect(url);
    const got: string[] = [];
    const loop = (async () => {
      for await (const message of second) got.push(message.text);
    })();
    await assertDisconnect(loop, 4001, 'bye', 'peer');
    assert.deepEqual(got, ['before']);
  });

  test('a ws server closes with 4001 "bye": receive() rejects (peer), the close event has it', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer();
    const client = await env.connect(url);
    const closeEvent = deferred<[number, string]>();
    client.on('close', (code, reason) => closeEvent.resolve([code, reason]));
    (await next()).close(4001, 'bye');
    await assertDisconnect(client.receive(), 4001, 'bye', 'peer');
    assert.deepEqual(await withTimeout(closeEvent.promise, WAIT, 'close event'), [4001, 'bye']);
  });

  test('for await ends quietly when the server closes with 1000 (ours) or 1001 (ws)', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(async (ws) => {
      await ws.accept();
      await ws.send('a');
      await ws.send('b');
      await ws.close(1000);
    });
    const ours = await env.connect(url);
    const got: string[] = [];
    await withTimeout(
      (async () => {
        for await (const message of ours) got.push(message.text);
      })(),
      WAIT,
      'the loop over our server',
    );
    assert.deepEqual(got, ['a', 'b']);

    const theirs = await env.wsServer();
    const client = await env.connect(theirs.url);
    const socket = await theirs.next();
    socket.send('c');
    socket.close(1001, 'away');
    const got2: string[] = [];
    await withTimeout(
      (async () => {
        for await (const message of client) got2.push(message.text);
      })(),
      WAIT,
      'the loop over the ws server',
    );
    assert.deepEqual(got2, ['c']);
    await assertDisconnect(client.receive(), 1001, 'away', 'peer');
  });

  test('the server drops TCP (ws terminate()): 1006, initiator transport', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer();
    const client = await env.connect(url);
    const closeEvent = deferred<[number, string]>();
    client.on('close', (code, reason) => closeEvent.resolve([code, reason]));
    (await next()).terminate();
    await assertDisconnect(client.receive(), 1006, '', 'transport');
    assert.deepEqual(await withTimeout(closeEvent.promise, WAIT, 'close event'), [1006, '']);
    assert.equal(client.state, 'closed');
  });

  test('a handler that throws WebSocketException(4400, "nope") after accept: the client sees 4400 "nope"', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(async (ws) => {
      await ws.accept();
      throw new WebSocketException(4400, 'nope');
    });
    const client = await env.connect(url);
    await assertDisconnect(client.receive(), 4400, 'nope', 'peer');
  });

  test('RFC 6455 §7.1.1: after a client-initiated close, our server sends its FIN first', async (t) => {
    const env = new Env(t);
    const { port } = await env.h.serve(echo);
    const relay = await env.relay(port);
    const client = await env.connect(`ws://127.0.0.1:${relay.port}/`);
    await client.send('x');
    assert.equal((await withTimeout(client.receive(), WAIT, 'echo')).text, 'x');
    await withTimeout(client.close(1000, 'finished'), WAIT, 'close() resolves');
    await withTimeout(relay.closed.promise, WAIT, 'both TCP connections closed');
    assert.deepEqual(relay.fins, ['server', 'client'], 'the server closed TCP first');
    // The client's close frame went out before its FIN.
    const frames = clientFrames(relay);
    assert.equal(frames.at(-1)?.opcode, 8);
    assert.equal(frames.at(-1)?.payload.subarray(2).toString(), 'finished');
  });

  test('RFC 6455 §7.1.1: after a server-initiated close too, the server sends its FIN first', async (t) => {
    const env = new Env(t);
    const { port } = await env.h.serve(async (ws) => {
      await ws.accept();
      await ws.close(4001, 'bye');
    });
    const relay = await env.relay(port);
    const client = await env.connect(`ws://127.0.0.1:${relay.port}/`);
    await assertDisconnect(client.receive(), 4001, 'bye', 'peer');
    await withTimeout(relay.closed.promise, WAIT, 'both TCP connections closed');
    assert.deepEqual(relay.fins, ['server', 'client']);
    // The client echoed the close code (RFC 6455 §5.5.1).
    const frames = clientFrames(relay);
    assert.deepEqual(frames.map((f) => f.opcode), [8]);
    assert.equal(frames[0]!.payload.readUInt16BE(0), 4001);
  });
});

// ------------------------------------------------------------------ subprotocols

describe('subprotocols', () => {
  test('offered in order; our server picks from its list; client.subprotocol is the pick', async (t) => {
    const env = new Env(t);
    const offered = deferred<{ header: string | undefined; list: readonly string[] }>();
    const { url } = await env.h.serve(
      async (ws) => {
        offered.resolve({ header: ws.headers['sec-websocket-protocol'], list: ws.subprotocols });
        await ws.accept();
        for await (const _ of ws);
      },
      { subprotocols: ['chat.v1', 'chat.v2'] },
    );
    const client = await env.connect(url, { subprotocols: ['chat.v3', 'chat.v2', 'chat.v1'] });
    assert.deepEqual(await offered.promise, { header: 'chat.v3, chat.v2, chat.v1', list: ['chat.v3', 'chat.v2', 'chat.v1'] });
    assert.equal(client.subprotocol, 'chat.v2');
    assert.deepEqual(client.subprotocols, ['chat.v3', 'chat.v2', 'chat.v1']);
    assert.equal(client.headers['sec-websocket-protocol'], 'chat.v2');
  });

  test('a ws server with handleProtocols: the offer arrives in order, its pick is client.subprotocol', async (t) => {
    const env = new Env(t);
    let seen: string[] = [];
    const { url } = await env.wsServer({
      handleProtocols: (protocols) => {
        seen = [...protocols];
        return 'b';
      },
    });
    const client = await env.connect(url, { subprotocols: ['a', 'b', 'c'] });
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.equal(client.subprotocol, 'b');
    assert.deepEqual(client.subprotocols, ['a', 'b', 'c']);
  });

  test('no subprotocol selected (ours without a list, ws returning false): null', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(echo);
    const ours = await env.connect(url, { subprotocols: ['a'] });
    assert.equal(ours.subprotocol, null);
    assert.equal(ours.headers['sec-websocket-protocol'], undefined);
    const theirs = await env.wsServer({ handleProtocols: () => false });
    const client = await env.connect(theirs.url, { subprotocols: ['a', 'b'] });
    assert.equal(client.subprotocol, null);
    assert.deepEqual(client.subprotocols, ['a', 'b']);
  });
});

// ------------------------------------------------------------------ permessage-deflate

describe('permessage-deflate', () => {
  const TEXT = 'The quick brown fox jumps over the lazy dog. '.repeat(24_000); // ~1 MiB
  const BYTES = Buffer.from(TEXT.repeat(2));

  test('with our server: negotiated, large messages round-trip, far fewer bytes on the wire both ways', async (t) => {
    const env = new Env(t);
    const { port, sockets } = await env.h.observed({ perMessageDeflate: true }, echo);
    const client = await env.connect(`ws://127.0.0.1:${port}/`, { perMessageDeflate: true });
    assert.match(client.extensions, /^permessage-deflate/);
    await client.send(TEXT);
    const back = await withTimeout(client.receive(), WAIT, 'text echo');
    assert.equal(back.text, TEXT);
    await client.send(BYTES);
    const back2 = await withTimeout(client.receive(), WAIT, 'binary echo');
    assert.equal(back2.binary, true);
    assert.ok(back2.data.equals(BYTES));
    const socket = sockets[0]!;
    const total = TEXT.length + BYTES.length;
    assert.ok(socket.bytesRead < total / 20, `the server read ${socket.bytesRead} bytes for ${total}`);
    assert.ok(socket.bytesWritten < total / 20, `the server wrote ${socket.bytesWritten} bytes for ${total}`);
  });

  test('without the option, the same message is not compressed (the control)', async (t) => {
    const env = new Env(t);
    const { port, sockets } = await env.h.observed({ perMessageDeflate: true }, echo);
    const client = await env.connect(`ws://127.0.0.1:${port}/`);
    assert.equal(client.extensions, '');
    await client.send(TEXT);
    assert.equal((await withTimeout(client.receive(), WAIT, 'echo')).text, TEXT);
    assert.ok(sockets[0]!.bytesRead > TEXT.length, `the server read ${sockets[0]!.bytesRead} bytes`);
  });

  test('with a ws server: negotiated, large messages round-trip, far fewer bytes on the wire both ways', async (t) => {
    const env = new Env(t);
    const { url, next } = await env.wsServer({ perMessageDeflate: true });
    const client = await env.connect(url, { perMessageDeflate: true });
    assert.match(client.extensions, /^permessage-deflate/);
    const socket = await next();
    const server = wsMessages(socket);
    await client.send(TEXT);
    const [isBinary, data] = await server.next();
    assert.equal(isBinary, false);
    assert.equal(data.toString(), TEXT);
    socket.send(BYTES);
    const back = await withTimeout(client.receive(), WAIT, 'from ws');
    assert.ok(back.data.equals(BYTES));
    const raw = (socket as unknown as { _socket: Socket })._socket;
    assert.ok(raw.bytesRead < TEXT.length / 20, `ws read ${raw.bytesRead} bytes for ${TEXT.length}`);
    assert.ok(raw.bytesWritten < BYTES.length / 20, `ws wrote ${raw.bytesWritten} bytes for ${BYTES.length}`);
  });
});

// ------------------------------------------------------------------ TLS

describe('wss:// (TLS)', () => {
  async function secureServer(env: Env, options: HttpsOptions = {}): Promise<{ port: number; tlsSockets: TLSSocket[]; upgrades: () => number }> {
    const { server, port } = await env.httpsServer(options);
    const tlsSockets: TLSSocket[] = [];
    server.on('secureConnection', (socket: TLSSocket) => tlsSockets.push(socket));
    let upgrades = 0;
    server.on('upgrade', () => upgrades++);
    const wss = new WebSocketServer().route('*', echo).attach(server);
    env.h.track(wss);
    return { port, tlsSockets, upgrades: () => upgrades };
  }

  test('with ca: the fixture, connects and echoes (over TLS, ALPN http/1.1)', async (t) => {
    const env = new Env(t);
    const { port, tlsSockets } = await secureServer(env);
    const client = await env.connect(`wss://localhost:${port}/`, { ca: CERT });
    await client.send('secret');
    assert.equal((await withTimeout(client.receive(), WAIT, 'echo')).text, 'secret');
    assert.equal(tlsSockets.length, 1);
    assert.equal(tlsSockets[0]!.servername, 'localhost');
    assert.equal(tlsSockets[0]!.alpnProtocol, 'http/1.1', 'the client offers ALPN http/1.1');
  });

  test('without ca: rejects with Node’s TLS error, no upgrade reaches the server', async (t) => {
    const env = new Env(t);
    const { port, upgrades } = await secureServer(env);
    await assert.rejects(withTimeout(connect(`wss://127.0.0.1:${port}/`), WAIT, 'connect'), (error: unknown) => {
      assert.equal((error as { code?: string }).code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
      return true;
    });
    assert.equal(upgrades(), 0);
  });

  test('rejectUnauthorized: false connects without ca', async (t) => {
    const env = new Env(t);
    const { port } = await secureServer(env);
    const client = await env.connect(`wss://127.0.0.1:${port}/`, { rejectUnauthorized: false });
    await client.send('ok');
    assert.equal((await withTimeout(client.receive(), WAIT, 'echo')).text, 'ok');
  });

  test('servername: "localhost" with a URL of 127.0.0.1: SNI says localhost (and none without it)', async (t) => {
    const env = new Env(t);
    const { port, tlsSockets } = await secureServer(env);
    const named = await env.connect(`wss://127.0.0.1:${port}/`, { ca: CERT, servername: 'localhost' });
    await named.send('named');
    assert.equal((await withTimeout(named.receive(), WAIT, 'echo')).text, 'named');
    const plain = await env.connect(`wss://127.0.0.1:${port}/`, { ca: CERT });
    assert.equal(plain.state, 'open');
    assert.deepEqual(
      tlsSockets.map((s) => s.servername),
      ['localhost', false],
    );
  });

  test('a client certificate (cert/key) is seen by a server that requests one', async (t) => {
    const env = new Env(t);
    const { port, tlsSockets } = await secureServer(env, { requestCert: true, rejectUnauthorized: false, ca: CERT });
    const withCert = await env.connect(`wss://localhost:${port}/`, { ca: CERT, cert: CERT, key: KEY });
    await withCert.send('mine');
    assert.equal((await withTimeout(withCert.receive(), WAIT, 'echo')).text, 'mine');
    const without = await env.connect(`wss://localhost:${port}/`, { ca: CERT });
    assert.equal(without.state, 'open');
    assert.equal(tlsSockets.length, 2);
    const peer = tlsSockets[0]!.getPeerCertificate();
    assert.equal(peer.fingerprint256, new X509Certificate(CERT).fingerprint256);
    assert.equal(peer.subject?.CN, 'localhost');
    assert.equal(tlsSockets[0]!.authorized, true, String(tlsSockets[0]!.authorizationError));
    assert.deepEqual(tlsSockets[1]!.getPeerCertificate(), {}, 'no certificate without cert/key');
  });
});

// ------------------------------------------------------------------ IPv6, headers

describe('addressing and headers', () => {
  test('ws://[::1]:PORT/ reaches a server on ::1', async (t) => {
    const available = await new Promise<boolean>((resolve) => {
      const probe = createNetServer();
      probe.once('error', () => resolve(false));
      probe.listen(0, '::1', () => probe.close(() => resolve(true)));
    });
    if (!available) {
      t.skip('::1 is not available on this machine (no IPv6 loopback)');
      return;
    }
    const env = new Env(t);
    const seen = deferred<{ host: string | undefined; remote: string | undefined }>();
    const server = await serve(
      async (ws) => {
        seen.resolve({ host: ws.headers.host, remote: ws.remoteAddress });
        await echo(ws);
      },
      { host: '::1', port: 0 },
    );
    env.h.track(server);
    const port = server.address()!.port;
    const client = await env.connect(`ws://[::1]:${port}/`);
    assert.equal(client.remoteAddress, '::1');
    await client.send('v6');
    assert.equal((await withTimeout(client.receive(), WAIT, 'echo')).text, 'v6');
    assert.deepEqual(await seen.promise, { host: `[::1]:${port}`, remote: '::1' });
  });

  test('custom headers, cookies and Origin reach our server; client.headers are the 101’s', async (t) => {
    const env = new Env(t);
    const seen = deferred<WebSocket>();
    const { url, port } = await env.h.serve(async (ws) => {
      seen.resolve(ws);
      await ws.accept({ headers: { 'X-Served-By': 'test-server', 'Set-Cookie': 'session=abc' } });
      for await (const _ of ws);
    });
    const client = await env.connect(`${url}/path?q=1`, {
      headers: { 'X-Trace': 'trace-42', Cookie: 'a=1; b=2', Authorization: 'Bearer t0k' },
      origin: 'https://app.example',
    });
    const server = await seen.promise;
    assert.equal(server.headers['x-trace'], 'trace-42');
    assert.equal(server.headers.authorization, 'Bearer t0k');
    assert.equal(server.headers.origin, 'https://app.example');
    assert.equal(server.headers.host, `127.0.0.1:${port}`);
    assert.deepEqual({ ...server.cookies }, { a: '1', b: '2' });
    assert.equal(server.url, '/path?q=1');
    assert.equal(client.headers['x-served-by'], 'test-server');
    assert.deepEqual(client.headers['set-cookie'], ['session=abc']);
    assert.equal(typeof client.headers['sec-websocket-accept'], 'string');
    assert.equal(client.url, `${url}/path?q=1`);
  });

  test('no Origin header unless asked for', async (t) => {
    const env = new Env(t);
    const seen = deferred<WebSocket>();
    const { url } = await env.h.serve(async (ws) => {
      seen.resolve(ws);
      await echo(ws);
    });
    await env.connect(url);
    assert.equal((await seen.promise).headers.origin, undefined);
  });
});

// ------------------------------------------------------------------ refusals

describe('refused handshakes are readable', () => {
  test('a handler throws HandshakeError(401, "log in", WWW-Authenticate): status, headers, body', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(() => {
      throw new HandshakeError(401, 'log in', { 'WWW-Authenticate': 'Bearer' });
    });
    const error = await handshakeError(connect(url));
    assert.equal(error.status, 401);
    assert.equal(error.headers['www-authenticate'], 'Bearer');
    assert.ok(error.body !== null);
    assert.deepEqual(error.body, Buffer.from('log in\n'));
  });

  test('ws.close() before accept: 403', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(async (ws) => {
      await ws.close(1000, 'go away');
    });
    const error = await handshakeError(connect(url));
    assert.equal(error.status, 403);
    assert.equal(error.body?.toString(), 'go away\n');
  });

  test('an unknown route: 404', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.listen(new WebSocketServer().route('/a', echo));
    const ok = await env.connect(`${url}/a`);
    assert.equal(ok.state, 'open');
    const error = await handshakeError(connect(`${url}/b`));
    assert.equal(error.status, 404);
    assert.equal(error.body?.toString(), 'no WebSocket route for this path\n');
  });

  test('maxConnections reached: 503', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(echo, { maxConnections: 1 });
    await env.connect(url);
    const error = await handshakeError(connect(url));
    assert.equal(error.status, 503);
    assert.equal(error.body?.toString(), 'too many connections\n');
  });

  test('a plain HTTP server answering 200 with a body: HandshakeError 200 with the body', async (t) => {
    const env = new Env(t);
    const { port } = await env.h.httpServer(
      createHttpServer((_request, response) => {
        response.writeHead(200, { 'Content-Type': 'text/html' });
        response.end('<h1>not a WebSocket</h1>');
      }),
    );
    const error = await handshakeError(connect(`ws://127.0.0.1:${port}/`));
    assert.equal(error.status, 200);
    assert.equal(error.headers['content-type'], 'text/html');
    assert.equal(error.body?.toString(), '<h1>not a WebSocket</h1>');
  });
});

// ------------------------------------------------------------------ redirects

describe('a 101 the client must not accept (RFC 6455 §4.1)', () => {
  test('a wrong Sec-WebSocket-Accept: HandshakeError 101, and the client drops the connection', async (t) => {
    const env = new Env(t);
    const closed = deferred();
    const { port } = await rawUpgradeServer(env, (socket) => {
      socket.on('close', () => closed.resolve());
      socket.write(switching('not-the-key'));
    });
    const error = await handshakeError(connect(`ws://127.0.0.1:${port}/`));
    assert.equal(error.status, 101);
    assert.match(error.message, /Sec-WebSocket-Accept/);
    await withTimeout(closed.promise, WAIT, 'the client closed the TCP connection');
  });

  test('a subprotocol that was not offered: HandshakeError', async (t) => {
    const env = new Env(t);
    const { port } = await rawUpgradeServer(env, (socket, key) => {
      socket.write(switching(key, 'Sec-WebSocket-Protocol: other\r\n'));
    });
    const error = await handshakeError(connect(`ws://127.0.0.1:${port}/`, { subprotocols: ['mine'] }));
    assert.equal(error.status, 101);
    assert.match(error.message, /not offered/);
  });

  test('an extension that was not offered: HandshakeError', async (t) => {
    const env = new Env(t);
    const { port } = await rawUpgradeServer(env, (socket, key) => {
      socket.write(switching(key, 'Sec-WebSocket-Extensions: permessage-deflate\r\n'));
    });
    const error = await handshakeError(connect(`ws://127.0.0.1:${port}/`));
    assert.equal(error.status, 101);
    assert.match(error.message, /not offered/);
  });
});

describe('redirects', () => {
  interface Redirector {
    port: number;
    requests: { url: string | undefined; headers: IncomingMessage['headers'] }[];
  }

  /** A plain HTTP server answering every request with 302 and the Location `to(port)` returns. */
  async function redirector(env: Env, to: (port: number, request: IncomingMessage) => string): Promise<Redirector> {
    const record: Redirector = { port: 0, requests: [] };
    const { port } = await env.h.httpServer(
      createHttpServer((request, response) => {
        record.requests.push({ url: request.url, headers: request.headers });
        response.writeHead(302, { Location: to(record.port, request), 'Content-Type': 'text/plain' });
        response.end('moved');
      }),
    );
    record.port = port;
    return record;
  }

  /** Our echo server that records each handshake's path and headers. */
  async function target(env: Env): Promise<{ port: number; seen: { url: string; headers: IncomingMessage['headers'] }[] }> {
    const seen: { url: string; headers: IncomingMessage['headers'] }[] = [];
    const { port } = await env.h.serve(async (ws) => {
      seen.push({ url: ws.url, headers: ws.headers });
      await echo(ws);
    });
    return { port, seen };
  }

  test('without followRedirects: HandshakeError 302 with the Location', async (t) => {
    const env = new Env(t);
    const to = await target(env);
    const from = await redirector(env, () => `ws://127.0.0.1:${to.port}/x`);
    const error = await handshakeError(connect(`ws://127.0.0.1:${from.port}/start`));
    assert.equal(error.status, 302);
    assert.equal(error.headers.location, `ws://127.0.0.1:${to.port}/x`);
    assert.equal(to.seen.length, 0, 'not followed');
  });

  test('with followRedirects: connects to the target', async (t) => {
    const env = new Env(t);
    const to = await target(env);
    const from = await redirector(env, () => `ws://127.0.0.1:${to.port}/x?y=1`);
    const client = await env.connect(`ws://127.0.0.1:${from.port}/start`, { followRedirects: true });
    await client.send('redirected');
    assert.equal((await withTimeout(client.receive(), WAIT, 'echo')).text, 'redirected');
    assert.deepEqual(from.requests.map((r) => r.url), ['/start']);
    assert.deepEqual(to.seen.map((s) => s.url), ['/x?y=1']);
    assert.equal(client.url, `ws://127.0.0.1:${to.port}/x?y=1`);
  });

  test('a redirect loop stops after maxRedirects, and the error says so', async (t) => {
    const env = new Env(t);
    const loop = await redirector(env, (port) => `ws://127.0.0.1:${port}/loop`);
    const error = await handshakeError(connect(`ws://127.0.0.1:${loop.port}/loop`, { followRedirects: true, maxRedirects: 3 }));
    assert.equal(error.status, 302);
    assert.match(error.message, /more than 3 redirects/);
    assert.equal(loop.requests.length, 4, 'the first request and 3 redirects');
  });

  test('a redirect from wss: to ws: is refused', async (t) => {
    const env = new Env(t);
    const to = await target(env);
    const { port } = await env.httpsServer({}, (_request, response) => {
      response.writeHead(302, { Location: `ws://127.0.0.1:${to.port}/plain` });
      response.end();
    });
    const error = await handshakeError(connect(`wss://127.0.0.1:${port}/`, { ca: CERT, followRedirects: true }));
    assert.equal(error.status, 302);
    assert.match(error.message, /refused to follow a redirect from wss:/);
    await sleep(50);
    assert.equal(to.seen.length, 0, 'nothing was sent in clear');
  });

  test('Authorization and Cookie are dropped when the redirect goes to another host', async (t) => {
    const env = new Env(t);
    const to = await target(env);
    const from = await redirector(env, () => `ws://localhost:${to.port}/other-host`);
    const headers = { Authorization: 'Bearer secret', Cookie: 'sid=1', 'X-Trace': 't1' };
    const client = await env.connect(`ws://127.0.0.1:${from.port}/`, { followRedirects: true, headers });
    assert.equal(client.state, 'open');
    assert.equal(from.requests[0]!.headers.authorization, 'Bearer secret', 'sent to the host named');
    const seen = to.seen[0]!;
    assert.equal(seen.url, '/other-host');
    assert.equal(seen.headers.host, `localhost:${to.port}`);
    assert.equal(seen.headers.authorization, undefined);
    assert.equal(seen.headers.cookie, undefined);
    assert.equal(seen.headers['x-trace'], 't1', 'other headers are kept');
  });

  test('Authorization is kept when the redirect stays on the same host (a relative Location)', async (t) => {
    const env = new Env(t);
    const { server: http, port } = await env.h.httpServer();
    const requests: string[] = [];
    http.on('upgrade', (request: IncomingMessage, socket) => {
      requests.push(request.url ?? '');
      if (request.url === '/start') socket.end('HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    const seen = deferred<IncomingMessage['headers']>();
    const wss = new WebSocketServer()
      .route('/x', async (ws) => {
        seen.resolve(ws.headers);
        await echo(ws);
      })
      .attach(http, { unmatched: 'ignore' });
    env.h.track(wss);
    const client = await env.connect(`ws://127.0.0.1:${port}/start`, {
      followRedirects: true,
      headers: { Authorization: 'Bearer secret', Cookie: 'sid=1' },
    });
    assert.equal(client.state, 'open');
    assert.deepEqual(requests, ['/start', '/x']);
    const headers = await seen.promise;
    assert.equal(headers.authorization, 'Bearer secret');
    assert.equal(headers.cookie, 'sid=1');
  });
});

// ------------------------------------------------------------------ timeouts and aborts

describe('handshake timeout and AbortSignal', () => {
  /** A TCP server that accepts, reads the request, and never answers. */
  async function silentServer(env: Env): Promise<{ port: number; sockets: Set<Socket>; requests: number[]; closes: number[] }> {
    const requests: number[] = [];
    const closes: number[] = [];
    const { port, sockets } = await env.netServer((socket) => {
      socket.once('data', () => requests.push(Date.now()));
      socket.on('close', () => closes.push(Date.now()));
    });
    return { port, sockets, requests, closes };
  }

  test('a server that never answers: TimeoutError after handshakeTimeout, the connection dropped', async (t) => {
    const env = new Env(t);
    const silent = await silentServer(env);
    const started = Date.now();
    let caught: unknown;
    try {
      await withTimeout(connect(`ws://127.0.0.1:${silent.port}/`, { handshakeTimeout: 200 }), WAIT, 'connect');
    } catch (error) {
      caught = error;
    }
    const elapsed = Date.now() - started;
    assert.ok(caught instanceof DOMException, `got ${String(caught)}`);
    assert.equal(caught.name, 'TimeoutError');
    assert.ok(elapsed >= 150 && elapsed < 2000, `rejected after ${elapsed} ms`);
    assert.equal(silent.requests.length, 1, 'the request was sent');
    await until(() => silent.closes.length === 1, WAIT, 'the client closed the TCP connection');
  });

  test('aborting mid-handshake rejects with the signal’s reason and drops the connection', async (t) => {
    const env = new Env(t);
    const silent = await silentServer(env);
    const controller = new AbortController();
    const reason = new Error('user cancelled');
    const pending = connect(`ws://127.0.0.1:${silent.port}/`, { signal: controller.signal });
    await until(() => silent.requests.length === 1, WAIT, 'the request arrived');
    controller.abort(reason);
    await assert.rejects(withTimeout(pending, WAIT, 'connect'), (error: unknown) => {
      assert.equal(error, reason);
      return true;
    });
    await until(() => silent.closes.length === 1, WAIT, 'the client closed the TCP connection');
  });

  test('an already aborted signal rejects at once, without connecting', async (t) => {
    const env = new Env(t);
    let connections = 0;
    const { port } = await env.netServer(() => connections++);
    const reason = new Error('too late');
    const started = Date.now();
    await assert.rejects(connect(`ws://127.0.0.1:${port}/`, { signal: AbortSignal.abort(reason) }), (error: unknown) => {
      assert.equal(error, reason);
      return true;
    });
    assert.ok(Date.now() - started < 500, 'rejected at once');
    await sleep(50);
    assert.equal(connections, 0);
  });
});

// ------------------------------------------------------------------ backpressure

describe('backpressure', () => {
  test('bufferedAmount grows while the server does not read; send() resolves only after the drain', async (t) => {
    const env = new Env(t);
    let serverSocket: Socket | null = null;
    let received = 0;
    const { port } = await rawUpgradeServer(env, (socket, key, rest) => {
      serverSocket = socket;
      socket.write(switching(key));
      received = rest.length;
      // From here on the server reads nothing until the test resumes it.
      socket.pause();
      socket.on('data', (more: Buffer) => (received += more.length));
    });
    const client = await env.connect(`ws://127.0.0.1:${port}/`);
    assert.equal(client.bufferedAmount, 0);
    const payload = Buffer.alloc(12 * MiB, 0x61);
    let sent = false;
    const sending = client.send(payload).then(() => {
      sent = true;
    });
    await sleep(200);
    assert.equal(sent, false, 'send() is pending while the server does not read');
    assert.ok(client.bufferedAmount > 1 * MiB, `bufferedAmount ${client.bufferedAmount}`);
    assert.ok(received < payload.length, `the server read ${received} bytes`);
    serverSocket!.resume();
    await withTimeout(sending, 5000, 'send() after the drain');
    await until(() => received === payload.length + 14, WAIT, 'the server got the whole frame');
    assert.equal(client.bufferedAmount, 0);
  });
});

// ------------------------------------------------------------------ the event API

describe('the event API', () => {
  test('frames in the same TCP segment as the 101 are delivered: on("message") and receive()', async (t) => {
    const env = new Env(t);
    const frames = Buffer.concat([serverFrame({ opcode: 1, payload: 'first' }), serverFrame({ opcode: 2, payload: Buffer.from([7, 8]) })]);
    const { port } = await rawUpgradeServer(env, (socket, key) => {
      // One write: the response and two frames arrive in one read.
      socket.write(Buffer.concat([Buffer.from(switching(key)), frames]));
    });
    const evented = await env.connect(`ws://127.0.0.1:${port}/`);
    const got: [string, string][] = [];
    evented.on('message', (message) => got.push(show(message)));
    await until(() => got.length === 2, WAIT, 'both messages as events');
    assert.deepEqual(got, [
      ['text', 'first'],
      ['binary', '0708'],
    ]);
    const pulled = await env.connect(`ws://127.0.0.1:${port}/`);
    assert.deepEqual(show(await withTimeout(pulled.receive(), WAIT, 'first')), ['text', 'first']);
    assert.deepEqual(show(await withTimeout(pulled.receive(), WAIT, 'second')), ['binary', '0708']);
  });

  test('on("message") gets a message sent right after accept, then echoes; on("close") gets the code', async (t) => {
    const env = new Env(t);
    const { url } = await env.h.serve(async (ws) => {
      await ws.accept();
      await ws.send('welcome');
      for await (const message of ws) {
        if (message.text === 'bye') throw new WebSocketException(4002, 'done');
        await ws.send(message);
      }
    });
    for (let round = 0; round < 5; round++) {
      const client = await env.connect(url);
      const messages: string[] = [];
      client.on('message', (message) => messages.push(message.text));
      const closed = deferred<[number, string]>();
      client.on('close', (code, reason) => closed.resolve([code, reason]));
      await until(() => messages.length === 1, WAIT, 'the welcome message');
      await client.send('one');
      await client.send('two');
      await until(() => messages.length === 3, WAIT, 'the echoes');
      assert.deepEqual(messages, ['welcome', 'one', 'two']);
      await client.send('bye');
      assert.deepEqual(await withTimeout(closed.promise, WAIT, 'close event'), [4002, 'done']);
    }
  });
});
