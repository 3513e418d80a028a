/**
 * A hostile server costs the client a bounded amount, as a hostile client costs the server
 * (hostile-peers.test.ts): the client runs on the same socket driver, so the same rules hold, shown
 * here on the wire against a raw server.
 *
 * 1. Pings from a server that never reads the pongs: the client stops reading once its output is over
 *    `outboundHighWaterMark`, keeps one pending pong (RFC 6455 §5.5.3), and answers in order later.
 * 2. Messages to an application that never receives: the client stops reading above
 *    `inboundHighWaterMark`, so the server's writes stall instead of the client's memory growing.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { connect, type ClientOptions, type WebSocket } from '../src/index.ts';
import { Opcode } from '../src/protocol/index.ts';
import { serverFrame } from './helpers/frames.ts';
import { RawServer, type RawServerConnection } from './helpers/raw-server.ts';
import { settle, withTimeout } from './helpers/server.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

async function open(t: Parameters<typeof RawServer.listen>[0], options: ClientOptions): Promise<{ ws: WebSocket; peer: RawServerConnection }> {
  const server = await RawServer.listen(t, 20_000);
  const connecting = connect(server.url, { onError: () => undefined, ...options });
  const peer = await server.nextConnection();
  peer.accept();
  const ws = await withTimeout(connecting, 2000, 'connect()');
  t.after(() => ws.terminate());
  return { ws, peer };
}

/** Whether the socket drained within `ms` (false: the reader has stopped, or is slow). */
function drainedWithin(socket: RawServerConnection['socket'], ms: number): Promise<boolean> {
  return withTimeout(once(socket, 'drain'), ms, 'drain').then(
    () => true,
    () => false,
  );
}

/**
 * Writes batches from `next` until the client stops taking them: a write that stays undrained while
 * the bytes the server handed to the kernel stop moving. Returns the number of batches written;
 * throws when `limit` batches went through (the client never stopped reading).
 */
async function floodUntilStalled(peer: RawServerConnection, next: () => Buffer, limit: number): Promise<number> {
  const socket = peer.socket;
  for (let batches = 0; batches < limit; ) {
    batches++;
    if (socket.write(next()) || (await drainedWithin(socket, 300))) continue;
    await settle(() => socket.bytesWritten - socket.writableLength, 300, 10_000);
    if (socket.writableNeedDrain) return batches;
  }
  throw new assert.AssertionError({ message: `the client took all ${limit} batches: it never stopped reading` });
}

test('a server that floods pings and never reads the pongs: the client stops reading, one pong pending, every ping answered in order at most once', async (t) => {
  const outboundHighWaterMark = 32 * KiB;
  const { ws, peer } = await open(t, { outboundHighWaterMark, maxBufferedAmount: 64 * KiB });
  peer.socket.pause();
  const payload = Buffer.alloc(125, 0x70);
  let sent = 0;
  const batch = (): Buffer => {
    const frames: Buffer[] = [];
    for (let i = 0; i < 512; i++) {
      payload.writeUInt32BE(sent++, 0);
      frames.push(serverFrame({ opcode: Opcode.Ping, payload }));
    }
    return Buffer.concat(frames);
  };
  // 512 pings of 127 bytes per batch: 4,000 batches are 260 MB, far beyond any socket buffer.
  await floodUntilStalled(peer, batch, 4000);
  const buffered = await settle(() => ws.bufferedAmount, 200, 5000);
  t.diagnostic(`${sent} pings sent before the server's writes stalled; the client buffers ${buffered} bytes`);
  // Node's own write buffer (its 16 KiB mark) plus at most one pong: under the client's watermark.
  assert.ok(buffered <= outboundHighWaterMark, `the client buffers ${buffered} bytes`);

  // The server reads at last: masked pongs in increasing order, none twice, the last ping answered.
  peer.socket.resume();
  let last = -1;
  let pongs = 0;
  while (last !== sent - 1) {
    const frame = await peer.readFrame(10_000);
    assert.equal(frame.opcode, Opcode.Pong, `frame ${pongs}`);
    assert.equal(frame.masked, true, 'a client frame is masked (RFC 6455 §5.1)');
    const sequence = frame.payload.readUInt32BE(0);
    assert.ok(sequence > last, `pong ${sequence} after pong ${last}`);
    last = sequence;
    pongs++;
  }
  t.diagnostic(`${pongs} pongs for ${sent} pings`);
  assert.ok(pongs < sent, 'pings that found the output backed up were coalesced');
  // The connection still works both ways.
  peer.write(serverFrame({ opcode: Opcode.Text, payload: 'still there?' }));
  assert.equal((await withTimeout(ws.receive(), 5000, 'receive()')).text, 'still there?');
});

test('a server that floods messages to an application that never receives: the client stops reading, then gets every message in order', async (t) => {
  const inboundHighWaterMark = 256 * KiB;
  const { ws, peer } = await open(t, { inboundHighWaterMark });
  const size = 16 * KiB;
  let sent = 0;
  const batch = (): Buffer => {
    const frames: Buffer[] = [];
    for (let i = 0; i < 16; i++) {
      const payload = Buffer.alloc(size, sent & 0xff);
      payload.writeUInt32BE(sent++, 0);
      frames.push(serverFrame({ opcode: Opcode.Binary, payload }));
    }
    return Buffer.concat(frames);
  };
  // 16 messages of 16 KiB per batch: 1,024 batches are 256 MiB, far beyond any socket buffer.
  await floodUntilStalled(peer, batch, 1024);
  t.diagnostic(`${sent} messages (${(sent * size) / MiB} MiB) written before the server's writes stalled`);
  // A client that kept reading would have taken all 256 MiB; this one holds its mark plus a read or
  // two, and the rest waits in the kernel's socket buffers (a few MiB on loopback).
  assert.ok(sent * size < 48 * MiB, `the server wrote ${sent * size} bytes before it stalled`);

  // The application receives at last: every message, in order.
  for (let expected = 0; expected < sent; expected++) {
    const message = await withTimeout(ws.receive(), 5000, `message ${expected}`);
    assert.equal(message.data.length, size);
    assert.equal(message.data.readUInt32BE(0), expected);
  }
});
