/**
 * The README's client example (examples/client.ts) against the README's echo server handler, on the
 * wire: what it prints is what the server echoed, and the server saw the closing handshake it started.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { talk } from '../examples/client.ts';
import { serve, WebSocketDisconnect } from '../src/index.ts';
import { deferred, withTimeout } from './helpers/server.ts';

test('examples/client.ts talks to the echo server and closes with 1000 "done"', async (t) => {
  const closed = deferred<WebSocketDisconnect>();
  const server = await serve(
    async (ws) => {
      await ws.accept();
      try {
        for (;;) await ws.send(await ws.receive());
      } catch (error) {
        if (error instanceof WebSocketDisconnect) closed.resolve(error);
        throw error;
      }
    },
    { perMessageDeflate: true },
  );
  t.after(() => server.close());
  const lines: string[] = [];
  await withTimeout(talk(`ws://127.0.0.1:${server.address()!.port}/`, (line) => lines.push(line)), 5000, 'the example');
  assert.deepEqual(lines.slice(1), [
    'text echo: hello',
    'binary echo: 010203',
    'fragmented echo: one message in three frames',
    'closed: closed',
  ]);
  assert.match(lines[0]!, /^connected to ws:\/\/127\.0\.0\.1:\d+\/ \(extensions: permessage-deflate; server_no_context_takeover\)$/);
  const disconnect = await withTimeout(closed.promise, 2000, 'the server seeing the close');
  assert.equal(disconnect.code, 1000);
  assert.equal(disconnect.reason, 'done');
  assert.equal(disconnect.initiator, 'peer');
});
