/**
 * connect()'s options are checked before anything is sent: a bad value rejects with a RangeError or
 * TypeError naming the option, and no connection is attempted (a listening server sees none).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { connect, type ClientOptions } from '../src/index.ts';

async function countingServer(): Promise<{ server: Server; port: number; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port, connections: () => count };
}

const BAD_OPTIONS: ReadonlyArray<[string, ClientOptions, typeof RangeError | typeof TypeError, RegExp]> = [
  ['maxMessageSize', { maxMessageSize: -1 }, RangeError, /maxMessageSize/],
  ['handshakeTimeout', { handshakeTimeout: 0 }, RangeError, /handshakeTimeout/],
  ['closeTimeout', { closeTimeout: Number.NaN }, RangeError, /closeTimeout/],
  ['heartbeatInterval', { heartbeatInterval: -5 }, RangeError, /heartbeatInterval/],
  ['slowConsumer', { slowConsumer: 'drop' as 'skip' }, TypeError, /slowConsumer/],
  ['perMessageDeflate', { perMessageDeflate: { clientMaxWindowBits: 7 } }, RangeError, /clientMaxWindowBits/],
  ['subprotocols (not an array)', { subprotocols: 'chat' as unknown as string[] }, TypeError, /subprotocols/],
  ['subprotocols (not a token)', { subprotocols: ['a b'] }, TypeError, /subprotocol/],
  ['subprotocols (repeated)', { subprotocols: ['chat', 'chat'] }, TypeError, /twice/],
  ['headers (reserved)', { headers: { 'Sec-WebSocket-Key': 'x' } }, TypeError, /Sec-WebSocket-Key/],
  ['headers (CR LF)', { headers: { 'X-A': 'v\r\nInjected: 1' } }, TypeError, /CR, LF or NUL/],
  ['origin', { origin: 'https://a\r\nb' }, TypeError, /CR, LF or NUL/],
  ['signal', { signal: {} as AbortSignal }, TypeError, /signal/],
  ['followRedirects', { followRedirects: 'yes' as unknown as boolean }, TypeError, /followRedirects/],
  ['maxRedirects', { maxRedirects: -1 }, RangeError, /maxRedirects/],
  ['onError', { onError: 'log' as unknown as () => void }, TypeError, /onError/],
];

test('a bad option rejects naming it, and nothing is sent', async (t) => {
  const { server, port, connections } = await countingServer();
  t.after(() => server.close());
  for (const [name, options, type, message] of BAD_OPTIONS) {
    await assert.rejects(connect(`ws://127.0.0.1:${port}/`, options), (error: unknown) => {
      assert.ok(error instanceof type, `${name}: ${String(error)}`);
      assert.match((error as Error).message, message, name);
      return true;
    });
  }
  assert.equal(connections(), 0, 'no connection was attempted');
});

test('a bad URL rejects with TypeError: another scheme, a fragment, no host, not a URL', async () => {
  for (const url of ['ftp://127.0.0.1/', 'ws://127.0.0.1/#chat', 'ws://', 'not a url']) {
    await assert.rejects(connect(url), TypeError, url);
  }
});
