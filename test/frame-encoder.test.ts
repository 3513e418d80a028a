/**
 * Frame encoding (RFC 6455 §5.2), checked byte for byte against the examples of §5.7 and against an
 * independent frame reader (test/helpers/frames.ts). Large payloads go to the sink beside their header,
 * never concatenated with it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFragmented, encodeFrame, encodeTextFrame, Opcode, type FrameSink } from '../src/protocol/index.ts';
import { COPY_THRESHOLD, frameHeaderSize, writeFrameHeader } from '../src/protocol/frame-encoder.ts';
import { collectingSink, createRng, readFrames } from './helpers/frames.ts';

function encodeOne(encode: (sink: FrameSink) => void): Buffer {
  const sink = collectingSink();
  encode(sink);
  assert.equal(sink.frames.length, 1);
  return sink.frames[0]!;
}

describe('encodeFrame — RFC 6455 §5.7 examples', () => {
  test('single-frame unmasked text "Hello": 81 05 48 65 6c 6c 6f', () => {
    const frame = encodeOne((sink) => encodeFrame(sink, Opcode.Text, Buffer.from('Hello')));
    assert.deepEqual(frame, Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]));
  });

  test('fragmented unmasked text: 01 03 "Hel" then 80 02 "lo"', () => {
    const sink = collectingSink();
    encodeFrame(sink, Opcode.Text, Buffer.from('Hel'), false);
    encodeFrame(sink, Opcode.Continuation, Buffer.from('lo'), true);
    assert.deepEqual(sink.frames, [
      Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c]),
      Buffer.from([0x80, 0x02, 0x6c, 0x6f]),
    ]);
  });

  test('unmasked ping "Hello": 89 05 48 65 6c 6c 6f; pong: 8a 05 ...', () => {
    assert.deepEqual(
      encodeOne((sink) => encodeFrame(sink, Opcode.Ping, Buffer.from('Hello'))),
      Buffer.from([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
    );
    assert.deepEqual(
      encodeOne((sink) => encodeFrame(sink, Opcode.Pong, Buffer.from('Hello'))),
      Buffer.from([0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
    );
  });

  test('256-byte binary: header 82 7E 01 00 (16-bit length)', () => {
    const payload = createRng(1).bytes(256);
    const frame = encodeOne((sink) => encodeFrame(sink, Opcode.Binary, payload));
    assert.deepEqual(frame.subarray(0, 4), Buffer.from([0x82, 0x7e, 0x01, 0x00]));
    assert.deepEqual(frame.subarray(4), payload);
  });

  test('64 KiB binary: header 82 7F 00 00 00 00 00 01 00 00 (64-bit length)', () => {
    const payload = createRng(2).bytes(65536);
    const frame = encodeOne((sink) => encodeFrame(sink, Opcode.Binary, payload));
    assert.deepEqual(frame.subarray(0, 10), Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]));
    assert.ok(frame.subarray(10).equals(payload));
  });

  test('length encodings at the boundaries: 0, 125 (7-bit), 126, 65535 (16-bit), 65536 (64-bit)', () => {
    const cases: Array<[number, number[]]> = [
      [0, [0x82, 0x00]],
      [125, [0x82, 125]],
      [126, [0x82, 126, 0x00, 0x7e]],
      [65535, [0x82, 126, 0xff, 0xff]],
      [65536, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]],
    ];
    for (const [length, header] of cases) {
      const frame = encodeOne((sink) => encodeFrame(sink, Opcode.Binary, Buffer.alloc(length, 7)));
      assert.deepEqual(frame.subarray(0, header.length), Buffer.from(header), `length ${length}`);
      assert.equal(frame.length, header.length + length);
    }
  });

  test('FIN=0 and RSV1 set the right bits', () => {
    const frame = encodeOne((sink) => encodeFrame(sink, Opcode.Binary, Buffer.from([1]), false, false, true));
    assert.deepEqual(frame, Buffer.from([0x42, 0x01, 0x01]));
  });
});

describe('writeFrameHeader', () => {
  test('64-bit lengths up to 2^53 - 1 are written in full (§5.2: most significant bit 0)', () => {
    const cases: Array<[number, number[]]> = [
      [2 ** 32, [0, 0, 0, 1, 0, 0, 0, 0]],
      [2 ** 32 + 0x01020304, [0, 0, 0, 1, 1, 2, 3, 4]],
      [2 ** 40 + 5, [0, 0, 1, 0, 0, 0, 0, 5]],
      [2 ** 48, [0, 1, 0, 0, 0, 0, 0, 0]],
      [Number.MAX_SAFE_INTEGER, [0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ];
    for (const [length, bytes] of cases) {
      const header = Buffer.alloc(14, 0xee);
      const size = writeFrameHeader(header, Opcode.Binary, true, length, null);
      assert.equal(size, 10);
      assert.equal(frameHeaderSize(length, false), 10);
      assert.deepEqual(header.subarray(0, 10), Buffer.from([0x82, 0x7f, ...bytes]), `length ${length}`);
    }
  });

  test('the masking key follows the length, in network order', () => {
    const header = Buffer.alloc(14);
    assert.equal(writeFrameHeader(header, Opcode.Text, true, 5, 0x37fa213d), 6);
    assert.deepEqual(header.subarray(0, 6), Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]));
    assert.equal(writeFrameHeader(header, Opcode.Text, true, 300, 0x01020304), 8);
    assert.deepEqual(header.subarray(0, 8), Buffer.from([0x81, 0xfe, 0x01, 0x2c, 1, 2, 3, 4]));
    assert.equal(frameHeaderSize(70000, true), 14);
  });
});

describe('encodeFrame — masking (client role, §5.3)', () => {
  test('masked frames carry the mask bit and a key, and unmask to the payload; the input is untouched', () => {
    for (const length of [0, 1, 5, 125, 126, 1024, 1025, 70000]) {
      const payload = createRng(length).bytes(length);
      const before = Buffer.from(payload);
      const sink = collectingSink();
      encodeFrame(sink, Opcode.Binary, payload, true, true);
      const frames = readFrames(sink.bytes());
      assert.equal(frames.length, 1);
      const frame = frames[0]!;
      assert.equal(frame.masked, true, `length ${length}`);
      assert.equal(frame.opcode, Opcode.Binary);
      assert.equal(frame.fin, true);
      assert.equal(frame.headerSize, frameHeaderSize(length, false) + 4);
      assert.ok(frame.payload.equals(payload), `length ${length}`);
      assert.deepEqual(payload, before, 'the caller payload is not masked in place');
      if (length >= 8) {
        // The bytes on the wire really are masked (a zero key has probability 2^-32).
        const wire = sink.bytes().subarray(frame.headerSize);
        assert.ok(!wire.equals(payload), `length ${length}: payload went out unmasked`);
      }
    }
  });

  test('a masked large payload goes out as header + a new masked buffer, not the caller payload', () => {
    const payload = Buffer.alloc(COPY_THRESHOLD + 1, 0x55);
    const sink = collectingSink();
    encodeFrame(sink, Opcode.Binary, payload, true, true);
    assert.equal(sink.writes.length, 1);
    const { header, payload: written } = sink.writes[0]!;
    assert.equal(header.length, 8);
    assert.ok(written !== null);
    assert.notEqual(written, payload);
    assert.ok(payload.every((b) => b === 0x55));
  });
});

describe('encodeFrame — header and payload handed to the sink', () => {
  test(`payloads up to COPY_THRESHOLD (${COPY_THRESHOLD}) bytes are copied behind the header into one buffer`, () => {
    for (const length of [0, 1, 125, 126, COPY_THRESHOLD]) {
      const payload = Buffer.alloc(length, 1);
      const sink = collectingSink();
      encodeFrame(sink, Opcode.Binary, payload);
      assert.equal(sink.writes.length, 1);
      const { header, payload: second } = sink.writes[0]!;
      assert.equal(second, null, `length ${length}`);
      assert.equal(header.length, frameHeaderSize(length, false) + length);
      // A copy: changing the input afterwards does not change what was written.
      payload.fill(2);
      assert.ok(header.subarray(header.length - length).every((b) => b === 1));
    }
  });

  test('above COPY_THRESHOLD the server role passes the payload object itself, beside its header', () => {
    for (const length of [COPY_THRESHOLD + 1, 65536, 1 << 20]) {
      const payload = Buffer.alloc(length, 3);
      const sink = collectingSink();
      encodeFrame(sink, Opcode.Binary, payload);
      assert.equal(sink.writes.length, 1);
      const { header, payload: second } = sink.writes[0]!;
      assert.equal(second, payload, 'the same object, not a copy');
      assert.equal(header.length, frameHeaderSize(length, false));
    }
  });
});

describe('encodeTextFrame', () => {
  test('ASCII, multi-byte and astral text encode as UTF-8 with the byte length in the header', () => {
    assert.deepEqual(
      encodeOne((sink) => encodeTextFrame(sink, 'Hello')),
      Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
    );
    assert.deepEqual(
      encodeOne((sink) => encodeTextFrame(sink, 'é€😀')),
      Buffer.from([0x81, 0x09, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]),
    );
  });

  test('a lone surrogate becomes U+FFFD (EF BF BD), as in the browser API', () => {
    assert.deepEqual(encodeOne((sink) => encodeTextFrame(sink, 'a\ud800b')), Buffer.from([0x81, 0x05, 0x61, 0xef, 0xbf, 0xbd, 0x62]));
    const masked = readFrames(encodeOne((sink) => encodeTextFrame(sink, '\udc00', true, true)));
    assert.deepEqual(masked[0]!.payload, Buffer.from([0xef, 0xbf, 0xbd]));
  });

  test('long and multi-byte strings across the copy threshold, FIN=0, and masked', () => {
    for (const text of ['x'.repeat(341), 'é'.repeat(400), '€'.repeat(342), '😀'.repeat(1000), 'a'.repeat(70000)]) {
      for (const masked of [false, true]) {
        for (const fin of [true, false]) {
          const sink = collectingSink();
          encodeTextFrame(sink, text, fin, masked);
          const frames = readFrames(sink.bytes());
          assert.equal(frames.length, 1);
          assert.equal(frames[0]!.opcode, Opcode.Text);
          assert.equal(frames[0]!.fin, fin);
          assert.equal(frames[0]!.masked, masked);
          assert.equal(frames[0]!.payload.toString('utf8'), text, `${text.length} chars masked=${masked}`);
        }
      }
    }
  });

  test('empty text: 81 00', () => {
    assert.deepEqual(encodeOne((sink) => encodeTextFrame(sink, '')), Buffer.from([0x81, 0x00]));
  });
});

describe('encodeFragmented — RFC 6455 §5.4', () => {
  test('splits into frames of at most fragmentSize: first carries the opcode, the rest are continuations, the last has FIN', () => {
    const payload = Buffer.from('Hello, fragmented world');
    const sink = collectingSink();
    encodeFragmented(sink, Opcode.Text, payload, 10);
    const frames = readFrames(sink.bytes());
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.fin, f.payload.toString()]),
      [
        [Opcode.Text, false, 'Hello, fra'],
        [Opcode.Continuation, false, 'gmented wo'],
        [Opcode.Continuation, true, 'rld'],
      ],
    );
    assert.deepEqual(sink.frames[0]!.subarray(0, 2), Buffer.from([0x01, 0x0a]));
    assert.deepEqual(sink.frames[2]!.subarray(0, 2), Buffer.from([0x80, 0x03]));
  });

  test('an exact multiple of fragmentSize ends with a full FIN frame, no empty trailer', () => {
    const sink = collectingSink();
    encodeFragmented(sink, Opcode.Binary, Buffer.alloc(30, 1), 10);
    const frames = readFrames(sink.bytes());
    assert.deepEqual(frames.map((f) => [f.opcode, f.fin, f.payload.length]), [
      [Opcode.Binary, false, 10],
      [Opcode.Continuation, false, 10],
      [Opcode.Continuation, true, 10],
    ]);
  });

  test('a payload no larger than fragmentSize is one FIN frame, empty payload too', () => {
    for (const length of [0, 5, 10]) {
      const sink = collectingSink();
      encodeFragmented(sink, Opcode.Binary, Buffer.alloc(length, 1), 10);
      const frames = readFrames(sink.bytes());
      assert.deepEqual(frames.map((f) => [f.opcode, f.fin, f.payload.length]), [[Opcode.Binary, true, length]]);
    }
  });

  test('masked fragments reassemble to the payload; fragmentSize 1 works', () => {
    const payload = createRng(9).bytes(3000);
    for (const fragmentSize of [1, 7, 1024, 1025, 2999]) {
      const sink = collectingSink();
      encodeFragmented(sink, Opcode.Binary, payload, fragmentSize, true);
      const frames = readFrames(sink.bytes());
      assert.equal(frames.length, Math.ceil(3000 / fragmentSize));
      assert.ok(frames.every((f) => f.masked && f.payload.length <= fragmentSize));
      assert.ok(frames.slice(0, -1).every((f) => !f.fin) && frames.at(-1)!.fin);
      assert.ok(frames.slice(1).every((f) => f.opcode === Opcode.Continuation));
      assert.ok(Buffer.concat(frames.map((f) => f.payload)).equals(payload));
    }
  });

  test('fragmentSize that is not a positive integer is a RangeError', () => {
    for (const size of [0, -1, 1.5, NaN]) {
      assert.throws(() => encodeFragmented(collectingSink(), Opcode.Binary, Buffer.alloc(4), size), RangeError, `${size}`);
    }
  });
});
