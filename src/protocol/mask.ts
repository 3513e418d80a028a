/**
 * The masking codec (RFC 6455 §5.3): payload byte i is XORed with byte (i mod 4) of the 32-bit masking
 * key. Masking and unmasking are the same operation.
 *
 * The key is a number holding the four key bytes in network order (the way they appear on the wire).
 * `phase` is the position within the frame payload of the first byte given, so a payload that arrives
 * in several TCP reads can be unmasked piece by piece.
 *
 * Speed: bytes are XORed 32 bits at a time through an Int32Array view over the aligned middle of the
 * buffer; the unaligned head, the tail and short buffers use a byte loop over a rotating copy of the
 * key (top byte = the key byte for the current position), which is cheaper than indexing the key.
 * The key word for the word loop is laid out through a 4-byte scratch array, so the code is correct on
 * either byte order.
 */

/** Below this many bytes the word loop's setup costs more than it saves. */
const WORD_LOOP_THRESHOLD = 32;

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

/** Unmasks (or masks) `data` in place; `phase` is the payload position of `data[0]`. */
export function unmask(data: Uint8Array, key: number, phase = 0): void {
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

/**
 * Masks `source` into `target` at `targetOffset` (the source is left untouched), as a client does with
 * a payload it does not own. `target` must have room for `source.length` bytes.
 */
export function mask(source: Uint8Array, key: number, target: Uint8Array, targetOffset = 0, phase = 0): void {
  const length = source.length;
  if (targetOffset < 0 || targetOffset + length > target.length) {
    throw new RangeError('mask target is too small for the source');
  }
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
