/**
 * The replies to a read that brought several messages are batched: small frames are copied into one
 * buffer and leave in a single socket write. Checked at the socket (how many writes) and on the wire
 * (every echo, in order, byte for byte), including the cases that must bypass or give up the batch:
 * a large frame between small ones, and a peer that stops reading, so that a batch is still unsent
 * when the next one is made.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { WebSocket } from '../src/index.ts';
import { encodeFrame, Opcode, type RawClient } from './helpers/raw-client.ts';
import { Harness, until } from './helpers/server.ts';

const KEY = Buffer.from([0x11, 0x22, 0x33, 0x44]);

async function echo(ws: WebSocket): Promise<void> {
  await ws.accept();
  for await (const message of ws) await ws.send(message);
}

/** A payload that says which connection and which message it is, so a stale or mixed-up byte shows. */
function payloadFor(connection: number, index: number, size: number): Buffer {
  const payload = Buffer.alloc(size, (index * 7 + connection) & 0xff);
  if (size >= 5) {
    payload.writeUInt32BE(index, 0);
    payload[4] = connection;
  }
  return payload;
}

function framesFor(connection: number, from: number, sizes: readonly number[]): Buffer {
  return Buffer.concat(
    sizes.map((size, i) => encodeFrame({ opcode: Opcode.Binary, payload: payloadFor(connection, from + i, size), maskKey: KEY })),
  );
}

async function expectEchoes(client: RawClient, connection: number, from: number, sizes: readonly number[]): Promise<void> {
  for (let i = 0; i < sizes.length; i++) {
    const frame = await client.readFrame();
    assert.equal(frame.opcode, Opcode.Binary);
    assert.ok(frame.payload.equals(payloadFor(connection, from + i, sizes[i]!)), `echo ${from + i} of connection ${connection}`);
  }
}

/** Counts `write()` calls on a server-side socket from now on. */
function countWrites(socket: Socket): { readonly count: number } {
  const counter = { count: 0 };
  const write = socket.write;
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    counter.count++;
    return write.apply(this, args);
  } as Socket['write'];
  return counter;
}

describe('output batching', () => {
  test('the small replies to one read leave in one socket write, in order', async (t) => {
    const h = new Harness(t);
    const { port, sockets } = await h.observed({}, echo);
    const client = await h.rawOpened(port);
    const writes = countWrites(sockets[0]!);
    const sizes = Array.from({ length: 20 }, (_, i) => 1 + i * 25);
    await client.write(framesFor(0, 0, sizes));
    await expectEchoes(client, 0, 0, sizes);
    // Twenty frames of 3 to 482 bytes: one write (the old path made one per frame).
    assert.equal(writes.count, 1);
  });

  test('a large frame between small ones: the batch goes out first, order is kept', async (t) => {
    const h = new Harness(t);
    const { port } = await h.observed({}, echo);
    const client = await h.rawOpened(port);
    const sizes = [10, 20, 30, 40_000, 50, 60, 125, 126, 70_000, 1, 2000, 3000, 5];
    for (let round = 0; round < 20; round++) {
      await client.write(framesFor(1, round * sizes.length, sizes));
      await expectEchoes(client, 1, round * sizes.length, sizes);
    }
  });

  test('a batch still unsent when the peer stops reading is not overwritten by later batches', async (t) => {
    const h = new Harness(t);
    const big = Buffer.alloc(8 * 1024 * 1024, 0xab);
    // A high outbound mark keeps the server reading and replying while its output is backed up, so the
    // replies are batched behind unsent output (the batch's memory is still referenced after its write).
    const { port, sockets } = await h.observed({ outboundHighWaterMark: 64 * 1024 * 1024, maxBufferedAmount: 128 * 1024 * 1024 }, async (ws) => {
      await ws.accept();
      // Not awaited: an awaited send() would wait for the drain, and nothing would be batched meanwhile.
      for await (const message of ws) void ws.send(message.binary ? message : big);
    });
    const stalled = await h.rawOpened(port, { timeout: 20_000 });
    const other = await h.rawOpened(port, { timeout: 20_000 });
    const stalledSocket = sockets[0]!;
    stalled.pause();
    await stalled.sendText('big');
    await until(() => stalledSocket.writableLength > 0, 5000, 'the server holding unsent output');

    const sizes = Array.from({ length: 16 }, () => 400);
    const batches = 40;
    for (let i = 0; i < batches; i++) await stalled.write(framesFor(2, i * sizes.length, sizes));
    await until(() => stalledSocket.writableLength >= big.length / 2 + batches * sizes.length * 400, 5000, 'the replies queued behind it');

    // Meanwhile another connection's batches reuse the batch memory many times.
    for (let round = 0; round < 50; round++) {
      await other.write(framesFor(3, round * sizes.length, sizes));
      await expectEchoes(other, 3, round * sizes.length, sizes);
    }

    stalled.resume();
    const first = await stalled.readFrame();
    assert.ok(first.payload.equals(big), 'the large message');
    for (let i = 0; i < batches; i++) await expectEchoes(stalled, 2, i * sizes.length, sizes);
    await until(() => stalledSocket.writableLength === 0, 5000, 'the server output draining');
  });
});
