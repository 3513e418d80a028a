/**
 * A real browser over HTTP/2 (RFC 8441): headless Chromium, driven by playwright-core, loads a page
 * from an `http2.createSecureServer({ allowHTTP1: true })` with a WebSocketServer attached, and the
 * page's `new WebSocket('wss://...')` goes out as an extended CONNECT stream on the HTTP/2 connection
 * the page came on. Asserted on the server (the handler's `ws.httpVersion`, which session each stream
 * came on) and in the browser (its DevTools protocol sees a 200 to the handshake, not a 101).
 *
 * Chromium sends an extended CONNECT only on an HTTP/2 connection it already has to the same origin
 * whose SETTINGS had ENABLE_CONNECT_PROTOCOL = 1; with none, it opens a new connection offering only
 * `http/1.1` in ALPN and upgrades. So the page is loaded first, from the same origin.
 *
 * The certificate (test/fixtures, self-signed) is trusted with `--ignore-certificate-errors-spki-list`
 * (its public key's SHA-256): Chromium then verifies it as valid and the page is `secure`, where
 * playwright's `ignoreHTTPSErrors` would leave it `insecure-broken` with ERR_CERT_AUTHORITY_INVALID.
 *
 * Needs Debian's chromium (`apt-get install chromium`, at /usr/bin/chromium or $CHROMIUM_PATH) and
 * playwright-core (`npm ci`); skipped without them. `.ci/run` installs chromium.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { Browser, BrowserContext, BrowserType, Page } from 'playwright-core';
import { WebSocketDisconnect, WebSocketServer, type Handler, type ServerOptions } from '../src/index.ts';
import { FIXTURE_CERT, TLS } from './helpers/h2-client.ts';
import { deferred, until, withTimeout } from './helpers/server.ts';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const HOW_TO_GET_IT = 'install Debian\'s chromium (apt-get install chromium) and the dev dependencies (npm ci)';
/** Upper bound for any one browser step; the whole file stays under 30 s. */
const STEP = 10_000;

async function findChromium(): Promise<{ chromium: BrowserType } | { skip: string }> {
  if (!existsSync(CHROMIUM)) return { skip: `${CHROMIUM} not found: ${HOW_TO_GET_IT}` };
  try {
    const { chromium } = await import('playwright-core');
    return { chromium };
  } catch {
    return { skip: `playwright-core not installed: ${HOW_TO_GET_IT}` };
  }
}

const found = await findChromium();

/** base64 SHA-256 of the fixture certificate's SubjectPublicKeyInfo, as the Chromium flag wants it. */
const FIXTURE_SPKI = createHash('sha256')
  .update(new X509Certificate(FIXTURE_CERT).publicKey.export({ type: 'spki', format: 'der' }))
  .digest('base64');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  // No HTTP/3: the page and the WebSockets must share one TCP connection speaking HTTP/2.
  '--disable-quic',
  '--no-first-run',
  // No calls home (they are refused on a closed network and only add noise and delay).
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  `--ignore-certificate-errors-spki-list=${FIXTURE_SPKI}`,
];

/**
 * The page's own script: what the tests call with page.evaluate. `open` resolves with the socket once
 * open; its messages queue for `next()`; `closed` resolves with the close event.
 */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>rfc6455 over HTTP/2</title>
<script>
function open(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = protocols === undefined ? new WebSocket(url) : new WebSocket(url, protocols);
    ws.binaryType = 'arraybuffer';
    const queue = [];
    const waiters = [];
    ws.onmessage = (event) => {
      const waiter = waiters.shift();
      if (waiter) waiter(event.data);
      else queue.push(event.data);
    };
    const closed = new Promise((done) => {
      ws.onclose = (event) => done({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    });
    const next = () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((done) => waiters.push(done)));
    ws.onopen = () => resolve({ ws, next, closed });
    closed.then((event) => reject(new Error('closed before open: ' + event.code)));
  });
}

// Text: send, read the echo, close with 1000 from the page.
window.textEcho = async (url, text) => {
  const socket = await open(url);
  socket.ws.send(text);
  const echo = await socket.next();
  socket.ws.close(1000, 'page done');
  return { echo, protocol: socket.ws.protocol, close: await socket.closed, secureContext: isSecureContext };
};

// Binary: two sockets at once offering subprotocols, each sends size bytes of its own pattern and
// checks the server's echo; the server closes.
window.binaryPair = async (url, protocols, size) => {
  const byte = (i, seed) => (i * 31 + seed) & 255;
  const run = async (seed) => {
    const socket = await open(url, protocols);
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = byte(i, seed);
    socket.ws.send(data);
    const reply = await socket.next();
    const back = reply instanceof ArrayBuffer ? new Uint8Array(reply) : new Uint8Array(0);
    const intact = back.length === size && back.every((value, i) => value === byte(i, seed));
    return { protocol: socket.ws.protocol, length: back.length, intact, close: await socket.closed };
  };
  return Promise.all([run(1), run(2)]);
};
</script>
`;

interface PageClose {
  code: number;
  reason: string;
  wasClean: boolean;
}

interface PageApi {
  textEcho(url: string, text: string): Promise<{ echo: unknown; protocol: string; close: PageClose; secureContext: boolean }>;
  binaryPair(
    url: string,
    protocols: string[],
    size: number,
  ): Promise<{ protocol: string; length: number; intact: boolean; close: PageClose }[]>;
}

/** What the server saw: its HTTP/2 sessions, TLS connections, requests and streams, by session number. */
interface Site {
  readonly port: number;
  readonly origin: string;
  readonly tlsConnections: () => number;
  readonly sessions: Http2Session[];
  /** Every request the request handler answered. */
  readonly requests: { path: string; httpVersion: string; session: number }[];
  /** Every stream opened on any session: the page's GETs and the WebSockets' CONNECTs. */
  readonly streams: { session: number; headers: IncomingHttpHeaders }[];
}

/**
 * Starts, on 127.0.0.1:0, an HTTP/2 secure server (with HTTP/1.1) serving PAGE at `/`, with a
 * WebSocketServer routing `/ws` to `handler` attached; both are closed in t.after.
 */
async function startSite(t: TestContext, handler: Handler, options: ServerOptions = {}): Promise<Site> {
  const sessions: Http2Session[] = [];
  const requests: Site['requests'] = [];
  const streams: Site['streams'] = [];
  let tlsConnections = 0;
  const server: Http2SecureServer = createSecureServer({ ...TLS, allowHTTP1: true }, (request, response) => {
    const session = (request as Http2ServerRequest).stream?.session;
    requests.push({
      path: request.url,
      httpVersion: request.httpVersion,
      session: session === undefined ? -1 : sessions.indexOf(session),
    });
    const reply = response as Http2ServerResponse;
    if (request.url === '/') {
      reply.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      reply.end(PAGE);
    } else {
      reply.writeHead(request.url === '/favicon.ico' ? 204 : 404);
      reply.end();
    }
  });
  server.on('secureConnection', () => tlsConnections++);
  server.on('session', (session: Http2Session) => {
    const number = sessions.push(session) - 1;
    session.on('stream', (_stream, headers: IncomingHttpHeaders) => streams.push({ session: number, headers }));
  });
  const wss = new WebSocketServer(options).route('/ws', handler);
  wss.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    await withTimeout(wss.close({ timeout: 100 }), 2000, 'closing the WebSocket server');
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const session of sessions) session.destroy();
    await withTimeout(closed, 2000, 'closing the HTTP/2 server');
  });
  const port = (server.address() as AddressInfo).port;
  return { port, origin: `https://127.0.0.1:${port}`, tlsConnections: () => tlsConnections, sessions, requests, streams };
}

/** What Chromium's DevTools protocol reports about the page's response and its WebSocket handshakes. */
interface BrowserView {
  pageProtocol: string | undefined;
  handshakes: { status: number; requestHeaders: Record<string, string> }[];
}

/** A fresh browser context (its own connections) with the page loaded from `site`, closed in t.after. */
async function openPage(t: TestContext, browser: Browser, site: Site): Promise<{ page: Page; view: BrowserView }> {
  const context: BrowserContext = await browser.newContext();
  t.after(() => withTimeout(context.close(), 5000, 'closing the browser context'));
  const page = await context.newPage();
  const view: BrowserView = { pageProtocol: undefined, handshakes: [] };
  const cdp = await context.newCDPSession(page);
  cdp.on('Network.responseReceived', (event) => {
    if (event.response.url === `${site.origin}/`) view.pageProtocol = event.response.protocol;
  });
  cdp.on('Network.webSocketHandshakeResponseReceived', (event) => {
    view.handshakes.push({ status: event.response.status, requestHeaders: event.response.requestHeaders ?? {} });
  });
  await cdp.send('Network.enable');
  const response = await page.goto(`${site.origin}/`, { timeout: STEP });
  assert.equal(response?.status(), 200);
  return { page, view };
}

/** Asserts the server saw one TLS connection, one HTTP/2 session, the page on it and `sockets` CONNECTs on it. */
function assertOneSession(site: Site, sockets: number): void {
  assert.equal(site.tlsConnections(), 1, 'one TLS connection');
  assert.equal(site.sessions.length, 1, 'one HTTP/2 session');
  const page = site.requests.find((request) => request.path === '/');
  assert.deepEqual(page, { path: '/', httpVersion: '2.0', session: 0 }, 'the page came over HTTP/2');
  const connects = site.streams.filter((stream) => stream.headers[':method'] === 'CONNECT');
  assert.equal(connects.length, sockets);
  for (const connect of connects) {
    assert.equal(connect.session, 0, 'the WebSocket came on the page\'s session');
    assert.equal(connect.headers[':protocol'], 'websocket');
    assert.equal(connect.headers[':path'], '/ws');
  }
}

test(
  'Chromium opens WebSockets over HTTP/2 (RFC 8441) on the connection its page came on',
  { skip: 'skip' in found ? found.skip : false, timeout: 30_000 },
  async (t) => {
    const { chromium } = found as { chromium: BrowserType };
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 15_000 });
    t.after(() => withTimeout(browser.close(), 5000, 'closing the browser'));

    await t.test('text echo, then close(1000) from the page', async (t) => {
      const seen: { httpVersion: string; headers: IncomingHttpHeaders; message?: string; close?: [number, string, string] }[] = [];
      const serverClosed = deferred<[number, string]>();
      const site = await startSite(t, async (ws) => {
        const record: (typeof seen)[number] = { httpVersion: ws.httpVersion, headers: ws.headers };
        seen.push(record);
        ws.on('close', (code, reason) => serverClosed.resolve([code, reason]));
        await ws.accept();
        try {
          for (;;) {
            const message = await ws.receive();
            record.message = message.text;
            await ws.send(message);
          }
        } catch (error) {
          // Raised as soon as the page's close frame is read (the closing handshake answers it).
          if (!(error instanceof WebSocketDisconnect)) throw error;
          record.close = [error.code, error.reason, error.initiator];
        }
      });
      const { page, view } = await openPage(t, browser, site);
      const text = 'hello over HTTP/2 — ünïcødé';
      const result = await withTimeout(
        page.evaluate(([url, text]) => (globalThis as unknown as PageApi).textEcho(url, text), [`wss://127.0.0.1:${site.port}/ws`, text] as const),
        STEP,
        'the page\'s text echo',
      );

      // In the browser: the echo, the close, a secure page, and the handshake answered 200 (HTTP/2), not 101.
      assert.equal(result.echo, text);
      // The close event carries the server's reply: its code echoes 1000 (RFC 6455 §5.5.1), without a reason.
      assert.deepEqual(result.close, { code: 1000, reason: '', wasClean: true });
      assert.equal(result.secureContext, true);
      assert.equal(view.pageProtocol, 'h2');
      // DevTools events come from the network service, not the page: wait for them rather than assume the order.
      await until(() => view.handshakes.length === 1, STEP, 'the DevTools handshake event');
      assert.equal(view.handshakes[0]!.status, 200);
      assert.equal(view.handshakes[0]!.requestHeaders['Sec-WebSocket-Key'], undefined, 'no Sec-WebSocket-Key over HTTP/2');

      // On the server: an HTTP/2 stream on the page's session, the message, the page's close code.
      assert.equal(seen.length, 1);
      const [socket] = seen;
      assert.equal(socket!.httpVersion, '2.0');
      assert.equal(socket!.headers[':method'], 'CONNECT');
      assert.equal(socket!.headers.origin, site.origin);
      assert.equal(socket!.message, text);
      assert.deepEqual(socket!.close, [1000, 'page done', 'peer']);
      assertOneSession(site, 1);

      // Chromium never ends its side of the stream after a clean closing handshake (no END_STREAM, no
      // RST_STREAM in its net log): the server's END_STREAM then RST_STREAM(NO_ERROR) (RFC 9113 §8.1)
      // must end the stream at once, not after closeTimeout (5 s).
      const [code] = await withTimeout(serverClosed.promise, 1000, "the server's close event");
      assert.equal(code, 1000);
    });

    await t.test('two binary sockets at once with a subprotocol, closed by the server', async (t) => {
      const size = 200_000; // several times HTTP/2's initial 64 KiB flow-control window
      const seen: { httpVersion: string; subprotocol: string | null; length: number; intact: boolean }[] = [];
      const site = await startSite(
        t,
        async (ws) => {
          await ws.accept();
          const data = await ws.receiveBytes();
          const seed = data[0] === 1 ? 1 : 2;
          const intact = data.length === size && data.every((value, i) => value === ((i * 31 + seed) & 255));
          seen.push({ httpVersion: ws.httpVersion, subprotocol: ws.subprotocol, length: data.length, intact });
          await ws.send(data);
          await ws.close(4001, 'server done');
        },
        { subprotocols: ['chat.v2'] },
      );
      const { page, view } = await openPage(t, browser, site);
      const results = await withTimeout(
        page.evaluate(
          ([url, size]) => (globalThis as unknown as PageApi).binaryPair(url, ['chat.v1', 'chat.v2'], size),
          [`wss://127.0.0.1:${site.port}/ws`, size] as const,
        ),
        STEP,
        'the page\'s binary echoes',
      );

      for (const result of results) {
        assert.deepEqual(result, {
          protocol: 'chat.v2',
          length: size,
          intact: true,
          close: { code: 4001, reason: 'server done', wasClean: true },
        });
      }
      await until(() => view.handshakes.length === 2, STEP, 'the DevTools handshake events');
      assert.deepEqual(view.handshakes.map((handshake) => handshake.status), [200, 200]);
      assert.equal(seen.length, 2);
      for (const socket of seen) assert.deepEqual(socket, { httpVersion: '2.0', subprotocol: 'chat.v2', length: size, intact: true });
      assertOneSession(site, 2);
    });
  },
);
