/**
 * Closing, over the wire: the closing handshake in both directions (RFC 6455 §5.5.1, §7.1.1: the
 * server closes TCP first), the close timeout, data after a close, TCP drops, graceful shutdown, the
 * idle timeout, and the heartbeat.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WebSocketDisconnect, type Handler, type Message, type WebSocket } from '../src/index.ts';
import { encodeFrame, Opcode, upgradeRequest } from './helpers/raw-client.ts';
import { deferred, Harness, sleep, until, withTimeout } from './helpers/server.ts';

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

describe('closing handshake started by the client', () => {
  test('close 1000 "bye" → the server echoes 1000, then closes TCP first', async (t) => {
    const h = new Harness(t);
    const ended = deferred<unknown>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      try {
        for await (const message of ws) await ws.send(message);
        ended.resolve('loop ended normally');
      } catch (error) {
        ended.resolve(error);
      }
    });
    // Keep our side open after the server's FIN, to see that the server sent it first.
    const client = await h.rawOpened(port, { allowHalfOpen: true });
    await client.close(1000, 'bye');
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
    await client.waitForEnd();
    assert.equal(client.socket.writableEnded, false, 'the client had not closed its side yet');
    assert.equal(client.buffered, 0);
    client.end();
    await client.waitForClose();
    assert.equal(await withTimeout(ended.promise, 1000, 'handler end'), 'loop ended normally');
  });

  test('the handler sees the peer’s code and reason; 1005 for a close frame without a code', async (t) => {
    const h = new Harness(t);
    const seen: [number, string][] = [];
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      try {
        await ws.receive();
      } catch (error) {
        if (error instanceof WebSocketDisconnect) seen.push([error.code, error.reason]);
      }
    });
    const a = await h.rawOpened(port);
    await a.close(4100, 'custom reason é');
    assert.deepEqual(await a.expectClose(), { code: 4100, reason: '' });
    const b = await h.rawOpened(port);
    await b.close();
    // RFC 6455 §5.5.1: the reply to a close without a code is 1000 (or empty).
    assert.deepEqual(await b.expectClose(), { code: 1000, reason: '' });
    await Promise.all([a.waitForEnd(), b.waitForEnd()]);
    await until(() => seen.length === 2, 1000, 'both handlers ending');
    assert.deepEqual(
      seen.sort((x, y) => x[0] - y[0]),
      [
        [1005, ''],
        [4100, 'custom reason é'],
      ],
    );
  });

  test('for await ends quietly on 1000/1001 and throws WebSocketDisconnect on other codes', async (t) => {
    const h = new Harness(t);
    const outcomes = new Map<string, string>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      try {
        for await (const message of ws) void message;
        outcomes.set(ws.path, 'ended');
      } catch (error) {
        outcomes.set(ws.path, `threw ${(error as WebSocketDisconnect).code}`);
      }
    });
    for (const [path, code] of [
      ['/a', 1000],
      ['/b', 1001],
      ['/c', 4000],
      ['/d', 1011],
    ] as const) {
      const client = await h.rawOpened(port, { path });
      await client.close(code);
      await client.expectClose();
      await client.waitForEnd();
    }
    await until(() => outcomes.size === 4, 1000, 'all handlers ending');
    assert.deepEqual(Object.fromEntries(outcomes), { '/a': 'ended', '/b': 'ended', '/c': 'threw 4000', '/d': 'threw 1011' });
  });

  test('data frames after the client’s close frame (same write) are ignored', async (t) => {
    const h = new Harness(t);
    const received: string[] = [];
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      for await (const message of ws) {
        received.push(message.text);
        await ws.send(message);
      }
    });
    const client = await h.rawOpened(port);
    await client.sendFrames([
      { opcode: Opcode.Text, payload: 'before' },
      { opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]) },
      { opcode: Opcode.Text, payload: 'after' },
      { opcode: Opcode.Ping, payload: 'after' },
    ]);
    assert.equal((await client.readFrame()).payload.toString(), 'before');
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: '' });
    await client.waitForEnd();
    assert.equal(client.buffered, 0, 'no echo and no pong after the close');
    assert.deepEqual(received, ['before']);
  });

  test('a close from a handler that is not receiving is still answered (after a grace period)', async (t) => {
    const h = new Harness(t);
    const never = deferred();
    t.after(() => never.resolve());
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      await never.promise; // never receives
    });
    const client = await h.rawOpened(port, { timeout: 3000 });
    await client.close(1000);
    assert.deepEqual(await client.expectClose(3000), { code: 1000, reason: '' });
    await client.waitForEnd();
  });
  test('a slow handler still gets every message that came before the peer’s close, after the grace reply', async (t) => {
    const h = new Harness(t);
    const received = deferred<{ texts: string[]; code: number }>();
    let resumedAt = Infinity;
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      const texts: string[] = [(await ws.receive()).text];
      await sleep(1500); // longer than the grace: the close is answered meanwhile
      resumedAt = Date.now();
      try {
        for (;;) texts.push((await ws.receive()).text);
      } catch (error) {
        received.resolve({ texts, code: (error as WebSocketDisconnect).code });
      }
    });
    const client = await h.rawOpened(port, { timeout: 4000 });
    await client.sendText('one');
    await sleep(50);
    await client.sendText('two');
    await client.sendText('three');
    await client.close(1000);
    assert.deepEqual(await client.expectClose(3000), { code: 1000, reason: '' });
    assert.ok(Date.now() < resumedAt, 'the close was answered only when the handler resumed');
    assert.deepEqual(await withTimeout(received.promise, 4000, 'the slow handler'), { texts: ['one', 'two', 'three'], code: 1000 });
  });
});

describe('closing handshake started by the server', () => {
  test('ws.close(4000, "x") → Node’s client gets 4000 "x" cleanly; close() resolves', async (t) => {
    const h = new Harness(t);
    const closed = deferred<string>();
    const { url } = await h.serve(async (ws) => {
      await ws.accept();
      await ws.receive();
      await ws.close(4000, 'x');
      closed.resolve(ws.state);
    });
    const client = await h.client(url);
    client.send('close please');
    const event = await client.waitClosed();
    assert.deepEqual(event, { code: 4000, reason: 'x', wasClean: true });
    assert.equal(await withTimeout(closed.promise, 1000, 'ws.close() resolving'), 'closed');
  });

  test('on the wire: close frame 4000 "x"; after the client’s reply the server closes TCP', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      await ws.close(4000, 'x');
    });
    const client = await h.rawOpened(port, { allowHalfOpen: true });
    assert.deepEqual(await client.expectClose(), { code: 4000, reason: 'x' });
    await client.close(4000);
    await client.waitForEnd();
    assert.equal(client.socket.writableEnded, false, 'the server closed TCP first');
    assert.equal(client.buffered, 0);
  });

  test('close timeout: a client that never answers the close is dropped after closeTimeout', async (t) => {
    const h = new Harness(t);
    const resolved = deferred<number>();
    const { port } = await h.serve(
      async (ws) => {
        await ws.accept();
        const started = Date.now();
        await ws.close(1000, 'done');
        resolved.resolve(Date.now() - started);
      },
      { closeTimeout: 300 },
    );
    const client = await h.rawOpened(port, { allowHalfOpen: true });
    assert.deepEqual(await client.expectClose(), { code: 1000, reason: 'done' });
    const started = Date.now();
    await client.waitForEnd(3000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 1500, `dropped after ${elapsed} ms`);
    const closeTook = await withTimeout(resolved.promise, 1000, 'ws.close() resolving');
    assert.ok(closeTook >= 250, `close() resolved after ${closeTook} ms`);
  });

  test('data the client sends after the server’s close is not delivered; its close reply ends it', async (t) => {
    const h = new Harness(t);
    const delivered: string[] = [];
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      ws.on('message', (message: Message) => delivered.push(message.text));
      await ws.close(1000);
    });
    const client = await h.rawOpened(port);
    await client.expectClose();
    await client.sendText('late');
    await client.ping('late'); // RFC 6455 §5.5.1: nothing is sent after our close frame, not even a pong
    await client.close(1000);
    await client.waitForEnd();
    await sleep(20);
    assert.equal(client.buffered, 0);
    // RFC 6455 §1.4: after sending a close the endpoint discards further data (it may be delivered
    // or not); nothing is written back either way.
    assert.ok(delivered.length <= 1);
  });
});

describe('TCP drops', () => {
  test('a client dropping TCP → receive() throws WebSocketDisconnect 1006; close event 1006', async (t) => {
    const h = new Harness(t);
    const outcome = deferred<[unknown, number]>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      const closeCode = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
      await ws.send('ready');
      const error = await ws.receive().catch((e: unknown) => e);
      outcome.resolve([error, await closeCode]);
    });
    const client = await h.rawOpened(port);
    await client.readFrame();
    client.destroy();
    const [error, closeCode] = await withTimeout(outcome.promise, 1000, 'the handler seeing the drop');
    assert.ok(error instanceof WebSocketDisconnect);
    assert.equal(error.code, 1006);
    assert.equal(closeCode, 1006);
  });

  test('a TCP reset mid-frame → 1006, and for await throws', async (t) => {
    const h = new Harness(t);
    const outcome = deferred<unknown>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      try {
        for await (const message of ws) await ws.send(message);
        outcome.resolve('ended');
      } catch (error) {
        outcome.resolve(error);
      }
    });
    const client = await h.rawOpened(port);
    await client.write(Buffer.from([0x82, 0xfe, 0x10, 0x00, 1, 2, 3, 4, 5])); // 4096-byte frame, cut short
    await sleep(10);
    client.reset();
    const error = await withTimeout(outcome.promise, 1000, 'the handler seeing the reset');
    assert.ok(error instanceof WebSocketDisconnect, String(error));
    assert.equal(error.code, 1006);
  });

  test('messages received before a TCP drop are still delivered, then 1006', async (t) => {
    const h = new Harness(t);
    const start = deferred();
    const outcome = deferred<string[]>();
    const { port } = await h.serve(async (ws) => {
      await ws.accept();
      await start.promise;
      const got: string[] = [];
      try {
        for (;;) got.push((await ws.receive()).text);
      } catch (error) {
        got.push(`disconnect ${(error as WebSocketDisconnect).code}`);
      }
      outcome.resolve(got);
    });
    const client = await h.rawOpened(port);
    await client.sendFrames([
      { opcode: Opcode.Text, payload: 'one' },
      { opcode: Opcode.Text, payload: 'two' },
    ]);
    await sleep(20);
    client.destroy();
    await sleep(20);
    start.resolve();
    assert.deepEqual(await withTimeout(outcome.promise, 1000, 'the handler'), ['one', 'two', 'disconnect 1006']);
  });
});

describe('a client that is gone before accept()', () => {
  test('request, a message, a close frame and FIN in one go: the handler still gets the message and the close', async (t) => {
    const h = new Harness(t);
    const release = deferred();
    const outcome = deferred<string[]>();
    const { port, server } = await h.serve(async (ws) => {
      await release.promise;
      await ws.accept();
      const seen: string[] = [];
      try {
        for (;;) seen.push((await ws.receive()).text);
      } catch (error) {
        seen.push(`disconnect ${(error as WebSocketDisconnect).code}`);
      }
      outcome.resolve(seen);
    });
    const client = await h.rawOpen(port, { allowHalfOpen: true });
    await client.write(
      Buffer.concat([
        Buffer.from(upgradeRequest(port).request, 'latin1'),
        encodeFrame({ opcode: Opcode.Text, payload: 'fire and forget' }),
        encodeFrame({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]) }),
      ]),
    );
    client.end();
    await sleep(30);
    release.resolve();
    assert.deepEqual(await withTimeout(outcome.promise, 1000, 'the handler'), ['fire and forget', 'disconnect 1000']);
    await until(() => server.clients.size === 0, 1000, 'the connection closing');
  });

  test('FIN before a handler that never accepts: the connection goes at the handshake timeout', async (t) => {
    const h = new Harness(t);
    const never = deferred();
    t.after(() => never.resolve());
    const { port, server } = await h.serve(() => never.promise, { handshakeTimeout: 200 });
    const client = await h.rawOpen(port);
    await client.write(upgradeRequest(port).request);
    await until(() => server.clients.size === 1, 1000, 'the upgrade reaching the server');
    client.end();
    await until(() => server.clients.size === 0, 2000, 'the connection leaving the server');
  });
});

describe('graceful shutdown', () => {
  test('server.close() → every client sees 1001, handlers in receive() end, close() resolves', async (t) => {
    const h = new Harness(t);
    const handlerEnds: Promise<unknown>[] = [];
    const { url, port, server } = await h.serve(async (ws) => {
      const end = deferred<unknown>();
      handlerEnds.push(end.promise);
      await ws.accept();
      try {
        await ws.send('ready');
        await ws.receive();
        end.resolve('got a message');
      } catch (error) {
        end.resolve(error);
      }
    });
    const clients = await Promise.all([h.client(url), h.client(url), h.client(url)]);
    for (const client of clients) assert.equal(await client.next(), 'ready');
    const raw = await h.rawOpened(port);
    assert.equal((await raw.readFrame()).payload.toString(), 'ready');
    const closing = server.close({ timeout: 1000 });
    assert.deepEqual(await raw.expectClose(), { code: 1001, reason: 'server shutting down' });
    await raw.close(1001);
    await withTimeout(closing, 2000, 'server.close()');
    for (const client of clients) {
      const event = await client.waitClosed();
      assert.equal(event.code, 1001);
      assert.equal(event.reason, 'server shutting down');
      assert.equal(event.wasClean, true);
    }
    const ends = await withTimeout(Promise.all(handlerEnds), 1000, 'handlers ending');
    assert.equal(ends.length, 4);
    for (const end of ends) assert.ok(end instanceof WebSocketDisconnect, String(end));
    assert.equal(server.clients.size, 0);
    // The listener is closed: a new connection is refused at the TCP level.
    await assert.rejects(h.rawOpen(port));
  });

  test('server.close() drops a client that never answers after the timeout', async (t) => {
    const h = new Harness(t);
    const { port, server } = await h.serve(echo);
    const raw = await h.rawOpened(port, { allowHalfOpen: true });
    const started = Date.now();
    const closing = server.close({ timeout: 200, code: 1012, reason: 'restart' });
    assert.deepEqual(await raw.expectClose(), { code: 1012, reason: 'restart' });
    await withTimeout(closing, 2000, 'server.close()');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 150 && elapsed < 1500, `closed after ${elapsed} ms`);
    await raw.waitForEnd();
  });

  test('a pending handshake during shutdown is refused with 503', async (t) => {
    const h = new Harness(t);
    const entered = deferred();
    const release = deferred();
    t.after(() => release.resolve());
    const { port, server } = await h.serve(async (ws) => {
      entered.resolve();
      await release.promise;
      await ws.accept().catch(() => undefined);
    });
    const pending = h.raw(port);
    await withTimeout(entered.promise, 1000, 'the handler starting');
    await withTimeout(server.close({ timeout: 200 }), 2000, 'server.close()');
    const client = await pending;
    assert.equal(client.response?.status, 503);
  });
});

describe('idle timeout and heartbeat', () => {
  test('idleTimeout: no traffic → close 1001 "idle timeout"; traffic keeps it open', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { idleTimeout: 300 });
    const busy = await h.rawOpened(port);
    const idle = await h.rawOpened(port);
    const started = Date.now();
    for (let i = 0; i < 8; i++) {
      await sleep(60);
      await busy.sendText(`tick ${i}`);
      assert.equal((await busy.readFrame()).payload.toString(), `tick ${i}`);
    }
    assert.deepEqual(await idle.expectClose(), { code: 1001, reason: 'idle timeout' });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 2000, `idle close after ${elapsed} ms`);
    await idle.close(1001);
    await idle.waitForEnd();
    assert.equal(busy.ended, false);
  });

  test('heartbeat: a client that never answers pings is closed with 1011', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { heartbeatInterval: 100 });
    const client = await h.rawOpened(port);
    const ping = await client.readFrame();
    assert.equal(ping.opcode, Opcode.Ping);
    const close = await client.readFrame();
    assert.equal(close.opcode, Opcode.Close);
    assert.equal(close.payload.readUInt16BE(0), 1011);
    await client.close(1011);
    await client.waitForEnd();
  });

  test('heartbeat: a client that answers (Node’s client does) stays open over several intervals', async (t) => {
    const h = new Harness(t);
    let pongs = 0;
    const { url, port } = await h.serve(
      async (ws: WebSocket) => {
        ws.on('pong', () => pongs++);
        await ws.accept();
        for await (const message of ws) await ws.send(message);
      },
      { heartbeatInterval: 150 },
    );
    const node = await h.client(url);
    const raw = await h.rawOpened(port);
    // The raw client answers pings by hand.
    const deadline = Date.now() + 800;
    while (Date.now() < deadline) {
      const frame = await raw.readFrame(1000);
      assert.equal(frame.opcode, Opcode.Ping);
      await raw.pong(frame.payload);
    }
    node.send('still here');
    assert.equal(await node.next(), 'still here');
    await raw.sendText('me too');
    let frame = await raw.readFrame();
    while (frame.opcode === Opcode.Ping) frame = await raw.readFrame();
    assert.equal(frame.payload.toString(), 'me too');
    assert.ok(pongs >= 6, `${pongs} pongs`);
  });
});

describe('the event API', () => {
  test('message and close events', async (t) => {
    const h = new Harness(t);
    const closeEvent = deferred<[number, string]>();
    const { url } = await h.serve(async (ws) => {
      await ws.accept();
      ws.on('message', (message: Message) => void ws.send(message).catch(() => undefined));
      ws.on('close', (code: number, reason: string) => closeEvent.resolve([code, reason]));
      await ws.whenClosed();
    });
    const client = await h.client(url);
    client.send('a');
    client.send(Uint8Array.of(1));
    assert.equal(await client.next(), 'a');
    assert.deepEqual(await client.next(), Buffer.from([1]));
    client.close(4321, 'done');
    assert.deepEqual(await withTimeout(closeEvent.promise, 1000, 'close event'), [4321, 'done']);
    assert.equal((await client.waitClosed()).code, 4321);
  });
});
