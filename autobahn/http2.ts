/**
 * The replay over HTTP/2 (RFC 8441): the echo server with TLS (the test fixture's self-signed key and
 * certificate), serving HTTP/1.1 and HTTP/2 on one port through `listen({ tls })`, and ONE client
 * session on which every case opens its own extended CONNECT stream. One session for the whole run is
 * what a browser does (it puts every WebSocket to an origin on its one connection), and it makes the
 * run a test of stream isolation too: a case that fails its connection, resets its stream or floods it
 * must leave the session, and with it every later case, untouched. The watch below fails the run when
 * the session does not survive it.
 */
import { readFileSync } from 'node:fs';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import type { WebSocketServer } from '../src/index.ts';
import type { Http2Target } from './client.ts';
import { startEchoServer } from './suite.ts';

/** The test fixture: a self-signed certificate for CN localhost, SAN 127.0.0.1 (test/fixtures/README.md). */
export const FIXTURE_TLS = {
  key: readFileSync(new URL('../test/fixtures/key.pem', import.meta.url)),
  cert: readFileSync(new URL('../test/fixtures/cert.pem', import.meta.url)),
};

const OPEN_TIMEOUT_MS = 5000;

/** The echo server of `startEchoServer`, with TLS: `wss://`, HTTP/1.1 and HTTP/2 on one port. */
export async function startHttp2EchoServer(): Promise<{ server: WebSocketServer; port: number }> {
  const { server, target } = await startEchoServer({ tls: FIXTURE_TLS });
  return { server, port: target.port };
}

/** What happened to the shared session during a run, and whether it is still fit for another stream. */
export interface SessionWatch {
  readonly session: ClientHttp2Session;
  /** Session-level events seen (GOAWAY, errors, frame errors, the session closing), in order. */
  readonly events: readonly string[];
  /** Extended CONNECT streams opened on the session so far. */
  readonly streams: number;
  /** Null while the session is open and has seen no GOAWAY or session error; otherwise what went wrong. */
  problem(): string | null;
}

/**
 * Opens the one HTTP/2 session of a run to `https://127.0.0.1:port` (ALPN h2, the fixture certificate
 * as the only CA), waits for the server's SETTINGS and fails unless they enable extended CONNECT
 * (RFC 8441 §3). Its TLS socket has Nagle's algorithm off, as the replay's TCP sockets do. The
 * session keeps Node's default HTTP/2 settings (a 64 KiB flow-control window), so section 9's
 * 16 MiB messages also run through HTTP/2 flow control.
 */
export async function openHttp2Session(port: number): Promise<{ target: Http2Target; watch: SessionWatch }> {
  const authority = `127.0.0.1:${port}`;
  const session = http2Connect(`https://${authority}`, {
    createConnection: () => {
      const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: FIXTURE_TLS.cert, ALPNProtocols: ['h2'] });
      socket.setNoDelay(true);
      return socket;
    },
  });
  const events: string[] = [];
  let streams = 0;
  session.on('error', (error: Error) => events.push(`session error: ${error.message}`));
  session.on('goaway', (code: number, lastStreamId: number) => events.push(`GOAWAY from the server (code ${code}, last stream ${lastStreamId})`));
  session.on('frameError', (type: number, code: number, id: number) => events.push(`frame error (type ${type}, code ${code}, stream ${id})`));
  session.on('stream', () => events.push('the server pushed a stream'));
  session.on('close', () => events.push('the session closed'));
  const request = session.request.bind(session);
  // Counts the streams the cases open (every request on this session is a case's extended CONNECT).
  session.request = ((...args: Parameters<ClientHttp2Session['request']>) => {
    streams++;
    return request(...args);
  }) as ClientHttp2Session['request'];

  let timer: NodeJS.Timeout | undefined;
  try {
    const settings = await new Promise<{ enableConnectProtocol?: boolean }>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no HTTP/2 SETTINGS from ${authority} within ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS);
      session.once('remoteSettings', resolve);
      session.once('error', reject);
      session.once('close', () => reject(new Error(`the HTTP/2 session to ${authority} closed before the server's SETTINGS`)));
    });
    if (settings.enableConnectProtocol !== true) {
      throw new Error('the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3)');
    }
  } catch (error) {
    session.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const watch: SessionWatch = {
    session,
    events,
    get streams() {
      return streams;
    },
    problem() {
      if (events.length > 0) return events.join('; ');
      if (session.closed || session.destroyed) return 'the session is closed';
      return null;
    },
  };
  return { target: { session, authority, path: '/' }, watch };
}

/** Closes the session (GOAWAY, then the TLS connection once its streams are done), bounded in time. */
export async function closeHttp2Session(session: ClientHttp2Session, timeout = 1000): Promise<void> {
  if (session.destroyed) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      session.destroy();
      resolve();
    }, timeout);
    session.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
