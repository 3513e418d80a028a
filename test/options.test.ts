/**
 * ServerOptions are validated once, when the server is made: a bad value is a RangeError (a number out
 * of range) or a TypeError (a value of the wrong kind) naming the option, thrown by
 * `new WebSocketServer()` or rejected by `serve()` before anything listens, never a surprise inside a
 * later upgrade. Valid non-default values work end to end.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { serve, WebSocketServer, type Handler, type ServerOptions } from '../src/index.ts';
import { Harness } from './helpers/server.ts';

const MAX_TIMER_DELAY = 2 ** 31 - 1;

/** Builds a server with `options` and asserts the constructor throws `kind` with a message naming every one of `names`. */
function rejects(options: unknown, kind: typeof RangeError | typeof TypeError, ...names: string[]): void {
  assert.throws(
    () => new WebSocketServer(options as ServerOptions),
    (error: unknown) => {
      assert.ok(error instanceof kind, `expected a ${kind.name}, got ${String(error)}`);
      for (const name of names) assert.match(error.message, new RegExp(`\\b${name}\\b`), `the message names ${name}`);
      return true;
    },
    `${JSON.stringify(options, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? String(value) : value))}`,
  );
}

/** Builds a server with `options` (it must not throw) and closes it (clears a heartbeat timer). */
async function accepts(options: ServerOptions): Promise<void> {
  const server = new WebSocketServer(options);
  await server.close();
}

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

describe('byte sizes', () => {
  test('maxMessageSize that is negative, NaN, fractional or not a number is a RangeError naming it', () => {
    for (const value of [-1, NaN, 1.5, '10', -Infinity]) rejects({ maxMessageSize: value }, RangeError, 'maxMessageSize');
  });

  test('Infinity is accepted for maxMessageSize, maxFrameSize and maxConnections', async () => {
    await accepts({ maxMessageSize: Infinity });
    await accepts({ maxFrameSize: Infinity });
    await accepts({ maxMessageSize: Infinity, maxFrameSize: Infinity, maxConnections: Infinity });
  });

  for (const name of ['maxFrameSize', 'inboundHighWaterMark', 'inboundLowWaterMark', 'outboundHighWaterMark', 'maxBufferedAmount']) {
    test(`${name} rejects a negative or fractional value with a RangeError naming it`, () => {
      rejects({ [name]: -1 }, RangeError, name);
      rejects({ [name]: 0.5 }, RangeError, name);
      rejects({ [name]: NaN }, RangeError, name);
    });
  }

  test('the buffer limits are finite: Infinity is a RangeError for them', () => {
    for (const name of ['inboundHighWaterMark', 'inboundLowWaterMark', 'outboundHighWaterMark', 'maxBufferedAmount']) {
      rejects({ [name]: Infinity }, RangeError, name);
    }
  });

  test('maxConnections that is negative or fractional is a RangeError naming it', () => {
    for (const value of [-1, 1.5, NaN]) rejects({ maxConnections: value }, RangeError, 'maxConnections');
  });

  test('0 is accepted for every byte size', async () => {
    await accepts({ maxMessageSize: 0, maxFrameSize: 0, maxConnections: 0 });
    await accepts({ inboundHighWaterMark: 0, inboundLowWaterMark: 0, outboundHighWaterMark: 0, maxBufferedAmount: 0 });
  });
});

describe('watermarks that contradict each other', () => {
  test('inboundLowWaterMark above inboundHighWaterMark is a RangeError naming both', () => {
    rejects({ inboundHighWaterMark: 1024, inboundLowWaterMark: 1025 }, RangeError, 'inboundLowWaterMark', 'inboundHighWaterMark');
    // Against the default high-water mark (1 MiB) too.
    rejects({ inboundLowWaterMark: 2 * 1024 * 1024 }, RangeError, 'inboundLowWaterMark', 'inboundHighWaterMark');
  });

  test('outboundHighWaterMark above maxBufferedAmount is a RangeError naming both', () => {
    rejects({ outboundHighWaterMark: 65537, maxBufferedAmount: 65536 }, RangeError, 'outboundHighWaterMark', 'maxBufferedAmount');
    // Against the default hard limit (4 MiB) too.
    rejects({ outboundHighWaterMark: 8 * 1024 * 1024 }, RangeError, 'outboundHighWaterMark', 'maxBufferedAmount');
  });

  test('equal watermarks are accepted', async () => {
    await accepts({ inboundHighWaterMark: 4096, inboundLowWaterMark: 4096, outboundHighWaterMark: 65536, maxBufferedAmount: 65536 });
  });

  test('the defaults are consistent: new WebSocketServer() does not throw', async () => {
    const server = new WebSocketServer();
    await server.close();
    await accepts({});
  });

  test('a small maxBufferedAmount alone is accepted: the default outboundHighWaterMark is clamped to it', async () => {
    await accepts({ maxBufferedAmount: 512 * 1024 });
    await accepts({ maxBufferedAmount: 0 });
    // A small inboundHighWaterMark alone likewise gets a low-water mark below it.
    await accepts({ inboundHighWaterMark: 100 });
  });
});

describe('timeouts', () => {
  test('handshakeTimeout must be at least 1 ms: 0 is a RangeError naming it', async () => {
    rejects({ handshakeTimeout: 0 }, RangeError, 'handshakeTimeout');
    for (const value of [-1, MAX_TIMER_DELAY + 1, Infinity, NaN, '10']) rejects({ handshakeTimeout: value }, RangeError, 'handshakeTimeout');
    await accepts({ handshakeTimeout: 1 });
    await accepts({ handshakeTimeout: MAX_TIMER_DELAY });
  });

  for (const name of ['closeTimeout', 'idleTimeout', 'heartbeatInterval']) {
    test(`${name} that is negative, beyond 2^31 - 1 ms or infinite is a RangeError naming it; 0 is accepted`, async () => {
      for (const value of [-1, MAX_TIMER_DELAY + 1, Infinity, NaN, '10']) rejects({ [name]: value }, RangeError, name);
      await accepts({ [name]: 0 });
      await accepts({ [name]: MAX_TIMER_DELAY });
    });
  }
});

describe('values of the wrong kind', () => {
  test("slowConsumer other than 'skip' or 'close' is a TypeError naming it", async () => {
    rejects({ slowConsumer: 'drop' }, TypeError, 'slowConsumer');
    rejects({ slowConsumer: 1 }, TypeError, 'slowConsumer');
    await accepts({ slowConsumer: 'skip' });
    await accepts({ slowConsumer: 'close' });
  });

  for (const name of ['allowedOrigins', 'subprotocols']) {
    test(`${name} that is not an array of strings is a TypeError naming it`, async () => {
      for (const value of ['chat', ['chat', 2], [null], { 0: 'chat', length: 1 }, 42]) rejects({ [name]: value }, TypeError, name);
      await accepts({ [name]: [] });
      await accepts({ [name]: ['chat', 'https://example.com'] });
    });
  }

  for (const name of ['verify', 'onError']) {
    test(`${name} that is not a function is a TypeError naming it`, async () => {
      for (const value of ['function', {}, 1, true]) rejects({ [name]: value }, TypeError, name);
      await accepts({ [name]: () => undefined });
    });
  }

  test('options that are not an object are a TypeError', () => {
    assert.throws(() => new WebSocketServer(null as unknown as ServerOptions), TypeError);
    assert.throws(() => new WebSocketServer('fast' as unknown as ServerOptions), TypeError);
  });
});

describe('when the error is raised', () => {
  test('serve() with an invalid option rejects at once with the RangeError and starts no server', async () => {
    const listening = () => process.getActiveResourcesInfo().filter((name) => name === 'TCPServerWrap').length;
    const before = listening();
    const served = serve(echo, { maxMessageSize: -1, heartbeatInterval: 10 });
    // Already rejected: settled before the next macrotask, so before anything could have listened.
    const outcome = await Promise.race([
      served.then(
        () => 'resolved',
        (error: unknown) => error,
      ),
      new Promise((resolve) => setImmediate(() => resolve('pending'))),
    ]);
    assert.ok(outcome instanceof RangeError, `serve() settled with ${String(outcome)}`);
    assert.match(outcome.message, /\bmaxMessageSize\b/);
    assert.ok(listening() <= before, 'no listening socket was opened');
  });

  test('a server built with valid non-default options accepts connections and echoes end to end', async (t) => {
    const h = new Harness(t);
    const { server, url } = await h.serve(echo, {
      maxMessageSize: 256 * 1024,
      maxFrameSize: 64 * 1024,
      inboundHighWaterMark: 4096,
      inboundLowWaterMark: 1024,
      outboundHighWaterMark: 65536,
      maxBufferedAmount: 65536,
      slowConsumer: 'close',
      handshakeTimeout: 2000,
      closeTimeout: 1000,
      idleTimeout: 0,
      heartbeatInterval: 0,
      maxConnections: 4,
      subprotocols: ['chat'],
      onError: () => undefined,
    });
    const client = await h.client(url, ['chat']);
    assert.equal(client.ws.protocol, 'chat');
    client.send('hello');
    assert.equal(await client.next(), 'hello');
    // A message larger than the inbound high-water mark (but within maxMessageSize) still arrives whole.
    const big = Buffer.alloc(16 * 1024, 0x61);
    client.send(big);
    assert.deepEqual(await client.next(), big);
    assert.equal(server.clients.size, 1);
    client.close(1000);
    assert.equal((await client.waitClosed()).code, 1000);
  });

  test('the limits given are the ones applied: a message over maxMessageSize closes with 1009', async (t) => {
    const h = new Harness(t);
    const { url } = await h.serve(echo, { maxMessageSize: 1024, onError: () => undefined });
    const client = await h.client(url);
    client.send('x'.repeat(1024));
    assert.equal(await client.next(), 'x'.repeat(1024));
    client.send('x'.repeat(1025));
    assert.equal((await client.waitClosed()).code, 1009);
  });
});

describe('perMessageDeflate', () => {
  test('true, false, an empty object and valid settings are accepted', async () => {
    for (const perMessageDeflate of [true, false, {}, { threshold: 0, level: 9, memLevel: 1, serverMaxWindowBits: 8, clientMaxWindowBits: 8 }]) {
      await accepts({ perMessageDeflate });
    }
  });

  test('a value that is neither a boolean nor an object is a TypeError naming perMessageDeflate', () => {
    for (const value of ['yes', 1, null]) rejects({ perMessageDeflate: value }, TypeError, 'perMessageDeflate');
  });

  test('each setting out of range is a RangeError naming the setting', () => {
    const cases: [string, unknown][] = [
      ['threshold', -1],
      ['threshold', 1.5],
      ['level', 10],
      ['level', -1],
      ['memLevel', 0],
      ['memLevel', 10],
      ['serverMaxWindowBits', 7],
      ['serverMaxWindowBits', 16],
      ['clientMaxWindowBits', 7],
      ['clientMaxWindowBits', 9.5],
    ];
    for (const [name, value] of cases) rejects({ perMessageDeflate: { [name]: value } }, RangeError, name);
  });

  test('a context-takeover setting that is not a boolean is a TypeError naming it', () => {
    rejects({ perMessageDeflate: { serverNoContextTakeover: 'no' } }, TypeError, 'serverNoContextTakeover');
    rejects({ perMessageDeflate: { clientNoContextTakeover: 1 } }, TypeError, 'clientNoContextTakeover');
  });
});
