/**
 * Backpressure both ways, measured from outside:
 * - inbound: a handler that does not read makes the server stop reading the socket once
 *   inboundHighWaterMark are queued, so a flooding client stalls far below what it tried to send, and
 *   every message arrives, in order, once the handler reads;
 * - outbound: `send` resolves while the socket keeps up and waits (bufferedAmount > 0) while the
 *   client does not read.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WebSocket } from '../src/index.ts';
import { encodeFrame, Opcode } from './helpers/raw-client.ts';
import { deferred, Harness, settle, sleep, until, withTimeout } from './helpers/server.ts';

const MESSAGE_SIZE = 64 * 1024;
const MESSAGE_COUNT = 1024; // 64 MiB in all
const MAX_QUEUED = 1024 * 1024;

describe('inbound backpressure', () => {
  test('a handler that is not reading stops the server reading; all messages arrive in order later', async (t) => {
    const h = new Harness(t);
    const start = deferred();
    const done = deferred<{ count: number; inOrder: boolean }>();
    const { port, sockets } = await h.observed({ inboundHighWaterMark: MAX_QUEUED }, async (ws) => {
      await ws.accept();
      await start.promise;
      let count = 0;
      let inOrder = true;
      while (count < MESSAGE_COUNT) {
        const message = await ws.receive();
        if (message.data.length !== MESSAGE_SIZE || message.data.readUInt32BE(0) !== count) inOrder = false;
        count++;
      }
      done.resolve({ count, inOrder });
      await ws.send('all received');
    });

    const client = await h.rawOpened(port, { path: '/flood', timeout: 10_000 });
    const frames: Buffer[] = [];
    const payload = Buffer.alloc(MESSAGE_SIZE, 0x5a);
    for (let i = 0; i < MESSAGE_COUNT; i++) {
      payload.writeUInt32BE(i, 0);
      frames.push(encodeFrame({ opcode: Opcode.Binary, payload, maskKey: Buffer.from([1, 2, 3, 4]) }));
    }
    const total = frames.reduce((sum, frame) => sum + frame.length, 0);
    // Flood without waiting: Node buffers what the kernel does not take.
    for (const frame of frames) client.socket.write(frame);

    const serverRead = await settle(() => sockets[0]!.bytesRead, 200, 5000);
    const clientSent = client.socket.bytesWritten - client.socket.writableLength;
    t.diagnostic(`server read ${serverRead} bytes, kernel took ${clientSent} of ${total}`);
    // The server holds at most inboundHighWaterMark plus a message or two and a socket read in flight.
    assert.ok(serverRead <= MAX_QUEUED + 4 * (MESSAGE_SIZE + 14), `server read ${serverRead} bytes while paused`);
    // What the client could hand over is bounded by the kernel's buffers, far below 64 MiB.
    assert.ok(clientSent < total / 2, `client sent ${clientSent} of ${total} bytes`);
    assert.ok(client.socket.writableLength > total / 2, 'most of the flood is still waiting in the client');

    start.resolve();
    const result = await withTimeout(done.promise, 10_000, 'the handler reading the flood');
    assert.deepEqual(result, { count: MESSAGE_COUNT, inOrder: true });
    assert.equal(sockets[0]!.bytesRead >= total, true);
    assert.equal((await client.readFrame()).payload.toString(), 'all received');
  });

  test('a flood of empty messages is bounded too (per-message accounting)', async (t) => {
    const h = new Harness(t);
    const start = deferred();
    const done = deferred<number>();
    const count = 200_000;
    const { port, sockets } = await h.observed({ inboundHighWaterMark: 64 * 1024 }, async (ws) => {
      await ws.accept();
      await start.promise;
      let received = 0;
      while (received < count) {
        await ws.receive();
        received++;
      }
      done.resolve(received);
    });
    const client = await h.rawOpened(port, { path: '/empty', timeout: 10_000 });
    const one = encodeFrame({ opcode: Opcode.Binary, maskKey: Buffer.from([0, 0, 0, 0]) });
    const flood = Buffer.concat(Array.from({ length: count }, () => one)); // 1.2 MB of 6-byte frames
    client.socket.write(flood);
    const serverRead = await settle(() => sockets[0]!.bytesRead, 200, 5000);
    t.diagnostic(`server read ${serverRead} of ${flood.length} bytes`);
    assert.ok(serverRead < flood.length, `the server read all ${serverRead} bytes of empty messages while paused`);
    start.resolve();
    assert.equal(await withTimeout(done.promise, 10_000, 'reading the empty messages'), count);
  });
  test('reading resumes at the low-water mark, not just under the high one (no flapping at the edge)', async (t) => {
    const h = new Harness(t);
    const size = 16 * 1024;
    const high = 256 * 1024;
    const low = 64 * 1024;
    const next = { step: deferred() };
    const received: number[] = [];
    const { port, sockets } = await h.observed({ inboundHighWaterMark: high, inboundLowWaterMark: low }, async (ws) => {
      await ws.accept();
      for (;;) {
        await next.step.promise;
        const message = await ws.receive();
        received.push(message.data.readUInt32BE(0));
      }
    });
    const client = await h.rawOpened(port, { path: '/edge', timeout: 10_000 });
    const payload = Buffer.alloc(size, 0x5b);
    for (let i = 0; i < 256; i++) {
      payload.writeUInt32BE(i, 0);
      client.socket.write(encodeFrame({ opcode: Opcode.Binary, payload, maskKey: Buffer.from([5, 6, 7, 8]) }));
    }
    const pausedAt = await settle(() => sockets[0]!.bytesRead, 150, 5000);
    // One message at a time: reading stays stopped while the queue is between the two marks.
    let resumedAfter = 0;
    for (let taken = 1; taken <= 64; taken++) {
      const step = next.step;
      next.step = deferred();
      step.resolve();
      await until(() => received.length === taken, 2000, `message ${taken}`);
      await sleep(30);
      if (sockets[0]!.bytesRead !== pausedAt) {
        resumedAfter = taken;
        break;
      }
    }
    t.diagnostic(`paused after reading ${pausedAt} bytes; resumed after the handler took ${resumedAfter} messages`);
    assert.ok(pausedAt < 256 * (size + 14), 'the server paused');
    // Above the low mark after each of the first receives: (high - low) / (size + 64) messages at least.
    assert.ok(resumedAfter >= Math.floor((high - low) / (size + 64)), `resumed after ${resumedAfter} messages`);
    assert.deepEqual(received, Array.from({ length: resumedAfter }, (_, i) => i));
  });
});

describe('inbound backpressure and timers', () => {
  test('a connection paused because its handler is behind is not closed by the heartbeat or idle timeout', async (t) => {
    const h = new Harness(t);
    const start = deferred();
    const { port, sockets } = await h.observed(
      { inboundHighWaterMark: 64 * 1024, heartbeatInterval: 100, idleTimeout: 250 },
      async (ws) => {
        await ws.accept();
        await start.promise;
        for await (const message of ws) await ws.send(message);
      },
    );
    const client = await h.rawOpened(port, { path: '/slow', timeout: 10_000 });
    const payload = Buffer.alloc(16 * 1024, 1);
    for (let i = 0; i < 64; i++) client.socket.write(encodeFrame({ opcode: Opcode.Binary, payload, maskKey: Buffer.from([9, 8, 7, 6]) }));
    await settle(() => sockets[0]!.bytesRead, 200, 5000);
    // Paused for 6 heartbeat intervals and 2 idle timeouts: the server sends nothing at all.
    await client.expectSilence(600); // fails on any byte: a ping or a close
    start.resolve();
    for (let i = 0; i < 64; i++) {
      let frame = await client.readFrame();
      while (frame.opcode === Opcode.Ping) frame = await client.readFrame();
      assert.equal(frame.opcode, Opcode.Binary);
      assert.equal(frame.payload.length, payload.length);
    }
  });
});

describe('outbound backpressure', () => {
  test('send() waits while the client is not reading, bufferedAmount shows it; all arrive after', async (t) => {
    const h = new Harness(t);
    let sent = 0;
    let server: WebSocket | undefined;
    const finished = deferred();
    const count = 512; // 32 MiB
    const { port } = await h.serve(async (ws) => {
      server = ws;
      await ws.accept();
      const payload = Buffer.alloc(MESSAGE_SIZE, 1);
      for (let i = 0; i < count; i++) {
        payload.writeUInt32BE(i, 0);
        await ws.send(payload);
        sent++;
      }
      finished.resolve();
    });
    const client = await h.rawOpened(port, { timeout: 10_000 });
    client.pause();
    const stalledAt = await settle(() => sent, 200, 5000);
    const buffered = server!.bufferedAmount;
    t.diagnostic(`send() stalled after ${stalledAt} messages with bufferedAmount ${buffered}`);
    assert.ok(stalledAt < count / 2, `${stalledAt} of ${count} sends resolved while the client was not reading`);
    // The pending send's frame waits in the socket's buffer: at least that one message.
    assert.ok(buffered >= MESSAGE_SIZE, `bufferedAmount ${buffered} while stalled`);
    client.resume();
    for (let i = 0; i < count; i++) {
      const frame = await client.readFrame();
      assert.equal(frame.opcode, Opcode.Binary);
      assert.equal(frame.payload.length, MESSAGE_SIZE);
      assert.equal(frame.payload.readUInt32BE(0), i);
    }
    await withTimeout(finished.promise, 5000, 'the sender finishing');
    await until(() => sent === count, 1000, 'all sends resolved');
  });

  test('send() resolves at once while the socket keeps up', async (t) => {
    const h = new Harness(t);
    const results = deferred<number>();
    const { url } = await h.serve(async (ws) => {
      await ws.accept();
      let immediate = 0;
      for (let i = 0; i < 10; i++) {
        let settled = false;
        const promise = ws.send(`m${i}`).then(() => {
          settled = true;
        });
        await Promise.resolve();
        await Promise.resolve();
        if (settled) immediate++;
        await promise;
      }
      results.resolve(immediate);
      await ws.receive();
    });
    const client = await h.client(url);
    for (let i = 0; i < 10; i++) assert.equal(await client.next(), `m${i}`);
    assert.equal(await results.promise, 10);
  });
});
