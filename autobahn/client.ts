/**
 * The conformance client: a WebSocket client on a raw `node:net` socket that behaves like the Autobahn
 * fuzzing client. It frames with the library's own sans-I/O core (encodeFrame / encodeClose with
 * masking, FrameParser in the client role) and can also put on the wire what the library refuses to
 * build: reserved bits and opcodes, fragmented or oversized control frames, close frames with codes or
 * reasons that may not be sent.
 *
 * The same peer plays the server for the replay against a client (Autobahn's fuzzingserver): made by
 * `accept` instead of `connect`, in the `server` role it checks the client's opening handshake and
 * answers it, sends its frames unmasked, requires masked ones (FrameParser in the server role: an
 * unmasked frame is a violation), and closes TCP itself once the closing handshake is over (RFC 6455
 * §7.1.1), after a short grace that shows whether the client closed it first. The cases do not change:
 * "me" is the peer, whatever its role, and "the server" of their texts is the endpoint under test.
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
 *
 * Over HTTP/2 (`connectHttp2`, the client role only) the transport is an extended CONNECT stream
 * (RFC 8441) on a session the caller owns, and each write is one or more DATA frames. What TCP does for
 * the grading, the stream does as RFC 8441 §5 maps it (judgement calls, also in autobahn/README.md):
 * - the server's TCP close (its FIN) is the server ending its side of the stream (END_STREAM); a TCP
 *   client socket answers a FIN by ending its own side, and so does this client (END_STREAM back), after
 *   which the stream is closed. "The server closed TCP" = the stream closed after the server's END_STREAM.
 * - this client dropping TCP is resetting the stream: RST_STREAM with CANCEL, RFC 8441 §5's code for a
 *   reset (and not a reset of the session, which would end every other stream on it).
 * - a stream the server resets (RST_STREAM, any code) without having ended it is a TCP reset: the server
 *   dropped the connection. That is allowed wherever Autobahn allows "or drop TCP", but it is not a clean
 *   close: a case that requires one (a complete closing handshake, then the server closing TCP) requires
 *   END_STREAM. On TCP Autobahn cannot tell a FIN from a reset; on a stream the two are different frames,
 *   and RFC 8441 names END_STREAM as the orderly close, so this is stricter than Autobahn, never laxer.
 *   A RST_STREAM(NO_ERROR) *after* the server's END_STREAM is part of the orderly close: our server
 *   sends it because browsers never end their side (RFC 9113 §8.1 allows it after a complete response).
 */
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { constants as http2Constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CloseCode, Opcode } from '../src/constants.ts';
import { acceptKey } from '../src/handshake.ts';
import { decodeClose, encodeClose } from '../src/protocol/close.ts';
import { encodeFragmented, encodeFrame, type FrameSink } from '../src/protocol/frame-encoder.ts';
import { FrameParser, type FrameHandler } from '../src/protocol/frame-parser.ts';
import { isValidUtf8 } from '../src/protocol/utf8.ts';
import { DeflateCodec } from './deflate-codec.ts';
import {
  acceptOffers,
  formatOffers,
  InvalidExtensionOffer,
  InvalidExtensionResponse,
  negotiate,
  readOffers,
  type DeflateAcceptance,
  type DeflateOffer,
} from './deflate-negotiation.ts';

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

/** The peer's side of the connection: `client` for the replay against a server, `server` against a client. */
export type PeerRole = 'client' | 'server';

export interface ClientTimeouts {
  /** Opening handshake. Default 5000 ms. */
  readonly open: number;
  /** After our close frame, how long the server has to answer it (Autobahn: closeHandshakeTimeout). Default 1000 ms. */
  readonly closeHandshake: number;
  /** After the closing handshake, how long the server has to close TCP (Autobahn: serverConnectionDropTimeout). Default 1000 ms. */
  readonly serverDrop: number;
  /**
   * Server role: after the closing handshake, how long the peer waits before it closes TCP, to see
   * whether the client closes it first (RFC 6455 §7.1.1). Autobahn closes at once. Default 10 ms.
   */
  readonly closeGrace: number;
}

export const DEFAULT_TIMEOUTS: ClientTimeouts = { open: 5000, closeHandshake: 1000, serverDrop: 1000, closeGrace: 10 };

/** What the peer in the server role expects of the client's opening handshake and answers to it. */
export interface AcceptOptions {
  /** The request target the client must ask for, e.g. `/runCase?case=1.1.1&agent=rfc6455`. */
  readonly path: string;
  /** The Host header the client must send (`127.0.0.1:PORT`). */
  readonly host: string;
  /** permessage-deflate acceptances in order of preference; none declines every offer. */
  readonly acceptances?: readonly DeflateAcceptance[];
}

export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  /** Request target, default `/`. */
  readonly path?: string;
}

/** A server reached over HTTP/2: extended CONNECT streams (RFC 8441) on a session the caller owns. */
export interface Http2Target {
  /** An open session whose server sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3). */
  readonly session: ClientHttp2Session;
  /** `:authority`, e.g. `127.0.0.1:PORT`. */
  readonly authority: string;
  /** `:path`, default `/`. */
  readonly path?: string;
}

/** What the connection runs on: a TCP socket after an HTTP/1.1 upgrade, or an HTTP/2 stream. */
export type Transport = 'tcp' | 'http2';

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

function ignore(): void {}

/** The values of a received HTTP/2 header field, as a list (Node gives a string, or an array for a repeated field). */
function headerValues(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return typeof value === 'string' ? [value] : value;
}

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
  return buildFrame(opcode, payload, options, true);
}

/** `clientFrame`, masked or not: unmasked is how a server sends it. */
export function buildFrame(opcode: number, payload: Uint8Array | string, options: FrameOptions, masked: boolean): Buffer {
  const parts: Buffer[] = [];
  const sink: FrameSink = {
    writeFrame(header, body) {
      parts.push(header);
      if (body !== null) parts.push(bytesOf(body));
    },
  };
  encodeFrame(sink, opcode & 0x0f, bytesOf(payload), options.fin ?? true, masked);
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

  /** `client` (made by `connect`, the replay against a server) or `server` (made by `accept`). */
  readonly role: PeerRole;
  /**
   * Server role: the client closed TCP before this peer did. A client failing the connection may
   * (RFC 6455 §7.1.7); after a normal closing handshake it waits for the server (§7.1.1), so a case
   * that requires a clean close is then UNCLEAN.
   */
  peerClosedTcpFirst = false;
  /** Server role: this peer closed TCP after the closing handshake, as a server does. */
  closedTcpByMe = false;
  /** `tcp`, or `http2` for a connection made by `connectHttp2`. */
  readonly transport: Transport;
  /** HTTP/2: the server ended its side of the stream (END_STREAM): what its FIN is on TCP. */
  serverEndedStream = false;
  /**
   * HTTP/2: the server reset the stream (RST_STREAM) without ending it first: what a TCP reset or drop
   * is on TCP. The RST_STREAM error code as Node reports it (0 is NO_ERROR), or null.
   */
  serverResetStream: number | null = null;

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
  /** A protocol violation by the other endpoint seen by this peer (bad masking, bad UTF-8, bad close...). */
  violation: string | null = null;
  /** Frames sent, by opcode (Autobahn's txFrameStats). */
  readonly txFrames = new Map<number, number>();
  /** Frames received, by opcode. */
  readonly rxFrames = new Map<number, number>();
  bytesSent = 0;
  bytesReceived = 0;
  /** Resolves when the TCP connection (HTTP/2: the stream) is closed, whoever closed it. */
  readonly closed: Promise<void>;
  /** permessage-deflate as the server accepted it, or null when no extension is in use. */
  readonly deflate: DeflateCodec | null;

  /** Whether the frames this peer sends are masked: a client's are (RFC 6455 §5.1), a server's are not. */
  private readonly masked: boolean;
  /** The other endpoint, in messages: `server` or `client`. */
  private readonly other: PeerRole;
  /** The TCP socket, or the HTTP/2 stream (a ClientHttp2Stream). */
  private readonly socket: Duplex;
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

  private constructor(
    socket: Duplex,
    timeouts: ClientTimeouts,
    deflate: DeflateCodec | null,
    role: PeerRole = 'client',
    transport: Transport = 'tcp',
  ) {
    this.socket = socket;
    this.transport = transport;
    this.timeouts = timeouts;
    this.deflate = deflate;
    this.role = role;
    this.masked = role === 'client';
    this.other = role === 'client' ? 'server' : 'client';
    this.closed = new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
    });
    const handler: FrameHandler = {
      frameStart: (opcode, fin, rsv) => this.frameStart(opcode, fin, rsv),
      framePayload: (piece) => this.framePieces.push(piece),
      frameEnd: () => this.frameEnd(),
    };
    // A client requires unmasked frames, a server masked ones (RFC 6455 §5.1).
    this.parser = new FrameParser(handler, { role, maxFrameSize: MAX_RECEIVED_FRAME, allowedRsv: deflate === null ? 0 : RSV1 });
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

  /**
   * Opens an extended CONNECT stream on an HTTP/2 session (RFC 8441 §4, §5): `:method CONNECT`,
   * `:protocol websocket`, `:scheme https`, `:path`, `:authority` and `sec-websocket-version: 13`, with
   * the permessage-deflate `offers` as `sec-websocket-extensions`. The server must answer `:status 200`
   * (RFC 8441 §5; there is no Sec-WebSocket-Key or -Accept on HTTP/2) and, when `offers` are given,
   * answer them as on HTTP/1.1 (RFC 7692 §5). The stream then carries the frames in both directions.
   */
  static connectHttp2(target: Http2Target, timeouts: Partial<ClientTimeouts> = {}, offers: readonly DeflateOffer[] = []): Promise<ConformanceClient> {
    const settings: ClientTimeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    return new Promise<ConformanceClient>((resolve, reject) => {
      const session = target.session;
      if (session.closed || session.destroyed) {
        reject(new HandshakeFailed('the HTTP/2 session is closed'));
        return;
      }
      let stream: ClientHttp2Stream;
      try {
        stream = session.request(
          {
            ':method': 'CONNECT',
            ':protocol': 'websocket',
            ':scheme': 'https',
            ':path': target.path ?? '/',
            ':authority': target.authority,
            'sec-websocket-version': '13',
            ...(offers.length === 0 ? {} : { 'sec-websocket-extensions': formatOffers(offers) }),
            'user-agent': 'rfc6455-conformance',
          },
          { endStream: false },
        );
      } catch (error) {
        reject(new HandshakeFailed(`the session refused the extended CONNECT: ${error instanceof Error ? error.message : String(error)}`));
        return;
      }
      const detach = (): void => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.off('error', onError);
        stream.off('close', onClose);
      };
      const abort = (error: HandshakeFailed | unknown): void => {
        detach();
        // RFC 6455 §4.1: a client that does not accept the answer fails the connection; on a stream
        // that is RST_STREAM (CANCEL, RFC 8441 §5), which leaves the session and its other streams alone.
        stream.on('error', ignore);
        if (!stream.closed) stream.close(http2Constants.NGHTTP2_CANCEL);
        reject(error);
      };
      const timer = setTimeout(() => abort(new HandshakeFailed(`no answer to the extended CONNECT within ${settings.open} ms`)), settings.open);
      const onError = (error: Error): void => abort(new HandshakeFailed(`the stream failed: ${error.message}`));
      const onClose = (): void =>
        abort(new HandshakeFailed(`the stream closed before an answer (RST_STREAM code ${String(stream.rstCode)})`));
      const onResponse = (headers: IncomingHttpHeaders & { ':status'?: number }): void => {
        let deflate: DeflateCodec | null = null;
        try {
          const status = headers[':status'];
          if (status !== 200) throw new HandshakeFailed(`the server answered the extended CONNECT with :status ${String(status)}`);
          const parameters = negotiate(offers, headerValues(headers['sec-websocket-extensions']));
          if (parameters !== null) deflate = new DeflateCodec(parameters, MAX_INFLATED_MESSAGE);
        } catch (error) {
          abort(error instanceof InvalidExtensionResponse ? new HandshakeFailed(`invalid sec-websocket-extensions answer: ${error.message}`) : error);
          return;
        }
        detach();
        const client = new ConformanceClient(stream, settings, deflate, 'client', 'http2');
        client.attach(EMPTY);
        resolve(client);
      };
      stream.on('response', onResponse);
      stream.on('error', onError);
      stream.on('close', onClose);
    });
  }

  /**
   * The server role: reads the client's opening handshake from a socket it opened to us, checks it
   * (RFC 6455 §4.1, and its permessage-deflate offers, RFC 7692 §7), and answers with a 101 that
   * accepts the first offer `options.acceptances` allows (as Autobahn's fuzzingserver does), or with a
   * 400 and a rejection when the request is not a valid opening handshake.
   */
  static accept(socket: Socket, options: AcceptOptions, timeouts: Partial<ClientTimeouts> = {}): Promise<ConformanceClient> {
    const settings: ClientTimeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    return new Promise<ConformanceClient>((resolve, reject) => {
      socket.setNoDelay(true);
      let head: Buffer = EMPTY;
      const detach = (): void => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
      };
      const fail = (message: string, status?: number): void => {
        detach();
        if (status !== undefined && !socket.destroyed) {
          // RFC 6455 §4.2.1: a request that is not a valid opening handshake gets an HTTP error.
          socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
          socket.destroySoon();
        } else {
          socket.destroy();
        }
        reject(new HandshakeFailed(message));
      };
      const timer = setTimeout(() => fail(`no opening handshake from the client within ${settings.open} ms`), settings.open);
      const onError = (error: Error): void => fail(`connection failed: ${error.message}`);
      const onClose = (): void => fail('the client closed the connection during the handshake');
      const onData = (chunk: Buffer): void => {
        head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > 16 * 1024) fail('opening handshake over 16 KiB', 431);
          return;
        }
        const request = checkRequest(head.subarray(0, end).toString('latin1'), options);
        if (typeof request === 'string') {
          fail(`invalid opening handshake from the client: ${request}`, 400);
          return;
        }
        let accepted;
        try {
          accepted = acceptOffers(readOffers(request.extensions), options.acceptances ?? []);
        } catch (error) {
          // Autobahn fails the handshake on an offer it cannot parse (RFC 7692 §7: an invalid offer).
          if (!(error instanceof InvalidExtensionOffer)) throw error;
          fail(`invalid permessage-deflate offer from the client: ${error.message}`, 400);
          return;
        }
        detach();
        socket.write(
          'HTTP/1.1 101 Switching Protocols\r\n' +
            'Upgrade: websocket\r\n' +
            'Connection: Upgrade\r\n' +
            `Sec-WebSocket-Accept: ${acceptKey(request.key)}\r\n` +
            (accepted === null ? '' : `Sec-WebSocket-Extensions: ${accepted.response}\r\n`) +
            'Server: rfc6455-conformance\r\n' +
            '\r\n',
        );
        const deflate = accepted === null ? null : new DeflateCodec(accepted.parameters, MAX_INFLATED_MESSAGE, 'server');
        const peer = new ConformanceClient(socket, settings, deflate, 'server');
        peer.attach(head.subarray(end + 4));
        resolve(peer);
      };
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
    });
  }

  // ---------------------------------------------------------------- sending

  /** One frame as this peer sends it (masked as a client, unmasked as a server), built by `buildFrame`. */
  frame(opcode: number, payload: Uint8Array | string = EMPTY, options: FrameOptions = {}): Buffer {
    return buildFrame(opcode, payload, options, this.masked);
  }

  /** Sends one frame (masked as a client, unmasked as a server), built by `buildFrame`. */
  sendFrame(opcode: number, payload: Uint8Array | string = EMPTY, options: FrameOptions & WriteOptions = {}): void {
    this.count(this.txFrames, opcode);
    this.write(buildFrame(opcode, payload, options, this.masked), options);
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
    if (fragmentSize === undefined) encodeFrame(sink, opcode, bytes, true, this.masked, compressed);
    else encodeFragmented(sink, opcode, bytes, fragmentSize, this.masked, compressed);
    this.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  /**
   * Starts (or, from the server's side, answers) the closing handshake with a valid close frame made by
   * `encodeClose`. Ignored unless the connection is open, as Autobahn does.
   */
  sendClose(code?: number, reason = ''): void {
    if (this.state !== 'open') return;
    this.startClose(encodeClose(code, reason, this.masked), code ?? null);
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
    this.startClose(buildFrame(Opcode.Close, payload, {}, this.masked), code);
  }

  /** Writes raw bytes, in order with everything sent before. Ignored once the connection is closed. */
  write(bytes: Buffer, options: WriteOptions = {}): void {
    if (this.state === 'closed' || this.streamUnwritable()) return;
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

  /** Drops the TCP connection at once (HTTP/2: resets the stream, RST_STREAM with CANCEL). */
  drop(reason: string): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    if (this.transport === 'http2') {
      const stream = this.socket as ClientHttp2Stream;
      if (stream.closed) return;
      this.droppedByMe = true;
      this.wasNotCleanReason ??= reason;
      stream.close(http2Constants.NGHTTP2_CANCEL);
      return;
    }
    this.droppedByMe = true;
    this.wasNotCleanReason ??= reason;
    this.socket.destroy();
  }

  /**
   * The closing handshake was complete and the server closed TCP (Autobahn's wasClean): this peer as a
   * client did not have to drop it; as a server, the client did not close it first (RFC 6455 §7.1.1).
   */
  get wasClean(): boolean {
    // HTTP/2: the server must end the stream (END_STREAM), not reset it (see the top of this file).
    return this.closeSent && this.closeReceived && !this.droppedByMe && !this.peerClosedTcpFirst && this.serverResetStream === null;
  }

  // ---------------------------------------------------------------- internals

  private attach(rest: Buffer): void {
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error: Error) => {
      this.wasNotCleanReason ??= `${this.transport === 'http2' ? 'stream' : 'socket'} error: ${error.message}`;
    });
    socket.on('close', () => this.onSocketClose());
    if (this.transport === 'http2') socket.on('end', () => this.onStreamEnd());
    if (this.role === 'server') {
      socket.on('end', () => {
        if (this.closedTcpByMe) return;
        this.peerClosedTcpFirst = true;
        if (this.closeSent && this.closeReceived) {
          this.wasNotCleanReason ??= 'the client closed TCP after the closing handshake instead of waiting for the server to close it';
        }
      });
    }
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
      if (rsv1) throw new Error(`${this.other} set RSV1 on a control frame`);
      return;
    }
    if (opcode === Opcode.Continuation) {
      if (this.messageOpcode === 0) throw new Error(`${this.other} sent a continuation frame without a message`);
      // RFC 7692 §6: RSV1 is set on the first frame of a compressed message only.
      if (rsv1) throw new Error(`${this.other} set RSV1 on a continuation frame`);
    } else {
      if (this.messageOpcode !== 0) throw new Error(`${this.other} started a message inside a fragmented message`);
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
    if (!binary && !isValidUtf8(data)) throw new Error(`${this.other} sent a text message that is not valid UTF-8`);
    this.onObserved?.({ kind: 'message', data, binary });
  }

  private inflate(payload: Buffer): Buffer {
    try {
      return this.deflate!.decompress(payload);
    } catch (error) {
      throw new Error(`${this.other} sent an invalid compressed message: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private onCloseFrame(payload: Buffer): void {
    let code: number | null = null;
    let reason = '';
    try {
      if (payload.length > 0) ({ code, reason } = decodeClose(payload));
    } catch (error) {
      throw new Error(`${this.other} sent an invalid close frame: ${error instanceof Error ? error.message : String(error)}`);
    }
    // RFC 6455 §5.5.1: nothing after a close frame.
    this.parser.stop();
    this.closeReceived = true;
    this.closeReceivedAt = performance.now();
    this.remoteCloseCode = code;
    this.remoteCloseReason = reason;
    if (this.state === 'open') {
      // The other endpoint started the closing handshake: answer it (Autobahn replies 1000); then a
      // client waits for the server to close TCP, a server closes it.
      this.state = 'closing';
      this.closeSent = true;
      this.count(this.txFrames, Opcode.Close);
      this.write(encodeClose(CloseCode.NormalClosure, '', this.masked));
    }
    this.clearCloseTimer();
    if (this.role === 'server') {
      // RFC 6455 §7.1.1: the server closes TCP first once the closing handshake is over; the client
      // waits for it. The grace shows a client that does not wait.
      this.dropTimer ??= setTimeout(() => this.enqueue(async () => this.closeTcp()), this.timeouts.closeGrace);
      return;
    }
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
      this.drop(`the ${this.other} did not answer our close frame in time`);
    }, this.timeouts.closeHandshake);
  }

  /** Server role: closes TCP once everything queued is written (Autobahn's dropConnection). */
  private closeTcp(): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    this.closedTcpByMe = true;
    this.uncork();
    // A FIN once everything is written, then the socket is closed.
    (this.socket as Socket).destroySoon();
  }

  private protocolViolation(message: string): void {
    this.violation ??= message;
    this.failedByMe = true;
    this.drop(`protocol violation by the ${this.other}: ${message}`);
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

  /**
   * HTTP/2: the server ended its side of the stream (END_STREAM, its FIN on TCP). Node reports a stream
   * the server reset (RST_STREAM) with 'end' too, but only after marking it aborted; that one is told
   * apart when the stream closes (onSocketClose). A TCP client socket answers the server's FIN by ending
   * its own side (allowHalfOpen false), and an HTTP/2 stream does not, so this ends ours (END_STREAM), once
   * what was written before has gone; the stream is then closed in both directions, the server having
   * closed first (RFC 6455 §7.1.1).
   */
  private onStreamEnd(): void {
    const stream = this.socket as ClientHttp2Stream;
    if (!stream.aborted && !stream.closed) this.serverEndedStream = true;
    this.uncork();
    if (!stream.writableEnded && !stream.closed) stream.end();
  }

  /** HTTP/2: our side of the stream is ended or the stream is closed, so nothing more can be written. */
  private streamUnwritable(): boolean {
    if (this.transport !== 'http2') return false;
    const stream = this.socket as ClientHttp2Stream;
    return stream.writableEnded || stream.closed || stream.destroyed;
  }

  /** Writes on its own: whatever was coalesced before goes first. */
  private writeNow(bytes: Buffer): void {
    if (this.state === 'closed' || this.socket.destroyed || this.streamUnwritable()) return;
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
    if (this.transport === 'http2' && !this.droppedByMe && !this.serverEndedStream) {
      // The stream closed without the server's END_STREAM and without our reset: the server reset it.
      const stream = this.socket as ClientHttp2Stream;
      this.serverResetStream = stream.rstCode ?? http2Constants.NGHTTP2_NO_ERROR;
      this.wasNotCleanReason ??= `the server reset the stream (RST_STREAM code ${this.serverResetStream}) instead of ending it (END_STREAM)`;
    }
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

/** The opening handshake request as the server role needs it: the key and the extension offers. */
interface CheckedRequest {
  readonly key: string;
  readonly extensions: readonly string[];
}

/**
 * Checks the client's opening handshake (RFC 6455 §4.1, the client's requirements): `GET` with the
 * expected request target and HTTP/1.1, the Host it connected to, `Upgrade: websocket`, `Connection`
 * with `Upgrade`, a `Sec-WebSocket-Key` of 16 base64-encoded bytes and `Sec-WebSocket-Version: 13`,
 * each of those once. Returns what is wrong, or the key and the Sec-WebSocket-Extensions fields.
 */
function checkRequest(head: string, expected: AcceptOptions): string | CheckedRequest {
  const lines = head.split('\r\n');
  const requestLine = /^(\S+) (\S+) HTTP\/(\d+\.\d+)$/.exec(lines[0] ?? '');
  if (requestLine === null) return `not an HTTP request line: ${JSON.stringify(lines[0])}`;
  // RFC 6455 §4.1 item 2: the method MUST be GET and the HTTP version at least 1.1.
  if (requestLine[1] !== 'GET') return `the method is ${requestLine[1]}, not GET`;
  if (requestLine[3] !== '1.1') return `HTTP/${requestLine[3]}, not HTTP/1.1`;
  if (requestLine[2] !== expected.path) return `the request target is ${requestLine[2]}, not ${expected.path}`;
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return `malformed header line ${JSON.stringify(line)}`;
    const name = line.slice(0, colon).trim().toLowerCase();
    const values = headers.get(name) ?? [];
    values.push(line.slice(colon + 1).trim());
    headers.set(name, values);
  }
  const single = (name: string): string | undefined => {
    const values = headers.get(name);
    return values?.length === 1 ? values[0] : undefined;
  };
  const tokens = (name: string): string[] => (headers.get(name) ?? []).flatMap((v) => v.split(',')).map((t) => t.trim().toLowerCase());
  // RFC 6455 §4.1 items 4-9.
  if (single('host') !== expected.host) return `Host is ${JSON.stringify(headers.get('host') ?? null)}, not ${expected.host}`;
  if (!tokens('upgrade').includes('websocket')) return 'no "Upgrade: websocket"';
  if (!tokens('connection').includes('upgrade')) return 'no "Connection: Upgrade"';
  const key = single('sec-websocket-key');
  if (key === undefined) return 'no Sec-WebSocket-Key, or more than one';
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key) || Buffer.from(key, 'base64').length !== 16) {
    return `Sec-WebSocket-Key ${JSON.stringify(key)} is not 16 bytes in base64`;
  }
  if (single('sec-websocket-version') !== '13') return `Sec-WebSocket-Version is ${JSON.stringify(headers.get('sec-websocket-version') ?? null)}, not 13`;
  return { key, extensions: headers.get('sec-websocket-extensions') ?? [] };
}
