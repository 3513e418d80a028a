/**
 * The public connection, the same on both sides: a route handler gets one with what the upgrade
 * request said and accepts or refuses it; `connect()` resolves with one once the server accepted.
 * Both have the async API (`receive`, `for await`, `send`, `close`) with `ws`-style events beside it.
 * Everything that touches the socket (backpressure, timers, writing frames) is the internal
 * SocketDriver's.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { CloseCode, Opcode } from './constants.ts';
import { HandshakeError, InvalidPayloadData, UnsupportedData, WebSocketDisconnect } from './errors.ts';
import { acceptResponse, type AcceptOptions, type HandshakeResponse, type UpgradeRequest } from './handshake.ts';
import type { ConnectionSettings } from './options.ts';
import { PerMessageDeflate } from './protocol/deflate-codec.ts';
import type { PreparedMessage } from './protocol/frame-encoder.ts';
import { Message } from './protocol/message.ts';
import { negotiateDeflate } from './protocol/permessage-deflate.ts';
import type { CloseEvent } from './protocol/protocol.ts';
import { parseCookies, queryOf } from './request-info.ts';
import type { PathParams } from './routing.ts';
import { SocketDriver, type ConnectionState, type Delivery } from './socket-driver.ts';
import type { PublishResult, TopicHub } from './topics.ts';

export type { ConnectionState };

/** What the server hands a connection of its upgrade request (query and cookies are parsed on demand). */
export interface RequestInfo {
  readonly url: string;
  readonly path: string;
  readonly params: PathParams;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
}

/** Events a connection emits, for code coming from `ws` (the async API is the primary one). */
export interface WebSocketEvents {
  /** A message; while a `message` listener exists, messages are emitted instead of queued for receive(). */
  message: [message: Message];
  /** A ping arrived (its pong is sent once the read it came in has been parsed). */
  ping: [payload: Buffer];
  pong: [payload: Buffer];
  /** The socket closed: the code and reason of the first close frame (see WebSocketDisconnect), 1006 without one. */
  close: [code: number, reason: string];
}

/** Close codes that end `for await` quietly: the peer finished normally (RFC 6455 §7.4.1). */
const NORMAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.NormalClosure,
  CloseCode.GoingAway,
  CloseCode.NoStatusReceived,
]);

const RESOLVED: Promise<void> = Promise.resolve();

/** What `connect()` agreed with the server; the client connection starts open with it (not exported from the package). */
export interface ClientAgreed {
  /** The subprotocols offered. */
  readonly subprotocols: readonly string[];
  readonly subprotocol: string | null;
  readonly extensions: string;
  readonly deflate: PerMessageDeflate | null;
}

/**
 * A pending receive(), or a `for await` loop's pending next(): the loop's promise resolves with the
 * iterator result itself, and with "done" on a normal close, so neither an extra promise per message
 * nor an error object for the normal end is made.
 */
interface Waiter {
  resolve(value: Message | IteratorResult<Message>): void;
  reject(error: WebSocketDisconnect): void;
  readonly iterating: boolean;
}

/**
 * A WebSocket connection. On the server, handed to a route handler before the handshake is answered:
 * read the request, then `accept()` it (or throw to refuse it), then `receive`/`send` until it closes.
 * On the client, made by `connect()` already open: `receive`/`send` until it closes.
 */
export class WebSocket implements AsyncIterable<Message> {
  /** Server: the request target (path and query). Client: the URL connected to. */
  readonly url: string;
  readonly path: string;
  /** Path parameters of the route, percent-decoded (`/items/{item_id}/ws` → `{ item_id }`); client: none. */
  readonly params: PathParams;
  /** Server: the upgrade request's headers. Client: the server's 101 response headers. */
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string | undefined;
  /** Subprotocols the client offered, in its order of preference. */
  readonly subprotocols: readonly string[];
  /** The subprotocol accepted, or null. */
  subprotocol: string | null = null;
  /**
   * The extensions accepted, as the 101 response's Sec-WebSocket-Extensions stated them
   * (`permessage-deflate; server_no_context_takeover`), or '' for none.
   */
  extensions = '';
  /** The subprotocol `accept()` uses when given none: the server's pick from its `subprotocols` option. */
  private defaultSubprotocol: string | null = null;
  /** An ES private field, not a TypeScript one: the socket and its frame writer are unreachable from user code. */
  readonly #driver: SocketDriver;
  private readonly settings: ConnectionSettings;
  /** The validated request until accept() answers it. */
  private upgrade: UpgradeRequest | null;
  private parsedQuery: URLSearchParams | null = null;
  private parsedCookies: Readonly<Record<string, string>> | null = null;
  /** The connection's close event once the handler has been told (or the socket closed). */
  private closeEvent: CloseEvent | null = null;
  /** The oldest pending receive (nearly always the only one: a handler waits in one place). */
  private waiter: Waiter | null = null;
  /** Receives made while another was pending, in order (made on demand: an idle connection has none). */
  private laterWaiters: Waiter[] | null = null;
  private closedPromise: Promise<void> | null = null;
  private resolveClosed: (() => void) | null = null;
  /** Created on the first listener: an idle connection without listeners carries no emitter. */
  private emitter: EventEmitter | null = null;

  /**
   * Made by the server for each upgrade request that matched a route (`upgrade`), and by `connect()`
   * once the server's 101 is verified (`client`); not for application code.
   */
  constructor(
    socket: Duplex,
    head: Buffer,
    upgrade: UpgradeRequest | null,
    info: RequestInfo,
    settings: ConnectionSettings,
    client: ClientAgreed | null = null,
  ) {
    this.url = info.url;
    this.path = info.path;
    this.params = info.params;
    this.headers = info.headers;
    this.remoteAddress = info.remoteAddress;
    this.subprotocols = client === null ? upgrade!.protocols : client.subprotocols;
    this.upgrade = upgrade;
    this.settings = settings;
    // The driver calls back the @internal methods below (DriverOwner, structurally: the public type
    // does not implement it).
    // An HTTP/2 extended CONNECT has no Sec-WebSocket-Key (RFC 8441 §5): its transport is a stream.
    const http2 = upgrade !== null && upgrade.key === null;
    this.#driver = new SocketDriver(socket, head, settings, this, client === null ? 'server' : 'client', http2);
    if (client !== null) {
      this.subprotocol = client.subprotocol;
      this.extensions = client.extensions;
      this.#driver.start(null, client.deflate);
    }
  }

  /** Adds an event listener (see WebSocketEvents). */
  on<E extends keyof WebSocketEvents>(event: E, listener: (...args: WebSocketEvents[E]) => void): this {
    (this.emitter ??= new EventEmitter()).on(event, listener as (...args: unknown[]) => void);
    if (event === 'message') this.dispatchQueuedSoon();
    return this;
  }

  /** Adds a listener called at most once. */
  once<E extends keyof WebSocketEvents>(event: E, listener: (...args: WebSocketEvents[E]) => void): this {
    (this.emitter ??= new EventEmitter()).once(event, listener as (...args: unknown[]) => void);
    if (event === 'message') this.dispatchQueuedSoon();
    return this;
  }

  /**
   * Messages that arrived before the first `message` listener (a client's come with the 101) are
   * emitted on the next tick, after the code adding listeners has run, not left until the next read.
   */
  private dispatchQueuedSoon(): void {
    if (this.#driver.protocol?.hasEvent === true) process.nextTick(dispatchQueued, this);
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

  /**
   * The HTTP version the WebSocket runs over, as Node's `IncomingMessage.httpVersion` names it: `1.1`
   * for an upgraded connection, `2.0` for an HTTP/2 stream (RFC 8441).
   */
  get httpVersion(): '1.1' | '2.0' {
    return this.#driver.http2 ? '2.0' : '1.1';
  }

  /** The connection's state (see ConnectionState). */
  get state(): ConnectionState {
    return this.#driver.state;
  }

  /** Bytes written to the socket but not yet handed to the operating system. */
  get bufferedAmount(): number {
    return this.#driver.bufferedAmount;
  }

  // ---------------------------------------------------------------- handshake

  /**
   * Accepts the handshake: writes the 101 response (RFC 6455 §4.2.2) and starts reading frames. Throws
   * TypeError for a subprotocol the client did not offer or an invalid header, and WebSocketDisconnect
   * when the client has already gone.
   */
  accept(options: AcceptOptions = {}): Promise<void> {
    const driver = this.#driver;
    if (driver.protocol !== null) return Promise.reject(new TypeError('the connection was already accepted'));
    if (!driver.answerable) {
      return Promise.reject(new WebSocketDisconnect(CloseCode.AbnormalClosure, 'the client went away before accept', 'transport'));
    }
    let response: HandshakeResponse;
    const subprotocol = options.subprotocol === undefined ? this.defaultSubprotocol : options.subprotocol;
    const upgrade = this.upgrade!;
    const deflateSettings = this.settings.deflate;
    const agreement = deflateSettings === null ? null : negotiateDeflate(upgrade.extensions, deflateSettings);
    try {
      response = acceptResponse(upgrade, { subprotocol, headers: options.headers }, agreement?.response);
    } catch (error) {
      return Promise.reject(error);
    }
    this.subprotocol = subprotocol;
    this.upgrade = null;
    let deflate: PerMessageDeflate | null = null;
    if (agreement !== null) {
      this.extensions = agreement.response;
      deflate = new PerMessageDeflate(agreement, deflateSettings!, 'server');
    }
    driver.start(response, deflate);
    return RESOLVED;
  }

  /** @internal Refuses the handshake with an HTTP error (the server's refusals; handlers refuse by throwing). */
  refuse(error: HandshakeError): void {
    this.upgrade = null;
    this.#driver.refuse(error);
  }

  /** @internal The server's choice among the offered subprotocols, used when accept() names none. */
  preferSubprotocol(subprotocol: string | null): void {
    this.defaultSubprotocol = subprotocol;
  }

  // ---------------------------------------------------------------- receiving

  /**
   * The next message. Throws WebSocketDisconnect once the connection is closed, with the first close
   * frame's code and who sent it: the peer's code (1005 when its frame had none), this side's code
   * (1002, 1007, 1009... after a violation by the peer), or 1006 when TCP ended without a close frame.
   */
  receive(): Promise<Message> {
    return this.nextEvent(false) as Promise<Message>;
  }

  /** @internal The iterator's next(): an iterator result, "done" on a normal close (see Waiter). */
  nextResult(): Promise<IteratorResult<Message>> {
    return this.nextEvent(true) as Promise<IteratorResult<Message>>;
  }

  private nextEvent(iterating: boolean): Promise<Message | IteratorResult<Message>> {
    const driver = this.#driver;
    if (driver.protocol === null) {
      return Promise.reject(
        driver.answerable ? new TypeError('accept() the connection before receiving') : this.disconnect(null),
      );
    }
    if (this.waiter === null) {
      const event = this.pull();
      if (event !== undefined) {
        if (event.type !== 'close') return Promise.resolve(iterating ? { done: false, value: event } : event);
        return this.closedResult(event, iterating);
      }
    }
    if (this.closeEvent !== null) return this.closedResult(this.closeEvent, iterating);
    // The handler has answered everything received so far and waits: flush its replies now rather
    // than at the end of the event-loop turn (one writev for the whole read, no added latency).
    driver.flush();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, iterating };
      if (this.waiter === null) this.waiter = waiter;
      else (this.laterWaiters ??= []).push(waiter);
    });
  }

  /** What a receive gets once the connection is closed. */
  private closedResult(event: CloseEvent, iterating: boolean): Promise<never> | Promise<IteratorResult<Message>> {
    if (iterating && NORMAL_CLOSE_CODES.has(event.code)) return DONE;
    return Promise.reject(this.disconnect(event));
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
   * Sends a message: a string as text, bytes as binary, a received Message unchanged, a
   * PreparedMessage as encoded. Resolves at once while the socket's buffer is under its high-water
   * mark, else when it drains (backpressure). Rejects with WebSocketDisconnect once a close frame was
   * sent or the connection is gone, and with SlowConsumer (1008) when the output is over
   * `maxBufferedAmount` and another send is already waiting for it to drain. A rejection nobody
   * awaits is not an unhandled rejection: fire-and-forget sending is safe.
   */
  send(data: string | Uint8Array | Message | PreparedMessage): Promise<void> {
    return this.#driver.send(data);
  }

  sendText(text: string): Promise<void> {
    return this.#driver.send(String(text));
  }

  sendBytes(data: Uint8Array): Promise<void> {
    return this.#driver.send(data);
  }

  /**
   * Sends one message in fragments (RFC 6455 §5.4), one frame per item of `fragments` (sync or async
   * iterable): all strings make a text message, all byte arrays a binary one. Each frame waits for
   * room in the socket's buffer before the next is read, so a message of unknown length streams with
   * bounded memory. Other messages cannot be sent until it is finished (pings and the close can). An
   * empty iterable or a mix of strings and bytes rejects with TypeError; when the mix is found after
   * the first frame went out, the connection is closed with 1011, as the message cannot be finished.
   */
  async sendFragments(fragments: Iterable<string | Uint8Array> | AsyncIterable<string | Uint8Array>): Promise<void> {
    const driver = this.#driver;
    let opcode = 0;
    let started = false;
    // Each frame is written when the next item arrives: only then is it known not to be the last.
    let held: Uint8Array | null = null;
    try {
      for await (const fragment of fragments) {
        const type = typeof fragment === 'string' ? Opcode.Text : fragment instanceof Uint8Array ? Opcode.Binary : 0;
        if (type === 0 || (opcode !== 0 && type !== opcode)) {
          throw new TypeError('the fragments of one message must be all strings or all byte arrays');
        }
        opcode = type;
        if (held !== null) {
          await driver.sendFragment(started ? Opcode.Continuation : opcode, held, false);
          started = true;
        }
        held = typeof fragment === 'string' ? Buffer.from(fragment, 'utf8') : fragment;
      }
    } catch (error) {
      // RFC 6455 §5.4: once its first frame is out, a message cannot be abandoned; nothing else may be
      // sent before its last frame, so the connection ends.
      if (started) this.close(CloseCode.InternalError).catch(ignore);
      throw error;
    }
    if (held === null) throw new TypeError('sendFragments needs at least one fragment');
    await driver.sendFragment(started ? Opcode.Continuation : opcode, held, true);
  }

  /** Sends `value` as a JSON text message. */
  sendJson(value: unknown): Promise<void> {
    const text = JSON.stringify(value);
    if (text === undefined) return Promise.reject(new TypeError('value cannot be represented as JSON'));
    return this.#driver.send(text);
  }

  /** Sends a ping (payload at most 125 bytes); the pong arrives as a `pong` event. */
  ping(payload?: Uint8Array): Promise<void> {
    return this.#driver.ping(payload);
  }

  /**
   * Closes the connection: sends a close frame with `code` and `reason` (RangeError/TypeError for ones
   * that may not be sent) and resolves once the closing handshake is over or timed out and the socket
   * is closed. Before accept, refuses the handshake with 403 instead (as Starlette does).
   */
  close(code: number = CloseCode.NormalClosure, reason = ''): Promise<void> {
    const driver = this.#driver;
    if (driver.protocol === null) {
      this.refuse(new HandshakeError(403, reason));
      return this.whenClosed();
    }
    if (driver.socketClosed) return RESOLVED;
    try {
      driver.close(code, reason);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.whenClosed();
  }

  /** Resolves when the socket is closed. */
  whenClosed(): Promise<void> {
    if (this.#driver.socketClosed) return RESOLVED;
    return (this.closedPromise ??= new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
    }));
  }

  /** Drops the TCP connection at once, without a closing handshake (on HTTP/2: resets the stream with CANCEL). */
  terminate(): void {
    this.#driver.terminate();
  }

  // ---------------------------------------------------------------- topics (server connections)

  /**
   * Subscribes this connection to `topic` (see WebSocketServer.publish): true if it was not subscribed
   * yet. Subscriptions end when the connection closes; a closed connection cannot subscribe (false).
   * TypeError on a client connection, or for a topic that is not a non-empty string.
   */
  subscribe(topic: string): boolean {
    return this.topicHub().subscribe(this, topic);
  }

  /** Ends a subscription: true if this connection was subscribed to `topic`. */
  unsubscribe(topic: string): boolean {
    return this.topicHub().unsubscribe(this, topic);
  }

  /** The topics this connection is subscribed to, in the order subscribed (empty on a client). */
  get topics(): readonly string[] {
    return this.settings.topics?.topicsOf(this) ?? [];
  }

  /**
   * Publishes to `topic` as `server.publish()` does, skipping this connection (it need not be
   * subscribed itself).
   */
  publish(topic: string, data: string | Uint8Array | PreparedMessage): PublishResult {
    return this.topicHub().publish(topic, data, this);
  }

  private topicHub(): TopicHub {
    const hub = this.settings.topics;
    if (hub === null) throw new TypeError('topics belong to server connections; a client connection has none');
    return hub;
  }

  /** @internal A message encoded once for many connections (see WebSocketServer.broadcast). */
  deliver(prepared: PreparedMessage): Delivery {
    return this.#driver.deliver(prepared);
  }

  /** @internal One tick of the server's heartbeat. */
  beat(): void {
    this.#driver.beat();
  }

  // ---------------------------------------------------------------- called by the driver (DriverOwner)

  /** @internal Hands queued events to waiting receivers or `message` listeners. */
  dispatchEvents(): void {
    const driver = this.#driver;
    if (this.emitter !== null && this.emitter.listenerCount('message') > 0) {
      let event = this.pull();
      while (event !== undefined && event.type !== 'close') {
        this.emit('message', event);
        event = this.pull();
      }
    } else {
      const protocol = driver.protocol!;
      let waiter = this.waiter;
      while (waiter !== null && protocol.hasEvent) {
        const event = this.pull()!;
        if (event.type === 'close') break; // settle() ended every waiter
        const later = this.laterWaiters;
        this.waiter = later === null || later.length === 0 ? null : later.shift()!;
        waiter.resolve(waiter.iterating ? { done: false, value: event } : event);
        waiter = this.waiter;
      }
    }
  }

  /** @internal An error a handler let escape, for the server's onError. */
  reportError(error: unknown): void {
    this.settings.onError(error, this);
  }

  /** @internal */
  emitPing(payload: Buffer): void {
    this.emit('ping', payload);
  }

  /** @internal */
  emitPong(payload: Buffer): void {
    this.emit('pong', payload);
  }

  /** @internal The socket closed: the last events, the close, and the server is told. */
  closeTransport(): void {
    const error = this.#driver.socketError;
    const closeEvent = this.#driver.protocol?.closeEvent ?? null;
    if (this.closeEvent === null && closeEvent !== null) this.settle(closeEvent);
    const final = this.closeEvent;
    if (error !== null) this.settings.onError(error, this);
    this.emit('close', final?.code ?? CloseCode.AbnormalClosure, final?.reason ?? '');
    this.resolveClosed?.();
    this.settings.onClosed(this);
  }

  // ---------------------------------------------------------------- internals

  /** Pulls one event, remembering the close event. */
  private pull(): Message | CloseEvent | undefined {
    const event = this.#driver.pull();
    if (event !== undefined && event.type === 'close') this.settle(event);
    return event;
  }

  private settle(event: CloseEvent): void {
    if (this.closeEvent !== null) return;
    this.closeEvent = event;
    this.#driver.flush();
    const first = this.waiter;
    const later = this.laterWaiters;
    this.waiter = null;
    this.laterWaiters = null;
    if (first !== null) this.endWaiter(first, event);
    if (later !== null) for (const waiter of later) this.endWaiter(waiter, event);
  }

  private endWaiter(waiter: Waiter, event: CloseEvent): void {
    if (waiter.iterating && NORMAL_CLOSE_CODES.has(event.code)) waiter.resolve(ITERATOR_DONE);
    else waiter.reject(this.disconnect(event));
  }

  private disconnect(event: CloseEvent | null): WebSocketDisconnect {
    const socketError = this.#driver.socketError ?? undefined;
    if (event === null) return new WebSocketDisconnect(CloseCode.AbnormalClosure, '', 'transport', socketError);
    const cause = event.initiator === 'transport' ? socketError : undefined;
    return new WebSocketDisconnect(event.code, event.reason, event.initiator, cause);
  }
}

function ignore(): void {}

function dispatchQueued(ws: WebSocket): void {
  if (ws.state !== 'connecting') ws.dispatchEvents();
}

/** `for await` over a connection: one promise per message, no closures. */
class MessageIterator implements AsyncIterator<Message> {
  private readonly ws: WebSocket;

  constructor(ws: WebSocket) {
    this.ws = ws;
  }

  next(): Promise<IteratorResult<Message>> {
    return this.ws.nextResult();
  }

  return(): Promise<IteratorResult<Message>> {
    return DONE;
  }
}

const ITERATOR_DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };
const DONE: Promise<IteratorReturnResult<undefined>> = Promise.resolve(ITERATOR_DONE);
