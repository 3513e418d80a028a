/**
 * The `ws` echo server for the end-to-end benchmarks: the echo from ws's README, with the same message
 * limit as ours (64 MiB) and permessage-deflate off (ws's server default). With BENCH_DEFLATE=1,
 * permessage-deflate is on with ws's defaults (context takeover both ways, 15 window bits, zlib level
 * and memory level left to zlib) and the benchmarks' common threshold (common.ts).
 *
 * With WS_NO_BUFFER_UTIL=1 in the environment, ws does not load its optional native add-on
 * `bufferutil` and masks with its JavaScript byte loop. The `listening` message says which one ws
 * actually uses, checked on the very module instance ws loaded.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { announce, DEFLATE_THRESHOLD, deflateRequested, FANOUT_PUBLISH_PATH, fanoutRequested, HOST, listenPort } from './common.ts';

const require = createRequire(import.meta.url);
const wsLib = join(dirname(require.resolve('ws/package.json')), 'lib');
const bufferUtil = require(join(wsLib, 'buffer-util.js')) as { unmask: (buffer: Buffer, mask: Buffer) => void };
const nativeUnmask = String(bufferUtil.unmask).includes('bufferUtil.unmask') || String(bufferUtil.unmask).includes('websocketUnmask');
const version = (require('ws/package.json') as { version: string }).version;

const perMessageDeflate = deflateRequested() ? { threshold: DEFLATE_THRESHOLD } : false;
const server = new WebSocketServer({ host: HOST, port: listenPort(), maxPayload: 64 * 1024 * 1024, perMessageDeflate });
const fanout = fanoutRequested();
server.on('connection', (ws, request) => {
  if (fanout) {
    // Fan-out (BENCH_FANOUT=1): the broadcast loop of ws's README, from the publisher to every other client.
    if (request.url === FANOUT_PUBLISH_PATH) {
      ws.on('message', (data, isBinary) => {
        server.clients.forEach((client) => {
          if (client !== ws && client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
        });
      });
    }
  } else {
    ws.on('message', (data, isBinary) => {
      ws.send(data, { binary: isBinary });
    });
  }
  ws.on('error', () => undefined);
});
server.on('listening', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  announce(`ws ${fanout ? 'fan-out' : 'echo'} (${nativeUnmask ? 'bufferutil' : 'no bufferutil'})`, port, {
    library: `ws@${version}`,
    bufferutil: nativeUnmask,
    WS_NO_BUFFER_UTIL: process.env['WS_NO_BUFFER_UTIL'] ?? null,
    perMessageDeflate,
  });
});
