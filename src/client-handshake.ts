/**
 * The client side of the opening handshake (RFC 6455 §4.1) as pure functions, next to the server's in
 * `handshake.ts`: build the request (with its fresh key), then verify the response the server sent,
 * given as a transport-neutral `{ status, headers, body }`. A failed check throws a HandshakeError
 * that carries the whole response, so the caller can read a 401/403/404/503 and its body.
 */
import { randomBytes } from 'node:crypto';
import { HandshakeError, type HttpHeaders } from './errors.ts';
import { acceptKey, checkHeaders, hasToken, headerValue, splitHeaderList, type RequestHeaders } from './handshake.ts';
import { parseExtensionHeader, TOKEN } from './protocol/extension-header.ts';
import {
  acceptDeflateResponse,
  deflateOffer,
  PERMESSAGE_DEFLATE,
  type DeflateParameters,
  type DeflateSettings,
} from './protocol/permessage-deflate.ts';

/** What a client asks for in its handshake (see `clientRequest`). */
export interface ClientRequestOptions {
  /** Subprotocols offered, in order of preference (RFC 6455 §4.1 item 10). */
  readonly subprotocols?: readonly string[] | undefined;
  /** The Origin header (§4.1 item 8): sent by browsers; optional for other clients. */
  readonly origin?: string | undefined;
  /** Extra request headers (authorization, cookies...). The handshake's own headers cannot be overridden. */
  readonly headers?: HttpHeaders | undefined;
  /** permessage-deflate settings to offer (RFC 7692), or null not to offer it. */
  readonly deflate?: DeflateSettings | null | undefined;
}

/** An opening handshake request, independent of the transport that sends it. */
export interface ClientRequest {
  /** The WebSocket URI (RFC 6455 §3), `ws:` or `wss:`, without a fragment. */
  readonly url: URL;
  /** Whether the connection runs over TLS (`wss:`). */
  readonly secure: boolean;
  /** The host to connect to: an IPv6 literal without its brackets. */
  readonly hostname: string;
  readonly port: number;
  /** The request target: path and query (§4.1 item 3: the resource name). */
  readonly path: string;
  /** Sec-WebSocket-Key: base64 of 16 random bytes (§4.1 item 7). */
  readonly key: string;
  readonly subprotocols: readonly string[];
  /** The permessage-deflate settings offered, or null. */
  readonly deflate: DeflateSettings | null;
  /** Every header field of the request, Host first. */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
}

/** What a verified response agreed on. */
export interface ClientAgreement {
  /** The subprotocol the server selected, or null. */
  readonly subprotocol: string | null;
  /** The response's Sec-WebSocket-Extensions value, '' when there is none. */
  readonly extensions: string;
  /** The permessage-deflate parameters agreed, or null when the server did not accept the offer. */
  readonly deflate: DeflateParameters | null;
}

/** A response as a client received it: status, headers with lower-case names (Node's `IncomingMessage`), body. */
export interface ReceivedResponse {
  readonly status: number;
  readonly headers: RequestHeaders;
  readonly body: Buffer;
}

const RESERVED_REQUEST_HEADERS = new Set([
  'host',
  'upgrade',
  'connection',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
]);

/** RFC 6455 §4.1 item 7: a nonce of 16 random bytes, base64-encoded, fresh for every connection. */
export function generateKey(): string {
  return randomBytes(16).toString('base64');
}

/**
 * Parses a WebSocket URI (RFC 6455 §3): `ws:` or `wss:` (`http:`/`https:` are taken as their WebSocket
 * equivalents, as browsers do), a host, no fragment. Throws TypeError otherwise.
 */
export function parseWebSocketUrl(input: string | URL): URL {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    throw new TypeError(`invalid WebSocket URL: ${String(input)}`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new TypeError(`a WebSocket URL must be ws: or wss:, got ${url.protocol}`);
  }
  // RFC 6455 §3: fragment identifiers are meaningless in WebSocket URIs and MUST NOT be used.
  if (url.hash !== '' || String(input).includes('#')) throw new TypeError('a WebSocket URL must not have a fragment');
  if (url.hostname === '') throw new TypeError('a WebSocket URL must have a host');
  // RFC 6455 §3: the ws-URI grammar has no user information; credentials belong in a header.
  if (url.username !== '' || url.password !== '') {
    throw new TypeError('a WebSocket URL must not carry user information: send credentials in the headers option');
  }
  return url;
}

/**
 * Builds the opening handshake request for `url` (RFC 6455 §4.1): a fresh key, the subprotocols and
 * extensions offered, Origin and extra headers. Throws TypeError for a bad URL, a subprotocol that is
 * not a token or is repeated (§4.1 item 10), or a header that is invalid or belongs to the handshake.
 */
export function clientRequest(input: string | URL, options: ClientRequestOptions = {}): ClientRequest {
  const url = parseWebSocketUrl(input);
  const secure = url.protocol === 'wss:';
  const subprotocols = [...(options.subprotocols ?? [])];
  const seen = new Set<string>();
  for (const protocol of subprotocols) {
    if (typeof protocol !== 'string' || !TOKEN.test(protocol)) {
      throw new TypeError(`invalid subprotocol ${JSON.stringify(protocol)}: it must be a token (RFC 6455 §4.1)`);
    }
    if (seen.has(protocol)) throw new TypeError(`subprotocol ${JSON.stringify(protocol)} is offered twice`);
    seen.add(protocol);
  }
  const extra = options.headers ?? {};
  for (const name of Object.keys(extra)) {
    if (RESERVED_REQUEST_HEADERS.has(name.toLowerCase())) {
      throw new TypeError(`header ${name} is set by the handshake and cannot be overridden`);
    }
  }
  checkHeaders(extra);
  const key = generateKey();
  const deflate = options.deflate ?? null;
  // RFC 6455 §4.1 item 4: Host is the host and, when not the scheme's default, the port (URL.host
  // already keeps an IPv6 literal in brackets and leaves a default port out).
  const headers: Record<string, string | readonly string[]> = {
    Host: url.host,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13',
  };
  if (subprotocols.length > 0) headers['Sec-WebSocket-Protocol'] = subprotocols.join(', ');
  if (deflate !== null) headers['Sec-WebSocket-Extensions'] = deflateOffer(deflate);
  if (options.origin !== undefined) {
    checkHeaders({ Origin: options.origin });
    headers['Origin'] = options.origin;
  }
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return {
    url,
    secure,
    hostname,
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
    path: (url.pathname === '' ? '/' : url.pathname) + url.search,
    key,
    subprotocols,
    deflate,
    headers: { ...headers, ...extra },
  };
}

/**
 * Verifies the server's response to `request` (RFC 6455 §4.1, the client's checks of the server's
 * handshake) and returns what it agreed on. Throws a HandshakeError carrying the response's status,
 * headers and body for anything else: a status other than 101 (refusals and redirects included), a
 * missing `Upgrade: websocket` or `Connection: Upgrade`, a wrong Sec-WebSocket-Accept, a subprotocol
 * or extension that was not offered, or an unacceptable permessage-deflate response.
 */
export function verifyResponse(response: ReceivedResponse, request: ClientRequest): ClientAgreement {
  const { status, headers } = response;
  const fail = (reason: string): HandshakeError => new HandshakeError(status, reason, toHttpHeaders(headers), response.body);
  if (status !== 101) {
    const location = headerValue(headers, 'location');
    const redirect = status >= 300 && status < 400 && location !== undefined;
    throw fail(redirect ? `redirected to ${location}` : 'the server did not switch protocols');
  }
  // §4.1 item 2: Upgrade is "websocket" (the whole value, case-insensitively); item 3: Connection
  // contains the token "Upgrade".
  if (headerValue(headers, 'upgrade')?.trim().toLowerCase() !== 'websocket') throw fail('Upgrade header must be "websocket"');
  if (!hasToken(headerValue(headers, 'connection'), 'upgrade')) throw fail('Connection header must include "Upgrade"');
  // §4.1 item 4: base64(SHA-1(key + GUID)), ignoring leading and trailing whitespace.
  if (headerValue(headers, 'sec-websocket-accept')?.trim() !== acceptKey(request.key)) {
    throw fail('Sec-WebSocket-Accept does not match the key sent');
  }
  // §4.1 item 6: at most one subprotocol, and only one that was offered.
  let subprotocol: string | null = null;
  const selected = headerValue(headers, 'sec-websocket-protocol');
  if (selected !== undefined) {
    const items = splitHeaderList(selected);
    if (items.length !== 1 || !request.subprotocols.includes(items[0]!)) {
      throw fail(`the server selected subprotocol ${JSON.stringify(selected)}, which was not offered`);
    }
    subprotocol = items[0]!;
  }
  // §4.1 item 5 and §9.1: only extensions that were offered, each once.
  const extensions = headerValue(headers, 'sec-websocket-extensions') ?? '';
  let deflate: DeflateParameters | null = null;
  for (const element of parseExtensionHeader(extensions)) {
    if (element.name !== PERMESSAGE_DEFLATE || request.deflate === null) {
      throw fail(`the server accepted extension ${JSON.stringify(element.name)}, which was not offered`);
    }
    if (deflate !== null) throw fail('the server accepted permessage-deflate twice');
    const agreed = acceptDeflateResponse(element, request.deflate);
    if (typeof agreed === 'string') throw fail(agreed);
    deflate = agreed;
  }
  return { subprotocol, extensions: extensions.trim(), deflate };
}

/** Node's header record without its undefined entries, as HandshakeError holds headers. */
function toHttpHeaders(headers: RequestHeaders): HttpHeaders {
  const result: Record<string, string | readonly string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) result[name] = value;
  }
  return result;
}
