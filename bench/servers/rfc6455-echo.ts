/**
 * The rfc6455 echo server for the end-to-end benchmarks: the same handler and options as
 * examples/echo-server.ts (`npm start`), listening where the benchmark asks and reporting to it over
 * IPC (see common.ts).
 */
import { serve } from '../../src/index.ts';
import { announce, HOST, listenPort } from './common.ts';

const server = await serve(
  async (ws) => {
    await ws.accept();
    for await (const message of ws) {
      await ws.send(message);
    }
  },
  { port: listenPort(), host: HOST, maxMessageSize: 64 * 1024 * 1024 },
);

announce('rfc6455 echo', server.address()!.port, { library: 'rfc6455' });
