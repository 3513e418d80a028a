/**
 * The echo server behind `npm start`: every text and binary message is sent back unchanged. It is the
 * target of the Autobahn fuzzingclient (autobahn/fuzzingclient.json) and of the end-to-end benchmarks.
 *
 *   npm start                          # ws://127.0.0.1:9001
 *   npm start -- --port 9002 --host 0.0.0.0
 *   PORT=9003 npm start
 *   npm start -- --workers 2           # node:cluster: 2 worker processes share the port ('auto': one per core)
 */
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { clusterBackplane, runWorkers, serve, type WebSocketServer } from '../src/index.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    workers: { type: 'string' },
  },
});
const port = Number(values.port ?? process.env['PORT'] ?? 9001);
const host = values.host ?? process.env['HOST'] ?? '127.0.0.1';
const workers = values.workers === undefined ? null : values.workers === 'auto' ? 'auto' : Number(values.workers);

if (workers !== null && cluster.isPrimary) {
  // The primary only supervises: it forks the workers (each runs this script), replaces one that dies
  // and, on SIGINT/SIGTERM, has every worker close its connections with 1001 before it exits.
  const pool = runWorkers({ workers });
  console.log(`rfc6455 echo server: ${pool.size} workers on ws://${host}:${port}`);
} else {
  const server = await startEcho();
  const address = server.address()!;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  console.log(`rfc6455 echo server listening on ws://${shownHost}:${address.port}${cluster.isWorker ? ` (worker ${process.pid})` : ''}`);
  // A worker's shutdown comes through its cluster backplane; a single process handles the signals.
  if (!cluster.isWorker) closeOnSignals(server);
}

function startEcho(): Promise<WebSocketServer> {
  return serve(
    async (ws) => {
      await ws.accept();
      for await (const message of ws) {
        await ws.send(message);
      }
    },
    {
      port,
      host,
      // Autobahn's largest cases (9.1.6, 9.2.6) send 16 MiB messages.
      maxMessageSize: 64 * 1024 * 1024,
      perMessageDeflate: true,
      // In a worker: publishes would cross to the other workers (the echo publishes none), and the
      // shutdown of the pool reaches this server through it.
      ...(cluster.isWorker ? { backplane: clusterBackplane() } : {}),
    },
  );
}

/** Graceful shutdown: every client gets 1001 and a bounded wait for its closing handshake. */
function closeOnSignals(server: WebSocketServer): void {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      console.log(`${signal}: closing ${server.clients.size} connection(s)`);
      void server.close().then(() => process.exit(0));
    });
  }
}
