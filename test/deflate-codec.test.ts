/**
 * The permessage-deflate codec (RFC 7692 §7.2): the RFC's example bytes, context takeover in both
 * directions checked against persistent zlib streams (which keep the true LZ77 window), the 8-bit
 * window, the inflated-size limit against a decompression bomb, invalid data, and prepared frames
 * compressed once for many connections.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createDeflateRaw, createInflateRaw } from 'node:zlib';
import { InvalidPayloadData, MessageTooBig } from '../src/index.ts';
import {
  CloseCode,
  Opcode,
  PerMessageDeflate,
  prepareMessage,
  resolveDeflateOptions,
  type DeflateParameters,
  type PerMessageDeflateOptions,
} from '../src/protocol/index.ts';
import { compress, FLUSH_TAIL, flushThrough, inflate } from './helpers/deflate.ts';
import { createRng, readFrames } from './helpers/frames.ts';

const NO_LIMIT = 2 ** 31;

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function parameters(overrides: Partial<DeflateParameters> = {}): DeflateParameters {
  return { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15, ...overrides };
}

function codec(role: 'server' | 'client', agreed: Partial<DeflateParameters> = {}, options: PerMessageDeflateOptions = {}): PerMessageDeflate {
  return new PerMessageDeflate(parameters(agreed), resolveDeflateOptions(options)!, role);
}

/** A server and a client codec on the same agreement. */
function pair(agreed: Partial<DeflateParameters> = {}): { server: PerMessageDeflate; client: PerMessageDeflate } {
  return { server: codec('server', agreed), client: codec('client', agreed) };
}

function decompress(receiver: PerMessageDeflate, payload: Buffer, limit = NO_LIMIT): Buffer {
  return receiver.decompress([payload], payload.length, limit);
}

/** Messages of every kind: empty, tiny, repeated, text-like, random, past a 32 KiB window, far repeats. */
function messageSequence(seed: number): Buffer[] {
  const rng = createRng(seed);
  const words = ['alpha', 'beta', 'gamma', 'delta', '{"id":', '"name":', '},', ' ', '\n'];
  const textLike = (length: number): Buffer => {
    let text = '';
    while (text.length < length) text += rng.pick(words) + String(rng.int(1000));
    return Buffer.from(text.slice(0, length));
  };
  const far = rng.bytes(420);
  const largeBlock = rng.bytes(3000);
  const large = Buffer.concat(Array.from({ length: 14 }, (_, i) => (i % 3 === 0 ? rng.bytes(3000) : largeBlock)));
  const repeated = textLike(700);
  return [
    Buffer.from('Hello'),
    Buffer.alloc(0),
    Buffer.from('Hello'),
    repeated,
    repeated,
    Buffer.concat([far, rng.bytes(100), far, rng.bytes(330), far]),
    rng.bytes(200),
    textLike(5000),
    large,
    textLike(300),
    Buffer.alloc(1, 0x41),
    repeated,
  ];
}

describe('RFC 7692 §7.2.3 examples, byte for byte', () => {
  test('§7.2.3.1: "Hello" compresses to f2 48 cd c9 c9 07 00, and those bytes decompress to "Hello"', () => {
    const rfc = hex('f2 48 cd c9 c9 07 00');
    for (const role of ['server', 'client'] as const) {
      for (const takeover of [false, true]) {
        const agreed = { serverNoContextTakeover: !takeover, clientNoContextTakeover: !takeover };
        assert.deepEqual(codec(role, agreed).compress(Buffer.from('Hello')), rfc, `${role}, takeover ${takeover}`);
        assert.equal(decompress(codec(role, agreed), rfc).toString(), 'Hello');
      }
    }
  });

  test('§7.2.3.2: with context takeover the second "Hello" compresses to exactly f2 00 11 00 00 (zlib with the history as a preset dictionary reproduces the RFC)', () => {
    const sender = codec('client');
    assert.deepEqual(sender.compress(Buffer.from('Hello')), hex('f2 48 cd c9 c9 07 00'));
    assert.deepEqual(sender.compress(Buffer.from('Hello')), hex('f2 00 11 00 00'));
    // The server's direction too.
    const server = codec('server');
    server.compress(Buffer.from('Hello'));
    assert.deepEqual(server.compress(Buffer.from('Hello')), hex('f2 00 11 00 00'));
  });

  test('§7.2.3.2: with client_no_context_takeover the client compresses the second "Hello" into the same 7 bytes', () => {
    const sender = codec('client', { clientNoContextTakeover: true });
    assert.deepEqual(sender.compress(Buffer.from('Hello')), hex('f2 48 cd c9 c9 07 00'));
    assert.deepEqual(sender.compress(Buffer.from('Hello')), hex('f2 48 cd c9 c9 07 00'));
  });

  test('§7.2.3.2: a receiver with takeover decodes f2 00 11 00 00 after the first message; one without has no history to refer to (1007)', () => {
    const receiver = codec('server');
    assert.equal(decompress(receiver, hex('f2 48 cd c9 c9 07 00')).toString(), 'Hello');
    assert.equal(decompress(receiver, hex('f2 00 11 00 00')).toString(), 'Hello');
    const forgetful = codec('server', { clientNoContextTakeover: true });
    assert.equal(decompress(forgetful, hex('f2 48 cd c9 c9 07 00')).toString(), 'Hello');
    assert.throws(() => decompress(forgetful, hex('f2 00 11 00 00')), InvalidPayloadData);
  });

  test('§7.2.3.3: a block with no compression (00 05 00 fa ff "Hello" 00) decompresses to "Hello"', () => {
    assert.equal(decompress(codec('server'), hex('00 05 00 fa ff 48 65 6c 6c 6f 00')).toString(), 'Hello');
  });

  test('§7.2.3.4: a block with BFINAL set (f3 48 cd c9 c9 07 00 00) decompresses to "Hello"', () => {
    assert.equal(decompress(codec('server'), hex('f3 48 cd c9 c9 07 00 00')).toString(), 'Hello');
  });

  test('§7.2.3.5: two DEFLATE blocks in one message decompress to "Hello"', () => {
    assert.equal(decompress(codec('server'), hex('f2 48 05 00 00 00 ff ff ca c9 c9 07 00')).toString(), 'Hello');
  });

  test('an empty message: 00 decompresses to nothing, and nothing compresses to 00', () => {
    const receiver = codec('client');
    assert.equal(decompress(receiver, hex('00')).length, 0);
    assert.deepEqual(codec('server').compress(Buffer.alloc(0)), hex('00'));
  });

  test('a compressed message split over several frames decompresses as one (pieces joined in order)', () => {
    const pieces = [hex('f2 48'), hex(''), hex('cd c9 c9'), hex('07 00')];
    assert.equal(codec('server').decompress(pieces, 7, NO_LIMIT).toString(), 'Hello');
  });
});

describe('context takeover, both directions (RFC 7692 §7.1.1, §7.2.2)', () => {
  const bitsChoices = [8, 9, 12, 15];

  test('every takeover combination and window size (8, 9, 12, 15) round-trips a message sequence both ways', () => {
    const messages = messageSequence(1);
    let runs = 0;
    for (const serverNoContextTakeover of [false, true]) {
      for (const clientNoContextTakeover of [false, true]) {
        for (const serverMaxWindowBits of bitsChoices) {
          for (const clientMaxWindowBits of bitsChoices) {
            const agreed = { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits };
            const { server, client } = pair(agreed);
            for (const [index, message] of messages.entries()) {
              const context = `${JSON.stringify(agreed)}, message ${index}`;
              const down = server.compress(message);
              assert.deepEqual(decompress(client, down), message, `server to client: ${context}`);
              const up = client.compress(message);
              assert.deepEqual(decompress(server, up), message, `client to server: ${context}`);
            }
            runs++;
          }
        }
      }
    }
    assert.equal(runs, 64);
  });

  for (const bits of bitsChoices) {
    test(`${bits}-bit windows: with takeover a repeated message compresses smaller the second time; without, to the same bytes`, () => {
      const message = Buffer.from('{"type":"update","symbol":"ABC","price":101.25,"volume":3000}'.repeat(3));
      for (const role of ['server', 'client'] as const) {
        const window = { serverMaxWindowBits: bits, clientMaxWindowBits: bits };
        const keeping = codec(role, window);
        const first = keeping.compress(message);
        const second = keeping.compress(message);
        assert.ok(second.length < first.length, `${role}: ${second.length} < ${first.length}`);
        const forgetting = codec(role, { ...window, serverNoContextTakeover: true, clientNoContextTakeover: true });
        const once = forgetting.compress(message);
        assert.deepEqual(forgetting.compress(message), once, role);
        assert.deepEqual(once, first, `${role}: a first message does not depend on takeover`);
      }
    });
  }

  test('each side keeps only its own direction’s history: server_no_context_takeover alone', () => {
    const { server, client } = pair({ serverNoContextTakeover: true });
    const message = Buffer.from('the same sentence, sent again and again by both sides');
    const down = [server.compress(message), server.compress(message)];
    const up = [client.compress(message), client.compress(message)];
    assert.deepEqual(down[1], down[0], 'the server starts every message afresh');
    assert.ok(up[1]!.length < up[0]!.length, 'the client keeps its window');
    for (const payload of down) assert.deepEqual(decompress(client, payload), message);
    for (const payload of up) assert.deepEqual(decompress(server, payload), message);
  });

  for (const bits of [8, 9, 15]) {
    test(`${bits} bits: what the codec compresses, a persistent zlib inflater (the true sliding window) decodes`, async () => {
      const messages = messageSequence(2);
      const { server } = pair({ serverMaxWindowBits: bits });
      const inflater = createInflateRaw({ windowBits: bits });
      try {
        for (const [index, message] of messages.entries()) {
          const payload = server.compress(message);
          const output = await flushThrough(inflater, Buffer.concat([payload, FLUSH_TAIL]));
          assert.deepEqual(output, message, `message ${index}`);
        }
      } finally {
        inflater.close();
      }
    });

    test(`${bits} bits: what a persistent zlib deflater sends (tail stripped), the codec decodes`, async () => {
      const messages = messageSequence(3);
      const { server } = pair({ clientMaxWindowBits: bits });
      // node:zlib deflates an 8-bit raw window with 9 bits, whose matches stay within 250 bytes.
      const deflater = createDeflateRaw({ windowBits: bits });
      try {
        for (const [index, message] of messages.entries()) {
          const flushed = await flushThrough(deflater, message);
          assert.deepEqual(flushed.subarray(-4), FLUSH_TAIL);
          assert.deepEqual(decompress(server, flushed.subarray(0, -4)), message, `message ${index}`);
        }
      } finally {
        deflater.close();
      }
    });
  }

  test('the codec’s history follows the window across messages smaller than, filling and larger than it', async () => {
    // A 9-bit (512-byte) window and messages that leave it part-full, fill it, overflow it, replace it.
    const rng = createRng(4);
    const base = rng.bytes(600);
    const sizes = [100, 300, 200, 50, 600, 511, 512, 513, 1, 0, 450, 90];
    const messages = sizes.map((size, i) => Buffer.concat([base.subarray(i * 7, i * 7 + Math.min(size, 60)), rng.bytes(Math.max(0, size - 60))]));
    const { server, client } = pair({ serverMaxWindowBits: 9, clientMaxWindowBits: 9 });
    const inflater = createInflateRaw({ windowBits: 9 });
    const deflater = createDeflateRaw({ windowBits: 9 });
    try {
      for (const [index, message] of messages.entries()) {
        const down = server.compress(message);
        assert.deepEqual(await flushThrough(inflater, Buffer.concat([down, FLUSH_TAIL])), message, `down ${index}`);
        const up = (await flushThrough(deflater, message)).subarray(0, -4);
        assert.deepEqual(decompress(server, up), message, `up ${index}`);
        assert.deepEqual(decompress(client, down), message, `codec to codec ${index}`);
      }
    } finally {
      inflater.close();
      deflater.close();
    }
  });
});

describe('an agreed 8-bit window (the zlib window-bits-8 quirk)', () => {
  // Data whose only repetitions are 330 to 520 bytes apart: a compressor with a window of 10 bits or
  // more uses them; one honouring a 256-byte window cannot.
  const rng = createRng(8);
  const block = rng.bytes(420);
  const farRepeats = Buffer.concat([block, rng.bytes(100), block, rng.bytes(90), block.subarray(0, 300), rng.bytes(40), block]);
  // node:zlib accepts windowBits 8 for a raw inflater, but zlib checks a distance against its window
  // plus what the current inflate() call has already written: with the default output chunk (16 KiB)
  // a distance of 400 inflates fine. With 64-byte chunks (the minimum), any distance over 320 fails.
  const strictInflate = (payload: Uint8Array, dictionary?: Buffer): Buffer =>
    inflate(payload, 8, dictionary === undefined ? { chunkSize: 64 } : { chunkSize: 64, dictionary });

  test('control: the strict 8-bit inflater refuses zlib output made with a 10- or 15-bit window over this data', () => {
    for (const windowBits of [10, 15]) {
      const payload = compress(farRepeats, windowBits);
      assert.throws(() => strictInflate(payload), /distance too far back/, `${windowBits} bits`);
    }
  });

  test('a server agreed to server_max_window_bits=8 compresses what an 8-bit inflater decodes', () => {
    const server = codec('server', { serverMaxWindowBits: 8, serverNoContextTakeover: true });
    const payload = server.compress(farRepeats);
    assert.deepEqual(strictInflate(payload), farRepeats);
  });

  test('a client agreed to client_max_window_bits=8 too', () => {
    const client = codec('client', { clientMaxWindowBits: 8, clientNoContextTakeover: true });
    assert.deepEqual(strictInflate(client.compress(farRepeats)), farRepeats);
  });

  test('with takeover, the history handed to zlib is the last 256 bytes: the next message decodes against exactly them', () => {
    const server = codec('server', { serverMaxWindowBits: 8 });
    const first = server.compress(farRepeats);
    assert.deepEqual(strictInflate(first), farRepeats);
    // The next message starts with the first one's last 200 bytes: 200 bytes back, inside the window.
    const next = Buffer.concat([farRepeats.subarray(-200), farRepeats]);
    const alone = codec('server', { serverMaxWindowBits: 8, serverNoContextTakeover: true }).compress(next);
    const payload = server.compress(next);
    assert.ok(payload.length < alone.length - 150, `the window was used: ${payload.length} vs ${alone.length} without it`);
    assert.deepEqual(strictInflate(payload, farRepeats.subarray(-256)), next);
    assert.throws(() => strictInflate(payload), /distance too far back/, 'the payload does refer to the history');
  });

  test('a broadcast frame shared by a 9-bit and an 8-bit connection decodes with an 8-bit window', () => {
    const prepared = prepareMessage(farRepeats);
    const nineBits = codec('server', { serverMaxWindowBits: 9, serverNoContextTakeover: true }).compressPrepared(prepared);
    const eightBits = codec('server', { serverMaxWindowBits: 8, serverNoContextTakeover: true }).compressPrepared(prepared);
    const wide = codec('server', { serverMaxWindowBits: 15, serverNoContextTakeover: true }).compressPrepared(prepared);
    assert.notEqual(wide, eightBits, 'a 15-bit frame is never handed to an 8-bit connection');
    for (const frame of [nineBits, eightBits]) {
      const [read] = readFrames(frame.payload === null ? frame.header : Buffer.concat([frame.header, frame.payload]));
      assert.deepEqual(strictInflate(read!.payload), farRepeats);
    }
  });

  test('the codec inflates an 8-bit peer’s messages with takeover across messages', () => {
    const { server, client } = pair({ clientMaxWindowBits: 8, serverMaxWindowBits: 8 });
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(decompress(server, client.compress(farRepeats)), farRepeats, `up ${round}`);
      assert.deepEqual(decompress(client, server.compress(farRepeats)), farRepeats, `down ${round}`);
    }
  });
});

describe('the inflated-size limit', () => {
  const MiB = 1024 * 1024;

  /**
   * A bomb built cheaply: one persistent deflater fed 1 MiB of zeros per sync flush settles, after the
   * first flush, on the same block bytes every time; repeating that block N times is N MiB of zeros.
   */
  async function bombParts(): Promise<{ head: Buffer; block: Buffer }> {
    const deflater = createDeflateRaw({ level: 9 });
    try {
      const zeros = Buffer.alloc(MiB);
      const flushed: Buffer[] = [];
      for (let i = 0; i < 4; i++) flushed.push(await flushThrough(deflater, zeros));
      assert.deepEqual(flushed[2], flushed[1], 'the steady-state block repeats');
      assert.deepEqual(flushed[3], flushed[1], 'the steady-state block repeats');
      return { head: flushed[0]!, block: flushed[1]! };
    } finally {
      deflater.close();
    }
  }

  test('a bomb (~1 MiB inflating to 1 GiB) fails with MessageTooBig (1009) quickly and without allocating the gigabyte', async () => {
    const { head, block } = await bombParts();
    // The construction, checked on a small count: the head and three blocks are exactly 4 MiB of zeros.
    const small = inflate(Buffer.concat([head, block, block, block]));
    assert.equal(small.length, 4 * MiB);
    assert.ok(small.every((byte) => byte === 0));
    const bomb = Buffer.concat([head, ...Array.from({ length: 1023 }, () => block)]);
    assert.ok(bomb.length > 0.9 * MiB && bomb.length < 1.2 * MiB, `bomb is ${bomb.length} bytes`);

    const receiver = codec('server');
    const before = process.memoryUsage();
    const peakBefore = process.resourceUsage().maxRSS;
    const started = performance.now();
    let thrown: unknown = null;
    try {
      receiver.decompress([bomb], bomb.length, MiB);
    } catch (error) {
      thrown = error;
    }
    const elapsed = performance.now() - started;
    const after = process.memoryUsage();
    const peakGrowth = (process.resourceUsage().maxRSS - peakBefore) * 1024;
    assert.ok(thrown instanceof MessageTooBig, `expected MessageTooBig, got ${String(thrown)}`);
    assert.equal(thrown.code, CloseCode.MessageTooBig);
    assert.ok(elapsed < 1000, `took ${elapsed.toFixed(0)} ms`);
    assert.ok(after.arrayBuffers - before.arrayBuffers < 64 * MiB, `arrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers}`);
    assert.ok(peakGrowth < 64 * MiB, `peak RSS grew by ${peakGrowth}`);
  });

  for (const [label, size, data] of [
    ['compressible, 1 byte', 1, () => Buffer.alloc(1, 0x61)],
    ['compressible, 1024 bytes', 1024, (n: number) => Buffer.alloc(n, 0x61)],
    ['compressible, 1025 bytes', 1025, (n: number) => Buffer.alloc(n, 0x61)],
    ['random, 5000 bytes', 5000, (n: number) => createRng(n).bytes(n)],
    ['compressible, 256 KiB', 256 * 1024, (n: number) => Buffer.alloc(n, 0x62)],
    ['random, 256 KiB + 1', 256 * 1024 + 1, (n: number) => createRng(n).bytes(n)],
    ['compressible, 1 MiB', MiB, (n: number) => Buffer.alloc(n, 0x63)],
  ] as const) {
    test(`${label}: a message inflating to exactly the limit passes; one byte less of limit fails`, () => {
      const message = data(size);
      const payload = compress(message);
      assert.deepEqual(decompress(codec('server', { clientNoContextTakeover: true }), payload, size), message);
      assert.throws(() => decompress(codec('server', { clientNoContextTakeover: true }), payload, size - 1), MessageTooBig);
    });
  }

  test('limit 0: an empty message passes, a 1-byte message fails', () => {
    assert.equal(decompress(codec('server'), hex('00'), 0).length, 0);
    assert.equal(decompress(codec('server'), hex('02'), 0).length, 0, 'an empty fixed-Huffman block');
    assert.throws(() => decompress(codec('server'), compress('a'), 0), MessageTooBig);
  });
});

describe('invalid compressed data is InvalidPayloadData (1007)', () => {
  const garbage: Array<[string, string]> = [
    ['ff ff ff', 'ff ff ff'],
    ['a stored block whose NLEN is not the complement of LEN', '00 05 00 00 00 48 65 6c 6c 6f 00'],
    ['a stored block longer than the data', '00 05 00 fa ff 48 65'],
    ['the reserved block type 11', '06'],
    ['a distance before the start of the stream', 'f2 00 11 00 00'],
    ['two empty stored blocks and a stray byte pattern', '00 00 00 00 00'],
  ];
  for (const [label, bytes] of garbage) {
    test(`${label} (${bytes})`, () => {
      let thrown: unknown = null;
      try {
        decompress(codec('server', { clientNoContextTakeover: true }), hex(bytes));
      } catch (error) {
        thrown = error;
      }
      assert.ok(thrown instanceof InvalidPayloadData, `expected InvalidPayloadData, got ${String(thrown)}`);
      assert.equal(thrown.code, CloseCode.InvalidFramePayloadData);
    });
  }
});

describe('compressPrepared (broadcast frames)', () => {
  const text = 'a broadcast message that is long enough to be compressed. '.repeat(40);

  test('two connections with the same settings and no takeover share one frame object, compressed once', () => {
    const prepared = prepareMessage(text);
    const first = codec('server', { serverNoContextTakeover: true });
    const second = codec('server', { serverNoContextTakeover: true, clientNoContextTakeover: true, clientMaxWindowBits: 9 });
    const frame = first.compressPrepared(prepared);
    assert.equal(second.compressPrepared(prepared), frame);
    assert.equal(first.compressPrepared(prepared), frame);
    assert.equal(prepared.compressed?.size, 1);
  });

  test('different compression settings (level, window) get different frames, each cached', () => {
    const prepared = prepareMessage(text);
    const a = codec('server', { serverNoContextTakeover: true }, { level: 6 });
    const b = codec('server', { serverNoContextTakeover: true }, { level: 1 });
    const c = codec('server', { serverNoContextTakeover: true, serverMaxWindowBits: 10 });
    const frames = [a, b, c].map((connection) => connection.compressPrepared(prepared));
    assert.equal(new Set(frames).size, 3);
    assert.equal(prepared.compressed?.size, 3);
    assert.equal(b.compressPrepared(prepared), frames[1]);
  });

  test('a connection with server context takeover compresses its own frame, each time against its history', () => {
    const prepared = prepareMessage(text);
    const shared = codec('server', { serverNoContextTakeover: true }).compressPrepared(prepared);
    const keeping = codec('server', { serverNoContextTakeover: false });
    const own = keeping.compressPrepared(prepared);
    const next = keeping.compressPrepared(prepared);
    assert.notEqual(own, shared);
    assert.notEqual(next, own);
    assert.equal(prepared.compressed?.size, 1, 'the takeover frames are not cached on the message');
    const frameBytes = (frame: { header: Buffer; payload: Uint8Array | null }): Buffer =>
      frame.payload === null ? frame.header : Buffer.concat([frame.header, frame.payload]);
    assert.ok(frameBytes(next).length < frameBytes(own).length, 'the second refers back to the first');
    // A client with takeover decodes both in turn.
    const client = codec('client', { serverNoContextTakeover: false });
    for (const frame of [own, next]) {
      const [read] = readFrames(frameBytes(frame));
      assert.equal(decompress(client, read!.payload).toString(), text);
    }
  });

  for (const [label, data, opcode] of [
    ['a short text frame (header and payload in one buffer)', text, Opcode.Text],
    ['a binary frame with a 16-bit length (payload apart)', createRng(5).bytes(3000), Opcode.Binary],
  ] as const) {
    test(`${label}: FIN and RSV1 set, unmasked, length field equal to the compressed payload`, () => {
      const prepared = prepareMessage(data);
      const frame = codec('server', { serverNoContextTakeover: true }).compressPrepared(prepared);
      const bytes = frame.payload === null ? frame.header : Buffer.concat([frame.header, frame.payload]);
      const frames = readFrames(bytes);
      assert.equal(frames.length, 1);
      const [read] = frames;
      assert.equal(bytes[0], 0x80 | 0x40 | opcode);
      assert.deepEqual({ fin: read!.fin, rsv: read!.rsv, opcode: read!.opcode, masked: read!.masked }, { fin: true, rsv: 4, opcode, masked: false });
      assert.equal(read!.headerSize + read!.payload.length, bytes.length);
      assert.deepEqual(inflate(read!.payload), Buffer.from(data));
    });
  }
});
