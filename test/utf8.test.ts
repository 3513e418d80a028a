/**
 * RFC 6455 §5.6 / §8.1: text payloads are UTF-8 and an endpoint receiving invalid UTF-8 fails the
 * connection (1007). The validator must follow Unicode Table 3-7 exactly (no overlongs, no surrogates,
 * nothing above U+10FFFF; noncharacters are valid), work across arbitrary splits, and fail fast: the
 * write holding the first invalid byte returns false even when the sequence is not finished yet.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isValidUtf8, Utf8Validator } from '../src/protocol/index.ts';
import { createRng, splitAt, type Rng } from './helpers/frames.ts';

const hex = (bytes: readonly number[]): string => Buffer.from(bytes).toString('hex');

const VALID: ReadonlyArray<readonly number[]> = [
  [],
  [0x00],
  [0x41],
  [0x7f],
  [0xc2, 0x80], // U+0080, the smallest 2-byte form
  [0xdf, 0xbf], // U+07FF
  [0xe0, 0xa0, 0x80], // U+0800, the smallest 3-byte form
  [0xe1, 0x80, 0x80],
  [0xec, 0xbf, 0xbf],
  [0xed, 0x9f, 0xbf], // U+D7FF, just below the surrogates
  [0xee, 0x80, 0x80], // U+E000, just above the surrogates
  [0xef, 0xbf, 0xbe], // U+FFFE noncharacter: valid
  [0xef, 0xbf, 0xbf], // U+FFFF noncharacter: valid
  [0xef, 0xbb, 0xbf], // BOM
  [0xf0, 0x90, 0x80, 0x80], // U+10000, the smallest 4-byte form
  [0xf1, 0x80, 0x80, 0x80],
  [0xf3, 0xbf, 0xbf, 0xbf],
  [0xf4, 0x8f, 0xbf, 0xbf], // U+10FFFF, the largest code point: valid
  [...Buffer.from('κόσμε')], // Autobahn 6.2
  [...Buffer.from('Hello-µ@ßöäüàá-UTF-8!!')],
  [...Buffer.from('\u{1F600}a\u{10FFFF}b\uFFFE')],
];

/** Invalid vectors, each with the index of its first invalid byte (-1: only invalid because it ends early). */
const INVALID: ReadonlyArray<{ name: string; bytes: readonly number[]; firstBad: number }> = [
  { name: 'overlong 2-byte C0 80', bytes: [0xc0, 0x80], firstBad: 0 },
  { name: 'overlong 2-byte C1 BF', bytes: [0xc1, 0xbf], firstBad: 0 },
  { name: 'overlong 3-byte E0 80 80', bytes: [0xe0, 0x80, 0x80], firstBad: 1 },
  { name: 'overlong 3-byte E0 9F BF', bytes: [0xe0, 0x9f, 0xbf], firstBad: 1 },
  { name: 'overlong 4-byte F0 80 80 80', bytes: [0xf0, 0x80, 0x80, 0x80], firstBad: 1 },
  { name: 'overlong 4-byte F0 8F BF BF', bytes: [0xf0, 0x8f, 0xbf, 0xbf], firstBad: 1 },
  { name: 'surrogate ED A0 80 (U+D800)', bytes: [0xed, 0xa0, 0x80], firstBad: 1 },
  { name: 'surrogate ED AD BF (U+DB7F)', bytes: [0xed, 0xad, 0xbf], firstBad: 1 },
  { name: 'surrogate ED BF BF (U+DFFF)', bytes: [0xed, 0xbf, 0xbf], firstBad: 1 },
  { name: 'surrogate pair ED A0 80 ED B0 80', bytes: [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80], firstBad: 1 },
  { name: 'above U+10FFFF F4 90 80 80', bytes: [0xf4, 0x90, 0x80, 0x80], firstBad: 1 },
  { name: 'F5 lead', bytes: [0xf5, 0x80, 0x80, 0x80], firstBad: 0 },
  { name: 'F7 lead', bytes: [0xf7, 0xbf, 0xbf, 0xbf], firstBad: 0 },
  { name: 'F8 lead (5-byte form)', bytes: [0xf8, 0x88, 0x80, 0x80, 0x80], firstBad: 0 },
  { name: 'FC lead (6-byte form)', bytes: [0xfc, 0x84, 0x80, 0x80, 0x80, 0x80], firstBad: 0 },
  { name: 'FE', bytes: [0xfe], firstBad: 0 },
  { name: 'FF', bytes: [0xff], firstBad: 0 },
  { name: 'lone continuation 80', bytes: [0x80], firstBad: 0 },
  { name: 'lone continuation BF after ASCII', bytes: [0x61, 0xbf], firstBad: 1 },
  { name: 'extra continuation after a 2-byte sequence', bytes: [0xc2, 0x80, 0x80], firstBad: 2 },
  { name: 'extra continuation after a 4-byte sequence', bytes: [0xf0, 0x90, 0x80, 0x80, 0x80], firstBad: 4 },
  { name: 'ASCII interrupting a 2-byte sequence', bytes: [0xc2, 0x41], firstBad: 1 },
  { name: 'ASCII interrupting a 3-byte sequence', bytes: [0xe1, 0x80, 0x41], firstBad: 2 },
  { name: 'ASCII interrupting a 4-byte sequence', bytes: [0xf1, 0x80, 0x80, 0x41], firstBad: 3 },
  { name: 'lead interrupting a sequence', bytes: [0xe1, 0x80, 0xc2, 0x80], firstBad: 2 },
  { name: 'truncated 2-byte at end', bytes: [0x61, 0xc2], firstBad: -1 },
  { name: 'truncated 3-byte at end', bytes: [0x61, 0xe0, 0xa0], firstBad: -1 },
  { name: 'truncated 4-byte at end', bytes: [0x61, 0xf0, 0x90, 0x80], firstBad: -1 },
  { name: 'truncated 4-byte F4 8F BF at end', bytes: [0xf4, 0x8f, 0xbf], firstBad: -1 },
];

/** Adds `before` and `after` ASCII bytes, to reach both the short JavaScript path and the native one. */
function padded(bytes: readonly number[], before: number, after: number): Buffer {
  return Buffer.concat([Buffer.alloc(before, 0x61), Buffer.from(bytes), Buffer.alloc(after, 0x62)]);
}

/** Feeds the pieces and returns the index of the first write that returned false, -1 if none. */
function firstFailingWrite(validator: Utf8Validator, pieces: readonly Uint8Array[]): number {
  for (let i = 0; i < pieces.length; i++) {
    if (!validator.write(pieces[i]!)) return i;
  }
  return -1;
}

/** Every way of cutting `length` bytes at one or two points. */
function cutSets(length: number): number[][] {
  const sets: number[][] = [[]];
  for (let a = 1; a < length; a++) {
    sets.push([a]);
    for (let b = a + 1; b < length; b++) sets.push([a, b]);
  }
  return sets;
}

describe('isValidUtf8 — Unicode Table 3-7 (RFC 6455 §8.1)', () => {
  test('accepts well-formed sequences, including noncharacters U+FFFE, U+FFFF and U+10FFFF', () => {
    for (const bytes of VALID) {
      for (const [before, after] of [[0, 0], [3, 0], [0, 30], [30, 30]] as const) {
        assert.equal(isValidUtf8(padded(bytes, before, after)), true, `${hex(bytes)} padded ${before}/${after}`);
      }
    }
  });

  test('refuses overlongs, surrogates, code points above U+10FFFF, F5-FF, stray continuations and truncations', () => {
    for (const { name, bytes } of INVALID) {
      // Padding after the vector still leaves truncated sequences invalid (ASCII cannot continue them).
      for (const [before, after] of [[0, 0], [3, 0], [30, 0], [0, 30], [30, 30]] as const) {
        assert.equal(isValidUtf8(padded(bytes, before, after)), false, `${name} padded ${before}/${after}`);
      }
    }
  });

  test('every single byte 0x80-0xFF on its own is invalid; 0x00-0x7F valid', () => {
    for (let b = 0; b < 256; b++) {
      assert.equal(isValidUtf8(Uint8Array.of(b)), b < 0x80, `byte ${b.toString(16)}`);
      assert.equal(isValidUtf8(padded([b], 20, 20)), b < 0x80, `padded byte ${b.toString(16)}`);
    }
  });

  test('checks only the view it is given (a subarray of a larger buffer)', () => {
    const whole = Buffer.from([0xff, 0x61, 0x62, 0xff]);
    assert.equal(isValidUtf8(whole.subarray(1, 3)), true);
    assert.equal(isValidUtf8(whole.subarray(0, 3)), false);
  });

  test('agrees with TextDecoder on every 2-byte string and on every 3-byte string starting E0-EF/F0-F4', () => {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const reference = (bytes: Uint8Array): boolean => {
      try {
        decoder.decode(bytes);
        return true;
      } catch {
        return false;
      }
    };
    const pair = new Uint8Array(2);
    for (let a = 0x80; a < 256; a++) {
      for (let b = 0; b < 256; b++) {
        pair[0] = a;
        pair[1] = b;
        assert.equal(isValidUtf8(pair), reference(pair), hex([a, b]));
      }
    }
    const triple = new Uint8Array(3);
    for (let a = 0xe0; a < 0xf5; a++) {
      for (let b = 0x70; b < 0xd0; b++) {
        for (const c of [0x41, 0x80, 0x9f, 0xa0, 0xbf, 0xc0]) {
          triple[0] = a;
          triple[1] = b;
          triple[2] = c;
          assert.equal(isValidUtf8(triple), reference(triple), hex([a, b, c]));
        }
      }
    }
  });
});

describe('Utf8Validator — streaming', () => {
  test('accepts every valid vector cut at every one or two points', () => {
    for (const bytes of VALID) {
      const input = padded(bytes, 1, 1);
      for (const cuts of cutSets(input.length)) {
        const validator = new Utf8Validator();
        assert.equal(firstFailingWrite(validator, splitAt(input, cuts)), -1, `${hex(bytes)} cut at ${cuts.join(',')}`);
        assert.equal(validator.end(), true, `${hex(bytes)} cut at ${cuts.join(',')}: end`);
      }
    }
  });

  test('a 4-byte sequence written one byte per write is accepted', () => {
    const validator = new Utf8Validator();
    for (const b of [0xf0, 0x9f, 0x98, 0x80]) assert.equal(validator.write(Uint8Array.of(b)), true);
    assert.equal(validator.end(), true);
  });

  test('fail-fast: the write holding the first invalid byte returns false, at every cut', () => {
    for (const { name, bytes, firstBad } of INVALID) {
      for (const [before, after] of [[0, 0], [2, 0], [30, 30]] as const) {
        const input = padded(bytes, before, after);
        const bad = firstBad === -1 ? -1 : before + firstBad;
        const inputCuts = input.length > 12 ? [[], [before], [before + 1], [before + 2], [before + 3]] : cutSets(input.length);
        for (const cuts of inputCuts) {
          const pieces = splitAt(input, cuts);
          const validator = new Utf8Validator();
          const failed = firstFailingWrite(validator, pieces);
          const label = `${name} padded ${before}/${after} cut at ${cuts.join(',')}`;
          if (bad === -1) {
            if (after === 0) {
              assert.equal(failed, -1, `${label}: no write fails for a truncation at the end`);
              assert.equal(validator.end(), false, `${label}: end() reports the truncation`);
            } else {
              // The ASCII padding interrupts the truncated sequence: the piece holding its first byte fails.
              const interruption = before + bytes.length;
              assert.equal(failed, pieceIndexOf(pieces, interruption), label);
            }
          } else {
            assert.equal(failed, pieceIndexOf(pieces, bad), label);
          }
        }
      }
    }
  });

  test('fail-fast examples: F4 then 90; E0 then 80; ED then A0; F0 then 8F; C2 then 41', () => {
    for (const [lead, second] of [
      [0xf4, 0x90],
      [0xe0, 0x80],
      [0xed, 0xa0],
      [0xf0, 0x8f],
      [0xc2, 0x41],
    ] as const) {
      const validator = new Utf8Validator();
      assert.equal(validator.write(Uint8Array.of(lead)), true, `${hex([lead])} alone is a valid prefix`);
      assert.equal(validator.write(Uint8Array.of(second)), false, `${hex([lead, second])} fails at once`);
    }
    // Inside one write too, with the bad prefix at the very end of the piece.
    assert.equal(new Utf8Validator().write(Buffer.from([0x61, 0x62, 0xf4, 0x90])), false);
    assert.equal(new Utf8Validator().write(Buffer.from([0x61, 0xe0, 0x80])), false);
    assert.equal(new Utf8Validator().write(Buffer.from([...Buffer.alloc(40, 0x61), 0xed, 0xa0])), false);
    // A third byte that is not a continuation fails at once too.
    const validator = new Utf8Validator();
    assert.equal(validator.write(Uint8Array.of(0xf0, 0x90)), true);
    assert.equal(validator.write(Uint8Array.of(0x41)), false);
  });

  test('a valid prefix is not refused early: F4 8F, E0 A0, ED 9F are accepted pending', () => {
    for (const prefix of [[0xf4, 0x8f], [0xe0, 0xa0], [0xed, 0x9f], [0xf0, 0x90, 0x80]]) {
      const validator = new Utf8Validator();
      assert.equal(validator.write(Uint8Array.from(prefix)), true, hex(prefix));
      assert.equal(validator.end(), false, `${hex(prefix)}: end() inside a sequence`);
    }
  });

  test('end() resets the validator: the next message starts fresh after a truncated one', () => {
    const validator = new Utf8Validator();
    assert.equal(validator.write(Uint8Array.of(0xe2, 0x82)), true);
    assert.equal(validator.end(), false);
    // Without the reset, 0x41 would be taken as interrupting the E2 82 sequence.
    assert.equal(validator.write(Uint8Array.of(0x41)), true);
    assert.equal(validator.end(), true);
    assert.equal(validator.write(Uint8Array.of(0xe2, 0x82)), true);
    validator.reset();
    assert.equal(validator.write(Uint8Array.of(0x41)), true);
    assert.equal(validator.end(), true);
  });

  test('empty writes change nothing', () => {
    const validator = new Utf8Validator();
    assert.equal(validator.write(new Uint8Array(0)), true);
    assert.equal(validator.write(Uint8Array.of(0xe2)), true);
    assert.equal(validator.write(new Uint8Array(0)), true);
    assert.equal(validator.write(Uint8Array.of(0x82, 0xac)), true);
    assert.equal(validator.end(), true);
  });
});

/** Index of the piece holding byte `index` of the concatenated pieces. */
function pieceIndexOf(pieces: readonly Uint8Array[], index: number): number {
  let start = 0;
  for (let i = 0; i < pieces.length; i++) {
    if (index < start + pieces[i]!.length) return i;
    start += pieces[i]!.length;
  }
  throw new RangeError(`index ${index} past the end`);
}

// ---------------------------------------------------------------- randomized comparison with TextDecoder

const BOUNDARY_CODE_POINTS = [
  0x00, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xfffe, 0xffff, 0x10000, 0x10ffff, 0xfeff,
];

function randomCodePoint(rng: Rng): number {
  switch (rng.int(6)) {
    case 0:
    case 1:
      return rng.int(0x80);
    case 2:
      return 0x80 + rng.int(0x800 - 0x80);
    case 3: {
      const cp = 0x800 + rng.int(0x10000 - 0x800 - 0x800);
      return cp >= 0xd800 ? cp + 0x800 : cp; // skip the surrogates
    }
    case 4:
      return 0x10000 + rng.int(0x110000 - 0x10000);
    default:
      return rng.pick(BOUNDARY_CODE_POINTS);
  }
}

const NASTY = [[0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5], [0xff], [0x80], [0xc2]];

/** Random text, then (most of the time) a corruption: bit flip, byte insert/delete, truncation, nasty splice. */
function randomInput(rng: Rng): Buffer {
  const count = rng.int(rng.chance(0.1) ? 40 : 12);
  let text = '';
  for (let i = 0; i < count; i++) text += String.fromCodePoint(randomCodePoint(rng));
  const bytes = [...Buffer.from(text, 'utf8')];
  const corruptions = rng.chance(0.3) ? 0 : 1 + rng.int(3);
  for (let c = 0; c < corruptions && bytes.length > 0; c++) {
    const at = rng.int(bytes.length);
    switch (rng.int(5)) {
      case 0:
        bytes[at] = bytes[at]! ^ (1 << rng.int(8));
        break;
      case 1:
        bytes.splice(at, 0, rng.int(256));
        break;
      case 2:
        bytes.splice(at, 1);
        break;
      case 3:
        bytes.length = at;
        break;
      default:
        bytes.splice(at, 0, ...rng.pick(NASTY));
    }
  }
  return Buffer.from(bytes);
}

/** First index at which a streaming, fatal TextDecoder throws (WHATWG: it fails at the offending byte). */
function referenceFirstBad(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < bytes.length; i++) {
    try {
      decoder.decode(bytes.subarray(i, i + 1), { stream: true });
    } catch {
      return i;
    }
  }
  return -1;
}

function referenceValid(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

describe('Utf8Validator against TextDecoder on seeded random input', () => {
  test('4000 random strings over random splits: same verdict as TextDecoder, failing at the first bad byte', () => {
    const rng = createRng(0x5eed);
    let valid = 0;
    let invalid = 0;
    for (let n = 0; n < 4000; n++) {
      const input = randomInput(rng);
      const expected = referenceValid(input);
      const firstBad = referenceFirstBad(input);
      // The one-shot check agrees too.
      assert.equal(isValidUtf8(input), expected, `isValidUtf8 ${input.toString('hex')}`);
      for (let round = 0; round < 3; round++) {
        const cuts: number[] = [];
        const cutCount = rng.int(6);
        for (let i = 0; i < cutCount; i++) cuts.push(1 + rng.int(Math.max(1, input.length - 1)));
        const pieces = splitAt(input, cuts);
        const validator = new Utf8Validator();
        const failed = firstFailingWrite(validator, pieces);
        const label = `${input.toString('hex')} cut at ${[...cuts].sort((a, b) => a - b).join(',')}`;
        if (firstBad !== -1) {
          assert.equal(failed, pieceIndexOf(pieces, firstBad), `${label}: fails at the piece holding byte ${firstBad}`);
        } else {
          assert.equal(failed, -1, label);
          assert.equal(validator.end(), expected, `${label}: end()`);
        }
      }
      if (expected) valid++;
      else invalid++;
    }
    // The generator must exercise both outcomes substantially.
    assert.ok(valid > 800 && invalid > 800, `valid ${valid}, invalid ${invalid}`);
  });
});
