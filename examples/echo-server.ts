/**
 * The echo server behind `npm start`: every text and binary message is sent back unchanged. It is the
 * target of the Autobahn fuzzingclient (autobahn/fuzzingclient.json) and of the end-to-end benchmarks.
 *
 *   npm start                          # ws://127.0.0.1:9001
 *   npm start -- --port 9002 --host 0.0.0.0
 *   PORT=9003 npm start
 */
import { parseArgs } from 'node:util';
import { serve } from '../src/index.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
  },
});
const port = Number(values.port ?? process.env['PORT'] ?? 9001);
const host = values.host ?? process.env['HOST'] ?? '127.0.0.1';

const server = await serve(
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
  },
);

const address = server.address()!;
const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
console.log(`rfc6455 echo server listening on ws://${shownHost}:${address.port}`);

// Graceful shutdown: every client gets 1001 and a bounded wait for its closing handshake.
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: closing ${server.clients.size} connection(s)`);
    void server.close().then(() => process.exit(0));
  });
}
