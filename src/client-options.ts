/**
 * The options of `connect()`, their defaults and their validation: the connection's limits and timers
 * are the server's (ConnectionOptions); the rest says what to ask the server for and how to reach it.
 */
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { HttpHeaders } from './errors.ts';
import { callback, resolveConnectionOptions, strings, type ConnectionOptions, type ResolvedConnection } from './options.ts';
import type { WebSocket } from './websocket.ts';

/** TLS settings for `wss:` (node:tls): trusted CAs, a client certificate, server name and verification. */
export type ClientTlsOptions = Pick<
  TlsConnectionOptions,
  'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername' | 'checkServerIdentity'
>;

export interface ClientOptions extends ConnectionOptions, ClientTlsOptions {
  /** Subprotocols to offer, in order of preference (RFC 6455 §4.1); `ws.subprotocol` is the one selected. */
  subprotocols?: readonly string[];
  /** Extra request headers (authorization, cookies...); the handshake's own cannot be overridden. */
  headers?: HttpHeaders;
  /** The Origin header (RFC 6455 §10.2), for servers that check it. Default: none. */
  origin?: string;
  /** Aborts the opening handshake: `connect()` rejects with the signal's reason. No effect once open. */
  signal?: AbortSignal;
  /**
   * Follow 3xx responses that carry a Location (at most `maxRedirects`). Default false: a redirect
   * rejects with a HandshakeError whose headers hold the Location. A redirect from `wss:` to `ws:` is
   * never followed, and Authorization and Cookie are not sent to another host (or port).
   */
  followRedirects?: boolean;
  /** Default 10. */
  maxRedirects?: number;
  /**
   * Receives socket errors of the open connection (it then ends with 1006). Default: console.error,
   * except for ECONNRESET and EPIPE.
   */
  onError?: (error: unknown, ws: WebSocket) => void;
}

const TLS_OPTIONS = [
  'ca',
  'cert',
  'key',
  'pfx',
  'passphrase',
  'rejectUnauthorized',
  'servername',
  'checkServerIdentity',
] as const satisfies ReadonlyArray<keyof ClientTlsOptions>;

/** ClientOptions with every default applied. */
export interface ResolvedClientOptions extends ResolvedConnection {
  readonly subprotocols: readonly string[];
  readonly headers: HttpHeaders;
  readonly origin: string | undefined;
  readonly signal: AbortSignal | undefined;
  readonly followRedirects: boolean;
  readonly maxRedirects: number;
  readonly tls: ClientTlsOptions;
  readonly onError: ((error: unknown, ws: WebSocket) => void) | undefined;
}

/** Applies the defaults and checks every option; throws RangeError or TypeError naming the option. */
export function resolveClientOptions(options: ClientOptions): ResolvedClientOptions {
  const connection = resolveConnectionOptions(options);
  const { headers = {}, origin, signal } = options;
  if (typeof headers !== 'object' || headers === null) throw new TypeError('headers must be an object');
  if (origin !== undefined && typeof origin !== 'string') throw new TypeError('origin must be a string');
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('signal must be an AbortSignal');
  const followRedirects = options.followRedirects ?? false;
  if (typeof followRedirects !== 'boolean') throw new TypeError('followRedirects must be a boolean');
  const maxRedirects = options.maxRedirects ?? 10;
  if (!Number.isSafeInteger(maxRedirects) || maxRedirects < 0) {
    throw new RangeError(`maxRedirects must be a non-negative integer, got ${String(maxRedirects)}`);
  }
  // Only the settings given: tls.connect spreads its defaults under ours, so an undefined
  // checkServerIdentity would replace Node's own check.
  const tls: Record<string, unknown> = {};
  for (const name of TLS_OPTIONS) {
    if (options[name] !== undefined) tls[name] = options[name];
  }
  return {
    ...connection,
    subprotocols: strings(options, 'subprotocols') ?? [],
    headers,
    origin,
    signal,
    followRedirects,
    maxRedirects,
    tls: tls as ClientTlsOptions,
    onError: callback<(error: unknown, ws: WebSocket) => void, ClientOptions>(options, 'onError'),
  };
}
