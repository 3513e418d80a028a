/**
 * The conformance client: a WebSocket client on a raw `node:net` socket that behaves like the Autobahn
 * fuzzing client. It frames with the library's own sans-I/O core (encodeFrame / encodeClose with
 * masking, FrameParser in the client role) and can also put on the wire what the library refuses to
 * build: reserved bits and opcodes, fragmented or oversized control frames, close frames with codes or
 * reasons that may not be sent.
 *
 * What it records is what Autobahn grades a case on:
 * - the events received (messages, pongs) and the observations a case adds (6.4.x timeouts);
 * - how the connection ended: who sent the first close frame (closedByMe), who failed it (failedByMe),
 *   who dropped TCP (droppedByMe), whether the closing handshake was complete and the server closed TCP
 *   first (wasClean), and the close code the server sent (remoteCloseCode, null when none).
 *
 * With permessage-deflate offered (sections 12 and 13) it checks the server's answer to the offers
 * (deflate-negotiation.ts), compresses every message it sends and inflates every compressed message it
 * receives (deflate-codec.ts), as Autobahn's client does once the extension is in use.
 *
 * Writes follow Autobahn's three ways of sending: plain writes made in the same turn of the event loop
 * reach the socket as one write ("sent in one chop"); `sync` writes go out one by one with a turn of the
 * event loop after each ("frame-wise chops"); `chop: n` cuts the bytes into writes of n bytes each.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { CloseCode, Opcode } from '../src/constants.ts';
import { acceptKey } from '../src/handshake.ts';
import { decodeClose, encodeClose } from '../src/protocol/close.ts';
import { encodeFragmented, encodeFrame, type FrameSink } from '../src/protocol/frame-encoder.ts';
import { FrameParser, type FrameHandler } from '../src/protocol/frame-parser.ts';
import { isValidUtf8 } from '../src/protocol/utf8.ts';
import { DeflateCodec } from './deflate-codec.ts';
import { formatOffers, InvalidExtensionResponse, negotiate, type DeflateOffer } from './deflate-negotiation.ts';

/** A message received from the server. */
export interface ObservedMessage {
  readonly kind: 'message';
  readonly data: Buffer;
  readonly binary: boolean;
}

/** A pong received from the server. */
export interface ObservedPong {
  readonly kind: 'pong';
  readonly data: Buffer;
}

/** A point a case records itself, like 6.4.x's "the server was still open after the wait". */
export interface ObservedTimeout {
  readonly kind: 'timeout';
  readonly tag: string;
}

export type Observed = ObservedMessage | ObservedPong | ObservedTimeout;

export type ClientState = 'open' | 'closing' | 'closed';

export interface ClientTimeouts {
  /** Opening handshake. Default 5000 ms. */
  readonly open: number;
  /** After our close frame, how long the server has to answer it (Autobahn: closeHandshakeTimeout). Default 1000 ms. */
  readonly closeHandshake: number;
  /** After the closing handshake, how long the server has to close TCP (Autobahn: serverConnectionDropTimeout). Default 1000 ms. */
  readonly serverDrop: number;
}

export const DEFAULT_TIMEOUTS: ClientTimeouts = { open: 5000, closeHandshake: 1000, serverDrop: 1000 };

export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  /** Request target, default `/`. */
  readonly path?: string;
}

export interface FrameOptions {
  /** Default true. */
  readonly fin?: boolean;
  /** RSV bits as a 3-bit number: 4 = RSV1, 2 = RSV2, 1 = RSV3. Default 0. */
  readonly rsv?: number;
}

export interface WriteOptions {
  /** Write on its own, then let the event loop turn (Autobahn's `sync`). */
  readonly sync?: boolean;
  /** Cut into writes of this many bytes, the event loop turning after each (Autobahn's `chopsize`). */
  readonly chop?: number;
  /** With `sync` or `chop`: wait this many ms after each write instead of one turn of the event loop. */
  readonly delay?: number;
}

const EMPTY = Buffer.alloc(0);
/** Largest frame the client accepts from the server: far above the 16 MiB Autobahn messages. */
const MAX_RECEIVED_FRAME = 1024 * 1024 * 1024;
/** Largest message a compressed one may inflate to: four times the largest Autobahn message. */
const MAX_INFLATED_MESSAGE = 64 * 1024 * 1024;
/** RSV1 in the first header byte: "Per-Message Compressed" under permessage-deflate (RFC 7692 §6). */
const RSV1 = 0x40;

/** One turn of the event loop, or `ms` milliseconds. */
const pause = (ms: number | undefined): Promise<void> =>
  new Promise((resolve) => (ms === undefined || ms <= 0 ? setImmediate(resolve) : setTimeout(resolve, ms)));

/** Bytes of a payload given as bytes or as a string (UTF-8). */
export function bytesOf(payload: Uint8Array | string): Buffer {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

/**
 * Builds one masked (client) frame with the library's encoder, then sets RSV bits by hand when asked
 * (the encoder only knows RSV1). Reserved opcodes, oversized or fragmented control frames and close
 * frames with any payload come out as they are asked for: the encoder does not judge them.
 */
export function clientFrame(opcode: number, payload: Uint8Array | string = EMPTY, options: FrameOptions = {}): Buffer {
  const parts: Buffer[] = [];
  const sink: FrameSink = {
    writeFrame(header, body) {
      parts.push(header);
      if (body !== null) parts.push(bytesOf(body));
    },
  };
  encodeFrame(sink, opcode & 0x0f, bytesOf(payload), options.fin ?? true, true);
  const frame = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const rsv = options.rsv ?? 0;
  if (rsv !== 0) frame[0] = (frame[0]! & 0x8f) | ((rsv & 0x07) << 4);
  return frame;
}

/** Thrown by `connect` when the opening handshake fails. */
export class HandshakeFailed extends Error {
  override readonly name = 'HandshakeFailed';
}

export class ConformanceClient {
  /** Called for every message and pong received, in order. */
  onObserved: ((event: ObservedMessage | ObservedPong) => void) | null = null;

  state: ClientState = 'open';
  /** True when this client sent a close frame before receiving one. */
  closedByMe = false;
  /** True when this client failed the connection (a kill timer, or a violation by the server). */
  failedByMe = false;
  /** True when this client dropped the TCP connection. */
  droppedByMe = false;
  closeSent = false;
  closeReceived = false;
  wasCloseHandshakeTimeout = false;
  wasServerConnectionDropTimeout = false;
  wasNotCleanReason: string | null = null;
  localCloseCode: number | null = null;
  remoteCloseCode: number | null = null;
  remoteCloseReason: string | null = null;
  /** When the server's close frame arrived (performance.now()), or null. */
  closeReceivedAt: number | null = null;
  /** A protocol violation by the server seen by this client (masked frame, bad UTF-8, bad close...). */
  violation: string | null = null;
  /** Frames sent, by opcode (Autobahn's txFrameStats). */
  readonly txFrames = new Map<number, number>();
  /** Frames received, by opcode. */
  readonly rxFrames = new Map<number, number>();
  bytesSent = 0;
  bytesReceived = 0;
  /** Resolves when the TCP connection is closed, whoever closed it. */
  readonly closed: Promise<void>;
  /** permessage-deflate as the server accepted it, or null when no extension is in use. */
  readonly deflate: DeflateCodec | null;

  private readonly socket: Socket;
  private readonly timeouts: ClientTimeouts;
  private readonly parser: FrameParser;
  private resolveClosed!: () => void;
  private corked = false;
  private chain: Promise<void> = Promise.resolve();
  private pendingJobs = 0;
  private closeTimer: NodeJS.Timeout | null = null;
  private dropTimer: NodeJS.Timeout | null = null;

  // The frame and message being received.
  private frameOpcode = 0;
  private frameFin = false;
  private framePieces: Buffer[] = [];
  private messageOpcode = 0;
  private messageCompressed = false;
  private messagePieces: Buffer[] = [];

  private constructor(socket: Socket, timeouts: ClientTimeouts, deflate: DeflateCodec | null) {
    this.socket = socket;
    this.timeouts = timeouts;
    this.deflate = deflate;
    this.closed = new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
    });
    const handler: FrameHandler = {
      frameStart: (opcode, fin, rsv) => this.frameStart(opcode, fin, rsv),
      framePayload: (piece) => this.framePieces.push(piece),
      frameEnd: () => this.frameEnd(),
    };
    this.parser = new FrameParser(handler, { role: 'client', maxFrameSize: MAX_RECEIVED_FRAME, allowedRsv: deflate === null ? 0 : RSV1 });
  }

  /**
   * Opens a TCP connection and runs the opening handshake (RFC 6455 §4.1), checking the 101 answer and,
   * when `offers` are given, the server's answer to them (RFC 7692 §5).
   */
  static connect(target: ConnectTarget, timeouts: Partial<ClientTimeouts> = {}, offers: readonly DeflateOffer[] = []): Promise<ConformanceClient> {
    const settings: ClientTimeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    return new Promise<ConformanceClient>((resolve, reject) => {
      const socket = connect({ host: target.host, port: target.port });
      socket.setNoDelay(true);
      const key = randomBytes(16).toString('base64');
      let head: Buffer = EMPTY;
      const fail = (message: string): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(new HandshakeFailed(message));
      };
      const timer = setTimeout(() => fail(`no handshake answer within ${settings.open} ms`), settings.open);
      const onError = (error: Error): void => fail(`connection failed: ${error.message}`);
      const onClose = (): void => fail('the server closed the connection during the handshake');
      const onData = (chunk: Buffer): void => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 16 * 1024) fail('handshake answer over 16 KiB');
          return;
        }
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        clearTimeout(timer);
        const answer = checkHandshake(head.subarray(0, end).toString('latin1'), key);
        let deflate: DeflateCodec | null = null;
        try {
          if (typeof answer === 'string') throw new HandshakeFailed(answer);
          const parameters = negotiate(offers, answer.extensions);
          if (parameters !== null) deflate = new DeflateCodec(parameters, MAX_INFLATED_MESSAGE);
        } catch (error) {
          // RFC 6455 §4.1: a client that does not accept the answer fails the connection: it drops TCP.
          socket.destroy();
          if (error instanceof InvalidExtensionResponse) reject(new HandshakeFailed(`invalid Sec-WebSocket-Extensions answer: ${error.message}`));
          else reject(error);
          return;
        }
        const client = new ConformanceClient(socket, settings, deflate);
        client.attach(head.subarray(end + 4));
        resolve(client);
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
      const path = target.path ?? '/';
      socket.write(
        `GET ${path} HTTP/1.1\r\n` +
          `Host: ${target.host}:${target.port}\r\n` +
          'Upgrade: websocket\r\n' +
          'Connection: Upgrade\r\n' +
          `Sec-WebSocket-Key: ${key}\r\n` +
          'Sec-WebSocket-Version: 13\r\n' +
          (offers.length === 0 ? '' : `Sec-WebSocket-Extensions: ${formatOffers(offers)}\r\n`) +
          'User-Agent: rfc6455-conformance\r\n' +
          '\r\n',
      );
    });
  }

  // ---------------------------------------------------------------- sending

  /** Sends one frame (masked), built by `clientFrame`. */
  sendFrame(opcode: number, payload: Uint8Array | string = EMPTY, options: FrameOptions & WriteOptions = {}): void {
    this.count(this.txFrames, opcode);
    this.write(clientFrame(opcode, payload, options), options);
  }

  /**
   * Sends a message, split into frames of `fragmentSize` bytes when given (the first frame has the
   * opcode, the others are continuations), all in one write. With permessage-deflate in use the message
   * is compressed first and the compressed bytes are what is split, as Autobahn does; RSV1 marks the
   * first frame (RFC 7692 §6).
   */
  sendMessage(payload: Uint8Array | string, binary: boolean, fragmentSize?: number): void {
    const opcode = binary ? Opcode.Binary : Opcode.Text;
    const compressed = this.deflate !== null;
    const bytes = this.deflate === null ? bytesOf(payload) : this.deflate.compress(bytesOf(payload));
    const frames: Buffer[] = [];
    const sink: FrameSink = {
      writeFrame: (header, body) => {
        this.count(this.txFrames, header[0]! & 0x0f);
        frames.push(header);
        if (body !== null) frames.push(bytesOf(body));
      },
    };
    if (fragmentSize === undefined) encodeFrame(sink, opcode, bytes, true, true, compressed);
    else encodeFragmented(sink, opcode, bytes, fragmentSize, true, compressed);
    this.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  /**
   * Starts (or, from the server's side, answers) the closing handshake with a valid close frame made by
   * `encodeClose`. Ignored unless the connection is open, as Autobahn does.
   */
  sendClose(code?: number, reason = ''): void {
    if (this.state !== 'open') return;
    this.startClose(encodeClose(code, reason, true), code ?? null);
  }

  /**
   * Starts the closing handshake with any close payload: `code` (any 16-bit number, or null for none)
   * followed by `reason` bytes. This is how the invalid close frames of section 7 are sent.
   */
  sendCloseFrame(code: number | null = null, reason: Uint8Array | string = EMPTY): void {
    if (this.state !== 'open') return;
    const reasonBytes = bytesOf(reason);
    const payload = Buffer.alloc((code === null ? 0 : 2) + reasonBytes.length);
    if (code !== null) payload.writeUInt16BE(code & 0xffff, 0);
    reasonBytes.copy(payload, code === null ? 0 : 2);
    this.startClose(clientFrame(Opcode.Close, payload), code);
  }

  /** Writes raw bytes, in order with everything sent before. Ignored once the connection is closed. */
  write(bytes: Buffer, options: WriteOptions = {}): void {
    if (this.state === 'closed') return;
    const chop = options.chop ?? 0;
    if (chop > 0) {
      this.enqueue(async () => {
        for (let offset = 0; offset < bytes.length && this.state !== 'closed'; offset += chop) {
          this.writeNow(bytes.subarray(offset, Math.min(offset + chop, bytes.length)));
          await pause(options.delay);
        }
      });
    } else if (options.sync === true) {
      this.enqueue(async () => {
        this.writeNow(bytes);
        await pause(options.delay);
      });
    } else if (this.pendingJobs > 0) {
      // Queued sync or chopped writes go first.
      this.enqueue(async () => this.writeNow(bytes));
    } else {
      // Everything written in this turn of the event loop leaves as one write (one writev).
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => this.uncork());
      }
      this.bytesSent += bytes.length;
      this.socket.write(bytes);
    }
  }

  /** Resolves when every queued write has been handed to the socket. */
  async flushed(): Promise<void> {
    while (this.pendingJobs > 0) await this.chain;
  }

  /**
   * Fails the connection as Autobahn's kill timer does with `failByDrop: false`: a close frame (1001)
   * when the connection is open, else the TCP connection is dropped.
   */
  kill(): void {
    if (this.state === 'closed') return;
    this.failedByMe = true;
    this.wasNotCleanReason ??= 'the case timed out: this client failed the connection';
    if (this.state === 'open') this.sendClose(CloseCode.GoingAway, 'going away');
    else this.drop('the case timed out while closing: this client dropped TCP');
  }

  /** Drops the TCP connection at once. */
  drop(reason: string): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    this.droppedByMe = true;
    this.wasNotCleanReason ??= reason;
    this.socket.destroy();
  }

  /** The closing handshake was complete and the server closed TCP (Autobahn's wasClean). */
  get wasClean(): boolean {
    return this.closeSent && this.closeReceived && !this.droppedByMe;
  }

  // ---------------------------------------------------------------- internals

  private attach(rest: Buffer): void {
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error: Error) => {
      this.wasNotCleanReason ??= `socket error: ${error.message}`;
    });
    socket.on('close', () => this.onSocketClose());
    if (rest.length > 0) this.receive(Buffer.from(rest));
  }

  private receive(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    try {
      this.parser.push(chunk);
    } catch (error) {
      this.protocolViolation(error instanceof Error ? error.message : String(error));
    }
  }

  private frameStart(opcode: number, fin: boolean, rsv: number): void {
    this.frameOpcode = opcode;
    this.frameFin = fin;
    this.framePieces = [];
    this.count(this.rxFrames, opcode);
    // The parser lets RSV1 through only when permessage-deflate is in use; then it marks the first frame
    // of a compressed message and nothing else.
    const rsv1 = (rsv & RSV1) !== 0;
    if (opcode >= Opcode.Close) {
      // RFC 7692 §6: control frames never carry the "Per-Message Compressed" bit.
      if (rsv1) throw new Error('server set RSV1 on a control frame');
      return;
    }
    if (opcode === Opcode.Continuation) {
      if (this.messageOpcode === 0) throw new Error('server sent a continuation frame without a message');
      // RFC 7692 §6: RSV1 is set on the first frame of a compressed message only.
      if (rsv1) throw new Error('server set RSV1 on a continuation frame');
    } else {
      if (this.messageOpcode !== 0) throw new Error('server started a message inside a fragmented message');
      this.messageOpcode = opcode;
      this.messageCompressed = rsv1;
      this.messagePieces = [];
    }
  }

  private frameEnd(): void {
    const pieces = this.framePieces;
    this.framePieces = [];
    const payload = pieces.length === 0 ? EMPTY : pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    switch (this.frameOpcode) {
      case Opcode.Close:
        this.onCloseFrame(payload);
        return;
      case Opcode.Ping:
        // Autobahn answers pings itself and does not count them as case events.
        if (this.state === 'open') this.sendFrame(Opcode.Pong, payload);
        return;
      case Opcode.Pong:
        this.onObserved?.({ kind: 'pong', data: Buffer.from(payload) });
        return;
    }
    if (payload.length > 0) this.messagePieces.push(payload);
    if (!this.frameFin) return;
    const binary = this.messageOpcode === Opcode.Binary;
    const received = this.messagePieces.length === 1 ? this.messagePieces[0]! : Buffer.concat(this.messagePieces);
    this.messageOpcode = 0;
    this.messagePieces = [];
    const data = this.messageCompressed ? this.inflate(received) : received;
    if (!binary && !isValidUtf8(data)) throw new Error('server sent a text message that is not valid UTF-8');
    this.onObserved?.({ kind: 'message', data, binary });
  }

  private inflate(payload: Buffer): Buffer {
    try {
      return this.deflate!.decompress(payload);
    } catch (error) {
      throw new Error(`server sent an invalid compressed message: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private onCloseFrame(payload: Buffer): void {
    let code: number | null = null;
    let reason = '';
    try {
      if (payload.length > 0) ({ code, reason } = decodeClose(payload));
    } catch (error) {
      throw new Error(`server sent an invalid close frame: ${error instanceof Error ? error.message : String(error)}`);
    }
    // RFC 6455 §5.5.1: nothing after a close frame.
    this.parser.stop();
    this.closeReceived = true;
    this.closeReceivedAt = performance.now();
    this.remoteCloseCode = code;
    this.remoteCloseReason = reason;
    if (this.state === 'open') {
      // The server started the closing handshake: answer it (Autobahn replies 1000) and wait for the
      // server to close TCP.
      this.state = 'closing';
      this.closeSent = true;
      this.count(this.txFrames, Opcode.Close);
      this.write(encodeClose(CloseCode.NormalClosure, '', true));
    }
    this.clearCloseTimer();
    this.dropTimer ??= setTimeout(() => {
      this.wasServerConnectionDropTimeout = true;
      this.drop('the server did not close TCP in time after the closing handshake');
    }, this.timeouts.serverDrop);
  }

  private startClose(frame: Buffer, code: number | null): void {
    this.state = 'closing';
    this.closedByMe = true;
    this.closeSent = true;
    this.localCloseCode = code;
    this.count(this.txFrames, Opcode.Close);
    this.write(frame);
    this.closeTimer = setTimeout(() => {
      this.closeTimer = null;
      if (this.closeReceived) return;
      this.wasCloseHandshakeTimeout = true;
      this.drop('the server did not answer our close frame in time');
    }, this.timeouts.closeHandshake);
  }

  private protocolViolation(message: string): void {
    this.violation ??= message;
    this.failedByMe = true;
    this.drop(`protocol violation by the server: ${message}`);
  }

  private enqueue(job: () => Promise<void>): void {
    this.pendingJobs++;
    this.chain = this.chain
      .then(job)
      .catch(() => undefined)
      .finally(() => {
        this.pendingJobs--;
      });
  }

  /** Writes on its own: whatever was coalesced before goes first. */
  private writeNow(bytes: Buffer): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    this.uncork();
    this.bytesSent += bytes.length;
    this.socket.write(bytes);
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  private count(stats: Map<number, number>, opcode: number): void {
    stats.set(opcode, (stats.get(opcode) ?? 0) + 1);
  }

  private clearCloseTimer(): void {
    if (this.closeTimer !== null) {
      clearTimeout(this.closeTimer);
      this.closeTimer = null;
    }
  }

  private onSocketClose(): void {
    this.state = 'closed';
    this.parser.stop();
    this.clearCloseTimer();
    if (this.dropTimer !== null) clearTimeout(this.dropTimer);
    if (!this.wasClean) {
      this.wasNotCleanReason ??= this.closeReceived
        ? 'the closing handshake was not completed'
        : 'the TCP connection closed without a closing handshake';
    }
    this.resolveClosed();
  }
}

/**
 * Checks the server's handshake answer (RFC 6455 §4.1): 101, Upgrade, Connection and the accept key.
 * Returns what is wrong, or the answer's Sec-WebSocket-Extensions fields for the negotiation.
 */
function checkHandshake(head: string, key: string): string | { readonly extensions: readonly string[] } {
  const lines = head.split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '');
  if (status === null) return `not an HTTP/1.1 answer: ${JSON.stringify(lines[0])}`;
  if (status[1] !== '101') return `the server answered ${lines[0]}`;
  const headers = new Map<string, string>();
  const extensions: string[] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, value);
    if (name === 'sec-websocket-extensions') extensions.push(value);
  }
  if (headers.get('upgrade')?.toLowerCase() !== 'websocket') return 'the 101 answer has no "Upgrade: websocket"';
  if (!/(^|,)\s*upgrade\s*(,|$)/i.test(headers.get('connection') ?? '')) return 'the 101 answer has no "Connection: Upgrade"';
  if (headers.get('sec-websocket-accept') !== acceptKey(key)) return 'wrong Sec-WebSocket-Accept';
  return { extensions };
}
