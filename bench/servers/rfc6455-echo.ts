/**
 * The rfc6455 echo server for the end-to-end benchmarks: the handler and message limit of
 * examples/echo-server.ts (`npm start`), listening where the benchmark asks and reporting to it over
 * IPC (see common.ts). permessage-deflate is off, as ws's echo has it, unless BENCH_DEFLATE=1: then on
 * with the library's defaults (server_no_context_takeover, 15 window bits, zlib level 6 and memory
 * level 8) and the benchmarks' common threshold (common.ts).
 *
 * With BENCH_TLS_KEY and BENCH_TLS_CERT it listens with TLS, `listen({ tls })`: `wss://` over HTTP/1.1
 * and HTTP/2 (RFC 8441) on one port, with Node's HTTP/2 defaults (the http2 section, bench/http2.ts).
 * BENCH_HTTP2_SERVER_WINDOW=<bytes> (a diagnostic) instead creates the `node:http2` secure server itself,
 * with HTTP/1.1 allowed, receive windows of that size (SETTINGS_INITIAL_WINDOW_SIZE, and each session's
 * window with `setLocalWindowSize`, as Node's documentation shows), and `attach()`es to it: what a user
 * can do today to let clients send more than 64 KiB per stream and per session before an acknowledgement.
 */
import cluster from 'node:cluster';
import { createSecureServer, type Http2Session } from 'node:http2';
import { clusterBackplane, runWorkers, serve, WebSocketServer, type Handler } from '../../src/index.ts';
import { announce, DEFLATE_THRESHOLD, deflateRequested, FANOUT_PUBLISH_PATH, FANOUT_TOPIC, fanoutRequested, HOST, listenPort, tlsRequested } from './common.ts';

const perMessageDeflate = deflateRequested() ? { threshold: DEFLATE_THRESHOLD } : false;
const tls = tlsRequested();
const h2Window = Number(process.env['BENCH_HTTP2_SERVER_WINDOW'] ?? 0);
const options = { maxMessageSize: 64 * 1024 * 1024, perMessageDeflate };

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) {
    await ws.send(message);
  }
};

/** Fan-out (BENCH_FANOUT=1): the publisher's messages go to every subscriber, encoded once per publish. */
const fanout: Handler = async (ws) => {
  await ws.accept();
  if (ws.path === FANOUT_PUBLISH_PATH) {
    for await (const message of ws) fanoutServer!.publish(FANOUT_TOPIC, message.data);
  } else {
    ws.subscribe(FANOUT_TOPIC);
    for await (const _ of ws);
  }
};
let fanoutServer: WebSocketServer | null = null;

const workers = Number(process.env['BENCH_WORKERS'] ?? 0);

let port: number;
if (workers > 0 && cluster.isPrimary) {
  // BENCH_WORKERS=N: the echo under runWorkers() (node:cluster), as `npm start -- --workers N` runs it.
  // The primary reports the port once every worker listens; the benchmark sums the CPU of the tree.
  runWorkers({ workers, signals: [] });
  port = await new Promise<number>((resolve) => {
    let listening = 0;
    cluster.on('listening', (_worker, address) => {
      if (++listening === workers) resolve(address.port);
    });
  });
} else if (workers > 0) {
  // A worker: port 0 is the same port in every worker of a cluster.
  await serve(echo, { port: listenPort(), host: HOST, ...options, backplane: clusterBackplane() });
  port = 0;
} else if (fanoutRequested()) {
  fanoutServer = await serve(fanout, { port: listenPort(), host: HOST, ...options });
  port = fanoutServer.address()!.port;
} else if (tls !== null && h2Window > 0) {
  if (!(Number.isSafeInteger(h2Window) && h2Window >= 65_535 && h2Window <= 2 ** 31 - 1)) throw new RangeError(`BENCH_HTTP2_SERVER_WINDOW=${h2Window}: expected 65535 to 2^31 - 1`);
  const http2 = createSecureServer({ ...tls, allowHTTP1: true, settings: { initialWindowSize: h2Window } });
  http2.on('session', (session: Http2Session) => session.setLocalWindowSize(h2Window));
  new WebSocketServer(options).route('*', echo).attach(http2);
  await new Promise<void>((resolve, reject) => {
    http2.once('error', reject);
    http2.listen(listenPort(), HOST, () => resolve());
  });
  port = (http2.address() as { port: number }).port;
} else {
  const server = await serve(echo, { port: listenPort(), host: HOST, ...options, ...(tls === null ? {} : { tls }) });
  port = server.address()!.port;
}

if (!cluster.isWorker) announce(fanoutServer !== null ? 'rfc6455 fan-out' : workers > 0 ? `rfc6455 echo, ${workers} workers` : 'rfc6455 echo', port, { library: 'rfc6455', perMessageDeflate, ...(tls === null ? {} : { tls: true, h2Window: h2Window > 0 ? h2Window : 'listen({ tls }) defaults' }) });
