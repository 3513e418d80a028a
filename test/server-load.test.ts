/**
 * Many connections and hostile input: 1,000 concurrent connections all get their echo, and garbage
 * (random bytes after the handshake, garbage instead of HTTP, half frames then a reset, oversized
 * headers) never crashes the process or disturbs a good connection.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Handler } from '../src/index.ts';
import { encodeFrame, Opcode, upgradeRequest, type RawClient } from './helpers/raw-client.ts';
import { Harness, sleep, until } from './helpers/server.ts';

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

/** A small seeded PRNG (mulberry32) so a failing garbage case can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

function randomBuffer(random: () => number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

describe('many connections', () => {
  test('1,000 concurrent connections each get their own echo', async (t) => {
    const h = new Harness(t);
    const { port, server } = await h.serve(echo);
    const started = Date.now();
    const clients: RawClient[] = [];
    // Open in waves so the listen backlog (511) never overflows into SYN retries.
    for (let wave = 0; wave < 10; wave++) {
      clients.push(...(await Promise.all(Array.from({ length: 100 }, () => h.rawOpened(port, { timeout: 5000 })))));
    }
    assert.equal(server.clients.size, 1000);
    await Promise.all(clients.map((client, i) => client.sendText(`hello from ${i}`)));
    const echoes = await Promise.all(clients.map((client) => client.readFrame()));
    echoes.forEach((frame, i) => assert.equal(frame.payload.toString(), `hello from ${i}`));
    await Promise.all(clients.map((client) => client.close(1000)));
    await Promise.all(clients.map(async (client) => {
      assert.equal((await client.expectClose()).code, 1000);
      await client.waitForEnd(5000);
    }));
    await until(() => server.clients.size === 0, 5000, 'all connections gone');
    const elapsed = Date.now() - started;
    t.diagnostic(`1,000 connections opened, echoed and closed in ${elapsed} ms`);
    assert.ok(elapsed < 10_000, `${elapsed} ms`);
  });
});

describe('bad input', () => {
  test('garbage from other clients never disturbs a good connection', async (t) => {
    const h = new Harness(t);
    const { port, url, server } = await h.serve(echo);
    const good = await h.client(url);
    good.send('before');
    assert.equal(await good.next(), 'before');
    const random = prng(6455);
    const bad: Promise<void>[] = [];

    // Random bytes after a valid handshake: the server fails the connection and closes TCP.
    for (let i = 0; i < 30; i++) {
      bad.push(
        (async () => {
          const client = await h.rawOpened(port, { timeout: 5000 });
          await client.write(randomBuffer(random, 1 + Math.floor(random() * 4096))).catch(() => undefined);
          // Random garbage may declare a long frame and wait for its payload; end our side.
          client.end();
          await client.waitForEnd(5000);
        })(),
      );
    }
    // Garbage instead of an HTTP request: Node's parser refuses it (400) and closes.
    for (let i = 0; i < 10; i++) {
      bad.push(
        (async () => {
          const client = await h.rawOpen(port, { timeout: 5000 });
          await client.write(Buffer.concat([randomBuffer(random, 200), Buffer.from('\r\n\r\n')])).catch(() => undefined);
          await client.waitForEnd(5000);
          if (client.buffered > 0) assert.match(client.takeAll().toString('latin1'), /^HTTP\/1\.1 4\d\d /);
        })(),
      );
    }
    // Half a frame, then a TCP reset.
    for (let i = 0; i < 10; i++) {
      bad.push(
        (async () => {
          const client = await h.rawOpened(port);
          const frame = encodeFrame({ opcode: Opcode.Binary, payload: randomBuffer(random, 1000) });
          await client.write(frame.subarray(0, 1 + Math.floor(random() * (frame.length - 1))));
          client.reset();
        })(),
      );
    }
    // A handshake request, then a reset before the response is read.
    for (let i = 0; i < 5; i++) {
      bad.push(
        (async () => {
          const client = await h.rawOpen(port);
          await client.write(upgradeRequest(port).request);
          client.reset();
        })(),
      );
    }
    // Half a request line, then a reset; a 64 KiB header (Node answers 431).
    bad.push(
      (async () => {
        const client = await h.rawOpen(port);
        await client.write('GET /ws HT');
        client.reset();
      })(),
      (async () => {
        const client = await h.rawOpen(port);
        await client.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`).catch(() => undefined);
        await client.waitForEnd(5000);
      })(),
    );
    await Promise.all(bad);

    good.send('after');
    assert.equal(await good.next(), 'after');
    const big = Buffer.alloc(100_000, 7);
    good.send(big);
    assert.deepEqual(await good.next(), big);
    await until(() => server.clients.size === 1, 5000, 'every bad connection gone');
    // The server still accepts new connections.
    const late = await h.client(url);
    late.send('late');
    assert.equal(await late.next(), 'late');
    await sleep(10);
  });
});
