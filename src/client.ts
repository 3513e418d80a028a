/**
 * `connect()`: the client (RFC 6455 §4.1), the HTTP/1.1 transport of the client side. It opens TCP
 * (`ws:`, node:net) or TLS (`wss:`, node:tls), sends the request the pure `clientRequest` builds,
 * reads the response with Node's HTTP parser, has `verifyResponse` check it, and hands the socket to
 * the same WebSocket and socket driver the server uses, in the client role (masking, and waiting for
 * the server to close TCP first, are the protocol core's part).
 */
import { request as httpRequest, type ClientRequest as HttpClientRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect, isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { clientRequest, parseWebSocketUrl, verifyResponse, type ClientRequest } from './client-handshake.ts';
import { resolveClientOptions, type ClientOptions, type ResolvedClientOptions } from './client-options.ts';
import { HandshakeError, type HttpHeaders } from './errors.ts';
import { headerValue } from './handshake.ts';
import { defaultOnError, reportSafely, type ConnectionSettings } from './options.ts';
import { PerMessageDeflate } from './protocol/deflate-codec.ts';
import { WebSocket } from './websocket.ts';

export type { ClientOptions };

/** A refusal's body is kept up to this size for the HandshakeError (a larger one is cut short). */
const MAX_REFUSAL_BODY = 64 * 1024;

const EMPTY = Buffer.alloc(0);
const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** Request headers that carry credentials: never sent on to a host the user did not name. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

function ignore(): void {}

/**
 * Opens a WebSocket connection to `url` (`ws://` or `wss://`) and resolves with it once the server's
 * 101 response has been verified (RFC 6455 §4.1). Rejects with:
 * - HandshakeError when the server answered but not with an acceptable 101: a refusal (401, 403, 404,
 *   503...), a redirect (unless `followRedirects`), or a 101 that fails a check; `status`, `headers`
 *   and `body` are what the server sent;
 * - Node's own error when no response came (ECONNREFUSED, a TLS failure, a response that is not HTTP);
 * - a `TimeoutError` DOMException after `handshakeTimeout`, and the signal's reason when `signal` aborts;
 * - RangeError/TypeError for an invalid URL or option, before anything is sent.
 */
export async function connect(url: string | URL, options: ClientOptions = {}): Promise<WebSocket> {
  const resolved = resolveClientOptions(options);
  const settings: ConnectionSettings = {
    ...resolved.settings,
    onError: resolved.onError === undefined ? defaultOnError : reportSafely(resolved.onError),
    onClosed: ignore,
    topics: null,
  };
  let target = parseWebSocketUrl(url);
  let headers = resolved.headers;
  const deadline = Date.now() + settings.handshakeTimeout;
  for (let redirects = 0; ; redirects++) {
    const request = clientRequest(target, {
      subprotocols: resolved.subprotocols,
      origin: resolved.origin,
      headers,
      deflate: settings.deflate,
    });
    try {
      return await attempt(request, resolved, settings, deadline);
    } catch (error) {
      const location = error instanceof HandshakeError && resolved.followRedirects ? redirectTarget(error, request) : null;
      if (location === null) throw error;
      const refused = error as HandshakeError;
      if (redirects >= resolved.maxRedirects) {
        throw new HandshakeError(refused.status, `more than ${resolved.maxRedirects} redirects`, refused.headers, refused.body ?? EMPTY);
      }
      // A redirect must not turn TLS off: wss: to ws: would send the request in clear.
      if (request.secure && location.protocol !== 'wss:') {
        throw new HandshakeError(refused.status, `refused to follow a redirect from wss: to ${location.href}`, refused.headers, refused.body ?? EMPTY);
      }
      if (location.host !== request.url.host) headers = withoutCredentials(headers);
      target = location;
    }
  }
}

/** The URL a 3xx HandshakeError points to, resolved against the request's, or null for anything else. */
function redirectTarget(error: HandshakeError, request: ClientRequest): URL | null {
  if (error.status < 300 || error.status >= 400) return null;
  const location = headerValue(error.headers, 'location');
  if (location === undefined) return null;
  try {
    return parseWebSocketUrl(new URL(location, request.url.href.replace(/^ws/, 'http')));
  } catch {
    return null;
  }
}

function withoutCredentials(headers: HttpHeaders): HttpHeaders {
  const kept: Record<string, string | readonly string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!CREDENTIAL_HEADERS.has(name.toLowerCase())) kept[name] = value;
  }
  return kept;
}

/** One request and its response: a WebSocket, or a rejection (a redirect is a HandshakeError here). */
function attempt(
  request: ClientRequest,
  resolved: ResolvedClientOptions,
  settings: ConnectionSettings,
  deadline: number,
): Promise<WebSocket> {
  return new Promise<WebSocket>((resolve, reject) => {
    const signal = resolved.signal;
    if (signal?.aborted === true) {
      reject(signal.reason);
      return;
    }
    const tls = resolved.tls;
    const http: HttpClientRequest = httpRequest({
      method: 'GET',
      host: request.hostname,
      port: request.port,
      path: request.path,
      headers: request.headers as Record<string, string | string[]>,
      setHost: false,
      // ws: over node:net, wss: over node:tls; ALPN says HTTP/1.1, the protocol this request speaks.
      createConnection: request.secure
        ? () =>
            tlsConnect({
              ...tls,
              host: request.hostname,
              port: request.port,
              // RFC 6066 §3: SNI carries host names only, never an IP literal.
              servername: tls.servername ?? (isIP(request.hostname) === 0 ? request.hostname : undefined),
              ALPNProtocols: ['http/1.1'],
            })
        : () => netConnect({ host: request.hostname, port: request.port }),
    });
    // Kept to be destroyed on failure: after a keep-alive refusal Node detaches the socket from the
    // request (destroying the request no longer reaches it), and without an agent nobody would close
    // it, nor listen for its errors.
    let socket: Duplex | null = null;
    http.once('socket', (opened: Duplex) => {
      socket = opened;
    });
    let settled = false;
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const fail = (error: unknown): void => {
      if (!finish()) return;
      http.destroy();
      socket?.destroy();
      reject(error);
    };
    const onAbort = (): void => fail(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(
      () => fail(new DOMException(`WebSocket opening handshake timed out after ${settings.handshakeTimeout} ms`, 'TimeoutError')),
      Math.max(0, deadline - Date.now()),
    );
    http.on('error', fail);
    http.on('upgrade', (response: IncomingMessage, upgraded: Duplex, head: Buffer) => {
      if (settled) {
        upgraded.destroy();
        return;
      }
      let agreement;
      try {
        agreement = verifyResponse({ status: response.statusCode ?? 0, headers: response.headers, body: EMPTY }, request);
      } catch (error) {
        upgraded.destroy();
        fail(error);
        return;
      }
      finish();
      (upgraded as Duplex & { setNoDelay?(noDelay: boolean): void }).setNoDelay?.(true);
      const deflate =
        agreement.deflate === null ? null : new PerMessageDeflate(agreement.deflate, settings.deflate!, 'client');
      const ws = new WebSocket(
        upgraded,
        head,
        null,
        {
          url: request.url.href,
          path: request.url.pathname,
          params: NO_PARAMS,
          headers: response.headers,
          remoteAddress: (upgraded as Duplex & { remoteAddress?: string }).remoteAddress,
        },
        settings,
        { subprotocols: request.subprotocols, subprotocol: agreement.subprotocol, extensions: agreement.extensions, deflate },
      );
      if (resolved.heartbeatInterval > 0) startHeartbeat(ws, resolved.heartbeatInterval);
      resolve(ws);
    });
    http.on('response', (response: IncomingMessage) => {
      // Not an upgrade: a refusal, a redirect, or a 101 Node did not take as one (no Upgrade or
      // Connection header). Its body is read (bounded) for the HandshakeError, except after a 101,
      // where whatever follows is not an HTTP body.
      const verify = (body: Buffer): void => {
        try {
          verifyResponse({ status: response.statusCode ?? 0, headers: response.headers, body }, request);
          // Unreachable while Node takes every 101 with Upgrade and Connection as an upgrade: kept so
          // that no response can ever settle as a connection here.
          fail(new HandshakeError(response.statusCode ?? 101, 'the connection was not handed over as upgraded', {}, body));
        } catch (error) {
          fail(error);
        }
      };
      if (response.statusCode === 101) {
        verify(EMPTY);
        return;
      }
      const chunks: Buffer[] = [];
      let length = 0;
      response.on('data', (chunk: Buffer) => {
        if (length >= MAX_REFUSAL_BODY) return;
        chunks.push(chunk);
        length += chunk.length;
        if (length >= MAX_REFUSAL_BODY) verify(Buffer.concat(chunks).subarray(0, MAX_REFUSAL_BODY));
      });
      response.on('end', () => verify(Buffer.concat(chunks)));
      response.on('error', () => verify(Buffer.concat(chunks)));
    });
    http.end();
  });
}

/** RFC 6455 §5.5.2: a ping every `interval`; an unanswered one closes the connection with 1011. */
function startHeartbeat(ws: WebSocket, interval: number): void {
  const timer = setInterval(beat, interval, ws);
  // The socket keeps the process alive while the connection is open, not the heartbeat.
  timer.unref();
  void ws.whenClosed().then(() => clearInterval(timer));
}

function beat(ws: WebSocket): void {
  ws.beat();
}
