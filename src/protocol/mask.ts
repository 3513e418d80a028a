/**
 * The masking codec (RFC 6455 §5.3): payload byte i is XORed with byte (i mod 4) of the 32-bit masking
 * key. Masking and unmasking are the same operation.
 *
 * The key is a number holding the four key bytes in network order (the way they appear on the wire).
 * `phase` is the position within the frame payload of the first byte given, so a payload that arrives
 * in several TCP reads can be unmasked piece by piece.
 *
 * Speed: bytes are XORed 32 bits at a time through a Uint32Array view over the aligned middle of the
 * buffer, with a byte loop for the unaligned head and the tail. The key word is laid out through a
 * 4-byte scratch array so the code is correct on either byte order.
 */

/** Below this many bytes the word loop's setup costs more than it saves. */
const WORD_LOOP_THRESHOLD = 32;

const keyBytes = new Uint8Array(4);
const keyWord = new Uint32Array(keyBytes.buffer);

/** Reads a 4-byte masking key from `source` at `offset` as a number (network byte order). */
export function readMaskKey(source: Uint8Array, offset: number): number {
  return (
    ((source[offset]! << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!) >>> 0
  );
}

/** Unmasks (or masks) `data` in place; `phase` is the payload position of `data[0]`. */
export function unmask(data: Uint8Array, key: number, phase = 0): void {
  xorInto(data, 0, data.length, key, phase, data, 0);
}

/**
 * Masks `source` into `target` at `targetOffset` (the source is left untouched), as a client does with
 * a payload it does not own. `target` must have room for `source.length` bytes.
 */
export function mask(source: Uint8Array, key: number, target: Uint8Array, targetOffset = 0, phase = 0): void {
  if (targetOffset < 0 || targetOffset + source.length > target.length) {
    throw new RangeError('mask target is too small for the source');
  }
  xorInto(source, 0, source.length, key, phase, target, targetOffset);
}

function keyByte(key: number, position: number): number {
  return (key >>> ((3 - (position & 3)) << 3)) & 0xff;
}

function xorInto(
  source: Uint8Array,
  start: number,
  end: number,
  key: number,
  phase: number,
  target: Uint8Array,
  targetStart: number,
): void {
  const length = end - start;
  if (length < WORD_LOOP_THRESHOLD) {
    for (let i = 0; i < length; i++) {
      target[targetStart + i] = source[start + i]! ^ keyByte(key, phase + i);
    }
    return;
  }
  // Word XOR needs source and target at the same alignment; when they differ (only possible when
  // masking into another buffer) align the target, which is written, and read the source bytewise.
  const sourceAbsolute = source.byteOffset + start;
  const targetAbsolute = target.byteOffset + targetStart;
  if (((sourceAbsolute ^ targetAbsolute) & 3) !== 0) {
    xorMisaligned(source, start, length, key, phase, target, targetStart);
    return;
  }
  const head = (4 - (sourceAbsolute & 3)) & 3;
  for (let i = 0; i < head; i++) {
    target[targetStart + i] = source[start + i]! ^ keyByte(key, phase + i);
  }
  const words = (length - head) >>> 2;
  const wordPhase = phase + head;
  keyBytes[0] = keyByte(key, wordPhase);
  keyBytes[1] = keyByte(key, wordPhase + 1);
  keyBytes[2] = keyByte(key, wordPhase + 2);
  keyBytes[3] = keyByte(key, wordPhase + 3);
  const word = keyWord[0]!;
  const sourceWords = new Uint32Array(source.buffer, sourceAbsolute + head, words);
  const targetWords =
    source === target && start === targetStart ? sourceWords : new Uint32Array(target.buffer, targetAbsolute + head, words);
  let w = 0;
  const unrolled = words & ~7;
  for (; w < unrolled; w += 8) {
    targetWords[w] = sourceWords[w]! ^ word;
    targetWords[w + 1] = sourceWords[w + 1]! ^ word;
    targetWords[w + 2] = sourceWords[w + 2]! ^ word;
    targetWords[w + 3] = sourceWords[w + 3]! ^ word;
    targetWords[w + 4] = sourceWords[w + 4]! ^ word;
    targetWords[w + 5] = sourceWords[w + 5]! ^ word;
    targetWords[w + 6] = sourceWords[w + 6]! ^ word;
    targetWords[w + 7] = sourceWords[w + 7]! ^ word;
  }
  for (; w < words; w++) {
    targetWords[w] = sourceWords[w]! ^ word;
  }
  for (let i = head + (words << 2); i < length; i++) {
    target[targetStart + i] = source[start + i]! ^ keyByte(key, phase + i);
  }
}

/** Source and target at different alignments: assemble each source word from bytes, write words. */
function xorMisaligned(
  source: Uint8Array,
  start: number,
  length: number,
  key: number,
  phase: number,
  target: Uint8Array,
  targetStart: number,
): void {
  const head = (4 - ((target.byteOffset + targetStart) & 3)) & 3;
  for (let i = 0; i < head; i++) {
    target[targetStart + i] = source[start + i]! ^ keyByte(key, phase + i);
  }
  const words = (length - head) >>> 2;
  const wordPhase = phase + head;
  keyBytes[0] = keyByte(key, wordPhase);
  keyBytes[1] = keyByte(key, wordPhase + 1);
  keyBytes[2] = keyByte(key, wordPhase + 2);
  keyBytes[3] = keyByte(key, wordPhase + 3);
  const word = keyWord[0]!;
  const targetWords = new Uint32Array(target.buffer, target.byteOffset + targetStart + head, words);
  for (let w = 0, s = start + head; w < words; w++, s += 4) {
    keyBytes[0] = source[s]!;
    keyBytes[1] = source[s + 1]!;
    keyBytes[2] = source[s + 2]!;
    keyBytes[3] = source[s + 3]!;
    targetWords[w] = keyWord[0]! ^ word;
  }
  for (let i = head + (words << 2); i < length; i++) {
    target[targetStart + i] = source[start + i]! ^ keyByte(key, phase + i);
  }
}
