/**
 * RFC 6455 §5.3 through both masking engines: the WebAssembly SIMD kernel (with its copies through the
 * window, and on bytes already in its memory) and the JavaScript word loop, each against a byte-by-byte
 * reference at every length 0-300, every phase 0-3 and every byteOffset alignment 0-3, plus sizes that
 * cross the window. The fallback is proven in child processes where WebAssembly is missing (--jitless)
 * or refuses the module (no SIMD), and the embedded module bytes are proven to be what the build script
 * makes of wasm/mask.wat today.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { assemble, expectedGenerated, GENERATED_PATH, WatError } from '../scripts/build-wasm.ts';
import { MASK_WASM_BYTES } from '../src/protocol/mask-wasm.ts';
import { mask, maskEngines, unmask } from '../src/protocol/mask.ts';
import { createRng } from './helpers/frames.ts';

const KEY = 0x81c4e70f;
const KEY_BYTES = [0x81, 0xc4, 0xe7, 0x0f];
const KiB = 1024;
const MiB = 1024 * KiB;
const LENGTHS = Array.from({ length: 301 }, (_, i) => i);

type Unmask = (data: Uint8Array, key: number, phase?: number) => void;
type Mask = (source: Uint8Array, key: number, target: Uint8Array, targetOffset?: number, phase?: number) => void;

const { unmaskWords, maskWords, unmaskWasm, maskWasm, memory } = maskEngines;

/** The engines under test: the public functions and each engine alone (the kernel at every length). */
const UNMASKERS: [string, Unmask][] = [
  ['unmask', unmask],
  ['JS word loop', (data, key, phase = 0) => unmaskWords(data, key, phase)],
];
const MASKERS: [string, Mask][] = [
  ['mask', mask],
  ['JS word loop', (source, key, target, targetOffset = 0, phase = 0) => maskWords(source, key, target, targetOffset, phase)],
];
if (unmaskWasm !== null && maskWasm !== null) {
  UNMASKERS.push(['WASM kernel', unmaskWasm]);
  MASKERS.push(['WASM kernel', maskWasm]);
}

/** The reference: one byte at a time, straight from §5.3 ("j = i MOD 4"). */
function reference(data: Uint8Array, phase: number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! ^ KEY_BYTES[(phase + i) & 3]!;
  return out;
}

/** Fresh random bytes: `length` of them at `offset` in a buffer with 8 guard bytes after. */
function bytesAt(offset: number, length: number, seed: number): { view: Uint8Array; whole: Uint8Array } {
  const whole = new Uint8Array(new ArrayBuffer(offset + length + 8));
  whole.set(createRng(seed).bytes(whole.length));
  return { view: whole.subarray(offset, offset + length), whole };
}

function sameBytes(actual: Uint8Array, expected: Uint8Array, label: string): void {
  if (Buffer.compare(actual, expected) !== 0) {
    const at = actual.findIndex((byte, i) => byte !== expected[i]);
    assert.fail(`${label}: first difference at byte ${at} of ${expected.length}`);
  }
}

/** Unmasks at every alignment and phase with `fn`, checking the view and the bytes around it. */
function checkUnmask(name: string, fn: Unmask, lengths: readonly number[]): void {
  let seed = 1;
  for (const length of lengths) {
    for (let offset = 0; offset < 4; offset++) {
      for (let phase = 0; phase < 4; phase++) {
        const { view, whole } = bytesAt(offset, length, seed++);
        const before = Uint8Array.from(whole);
        const expected = reference(view, phase);
        fn(view, KEY, phase);
        const label = `${name}: length ${length} byteOffset ${offset} phase ${phase}`;
        sameBytes(view, expected, label);
        sameBytes(whole.subarray(0, offset), before.subarray(0, offset), `${label}, before the view`);
        sameBytes(whole.subarray(offset + length), before.subarray(offset + length), `${label}, after the view`);
      }
    }
  }
}

/** Masks at every source and target alignment and phase with `fn`: the source untouched, nothing outside the range written. */
function checkMask(name: string, fn: Mask, lengths: readonly number[], targetOffsets: readonly number[] = [0, 1, 2, 3]): void {
  let seed = 1000;
  for (const length of lengths) {
    for (let sourceOffset = 0; sourceOffset < 4; sourceOffset++) {
      const { view: source } = bytesAt(sourceOffset, length, seed++);
      const sourceBefore = Uint8Array.from(source);
      for (const targetOffset of targetOffsets) {
        for (let phase = 0; phase < 4; phase++) {
          // The target starts at byteOffset 1 of its buffer, so targetOffset t is at absolute alignment 1 + t.
          const targetWhole = new Uint8Array(new ArrayBuffer(length + 16)).fill(0xaa);
          const target = targetWhole.subarray(1, 1 + targetOffset + length + 4);
          fn(source, KEY, target, targetOffset, phase);
          const label = `${name}: length ${length} source offset ${sourceOffset} target offset ${targetOffset} phase ${phase}`;
          sameBytes(target.subarray(targetOffset, targetOffset + length), reference(source, phase), label);
          sameBytes(source, sourceBefore, `${label}, the source is untouched`);
          assert.ok(targetWhole.subarray(0, 1 + targetOffset).every((b) => b === 0xaa), `${label}, before the range`);
          assert.ok(targetWhole.subarray(1 + targetOffset + length).every((b) => b === 0xaa), `${label}, after the range`);
        }
      }
    }
  }
}

describe('the masking engines', () => {
  test('Node has WebAssembly SIMD here, so the kernel is the engine above the threshold', () => {
    assert.equal(maskEngines.active, 'wasm-simd');
    assert.ok(unmaskWasm !== null && maskWasm !== null && memory !== null);
    assert.ok(maskEngines.unmaskThreshold > 0 && maskEngines.maskThreshold > 0);
    assert.equal(memory.length % 4, 0, 'the window holds whole key periods');
  });
});

describe('unmask through each engine — RFC 6455 §5.3', () => {
  for (const [name, fn] of UNMASKERS) {
    test(`${name}: every length 0-300 x byteOffset 0-3 x phase 0-3 matches the byte reference`, () => {
      checkUnmask(name, fn, LENGTHS);
    });

    test(`${name}: 64 KiB, 1 MiB + 3 and lengths around the window at every alignment and phase`, () => {
      const window = memory?.length ?? 64 * KiB;
      checkUnmask(name, fn, [64 * KiB, window - 1, window, window + 1, 2 * window + 5, MiB + 3]);
    });
  }

  test('a payload unmasked in pieces of random sizes (both engines by turns) equals it unmasked whole', () => {
    const rng = createRng(11);
    const { view: data } = bytesAt(0, 300 * KiB + 7, 12);
    const expected = reference(data, 0);
    for (let position = 0; position < data.length; ) {
      const size = Math.min(rng.chance(0.5) ? rng.int(200) : rng.int(70 * KiB), data.length - position);
      unmask(data.subarray(position, position + size), KEY, position);
      position += size;
    }
    sameBytes(data, expected, 'pieces');
  });

  test('bytes already in the kernel memory are unmasked where they are, at any offset and phase', () => {
    assert.ok(memory !== null);
    const rng = createRng(13);
    for (const length of [0, 1, 7, 64, 127, 128, 129, 1000, 32 * KiB + 1, memory.length - 3]) {
      for (let offset = 0; offset < 4; offset++) {
        for (let phase = 0; phase < 4; phase++) {
          const view = memory.subarray(offset, offset + length);
          view.set(rng.bytes(length));
          const expected = reference(view, phase);
          unmask(view, KEY, phase);
          sameBytes(view, expected, `in memory: length ${length} offset ${offset} phase ${phase}`);
        }
      }
    }
  });
});

describe('mask through each engine — RFC 6455 §5.3', () => {
  for (const [name, fn] of MASKERS) {
    test(`${name}: every length 0-300 x source offset 0-3 x target offset 0-3 x phase 0-3`, () => {
      checkMask(name, fn, LENGTHS);
    });

    test(`${name}: 64 KiB, 1 MiB + 3 and lengths around the window`, () => {
      const window = memory?.length ?? 64 * KiB;
      checkMask(name, fn, [64 * KiB, window + 1, MiB + 3], [0, 3]);
    });
  }

  test('a frame masked over itself (source and target share a buffer) above the threshold', () => {
    for (const length of [maskEngines.maskThreshold, 5000, 300 * KiB]) {
      const frame = new Uint8Array(10 + length);
      frame.set(createRng(length).bytes(length), 10);
      const expected = reference(frame.subarray(10), 2);
      mask(frame.subarray(10), KEY, frame, 10, 2);
      sameBytes(frame.subarray(10), expected, `length ${length}`);
    }
  });

  test('source and target in one ArrayBuffer (pooled Buffers), apart and overlapping', () => {
    for (const length of [maskEngines.maskThreshold, 1000]) {
      const pool = new Uint8Array(4 * length + 64);
      pool.set(createRng(length + 1).bytes(pool.length));
      // Apart: the source after the target's range, then before it.
      for (const [sourceAt, targetAt] of [[2 * length + 8, 5], [3, length + 9]] as const) {
        const source = pool.subarray(sourceAt, sourceAt + length);
        const sourceBefore = Uint8Array.from(source);
        mask(source, KEY, pool, targetAt, 3);
        sameBytes(pool.subarray(targetAt, targetAt + length), reference(sourceBefore, 3), `apart, length ${length}`);
        sameBytes(source, sourceBefore, `apart, length ${length}: the source is untouched`);
      }
      // Overlapping, the target ahead of the source: front to back, each byte is read before it is overwritten.
      const source = pool.subarray(20, 20 + length);
      const expected = reference(Uint8Array.from(source), 1);
      mask(source, KEY, pool, 13, 1);
      sameBytes(pool.subarray(13, 13 + length), expected, `overlapping, length ${length}`);
    }
  });

  test('into the kernel memory, and from it', () => {
    assert.ok(memory !== null);
    const { view: source } = bytesAt(1, 5000, 14);
    const expected = reference(source, 1);
    const target = memory.subarray(3, 3 + 6000);
    mask(source, KEY, target, 2, 1);
    sameBytes(target.subarray(2, 2 + 5000), expected, 'into memory');
    const out = new Uint8Array(5001);
    mask(target.subarray(2, 2 + 5000), KEY, out, 1, 1);
    sameBytes(out.subarray(1), source, 'from memory (masking twice restores the input)');
  });

  test('a target too small is still a RangeError before anything is written', () => {
    const source = new Uint8Array(1000);
    const target = new Uint8Array(1000);
    assert.throws(() => mask(source, KEY, target, 1), RangeError);
    assert.ok(target.every((b) => b === 0));
  });
});

/** Checked in a child process: the public unmask and mask against the reference, and the engine in use. */
const CHILD_CHECK = `
const { mask, unmask, maskEngines } = await import(${JSON.stringify(new URL('../src/protocol/mask.ts', import.meta.url).href)});
const K = [0x81, 0xc4, 0xe7, 0x0f];
let failures = 0;
for (const length of [0, 1, 3, 5, 31, 32, 33, 127, 128, 129, 300, 4096, 65536 + 3]) {
  for (let offset = 0; offset < 4; offset++) {
    for (let phase = 0; phase < 4; phase++) {
      const whole = new Uint8Array(offset + length);
      for (let i = 0; i < whole.length; i++) whole[i] = (i * 7 + length) & 0xff;
      const data = whole.subarray(offset);
      const expected = data.map((b, i) => b ^ K[(phase + i) & 3]);
      const source = Uint8Array.from(data);
      const target = new Uint8Array(length + 3);
      mask(source, 0x81c4e70f, target, 3 - offset, phase);
      unmask(data, 0x81c4e70f, phase);
      if (Buffer.compare(data, expected) !== 0) failures++;
      if (Buffer.compare(target.subarray(3 - offset, 3 - offset + length), expected) !== 0) failures++;
    }
  }
}
console.log(JSON.stringify({ active: maskEngines.active, failures }));
`;

function runChild(nodeArgs: string[], prelude = ''): { active: string; failures: number } {
  const result = spawnSync(process.execPath, [...nodeArgs, '--import', 'tsx', '--input-type=module', '-e', prelude + CHILD_CHECK], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(result.status, 0, result.stderr);
  const lastLine = result.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(lastLine) as { active: string; failures: number };
}

describe('the JavaScript fallback', () => {
  test('without WebAssembly (--jitless) the word loop does everything, correctly', () => {
    assert.deepEqual(runChild(['--jitless']), { active: 'js', failures: 0 });
  });

  test('with a WebAssembly that refuses the module (no SIMD) the word loop does everything, correctly', () => {
    assert.deepEqual(runChild([], 'WebAssembly.validate = () => false;\n'), { active: 'js', failures: 0 });
  });
});

describe('the embedded module', () => {
  test('src/protocol/mask-wasm.ts is exactly what scripts/build-wasm.ts makes of wasm/mask.wat now', () => {
    assert.equal(readFileSync(GENERATED_PATH, 'utf8'), expectedGenerated(), 'stale: run `npm run build:wasm`');
  });

  test('the bytes are a valid module with SIMD', () => {
    const api = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    assert.equal(api.validate(MASK_WASM_BYTES), true);
  });

  test('the assembler refuses what it does not know, with the line', () => {
    assert.throws(() => assemble('(module (func i64.add))'), WatError);
    assert.throws(() => assemble('(module (func br $nowhere))'), /unknown label/);
    assert.throws(() => assemble('(module\n(func\nlocal.get $x))'), /line 3: unknown local/);
    assert.throws(() => assemble('(module (func (i32.add (i32.const 1) (i32.const 2))))'), /folded/);
  });

  test('the assembler encodes a small module byte for byte as the binary format defines it', () => {
    const bytes = assemble('(module (memory (export "m") 1) (func (export "f") (param $a i32) (result i32) local.get $a i32.const -1 i32.xor))');
    assert.deepEqual(
      [...bytes],
      [
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type: (i32) -> i32
        0x03, 0x02, 0x01, 0x00, // function 0 has type 0
        0x05, 0x03, 0x01, 0x00, 0x01, // memory: min 1 page
        0x07, 0x09, 0x02, 0x01, 0x6d, 0x02, 0x00, 0x01, 0x66, 0x00, 0x00, // exports "m" memory 0, "f" func 0
        0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x41, 0x7f, 0x73, 0x0b, // code: local.get 0, i32.const -1, i32.xor, end
      ],
    );
  });
});
