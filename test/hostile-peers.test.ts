/**
 * The threat list for the outbound side: what a peer that does not read can make the server write,
 * and what it costs. Each test is one attack, run on the wire with a raw client that stops reading
 * (TCP backpressure) and measured in bytes on the server's own socket (`bytesRead`, `writableLength`),
 * never in RSS. Each ends by checking what the peer finally receives.
 *
 * 1. A ping flood, never reading the pongs.
 * 2. A broadcast to many connections, one of which never reads (policy `skip`, then `close`).
 * 3. An event-API handler that echoes with fire-and-forget `send()` to a peer that never reads.
 * 4. A handler that sends more than the hard limit without waiting (fire-and-forget).
 * 5. A close reply stuck behind output the peer never reads.
 * 6. The heartbeat and the idle timeout against a peer that never reads.
 *
 * And for the inbound side with permessage-deflate, where the cost is memory rather than socket bytes:
 *
 * 7. An inflate bomb: a compressed message within maxMessageSize that would inflate a thousandfold.
 * 8. A compressed frame declaring more than maxMessageSize: refused from its header.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import { constants, createDeflateRaw, inflateRawSync } from 'node:zlib';
import { SlowConsumer, WebSocketDisconnect, type BroadcastResult, type Handler, type ServerOptions, type WebSocket, type WebSocketServer } from '../src/index.ts';
import { compress, FLUSH_TAIL, flushThrough, inflate } from './helpers/deflate.ts';
import { encodeFrame, Opcode, parseClosePayload, Rsv, type RawClient, type ServerFrame } from './helpers/raw-client.ts';
import { deferred, Harness, settle, sleep, until, withTimeout } from './helpers/server.ts';

const KiB = 1024;
const MASK = Buffer.from([0x11, 0x22, 0x33, 0x44]);

/** Whether `socket` emits 'drain' within `ms`. */
function drainedWithin(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('drain', drained);
      resolve(false);
    }, ms);
    const drained = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('drain', drained);
  });
}

/** Yields to the event loop once (I/O callbacks included). */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Reads frames until one of `opcode`, skipping pings; fails on anything else. */
async function readUntilClose(client: RawClient, timeout = 5000): Promise<{ frames: ServerFrame[]; close: ServerFrame }> {
  const frames: ServerFrame[] = [];
  for (;;) {
    const frame = await client.readFrame(timeout);
    if (frame.opcode === Opcode.Close) return { frames, close: frame };
    frames.push(frame);
  }
}

/**
 * Broadcasts `chunk` (to the connections `filter` accepts) until a connection is refused by the
 * slow-consumer policy; every broadcast before that must have been written. Returns how many were
 * written and the refusing broadcast's result.
 */
async function fillUntilRefused(
  wss: WebSocketServer,
  chunk: Buffer,
  filter?: (ws: WebSocket) => boolean,
): Promise<{ fills: number; refusal: BroadcastResult }> {
  for (let fills = 0; fills < 10_000; fills++) {
    const result = wss.broadcast(chunk, filter);
    if (result.skipped + result.closed > 0) return { fills, refusal: result };
    assert.deepEqual(result, { sent: 1, skipped: 0, closed: 0 });
    await turn();
  }
  throw new Error('the connection was never over the limit');
}

const echo: Handler = async (ws) => {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
};

describe('hostile peers: every byte the server writes is bounded', () => {
  test('1. a ping flood from a peer that never reads: reading stops, one pong is pending, every ping answered in order at most once', async (t) => {
    const h = new Harness(t);
    const outboundHighWaterMark = 32 * KiB;
    const { port, sockets } = await h.observed({ outboundHighWaterMark, maxBufferedAmount: 64 * KiB }, echo);
    const client = await h.rawOpened(port, { timeout: 10_000 });
    client.pause();
    const server = sockets[0]!;

    // Pings with 125-byte payloads carrying their sequence number, 512 per write, for as long as the
    // server takes them (the client's own writes stall once the server stops reading).
    const payload = Buffer.alloc(125, 0x70);
    let sent = 0;
    let stalled = false;
    while (sent < 2_000_000) {
      const frames: Buffer[] = [];
      for (let i = 0; i < 512; i++) {
        payload.writeUInt32BE(sent++, 0);
        frames.push(encodeFrame({ opcode: Opcode.Ping, payload, maskKey: MASK }));
      }
      if (client.socket.write(Buffer.concat(frames)) || (await drainedWithin(client.socket, 300))) continue;
      // No drain yet: a server slowed by other load is still reading; a stalled one has stopped.
      await settle(() => server.bytesRead, 300, 10_000);
      if (client.socket.writableNeedDrain) {
        stalled = true;
        break;
      }
    }
    assert.ok(stalled, `the server took all ${sent} pings`);
    const read = await settle(() => server.bytesRead, 200, 5000);
    const buffered = server.writableLength;
    t.diagnostic(`${sent} pings (${sent * 131} bytes) sent; the server read ${read} bytes, wrote ${server.bytesWritten}, buffers ${buffered}`);
    assert.ok(read < sent * 131 - 512 * 131, 'the server stopped reading');
    // Node's own write buffer (its 16 KiB high-water mark) plus at most one pong: under the watermark.
    assert.ok(buffered <= outboundHighWaterMark, `buffered ${buffered} bytes`);

    // The peer reads at last: pongs in increasing order, none twice, the very last ping answered,
    // and the connection still echoes.
    client.resume();
    let last = -1;
    let pongs = 0;
    while (last !== sent - 1) {
      const frame = await client.readFrame(10_000);
      assert.equal(frame.opcode, Opcode.Pong, `frame ${pongs}`);
      const sequence = frame.payload.readUInt32BE(0);
      assert.ok(sequence > last, `pong ${sequence} after pong ${last}`);
      last = sequence;
      pongs++;
    }
    t.diagnostic(`${pongs} pongs for ${sent} pings`);
    assert.ok(pongs < sent, 'pings that found the output backed up were coalesced');
    await client.sendText('still there?');
    const echoed = await client.readFrame();
    assert.equal(echoed.opcode, Opcode.Text);
    assert.equal(echoed.payload.toString(), 'still there?');
  });

  test('2a. broadcast to 100 connections, one never reads: the others get every message, the slow one is skipped and counted', async (t) => {
    const h = new Harness(t);
    const maxBufferedAmount = 256 * KiB;
    const { server: wss, port, sockets } = await h.observed({ maxBufferedAmount, outboundHighWaterMark: 64 * KiB },
      async (ws) => {
        await ws.accept();
        for await (const _ of ws);
      },
    );
    const clients: RawClient[] = [];
    for (let i = 0; i < 100; i++) clients.push(await h.rawOpened(port, { timeout: 10_000 }));
    await until(() => [...wss.clients].filter((ws) => ws.state === 'open').length === 100, 5000, 'all open');
    const slow = clients[0]!;
    const slowServer = sockets[0]!;
    // Clients were opened one after another: the server's connections are in the same order.
    const slowWs = [...wss.clients][0]!;
    slow.pause();

    // Fill the slow one (and only it) until the server refuses to buffer more for it.
    const chunk = Buffer.alloc(32 * KiB, 0x61);
    const { fills, refusal } = await fillUntilRefused(wss, chunk, (ws) => ws === slowWs);
    assert.deepEqual(refusal, { sent: 0, skipped: 1, closed: 0 });
    const bufferedAtLimit = slowServer.writableLength;
    t.diagnostic(`slow connection over the limit after ${fills} messages; ${bufferedAtLimit} bytes buffered`);
    assert.ok(bufferedAtLimit > maxBufferedAmount, 'skipped only once over the limit');
    assert.ok(bufferedAtLimit <= maxBufferedAmount + chunk.length + 16, `buffered ${bufferedAtLimit}`);

    // Now to everyone: 99 sent, 1 skipped, every time; the slow one's buffer does not grow.
    const rounds = 20;
    for (let i = 0; i < rounds; i++) {
      const message = Buffer.alloc(4 * KiB, i);
      assert.deepEqual(wss.broadcast(message), { sent: 99, skipped: 1, closed: 0 });
      await turn();
    }
    assert.equal(slowServer.writableLength, bufferedAtLimit);
    for (const client of clients.slice(1)) {
      for (let i = 0; i < rounds; i++) {
        const frame = await client.readFrame(5000);
        assert.equal(frame.opcode, Opcode.Binary);
        assert.equal(frame.payload.length, 4 * KiB);
        assert.equal(frame.payload[0], i);
      }
    }
    // The slow one is still open and gets what was buffered for it once it reads.
    assert.equal(slowWs.state, 'open');
    slow.resume();
    for (let i = 0; i < fills; i++) assert.equal((await slow.readFrame(5000)).payload.length, chunk.length);
  });

  test('2b. broadcast under slowConsumer "close": the slow one is closed with 1008 and counted', async (t) => {
    const h = new Harness(t);
    const maxBufferedAmount = 128 * KiB;
    const closed = deferred<WebSocketDisconnect>();
    const { server: wss, port } = await h.observed({ maxBufferedAmount, outboundHighWaterMark: 64 * KiB, slowConsumer: 'close', closeTimeout: 5000 },
      async (ws) => {
        await ws.accept();
        try {
          for await (const _ of ws);
        } catch (error) {
          closed.resolve(error as WebSocketDisconnect);
        }
      },
    );
    const fast = await h.rawOpened(port, { timeout: 10_000 });
    const slow = await h.rawOpened(port, { timeout: 10_000 });
    await until(() => wss.clients.size === 2 && [...wss.clients].every((ws) => ws.state === 'open'), 5000, 'both open');
    const [fastWs, slowWs] = [...wss.clients] as [WebSocket, WebSocket];
    slow.pause();
    const chunk = Buffer.alloc(32 * KiB, 0x62);
    const { fills, refusal } = await fillUntilRefused(wss, chunk, (ws) => ws === slowWs);
    assert.deepEqual(refusal, { sent: 0, skipped: 0, closed: 1 });
    assert.equal(slowWs.state, 'closing');
    // The fast one is untouched; the slow one is no longer open, so later broadcasts pass it by.
    assert.deepEqual(wss.broadcast('after'), { sent: 1, skipped: 0, closed: 0 });
    assert.equal(fastWs.state, 'open');
    assert.equal((await fast.readFrame()).payload.toString(), 'after');
    // On the wire: everything buffered, then the close frame 1008 "slow consumer".
    slow.resume();
    const { frames, close } = await readUntilClose(slow);
    assert.equal(frames.length, fills);
    assert.deepEqual(parseClosePayload(close.payload), { code: 1008, reason: 'slow consumer' });
    await slow.close(1008);
    const error = await withTimeout(closed.promise, 5000, 'the handler seeing the close');
    assert.equal(error.code, 1008);
    assert.equal(error.initiator, 'local');
  });

  test('3. an event-API handler echoing with fire-and-forget send() to a peer that never reads: bounded, nothing lost', async (t) => {
    const h = new Harness(t);
    const outboundHighWaterMark = 128 * KiB;
    const { port, sockets } = await h.observed({ outboundHighWaterMark, maxBufferedAmount: 512 * KiB }, async (ws) => {
      ws.on('message', (message) => {
        void ws.send(message); // not awaited: the pattern ws users write
      });
      await ws.accept();
      await ws.whenClosed();
    });
    const client = await h.rawOpened(port, { timeout: 10_000 });
    client.pause();
    const server = sockets[0]!;
    const size = 16 * KiB;
    const count = 2048; // 32 MiB
    const payload = Buffer.alloc(size, 0x63);
    for (let i = 0; i < count; i++) {
      payload.writeUInt32BE(i, 0);
      client.socket.write(encodeFrame({ opcode: Opcode.Binary, payload, maskKey: MASK }));
    }
    const read = await settle(() => server.bytesRead, 300, 10_000);
    const buffered = server.writableLength;
    t.diagnostic(`server read ${read} of ${count * (size + 14)} bytes; ${buffered} bytes buffered`);
    assert.ok(read < (count * (size + 14)) / 2, `the server read ${read} bytes from a peer that does not read`);
    // At most the watermark plus the echoes of one read (a socket read is at most 64 KiB).
    assert.ok(buffered <= outboundHighWaterMark + 64 * KiB + 14 * 8, `buffered ${buffered}`);
    client.resume();
    for (let i = 0; i < count; i++) {
      const frame = await client.readFrame(10_000);
      assert.equal(frame.payload.readUInt32BE(0), i);
    }
  });

  test('4a. fire-and-forget sends past the hard limit are refused (SlowConsumer), never buffered, never an unhandled rejection', async (t) => {
    const h = new Harness(t);
    const maxBufferedAmount = 256 * KiB;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    t.after(() => process.off('unhandledRejection', onUnhandled));
    const outcome = deferred<{ refused: number; bufferedMax: number }>();
    const closed = deferred();
    const { port } = await h.observed({ maxBufferedAmount, outboundHighWaterMark: 64 * KiB }, async (ws) => {
      ws.on('close', () => closed.resolve());
      await ws.accept();
      await ws.receive(); // the client's go
      const chunk = Buffer.alloc(32 * KiB, 0x64);
      let refused = 0;
      let bufferedMax = 0;
      for (let i = 0; i < 4000; i++) {
        // Half of them not even observed: they must not become unhandled rejections.
        const promise = ws.send(chunk);
        if (i % 2 === 0) promise.catch((error: unknown) => (error instanceof SlowConsumer ? refused++ : undefined));
        bufferedMax = Math.max(bufferedMax, ws.bufferedAmount);
        if (i % 64 === 0) await turn();
      }
      await turn();
      outcome.resolve({ refused, bufferedMax });
      await ws.receive().catch(() => undefined);
    });
    const client = await h.rawOpened(port, { timeout: 10_000 });
    await client.sendText('go');
    client.pause();
    const { refused, bufferedMax } = await withTimeout(outcome.promise, 10_000, 'the sender');
    t.diagnostic(`${refused} of 2000 observed sends refused; bufferedAmount at most ${bufferedMax}`);
    assert.ok(refused > 0, 'some sends were refused');
    // The limit, plus the one message that took it past.
    assert.ok(bufferedMax <= maxBufferedAmount + 32 * KiB + 16, `bufferedAmount reached ${bufferedMax}`);
    // The peer vanishes with sends still waiting (the one held for the drain): they reject unseen.
    client.reset();
    await withTimeout(closed.promise, 5000, 'the server seeing the reset');
    await sleep(50);
    assert.deepEqual(unhandled, []);
  });

  test('4b. an awaited send() to a connection a broadcast filled past the limit waits for the drain, then is delivered', async (t) => {
    const h = new Harness(t);
    const state = { resolved: false };
    const go = deferred();
    const { server: wss, port } = await h.observed({ maxBufferedAmount: 128 * KiB, outboundHighWaterMark: 64 * KiB }, async (ws) => {
      await ws.accept();
      await go.promise;
      await ws.send('after the flood');
      state.resolved = true;
      await ws.receive().catch(() => undefined);
    });
    const client = await h.rawOpened(port, { timeout: 10_000 });
    client.pause();
    await until(() => [...wss.clients].some((ws) => ws.state === 'open'), 5000, 'open');
    const chunk = Buffer.alloc(32 * KiB, 0x68);
    const { fills, refusal } = await fillUntilRefused(wss, chunk);
    assert.deepEqual(refusal, { sent: 0, skipped: 1, closed: 0 });
    go.resolve();
    await sleep(100);
    assert.equal(state.resolved, false, 'the awaited send waits while the peer does not read');
    client.resume();
    for (let i = 0; i < fills; i++) assert.equal((await client.readFrame(5000)).payload.length, chunk.length);
    const frame = await client.readFrame(5000);
    assert.equal(frame.payload.toString(), 'after the flood');
    await until(() => state.resolved, 2000, 'the awaited send resolved');
  });

  test('5. a close reply stuck behind output the peer never reads: the connection is dropped after closeTimeout', async (t) => {
    const h = new Harness(t);
    const closeTimeout = 300;
    const timeline = { replied: 0, closed: 0 };
    const closed = deferred();
    const { port, sockets } = await h.observed({ closeTimeout, outboundHighWaterMark: 64 * KiB, maxBufferedAmount: 256 * KiB },
      async (ws) => {
        await ws.accept();
        ws.on('close', () => {
          timeline.closed = Date.now();
          closed.resolve();
        });
        // A message and the peer's close arrive together; the handler answers the message with
        // more than the peer will ever read, then receives the close (its reply goes behind).
        const message = await ws.receive();
        for (let i = 0; i < 4000 && ws.bufferedAmount <= 256 * KiB; i++) void ws.send(message);
        await ws.receive().catch(() => undefined);
        timeline.replied = Date.now();
      },
    );
    const client = await h.rawOpened(port, { timeout: 10_000 });
    client.pause();
    client.socket.write(
      Buffer.concat([
        encodeFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(64 * KiB, 0x65), maskKey: MASK }),
        encodeFrame({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]), maskKey: MASK }),
      ]),
    );
    await withTimeout(closed.promise, closeTimeout + 5000, 'the server dropping the connection');
    const waited = timeline.closed - timeline.replied;
    t.diagnostic(`close answered, then the socket dropped ${waited} ms later (closeTimeout ${closeTimeout} ms)`);
    assert.ok(timeline.replied > 0, 'the close was answered');
    assert.ok(sockets[0]!.destroyed);
    assert.ok(waited >= closeTimeout - 20 && waited < closeTimeout + 1000, `${waited} ms`);
  });

  test('6a. the heartbeat closes a peer that never reads: close frame 1011 "heartbeat timeout" on the wire', async (t) => {
    const h = new Harness(t);
    const disconnect = deferred<WebSocketDisconnect>();
    const { port } = await h.observed({ heartbeatInterval: 100, closeTimeout: 300 }, async (ws) => {
      await ws.accept();
      try {
        await ws.receive();
      } catch (error) {
        disconnect.resolve(error as WebSocketDisconnect);
      }
    });
    const client = await h.rawOpened(port, { timeout: 10_000 });
    client.pause();
    const error = await withTimeout(disconnect.promise, 3000, 'the heartbeat closing the connection');
    assert.ok(error instanceof WebSocketDisconnect);
    assert.deepEqual([error.code, error.reason, error.initiator], [1011, 'heartbeat timeout', 'local']);
    client.resume();
    const { frames, close } = await readUntilClose(client);
    assert.ok(frames.length >= 1 && frames.every((frame) => frame.opcode === Opcode.Ping), 'pings, then the close');
    assert.deepEqual(parseClosePayload(close.payload), { code: 1011, reason: 'heartbeat timeout' });
  });

  /**
   * An echo server with `options`, flooded by a client that never reads: far more than the kernel
   * buffers take, so the echoes stall, the handler blocks in send(), the queue fills and reading stops
   * both ways. Resolves with the close event's code and reason once the server has dropped it.
   */
  async function dropNeverReadingPeer(t: TestContext, options: ServerOptions): Promise<[number, string]> {
    const h = new Harness(t);
    const closed = deferred<[number, string]>();
    const { port, sockets } = await h.observed(
      { ...options, inboundHighWaterMark: 64 * KiB, outboundHighWaterMark: 64 * KiB },
      async (ws) => {
        ws.on('close', (code, reason) => closed.resolve([code, reason]));
        await echo(ws);
      },
    );
    const client = await h.rawOpened(port, { timeout: 10_000 });
    client.pause();
    const frame = encodeFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(64 * KiB, 0x66), maskKey: MASK });
    for (let i = 0; i < 1024; i++) client.socket.write(frame);
    const startedAt = Date.now();
    const result = await withTimeout(closed.promise, 10_000, 'the server dropping a peer that never reads');
    t.diagnostic(`dropped ${Date.now() - startedAt} ms after the flood began, reported as ${result.join(' ')}`);
    assert.ok(sockets[0]!.destroyed);
    return result;
  }

  test('6b. the heartbeat closes a peer that never reads even while the handler is blocked sending to it', async (t) => {
    assert.deepEqual(await dropNeverReadingPeer(t, { heartbeatInterval: 100, closeTimeout: 200 }), [1011, 'heartbeat timeout']);
  });

  test('6c. the idle timeout closes a peer that never reads (1001 "idle timeout")', async (t) => {
    assert.deepEqual(await dropNeverReadingPeer(t, { idleTimeout: 300, closeTimeout: 200 }), [1001, 'idle timeout']);
  });
});

describe('a peer that resets the connection', () => {
  test('the socket error reaches onError; the handler sees 1006 from the transport, with the error as cause', async (t) => {
    const h = new Harness(t);
    const reported = deferred<{ error: unknown; ws: WebSocket }>();
    const disconnect = deferred<unknown>();
    const { port } = await h.observed({ onError: (error, ws) => reported.resolve({ error, ws }) },
      async (ws) => {
        await ws.accept();
        try {
          for await (const message of ws) await ws.send(message);
        } catch (error) {
          disconnect.resolve(error);
        }
      },
    );
    const client = await h.rawOpened(port, { timeout: 10_000 });
    await client.sendText('hello');
    assert.equal((await client.readFrame()).payload.toString(), 'hello');
    // Unread data on the client's side makes the close a TCP reset; a frame in flight to the server
    // makes it read (and fail) at once.
    await client.sendText('unanswered');
    client.reset();
    const { error } = await withTimeout(reported.promise, 5000, 'onError receiving the socket error');
    assert.ok(['ECONNRESET', 'EPIPE'].includes(String((error as { code?: unknown }).code)), String(error));
    const seen = await withTimeout(disconnect.promise, 5000, 'the handler seeing the disconnect');
    assert.ok(seen instanceof WebSocketDisconnect);
    assert.equal(seen.code, 1006);
    assert.equal(seen.initiator, 'transport');
    assert.equal(seen.cause, error);
  });
});

// ------------------------------------------------------------------ compressed input (permessage-deflate)

const MiB = 1024 * KiB;

/**
 * What one persistent raw deflate stream outputs for `count` chunks of `chunkSize` zero bytes, each
 * followed by a Z_SYNC_FLUSH: one buffer per chunk, each ending with 00 00 ff ff.
 */
async function deflateZeroChunks(count: number, chunkSize: number): Promise<Buffer[]> {
  const stream = createDeflateRaw({ level: 9, memLevel: 9 });
  const zeros = Buffer.alloc(chunkSize);
  const outputs: Buffer[] = [];
  try {
    for (let i = 0; i < count; i++) outputs.push(await flushThrough(stream, zeros));
  } finally {
    stream.close();
  }
  return outputs;
}

/**
 * A compressed message (tail removed) of at most `maxCompressed` bytes that inflates to as many MiB of
 * zeros as fit, built without compressing them: after its first flush, a deflate stream fed zeros
 * outputs the same block for every further MiB (the window is all zeros, the block byte-aligned), so
 * the message is the first block and then the steady one repeated.
 */
async function inflateBomb(maxCompressed: number): Promise<{ payload: Buffer; inflatedSize: number }> {
  const [first, steady, again] = await deflateZeroChunks(3, MiB);
  assert.ok(steady!.equals(again!), 'the stream reached its steady state');
  const count = 1 + Math.floor((maxCompressed + FLUSH_TAIL.length - first!.length) / steady!.length);
  const message = Buffer.concat([first!, ...Array<Buffer>(count - 1).fill(steady!)]);
  return { payload: message.subarray(0, -FLUSH_TAIL.length), inflatedSize: count * MiB };
}

describe('hostile peers: compressed input (permessage-deflate)', () => {
  test('the inflate bomb construction: the first block and the repeated steady block are what the stream outputs', async () => {
    const real = await deflateZeroChunks(5, MiB);
    const built = Buffer.concat([real[0]!, ...Array<Buffer>(4).fill(real[1]!)]);
    assert.ok(built.equals(Buffer.concat(real)), 'the same bytes as compressing 5 MiB of zeros');
    const inflated = inflateRawSync(built, { finishFlush: constants.Z_SYNC_FLUSH });
    assert.ok(inflated.equals(Buffer.alloc(5 * MiB)), '5 MiB of zeros');
    const { payload, inflatedSize } = await inflateBomb(64 * KiB);
    assert.ok(payload.length <= 64 * KiB);
    const small = inflate(payload);
    assert.equal(small.length, inflatedSize);
    assert.ok(inflatedSize / payload.length > 1000, `ratio ${inflatedSize / payload.length}`);
  });

  test('7. an inflate bomb (≈1 MiB that inflates to ≈1 GiB) against maxMessageSize 1 MiB: 1009 at once, no GiB allocated, others served', async (t) => {
    const h = new Harness(t);
    const limit = MiB;
    const { port } = await h.serve(echo, { perMessageDeflate: true, maxMessageSize: limit });
    const { payload, inflatedSize } = await inflateBomb(limit);
    // Within the limit on the wire, so only the inflated size can refuse it.
    assert.ok(payload.length <= limit && payload.length > limit - 2 * KiB, `${payload.length} bytes compressed`);
    assert.ok(inflatedSize >= 1000 * MiB, `inflates to ${inflatedSize} bytes`);
    const frame = encodeFrame({ opcode: Opcode.Binary, rsv: Rsv.Rsv1, payload, maskKey: MASK });

    const bystander = await h.rawOpened(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    const attacker = await h.rawOpened(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' }, timeout: 10_000 });
    assert.equal(attacker.response!.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover');
    const before = process.memoryUsage();
    const maxRssBefore = process.resourceUsage().maxRSS * 1024;
    const started = Date.now();
    await attacker.write(frame);
    const close = await attacker.readFrame(10_000);
    const elapsed = Date.now() - started;
    const after = process.memoryUsage();
    const maxRssGrowth = process.resourceUsage().maxRSS * 1024 - maxRssBefore;
    t.diagnostic(
      `${payload.length} bytes (${inflatedSize / MiB} MiB inflated) refused in ${elapsed} ms; ` +
        `peak RSS +${(maxRssGrowth / MiB).toFixed(1)} MiB, RSS ${((after.rss - before.rss) / MiB).toFixed(1)} MiB, ` +
        `arrayBuffers ${((after.arrayBuffers - before.arrayBuffers) / MiB).toFixed(1)} MiB`,
    );
    assert.equal(close.opcode, Opcode.Close);
    assert.equal(parseClosePayload(close.payload).code, 1009);
    await attacker.waitForEnd();
    // Inflating it all takes seconds and a GiB; stopping at the limit takes milliseconds and ~1 MiB.
    assert.ok(elapsed < 2000, `${elapsed} ms`);
    assert.ok(maxRssGrowth < 100 * MiB, `peak RSS grew by ${maxRssGrowth} bytes`);
    assert.ok(after.rss - before.rss < 100 * MiB, `RSS grew by ${after.rss - before.rss} bytes`);
    assert.ok(after.arrayBuffers - before.arrayBuffers < 100 * MiB, `arrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers} bytes`);

    // The other connection is served throughout, compressed both ways.
    const message = 'still here '.repeat(200);
    await bystander.sendFrame({ opcode: Opcode.Text, rsv: Rsv.Rsv1, payload: compress(message) });
    const echoed = await bystander.readFrame();
    assert.equal(echoed.rsv, Rsv.Rsv1);
    assert.equal(inflate(echoed.payload).toString(), message);
  });

  test('8. a compressed frame declaring more than maxMessageSize (plus deflate\'s worst growth) is refused with 1009 from its header, before any payload', async (t) => {
    const h = new Harness(t);
    const { port } = await h.serve(echo, { perMessageDeflate: true, maxMessageSize: MiB });
    // Compressed bytes may exceed the limit by an eighth plus 64 (data deflate cannot shrink grows).
    const allowance = MiB + MiB / 8 + 64;
    for (const declaredLength of [allowance + 1, 2n ** 62n]) {
      const client = await h.rawOpened(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
      await client.sendFrame({ opcode: Opcode.Binary, rsv: Rsv.Rsv1, payload: Buffer.alloc(0), declaredLength, maskKey: MASK });
      const close = await client.expectClose();
      assert.equal(close.code, 1009, `declared ${declaredLength}`);
      await client.waitForEnd();
    }
    // Fragments: the first within the limit, the next taking the compressed total past it.
    const client = await h.rawOpened(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    await client.sendFrame({ opcode: Opcode.Binary, rsv: Rsv.Rsv1, fin: false, payload: Buffer.alloc(MiB - 10), maskKey: MASK });
    await client.sendFrame({ opcode: Opcode.Continuation, payload: Buffer.alloc(0), declaredLength: allowance - (MiB - 10) + 1, maskKey: MASK });
    assert.equal((await client.expectClose()).code, 1009);
  });
});
