/**
 * permessage-deflate done with node:zlib directly, never through src/ (RFC 7692 §7.2): how the tests
 * compress what they send and inflate what the server or the codec produced, so src/ is checked
 * against zlib and not against itself.
 */
import assert from 'node:assert/strict';
import { constants, deflateRawSync, inflateRawSync, type DeflateRaw, type InflateRaw } from 'node:zlib';

/** RFC 7692 §7.2.1: the end of a sync flush, removed by the sender and appended by the receiver. */
export const FLUSH_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** A string as UTF-8, or a view of the same bytes. */
export function bytesOf(data: Uint8Array | string): Buffer {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** RFC 7692 §7.2.1 for one message on its own: raw deflate, sync flush, the tail removed. */
export function compress(data: Uint8Array | string, windowBits = 15): Buffer {
  const output = deflateRawSync(bytesOf(data), { finishFlush: constants.Z_SYNC_FLUSH, windowBits });
  assert.deepEqual(output.subarray(-4), FLUSH_TAIL, 'a sync flush ends with 00 00 ff ff');
  return output.subarray(0, -4);
}

/** RFC 7692 §7.2.2 for one message on its own (no history, unless a `dictionary`): the tail appended, then inflated. */
export function inflate(payload: Uint8Array, windowBits = 15, extra: { dictionary?: Buffer; chunkSize?: number } = {}): Buffer {
  return inflateRawSync(Buffer.concat([payload, FLUSH_TAIL]), { finishFlush: constants.Z_SYNC_FLUSH, windowBits, ...extra });
}

/**
 * Writes `input` to a zlib stream kept across messages, sync-flushes it, and returns what came out:
 * the stream's LZ77 window carries over to the next call (context takeover, RFC 7692 §7.1.1).
 */
export function flushThrough(stream: DeflateRaw | InflateRaw, input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const collect = (chunk: Buffer): void => {
      chunks.push(chunk);
    };
    stream.on('data', collect);
    stream.once('error', reject);
    stream.write(input);
    stream.flush(constants.Z_SYNC_FLUSH, () => {
      stream.off('data', collect);
      stream.off('error', reject);
      resolve(Buffer.concat(chunks));
    });
  });
}
