/**
 * The server users embed: routes upgrade requests by path, runs the opening handshake with the core's
 * pure functions, and runs each route's async handler under the exception contract:
 *
 * | raised by the handler        | before accept()                 | after accept()                     |
 * |------------------------------|---------------------------------|------------------------------------|
 * | WebSocketException(code, r)  | HTTP 403, body r                | close frame (code, r), handshake   |
 * | HandshakeError(status, r)    | HTTP status, body r             | close 1011 (a bug: too late)       |
 * | HandshakeError from connect()| HTTP 500, onError               | close 1011, onError                |
 * | WebSocketDisconnect          | nothing (the client is gone)    | nothing (the peer is gone)         |
 * | any other error              | HTTP 500, onError               | close 1011, onError                |
 * | returns without closing      | HTTP 403                        | close 1000                         |
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type SecureServerOptions,
  type ServerHttp2Stream,
} from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { addAbortSignal, type Duplex } from 'node:stream';
import { CloseCode } from './constants.ts';
import { HandshakeError, WebSocketDisconnect, WebSocketException } from './errors.ts';
import {
  isWebSocketConnect,
  parseConnectRequest,
  parseUpgradeRequest,
  refusalResponse,
  selectSubprotocol,
  type HandshakeResponse,
  type UpgradeRequest,
} from './handshake.ts';
import { serializeResponse } from './http1.ts';
import { refuseOnStream } from './http2.ts';
import { defaultOnError, reportSafely, resolveOptions, type ConnectionSettings, type ServerOptions } from './options.ts';
import { prepareMessage, PreparedMessage } from './protocol/frame-encoder.ts';
import { TopicHub, type Backplane, type PublishOptions, type PublishResult } from './topics.ts';
import { WebSocket } from './websocket.ts';
import { pathOf } from './request-info.ts';
import { compileRoute, type RoutePattern } from './routing.ts';

/** A route handler: receives the connection before the handshake is answered. */
export type Handler = (ws: WebSocket) => unknown;

export interface ListenOptions {
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /**
   * TLS options (`key` and `cert`, or `pfx`, ...): serve `wss://`. With them the server speaks HTTP/2
   * and HTTP/1.1 on one port (see `http2`).
   */
  tls?: SecureServerOptions;
  /**
   * With `tls`: serve WebSockets over HTTP/2 extended CONNECT (RFC 8441) beside HTTP/1.1 upgrades, on
   * one port (default true); false serves HTTP/1.1 only. HTTP/2 needs TLS: browsers speak it only there.
   */
  http2?: boolean;
}

export interface CloseOptions {
  /** Close code sent to every open connection. Default 1001 (Going Away). */
  code?: number;
  reason?: string;
  /** How long to wait for the closing handshakes before dropping connections. Default: closeTimeout. */
  timeout?: number;
}

export interface AttachOptions {
  /**
   * What happens to an upgrade request no route matches: `refuse` (default) answers 404; `ignore`
   * leaves it untouched for the server's other `upgrade` listeners.
   */
  unmatched?: 'refuse' | 'ignore';
}

/** What `broadcast()` did: every connection it considered is counted in exactly one field. */
export interface BroadcastResult {
  /** Connections the message was written to. */
  readonly sent: number;
  /** Connections over `maxBufferedAmount` that were skipped (policy `skip`). */
  readonly skipped: number;
  /** Connections over `maxBufferedAmount` closed with 1008 (policy `close`). */
  readonly closed: number;
}

interface Route {
  readonly pattern: RoutePattern;
  readonly handler: Handler;
}

type Http2AnyServer = Http2SecureServer | Http2Server;
type AnyHttpServer = HttpServer | HttpsServer | Http2AnyServer;
type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** What attach() did to a server, undone by the shutdown. */
interface Attachment {
  readonly upgrade: UpgradeListener;
  /** Removes the interception of extended CONNECT streams (HTTP/2 servers only). */
  readonly detachStreams: (() => void) | null;
}

/** A request that may become a WebSocket: its route, path parameters and validated handshake. */
interface Admission {
  readonly route: Route;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly upgrade: UpgradeRequest;
}

/** Writes an HTTP refusal on a socket that never became a WebSocket, then closes it. */
function refuseSocket(socket: Duplex, error: HandshakeError, closeTimeout: number): void {
  if (socket.destroyed) return;
  socket.end(serializeResponse(refusalResponse(error)));
  setTimeout(() => socket.destroy(), closeTimeout).unref();
}

/** Answers an extended CONNECT that never became a WebSocket with an HTTP/2 error response. */
function refuseStream(stream: ServerHttp2Stream, error: HandshakeError, closeTimeout: number): void {
  // The timer drops a stream whose body cannot go out (the client's window is shut).
  if (refuseOnStream(stream, refusalResponse(error))) setTimeout(cancelStream, closeTimeout, stream).unref();
}

/** RST_STREAM with CANCEL (RFC 8441 §5): Node resets a stream destroyed with an AbortError so. */
function cancelStream(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) addAbortSignal(ABORTED, stream);
}

const ABORTED = AbortSignal.abort();

/**
 * WebSockets one HTTP/2 session carries, kept on the session; the stream keeps its session so the
 * count can be taken down when the stream closes (module-level listener, no closure per stream).
 */
const kWebSocketStreams = Symbol('rfc6455.webSocketStreams');
const kCountedSession = Symbol('rfc6455.countedSession');
type CountedSession = Http2Session & { [kWebSocketStreams]?: number };
type CountedStream = ServerHttp2Stream & { [kCountedSession]?: CountedSession };

function uncountStream(this: CountedStream): void {
  const session = this[kCountedSession];
  if (session !== undefined) session[kWebSocketStreams] = (session[kWebSocketStreams] ?? 1) - 1;
}

/** `node:http2` servers have `updateSettings`; `node:http`/`node:https` servers do not. */
function isHttp2Server(server: AnyHttpServer): server is Http2AnyServer {
  return typeof (server as Partial<Http2AnyServer>).updateSettings === 'function';
}

/**
 * The settings a `node:http2` server was created with. Node keeps them on a symbol-keyed property and
 * has no public getter; null when that changes, and then attach() can only set, not check.
 */
function http2ServerSettings(server: Http2AnyServer): { enableConnectProtocol?: boolean } | null {
  const key = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === 'options');
  if (key === undefined) return null;
  const options = (server as unknown as Record<symbol, { settings?: { enableConnectProtocol?: boolean } } | undefined>)[key];
  return options?.settings ?? null;
}

/**
 * Takes extended CONNECT streams (RFC 8441) before any 'stream' listener sees them. Node's
 * compatibility layer (installed with a request handler, so on every `allowHTTP1` server) starts
 * reading every stream and answers 405 to a CONNECT that no 'connect' listener takes; a 'stream'
 * listener of ours would run beside it whatever the order. So the server's own `emit` is wrapped for
 * 'stream': a stream `take` accepts is ours alone, every other event and stream goes on as before.
 * Returns the undo.
 */
function interceptStreams(
  server: Http2AnyServer,
  take: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => boolean,
): () => void {
  const hadOwnEmit = Object.hasOwn(server, 'emit');
  const original = server.emit;
  let active = true;
  const emit = function (this: Http2AnyServer, event: string | symbol, ...args: unknown[]): boolean {
    if (active && event === 'stream') {
      const headers = args[1] as IncomingHttpHeaders;
      if (isWebSocketConnect(headers) && take(args[0] as ServerHttp2Stream, headers)) return true;
    }
    return original.apply(this, [event, ...args]);
  };
  server.emit = emit;
  return () => {
    active = false;
    // Restored only if nobody wrapped it after us; otherwise ours stays as a pass-through.
    if (server.emit !== emit) return;
    if (hadOwnEmit) server.emit = original;
    else delete (server as { emit?: unknown }).emit;
  };
}

export class WebSocketServer {
  private readonly routes: Route[] = [];
  private readonly connections = new Set<WebSocket>();
  private readonly settings: ConnectionSettings;
  private readonly handshakeTimeout: number;
  private readonly maxConnections: number;
  private readonly allowedOrigins: ReadonlySet<string> | null;
  private readonly subprotocols: readonly string[];
  private readonly verify: ((ws: WebSocket) => unknown) | undefined;
  private readonly heartbeat: NodeJS.Timeout | null;
  private readonly maxSessionStreams: number;
  private readonly attached = new Map<AnyHttpServer, Attachment>();
  private ownServer: HttpServer | HttpsServer | Http2SecureServer | null = null;
  /** Connections of the server listen() started: HTTP/2 sessions get GOAWAY at shutdown, sockets are dropped last. */
  private readonly ownSessions = new Set<Http2Session>();
  private readonly ownSockets = new Set<Socket>();
  private closing: Promise<void> | null = null;
  private readonly topics: TopicHub;
  private readonly backplane: Backplane | null;

  /** Throws RangeError/TypeError naming the option for any invalid option (see ServerOptions). */
  constructor(options: ServerOptions = {}) {
    const resolved = resolveOptions(options);
    this.report = reportSafely(resolved.onError ?? defaultOnError);
    this.topics = new TopicHub(resolved.backplane);
    this.backplane = resolved.backplane;
    this.settings = { ...resolved.settings, onError: this.report, onClosed: this.forget, topics: this.topics };
    this.handshakeTimeout = this.settings.handshakeTimeout;
    this.maxConnections = resolved.maxConnections;
    this.maxSessionStreams = resolved.maxSessionStreams;
    this.allowedOrigins = resolved.allowedOrigins;
    this.subprotocols = resolved.subprotocols;
    this.verify = resolved.verify;
    const interval = resolved.heartbeatInterval;
    this.heartbeat = interval > 0 ? setInterval(this.beat, interval) : null;
    this.heartbeat?.unref();
    this.backplane?.start({ deliver: this.topics.receive, close: () => this.close() });
  }

  /** Every connection from its upgrade request until its socket closes (accepted or not yet). */
  get clients(): ReadonlySet<WebSocket> {
    return this.connections;
  }

  /** The address of the server started by `listen()`, or null. */
  address(): AddressInfo | null {
    const address = this.ownServer?.address();
    return address !== null && typeof address === 'object' ? address : null;
  }

  /**
   * Adds a route: `/chat`, `/items/{item_id}/ws` (path parameters in `ws.params`), or `*` for any
   * path. Routes are tried in the order they were added.
   */
  route(pattern: string, handler: Handler): this {
    this.routes.push({ pattern: compileRoute(pattern), handler });
    return this;
  }

  /**
   * Takes an upgrade request from an `http.Server`/`https.Server` `upgrade` event (or anywhere else):
   * answers it with an HTTP error, or hands it to the matching route's handler. Requests no route
   * matches get 404.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.takeUpgrade(request, socket, head, 'refuse');
  }

  /**
   * Serves WebSocket upgrades on an existing HTTP(S) server, next to its normal routes, on the same
   * port. On a `node:http2` secure server (`http2.createSecureServer`, with `allowHTTP1: true` for
   * HTTP/1.1 clients) it also serves WebSockets over HTTP/2 (RFC 8441): it turns on
   * `enableConnectProtocol` and takes extended CONNECT streams with `:protocol websocket`, leaving any
   * other CONNECT to the server's own listeners. Throws TypeError when the server was created with
   * `settings.enableConnectProtocol: false`. See AttachOptions for requests no route matches.
   */
  attach(server: AnyHttpServer, options: AttachOptions = {}): this {
    if (this.attached.has(server)) return this;
    if (this.closing !== null) throw new TypeError('the WebSocket server is shut down');
    const unmatched = options.unmatched ?? 'refuse';
    let detachStreams: (() => void) | null = null;
    if (isHttp2Server(server)) {
      if (http2ServerSettings(server)?.enableConnectProtocol === false) {
        throw new TypeError(
          'the HTTP/2 server was created with settings.enableConnectProtocol: false; WebSockets over HTTP/2 (RFC 8441 §3) need it on',
        );
      }
      // RFC 8441 §3: clients use extended CONNECT only after the server's SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.
      server.updateSettings({ enableConnectProtocol: true });
      detachStreams = interceptStreams(server, (stream, headers) => this.takeStream(stream, headers, unmatched));
    }
    const upgrade: UpgradeListener = (request, socket, head) => this.takeUpgrade(request, socket, head, unmatched);
    server.on('upgrade', upgrade);
    this.attached.set(server, { upgrade, detachStreams });
    return this;
  }

  /**
   * Starts a standalone server on `host:port` (default 127.0.0.1, any free port): `ws://`, or with
   * `tls` `wss://` over HTTP/1.1 and HTTP/2 on one port. Plain HTTP requests get 426 Upgrade Required
   * (405 on HTTP/2, which has no Upgrade); request headers must arrive within handshakeTimeout.
   */
  async listen(options: ListenOptions = {}): Promise<AddressInfo> {
    if (this.ownServer !== null) throw new TypeError('the server is already listening');
    if (this.closing !== null) throw new TypeError('the WebSocket server is shut down');
    const timeout = this.handshakeTimeout;
    const timeouts = { headersTimeout: timeout, requestTimeout: timeout };
    let server: HttpServer | HttpsServer | Http2SecureServer;
    if (options.tls === undefined) {
      if (options.http2 === true) throw new TypeError('http2 needs tls: browsers speak HTTP/2 only over TLS');
      server = createServer({ ...timeouts, connectionsCheckingInterval: Math.min(1000, timeout) }, answerPlainRequest);
    } else if (options.http2 === false) {
      server = createHttpsServer({ ...options.tls, ...timeouts }, answerPlainRequest);
    } else {
      const settings = { ...options.tls.settings, enableConnectProtocol: true };
      const http2 = createSecureServer({ ...options.tls, settings, allowHTTP1: true }, answerPlainRequest);
      // The HTTP/1.1 side of an allowHTTP1 server reads these as an http.Server does.
      Object.assign(http2, timeouts);
      http2.on('session', (session: Http2Session) => {
        this.ownSessions.add(session);
        session.once('close', () => this.ownSessions.delete(session));
        // Node's connection-level receive window is 64 KiB: on a link with a 50 ms round trip that caps
        // what all of a connection's WebSockets together can send us at ~1.3 MB/s. It costs no memory
        // to raise (Node hands it back as data arrives; what a paused stream buffers is bounded by the
        // stream's own window, left at Node's 64 KiB). It has no setting (RFC 9113 §6.9.2).
        session.setLocalWindowSize(SESSION_WINDOW);
      });
      server = http2;
    }
    server.on('connection', (socket: Socket) => {
      this.ownSockets.add(socket);
      socket.once('close', () => this.ownSockets.delete(socket));
    });
    this.ownServer = server;
    this.attach(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.address()!;
  }

  /**
   * Sends `data` (a string as text, bytes as binary, or a PreparedMessage) to every open connection,
   * or to those `filter` accepts. The frame is encoded once and the same buffers are written to every
   * socket. A connection whose output is over `maxBufferedAmount` (a slow consumer) is skipped or
   * closed with 1008, per the `slowConsumer` option; the result counts each outcome.
   */
  broadcast(data: string | Uint8Array | PreparedMessage, filter?: (ws: WebSocket) => boolean): BroadcastResult {
    const prepared = data instanceof PreparedMessage ? data : prepareMessage(data);
    let sent = 0;
    let skipped = 0;
    let closed = 0;
    for (const ws of this.connections) {
      if (filter !== undefined && !filter(ws)) continue;
      const delivery = ws.deliver(prepared);
      if (delivery === 'sent') sent++;
      else if (delivery === 'skipped') skipped++;
      else if (delivery === 'closed') closed++;
    }
    return { sent, skipped, closed };
  }

  /**
   * Publishes `data` (a string as text, bytes as binary, or a PreparedMessage) to every subscriber of
   * `topic` on this server, except `exclude`, and through the backplane (if any) to the subscribers on
   * every other server. Encoded once, and compressed once per set of deflate parameters; a subscriber
   * over `maxBufferedAmount` is skipped or closed per `slowConsumer`. The result counts this server's
   * subscribers. At most once, in order per publisher per topic.
   */
  publish(topic: string, data: string | Uint8Array | PreparedMessage, options: PublishOptions = {}): PublishResult {
    return this.topics.publish(topic, data, options.exclude);
  }

  /** Number of this server's connections subscribed to `topic`. */
  subscriberCount(topic: string): number {
    return this.topics.subscriberCount(topic);
  }

  /**
   * Graceful shutdown: stops taking upgrades, sends `code` (default 1001) to every open connection,
   * refuses pending handshakes with 503, waits up to `timeout` for the closing handshakes, drops what
   * is left, and closes the server `listen()` started (an attached server is only detached).
   */
  close(options: CloseOptions = {}): Promise<void> {
    return (this.closing ??= this.shutdown(options));
  }

  private async shutdown(options: CloseOptions): Promise<void> {
    const code = options.code ?? CloseCode.GoingAway;
    const reason = options.reason ?? 'server shutting down';
    const timeout = options.timeout ?? this.settings.closeTimeout;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    // HTTP/1.1 upgrades stop being taken now; extended CONNECT streams stay intercepted until the end,
    // refused with 503 (else Node's compatibility layer would answer them 405).
    for (const [server, attachment] of this.attached) server.off('upgrade', attachment.upgrade);
    const own = this.ownServer;
    const listenerClosed =
      own === null ? Promise.resolve() : new Promise<void>((resolve) => own.close(() => resolve()));
    if (own !== null && 'closeIdleConnections' in own) own.closeIdleConnections();
    const closed: Promise<void>[] = [];
    for (const ws of this.connections) {
      if (ws.state === 'connecting') ws.refuse(new HandshakeError(503, reason));
      else void ws.close(code, reason).catch(() => undefined);
      closed.push(ws.whenClosed());
    }
    // RFC 9113 §6.8: GOAWAY after the close frames, so no new stream opens on our sessions while the
    // closing handshakes finish on the open ones. nghttp2 sends control frames ahead of DATA queued
    // with them, so the GOAWAY waits for the frames written this turn to go out.
    if (this.ownSessions.size > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (const session of this.ownSessions) session.close();
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeout);
    });
    await Promise.race([Promise.all(closed), expired]);
    clearTimeout(timer);
    for (const ws of this.connections) ws.terminate();
    await Promise.all(closed);
    for (const [, attachment] of this.attached) attachment.detachStreams?.();
    this.attached.clear();
    for (const session of this.ownSessions) session.destroy();
    for (const socket of this.ownSockets) socket.destroy();
    await listenerClosed;
    await this.backplane?.close();
  }

  private takeUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, unmatched: 'refuse' | 'ignore'): void {
    const target = request.url ?? '/';
    const admission = this.admit(target, unmatched, () =>
      parseUpgradeRequest({ method: request.method ?? '', httpVersion: request.httpVersion, headers: request.headers }),
    );
    if (admission === null) return;
    if (admission instanceof HandshakeError) {
      this.refuseSocket(socket, admission);
      return;
    }
    const { route, path, params, upgrade } = admission;
    const info = { url: target, path, params, headers: request.headers, remoteAddress: request.socket.remoteAddress };
    this.run(new WebSocket(socket, head, upgrade, info, this.settings), route.handler);
  }

  /**
   * An extended CONNECT (RFC 8441 §4) on an attached HTTP/2 server: false leaves it to the server's
   * other listeners (no route matched, with `unmatched: 'ignore'`).
   */
  private takeStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, unmatched: 'refuse' | 'ignore'): boolean {
    const path = headers[':path'];
    const target = typeof path === 'string' ? path : '/';
    const admission = this.admit(target, unmatched, () => parseConnectRequest(headers));
    if (admission === null) return false;
    if (admission instanceof HandshakeError) {
      this.refuseStream(stream, admission);
      return true;
    }
    const session = stream.session as CountedSession | undefined;
    if (session === undefined) return true;
    const streams = session[kWebSocketStreams] ?? 0;
    if (streams >= this.maxSessionStreams) {
      this.refuseStream(stream, new HandshakeError(503, 'too many WebSockets on this HTTP/2 connection'));
      return true;
    }
    session[kWebSocketStreams] = streams + 1;
    (stream as CountedStream)[kCountedSession] = session;
    stream.once('close', uncountStream);
    const { route, params, upgrade } = admission;
    // RFC 9113 §8.3.1: :authority takes the place of Host; handlers reading `headers.host` find it.
    headers.host ??= upgrade.host;
    const info = { url: target, path: admission.path, params, headers, remoteAddress: session.socket?.remoteAddress };
    this.run(new WebSocket(stream, EMPTY, upgrade, info, this.settings), route.handler);
    return true;
  }

  /**
   * The checks every opening request meets, over either HTTP version, in order: a route (404), the
   * server not shutting down (503), a valid handshake (`parse`: 400, 405, 426), room (503), an allowed
   * origin (403). Null: no route, and the caller leaves the request alone.
   */
  private admit(target: string, unmatched: 'refuse' | 'ignore', parse: () => UpgradeRequest): Admission | HandshakeError | null {
    const path = pathOf(target);
    let route: Route | undefined;
    let params: Readonly<Record<string, string>> | null = null;
    try {
      for (const candidate of this.routes) {
        params = candidate.pattern.match(path);
        if (params !== null) {
          route = candidate;
          break;
        }
      }
    } catch (error) {
      return error instanceof HandshakeError ? error : new HandshakeError(400);
    }
    if (route === undefined || params === null) {
      return unmatched === 'ignore' ? null : new HandshakeError(404, 'no WebSocket route for this path');
    }
    if (this.closing !== null) return new HandshakeError(503, 'server shutting down');
    let upgrade: UpgradeRequest;
    try {
      upgrade = parse();
    } catch (error) {
      return error instanceof HandshakeError ? error : new HandshakeError(400);
    }
    if (this.connections.size >= this.maxConnections) return new HandshakeError(503, 'too many connections');
    // RFC 6455 §10.2: a server may refuse browser origins it does not trust, with 403.
    if (this.allowedOrigins !== null && upgrade.origin !== undefined && !this.allowedOrigins.has(upgrade.origin)) {
      return new HandshakeError(403, 'origin not allowed');
    }
    return { route, path, params, upgrade };
  }

  private refuseStream(stream: ServerHttp2Stream, error: HandshakeError): void {
    stream.on('error', ignoreError);
    refuseStream(stream, error, this.settings.closeTimeout);
  }

  private refuseSocket(socket: Duplex, error: HandshakeError): void {
    socket.on('error', () => socket.destroy());
    refuseSocket(socket, error, this.settings.closeTimeout);
  }

  /** Counts the connection and runs its handler under the exception contract (see the table at the top). */
  private run(ws: WebSocket, handler: Handler): void {
    this.connections.add(ws);
    if (this.subprotocols.length > 0) {
      const preferred = selectSubprotocol(ws.subprotocols, this.subprotocols);
      ws.preferSubprotocol(preferred);
    }
    let result: unknown;
    try {
      result = this.verify === undefined ? handler(ws) : verifyThenRun(this.verify, ws, handler);
    } catch (error) {
      handlerFailed.call(ws, error);
      return;
    }
    // Waited on with a reaction and two bound functions, not an async function of ours: an idle
    // connection's handler is suspended already, and a second suspended frame per connection (its
    // generator, registers, context and promises) would cost several hundred bytes more.
    void Promise.resolve(result).then(handlerReturned.bind(ws), handlerFailed.bind(ws));
  }

  /** Receives handler and socket errors: the `onError` option, made safe to throw. */
  private readonly report: (error: unknown, ws: WebSocket) => void;

  /** Every connection calls it once, when its socket has closed. */
  private readonly forget = (ws: WebSocket): void => {
    this.connections.delete(ws);
    try {
      this.topics.dropConnection(ws);
    } catch (error) {
      // A backplane's unsubscribe threw: reported, the connection is gone either way.
      this.report(error, ws);
    }
  };

  private readonly beat = (): void => {
    for (const ws of this.connections) ws.beat();
  };
}

const EMPTY = Buffer.alloc(0);
/** listen({ tls })'s HTTP/2 connection-level receive window. */
const SESSION_WINDOW = 1024 * 1024;

function ignoreError(): void {}

/** The one place an error escaping a handler becomes an HTTP refusal or a close frame. */
async function fail(ws: WebSocket, error: unknown): Promise<void> {
  if (ws.state === 'connecting') {
    // A HandshakeError with a body is one connect() received from another server: passing its
    // status and headers (cookies, for one) on to this client would be a leak, so it is a 500.
    if (error instanceof HandshakeError && error.body === null) ws.refuse(error);
    else if (error instanceof WebSocketException) ws.refuse(new HandshakeError(403, error.reason));
    else if (error instanceof WebSocketDisconnect) ws.terminate();
    else {
      ws.reportError(error);
      ws.refuse(new HandshakeError(500));
    }
    return;
  }
  if (error instanceof WebSocketDisconnect) {
    // The peer is gone (or the handler ended on a disconnect it raised): nothing more to send.
    await ws.close(CloseCode.NormalClosure).catch(() => undefined);
    return;
  }
  if (error instanceof WebSocketException) {
    await ws.close(error.code, error.reason);
    return;
  }
  ws.reportError(error);
  await ws.close(CloseCode.InternalError).catch(() => undefined);
}

/** A handler that returned: a connection it never accepted is refused, an open one is closed with 1000. */
function handlerReturned(this: WebSocket): void {
  if (this.state === 'connecting') this.refuse(new HandshakeError(403, 'the handler did not accept the connection'));
  else this.close(CloseCode.NormalClosure).catch(ignoreError);
}

function handlerFailed(this: WebSocket, error: unknown): void {
  void fail(this, error);
}

async function verifyThenRun(verify: (ws: WebSocket) => unknown, ws: WebSocket, handler: Handler): Promise<void> {
  await verify(ws);
  await handler(ws);
}

/**
 * The standalone server's answer to a request that is not a WebSocket opening handshake. Node routes
 * an HTTP/1.1 request to 'upgrade' only when it has both Upgrade and Connection: upgrade, so a
 * handshake missing one of them arrives here: it is malformed (400), not plain HTTP.
 */
function answerPlainRequest(request: IncomingMessage | Http2ServerRequest, response: ServerResponse | Http2ServerResponse): void {
  const http2 = request.httpVersion === '2.0';
  let refusal: HandshakeResponse;
  if (!http2 && request.headers['sec-websocket-key'] !== undefined) {
    try {
      parseUpgradeRequest({ method: request.method ?? '', httpVersion: request.httpVersion, headers: request.headers });
      refusal = refusalResponse(new HandshakeError(400));
    } catch (error) {
      refusal = refusalResponse(error instanceof HandshakeError ? error : new HandshakeError(400));
    }
  } else if (http2) {
    // HTTP/2 has no Upgrade (RFC 9113 §8.6): a WebSocket there is an extended CONNECT (RFC 8441).
    refusal = refusalResponse(
      new HandshakeError(405, 'This endpoint speaks WebSocket only: over HTTP/2, an extended CONNECT (RFC 8441).', {
        Allow: 'CONNECT',
      }),
    );
  } else {
    // RFC 7231 §6.5.15: this endpoint only speaks WebSocket.
    refusal = refusalResponse(
      new HandshakeError(426, 'This endpoint speaks WebSocket (RFC 6455) only.', { 'Sec-WebSocket-Version': '13' }),
    );
  }
  if (http2) {
    refuseOnStream((request as Http2ServerRequest).stream, refusal);
    return;
  }
  const plain = response as ServerResponse;
  plain.writeHead(refusal.status, {
    ...refusal.headers,
    Connection: refusal.status === 426 ? 'Upgrade, close' : 'close',
    'Content-Length': Buffer.byteLength(refusal.body),
  });
  plain.end(refusal.body);
}

/**
 * Starts a standalone server with one handler for every path: `serve(handler, { port, host, ...options })`.
 */
export async function serve(handler: Handler, options: ServerOptions & ListenOptions = {}): Promise<WebSocketServer> {
  const server = new WebSocketServer(options);
  server.route('*', handler);
  await server.listen(options);
  return server;
}
