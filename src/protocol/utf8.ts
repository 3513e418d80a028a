/**
 * Streaming, fail-fast UTF-8 validation (RFC 6455 §5.6, §8.1).
 *
 * A text message may arrive in many frames and each frame in many TCP reads; a code point may be split
 * anywhere. The validator keeps the bytes of an unfinished sequence between writes and reports the first
 * invalid byte as soon as it arrives: a sequence prefix that can no longer become a valid code point
 * (E0 80, ED A0, F4 90, F5...) fails at once, not at the end of the message.
 *
 * The bulk of each piece is checked by Node's native `buffer.isUtf8`; only the at most three bytes of a
 * sequence cut by a piece boundary go through the byte rules below (Unicode Table 3-7).
 */
import { isUtf8 } from 'node:buffer';

/** Below this many bytes a JavaScript loop beats the native call's overhead. */
const NATIVE_THRESHOLD = 24;

/** Length of the sequence a lead byte starts, 0 when the byte cannot start one. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead < 0xc2) return 0; // continuation bytes and the overlong leads C0, C1
  if (lead < 0xe0) return 2;
  if (lead < 0xf0) return 3;
  if (lead < 0xf5) return 4;
  return 0; // F5..FF would encode beyond U+10FFFF
}

/** Whether `second` may follow `lead` (Unicode Table 3-7 narrows it for E0, ED, F0 and F4). */
function validSecondByte(lead: number, second: number): boolean {
  switch (lead) {
    case 0xe0:
      return second >= 0xa0 && second <= 0xbf; // no overlong 3-byte forms
    case 0xed:
      return second >= 0x80 && second <= 0x9f; // no UTF-16 surrogates D800..DFFF
    case 0xf0:
      return second >= 0x90 && second <= 0xbf; // no overlong 4-byte forms
    case 0xf4:
      return second >= 0x80 && second <= 0x8f; // nothing above U+10FFFF
    default:
      return second >= 0x80 && second <= 0xbf;
  }
}

/** Whether bytes[start, end) is a prefix of some well-formed sequence (possibly a whole one). */
function validPrefix(bytes: Uint8Array, start: number, end: number): boolean {
  const lead = bytes[start]!;
  const length = sequenceLength(lead);
  if (length === 0 || end - start > length) return false;
  if (end - start >= 2 && !validSecondByte(lead, bytes[start + 1]!)) return false;
  for (let i = start + 2; i < end; i++) {
    if ((bytes[i]! & 0xc0) !== 0x80) return false;
  }
  return true;
}

/** Whole-buffer check in JavaScript, for short inputs. */
function isUtf8Small(bytes: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    const length = sequenceLength(lead);
    if (length === 0 || i + length > end || !validPrefix(bytes, i, i + length)) return false;
    i += length;
  }
  return true;
}

function isValidRange(bytes: Uint8Array, start: number, end: number): boolean {
  if (end - start < NATIVE_THRESHOLD) return isUtf8Small(bytes, start, end);
  return isUtf8(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
}

/** One-shot check of a complete byte string (a close reason, a single-frame text message). */
export function isValidUtf8(bytes: Uint8Array): boolean {
  return isValidRange(bytes, 0, bytes.length);
}

/**
 * Validates a byte stream written in arbitrary pieces. `write` returns false at the first piece that
 * contains an invalid byte; `end` returns false when the stream stops inside a sequence.
 */
export class Utf8Validator {
  /** The bytes of a sequence cut by the end of the previous piece (at most 3). */
  private readonly pending = new Uint8Array(4);
  private pendingLength = 0;

  write(bytes: Uint8Array): boolean {
    let start = 0;
    const end = bytes.length;
    if (this.pendingLength > 0) {
      // Finish the cut sequence byte by byte, failing as soon as its prefix is invalid.
      const needed = sequenceLength(this.pending[0]!);
      while (this.pendingLength < needed && start < end) {
        this.pending[this.pendingLength++] = bytes[start++]!;
        if (!validPrefix(this.pending, 0, this.pendingLength)) return false;
      }
      if (this.pendingLength < needed) return true;
      this.pendingLength = 0;
    }
    if (start === end) return true;
    // Find a sequence cut by the end of this piece: walk back over at most 3 continuation bytes.
    let tail = end;
    let i = end - 1;
    const limit = Math.max(start, end - 4);
    while (i > limit && (bytes[i]! & 0xc0) === 0x80) i--;
    const lead = bytes[i]!;
    if (lead >= 0xc0) {
      const length = sequenceLength(lead);
      if (length === 0) return false;
      if (i + length > end) tail = i;
    }
    if (tail > start && !isValidRange(bytes, start, tail)) return false;
    if (tail < end) {
      if (!validPrefix(bytes, tail, end)) return false;
      this.pending.set(bytes.subarray(tail, end), 0);
      this.pendingLength = end - tail;
    }
    return true;
  }

  /** True when the stream ended on a sequence boundary; resets the validator for the next message. */
  end(): boolean {
    const complete = this.pendingLength === 0;
    this.pendingLength = 0;
    return complete;
  }

  reset(): void {
    this.pendingLength = 0;
  }
}
