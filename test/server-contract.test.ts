/**
 * The exception contract of src/server.ts, row by row, as the client sees it on the wire:
 *
 * | raised by the handler        | before accept()                 | after accept()                     |
 * |------------------------------|---------------------------------|------------------------------------|
 * | WebSocketException(code, r)  | HTTP 403, body r                | close frame (code, r), handshake   |
 * | HandshakeError(status, r)    | HTTP status, body r             | close 1011 (a bug: too late)       |
 * | WebSocketDisconnect          | nothing (the client is gone)    | nothing (the peer is gone)         |
 * | any other error              | HTTP 500, onError               | close 1011, onError                |
 * | HandshakeError from connect()| HTTP 500, onError               | close 1011, onError                |
 * | returns without closing      | HTTP 403                        | close 1000                         |
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  connect,
  HandshakeError,
  InvalidPayloadData,
  WebSocketDisconnect,
  WebSocketException,
  type ServerOptions,
  type WebSocket,
} from '../src/index.ts';
import { assertRefusal, deferred, Harness, sleep, withTimeout } from './helpers/server.ts';

/** Collects onError calls. */
function errorSink(): { errors: unknown[]; options: ServerOptions } {
  const errors: unknown[] = [];
  return { errors, options: { onError: (error) => errors.push(error) } };
}

describe('before accept()', () => {
  test('WebSocketException(code, reason) → HTTP 403 with the reason as body', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const { port } = await h.serve(() => {
      throw new WebSocketException(4001, 'nope');
    }, options);
    await assertRefusal(await h.raw(port), 403, 'nope\n');
    assert.equal(errors.length, 0);
  });

  test('HandshakeError(status, reason) → that HTTP status with the reason and headers', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const { port } = await h.serve(async () => {
      await sleep(1);
      throw new HandshakeError(409, 'already connected', { 'X-Reason': 'duplicate' });
    }, options);
    const response = await assertRefusal(await h.raw(port), 409, 'already connected\n');
    assert.equal(response.headers['x-reason'], 'duplicate');
    assert.equal(errors.length, 0);
  });

  test('WebSocketDisconnect → nothing is sent, the connection is dropped', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const { port } = await h.serve(() => {
      throw new WebSocketDisconnect(1006);
    }, options);
    const client = await h.rawOpen(port);
    await client.write(
      `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${Buffer.alloc(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await client.waitForEnd();
    assert.equal(client.buffered, 0);
    assert.equal(errors.length, 0);
  });

  test('the client leaving before accept: the handler ends with WebSocketDisconnect 1006, nothing reported', async (t) => {
    // Before accept() the socket is not read, so a FIN is only noticed once accept() starts reading:
    // accept() may resolve, and the first receive() then raises WebSocketDisconnect(1006).
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const gone = deferred();
    const outcome = deferred<unknown>();
    let server: WebSocket | undefined;
    const { port } = await h.serve(async (ws) => {
      server = ws;
      await gone.promise;
      try {
        await ws.accept();
        await ws.receive();
        outcome.resolve('received');
      } catch (error) {
        outcome.resolve(error);
        throw error;
      }
    }, options);
    const client = await h.rawOpen(port);
    await client.write(
      `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${Buffer.alloc(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await sleep(20);
    client.destroy();
    await sleep(20);
    gone.resolve();
    const error = await withTimeout(outcome.promise, 1000, 'the handler');
    assert.ok(error instanceof WebSocketDisconnect, String(error));
    assert.equal(error.code, 1006);
    await withTimeout(server!.whenClosed(), 1000, 'the server side closing');
    assert.equal(errors.length, 0);
  });

  test('any other error → HTTP 500 without internal detail, onError called with it', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const failure = new Error('secret database password in /etc/app.conf');
    const { port } = await h.serve(() => {
      throw failure;
    }, options);
    const response = await assertRefusal(await h.raw(port), 500, 'Internal Server Error\n');
    assert.doesNotMatch(response.body.toString(), /secret|database|etc/);
    assert.deepEqual(errors, [failure]);
  });

  test('a HandshakeError from connect() to another server → HTTP 500: its status and headers are not passed on', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const upstream = await h.serve(() => {
      throw new HandshakeError(401, 'upstream login', { 'Set-Cookie': 'upstream-session=secret' });
    });
    const { port } = await h.serve(async () => {
      await connect(`ws://127.0.0.1:${upstream.port}/`);
    }, options);
    const response = await assertRefusal(await h.raw(port), 500, 'Internal Server Error\n');
    assert.equal(response.headers['set-cookie'], undefined);
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof HandshakeError);
    assert.equal(errors[0].status, 401);
    assert.equal(errors[0].body?.toString(), 'upstream login\n');
  });

  test('returns without accepting → HTTP 403', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const { port } = await h.serve(async () => {
      await sleep(5);
    }, options);
    await assertRefusal(await h.raw(port), 403);
    assert.equal(errors.length, 0);
  });

  test('a throwing onError hook does not take the server down', async (t) => {
    const h = new Harness(t);
    let fail = true;
    const { port } = await h.serve(
      async (ws) => {
        if (fail) {
          fail = false;
          throw new Error('first');
        }
        await ws.accept();
        await ws.send('second');
      },
      {
        onError: () => {
          throw new Error('the hook itself fails');
        },
      },
    );
    await assertRefusal(await h.raw(port), 500);
    const client = await h.rawOpened(port);
    assert.equal((await client.readFrame()).payload.toString(), 'second');
  });
});

describe('after accept()', () => {
  test('WebSocketException(4001, "nope") → close frame 4001 "nope", then the closing handshake', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      throw new WebSocketException(4001, 'nope');
    }, options);
    const client = await h.rawOpened(port);
    assert.deepEqual(await client.expectClose(), { code: 4001, reason: 'nope' });
    await client.close(4001);
    await client.waitForEnd();
    assert.equal(client.buffered, 0);
    assert.equal(errors.length, 0);
  });

  test('WebSocketException subclasses raised by the receive helpers carry their codes (1003, 1007)', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      if (ws.path === '/text') await ws.receiveText();
      else await ws.receiveJson();
    });
    const text = await h.rawOpened(port, { path: '/text' });
    await text.sendBinary(Uint8Array.of(1));
    assert.deepEqual(await text.expectClose(), { code: 1003, reason: 'expected a text message' });
    const json = await h.rawOpened(port, { path: '/json' });
    await json.sendText('{not json');
    assert.deepEqual(await json.expectClose(), { code: 1007, reason: new InvalidPayloadData('message is not valid JSON').reason });
  });

  test('any other error → close 1011 with an empty reason, onError called', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const failure = new RangeError('internal detail that must not leak');
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      await ws.receive();
      throw failure;
    }, options);
    const client = await h.rawOpened(port);
    await client.sendText('trigger');
    assert.deepEqual(await client.expectClose(), { code: 1011, reason: '' });
    assert.deepEqual(errors, [failure]);
    await client.close(1011);
    await client.waitForEnd();
  });

  test('HandshakeError after accept (too late) → close 1011, onError called', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      throw new HandshakeError(401);
    }, options);
    const client = await h.rawOpened(port);
    assert.deepEqual(await client.expectClose(), { code: 1011, reason: '' });
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof HandshakeError);
  });

  test('returns without closing → close 1000', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      await ws.send('bye');
    });
    const client = await h.rawOpened(port);
    assert.equal((await client.readFrame()).payload.toString(), 'bye');
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
    await client.close(1000);
    await client.waitForEnd();
    assert.equal(client.buffered, 0);
  });

  test('WebSocketDisconnect escaping after the peer closed → nothing extra is sent', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const ended = deferred<unknown>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      try {
        for (;;) await ws.receive(); // not caught: WebSocketDisconnect escapes
      } catch (error) {
        ended.resolve(error);
        throw error;
      }
    }, options);
    const client = await h.rawOpened(port);
    await client.close(4002, 'client done');
    // Exactly one close frame (the echo of our code), then the server's FIN, nothing more.
    assert.deepEqual(await client.expectClose(), { code: 4002, reason: '' });
    await client.waitForEnd();
    await sleep(20);
    assert.equal(client.buffered, 0);
    const error = await withTimeout(ended.promise, 1000, 'the handler ending');
    assert.ok(error instanceof WebSocketDisconnect);
    assert.equal(error.code, 4002);
    assert.equal(error.reason, 'client done');
    assert.equal(errors.length, 0);
  });

  test('WebSocketDisconnect escaping after a TCP drop → nothing sent, onError not called', async (t) => {
    const h = new Harness(t);
    const { errors, options } = errorSink();
    const ended = deferred<unknown>();
    let server: WebSocket | undefined;
    const { port } = await h.serve(async (ws) => {
      server = ws;
      await ws.accept();
      await ws.send('ready');
      try {
        await ws.receive();
      } catch (error) {
        ended.resolve(error);
        throw error;
      }
    }, options);
    const client = await h.rawOpened(port);
    await client.readFrame();
    client.destroy();
    const error = await withTimeout(ended.promise, 1000, 'the handler ending');
    assert.ok(error instanceof WebSocketDisconnect);
    assert.equal(error.code, 1006);
    await withTimeout(server!.whenClosed(), 1000, 'the server side closing');
    assert.equal(server!.state, 'closed');
    assert.equal(errors.length, 0);
  });

  test('sending after the close handshake rejects with WebSocketDisconnect', async (t) => {
    const h = new Harness(t);
    const result = deferred<unknown>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      await ws.receive().catch(() => undefined);
      result.resolve(await ws.send('too late').catch((error: unknown) => error));
    });
    const client = await h.rawOpened(port);
    await client.close(1000);
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
    const error = await withTimeout(result.promise, 1000, 'the late send');
    assert.ok(error instanceof WebSocketDisconnect, String(error));
    await client.waitForEnd();
    assert.equal(client.buffered, 0);
  });
});

describe('ws.close() arguments', () => {
  test('an unsendable code or an over-long reason is a RangeError/TypeError in the handler', async (t) => {
    const h = new Harness(t);
    const outcomes = deferred<string[]>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      const names: string[] = [];
      for (const [code, reason] of [
        [1005, ''],
        [1006, ''],
        [999, ''],
        [5000, ''],
        [1000, 'x'.repeat(124)],
      ] as const) {
        await ws.close(code, reason).catch((error: unknown) => names.push((error as Error).name));
      }
      outcomes.resolve(names);
      await ws.close(4000, 'é'.repeat(61)); // 122 bytes: allowed
    });
    const client = await h.rawOpened(port);
    assert.deepEqual(await client.expectClose(), { code: 4000, reason: 'é'.repeat(61) });
    const names = await outcomes.promise;
    assert.equal(names.length, 5);
    for (const name of names) assert.match(name, /^(RangeError|TypeError)$/);
  });
});
