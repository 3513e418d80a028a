/**
 * The incremental frame parser (RFC 6455 §5.2): header rules checked before any payload is accepted,
 * any split of the input giving the same frames, payloads handed on as unmasked views of the input.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageTooBig, ProtocolError } from '../src/index.ts';
import { FrameParser, Opcode, type FrameHandler, type FrameParserOptions } from '../src/protocol/index.ts';
import { buildFrame, byteByByte, createRng, randomSplits, serverFrame, splitAt } from './helpers/frames.ts';

interface ParsedFrame {
  opcode: number;
  fin: boolean;
  rsv: number;
  length: number;
  payload: string;
  ended: boolean;
}

class RecordingHandler implements FrameHandler {
  readonly frames: ParsedFrame[] = [];
  readonly pieces: Buffer[] = [];
  private chunks: Buffer[] = [];
  onStart: ((opcode: number) => void) | null = null;

  frameStart(opcode: number, fin: boolean, rsv: number, length: number): void {
    this.frames.push({ opcode, fin, rsv, length, payload: '', ended: false });
    this.chunks = [];
    this.onStart?.(opcode);
  }

  framePayload(piece: Buffer): void {
    this.pieces.push(piece);
    this.chunks.push(Buffer.from(piece));
  }

  frameEnd(): void {
    const frame = this.frames.at(-1)!;
    frame.payload = Buffer.concat(this.chunks).toString('hex');
    frame.ended = true;
  }
}

function parserFor(options: Partial<FrameParserOptions> = {}): { parser: FrameParser; handler: RecordingHandler } {
  const handler = new RecordingHandler();
  const parser = new FrameParser(handler, { role: 'server', maxFrameSize: 1 << 20, ...options });
  return { parser, handler };
}

function parseAll(chunks: readonly Buffer[], options: Partial<FrameParserOptions> = {}): ParsedFrame[] {
  const { parser, handler } = parserFor(options);
  for (const chunk of chunks) parser.push(chunk);
  return handler.frames;
}

/** Asserts that pushing `chunks` throws `Class` with `code`, and returns the frames seen before. */
function expectViolation(
  chunks: readonly Buffer[],
  Class: typeof ProtocolError | typeof MessageTooBig,
  code: number,
  options: Partial<FrameParserOptions> = {},
): { frames: ParsedFrame[]; parser: FrameParser } {
  const { parser, handler } = parserFor(options);
  let thrown: unknown = null;
  for (const chunk of chunks) {
    try {
      parser.push(chunk);
    } catch (error) {
      thrown = error;
      break;
    }
  }
  assert.ok(thrown instanceof Class, `expected ${Class.name}, got ${String(thrown)}`);
  assert.equal(thrown.code, code);
  assert.equal(parser.stopped, true);
  return { frames: handler.frames, parser };
}

const hex = (text: string): string => Buffer.from(text).toString('hex');

describe('FrameParser — RFC 6455 §5.7 examples', () => {
  test('masked "Hello" (81 85 37 fa 21 3d 7f 9f 4d 51 58) is parsed and unmasked to "Hello"', () => {
    const bytes = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    assert.deepEqual(parseAll([bytes]), [{ opcode: 1, fin: true, rsv: 0, length: 5, payload: hex('Hello'), ended: true }]);
  });

  test('unmasked "Hello" (81 05 ...) in the client role', () => {
    const bytes = Buffer.from([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert.deepEqual(parseAll([bytes], { role: 'client' }), [
      { opcode: 1, fin: true, rsv: 0, length: 5, payload: hex('Hello'), ended: true },
    ]);
  });

  test('fragmented "Hel" + "lo", 256-byte and 64 KiB binary frames, with their lengths', () => {
    const big = createRng(1).bytes(65536);
    const medium = createRng(2).bytes(256);
    const stream = Buffer.concat([
      buildFrame({ opcode: Opcode.Text, fin: false, payload: 'Hel' }),
      buildFrame({ opcode: Opcode.Continuation, payload: 'lo' }),
      buildFrame({ opcode: Opcode.Binary, payload: medium }),
      buildFrame({ opcode: Opcode.Binary, payload: big }),
    ]);
    const frames = parseAll([stream]);
    assert.deepEqual(
      frames.map((f) => [f.opcode, f.fin, f.length, f.ended]),
      [
        [1, false, 3, true],
        [0, true, 2, true],
        [2, true, 256, true],
        [2, true, 65536, true],
      ],
    );
    assert.equal(frames[0]!.payload, hex('Hel'));
    assert.equal(frames[1]!.payload, hex('lo'));
    assert.equal(frames[2]!.payload, medium.toString('hex'));
    assert.equal(frames[3]!.payload, big.toString('hex'));
  });

  test('empty frames start and end without a payload call', () => {
    const { parser, handler } = parserFor();
    parser.push(Buffer.concat([buildFrame({ opcode: Opcode.Binary }), buildFrame({ opcode: Opcode.Ping })]));
    assert.deepEqual(handler.frames.map((f) => [f.opcode, f.length, f.ended]), [[2, 0, true], [9, 0, true]]);
    assert.equal(handler.pieces.length, 0);
  });

  test('non-minimal length encodings are accepted (§5.2 minimality binds the sender)', () => {
    const frames = parseAll([
      Buffer.concat([
        buildFrame({ opcode: Opcode.Binary, payload: 'abc', lengthEncoding: 16 }),
        buildFrame({ opcode: Opcode.Binary, payload: 'de', lengthEncoding: 64 }),
      ]),
    ]);
    assert.deepEqual(frames.map((f) => [f.length, f.payload]), [[3, hex('abc')], [2, hex('de')]]);
  });

  test('RSV bits an extension allows are passed on', () => {
    const frames = parseAll([buildFrame({ opcode: Opcode.Text, rsv: 4, payload: 'x' })], { allowedRsv: 0x40 });
    assert.equal(frames[0]!.rsv, 0x40);
  });
});

describe('FrameParser — header violations (RFC 6455 §5.1, §5.2, §5.5)', () => {
  test('an unmasked frame in the server role is a ProtocolError 1002 (§5.1)', () => {
    expectViolation([serverFrame({ opcode: Opcode.Text, payload: 'hi' })], ProtocolError, 1002);
  });

  test('a masked frame in the client role is a ProtocolError 1002 (§5.1)', () => {
    expectViolation([buildFrame({ opcode: Opcode.Text, payload: 'hi' })], ProtocolError, 1002, { role: 'client' });
  });

  test('RSV1, RSV2 and RSV3 without an extension are ProtocolError 1002 (§5.2)', () => {
    for (const rsv of [4, 2, 1, 7]) {
      expectViolation([buildFrame({ opcode: Opcode.Text, rsv, payload: 'x' })], ProtocolError, 1002);
    }
    // Allowing RSV1 (permessage-deflate) still refuses RSV2.
    expectViolation([buildFrame({ opcode: Opcode.Text, rsv: 2, payload: 'x' })], ProtocolError, 1002, { allowedRsv: 0x40 });
  });

  test('reserved opcodes 3-7 and 0xB-0xF are ProtocolError 1002 (§5.2)', () => {
    for (const opcode of [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]) {
      expectViolation([buildFrame({ opcode, payload: 'x' })], ProtocolError, 1002);
      expectViolation([buildFrame({ opcode, fin: false })], ProtocolError, 1002);
    }
  });

  test('a control frame with a 126 length (16-bit field) is a ProtocolError 1002 (§5.5)', () => {
    for (const opcode of [Opcode.Close, Opcode.Ping, Opcode.Pong]) {
      expectViolation([buildFrame({ opcode, payload: Buffer.alloc(126) })], ProtocolError, 1002);
      // Even a small length in a 16-bit or 64-bit field: the 7-bit field says 126/127.
      expectViolation([buildFrame({ opcode, payload: 'x', lengthEncoding: 16 })], ProtocolError, 1002);
      expectViolation([buildFrame({ opcode, payload: 'x', lengthEncoding: 64 })], ProtocolError, 1002);
    }
  });

  test('a control frame with 125 bytes is fine', () => {
    const frames = parseAll([buildFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(125, 0x41) })]);
    assert.equal(frames[0]!.length, 125);
    assert.equal(frames[0]!.ended, true);
  });

  test('a fragmented control frame (FIN=0) is a ProtocolError 1002 (§5.5)', () => {
    for (const opcode of [Opcode.Close, Opcode.Ping, Opcode.Pong]) {
      expectViolation([buildFrame({ opcode, fin: false, payload: 'x' })], ProtocolError, 1002);
    }
  });

  test('a 64-bit length with its most significant bit set is a ProtocolError 1002 (§5.2)', () => {
    expectViolation(
      [buildFrame({ opcode: Opcode.Binary, declaredLength: 0x8000000000000000n, lengthEncoding: 64 })],
      ProtocolError,
      1002,
    );
    expectViolation(
      [buildFrame({ opcode: Opcode.Binary, declaredLength: 0xffffffffffffffffn, lengthEncoding: 64 })],
      ProtocolError,
      1002,
    );
  });

  test('a declared length over maxFrameSize is MessageTooBig 1009 from the header alone', () => {
    for (const lengthEncoding of [7, 16, 64] as const) {
      const maxFrameSize = lengthEncoding === 7 ? 10 : lengthEncoding === 16 ? 1000 : 70000;
      const declared = maxFrameSize + 1;
      // Only the header: no payload byte follows, and the parser refuses anyway.
      const header = buildFrame({ opcode: Opcode.Binary, declaredLength: declared, lengthEncoding });
      const { frames } = expectViolation([header], MessageTooBig, 1009, { maxFrameSize });
      assert.deepEqual(frames, [], 'frameStart is never called for the oversized frame');
      // Exactly maxFrameSize is accepted.
      const atLimit = buildFrame({ opcode: Opcode.Binary, declaredLength: maxFrameSize, lengthEncoding });
      const { parser, handler } = parserFor({ maxFrameSize });
      parser.push(atLimit);
      assert.equal(handler.frames[0]!.length, maxFrameSize);
    }
  });

  test('the header alone, fed byte by byte, throws MessageTooBig at its last byte', () => {
    const header = buildFrame({ opcode: Opcode.Binary, declaredLength: 1 << 21, lengthEncoding: 64 });
    assert.equal(header.length, 14);
    const { parser } = parserFor({ maxFrameSize: 1 << 20 });
    for (let i = 0; i < 13; i++) parser.push(Buffer.of(header[i]!));
    assert.throws(() => parser.push(Buffer.of(header[13]!)), (error: unknown) => error instanceof MessageTooBig && error.code === 1009);
  });

  test('a huge 64-bit length (0x7FFFFFFFFFFFFFFF, around 2^63) is 1009, not a crash', () => {
    for (const declaredLength of [0x7fffffffffffffffn, 2n ** 53n, 2n ** 53n + 1n, 2n ** 32n]) {
      expectViolation(
        [buildFrame({ opcode: Opcode.Binary, declaredLength, lengthEncoding: 64 })],
        MessageTooBig,
        1009,
      );
    }
  });

  test('after a violation the parser ignores all input', () => {
    const { parser, handler } = parserFor();
    assert.throws(() => parser.push(serverFrame({ opcode: Opcode.Text })), ProtocolError);
    parser.push(buildFrame({ opcode: Opcode.Text, payload: 'later' }));
    assert.deepEqual(handler.frames, []);
  });

  test('a violation after valid frames in the same chunk: the valid frames are delivered first', () => {
    const { frames } = expectViolation(
      [Buffer.concat([buildFrame({ opcode: Opcode.Text, payload: 'ok' }), buildFrame({ opcode: 3 })])],
      ProtocolError,
      1002,
    );
    assert.deepEqual(frames, [{ opcode: 1, fin: true, rsv: 0, length: 2, payload: hex('ok'), ended: true }]);
  });

  test('every violation is detected at every split of its header', () => {
    const violations: Array<[Buffer, typeof ProtocolError | typeof MessageTooBig, number]> = [
      [serverFrame({ opcode: Opcode.Text, payload: 'x' }), ProtocolError, 1002],
      [buildFrame({ opcode: Opcode.Text, rsv: 4, payload: 'x' }), ProtocolError, 1002],
      [buildFrame({ opcode: 0xb, payload: 'x' }), ProtocolError, 1002],
      [buildFrame({ opcode: Opcode.Ping, fin: false, payload: 'x' }), ProtocolError, 1002],
      [buildFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(126) }), ProtocolError, 1002],
      [buildFrame({ opcode: Opcode.Binary, declaredLength: 2n ** 63n, lengthEncoding: 64 }), ProtocolError, 1002],
      [buildFrame({ opcode: Opcode.Binary, declaredLength: 2n ** 62n, lengthEncoding: 64 }), MessageTooBig, 1009],
      [buildFrame({ opcode: Opcode.Binary, declaredLength: 5000, lengthEncoding: 16 }), MessageTooBig, 1009],
    ];
    for (const [frame, Class, code] of violations) {
      const prefix = buildFrame({ opcode: Opcode.Binary, payload: 'ab' });
      const stream = Buffer.concat([prefix, frame]);
      for (let cut = 1; cut < stream.length; cut++) {
        const { frames } = expectViolation(splitAt(stream, [cut]), Class, code, { maxFrameSize: 4096 });
        assert.equal(frames.length, 1, `cut ${cut}: the preceding frame is delivered`);
        assert.equal(frames[0]!.payload, hex('ab'));
      }
      expectViolation(byteByByte(stream), Class, code, { maxFrameSize: 4096 });
    }
  });
});

describe('FrameParser — incremental parsing (split invariance)', () => {
  const stream = Buffer.concat([
    buildFrame({ opcode: Opcode.Text, payload: 'Hello' }),
    buildFrame({ opcode: Opcode.Binary, payload: createRng(3).bytes(126) }),
    buildFrame({ opcode: Opcode.Text, fin: false, payload: 'héllo ' }),
    buildFrame({ opcode: Opcode.Ping, payload: 'p' }),
    buildFrame({ opcode: Opcode.Continuation, payload: 'wörld' }),
    buildFrame({ opcode: Opcode.Binary, payload: createRng(4).bytes(65536) }),
    buildFrame({ opcode: Opcode.Binary }),
    buildFrame({ opcode: Opcode.Pong, payload: Buffer.alloc(125, 9) }),
    buildFrame({ opcode: Opcode.Binary, payload: createRng(5).bytes(300), maskKey: Uint8Array.of(0, 0, 0, 0) }),
    buildFrame({ opcode: Opcode.Close, payload: Buffer.from([0x03, 0xe8]) }),
  ]);
  const expected = parseAll([Buffer.from(stream)]);

  test('the whole stream parses into the expected frames', () => {
    assert.deepEqual(
      expected.map((f) => [f.opcode, f.fin, f.length]),
      [
        [1, true, 5],
        [2, true, 126],
        [1, false, 7],
        [9, true, 1],
        [0, true, 6],
        [2, true, 65536],
        [2, true, 0],
        [10, true, 125],
        [2, true, 300],
        [8, true, 2],
      ],
    );
    assert.ok(expected.every((f) => f.ended));
    assert.equal(expected[2]!.payload, hex('héllo '));
  });

  test('headers split at every byte give the same frames', () => {
    // Cut at every position in the first 400 bytes (all the small frames' headers and payloads).
    for (let cut = 1; cut < 400; cut++) {
      assert.deepEqual(parseAll(splitAt(stream, [cut])), expected, `cut at ${cut}`);
    }
    // Cut at every byte of the 64 KiB frame's 14-byte header, two cuts at a time.
    const bigHeaderStart = stream.indexOf(Buffer.from([0x82, 0xff]));
    assert.ok(bigHeaderStart > 0);
    for (let a = bigHeaderStart; a <= bigHeaderStart + 14; a++) {
      for (let b = a + 1; b <= bigHeaderStart + 15; b++) {
        assert.deepEqual(parseAll(splitAt(stream, [a, b])), expected, `cuts at ${a},${b}`);
      }
    }
  });

  test('byte by byte gives the same frames', () => {
    assert.deepEqual(parseAll(byteByByte(stream)), expected);
  });

  test('100 seeded random cut sets give the same frames', () => {
    const rng = createRng(42);
    for (let round = 0; round < 100; round++) {
      assert.deepEqual(parseAll(randomSplits(stream, rng, 40)), expected, `round ${round}`);
    }
  });

  test('a payload split across reads is unmasked with the right key phase in every piece', () => {
    const payload = createRng(6).bytes(1000);
    const frame = buildFrame({ opcode: Opcode.Binary, payload, maskKey: Uint8Array.of(1, 2, 3, 4) });
    for (const cuts of [[7], [7, 8], [9, 10, 11, 12], [6 + 3, 6 + 500, 6 + 501]]) {
      const frames = parseAll(splitAt(frame, cuts));
      assert.equal(frames[0]!.payload, payload.toString('hex'), `cuts ${cuts.join(',')}`);
    }
  });
});

describe('FrameParser — payload pieces are views', () => {
  test('a frame in one chunk arrives as one piece sharing the chunk memory (no copy)', () => {
    const payload = createRng(7).bytes(5000);
    const chunk = Buffer.concat([buildFrame({ opcode: Opcode.Text, payload: 'x' }), buildFrame({ opcode: Opcode.Binary, payload })]);
    const { parser, handler } = parserFor();
    parser.push(chunk);
    assert.equal(handler.pieces.length, 2);
    const piece = handler.pieces[1]!;
    assert.equal(piece.buffer, chunk.buffer, 'same ArrayBuffer as the input');
    assert.equal(piece.byteOffset, chunk.byteOffset + chunk.length - 5000);
    assert.ok(piece.equals(payload));
    // Unmasked in place: the chunk itself now holds the clear payload.
    assert.ok(chunk.subarray(chunk.length - 5000).equals(payload));
  });

  test('a chunk that is exactly one payload is passed on as the chunk itself', () => {
    const payload = Buffer.from('abcdefgh');
    const frame = buildFrame({ opcode: Opcode.Binary, payload });
    const { parser, handler } = parserFor();
    const header = Buffer.from(frame.subarray(0, 6));
    const body = Buffer.from(frame.subarray(6));
    parser.push(header);
    parser.push(body);
    assert.equal(handler.pieces[0], body);
    assert.deepEqual(body, payload);
  });

  test('no empty payload piece is ever delivered, whatever the split (a header ending a read included)', () => {
    const stream = Buffer.concat([
      buildFrame({ opcode: Opcode.Binary, payload: 'abcdef' }),
      buildFrame({ opcode: Opcode.Ping, payload: 'p' }),
      buildFrame({ opcode: Opcode.Binary, payload: Buffer.alloc(200, 1) }),
    ]);
    for (const chunks of [byteByByte(stream), ...Array.from({ length: stream.length - 1 }, (_, i) => splitAt(stream, [i + 1]))]) {
      const { parser, handler } = parserFor();
      for (const chunk of chunks) parser.push(chunk);
      assert.equal(handler.frames.length, 3);
      assert.ok(handler.pieces.every((piece) => piece.length > 0), 'an empty piece was delivered');
    }
  });

  test('a frame split over reads arrives as several views, one per read, before the frame ends', () => {
    const payload = createRng(8).bytes(3000);
    const chunks = splitAt(buildFrame({ opcode: Opcode.Binary, payload }), [1000, 2000]);
    const { parser, handler } = parserFor();
    parser.push(chunks[0]!);
    assert.equal(handler.pieces.length, 1, 'the first piece is delivered as soon as it arrives');
    assert.equal(handler.frames[0]!.ended, false);
    parser.push(chunks[1]!);
    parser.push(chunks[2]!);
    assert.equal(handler.pieces.length, 3);
    handler.pieces.forEach((piece, i) => assert.equal(piece.buffer, chunks[i]!.buffer, `piece ${i} is a view of chunk ${i}`));
    assert.equal(handler.frames[0]!.ended, true);
    assert.equal(handler.frames[0]!.payload, payload.toString('hex'));
  });
});

describe('FrameParser — stop()', () => {
  test('stop() from a handler ignores the rest of the chunk and all later input', () => {
    const { parser, handler } = parserFor();
    handler.onStart = (opcode) => {
      if (opcode === Opcode.Close) parser.stop();
    };
    parser.push(
      Buffer.concat([
        buildFrame({ opcode: Opcode.Text, payload: 'a' }),
        buildFrame({ opcode: Opcode.Close }),
        buildFrame({ opcode: Opcode.Text, payload: 'b' }),
      ]),
    );
    parser.push(buildFrame({ opcode: Opcode.Text, payload: 'c' }));
    // Even garbage is ignored now.
    parser.push(serverFrame({ opcode: 3 }));
    assert.deepEqual(handler.frames.map((f) => f.opcode), [Opcode.Text, Opcode.Close]);
    assert.equal(parser.stopped, true);
  });

  test('stop() from frameStart of a frame with a payload: no payload piece, no frameEnd, rest ignored', () => {
    const { parser, handler } = parserFor();
    handler.onStart = (opcode) => {
      if (opcode === Opcode.Binary) parser.stop();
    };
    const stream = Buffer.concat([
      buildFrame({ opcode: Opcode.Text, payload: 'a' }),
      buildFrame({ opcode: Opcode.Binary, payload: 'stop here' }),
      buildFrame({ opcode: Opcode.Text, payload: 'b' }),
    ]);
    parser.push(stream);
    parser.push(buildFrame({ opcode: Opcode.Text, payload: 'c' }));
    assert.deepEqual(handler.frames.map((f) => [f.opcode, f.ended]), [[Opcode.Text, true], [Opcode.Binary, false]]);
    assert.equal(handler.pieces.length, 1, 'only the first frame\'s payload');
  });

  test('a negative or NaN maxFrameSize is a RangeError', () => {
    assert.throws(() => new FrameParser(new RecordingHandler(), { role: 'server', maxFrameSize: -1 }), RangeError);
    assert.throws(() => new FrameParser(new RecordingHandler(), { role: 'server', maxFrameSize: NaN }), RangeError);
  });
});

describe('control frames and the frame size limit', () => {
  test('a 125-byte ping is accepted even when maxFrameSize is smaller (RFC 6455 §5.5)', () => {
    const seen: number[] = [];
    const parser = new FrameParser(
      { frameStart: (opcode, _fin, _rsv, length) => seen.push(opcode, length), framePayload: () => {}, frameEnd: () => {} },
      { role: 'server', maxFrameSize: 16 },
    );
    parser.push(buildFrame({ opcode: Opcode.Ping, payload: Buffer.alloc(125, 1) }));
    assert.deepEqual(seen, [Opcode.Ping, 125]);
  });
});
