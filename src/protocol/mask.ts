/**
 * The masking codec (RFC 6455 §5.3): payload byte i is XORed with byte (i mod 4) of the 32-bit masking
 * key. Masking and unmasking are the same operation.
 *
 * The key is a number holding the four key bytes in network order (the way they appear on the wire).
 * `phase` is the position within the frame payload of the first byte given, so a payload that arrives
 * in several TCP reads can be unmasked piece by piece.
 *
 * Two engines, chosen per call by length:
 *
 * - The word loop (JavaScript, any length): bytes are XORed 32 bits at a time through an Int32Array
 *   view over the aligned middle of the buffer; the unaligned head, the tail and short buffers use a
 *   byte loop over a rotating copy of the key (top byte = the key byte for the current position). The
 *   key word is laid out through a 4-byte scratch array, so the code is correct on either byte order.
 * - The SIMD kernel (WebAssembly, 128-bit XORs; source in wasm/mask.wat, bytes in mask-wasm.ts). A
 *   WebAssembly module can only touch its own linear memory, never a Node Buffer, so the bytes go
 *   through a fixed 64 KiB window of that memory: copy in, XOR, copy out, a window at a time. The two
 *   copies are memcpy, several times faster than the word loop, so the round trip still wins from
 *   UNMASK_WASM_THRESHOLD / MASK_WASM_THRESHOLD bytes up. Bytes that already live in the module's
 *   memory are XORed where they are, without copies. The memory never grows, so views of it stay valid.
 *
 * Without WebAssembly or without SIMD support (`--jitless`, an old engine), the word loop does all of it.
 */
import { MASK_WASM_BYTES } from './mask-wasm.ts';

/** Below this many bytes the word loop's setup costs more than it saves. */
const WORD_LOOP_THRESHOLD = 32;

/**
 * From this many bytes up, unmask uses the WebAssembly kernel: with its copies in and out it is level
 * with the word loop at 48-64 bytes and ahead from 80 (1.05x at 80, 1.13x at 128, 2x at 1 KiB, 4x at
 * 16 KiB; `npm run bench -- --only=micro --filter=mask`, ratio `WASM kernel + copies in/out / JS word
 * loop alone`).
 */
const UNMASK_WASM_THRESHOLD = 64;

/**
 * From this many bytes up, mask uses the kernel. The word loop is slower here than in place (two
 * Int32Array views, and a byte loop whenever source and target differ in alignment), so the kernel
 * wins as soon as the word loop would start (1.5x at 32 bytes, 2x at 128).
 */
const MASK_WASM_THRESHOLD = 32;

const keyBytes = new Uint8Array(4);
const keyWord = new Int32Array(keyBytes.buffer);

/** Reads a 4-byte masking key from `source` at `offset` as a number (network byte order). */
export function readMaskKey(source: Uint8Array, offset: number): number {
  return (
    ((source[offset]! << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!) >>> 0
  );
}

/** The key rotated so that its top byte applies to payload position `phase`. */
function rotateKey(key: number, phase: number): number {
  const shift = (phase & 3) << 3;
  return shift === 0 ? key | 0 : (key << shift) | (key >>> (32 - shift));
}

/** The key word to XOR with an aligned 4-byte group, for a rotated key (memory order = key order). */
function wordFor(rotated: number): number {
  keyBytes[0] = rotated >>> 24;
  keyBytes[1] = rotated >>> 16;
  keyBytes[2] = rotated >>> 8;
  keyBytes[3] = rotated;
  return keyWord[0]!;
}

// ------------------------------------------------------------------------------------------ WebAssembly

/** The part of the WebAssembly API used here (the project's lib settings do not declare it). */
interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: abstract new (...args: never[]) => { readonly buffer: ArrayBuffer };
}

interface Kernel {
  /** XORs `length` bytes of the memory at `pointer` with `key`'s little-endian bytes, repeating. */
  readonly xor: (pointer: number, length: number, key: number) => void;
  /** The whole linear memory: the copy window. */
  readonly heap: Uint8Array;
  readonly memory: ArrayBuffer;
}

/** Instantiates the kernel synchronously (a few hundred bytes), or returns null where it cannot run. */
function loadKernel(): Kernel | null {
  const api = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;
  if (api === undefined) return null;
  // validate() is false where the engine lacks an instruction the module uses (SIMD).
  if (!api.validate(MASK_WASM_BYTES)) return null;
  let exports: Record<string, unknown>;
  try {
    exports = new api.Instance(new api.Module(MASK_WASM_BYTES), {}).exports;
  } catch {
    // Compilation refused by the embedder (a code-generation policy) or no memory: the word loop works.
    return null;
  }
  const { xor, memory } = exports;
  if (typeof xor !== 'function' || !(memory instanceof api.Memory)) return null;
  return {
    xor: xor as Kernel['xor'],
    heap: new Uint8Array(memory.buffer),
    memory: memory.buffer,
  };
}

const kernel = loadKernel();

/** The kernel's key argument: the little-endian word whose low byte is the key byte for the first byte. */
function kernelKey(rotated: number): number {
  return (rotated >>> 24) | ((rotated >>> 8) & 0xff00) | ((rotated & 0xff00) << 8) | (rotated << 24);
}

/**
 * Unmasks through the kernel (no length threshold): in place when `data` is a view of the kernel's
 * memory, else a window at a time through it.
 */
function unmaskKernel(k: Kernel, data: Uint8Array, key: number, phase: number): void {
  const word = kernelKey(rotateKey(key, phase));
  const length = data.length;
  if (data.buffer === k.memory) {
    k.xor(data.byteOffset, length, word);
    return;
  }
  const heap = k.heap;
  const window = heap.length; // a multiple of 4: every window starts at the same key phase
  if (length <= window) {
    heap.set(data);
    k.xor(0, length, word);
    data.set(length === window ? heap : new Uint8Array(k.memory, 0, length));
    return;
  }
  for (let offset = 0; offset < length; offset += window) {
    const size = Math.min(window, length - offset);
    const piece = data.subarray(offset, offset + size);
    heap.set(piece);
    k.xor(0, size, word);
    piece.set(size === window ? heap : new Uint8Array(k.memory, 0, size));
  }
}

/**
 * Masks `source` into `target` at `targetOffset` through the kernel (no length threshold). The source
 * must not overlap the target's range nor lie in the kernel's memory.
 */
function maskKernel(
  k: Kernel,
  source: Uint8Array,
  key: number,
  target: Uint8Array,
  targetOffset: number,
  phase: number,
): void {
  const word = kernelKey(rotateKey(key, phase));
  const length = source.length;
  if (target.buffer === k.memory) {
    // The target is the kernel's memory: one copy, then XOR where the bytes landed.
    target.set(source, targetOffset);
    k.xor(target.byteOffset + targetOffset, length, word);
    return;
  }
  const heap = k.heap;
  const window = heap.length;
  for (let offset = 0; offset < length; offset += window) {
    const size = Math.min(window, length - offset);
    heap.set(offset === 0 && size === length ? source : source.subarray(offset, offset + size));
    k.xor(0, size, word);
    target.set(size === window ? heap : new Uint8Array(k.memory, 0, size), targetOffset + offset);
  }
}

// ------------------------------------------------------------------------------------------ word loop

/** The word loop alone: unmasks `data` in place at any length. */
function unmaskWords(data: Uint8Array, key: number, phase: number): void {
  const length = data.length;
  let rotated = rotateKey(key, phase);
  if (length < WORD_LOOP_THRESHOLD) {
    for (let i = 0; i < length; i++) {
      data[i]! ^= rotated >>> 24;
      rotated = (rotated << 8) | (rotated >>> 24);
    }
    return;
  }
  const head = (4 - (data.byteOffset & 3)) & 3;
  for (let i = 0; i < head; i++) {
    data[i]! ^= rotated >>> 24;
    rotated = (rotated << 8) | (rotated >>> 24);
  }
  const words = (length - head) >>> 2;
  const word = wordFor(rotated);
  const view = new Int32Array(data.buffer, data.byteOffset + head, words);
  let w = 0;
  const unrolled = words & ~7;
  for (; w < unrolled; w += 8) {
    view[w]! ^= word;
    view[w + 1]! ^= word;
    view[w + 2]! ^= word;
    view[w + 3]! ^= word;
    view[w + 4]! ^= word;
    view[w + 5]! ^= word;
    view[w + 6]! ^= word;
    view[w + 7]! ^= word;
  }
  for (; w < words; w++) view[w]! ^= word;
  // Whole words leave the rotation where it was.
  for (let i = head + (words << 2); i < length; i++) {
    data[i]! ^= rotated >>> 24;
    rotated = (rotated << 8) | (rotated >>> 24);
  }
}

/** The word loop alone: masks `source` into `target` at `targetOffset` (already range-checked). */
function maskWords(source: Uint8Array, key: number, target: Uint8Array, targetOffset: number, phase: number): void {
  const length = source.length;
  let rotated = rotateKey(key, phase);
  const sourceStart = source.byteOffset;
  const targetStart = target.byteOffset + targetOffset;
  if (length < WORD_LOOP_THRESHOLD || ((sourceStart ^ targetStart) & 3) !== 0) {
    // Short, or source and target at different alignments: bytewise (clients mask small frames).
    for (let i = 0; i < length; i++) {
      target[targetOffset + i] = source[i]! ^ (rotated >>> 24);
      rotated = (rotated << 8) | (rotated >>> 24);
    }
    return;
  }
  const head = (4 - (sourceStart & 3)) & 3;
  for (let i = 0; i < head; i++) {
    target[targetOffset + i] = source[i]! ^ (rotated >>> 24);
    rotated = (rotated << 8) | (rotated >>> 24);
  }
  const words = (length - head) >>> 2;
  const word = wordFor(rotated);
  const from = new Int32Array(source.buffer, sourceStart + head, words);
  const to = new Int32Array(target.buffer, targetStart + head, words);
  for (let w = 0; w < words; w++) to[w] = from[w]! ^ word;
  for (let i = head + (words << 2); i < length; i++) {
    target[targetOffset + i] = source[i]! ^ (rotated >>> 24);
    rotated = (rotated << 8) | (rotated >>> 24);
  }
}

// ------------------------------------------------------------------------------------------ public

/** Unmasks (or masks) `data` in place; `phase` is the payload position of `data[0]`. */
export function unmask(data: Uint8Array, key: number, phase = 0): void {
  if (kernel !== null && data.length >= UNMASK_WASM_THRESHOLD) unmaskKernel(kernel, data, key, phase);
  else unmaskWords(data, key, phase);
}

/**
 * Masks `source` into `target` at `targetOffset` (the source is left untouched), as a client does with
 * a payload it does not own. `target` must have room for `source.length` bytes.
 */
export function mask(source: Uint8Array, key: number, target: Uint8Array, targetOffset = 0, phase = 0): void {
  const length = source.length;
  if (targetOffset < 0 || targetOffset + length > target.length) {
    throw new RangeError('mask target is too small for the source');
  }
  // A source overlapping its target (a frame masked over itself) keeps the word loop's front-to-back
  // order, and a source in the kernel's memory would overlap the window.
  if (
    kernel !== null &&
    length >= MASK_WASM_THRESHOLD &&
    source.buffer !== kernel.memory &&
    !overlaps(source, target, targetOffset, length)
  ) {
    maskKernel(kernel, source, key, target, targetOffset, phase);
  } else {
    maskWords(source, key, target, targetOffset, phase);
  }
}

/**
 * Whether `source` and `target[targetOffset, targetOffset + length)` share bytes. Sharing an ArrayBuffer
 * alone is common and harmless: small Buffers are slices of one pool.
 */
function overlaps(source: Uint8Array, target: Uint8Array, targetOffset: number, length: number): boolean {
  if (source.buffer !== target.buffer) return false;
  const sourceStart = source.byteOffset;
  const targetStart = target.byteOffset + targetOffset;
  return sourceStart < targetStart + length && targetStart < sourceStart + length;
}

// ------------------------------------------------------------------------------------------ internal

/**
 * @internal For tests and benchmarks only (not re-exported by the package): which engine runs above
 * the threshold, and each engine on its own at any length.
 */
export const maskEngines = {
  /** `'wasm-simd'` when the WebAssembly kernel loaded, `'js'` when the word loop does everything. */
  active: kernel === null ? 'js' : 'wasm-simd',
  /** The lengths from which unmask and mask use the kernel. */
  unmaskThreshold: UNMASK_WASM_THRESHOLD,
  maskThreshold: MASK_WASM_THRESHOLD,
  unmaskWords,
  maskWords,
  /** The kernel with its copies (through the window), at any length; null without WebAssembly. */
  unmaskWasm:
    kernel === null ? null : (data: Uint8Array, key: number, phase = 0): void => unmaskKernel(kernel, data, key, phase),
  maskWasm:
    kernel === null
      ? null
      : (source: Uint8Array, key: number, target: Uint8Array, targetOffset = 0, phase = 0): void =>
          maskKernel(kernel, source, key, target, targetOffset, phase),
  /**
   * The kernel's memory as bytes (views of it are unmasked without copies); null without WebAssembly.
   * It is also the copy window: every unmask or mask that copies through it overwrites its contents.
   */
  memory: kernel === null ? null : kernel.heap,
} as const;
