/**
 * One WebSocket connection on a Node socket: the thin I/O layer over the sans-I/O Protocol. It moves
 * bytes between the socket and the protocol, applies backpressure both ways, runs the connection's
 * timers (handshake, closing handshake, idle) and turns the protocol's events into the async handler
 * API (`receive`, `for await`) and, for users coming from `ws`, into events.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { CloseCode } from './constants.ts';
import { HandshakeError, InvalidPayloadData, UnsupportedData, WebSocketDisconnect } from './errors.ts';
import { acceptResponse, refusalResponse, type UpgradeRequest } from './handshake.ts';
import { parseCookies, queryOf } from './request-info.ts';
import type { HttpHeaders } from './errors.ts';
import type { PreparedMessage } from './protocol/frame-encoder.ts';
import { Message } from './protocol/message.ts';
import { Protocol, type CloseEvent, type ProtocolSink } from './protocol/protocol.ts';
import type { PathParams } from './routing.ts';

/** The limits and timers a connection runs with (see ServerOptions for their defaults). */
export interface ConnectionSettings {
  readonly maxMessageSize: number;
  readonly maxFrameSize: number;
  /** Received bytes queued for the handler above which the socket stops being read. */
  readonly maxQueuedBytes: number;
  /** How long to wait for the peer's close frame, and then for its TCP close, before dropping it. */
  readonly closeTimeout: number;
  /** Inactivity after which the connection is closed with 1001; 0 disables it. */
  readonly idleTimeout: number;
  /** Time for the handler to accept or refuse before the handshake is refused with 408. */
  readonly handshakeTimeout: number;
}

/** What the server hands a connection of its upgrade request (query and cookies are parsed on demand). */
export interface RequestInfo {
  readonly url: string;
  readonly path: string;
  readonly params: PathParams;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
}

export interface AcceptOptions {
  /** The subprotocol to use; it must be one of `ws.subprotocols` (the client's offer). */
  readonly subprotocol?: string | null;
  /** Extra headers for the 101 response. */
  readonly headers?: HttpHeaders;
}

/** `connecting` until accepted or refused; `open`; `closing` after a close frame either way; `closed`. */
export type ConnectionState = 'connecting' | 'open' | 'closing' | 'closed';

/** Close codes that end `for await` quietly: the peer finished normally (RFC 6455 §7.4.1). */
const NORMAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.NormalClosure,
  CloseCode.GoingAway,
  CloseCode.NoStatusReceived,
]);

/** How long a peer's close may wait for a handler that is not receiving before it is answered anyway. */
const CLOSE_REPLY_GRACE = 1000;

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * The connection a socket belongs to. Socket listeners and timers are module-level functions that find
 * their connection through it, so an idle connection carries no closures (each would cost ~100 bytes).
 */
const kConnection = Symbol('rfc6455.connection');

type ConnectionSocket = Duplex & { [kConnection]?: WebSocket };

interface Waiter {
  resolve(message: Message): void;
  reject(error: WebSocketDisconnect): void;
}

/**
 * A server-side WebSocket, handed to a route handler before the handshake is answered: read the
 * request, then `accept()` it (or throw to refuse it), then `receive`/`send` until it closes.
 */
/** Events a connection emits, for code coming from `ws` (the async API is the primary one). */
export interface WebSocketEvents {
  /** A message; while a `message` listener exists, messages are emitted instead of queued for receive(). */
  message: [message: Message];
  /** A ping arrived (the pong is already sent). */
  ping: [payload: Buffer];
  pong: [payload: Buffer];
  /** The socket closed: the peer's close code (or ours after a violation), 1006 without a close frame. */
  close: [code: number, reason: string];
}

export class WebSocket implements ProtocolSink, AsyncIterable<Message> {
  readonly url: string;
  readonly path: string;
  /** Path parameters of the route, percent-decoded (`/items/{item_id}/ws` → `{ item_id }`). */
  readonly params: PathParams;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
  /** Subprotocols the client offered, in its order of preference. */
  readonly subprotocols: readonly string[];
  /** The subprotocol accepted, or null. */
  subprotocol: string | null = null;
  /** The subprotocol `accept()` uses when given none: the server's pick from its `subprotocols` option. */
  private defaultSubprotocol: string | null = null;

  private readonly socket: ConnectionSocket;
  /** The validated request until accept() answers it. */
  private upgrade: UpgradeRequest | null;
  private readonly settings: ConnectionSettings;
  /** The server's set of connections, left when the socket closes. */
  private readonly registry: Set<WebSocket> | null;
  private parsedQuery: URLSearchParams | null = null;
  private parsedCookies: Readonly<Record<string, string>> | null = null;
  private handshakeTimer: NodeJS.Timeout | null;
  private head: Buffer | null;
  private protocol: Protocol | null = null;
  private refused = false;
  private socketClosed = false;
  /** The peer's FIN arrived before accept(): replayed once accept() starts reading. */
  private peerEnded = false;
  private final: CloseEvent | null = null;
  private waiters: Waiter[] = [];
  private drainWaiters: (() => void)[] | null = null;
  private closedPromise: Promise<void> | null = null;
  private resolveClosed: (() => void) | null = null;
  private corked = false;
  private paused = false;
  private closeTimer: NodeJS.Timeout | null = null;
  private replyTimer: NodeJS.Timeout | null = null;
  /** Created on the first listener: an idle connection without listeners carries no emitter. */
  private emitter: EventEmitter | null = null;
  /** @internal Set by the server's heartbeat: a ping is out and no pong has come back yet. */
  awaitingPong = false;

  /**
   * @internal True while reading is paused because the handler is behind (inbound backpressure):
   * pongs cannot be read then, so the heartbeat does not judge the connection.
   */
  get readPaused(): boolean {
    return this.paused;
  }

  /** @internal Made by the server for each upgrade request that matched a route. */
  constructor(
    socket: Duplex,
    head: Buffer,
    upgrade: UpgradeRequest,
    info: RequestInfo,
    settings: ConnectionSettings,
    registry: Set<WebSocket> | null = null,
  ) {
    this.socket = socket;
    this.head = head.length > 0 ? head : null;
    this.upgrade = upgrade;
    this.settings = settings;
    this.registry = registry;
    this.url = info.url;
    this.path = info.path;
    this.params = info.params;
    this.headers = info.headers;
    this.remoteAddress = info.remoteAddress;
    this.subprotocols = upgrade.protocols;
    this.socket[kConnection] = this;
    registry?.add(this);
    socket.on('close', WebSocket.onSocketClose);
    // A reset or a write after the peer went away is an ordinary disconnect (1006), reported through
    // 'close'; without a listener Node would throw it and crash the process.
    socket.on('error', WebSocket.onSocketError);
    // Listened to from the start: Node can emit 'end' before accept() (a client that left while the
    // handler was deciding), and a FIN missed here would leave the connection half-open forever.
    socket.on('end', WebSocket.onSocketEnd);
    this.handshakeTimer = setTimeout(WebSocket.handshakeExpired, settings.handshakeTimeout, this);
  }

  /** Adds an event listener (see WebSocketEvents). */
  on<E extends keyof WebSocketEvents>(event: E, listener: (...args: WebSocketEvents[E]) => void): this {
    (this.emitter ??= new EventEmitter()).on(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Adds a listener called at most once. */
  once<E extends keyof WebSocketEvents>(event: E, listener: (...args: WebSocketEvents[E]) => void): this {
    (this.emitter ??= new EventEmitter()).once(event, listener as (...args: unknown[]) => void);
    return this;
  }

  /** Removes a listener. */
  off<E extends keyof WebSocketEvents>(event: E, listener: (...args: WebSocketEvents[E]) => void): this {
    this.emitter?.off(event, listener as (...args: unknown[]) => void);
    return this;
  }

  private emit<E extends keyof WebSocketEvents>(event: E, ...args: WebSocketEvents[E]): void {
    this.emitter?.emit(event, ...args);
  }

  /** The query string's parameters. */
  get query(): URLSearchParams {
    return (this.parsedQuery ??= queryOf(this.url));
  }

  /** The request's cookies (RFC 6265 §5.4). */
  get cookies(): Readonly<Record<string, string>> {
    const header = this.headers.cookie;
    return (this.parsedCookies ??= parseCookies(typeof header === 'string' ? header : undefined));
  }

  /** The connection's state (see ConnectionState). */
  get state(): ConnectionState {
    if (this.socketClosed) return 'closed';
    if (this.protocol === null) return this.refused ? 'closed' : 'connecting';
    const state = this.protocol.state;
    return state === 'open' ? 'open' : state === 'closing' ? 'closing' : 'closed';
  }

  /** Bytes written to the socket but not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  // ---------------------------------------------------------------- handshake

  /**
   * Accepts the handshake: writes the 101 response (RFC 6455 §4.2.2) and starts reading frames. Throws
   * TypeError for a subprotocol the client did not offer or an invalid header, and WebSocketDisconnect
   * when the client has already gone.
   */
  accept(options: AcceptOptions = {}): Promise<void> {
    if (this.protocol !== null) return Promise.reject(new TypeError('the connection was already accepted'));
    if (this.refused || this.socketClosed) {
      return Promise.reject(new WebSocketDisconnect(CloseCode.AbnormalClosure, 'the client went away before accept'));
    }
    let response: string;
    try {
      const subprotocol = options.subprotocol === undefined ? this.defaultSubprotocol : options.subprotocol;
      response = acceptResponse(this.upgrade!, { protocol: subprotocol, headers: options.headers });
      this.subprotocol = subprotocol;
    } catch (error) {
      return Promise.reject(error);
    }
    this.upgrade = null;
    this.clearHandshakeTimer();
    const settings = this.settings;
    this.protocol = new Protocol(this, {
      role: 'server',
      maxMessageSize: settings.maxMessageSize,
      maxFrameSize: settings.maxFrameSize,
    });
    const socket = this.socket;
    socket.write(response);
    if (settings.idleTimeout > 0 && 'setTimeout' in socket) {
      (socket as Duplex & { setTimeout(ms: number): void }).setTimeout(settings.idleTimeout);
      socket.on('timeout', WebSocket.onSocketTimeout);
    }
    socket.on('data', WebSocket.onSocketData);
    const head = this.head;
    this.head = null;
    if (head !== null) this.handleData(head);
    if (this.peerEnded) this.handleEnd();
    return RESOLVED;
  }

  /**
   * @internal Refuses the handshake with an HTTP error response and closes the socket. Used by the
   * server for refusals before accept; handlers refuse by throwing.
   */
  refuse(error: HandshakeError): void {
    if (this.protocol !== null || this.refused) return;
    this.refused = true;
    this.upgrade = null;
    this.clearHandshakeTimer();
    if (this.socketClosed) return;
    this.socket.end(refusalResponse(error));
    this.armCloseTimer();
  }

  /** @internal The server's choice among the offered subprotocols, used when accept() names none. */
  preferSubprotocol(subprotocol: string | null): void {
    this.defaultSubprotocol = subprotocol;
  }

  // ---------------------------------------------------------------- receiving

  /**
   * The next message. Throws WebSocketDisconnect with the peer's code once the connection is closed:
   * 1005 when its close frame had no code, 1006 when TCP ended without one, or the code this side
   * failed the connection with (1002, 1007, 1009...) after a protocol violation.
   */
  receive(): Promise<Message> {
    const protocol = this.protocol;
    if (protocol === null) {
      return Promise.reject(
        this.refused || this.socketClosed
          ? new WebSocketDisconnect(CloseCode.AbnormalClosure)
          : new TypeError('accept() the connection before receiving'),
      );
    }
    if (this.waiters.length === 0) {
      const event = this.pull();
      if (event !== undefined) {
        return event.type === 'close' ? Promise.reject(disconnectFor(event)) : Promise.resolve(event);
      }
    }
    if (this.final !== null) return Promise.reject(disconnectFor(this.final));
    // The handler has answered everything received so far and waits: flush its replies now rather
    // than at the end of the event-loop turn (one writev for the whole read, no added latency).
    this.uncork();
    return new Promise<Message>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
    });
  }

  /** The next message as text; a binary message raises UnsupportedData (1003) (RFC 6455 §7.4.1). */
  async receiveText(): Promise<string> {
    const message = await this.receive();
    if (message.binary) throw new UnsupportedData('expected a text message');
    return message.text;
  }

  /** The next message as bytes; a text message raises UnsupportedData (1003). */
  async receiveBytes(): Promise<Buffer> {
    const message = await this.receive();
    if (!message.binary) throw new UnsupportedData('expected a binary message');
    return message.data;
  }

  /** The next message parsed as JSON (text or binary); invalid JSON raises InvalidPayloadData (1007). */
  async receiveJson(): Promise<unknown> {
    const message = await this.receive();
    try {
      return message.json();
    } catch {
      throw new InvalidPayloadData('message is not valid JSON');
    }
  }

  /**
   * Iterates over messages until the connection closes. A normal close (1000, 1001, or a close frame
   * without a code) ends the loop; any other close throws WebSocketDisconnect.
   * (A plain iterator rather than an async generator: one promise per message, not several.)
   */
  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return new MessageIterator(this);
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends a message: a string as text, bytes as binary, a received Message unchanged. Resolves at once
   * while the socket's buffer is under its high-water mark, else when it drains (backpressure).
   * Rejects with WebSocketDisconnect once a close frame was sent or the connection is gone.
   */
  send(data: string | Uint8Array | Message): Promise<void> {
    const protocol = this.protocol;
    if (protocol === null) return Promise.reject(this.notOpenError());
    try {
      if (typeof data === 'string') protocol.sendText(data);
      else if (data instanceof Message) protocol.sendMessage(data);
      else protocol.sendBinary(data);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.afterWrite();
  }

  sendText(text: string): Promise<void> {
    return this.send(String(text));
  }

  sendBytes(data: Uint8Array): Promise<void> {
    return this.send(data);
  }

  /** Sends `value` as a JSON text message. */
  sendJson(value: unknown): Promise<void> {
    const text = JSON.stringify(value);
    if (text === undefined) return Promise.reject(new TypeError('value cannot be represented as JSON'));
    return this.send(text);
  }

  /** @internal Sends a message encoded once for many connections (see WebSocketServer.broadcast). */
  sendPrepared(prepared: PreparedMessage): boolean {
    const protocol = this.protocol;
    if (protocol === null || protocol.state !== 'open') return false;
    protocol.sendPrepared(prepared);
    return true;
  }

  /** Sends a ping (payload at most 125 bytes); the pong arrives as a `pong` event. */
  ping(payload?: Uint8Array): Promise<void> {
    const protocol = this.protocol;
    if (protocol === null) return Promise.reject(this.notOpenError());
    try {
      protocol.ping(payload);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.afterWrite();
  }

  /**
   * Closes the connection: sends a close frame with `code` and `reason` (RangeError/TypeError for ones
   * that may not be sent) and resolves once the closing handshake is over or timed out and the socket
   * is closed. Before accept, refuses the handshake with 403 instead (as Starlette does).
   */
  close(code: number = CloseCode.NormalClosure, reason = ''): Promise<void> {
    const protocol = this.protocol;
    if (protocol === null) {
      if (!this.refused) this.refuse(new HandshakeError(403, reason));
      return this.whenClosed();
    }
    if (this.socketClosed) return RESOLVED;
    try {
      protocol.close(code, reason);
    } catch (error) {
      return Promise.reject(error);
    }
    this.uncork();
    this.armCloseTimer();
    return this.whenClosed();
  }

  /** Resolves when the socket is closed. */
  whenClosed(): Promise<void> {
    if (this.socketClosed) return RESOLVED;
    return (this.closedPromise ??= new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
    }));
  }

  /** Drops the TCP connection at once, without a closing handshake. */
  terminate(): void {
    this.socket.destroy();
  }

  // ---------------------------------------------------------------- ProtocolSink (called by the protocol)

  /** @internal */
  writeFrame(header: Buffer, payload: Uint8Array | null): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (payload === null) {
      socket.write(header);
    } else if (this.corked) {
      socket.write(header);
      socket.write(payload);
    } else {
      socket.cork();
      socket.write(header);
      socket.write(payload);
      socket.uncork();
    }
  }

  /** @internal A forwarded message received in several pieces: written as one writev, never joined. */
  writeFrameSegments(header: Buffer, segments: readonly Uint8Array[]): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    const corked = this.corked;
    if (!corked) socket.cork();
    socket.write(header);
    for (const segment of segments) socket.write(segment);
    if (!corked) socket.uncork();
  }

  /** @internal RFC 6455 §7.1.1: the server closes the TCP connection first once the close handshake is done. */
  endTransport(): void {
    this.uncork();
    if (!this.socket.destroyed) this.socket.end();
    this.armCloseTimer();
  }

  /** @internal The pong has already been written by the protocol. */
  pingReceived(payload: Buffer): void {
    this.emit('ping', payload);
  }

  /** @internal */
  pongReceived(payload: Buffer): void {
    this.awaitingPong = false;
    this.emit('pong', payload);
  }

  // ---------------------------------------------------------------- internals

  // Socket listeners and timer callbacks are static (see kConnection): no per-connection closures.

  private static onSocketData(this: ConnectionSocket, chunk: Buffer): void {
    this[kConnection]!.handleData(chunk);
  }

  private static onSocketEnd(this: ConnectionSocket): void {
    this[kConnection]!.handleEnd();
  }

  private static onSocketClose(this: ConnectionSocket): void {
    this[kConnection]!.handleClose();
  }

  private static onSocketError(this: ConnectionSocket): void {
    this.destroy();
  }

  private static onSocketTimeout(this: ConnectionSocket): void {
    this[kConnection]!.handleIdle();
  }

  private static onSocketDrain(this: ConnectionSocket): void {
    this[kConnection]!.handleDrain();
  }

  private static uncorkAfterTurn(ws: WebSocket): void {
    ws.uncork();
  }

  private static replyGraceExpired(ws: WebSocket): void {
    ws.handleReplyGrace();
  }

  private static handshakeExpired(ws: WebSocket): void {
    ws.handshakeTimer = null;
    if (ws.state === 'connecting') ws.refuse(new HandshakeError(408, 'handshake timed out'));
  }

  private static destroySocket(socket: Duplex): void {
    socket.destroy();
  }

  private notOpenError(): Error {
    return this.refused || this.socketClosed
      ? new WebSocketDisconnect(this.final?.code ?? CloseCode.AbnormalClosure, this.final?.reason ?? '')
      : new TypeError('accept() the connection before sending');
  }

  private afterWrite(): Promise<void> {
    if (!this.socket.writableNeedDrain) return RESOLVED;
    return new Promise<void>((resolve) => {
      if (this.drainWaiters === null) {
        this.drainWaiters = [];
        this.socket.once('drain', WebSocket.onSocketDrain);
      }
      this.drainWaiters.push(resolve);
    });
  }

  private handleDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    if (waiters !== null) for (const resolve of waiters) resolve();
  }

  /** Pulls one event from the protocol, remembering the final one and resuming a paused socket. */
  private pull(): Message | CloseEvent | undefined {
    const protocol = this.protocol!;
    const event = protocol.nextEvent();
    if (event === undefined) return undefined;
    if (event.type === 'close') {
      this.settle(event);
    } else if (this.paused && protocol.queuedBytes <= this.settings.maxQueuedBytes) {
      this.paused = false;
      this.socket.resume();
    }
    return event;
  }

  private settle(event: CloseEvent): void {
    if (this.final !== null) return;
    this.final = event;
    this.clearReplyTimer();
    this.uncork();
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(disconnectFor(event));
  }

  private handleData(chunk: Buffer): void {
    const protocol = this.protocol!;
    protocol.receive(chunk);
    // A read that brought several messages: coalesce the replies (written from microtasks) into one
    // writev, flushed when the handler next waits in receive() or at the end of this event-loop turn.
    // A single message is answered with a direct write: no added latency.
    if (!this.corked && protocol.queuedMessages > 1) {
      this.corked = true;
      this.socket.cork();
      setImmediate(WebSocket.uncorkAfterTurn, this);
    }
    this.dispatch();
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  /** Hands queued events to waiting receivers or event listeners; applies inbound backpressure. */
  private dispatch(): void {
    const protocol = this.protocol!;
    if (this.emitter !== null && this.emitter.listenerCount('message') > 0) {
      let event = this.pull();
      while (event !== undefined && event.type !== 'close') {
        this.emit('message', event);
        event = this.pull();
      }
    } else {
      while (this.waiters.length > 0 && protocol.hasEvent) {
        const event = this.pull()!;
        if (event.type === 'close') break; // settle() rejected every waiter
        this.waiters.shift()!.resolve(event);
      }
    }
    if (protocol.closePending) {
      // The close is answered when the handler receives it, after the messages before it (so their
      // replies can still be sent), or after a short grace if the handler is not receiving.
      this.replyTimer ??= setTimeout(WebSocket.replyGraceExpired, CLOSE_REPLY_GRACE, this);
    }
    // Inbound backpressure: stop reading while the handler is behind (FIELD-NOTES 1).
    if (!this.paused && protocol.queuedBytes > this.settings.maxQueuedBytes) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private handleReplyGrace(): void {
    this.replyTimer = null;
    // Messages already received stay readable for a handler that gets to them later.
    this.protocol!.answerClose();
    this.uncork();
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer !== null) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = null;
    }
  }

  private clearReplyTimer(): void {
    if (this.replyTimer !== null) {
      clearTimeout(this.replyTimer);
      this.replyTimer = null;
    }
  }

  private handleEnd(): void {
    if (this.protocol === null) {
      this.peerEnded = true;
      return;
    }
    this.protocol.receiveEnd();
    this.dispatch();
    // The peer will send nothing more; finish our side too.
    if (!this.socket.destroyed) this.socket.end();
    this.armCloseTimer();
  }

  private handleIdle(): void {
    // Paused for backpressure, the peer is waiting on us, not idle: let the timer run again.
    if (this.paused) return;
    if (this.state === 'open') {
      void this.close(CloseCode.GoingAway, 'idle timeout').catch(() => undefined);
    } else {
      this.socket.destroy();
    }
  }

  /** Bounds the closing handshake and the wait for the peer's TCP close (RFC 6455 §7.1.1). */
  private armCloseTimer(): void {
    if (this.closeTimer !== null || this.socketClosed) return;
    this.closeTimer = setTimeout(WebSocket.destroySocket, this.settings.closeTimeout, this.socket);
  }

  private handleClose(): void {
    this.socketClosed = true;
    this.registry?.delete(this);
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.clearReplyTimer();
    this.clearHandshakeTimer();
    const protocol = this.protocol;
    if (protocol !== null) {
      protocol.receiveEnd();
      // Messages already received stay readable; waiters are woken with them, then the close.
      this.dispatch();
      const closeEvent = protocol.closeEvent;
      if (this.final === null && closeEvent !== null) this.settle(closeEvent);
    }
    this.handleDrain();
    const final = this.final;
    this.emit('close', final?.code ?? CloseCode.AbnormalClosure, final?.reason ?? '');
    this.resolveClosed?.();
  }
}

/** `for await` over a connection: one promise per message, no closures. */
class MessageIterator implements AsyncIterator<Message> {
  private readonly ws: WebSocket;

  constructor(ws: WebSocket) {
    this.ws = ws;
  }

  next(): Promise<IteratorResult<Message>> {
    return this.ws.receive().then(iteratorResult, endOnNormalClose);
  }

  return(): Promise<IteratorResult<Message>> {
    return Promise.resolve(ITERATOR_DONE);
  }
}

const ITERATOR_DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

function iteratorResult(message: Message): IteratorYieldResult<Message> {
  return { done: false, value: message };
}

function endOnNormalClose(error: unknown): IteratorReturnResult<undefined> {
  if (error instanceof WebSocketDisconnect && NORMAL_CLOSE_CODES.has(error.code)) return ITERATOR_DONE;
  throw error;
}

function disconnectFor(event: CloseEvent): WebSocketDisconnect {
  return new WebSocketDisconnect(event.code, event.reason);
}

