/**
 * The client's permessage-deflate transform (RFC 7692 §7.2), with node:zlib's one-shot calls.
 *
 * Context takeover is the LZ77 window carried from one message to the next. Every message is flushed
 * with Z_SYNC_FLUSH, so it ends on a block boundary and the only state the next message inherits is the
 * last 2^windowBits bytes of uncompressed data. The codec keeps those bytes itself and hands them to zlib
 * as a preset dictionary: compressing or inflating with them is the same as continuing one long stream,
 * without keeping a zlib stream per connection or going through its asynchronous API.
 */
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { farthestDistance } from './deflate-distance.ts';
import type { DeflateParameters } from './deflate-negotiation.ts';

/** The empty stored block a sync flush ends with, stripped by the sender and put back by the receiver. */
const FLUSH_TAIL = Buffer.of(0x00, 0x00, 0xff, 0xff);

/** The last bytes a direction's compressor (or decompressor) has seen, as many as its window holds. */
class SlidingWindow {
  private readonly size: number;
  private bytes: Buffer | null = null;

  constructor(windowBits: number) {
    this.size = 2 ** windowBits;
  }

  /** The dictionary for the next message, or undefined at the start. */
  get dictionary(): Buffer | undefined {
    return this.bytes ?? undefined;
  }

  push(data: Buffer): void {
    if (data.length === 0) return;
    if (data.length >= this.size) {
      // A copy, so a large message is not kept alive by its last bytes.
      this.bytes = Buffer.from(data.subarray(data.length - this.size));
      return;
    }
    const kept = this.bytes === null ? 0 : Math.min(this.bytes.length, this.size - data.length);
    const next = Buffer.allocUnsafe(kept + data.length);
    if (kept > 0) this.bytes!.copy(next, 0, this.bytes!.length - kept);
    data.copy(next, kept);
    this.bytes = next;
  }
}

export class DeflateCodec {
  readonly parameters: DeflateParameters;
  private readonly sent: SlidingWindow;
  private readonly received: SlidingWindow;
  private readonly maxMessageSize: number;

  /** `maxMessageSize` bounds what one inflated message may grow to. */
  constructor(parameters: DeflateParameters, maxMessageSize: number) {
    this.parameters = parameters;
    this.sent = new SlidingWindow(parameters.clientMaxWindowBits);
    this.received = new SlidingWindow(parameters.serverMaxWindowBits);
    this.maxMessageSize = maxMessageSize;
  }

  /** The payload of a compressed message (RFC 7692 §7.2.1): raw DEFLATE, sync flushed, tail stripped. */
  compress(message: Buffer): Buffer {
    const parameters = this.parameters;
    // zlib cannot make a raw stream with a 256-byte window and uses 512 bytes for 8 (node:zlib does the
    // same); its matches then reach back at most 512 - 262 bytes, within what a 256-byte window holds.
    const windowBits = Math.max(parameters.clientMaxWindowBits, 9);
    const dictionary = parameters.clientNoContextTakeover ? undefined : this.sent.dictionary;
    const flushed = deflateRawSync(message, {
      windowBits,
      finishFlush: constants.Z_SYNC_FLUSH,
      ...(dictionary === undefined ? {} : { dictionary }),
    });
    // RFC 7692 §7.2.1: the data ends with an empty stored block, whose 4 octets 00 00 ff ff are removed.
    if (!flushed.subarray(flushed.length - FLUSH_TAIL.length).equals(FLUSH_TAIL)) {
      throw new Error('zlib did not end the message with an empty stored block');
    }
    if (!parameters.clientNoContextTakeover) this.sent.push(message);
    return flushed.subarray(0, flushed.length - FLUSH_TAIL.length);
  }

  /**
   * The message a compressed payload carries (RFC 7692 §7.2.2): 00 00 ff ff appended, inflated with the
   * server's window and, unless the server resets it, the window the previous messages left. Throws
   * what zlib throws on invalid data, and an Error when the server reached back farther than the window
   * it negotiated: zlib only notices that across messages, deflate-distance.ts within one.
   */
  decompress(payload: Buffer): Buffer {
    const parameters = this.parameters;
    const dictionary = parameters.serverNoContextTakeover ? undefined : this.received.dictionary;
    const stream = Buffer.concat([payload, FLUSH_TAIL]);
    const message = inflateRawSync(stream, {
      windowBits: parameters.serverMaxWindowBits,
      finishFlush: constants.Z_SYNC_FLUSH,
      maxOutputLength: this.maxMessageSize,
      ...(dictionary === undefined ? {} : { dictionary }),
    });
    // With 15 bits the window is 32 KiB, as far as a DEFLATE distance can reach: nothing to check.
    if (parameters.serverMaxWindowBits < 15) {
      const farthest = farthestDistance(stream);
      const window = 2 ** parameters.serverMaxWindowBits;
      if (farthest > window) {
        throw new Error(`a back-reference reaches ${farthest} bytes back, beyond the ${window}-byte window of server_max_window_bits=${parameters.serverMaxWindowBits}`);
      }
    }
    if (!parameters.serverNoContextTakeover) this.received.push(message);
    return message;
  }
}
