/**
 * The rfc6455 echo server for the end-to-end benchmarks: the handler and message limit of
 * examples/echo-server.ts (`npm start`), listening where the benchmark asks and reporting to it over
 * IPC (see common.ts). permessage-deflate is off, as ws's echo has it, unless BENCH_DEFLATE=1: then on
 * with the library's defaults (server_no_context_takeover, 15 window bits, zlib level 6 and memory
 * level 8) and the benchmarks' common threshold (common.ts).
 */
import { serve } from '../../src/index.ts';
import { announce, DEFLATE_THRESHOLD, deflateRequested, HOST, listenPort } from './common.ts';

const perMessageDeflate = deflateRequested() ? { threshold: DEFLATE_THRESHOLD } : false;

const server = await serve(
  async (ws) => {
    await ws.accept();
    for await (const message of ws) {
      await ws.send(message);
    }
  },
  { port: listenPort(), host: HOST, maxMessageSize: 64 * 1024 * 1024, perMessageDeflate },
);

announce('rfc6455 echo', server.address()!.port, { library: 'rfc6455', perMessageDeflate });
