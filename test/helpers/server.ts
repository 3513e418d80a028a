/**
 * Fixtures for the wire-level server tests: a per-test Harness that starts servers on 127.0.0.1:0,
 * opens raw and Node (`globalThis.WebSocket`) clients, and tears everything down in `t.after` (clients
 * first, then servers), so no test leaks a handle. Plus small promise helpers with timeouts.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { serve, WebSocketServer, type Handler, type ServerOptions } from '../../src/index.ts';
import { DEFAULT_TIMEOUT, RawClient, type ConnectOptions, type HttpResponse, type OpenOptions } from './raw-client.ts';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `what` if `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A deferred nobody awaits must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** Polls `condition` every 5 ms until it holds. */
export async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${ms} ms`);
    await sleep(5);
  }
}

/** Waits until `read()` has not changed for `quiet` ms (bounded by `ms`); returns the value. */
export async function settle(read: () => number, quiet: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let value = read();
  let since = Date.now();
  while (Date.now() - since < quiet) {
    if (Date.now() > deadline) throw new Error(`still moving after ${ms} ms (at ${value})`);
    await sleep(10);
    const next = read();
    if (next !== value) {
      value = next;
      since = Date.now();
    }
  }
  return value;
}

/**
 * Asserts a complete refusal: the status, a body of exactly Content-Length bytes, `Connection: close`,
 * and then the end of the connection with nothing after the body.
 */
export async function assertRefusal(client: RawClient, status: number, body?: string | RegExp): Promise<HttpResponse> {
  const response = client.response!;
  assert.equal(response.status, status, `${response.statusLine}: ${response.body.toString()}`);
  assert.match(response.statusLine, new RegExp(`^HTTP/1\\.1 ${status} \\S`));
  const length = response.headers['content-length'];
  assert.ok(length !== undefined, 'Content-Length is present');
  assert.equal(Number(length), response.body.length);
  assert.equal(response.headers['connection']?.toLowerCase().includes('close'), true, 'Connection: close');
  assert.equal(response.headers['sec-websocket-accept'], undefined);
  if (typeof body === 'string') assert.equal(response.body.toString('utf8'), body);
  else if (body !== undefined) assert.match(response.body.toString('utf8'), body);
  await client.waitForEnd();
  assert.equal(client.buffered, 0, 'nothing follows the response');
  return response;
}

// ------------------------------------------------------------------ Node's WebSocket client

type NodeWebSocket = InstanceType<typeof globalThis.WebSocket>;

function nodeWebSocketClass(): typeof globalThis.WebSocket {
  const ctor = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;
  if (ctor === undefined) {
    throw new Error('globalThis.WebSocket is missing: Node 20 needs --experimental-websocket');
  }
  return ctor;
}

export interface ClientClose {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

/** Node's built-in WebSocket client with its messages queued from the start, and timeouts on every wait. */
export class WsClient {
  readonly ws: NodeWebSocket;
  /** Resolves when the client's `close` event fires. */
  readonly closed: Promise<ClientClose>;
  private readonly queue: (string | Buffer)[] = [];
  private readonly waiters: ((message: string | Buffer | null) => void)[] = [];
  private isClosed = false;

  private constructor(ws: NodeWebSocket) {
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (event) => {
      const data: unknown = event.data;
      const message = typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer);
      const waiter = this.waiters.shift();
      if (waiter !== undefined) waiter(message);
      else this.queue.push(message);
    });
    this.closed = new Promise<ClientClose>((resolve) => {
      ws.addEventListener('close', (event) => {
        this.isClosed = true;
        for (const waiter of this.waiters.splice(0)) waiter(null);
        resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
      });
    });
  }

  static connect(url: string, protocols?: string | string[], timeout = DEFAULT_TIMEOUT): Promise<WsClient> {
    const WebSocketClass = nodeWebSocketClass();
    const ws = protocols === undefined ? new WebSocketClass(url) : new WebSocketClass(url, protocols);
    const client = new WsClient(ws);
    return withTimeout(
      new Promise<WsClient>((resolve, reject) => {
        ws.addEventListener('open', () => resolve(client), { once: true });
        ws.addEventListener('error', () => reject(new Error(`WebSocket connection to ${url} failed`)), { once: true });
      }),
      timeout,
      `connecting to ${url}`,
    ).catch((error: unknown) => {
      ws.close();
      throw error;
    });
  }

  /** The next message (text as a string, binary as a Buffer). */
  next(timeout = DEFAULT_TIMEOUT): Promise<string | Buffer> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.isClosed) return Promise.reject(new Error('the client is closed'));
    // A wait that times out gives up its place, so the next message goes to the next wait.
    let waiter: ((message: string | Buffer | null) => void) | undefined;
    return withTimeout(
      new Promise<string | Buffer>((resolve, reject) => {
        waiter = (message) => (message === null ? reject(new Error('the client closed while waiting')) : resolve(message));
        this.waiters.push(waiter);
      }),
      timeout,
      'waiting for a message',
    ).catch((error: unknown) => {
      const index = this.waiters.indexOf(waiter!);
      if (index !== -1) this.waiters.splice(index, 1);
      throw error;
    });
  }

  send(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  close(code?: number, reason?: string): void {
    if (this.ws.readyState === this.ws.CLOSED) return;
    if (code === undefined) this.ws.close();
    else this.ws.close(code, reason);
  }

  waitClosed(timeout = DEFAULT_TIMEOUT): Promise<ClientClose> {
    return withTimeout(this.closed, timeout, 'waiting for the client to close');
  }
}

// ------------------------------------------------------------------ the per-test harness

export interface Started {
  readonly server: WebSocketServer;
  readonly port: number;
  /** `ws://127.0.0.1:<port>` */
  readonly url: string;
}

/** Owns everything a test opens and closes it in `t.after`: clients first, then servers. */
export class Harness {
  private readonly raws = new Set<RawClient>();
  private readonly clients = new Set<WsClient>();
  private readonly servers = new Set<WebSocketServer>();
  private readonly httpServers = new Set<HttpServer>();

  constructor(t: TestContext) {
    t.after(() => this.cleanup());
  }

  /** A standalone server with one handler for every path (`serve`). */
  async serve(handler: Handler, options: ServerOptions = {}): Promise<Started> {
    const server = await serve(handler, options);
    this.servers.add(server);
    const port = server.address()!.port;
    return { server, port, url: `ws://127.0.0.1:${port}` };
  }

  /** Starts a server built by the test (routes already added) with `listen()`. */
  async listen(server: WebSocketServer): Promise<Started> {
    this.servers.add(server);
    const { port } = await server.listen();
    return { server, port, url: `ws://127.0.0.1:${port}` };
  }

  /** Registers a server the test started some other way (attached ones), to close it afterwards. */
  track(server: WebSocketServer): void {
    this.servers.add(server);
  }

  /**
   * A server with one handler for every path whose server-side sockets the test can observe (from the
   * `upgrade` event of the http.Server it is attached to: nothing new exposed), in connection order.
   */
  async observed(options: ServerOptions, handler: Handler): Promise<{ server: WebSocketServer; port: number; sockets: Socket[] }> {
    const server = new WebSocketServer(options).route('*', handler);
    this.track(server);
    const { server: http, port } = await this.httpServer();
    const sockets: Socket[] = [];
    http.on('upgrade', (_request, socket: Socket) => sockets.push(socket));
    server.attach(http);
    return { server, port, sockets };
  }

  /** A plain `http.Server` on 127.0.0.1:0, closed afterwards. */
  async httpServer(server: HttpServer = createHttpServer()): Promise<{ server: HttpServer; port: number }> {
    this.httpServers.add(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as AddressInfo).port };
  }

  /** Adopts an http(s) server listening elsewhere, to close it afterwards. */
  trackHttp(server: HttpServer): void {
    this.httpServers.add(server);
  }

  async raw(port: number, options: ConnectOptions = {}): Promise<RawClient> {
    const client = await RawClient.connect(port, options);
    this.raws.add(client);
    return client;
  }

  async rawOpen(port: number, options: OpenOptions = {}): Promise<RawClient> {
    const client = await RawClient.open(port, options);
    this.raws.add(client);
    return client;
  }

  /** A raw client that must be accepted (101). */
  async rawOpened(port: number, options: ConnectOptions = {}): Promise<RawClient> {
    const client = await this.raw(port, options);
    const status = client.response?.status;
    if (status !== 101) throw new Error(`expected 101, got ${client.response?.statusLine}: ${client.response?.body.toString()}`);
    return client;
  }

  async client(url: string, protocols?: string | string[]): Promise<WsClient> {
    const client = await WsClient.connect(url, protocols);
    this.clients.add(client);
    return client;
  }

  async cleanup(): Promise<void> {
    for (const raw of this.raws) raw.destroy();
    for (const client of this.clients) client.close();
    await Promise.all([...this.servers].map((server) => withTimeout(server.close({ timeout: 100 }), 2000, 'closing a server')));
    await Promise.all(
      [...this.httpServers].map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
    await Promise.all([...this.clients].map((client) => client.waitClosed(2000).catch(() => undefined)));
  }
}
