/**
 * The socket side of one connection, server or client (internal; users see `WebSocket`). It owns the
 * Node socket and its listeners, feeds what it reads to the sans-I/O `Protocol` and writes what the
 * protocol produces (it is the protocol's sink), and it is the one place where the backpressure rules
 * and the timers live:
 *
 * - inbound: received messages queued for the handler above `inboundHighWaterMark` stop reading the
 *   socket; reading resumes once the handler has taken them down to `inboundLowWaterMark`.
 * - outbound: unsent output above `outboundHighWaterMark` stops reading too, so a peer that does not
 *   read gets nothing more parsed (its pings are not answered, its messages not echoed) until Node's
 *   write buffer has drained. A ping that finds the output backed up is answered on the drain, with
 *   only the most recent ping's pong (RFC 6455 §5.5.3), and stops reading until then: a ping flood
 *   costs one pong and Node's own write buffer per connection.
 * - hard limit: a message sent while the output is above `maxBufferedAmount` meets the slow-consumer
 *   policy (skip it, or close with 1008), except one awaited `send()`, held until the drain.
 * - timers: handshake (server), the grace before answering a close the handler is not reading, the
 *   closing handshake and the wait for the peer's TCP close, idle (the socket's timeout), and the
 *   heartbeat's ping (the server's interval or the client's own).
 *
 * The two roles differ only in what the protocol core decides: masking, and which side closes TCP
 * first (the core calls `endTransport` or `awaitTransportEnd`, RFC 6455 §7.1.1).
 *
 * The transport is any Duplex: a TCP or TLS socket after an HTTP/1.1 upgrade, or an HTTP/2 stream
 * after an extended CONNECT (RFC 8441). On a stream, the handshake is answered with a header block
 * instead of HTTP/1.1 bytes, ending our side is END_STREAM instead of a FIN, and `terminate()` resets
 * the stream (RST_STREAM) instead of the connection; HTTP/2 flow control shows up as the stream's
 * `writableLength` and `drain`, so the backpressure rules above hold per stream unchanged.
 */
import { constants as http2Constants, type ServerHttp2Stream } from 'node:http2';
import { addAbortSignal, type Duplex } from 'node:stream';
import { CloseCode } from './constants.ts';
import { HandshakeError, SlowConsumer, WebSocketDisconnect } from './errors.ts';
import { refusalResponse, type HandshakeResponse } from './handshake.ts';
import { serializeResponse } from './http1.ts';
import { refuseOnStream, respondOnStream } from './http2.ts';
import type { ConnectionSettings } from './options.ts';
import type { PerMessageDeflate } from './protocol/deflate-codec.ts';
import { PreparedMessage } from './protocol/frame-encoder.ts';
import { Message } from './protocol/message.ts';
import type { Role } from './protocol/frame-parser.ts';
import { Protocol, type ProtocolEvent, type ProtocolSink } from './protocol/protocol.ts';

/** What the driver tells the connection it drives (the public WebSocket's internal methods). */
export interface DriverOwner {
  /** Received events may be ready to pull (after a read, the end of input or the socket's close). */
  dispatchEvents(): void;
  /** A ping arrived (its pong is written when the read has been parsed). */
  emitPing(payload: Buffer): void;
  emitPong(payload: Buffer): void;
  /** The socket has closed (`socketError` says whether an error closed it). */
  closeTransport(): void;
}

/** `connecting` until accepted or refused; `open`; `closing` after a close frame either way; `closed`. */
export type ConnectionState = 'connecting' | 'open' | 'closing' | 'closed';

/** What a broadcast did with one connection. */
export type Delivery = 'sent' | 'skipped' | 'closed' | 'not-open';

/** How long a peer's close may wait for a handler that is not receiving before it is answered anyway. */
const CLOSE_REPLY_GRACE = 1000;

const RESOLVED: Promise<void> = Promise.resolve();
const EMPTY = Buffer.alloc(0);
/** Destroys a stream with an AbortError (see terminate()). */
const ABORTED = AbortSignal.abort();

// One bit field instead of eight booleans: idle connections are many, and each field costs 8 bytes.
const REFUSED = 1 << 0;
const SOCKET_CLOSED = 1 << 1;
/** The peer's FIN arrived before accept(): replayed once accept() starts reading. */
const PEER_ENDED = 1 << 2;
const CORKED = 1 << 3;
/** Reading stopped: the handler is behind (inbound backpressure). */
const INBOUND_PAUSED = 1 << 4;
/** Reading stopped: the peer is not taking our output (outbound backpressure). */
const OUTPUT_PAUSED = 1 << 5;
/** The heartbeat's ping is out and no pong has come back. */
const AWAITING_PONG = 1 << 6;
const DRAIN_LISTENING = 1 << 7;
/** The client role: frames are masked, and the server closes TCP first (RFC 6455 §5.3, §7.1.1). */
const CLIENT = 1 << 8;
/** The transport is an HTTP/2 stream (RFC 8441): the handshake is answered with a header block. */
const HTTP2 = 1 << 9;
/** This side reset the stream: the AbortError it then emits is ours, not a peer's fault to report. */
const RESET = 1 << 10;

/**
 * The driver a socket belongs to. Socket listeners and timers are module-level functions that find
 * their driver through it, so an idle connection carries no closures (each would cost ~100 bytes).
 */
const kDriver = Symbol('rfc6455.driver');

/**
 * The replies to one read that brought several messages are small frames, many per read; written one
 * by one, each is a `socket.write()` (a request object and a writev entry of its own). They are copied
 * instead into this one batch buffer and written with a single `write()` when the driver flushes. One
 * batch serves the process: it belongs to one connection from its first frame to its flush, which
 * normally happens within the same turn (the handler is waiting again); a connection that finds it
 * taken writes its frames as before. Its size bounds what it adds to a connection's unsent output.
 */
const BATCH_SIZE = 32 * 1024;
/**
 * Frames larger than this are written as they are. Measured (echo, 64 connections × 16 in flight, msgs
 * per server-CPU-second): batching 400-byte messages won (~350 k against ~307 k written one by one),
 * batching 1 KiB messages lost (~277 k against ~354 k): a read's replies then fill much of the batch,
 * the kernel takes less of each write at once, and the batch memory is replaced more often.
 */
const BATCH_FRAME_LIMIT = 512;
let batch = Buffer.allocUnsafeSlow(BATCH_SIZE);
let batchUsed = 0;
let batchOwner: SocketDriver | null = null;

type DriverSocket = Duplex & { [kDriver]?: SocketDriver; bytesWritten?: number };

type SendData = string | Uint8Array | Message | PreparedMessage;

/** The one send() allowed to wait for room while the output is over the hard limit. */
interface HeldSend {
  readonly data: SendData;
  resolve(): void;
  reject(error: unknown): void;
}

function ignore(): void {}

/**
 * A rejected promise that is already marked handled: a fire-and-forget `send()` whose message is
 * refused must not become an unhandled rejection (which ends the process), while an awaiting caller
 * still sees the error.
 */
function rejection(error: unknown): Promise<never> {
  const promise = Promise.reject(error);
  promise.catch(ignore);
  return promise;
}

export class SocketDriver implements ProtocolSink {
  /** Set by start(): the sans-I/O protocol this driver feeds. */
  protocol: Protocol | null = null;
  private readonly socket: DriverSocket;
  private readonly owner: DriverOwner;
  private readonly settings: ConnectionSettings;
  private flags = 0;
  /** Bytes read with the upgrade request, parsed once accept() starts reading. */
  private head: Buffer | null;
  private handshakeTimer: NodeJS.Timeout | null;
  private closeTimer: NodeJS.Timeout | null = null;
  private replyTimer: NodeJS.Timeout | null = null;
  private drainWaiters: (() => void)[] | null = null;
  private held: HeldSend | null = null;
  /** Output progress at the last heartbeat (see beat()): none with output waiting = a stalled peer. */
  private flushedAtBeat = 0;
  /** The socket error that ended the connection, if any (the `cause` of its 1006). */
  socketError: Error | null = null;

  /**
   * A server connection waits for its handler to accept (bounded by `handshakeTimeout`); a client's
   * handshake is over before its driver is made, and `start` follows at once.
   */
  constructor(
    socket: Duplex,
    head: Buffer,
    settings: ConnectionSettings,
    owner: DriverOwner,
    role: Role = 'server',
    http2 = false,
  ) {
    this.socket = socket;
    this.owner = owner;
    this.settings = settings;
    this.flags = (role === 'client' ? CLIENT : 0) | (http2 ? HTTP2 : 0);
    this.head = head.length > 0 ? head : null;
    this.socket[kDriver] = this;
    socket.on('close', onSocketClose);
    // A reset or a write after the peer went away ends the connection (1006) and is reported to
    // onError; without a listener Node would throw it and crash the process.
    socket.on('error', onSocketError);
    // Listened to from the start: Node can emit 'end' before accept() (a client that left while the
    // handler was deciding), and a FIN missed here would leave the connection half-open forever.
    socket.on('end', onSocketEnd);
    this.handshakeTimer = role === 'server' ? setTimeout(handshakeExpired, settings.handshakeTimeout, this) : null;
  }

  get state(): ConnectionState {
    if ((this.flags & SOCKET_CLOSED) !== 0) return 'closed';
    const protocol = this.protocol;
    if (protocol === null) return (this.flags & REFUSED) !== 0 ? 'closed' : 'connecting';
    const state = protocol.state;
    return state === 'open' ? 'open' : state === 'closing' ? 'closing' : 'closed';
  }

  /** Whether the handshake can still be answered. */
  get answerable(): boolean {
    return this.protocol === null && (this.flags & (REFUSED | SOCKET_CLOSED)) === 0;
  }

  get socketClosed(): boolean {
    return (this.flags & SOCKET_CLOSED) !== 0;
  }

  /** Whether the transport is an HTTP/2 stream. */
  get http2(): boolean {
    return (this.flags & HTTP2) !== 0;
  }

  /** Bytes written to the socket and not yet taken by the operating system. */
  get bufferedAmount(): number {
    return this.socket.writableLength + (batchOwner === this ? batchUsed : 0);
  }

  // ---------------------------------------------------------------- handshake

  /**
   * Starts the protocol and reading, with the permessage-deflate transform when the handshake agreed
   * on it. A server sends its acceptance first (RFC 6455 §4.2.2, RFC 8441 §5); a client has read the
   * server's (`response` null).
   */
  start(response: HandshakeResponse | null, deflate: PerMessageDeflate | null): void {
    this.clearHandshakeTimer();
    const settings = this.settings;
    this.protocol = new Protocol(this, {
      role: (this.flags & CLIENT) !== 0 ? 'client' : 'server',
      maxMessageSize: settings.maxMessageSize,
      maxFrameSize: settings.maxFrameSize,
      deflate,
    });
    const socket = this.socket;
    if (response !== null) {
      if ((this.flags & HTTP2) === 0) socket.write(serializeResponse(response));
      else respondOnStream(socket as ServerHttp2Stream, response);
    }
    if (settings.idleTimeout > 0 && 'setTimeout' in socket) {
      (socket as Duplex & { setTimeout(ms: number): void }).setTimeout(settings.idleTimeout);
      socket.on('timeout', onSocketTimeout);
    }
    socket.on('data', onSocketData);
    const head = this.head;
    this.head = null;
    if (head !== null) this.handleData(head);
    if ((this.flags & PEER_ENDED) !== 0) this.handleEnd();
  }

  /** Refuses the handshake with an HTTP error response and closes the socket. */
  refuse(error: HandshakeError): void {
    if (!this.answerable) return;
    this.flags |= REFUSED;
    this.clearHandshakeTimer();
    const response = refusalResponse(error);
    if ((this.flags & HTTP2) === 0) {
      this.socket.end(serializeResponse(response));
    } else {
      refuseOnStream(this.socket as ServerHttp2Stream, response);
    }
    this.armCloseTimer();
  }

  // ---------------------------------------------------------------- receiving

  /** The next received event, resuming a socket paused for inbound backpressure once it is low enough. */
  pull(): ProtocolEvent | undefined {
    const protocol = this.protocol!;
    const event = protocol.nextEvent();
    if (
      event !== undefined &&
      event.type !== 'close' &&
      (this.flags & INBOUND_PAUSED) !== 0 &&
      protocol.queuedBytes <= this.settings.inboundLowWaterMark
    ) {
      this.flags &= ~INBOUND_PAUSED;
      this.updateReading();
    }
    return event;
  }

  /** Writes what is corked now: the handler has answered everything so far and waits for more. */
  flush(): void {
    if ((this.flags & CORKED) === 0) return;
    this.flags &= ~CORKED;
    const socket = this.socket;
    if (batchOwner !== this) {
      socket.uncork();
      return;
    }
    if (socket.destroyed) {
      this.dropBatch();
      return;
    }
    socket.write(batch.subarray(0, batchUsed));
    batchOwner = null;
    batchUsed = 0;
    socket.uncork();
    // The write usually completes at once (the operating system copied the bytes). If anything is
    // left unsent, the socket still refers to the batch's memory: the next batch gets new memory.
    if (socket.writableLength !== 0) batch = Buffer.allocUnsafeSlow(BATCH_SIZE);
  }

  /** Gives up this connection's batched frames (its socket is gone). */
  private dropBatch(): void {
    if (batchOwner !== this) return;
    batchOwner = null;
    batchUsed = 0;
  }

  /**
   * Hands this connection's batched frames to the (corked) socket as a copy, before a frame that
   * bypasses the batch, so the frames stay in order; the batch stays free for reuse.
   */
  private spillBatch(): void {
    if (batchOwner !== this) return;
    this.socket.write(Buffer.from(batch.subarray(0, batchUsed)));
    batchOwner = null;
    batchUsed = 0;
  }

  // ---------------------------------------------------------------- sending

  /**
   * Sends a data message: resolves at once while the socket is under its high-water mark, else when it
   * drains. Over `maxBufferedAmount`, one send waits for the drain before it is written (an awaited
   * `send()`); any other meets the slow-consumer policy.
   */
  send(data: SendData): Promise<void> {
    const protocol = this.protocol;
    if (protocol === null) return rejection(this.notOpenError());
    // A connection no longer open goes on to the write, which rejects with the disconnect.
    if (this.saturated() && protocol.state === 'open') {
      if (this.held === null) {
        const promise = new Promise<void>((resolve, reject) => {
          this.held = { data, resolve, reject };
          this.listenForDrain();
        });
        // Fire-and-forget code may never look at it: a later disconnect must not be an unhandled rejection.
        promise.catch(ignore);
        return promise;
      }
      return this.refuseSlowConsumer();
    }
    try {
      writeMessage(protocol, data);
    } catch (error) {
      return rejection(error);
    }
    return this.afterWrite();
  }

  /**
   * One frame of a message sent in fragments (RFC 6455 §5.4), resolving when there is room for the
   * next: fragments are awaited one by one, so the output stays within the high-water mark plus one
   * fragment instead of meeting the slow-consumer policy.
   */
  sendFragment(opcode: number, payload: Uint8Array, fin: boolean): Promise<void> {
    const protocol = this.protocol;
    if (protocol === null) return rejection(this.notOpenError());
    try {
      protocol.sendFrame(opcode, payload, fin);
    } catch (error) {
      return rejection(error);
    }
    return this.afterWrite();
  }

  /** A message encoded once for many connections (broadcast): written, or refused by the policy. */
  deliver(prepared: PreparedMessage): Delivery {
    const protocol = this.protocol;
    if (protocol === null || protocol.state !== 'open') return 'not-open';
    if (this.saturated()) {
      if (this.settings.slowConsumer === 'close') {
        this.closeSlowConsumer();
        return 'closed';
      }
      return 'skipped';
    }
    // Deliveries made in one turn (a publisher's read of several messages, a loop of publishes) leave
    // in one write per subscriber, not one per message: the socket is corked until the turn's end.
    if ((this.flags & (CORKED | HTTP2)) === 0) {
      this.flags |= CORKED;
      this.socket.cork();
      if (deliveredThisTurn.push(this) === 1) process.nextTick(flushDelivered);
    }
    try {
      protocol.sendPrepared(prepared);
    } catch {
      return 'not-open';
    }
    return 'sent';
  }

  /** An application ping (RFC 6455 §5.5.2): bounded by the hard limit like a message. */
  ping(payload: Uint8Array | undefined): Promise<void> {
    const protocol = this.protocol;
    if (protocol === null) return rejection(this.notOpenError());
    if (this.saturated() && protocol.state === 'open') return this.refuseSlowConsumer();
    try {
      protocol.ping(payload);
    } catch (error) {
      return rejection(error);
    }
    return this.afterWrite();
  }

  /** Starts the closing handshake (throws RangeError/TypeError for a code or reason that may not be sent). */
  close(code: number, reason: string): void {
    if ((this.flags & SOCKET_CLOSED) !== 0) return;
    this.protocol!.close(code, reason);
    this.flush();
    this.armCloseTimer();
  }

  /** Drops the TCP connection (on HTTP/2: resets the stream) at once, without a closing handshake. */
  terminate(): void {
    const socket = this.socket;
    this.dropBatch();
    if ((this.flags & HTTP2) === 0 || socket.destroyed) {
      socket.destroy();
      return;
    }
    // RFC 8441 §5: an abrupt end is RST_STREAM with CANCEL. Node resets a stream destroyed with an
    // AbortError with CANCEL (destroy() alone sends NO_ERROR; close(CANCEL) sends END_STREAM first).
    this.flags |= RESET;
    addAbortSignal(ABORTED, socket);
  }

  /**
   * One heartbeat (the server calls it every interval): pings an open connection, or closes it with
   * 1011 when the previous ping is still unanswered. A connection whose reading is paused because its
   * handler is behind cannot read a pong and is left alone, unless its output is stalled too (the
   * operating system took none of it since the last beat: the peer is not reading at all).
   */
  beat(): void {
    const protocol = this.protocol;
    if (protocol === null || protocol.state !== 'open') return;
    const socket = this.socket;
    const waiting = socket.writableLength;
    // Progress of the output since the last beat: bytes the OS took on a socket; on an HTTP/2 stream,
    // which counts no bytes written, the unsent output not having shrunk (-waiting did not grow).
    const progress = typeof socket.bytesWritten === 'number' ? socket.bytesWritten - waiting : -waiting;
    const stalled = waiting > 0 && progress <= this.flushedAtBeat;
    this.flushedAtBeat = progress;
    if ((this.flags & INBOUND_PAUSED) !== 0 && !stalled) return;
    if ((this.flags & AWAITING_PONG) !== 0) {
      this.close(CloseCode.InternalError, 'heartbeat timeout');
      return;
    }
    this.flags |= AWAITING_PONG;
    protocol.ping(EMPTY);
  }

  // ---------------------------------------------------------------- ProtocolSink (called by the protocol)

  writeFrame(header: Buffer, payload: Uint8Array | null): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    const corked = (this.flags & CORKED) !== 0;
    if (corked && payload === null && header.length <= BATCH_FRAME_LIMIT && (this.flags & HTTP2) === 0) {
      // HTTP/2 streams are left out: a stream may hold on to written memory after the write reports done.
      if (batchOwner === null || batchOwner === this) {
        if (batchUsed + header.length > BATCH_SIZE) this.spillBatch();
        batchOwner = this;
        header.copy(batch, batchUsed);
        batchUsed += header.length;
        return;
      }
    }
    this.spillBatch();
    if (payload === null) {
      socket.write(header);
    } else if (corked) {
      socket.write(header);
      socket.write(payload);
    } else {
      socket.cork();
      socket.write(header);
      socket.write(payload);
      socket.uncork();
    }
    this.checkOutput();
  }

  /** A forwarded message received in several pieces: written as one writev, never joined. */
  writeFrameSegments(header: Buffer, segments: readonly Uint8Array[]): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    const corked = (this.flags & CORKED) !== 0;
    this.spillBatch();
    if (!corked) socket.cork();
    socket.write(header);
    for (const segment of segments) socket.write(segment);
    if (!corked) socket.uncork();
    this.checkOutput();
  }

  /** The core decided the transport closes now (see ProtocolSink): our FIN, bounded by the close timer. */
  endTransport(): void {
    this.flush();
    const socket = this.socket;
    if (!socket.destroyed) {
      socket.end();
      // On a stream, END_STREAM is our FIN (RFC 8441 §5), but browsers (Chromium) never end their
      // side after the closing handshake, which would hold the stream for closeTimeout. A server that
      // has sent its complete response may reset the stream with NO_ERROR (RFC 9113 §8.1): Node sends
      // it once our END_STREAM is out, and the stream closes as a TCP connection would.
      if ((this.flags & HTTP2) !== 0) (socket as ServerHttp2Stream).close(http2Constants.NGHTTP2_NO_ERROR);
    }
    this.armCloseTimer();
  }

  /** A client whose close frame is out: the server's FIN ends it (handleEnd), else the close timer. */
  awaitTransportEnd(): void {
    this.flush();
    this.armCloseTimer();
  }

  /**
   * A ping that finds the output backed up (Node's buffer at its high-water mark, so a
   * 'drain' will come) is not answered now: the protocol keeps the most recent one, and reading stops
   * until the drain, when that one pong is written (RFC 6455 §5.5.3).
   */
  canWritePong(): boolean {
    if (!this.socket.writableNeedDrain) return true;
    this.pauseForOutput();
    return false;
  }

  pingReceived(payload: Buffer): void {
    this.owner.emitPing(payload);
  }

  pongReceived(payload: Buffer): void {
    this.flags &= ~AWAITING_PONG;
    this.owner.emitPong(payload);
  }

  // ---------------------------------------------------------------- socket events

  handleData(chunk: Buffer): void {
    const protocol = this.protocol!;
    protocol.receive(chunk);
    // A read that brought several messages: coalesce the replies (written from microtasks) into one
    // writev, flushed when the handler next waits in receive() or at the end of this event-loop turn.
    // A single message is answered with a direct write: no added latency.
    if ((this.flags & CORKED) === 0 && protocol.queuedMessages > 1) {
      this.flags |= CORKED;
      this.socket.cork();
      setImmediate(uncorkAfterTurn, this);
    }
    this.dispatch();
  }

  handleEnd(): void {
    const protocol = this.protocol;
    if (protocol === null) {
      this.flags |= PEER_ENDED;
      return;
    }
    protocol.receiveEnd();
    this.dispatch();
    // The peer will send nothing more; finish our side too.
    if (!this.socket.destroyed) this.socket.end();
    this.armCloseTimer();
  }

  handleError(error: Error): void {
    if ((this.flags & RESET) === 0) this.socketError ??= error;
    this.socket.destroy();
  }

  handleIdle(): void {
    // Paused because the handler is behind, with nothing waiting to go out: the peer is waiting on us.
    if ((this.flags & INBOUND_PAUSED) !== 0 && this.socket.writableLength === 0) return;
    if (this.state === 'open') this.close(CloseCode.GoingAway, 'idle timeout');
    else this.terminate();
  }

  handleDrain(): void {
    this.flags &= ~DRAIN_LISTENING;
    this.protocol?.flushPong();
    if ((this.flags & OUTPUT_PAUSED) !== 0) {
      this.flags &= ~OUTPUT_PAUSED;
      this.updateReading();
    }
    const held = this.held;
    if (held !== null) {
      this.held = null;
      try {
        writeMessage(this.protocol!, held.data);
        this.afterWrite().then(held.resolve, held.reject);
      } catch (error) {
        held.reject(error);
      }
    }
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    if (waiters !== null) for (const resolve of waiters) resolve();
  }

  handleClose(): void {
    this.flags |= SOCKET_CLOSED;
    this.dropBatch();
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.clearReplyTimer();
    this.clearHandshakeTimer();
    const protocol = this.protocol;
    if (protocol !== null) {
      protocol.receiveEnd();
      // Messages already received stay readable; waiters are woken with them, then the close.
      this.owner.dispatchEvents();
    }
    const held = this.held;
    this.held = null;
    held?.reject(this.notOpenError());
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    if (waiters !== null) for (const resolve of waiters) resolve();
    this.owner.closeTransport();
  }

  handleReplyGrace(): void {
    this.replyTimer = null;
    // Messages already received stay readable for a handler that gets to them later.
    this.protocol!.answerClose();
    this.flush();
  }

  handshakeExpired(): void {
    this.handshakeTimer = null;
    if (this.answerable) this.refuse(new HandshakeError(408, 'handshake timed out'));
  }

  // ---------------------------------------------------------------- internals

  /** Hands queued events to the connection, then applies the inbound rules. */
  private dispatch(): void {
    this.owner.dispatchEvents();
    const protocol = this.protocol!;
    if (protocol.closePending) {
      // The close is answered when the handler receives it, after the messages before it (so their
      // replies can still be sent), or after a short grace if the handler is not receiving.
      this.replyTimer ??= setTimeout(replyGraceExpired, CLOSE_REPLY_GRACE, this);
    }
    if ((this.flags & INBOUND_PAUSED) === 0 && protocol.queuedBytes > this.settings.inboundHighWaterMark) {
      this.flags |= INBOUND_PAUSED;
      this.updateReading();
    }
  }

  /** Reads while neither side is behind. Called only once reading has started (after accept). */
  private updateReading(): void {
    if ((this.flags & SOCKET_CLOSED) !== 0) return;
    if ((this.flags & (INBOUND_PAUSED | OUTPUT_PAUSED)) !== 0) this.socket.pause();
    else this.socket.resume();
  }

  /** After every write: stop reading while the output is over the outbound high-water mark. */
  private checkOutput(): void {
    const socket = this.socket;
    // writableNeedDrain guarantees a 'drain' will come to resume reading.
    if (
      (this.flags & OUTPUT_PAUSED) === 0 &&
      socket.writableLength > this.settings.outboundHighWaterMark &&
      socket.writableNeedDrain
    ) {
      this.pauseForOutput();
    }
  }

  /** Stops reading until the output drains ('drain' is certain: the caller saw writableNeedDrain). */
  private pauseForOutput(): void {
    if ((this.flags & OUTPUT_PAUSED) !== 0) return;
    this.flags |= OUTPUT_PAUSED;
    this.updateReading();
    this.listenForDrain();
  }

  /** Over the hard limit, or a send is already held for the drain: a further send meets the policy. */
  private saturated(): boolean {
    if (this.held !== null) return true;
    const socket = this.socket;
    return socket.writableLength > this.settings.maxBufferedAmount && socket.writableNeedDrain;
  }

  private refuseSlowConsumer(): Promise<never> {
    if (this.settings.slowConsumer === 'close') this.closeSlowConsumer();
    return rejection(new SlowConsumer());
  }

  /** RFC 6455 §7.4.1 1008: the peer does not read what it is sent (the policy `close`). */
  private closeSlowConsumer(): void {
    if (this.protocol!.state !== 'open') return;
    this.close(CloseCode.PolicyViolation, 'slow consumer');
  }

  private listenForDrain(): void {
    if ((this.flags & DRAIN_LISTENING) !== 0) return;
    this.flags |= DRAIN_LISTENING;
    this.socket.once('drain', onSocketDrain);
  }

  private afterWrite(): Promise<void> {
    if (!this.socket.writableNeedDrain) return RESOLVED;
    return new Promise<void>((resolve) => {
      (this.drainWaiters ??= []).push(resolve);
      this.listenForDrain();
    });
  }

  private notOpenError(): Error {
    if (this.protocol !== null) {
      const closeEvent = this.protocol.closeEvent;
      if (closeEvent !== null) {
        const cause = closeEvent.initiator === 'transport' ? (this.socketError ?? undefined) : undefined;
        return new WebSocketDisconnect(closeEvent.code, closeEvent.reason, closeEvent.initiator, cause);
      }
    }
    return (this.flags & (REFUSED | SOCKET_CLOSED)) !== 0
      ? new WebSocketDisconnect(CloseCode.AbnormalClosure, '', 'transport', this.socketError ?? undefined)
      : new TypeError('accept() the connection before sending');
  }

  /** Bounds the closing handshake and the wait for the peer's TCP close (RFC 6455 §7.1.1). */
  private armCloseTimer(): void {
    if (this.closeTimer !== null || (this.flags & SOCKET_CLOSED) !== 0) return;
    this.closeTimer = setTimeout(closeTimeoutExpired, this.settings.closeTimeout, this);
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
}

function writeMessage(protocol: Protocol, data: SendData): void {
  if (typeof data === 'string') protocol.sendText(data);
  else if (data instanceof Message) protocol.sendMessage(data);
  else if (data instanceof PreparedMessage) protocol.sendPrepared(data);
  else protocol.sendBinary(data);
}

// Socket listeners and timer callbacks: module-level, no per-connection closures (see kDriver).

function onSocketData(this: DriverSocket, chunk: Buffer): void {
  this[kDriver]!.handleData(chunk);
}

function onSocketEnd(this: DriverSocket): void {
  this[kDriver]!.handleEnd();
}

function onSocketClose(this: DriverSocket): void {
  this[kDriver]!.handleClose();
}

function onSocketError(this: DriverSocket, error: Error): void {
  this[kDriver]!.handleError(error);
}

function onSocketTimeout(this: DriverSocket): void {
  this[kDriver]!.handleIdle();
}

function onSocketDrain(this: DriverSocket): void {
  this[kDriver]!.handleDrain();
}

/** Connections corked by deliver() this turn, flushed together once the turn's code has run. */
let deliveredThisTurn: SocketDriver[] = [];

function flushDelivered(): void {
  const drivers = deliveredThisTurn;
  deliveredThisTurn = [];
  for (const driver of drivers) driver.flush();
}

function uncorkAfterTurn(driver: SocketDriver): void {
  driver.flush();
}

function replyGraceExpired(driver: SocketDriver): void {
  driver.handleReplyGrace();
}

function handshakeExpired(driver: SocketDriver): void {
  driver.handshakeExpired();
}

function closeTimeoutExpired(driver: SocketDriver): void {
  driver.terminate();
}
