/**
 * The options of a connection (both roles) and of the server, their defaults, and their validation:
 * done once, when the server is made or `connect()` is called, so a bad value is a RangeError/TypeError
 * from `new WebSocketServer()` / `serve()` / `connect()`, never a surprise inside a later `accept()`.
 */
import { DEFAULT_MAX_MESSAGE_SIZE } from './constants.ts';
import { resolveDeflateOptions, type DeflateSettings, type PerMessageDeflateOptions } from './protocol/permessage-deflate.ts';
import type { Backplane, TopicHub } from './topics.ts';
import type { WebSocket } from './websocket.ts';

/** What a send to a connection whose output is over `maxBufferedAmount` does (see ServerOptions). */
export type SlowConsumerPolicy = 'skip' | 'close';

/** The limits and timers of one connection, the same on the server and on the client. */
export interface ConnectionOptions {
  /** Largest message accepted (all fragments); larger closes with 1009. Default 16 MiB. */
  maxMessageSize?: number;
  /** Largest single frame accepted; larger closes with 1009. Default: maxMessageSize. */
  maxFrameSize?: number;
  /** Received bytes waiting for the handler above which the socket stops being read. Default 1 MiB. */
  inboundHighWaterMark?: number;
  /** Received bytes waiting for the handler at or below which reading resumes. Default: a quarter of inboundHighWaterMark. */
  inboundLowWaterMark?: number;
  /**
   * Unsent output (bytes written to the socket, not yet taken by the operating system) above which
   * the socket stops being read, so a peer that does not read cannot make the server answer more
   * (pongs, echoes). Reading resumes when the output has drained. Default 1 MiB.
   */
  outboundHighWaterMark?: number;
  /**
   * Hard limit of a connection's unsent output: a message sent while the output is above it meets the
   * `slowConsumer` policy, except one awaited `send()`, which waits for the drain. Default 4 MiB.
   */
  maxBufferedAmount?: number;
  /**
   * For a send (fire-and-forget `send()`, `broadcast()`, a prepared message, `ping()`) to a connection
   * over `maxBufferedAmount`: `skip` (default) drops the message (`send()` rejects with SlowConsumer,
   * `broadcast()` counts it as skipped); `close` closes the connection with 1008 "slow consumer".
   */
  slowConsumer?: SlowConsumerPolicy;
  /**
   * Server: time for the handler to accept or refuse (and, standalone, for the request headers).
   * Client: time from `connect()` to a verified 101, TCP, TLS and redirects included. Default 10 s.
   */
  handshakeTimeout?: number;
  /** Time to wait for the peer's close frame and TCP close after ours. Default 5 s. */
  closeTimeout?: number;
  /** Close with 1001 after this long without traffic; 0 (default) disables it. */
  idleTimeout?: number;
  /**
   * Ping every open connection this often and close with 1011 one that has not answered the previous
   * ping; 0 (default) disables it.
   */
  heartbeatInterval?: number;
  /**
   * permessage-deflate (RFC 7692): `true` for the defaults, or settings (see PerMessageDeflateOptions).
   * A server accepts it when a client offers it (every browser does); a client offers it. Off by
   * default. `maxMessageSize` applies to the decompressed size.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions;
}

export interface ServerOptions extends ConnectionOptions {
  /** Refuse upgrades with 503 beyond this many connections. Default: no limit. */
  maxConnections?: number;
  /**
   * WebSockets one HTTP/2 connection may carry at once (RFC 8441); a further extended CONNECT on it is
   * refused with 503. Bounds what one TCP connection can hold. Default 100.
   */
  maxSessionStreams?: number;
  /** Browser origins allowed to connect (RFC 6455 §10.2); others get 403. Requests without Origin pass. Default: all. */
  allowedOrigins?: readonly string[];
  /** Subprotocols the server speaks: `accept()` without a subprotocol picks the client's preferred one of these. */
  subprotocols?: readonly string[];
  /**
   * Carries `publish()` to the servers of other processes or machines: `clusterBackplane()` between
   * `node:cluster` workers, `redisBackplane()` through Redis, or your own (see Backplane). Default: none,
   * topics stay within this server. `server.close()` closes it.
   */
  backplane?: Backplane;
  /** Runs before the route's handler; throw HandshakeError (any status) or WebSocketException (403) to refuse. */
  verify?: (ws: WebSocket) => unknown;
  /**
   * Receives unexpected handler errors (mapped to HTTP 500 or close 1011) and socket errors (the
   * connection then ends with 1006). Default: console.error, except for ECONNRESET and EPIPE (a peer
   * that vanished, an everyday event).
   */
  onError?: (error: unknown, ws: WebSocket) => void;
}

/** The limits and timers every connection of a server runs with, validated (not exported from the package). */
export interface ConnectionSettings {
  readonly maxMessageSize: number;
  readonly maxFrameSize: number;
  readonly inboundHighWaterMark: number;
  readonly inboundLowWaterMark: number;
  readonly outboundHighWaterMark: number;
  readonly maxBufferedAmount: number;
  readonly slowConsumer: SlowConsumerPolicy;
  /** How long to wait for the peer's close frame, and then for its TCP close, before dropping it. */
  readonly closeTimeout: number;
  /** Inactivity after which the connection is closed with 1001; 0 disables it. */
  readonly idleTimeout: number;
  /** Time for the handler to accept or refuse before the handshake is refused with 408. */
  readonly handshakeTimeout: number;
  /** permessage-deflate settings, or null when the server does not offer to compress. */
  readonly deflate: DeflateSettings | null;
  /** Receives socket errors (one shared function per server: no closure per connection). */
  readonly onError: (error: unknown, ws: WebSocket) => void;
  /** Told once when a connection's socket has closed (the server leaves it out of `clients`). */
  readonly onClosed: (ws: WebSocket) => void;
  /** The server's topics (one hub per server, shared by its connections); null on a client. */
  readonly topics: TopicHub | null;
}

/** ConnectionOptions with every default applied. */
export interface ResolvedConnection {
  readonly settings: Omit<ConnectionSettings, 'onError' | 'onClosed' | 'topics'>;
  readonly heartbeatInterval: number;
}

/** ServerOptions with every default applied (not exported from the package). */
export interface ResolvedOptions extends ResolvedConnection {
  readonly maxConnections: number;
  readonly maxSessionStreams: number;
  readonly allowedOrigins: ReadonlySet<string> | null;
  readonly subprotocols: readonly string[];
  readonly verify: ((ws: WebSocket) => unknown) | undefined;
  readonly onError: ((error: unknown, ws: WebSocket) => void) | undefined;
  readonly backplane: Backplane | null;
}

/** Socket errors that only mean the peer went away: the connection reports 1006, nothing to log. */
const ORDINARY_SOCKET_ERRORS: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE']);

/** Wraps an `onError` hook so that a hook that throws cannot take the server or the process down. */
export function reportSafely(onError: (error: unknown, ws: WebSocket) => void): (error: unknown, ws: WebSocket) => void {
  return (error, ws) => {
    try {
      onError(error, ws);
    } catch {
      // A failing error hook is ignored: there is nowhere further to report it.
    }
  };
}

export function defaultOnError(error: unknown): void {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && ORDINARY_SOCKET_ERRORS.has(code)) return;
  console.error('rfc6455: unhandled error in a WebSocket connection:', error);
}

const MiB = 1024 * 1024;

/** Node's timers fire at once for delays beyond 2^31 − 1 ms: a longer timeout would not be one. */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** A byte count: a non-negative integer, or Infinity where `unbounded` says it may be. */
function bytes(options: ConnectionOptions, name: keyof ConnectionOptions, fallback: number, unbounded = false): number {
  const value = options[name] ?? fallback;
  const valid =
    typeof value === 'number' && value >= 0 && (Number.isSafeInteger(value) || (unbounded && value === Infinity));
  if (!valid) {
    throw new RangeError(
      `${name} must be a non-negative integer number of bytes${unbounded ? ' (or Infinity)' : ''}, got ${String(value)}`,
    );
  }
  return value;
}

/** A duration in milliseconds; `allowZero` where 0 means "off". */
export function milliseconds<T extends object>(options: T, name: keyof T & string, fallback: number, allowZero: boolean): number {
  const value = options[name] ?? fallback;
  const valid = typeof value === 'number' && Number.isFinite(value) && value <= MAX_TIMER_DELAY && (allowZero ? value >= 0 : value > 0);
  if (!valid) {
    throw new RangeError(
      `${name} must be a number of milliseconds ${allowZero ? 'from 0 (off)' : 'from 1'} to ${MAX_TIMER_DELAY}, got ${String(value)}`,
    );
  }
  return value;
}

export function strings<T extends object>(options: T, name: keyof T & string): readonly string[] | undefined {
  const value = options[name];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new TypeError(`${name} must be an array of strings`);
  }
  return value;
}

export function callback<T, O extends object = ServerOptions>(options: O, name: keyof O & string): T | undefined {
  const value = options[name];
  if (value !== undefined && typeof value !== 'function') throw new TypeError(`${name} must be a function`);
  return value as T | undefined;
}

/** Applies the defaults to the options both roles share; throws RangeError or TypeError naming the option. */
export function resolveConnectionOptions(options: ConnectionOptions): ResolvedConnection {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const maxMessageSize = bytes(options, 'maxMessageSize', DEFAULT_MAX_MESSAGE_SIZE, true);
  const maxFrameSize = bytes(options, 'maxFrameSize', maxMessageSize, true);
  const inboundHighWaterMark = bytes(options, 'inboundHighWaterMark', MiB);
  const inboundLowWaterMark = bytes(options, 'inboundLowWaterMark', Math.floor(inboundHighWaterMark / 4));
  if (inboundLowWaterMark > inboundHighWaterMark) {
    throw new RangeError(`inboundLowWaterMark (${inboundLowWaterMark}) must not exceed inboundHighWaterMark (${inboundHighWaterMark})`);
  }
  const maxBufferedAmount = bytes(options, 'maxBufferedAmount', 4 * MiB);
  const outboundHighWaterMark = bytes(options, 'outboundHighWaterMark', Math.min(MiB, maxBufferedAmount));
  if (outboundHighWaterMark > maxBufferedAmount) {
    // Reading stops before the hard limit, so traffic that only answers the peer never meets the policy.
    throw new RangeError(`outboundHighWaterMark (${outboundHighWaterMark}) must not exceed maxBufferedAmount (${maxBufferedAmount})`);
  }
  const slowConsumer = options.slowConsumer ?? 'skip';
  if (slowConsumer !== 'skip' && slowConsumer !== 'close') {
    throw new TypeError(`slowConsumer must be 'skip' or 'close', got ${String(slowConsumer)}`);
  }
  return {
    settings: {
      maxMessageSize,
      maxFrameSize,
      inboundHighWaterMark,
      inboundLowWaterMark,
      outboundHighWaterMark,
      maxBufferedAmount,
      slowConsumer,
      closeTimeout: milliseconds(options, 'closeTimeout', 5000, true),
      idleTimeout: milliseconds(options, 'idleTimeout', 0, true),
      handshakeTimeout: milliseconds(options, 'handshakeTimeout', 10_000, false),
      deflate: resolveDeflateOptions(options.perMessageDeflate),
    },
    heartbeatInterval: milliseconds(options, 'heartbeatInterval', 0, true),
  };
}

/** Applies the defaults and checks every option; throws RangeError or TypeError naming the option. */
export function resolveOptions(options: ServerOptions): ResolvedOptions {
  const connection = resolveConnectionOptions(options);
  const maxConnections = options.maxConnections ?? Infinity;
  if (!(maxConnections === Infinity || (Number.isSafeInteger(maxConnections) && maxConnections >= 0))) {
    throw new RangeError(`maxConnections must be a non-negative integer (or Infinity), got ${String(maxConnections)}`);
  }
  const maxSessionStreams = options.maxSessionStreams ?? 100;
  if (!(Number.isSafeInteger(maxSessionStreams) && maxSessionStreams >= 1)) {
    throw new RangeError(`maxSessionStreams must be a positive integer, got ${String(maxSessionStreams)}`);
  }
  const allowedOrigins = strings(options, 'allowedOrigins');
  return {
    ...connection,
    maxConnections,
    maxSessionStreams,
    allowedOrigins: allowedOrigins === undefined ? null : new Set(allowedOrigins),
    subprotocols: strings(options, 'subprotocols') ?? [],
    verify: callback(options, 'verify'),
    onError: callback(options, 'onError'),
    backplane: backplaneOf(options),
  };
}

function backplaneOf(options: ServerOptions): Backplane | null {
  const backplane = options.backplane;
  if (backplane === undefined) return null;
  for (const method of ['start', 'subscribe', 'unsubscribe', 'publish', 'close'] as const) {
    if (typeof (backplane as Partial<Backplane> | null)?.[method] !== 'function') {
      throw new TypeError(`backplane must implement Backplane (its ${method} is not a function)`);
    }
  }
  return backplane;
}
