/**
 * The server side of the opening handshake (RFC 6455 §4.2) as pure functions: they read a request's
 * method and headers and return a result or throw a HandshakeError with the HTTP status to answer
 * with, and they describe the response as a transport-neutral `{ status, headers, body }`. No socket
 * and no HTTP/1.1 syntax are involved (`http1.ts` serialises the result), so every refusal is testable
 * without a network and the same code can answer on an HTTP/2 stream (RFC 8441). The client side is
 * `client-handshake.ts`.
 */
import { createHash } from 'node:crypto';
import { WEBSOCKET_GUID } from './constants.ts';
import { HandshakeError, type HttpHeaders } from './errors.ts';
import { statusText } from './http1.ts';
import { parseExtensionHeader, TOKEN, type ExtensionOffer } from './protocol/extension-header.ts';

/**
 * A handshake response, independent of the HTTP version that carries it: the status, the header
 * fields (names as written, values checked for CR, LF and NUL) and the body (empty when accepted).
 */
export interface HandshakeResponse {
  readonly status: number;
  readonly headers: HttpHeaders;
  readonly body: string;
}

/** Request headers as Node's `IncomingMessage.headers` holds them: lower-case names. */
export type RequestHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

/** What the handshake needs of an HTTP request. */
export interface RequestHead {
  readonly method: string;
  /** `1.1` for HTTP/1.1; omitted when the transport is not HTTP/1.x. */
  readonly httpVersion?: string;
  readonly headers: RequestHeaders;
}

/**
 * A validated WebSocket opening request: an HTTP/1.1 upgrade (RFC 6455 §4.2.1) or an HTTP/2 extended
 * CONNECT (RFC 8441 §4–5).
 */
export interface UpgradeRequest {
  /**
   * Sec-WebSocket-Key, checked to be base64 of 16 bytes; null on HTTP/2, where the key and the
   * Sec-WebSocket-Accept answering it are not used (RFC 8441 §5).
   */
  readonly key: string | null;
  /** Sec-WebSocket-Protocol values in the client's order of preference (§4.1, §11.3.4). */
  readonly protocols: readonly string[];
  /**
   * The extensions offered in Sec-WebSocket-Extensions, in order, with their parameters (RFC 6455
   * §9.1). A malformed element is kept, marked, for the negotiation to skip: it never refuses the handshake.
   */
  readonly extensions: readonly ExtensionOffer[];
  /** The Origin header, if any (§10.2: a server may refuse origins it does not trust). */
  readonly origin: string | undefined;
  /** Host on HTTP/1.1, `:authority` on HTTP/2. */
  readonly host: string;
}

const NONE: readonly string[] = Object.freeze([]);

/** Base64 of exactly 16 bytes: 22 characters and `==` (RFC 6455 §4.1 item 7). */
const KEY = /^[A-Za-z0-9+/]{22}==$/;
/** A header value may not contain CR, LF or NUL (response splitting). */
const UNSAFE_VALUE = /[\r\n\0]/;

export function headerValue(headers: RequestHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.join(', ');
}

/** Splits a comma-separated header into trimmed, non-empty elements (RFC 7230 §7). */
export function splitHeaderList(value: string | undefined): string[] {
  if (value === undefined) return [];
  const items: string[] = [];
  for (const part of value.split(',')) {
    const item = part.trim();
    if (item !== '') items.push(item);
  }
  return items;
}

export function hasToken(value: string | undefined, token: string): boolean {
  return splitHeaderList(value).some((item) => item.toLowerCase() === token);
}

/**
 * Validates an opening handshake request (RFC 6455 §4.2.1) and returns what it asks for. Throws
 * HandshakeError: 405 (with `Allow: GET`) for another method, 426 (with `Sec-WebSocket-Version: 13`)
 * for another or no version (§4.2.2), 400 for anything else missing or malformed.
 */
export function parseUpgradeRequest(request: RequestHead): UpgradeRequest {
  const { headers } = request;
  // RFC 6455 §4.2.1 item 1: an HTTP/1.1 or higher GET request.
  if (request.method !== 'GET') throw new HandshakeError(405, 'WebSocket handshake requires GET', { Allow: 'GET' });
  if (request.httpVersion !== undefined && !/^(?:1\.[1-9]|[2-9](?:\.\d)?)$/.test(request.httpVersion)) {
    throw new HandshakeError(400, 'WebSocket handshake requires HTTP/1.1 or later');
  }
  // RFC 6455 §4.2.1 items 3 and 4: Upgrade contains "websocket", Connection contains "Upgrade",
  // both compared case-insensitively as tokens.
  if (!hasToken(headerValue(headers, 'upgrade'), 'websocket')) {
    throw new HandshakeError(400, 'Upgrade header must include "websocket"');
  }
  if (!hasToken(headerValue(headers, 'connection'), 'upgrade')) {
    throw new HandshakeError(400, 'Connection header must include "Upgrade"');
  }
  // RFC 6455 §4.2.1 item 2: a Host header field.
  const host = headerValue(headers, 'host');
  if (host === undefined || host.trim() === '') throw new HandshakeError(400, 'Host header is required');
  // RFC 6455 §4.2.2 / §4.4: an unsupported version is answered with 426 and the versions we speak.
  checkVersion(headers);
  // RFC 6455 §4.2.1 item 5: a key that base64-decodes to 16 bytes (a repeated header joins into an
  // invalid value and is refused too).
  const key = headerValue(headers, 'sec-websocket-key')?.trim();
  if (key === undefined || !KEY.test(key)) {
    throw new HandshakeError(400, 'Sec-WebSocket-Key must be base64 of 16 bytes');
  }
  return withOffers(headers, key, host);
}

/** Sec-WebSocket-Version must be 13, else 426 naming the version we speak (RFC 6455 §4.2.2, §4.4). */
function checkVersion(headers: RequestHeaders): void {
  const version = headerValue(headers, 'sec-websocket-version');
  if (version?.trim() !== '13') {
    throw new HandshakeError(426, 'Sec-WebSocket-Version must be 13', { 'Sec-WebSocket-Version': '13' });
  }
}

/** The offers both HTTP versions carry the same way: subprotocols, extensions and Origin. */
function withOffers(headers: RequestHeaders, key: string | null, host: string): UpgradeRequest {
  const offered = splitHeaderList(headerValue(headers, 'sec-websocket-protocol'));
  // Shared when empty: a connection keeps its offer for its whole life.
  const protocols = offered.length === 0 ? NONE : offered;
  // RFC 6455 §4.1 item 10: subprotocol names are tokens.
  for (const protocol of protocols) {
    if (!TOKEN.test(protocol)) throw new HandshakeError(400, 'Sec-WebSocket-Protocol contains an invalid value');
  }
  const extensions = parseExtensionHeader(headerValue(headers, 'sec-websocket-extensions'));
  return { key, protocols, extensions, origin: headerValue(headers, 'origin'), host };
}

/**
 * Whether an HTTP/2 request is an extended CONNECT for a WebSocket (RFC 8441 §4): `:method` CONNECT
 * with `:protocol` websocket. A plain CONNECT, or one for another protocol, is not a WebSocket's.
 */
export function isWebSocketConnect(headers: RequestHeaders): boolean {
  return headers[':method'] === 'CONNECT' && headers[':protocol'] === 'websocket';
}

/**
 * Validates an HTTP/2 extended CONNECT (RFC 8441 §4–5) and returns what it asks for, like
 * `parseUpgradeRequest` for HTTP/1.1. Throws HandshakeError: 405 (with `Allow: CONNECT`) for a request
 * that is not an extended CONNECT for websocket, 400 without `:scheme`, `:path` or `:authority`, 426
 * (with `Sec-WebSocket-Version: 13`) for another or no version.
 */
export function parseConnectRequest(headers: RequestHeaders): UpgradeRequest {
  if (!isWebSocketConnect(headers)) {
    throw new HandshakeError(405, 'a WebSocket over HTTP/2 is an extended CONNECT with :protocol websocket', {
      Allow: 'CONNECT',
    });
  }
  // RFC 8441 §4: an extended CONNECT carries :scheme and :path (unlike a plain CONNECT, RFC 9113
  // §8.5), and :authority names the host as Host does on HTTP/1.1 (RFC 9113 §8.3.1).
  for (const name of [':scheme', ':path', ':authority']) {
    const value = headerValue(headers, name);
    if (value === undefined || value.trim() === '') throw new HandshakeError(400, `${name} is required`);
  }
  // RFC 8441 §5: the version is checked as on HTTP/1.1; Sec-WebSocket-Key is not used.
  checkVersion(headers);
  return withOffers(headers, null, headerValue(headers, ':authority')!);
}

/** RFC 6455 §4.2.2 item 5.4: base64(SHA-1(key + GUID)). */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID, 'latin1').digest('base64');
}

/**
 * Picks the subprotocol to accept: the client's most preferred one the server supports, or null
 * (RFC 6455 §4.2.2 item 5.4: the server selects one or none; it must be one the client offered).
 */
export function selectSubprotocol(offered: readonly string[], supported: readonly string[]): string | null {
  for (const protocol of offered) {
    if (supported.includes(protocol)) return protocol;
  }
  return null;
}

/**
 * Checks header fields an application adds to a handshake message: names are tokens, values hold no
 * CR, LF or NUL (which would split the message). Throws TypeError naming the bad field.
 */
export function checkHeaders(headers: HttpHeaders): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) throw new TypeError(`invalid HTTP header name ${JSON.stringify(name)}`);
    for (const item of typeof value === 'string' ? [value] : value) {
      if (UNSAFE_VALUE.test(item)) throw new TypeError(`HTTP header ${name} contains CR, LF or NUL`);
    }
  }
}

/** How a handshake is accepted: by `ws.accept(options)`, and by `acceptResponse` below it. */
export interface AcceptOptions {
  /**
   * The subprotocol selected; it must be one the client offered (RFC 6455 §4.2.2). `accept()` without
   * it uses the server's pick from its `subprotocols` option; null selects none.
   */
  readonly subprotocol?: string | null | undefined;
  /** Extra response headers (cookies, for example). */
  readonly headers?: HttpHeaders | undefined;
}

/** Header fields HTTP/2 forbids (RFC 9113 §8.2.2): a response carrying one is malformed. */
export const CONNECTION_SPECIFIC_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

const RESERVED_RESPONSE_HEADERS = new Set([
  'upgrade',
  'connection',
  'sec-websocket-accept',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
]);

/**
 * The 101 Switching Protocols response (RFC 6455 §4.2.2 item 5), or on HTTP/2 the 200 (RFC 8441 §5).
 * `extensions` is the Sec-WebSocket-Extensions value of the extensions accepted (see
 * `negotiateDeflate`); without it the header is left out, which declines every offered extension
 * (§9.1). Throws TypeError for a subprotocol the client did not offer or an invalid or reserved header
 * (on HTTP/2 also a connection-specific one).
 */
export function acceptResponse(request: UpgradeRequest, options: AcceptOptions = {}, extensions = ''): HandshakeResponse {
  const { subprotocol: protocol, headers: extra = {} } = options;
  const http2 = request.key === null;
  // RFC 8441 §5: on HTTP/2 the answer is a 200 without Upgrade, Connection or Sec-WebSocket-Accept.
  const headers: Record<string, string | readonly string[]> = http2
    ? {}
    : { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Accept': acceptKey(request.key) };
  if (protocol !== undefined && protocol !== null) {
    // RFC 6455 §4.2.2 item 5.4: the selected subprotocol must be one the client offered.
    if (!request.protocols.includes(protocol)) {
      throw new TypeError(`subprotocol ${JSON.stringify(protocol)} was not offered by the client`);
    }
    headers['Sec-WebSocket-Protocol'] = protocol;
  }
  if (extensions !== '') {
    if (UNSAFE_VALUE.test(extensions)) throw new TypeError('Sec-WebSocket-Extensions contains CR, LF or NUL');
    headers['Sec-WebSocket-Extensions'] = extensions;
  }
  for (const name in extra) {
    const lower = name.toLowerCase();
    if (RESERVED_RESPONSE_HEADERS.has(lower)) {
      throw new TypeError(`header ${name} is set by the handshake and cannot be overridden`);
    }
    if (http2 && CONNECTION_SPECIFIC_HEADERS.has(lower)) {
      throw new TypeError(`header ${name} is connection-specific and not allowed on HTTP/2 (RFC 9113 §8.2.2)`);
    }
    headers[name] = extra[name]!;
  }
  checkHeaders(extra);
  return { status: http2 ? 200 : 101, headers, body: '' };
}

/** The plain-text body of a refusal: the reason, or the status text when there is none. */
export function refusalBody(error: HandshakeError): string {
  return (error.reason === '' ? statusText(error.status) : error.reason) + '\n';
}

/** Message framing is the transport's (Content-Length and Connection on HTTP/1.1): a caller's would contradict it. */
const FRAMING_HEADERS = new Set(['connection', 'content-length', 'transfer-encoding', 'content-type']);

/**
 * The HTTP error response for a refused handshake: the error's status and headers and a plain-text
 * body (the reason, or the status text). Header fields the transport frames the message with are left
 * to the transport.
 */
export function refusalResponse(error: HandshakeError): HandshakeResponse {
  const headers: Record<string, string | readonly string[]> = {};
  for (const [name, value] of Object.entries(error.headers)) {
    if (!FRAMING_HEADERS.has(name.toLowerCase())) headers[name] = value;
  }
  if (error.status === 426) {
    // RFC 7231 §6.5.15: a 426 response names the protocol to upgrade to.
    headers['Upgrade'] ??= 'websocket';
  }
  headers['Content-Type'] = 'text/plain; charset=utf-8';
  checkHeaders(headers);
  return { status: error.status, headers, body: refusalBody(error) };
}
