/**
 * The close codec (RFC 6455 §5.5.1). `encodeClose` is the only place a close frame is built, so a frame
 * with a reserved code, a reason without a code, or an over-long or malformed reason cannot be sent.
 */
import { CloseCode, MAX_CONTROL_PAYLOAD, Opcode } from '../constants.ts';
import { InvalidPayloadData, ProtocolError } from '../errors.ts';
import { checkSendableClose, isSendableCloseCode } from './close-rules.ts';
import { isValidUtf8 } from './utf8.ts';
import { randomMaskKey, writeFrameHeader } from './frame-encoder.ts';
import { mask } from './mask.ts';

/** A decoded close frame: 1005 (NoStatusReceived) when the payload was empty. */
export interface CloseInfo {
  readonly code: number;
  readonly reason: string;
}

/**
 * Builds a complete close frame. With no code the payload is empty (the peer reports 1005). Throws
 * RangeError/TypeError for a code outside 1000-1003, 1007-1014, 3000-4999, a reason over 123 UTF-8
 * bytes, a reason that is not well-formed, or a reason without a code.
 * `masked` is for the client role (RFC 6455 §5.3): the payload is masked with a fresh random key.
 */
export function encodeClose(code?: number, reason = '', masked = false): Buffer {
  let payloadLength = 0;
  if (code === undefined) {
    // RFC 6455 §5.5.1: the reason may only follow a status code.
    if (reason !== '') throw new TypeError('a close reason requires a close code (RFC 6455 §5.5.1)');
  } else {
    payloadLength = 2 + checkSendableClose(code, reason);
  }
  const headerLength = masked ? 6 : 2;
  const frame = Buffer.allocUnsafe(headerLength + payloadLength);
  const key = masked ? randomMaskKey() : null;
  writeFrameHeader(frame, Opcode.Close, true, payloadLength, key);
  if (code !== undefined) {
    frame.writeUInt16BE(code, headerLength);
    frame.write(reason, headerLength + 2, 'utf8');
    if (key !== null) mask(frame.subarray(headerLength), key, frame, headerLength);
  }
  return frame;
}

/**
 * Decodes a received close payload (already unmasked). RFC 6455 §5.5.1 / §7.4: a 1-byte payload or a
 * code that may not be sent is a protocol error (1002); a reason that is not UTF-8 is 1007 (§8.1).
 */
export function decodeClose(payload: Uint8Array): CloseInfo {
  if (payload.length === 0) return { code: CloseCode.NoStatusReceived, reason: '' };
  if (payload.length === 1) throw new ProtocolError('close payload of 1 byte');
  if (payload.length > MAX_CONTROL_PAYLOAD) throw new ProtocolError('close payload over 125 bytes');
  const code = (payload[0]! << 8) | payload[1]!;
  if (!isSendableCloseCode(code)) throw new ProtocolError(`invalid close code ${code}`);
  const reasonBytes = payload.subarray(2);
  if (!isValidUtf8(reasonBytes)) throw new InvalidPayloadData('close reason is not valid UTF-8');
  return { code, reason: Buffer.from(reasonBytes.buffer, reasonBytes.byteOffset, reasonBytes.length).toString('utf8') };
}
