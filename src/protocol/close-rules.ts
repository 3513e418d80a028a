/**
 * The rules a close code and reason must follow to appear in a close frame (RFC 6455 §5.5.1, §7.4).
 * Shared by encodeClose, decodeClose and WebSocketException so that an invalid close frame cannot be
 * expressed anywhere in the library.
 */
import { MAX_CLOSE_REASON_BYTES } from '../constants.ts';

/**
 * RFC 6455 §7.4.1/§7.4.2: codes an endpoint may put on the wire: 1000–1003, 1007–1014 (the IANA
 * registry's assigned codes minus 1004, 1005, 1006 and 1015), and 3000–4999 (libraries and
 * applications). Everything else below 5000 is reserved or must never be sent.
 */
export function isSendableCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
  );
}

/**
 * Checks a code and reason we intend to send and returns the reason's UTF-8 byte length.
 * Throws RangeError for a code outside the sendable ranges or a reason over 123 bytes, and
 * TypeError for a reason that is not well-formed Unicode (a lone surrogate would become U+FFFD).
 */
export function checkSendableClose(code: number, reason: string): number {
  if (!isSendableCloseCode(code)) {
    throw new RangeError(
      `close code ${code} may not be sent: RFC 6455 §7.4 allows 1000-1003, 1007-1014 and 3000-4999`,
    );
  }
  if (typeof reason !== 'string') {
    throw new TypeError('close reason must be a string');
  }
  // RFC 6455 §5.5.1: the reason is UTF-8; a lone surrogate cannot be encoded faithfully.
  if (!reason.isWellFormed()) {
    throw new TypeError('close reason must be well-formed Unicode (it contains a lone surrogate)');
  }
  const length = Buffer.byteLength(reason, 'utf8');
  // RFC 6455 §5.5: a control frame payload is at most 125 bytes, 2 of which are the code.
  if (length > MAX_CLOSE_REASON_BYTES) {
    throw new RangeError(
      `close reason is ${length} bytes in UTF-8: RFC 6455 §5.5 allows at most ${MAX_CLOSE_REASON_BYTES}`,
    );
  }
  return length;
}
