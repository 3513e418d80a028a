/**
 * An HTTP/2 WebSocket client for the tests (RFC 8441): `node:http2` opens the session and sends the
 * extended CONNECT, and our own `WebSocket` in the client role runs over the stream, so the frames on
 * it are masked client frames from the same sans-I/O core. `openSession` waits for the server's
 * SETTINGS and fails unless they enable extended CONNECT (RFC 8441 §3).
 */
import { readFileSync } from 'node:fs';
import {
  connect as http2Connect,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { resolveConnectionOptions, type ConnectionOptions, type ConnectionSettings } from '../../src/options.ts';
import { WebSocket } from '../../src/websocket.ts';
import { withTimeout } from './server.ts';

export const FIXTURE_KEY = readFileSync(new URL('../fixtures/key.pem', import.meta.url));
export const FIXTURE_CERT = readFileSync(new URL('../fixtures/cert.pem', import.meta.url));
/** TLS options for a server with the self-signed fixture certificate (CN localhost, SAN 127.0.0.1). */
export const TLS = { key: FIXTURE_KEY, cert: FIXTURE_CERT };

/** Opens an HTTP/2 session to `https://127.0.0.1:port` and waits for the server's SETTINGS. */
export async function openSession(port: number): Promise<ClientHttp2Session> {
  const session = http2Connect(`https://127.0.0.1:${port}`, { ca: FIXTURE_CERT, servername: 'localhost' });
  session.on('error', () => undefined);
  const settings = await withTimeout(
    new Promise<{ enableConnectProtocol?: boolean }>((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    }),
    5000,
    'the server SETTINGS',
  );
  if (settings.enableConnectProtocol !== true) {
    session.destroy();
    throw new Error('the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL = 1');
  }
  return session;
}

export interface ConnectResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders & IncomingHttpStatusHeader;
  readonly stream: ClientHttp2Stream;
}

/** The header block of an extended CONNECT for `path` (RFC 8441 §4–5), `headers` overriding any of it. */
export function connectHeaders(path: string, headers: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  return {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': path,
    ':authority': 'localhost',
    'sec-websocket-version': '13',
    ...headers,
  };
}

/** Sends an extended CONNECT (see connectHeaders) and resolves with the response head and the stream. */
export function extendedConnect(
  session: ClientHttp2Session,
  path: string,
  headers: OutgoingHttpHeaders = {},
): Promise<ConnectResponse> {
  const stream = session.request(connectHeaders(path, headers));
  stream.on('error', () => undefined);
  return withTimeout(
    new Promise<ConnectResponse>((resolve, reject) => {
      stream.once('response', (response) => resolve({ status: Number(response[':status']), headers: response, stream }));
      stream.once('close', () => reject(new Error(`stream closed before a response (RST code ${stream.rstCode})`)));
    }),
    5000,
    `the response to CONNECT ${path}`,
  );
}

/** Reads a refused stream's body to its end. */
export async function readBody(stream: ClientHttp2Stream): Promise<string> {
  let body = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) body += chunk as string;
  return body;
}

/** Our WebSocket in the client role over an accepted stream (its response must be a 200). */
export function webSocketOverStream(
  response: ConnectResponse,
  options: ConnectionOptions = {},
  onError: (error: unknown) => void = () => undefined,
): WebSocket {
  if (response.status !== 200) throw new Error(`the server answered ${response.status}, not 200`);
  const settings: ConnectionSettings = {
    ...resolveConnectionOptions(options).settings,
    onError,
    onClosed: () => undefined,
    topics: null,
  };
  const protocol = response.headers['sec-websocket-protocol'];
  return new WebSocket(
    response.stream,
    Buffer.alloc(0),
    null,
    { url: '', path: '', params: {}, headers: response.headers, remoteAddress: undefined },
    settings,
    { subprotocols: [], subprotocol: typeof protocol === 'string' ? protocol : null, extensions: '', deflate: null },
  );
}

/** Extended CONNECT then a WebSocket over the stream: the one-call form of the two above. */
export async function connectOverSession(
  session: ClientHttp2Session,
  path: string,
  headers: OutgoingHttpHeaders = {},
  options: ConnectionOptions = {},
): Promise<WebSocket> {
  return webSocketOverStream(await extendedConnect(session, path, headers), options);
}
