/**
 * The conformance peer's permessage-deflate transform (RFC 7692 §7.2), with node:zlib's one-shot calls.
 * As a client (the replay against a server) it compresses with the client's parameters and inflates
 * with the server's; as a server (the replay against a client) the other way round.
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

/** Which end of the connection the codec compresses for. */
export type DeflateRole = 'client' | 'server';

/** One direction's parameters: whether it resets its window after each message, and the window's size. */
interface Direction {
  readonly noContextTakeover: boolean;
  readonly maxWindowBits: number;
  /** The parameter's name, for messages: `server_max_window_bits` or `client_max_window_bits`. */
  readonly windowParameter: string;
}

function direction(parameters: DeflateParameters, sender: DeflateRole): Direction {
  return sender === 'client'
    ? { noContextTakeover: parameters.clientNoContextTakeover, maxWindowBits: parameters.clientMaxWindowBits, windowParameter: 'client_max_window_bits' }
    : { noContextTakeover: parameters.serverNoContextTakeover, maxWindowBits: parameters.serverMaxWindowBits, windowParameter: 'server_max_window_bits' };
}

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
  /** What this end sends with, and what the other end sends with. */
  private readonly outgoing: Direction;
  private readonly incoming: Direction;
  private readonly sent: SlidingWindow;
  private readonly received: SlidingWindow;
  private readonly maxMessageSize: number;

  /** `maxMessageSize` bounds what one inflated message may grow to; `role` is the end this codec is (default client). */
  constructor(parameters: DeflateParameters, maxMessageSize: number, role: DeflateRole = 'client') {
    this.parameters = parameters;
    this.outgoing = direction(parameters, role);
    this.incoming = direction(parameters, role === 'client' ? 'server' : 'client');
    this.sent = new SlidingWindow(this.outgoing.maxWindowBits);
    this.received = new SlidingWindow(this.incoming.maxWindowBits);
    this.maxMessageSize = maxMessageSize;
  }

  /** The payload of a compressed message (RFC 7692 §7.2.1): raw DEFLATE, sync flushed, tail stripped. */
  compress(message: Buffer): Buffer {
    const outgoing = this.outgoing;
    // zlib cannot make a raw stream with a 256-byte window and uses 512 bytes for 8 (node:zlib does the
    // same); its matches then reach back at most 512 - 262 bytes, within what a 256-byte window holds.
    const windowBits = Math.max(outgoing.maxWindowBits, 9);
    const dictionary = outgoing.noContextTakeover ? undefined : this.sent.dictionary;
    const flushed = deflateRawSync(message, {
      windowBits,
      finishFlush: constants.Z_SYNC_FLUSH,
      ...(dictionary === undefined ? {} : { dictionary }),
    });
    // RFC 7692 §7.2.1: the data ends with an empty stored block, whose 4 octets 00 00 ff ff are removed.
    if (!flushed.subarray(flushed.length - FLUSH_TAIL.length).equals(FLUSH_TAIL)) {
      throw new Error('zlib did not end the message with an empty stored block');
    }
    if (!outgoing.noContextTakeover) this.sent.push(message);
    return flushed.subarray(0, flushed.length - FLUSH_TAIL.length);
  }

  /**
   * The message a compressed payload carries (RFC 7692 §7.2.2): 00 00 ff ff appended, inflated with the
   * other end's window and, unless it resets it, the window the previous messages left. Throws what
   * zlib throws on invalid data, and an Error when the other end reached back farther than the window
   * it negotiated: zlib only notices that across messages, deflate-distance.ts within one.
   */
  decompress(payload: Buffer): Buffer {
    const incoming = this.incoming;
    const dictionary = incoming.noContextTakeover ? undefined : this.received.dictionary;
    const stream = Buffer.concat([payload, FLUSH_TAIL]);
    const message = inflateRawSync(stream, {
      windowBits: incoming.maxWindowBits,
      finishFlush: constants.Z_SYNC_FLUSH,
      maxOutputLength: this.maxMessageSize,
      ...(dictionary === undefined ? {} : { dictionary }),
    });
    // With 15 bits the window is 32 KiB, as far as a DEFLATE distance can reach: nothing to check.
    if (incoming.maxWindowBits < 15) {
      const farthest = farthestDistance(stream);
      const window = 2 ** incoming.maxWindowBits;
      if (farthest > window) {
        throw new Error(`a back-reference reaches ${farthest} bytes back, beyond the ${window}-byte window of ${incoming.windowParameter}=${incoming.maxWindowBits}`);
      }
    }
    if (!incoming.noContextTakeover) this.received.push(message);
    return message;
  }
}
