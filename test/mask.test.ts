/**
 * RFC 6455 §5.3: masking XORs payload byte i with key byte (i mod 4). The library XORs 32-bit words
 * with byte loops for the unaligned head and the tail; every alignment, length and phase is checked here
 * against a byte-by-byte reference.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mask, unmask } from '../src/protocol/index.ts';
import { readMaskKey } from '../src/protocol/mask.ts';
import { createRng } from './helpers/frames.ts';

/** Key bytes 0x37 0xfa 0x21 0x3d (RFC 6455 §5.7) as the number the codec takes. */
const KEY = 0x37fa213d;
const KEY_BYTES = [0x37, 0xfa, 0x21, 0x3d];
/** A key whose bytes are all different from each other and from their neighbours' XORs. */
const KEY2 = 0x81c4e70f;

function keyBytesOf(key: number): number[] {
  return [key >>> 24, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff];
}

/** The reference: one byte at a time, straight from §5.3 ("j = i MOD 4"). */
function referenceMask(data: Uint8Array, key: number, phase = 0): Buffer {
  const k = keyBytesOf(key);
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ k[(phase + i) % 4]!;
  return out;
}

/** `length` random bytes at byte offset `offset` of a fresh ArrayBuffer (offset 0 is 8-aligned). */
function bytesAt(offset: number, length: number, seed: number): { view: Uint8Array; whole: Uint8Array } {
  const whole = new Uint8Array(new ArrayBuffer(offset + length + 8));
  whole.set(createRng(seed).bytes(whole.length));
  return { view: whole.subarray(offset, offset + length), whole };
}

const SMALL_LENGTHS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
const THRESHOLD_LENGTHS = [31, 32, 33, 35, 36, 39, 64, 67];
const LENGTHS = [...SMALL_LENGTHS, ...THRESHOLD_LENGTHS, 1000];

describe('readMaskKey', () => {
  test('reads the 4 key bytes in network order', () => {
    const header = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d]);
    assert.equal(readMaskKey(header, 2), KEY);
    assert.equal(readMaskKey(Buffer.from([0xff, 0xff, 0xff, 0xff]), 0), 0xffffffff);
  });
});

describe('unmask (in place) — RFC 6455 §5.3', () => {
  test('RFC §5.7 masked "Hello" unmasks to "Hello"', () => {
    const payload = Buffer.from([0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    unmask(payload, KEY);
    assert.equal(payload.toString('latin1'), 'Hello');
  });

  test('matches the byte reference at every buffer offset 0-3 and lengths 0-9 and around the word threshold', () => {
    let seed = 1;
    for (const key of [KEY, KEY2]) {
      for (let offset = 0; offset < 4; offset++) {
        for (const length of LENGTHS) {
          const { view, whole } = bytesAt(offset, length, seed++);
          const before = Buffer.from(whole);
          const expected = referenceMask(view, key);
          unmask(view, key);
          assert.deepEqual(Buffer.from(view), expected, `offset ${offset} length ${length}`);
          // Bytes outside the view are untouched.
          assert.deepEqual(Buffer.from(whole.subarray(0, offset)), before.subarray(0, offset));
          assert.deepEqual(Buffer.from(whole.subarray(offset + length)), before.subarray(offset + length));
        }
      }
    }
  });

  test('every phase 0-3 (and a phase past 4) continues the key where the previous piece stopped', () => {
    for (const phase of [0, 1, 2, 3, 4, 7, 1001]) {
      for (let offset = 0; offset < 4; offset++) {
        for (const length of [...SMALL_LENGTHS, 31, 32, 33, 35, 100]) {
          const { view } = bytesAt(offset, length, phase * 1000 + offset * 100 + length);
          const expected = referenceMask(view, KEY, phase);
          unmask(view, KEY, phase);
          assert.deepEqual(Buffer.from(view), expected, `phase ${phase} offset ${offset} length ${length}`);
        }
      }
    }
  });

  test('a payload unmasked piece by piece with running phases equals the whole payload unmasked', () => {
    const rng = createRng(7);
    const data = rng.bytes(777);
    const expected = referenceMask(data, KEY2);
    const copy = Buffer.from(data);
    let position = 0;
    while (position < copy.length) {
      const size = Math.min(1 + rng.int(70), copy.length - position);
      unmask(copy.subarray(position, position + size), KEY2, position);
      position += size;
    }
    assert.deepEqual(copy, expected);
  });

  test('64 KiB and 1 MiB at offsets 0-3 match the reference, and masking twice restores the input', () => {
    for (const length of [64 * 1024, 1024 * 1024]) {
      for (let offset = 0; offset < 4; offset++) {
        const { view } = bytesAt(offset, length, length + offset);
        const original = Buffer.from(view);
        const expected = referenceMask(view, KEY2, offset);
        unmask(view, KEY2, offset);
        assert.ok(Buffer.from(view).equals(expected), `length ${length} offset ${offset}`);
        unmask(view, KEY2, offset);
        assert.ok(Buffer.from(view).equals(original));
      }
    }
  });

  test('key 0 leaves the data unchanged; key 0xffffffff inverts every bit', () => {
    const { view } = bytesAt(1, 40, 99);
    const original = Buffer.from(view);
    unmask(view, 0);
    assert.deepEqual(Buffer.from(view), original);
    unmask(view, 0xffffffff);
    assert.deepEqual(
      Buffer.from(view),
      Buffer.from(original.map((b) => b ^ 0xff)),
    );
  });
});

describe('mask (into a target) — RFC 6455 §5.3', () => {
  test('every source offset 0-3 x target offset 0-3 x length, source and target misaligned relative to each other', () => {
    let seed = 1000;
    for (let sourceOffset = 0; sourceOffset < 4; sourceOffset++) {
      for (let targetOffset = 0; targetOffset < 4; targetOffset++) {
        for (const length of LENGTHS) {
          const { view: source } = bytesAt(sourceOffset, length, seed++);
          const sourceBefore = Buffer.from(source);
          // The target is a view at an arbitrary byte offset of a larger buffer, and mask writes
          // at targetOffset inside it: the absolute alignment is (3 + targetOffset) mod 4.
          const targetWhole = new Uint8Array(new ArrayBuffer(length + 16)).fill(0xaa);
          const target = targetWhole.subarray(3, 3 + targetOffset + length + 2);
          mask(source, KEY2, target, targetOffset);
          const label = `source offset ${sourceOffset} target offset ${targetOffset} length ${length}`;
          assert.deepEqual(Buffer.from(target.subarray(targetOffset, targetOffset + length)), referenceMask(source, KEY2), label);
          // Source untouched, nothing written outside [targetOffset, targetOffset + length).
          assert.deepEqual(Buffer.from(source), sourceBefore, label);
          assert.ok(target.subarray(0, targetOffset).every((b) => b === 0xaa), label);
          assert.ok(targetWhole.subarray(3 + targetOffset + length).every((b) => b === 0xaa), label);
          assert.ok(targetWhole.subarray(0, 3).every((b) => b === 0xaa), label);
        }
      }
    }
  });

  test('every phase 0-3 with every target offset 0-3', () => {
    for (let phase = 0; phase < 4; phase++) {
      for (let targetOffset = 0; targetOffset < 4; targetOffset++) {
        for (const length of [0, 1, 5, 9, 31, 32, 33, 35, 200]) {
          const { view: source } = bytesAt((phase + 1) & 3, length, phase * 100 + targetOffset * 10 + length);
          const target = new Uint8Array(targetOffset + length);
          mask(source, KEY, target, targetOffset, phase);
          assert.deepEqual(
            Buffer.from(target.subarray(targetOffset)),
            referenceMask(source, KEY, phase),
            `phase ${phase} target offset ${targetOffset} length ${length}`,
          );
        }
      }
    }
  });

  test('1 MiB into a target at each offset 0-3 matches the reference', () => {
    const { view: source } = bytesAt(1, 1024 * 1024, 5);
    const expected = referenceMask(source, KEY);
    for (let targetOffset = 0; targetOffset < 4; targetOffset++) {
      const target = Buffer.alloc(source.length + targetOffset);
      mask(source, KEY, target, targetOffset);
      assert.ok(target.subarray(targetOffset).equals(expected), `target offset ${targetOffset}`);
    }
  });

  test('masking a view into the same bytes (source aliasing target) works like unmask', () => {
    const frame = Buffer.alloc(6 + 40);
    createRng(3).bytes(40).copy(frame, 6);
    const expected = referenceMask(frame.subarray(6), KEY);
    mask(frame.subarray(6), KEY, frame, 6);
    assert.deepEqual(frame.subarray(6), expected);
  });

  test('a target too small, or a negative offset, is a RangeError and nothing is written', () => {
    const source = Buffer.from([1, 2, 3, 4, 5]);
    const target = Buffer.alloc(6);
    assert.throws(() => mask(source, KEY, target, 2), RangeError);
    assert.throws(() => mask(source, KEY, Buffer.alloc(4)), RangeError);
    assert.throws(() => mask(source, KEY, target, -1), RangeError);
    assert.deepEqual(target, Buffer.alloc(6));
  });

  test('mask and unmask agree with the RFC key bytes order', () => {
    const source = Buffer.from('Hello');
    const target = Buffer.alloc(5);
    mask(source, KEY, target);
    assert.deepEqual(target, Buffer.from([0x7f, 0x9f, 0x4d, 0x51, 0x58]));
    assert.deepEqual([...target].map((b, i) => b ^ KEY_BYTES[i % 4]!), [...source]);
  });
});
