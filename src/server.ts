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
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode } from './constants.ts';
import { HandshakeError, WebSocketDisconnect, WebSocketException } from './errors.ts';
import { parseUpgradeRequest, refusalResponse, selectSubprotocol, type UpgradeRequest } from './handshake.ts';
import { serializeResponse } from './http1.ts';
import { defaultOnError, reportSafely, resolveOptions, type ConnectionSettings, type ServerOptions } from './options.ts';
import { prepareMessage, PreparedMessage } from './protocol/frame-encoder.ts';
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

type AnyHttpServer = HttpServer | HttpsServer;
type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** Writes an HTTP refusal on a socket that never became a WebSocket, then closes it. */
function refuseSocket(socket: Duplex, error: HandshakeError, closeTimeout: number): void {
  if (socket.destroyed) return;
  socket.end(serializeResponse(refusalResponse(error)));
  setTimeout(() => socket.destroy(), closeTimeout).unref();
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
  private readonly attached = new Map<AnyHttpServer, UpgradeListener>();
  private ownServer: HttpServer | null = null;
  private closing: Promise<void> | null = null;

  /** Throws RangeError/TypeError naming the option for any invalid option (see ServerOptions). */
  constructor(options: ServerOptions = {}) {
    const resolved = resolveOptions(options);
    this.report = reportSafely(resolved.onError ?? defaultOnError);
    this.settings = { ...resolved.settings, onError: this.report, onClosed: this.forget };
    this.handshakeTimeout = this.settings.handshakeTimeout;
    this.maxConnections = resolved.maxConnections;
    this.allowedOrigins = resolved.allowedOrigins;
    this.subprotocols = resolved.subprotocols;
    this.verify = resolved.verify;
    const interval = resolved.heartbeatInterval;
    this.heartbeat = interval > 0 ? setInterval(this.beat, interval) : null;
    this.heartbeat?.unref();
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
   * port. See AttachOptions for requests no route matches.
   */
  attach(server: AnyHttpServer, options: AttachOptions = {}): this {
    if (this.attached.has(server)) return this;
    const unmatched = options.unmatched ?? 'refuse';
    const listener: UpgradeListener = (request, socket, head) => this.takeUpgrade(request, socket, head, unmatched);
    server.on('upgrade', listener);
    this.attached.set(server, listener);
    return this;
  }

  /**
   * Starts a standalone server on `host:port` (default 127.0.0.1, any free port). Plain HTTP requests
   * get 426 Upgrade Required; request headers must arrive within handshakeTimeout.
   */
  async listen(options: ListenOptions = {}): Promise<AddressInfo> {
    if (this.ownServer !== null) throw new TypeError('the server is already listening');
    const timeout = this.handshakeTimeout;
    const server = createServer(
      { headersTimeout: timeout, requestTimeout: timeout, connectionsCheckingInterval: Math.min(1000, timeout) },
      (request, response) => {
        // Node routes a request to 'upgrade' only when it has both Upgrade and Connection: upgrade.
        // A WebSocket handshake missing one of them is malformed (400), not plain HTTP.
        if (request.headers['sec-websocket-key'] !== undefined) {
          try {
            parseUpgradeRequest({ method: request.method ?? '', httpVersion: request.httpVersion, headers: request.headers });
          } catch (error) {
            if (error instanceof HandshakeError) {
              const refusal = refusalResponse(error);
              response.writeHead(refusal.status, {
                ...refusal.headers,
                Connection: 'close',
                'Content-Length': Buffer.byteLength(refusal.body),
              });
              response.end(refusal.body);
              return;
            }
          }
        }
        // RFC 7231 §6.5.15: this endpoint only speaks WebSocket.
        const body = 'This endpoint speaks WebSocket (RFC 6455) only.\n';
        response.writeHead(426, {
          Upgrade: 'websocket',
          Connection: 'Upgrade, close',
          'Sec-WebSocket-Version': '13',
          'Content-Type': 'text/plain; charset=utf-8',
          'Content-Length': Buffer.byteLength(body),
        });
        response.end(body);
      },
    );
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
    for (const [server, listener] of this.attached) server.off('upgrade', listener);
    this.attached.clear();
    const own = this.ownServer;
    const listenerClosed =
      own === null ? Promise.resolve() : new Promise<void>((resolve) => own.close(() => resolve()));
    own?.closeIdleConnections();
    const closed: Promise<void>[] = [];
    for (const ws of this.connections) {
      if (ws.state === 'connecting') ws.refuse(new HandshakeError(503, reason));
      else void ws.close(code, reason).catch(() => undefined);
      closed.push(ws.whenClosed());
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeout);
    });
    await Promise.race([Promise.all(closed), expired]);
    clearTimeout(timer);
    for (const ws of this.connections) ws.terminate();
    await Promise.all(closed);
    own?.closeAllConnections();
    await listenerClosed;
  }

  private takeUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, unmatched: 'refuse' | 'ignore'): void {
    const path = pathOf(request.url ?? '/');
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
      this.refuseSocket(socket, error instanceof HandshakeError ? error : new HandshakeError(400));
      return;
    }
    if (route === undefined || params === null) {
      if (unmatched === 'ignore') return;
      this.refuseSocket(socket, new HandshakeError(404, 'no WebSocket route for this path'));
      return;
    }
    if (this.closing !== null) {
      this.refuseSocket(socket, new HandshakeError(503, 'server shutting down'));
      return;
    }
    let upgrade: UpgradeRequest;
    try {
      upgrade = parseUpgradeRequest({ method: request.method ?? '', httpVersion: request.httpVersion, headers: request.headers });
    } catch (error) {
      this.refuseSocket(socket, error instanceof HandshakeError ? error : new HandshakeError(400));
      return;
    }
    if (this.connections.size >= this.maxConnections) {
      this.refuseSocket(socket, new HandshakeError(503, 'too many connections'));
      return;
    }
    // RFC 6455 §10.2: a server may refuse browser origins it does not trust, with 403.
    if (this.allowedOrigins !== null && upgrade.origin !== undefined && !this.allowedOrigins.has(upgrade.origin)) {
      this.refuseSocket(socket, new HandshakeError(403, 'origin not allowed'));
      return;
    }
    const ws = new WebSocket(
      socket,
      head,
      upgrade,
      { url: request.url ?? '/', path, params, headers: request.headers, remoteAddress: request.socket.remoteAddress },
      this.settings,
    );
    this.connections.add(ws);
    void this.run(ws, route.handler);
  }

  private refuseSocket(socket: Duplex, error: HandshakeError): void {
    socket.on('error', () => socket.destroy());
    refuseSocket(socket, error, this.settings.closeTimeout);
  }

  /** Runs a handler under the exception contract (see the table at the top of this file). */
  private async run(ws: WebSocket, handler: Handler): Promise<void> {
    if (this.subprotocols.length > 0) {
      const preferred = selectSubprotocol(ws.subprotocols, this.subprotocols);
      ws.preferSubprotocol(preferred);
    }
    try {
      if (this.verify !== undefined) await this.verify(ws);
      await handler(ws);
      if (ws.state === 'connecting') ws.refuse(new HandshakeError(403, 'the handler did not accept the connection'));
      else await ws.close(CloseCode.NormalClosure);
    } catch (error) {
      await this.fail(ws, error);
    }
  }

  /** The one place an error escaping a handler becomes an HTTP refusal or a close frame. */
  private async fail(ws: WebSocket, error: unknown): Promise<void> {
    if (ws.state === 'connecting') {
      // A HandshakeError with a body is one connect() received from another server: passing its
      // status and headers (cookies, for one) on to this client would be a leak, so it is a 500.
      if (error instanceof HandshakeError && error.body === null) ws.refuse(error);
      else if (error instanceof WebSocketException) ws.refuse(new HandshakeError(403, error.reason));
      else if (error instanceof WebSocketDisconnect) ws.terminate();
      else {
        this.report(error, ws);
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
    this.report(error, ws);
    await ws.close(CloseCode.InternalError).catch(() => undefined);
  }

  /** Receives handler and socket errors: the `onError` option, made safe to throw. */
  private readonly report: (error: unknown, ws: WebSocket) => void;

  /** Every connection calls it once, when its socket has closed. */
  private readonly forget = (ws: WebSocket): void => {
    this.connections.delete(ws);
  };

  private readonly beat = (): void => {
    for (const ws of this.connections) ws.beat();
  };
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
