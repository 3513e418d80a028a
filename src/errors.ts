/**
 * The exception hierarchy. Every error the library raises carries what goes on the wire: a close code
 * (WebSocketException and its subclasses) or an HTTP status (HandshakeError).
 *
 * Modelled on Starlette/FastAPI: `WebSocketException(code, reason)` is raised to close a connection
 * (by a handler, or by the protocol core on a violation), and `WebSocketDisconnect(code, reason)` is
 * what receiving raises once the peer has gone. Unlike Starlette, the code and reason are validated
 * when the exception is made, with the same rules as `encodeClose`.
 */
import { CloseCode } from './constants.ts';
import { checkSendableClose } from './protocol/close-rules.ts';

/** Closes the connection with `code` and `reason`; before the handshake is accepted, refuses it with 403. */
export class WebSocketException extends Error {
  readonly code: number;
  readonly reason: string;

  constructor(code: number, reason = '') {
    checkSendableClose(code, reason);
    super(reason === '' ? `WebSocket closed with code ${code}` : `WebSocket closed with code ${code}: ${reason}`);
    this.name = new.target.name;
    this.code = code;
    this.reason = reason;
  }
}

/** RFC 6455 §7.4.1 1002: the peer broke the framing or the protocol state machine. */
export class ProtocolError extends WebSocketException {
  constructor(reason = 'protocol error') {
    super(CloseCode.ProtocolError, reason);
  }
}

/** RFC 6455 §7.4.1 1003: a data type the endpoint cannot accept (e.g. binary for a text-only endpoint). */
export class UnsupportedData extends WebSocketException {
  constructor(reason = 'unsupported data') {
    super(CloseCode.UnsupportedData, reason);
  }
}

/** RFC 6455 §7.4.1 1007: data inconsistent with the message type, e.g. invalid UTF-8 in a text message. */
export class InvalidPayloadData extends WebSocketException {
  constructor(reason = 'invalid payload data') {
    super(CloseCode.InvalidFramePayloadData, reason);
  }
}

/** RFC 6455 §7.4.1 1008: a message or request that violates the endpoint's policy. */
export class PolicyViolation extends WebSocketException {
  constructor(reason = 'policy violation') {
    super(CloseCode.PolicyViolation, reason);
  }
}

/**
 * RFC 6455 §7.4.1 1008, for a peer that does not read what is sent to it: raised by a send that found
 * the connection's output over `maxBufferedAmount`, and the reason the connection is closed with under
 * the `slowConsumer: 'close'` policy.
 */
export class SlowConsumer extends PolicyViolation {
  constructor(reason = 'slow consumer') {
    super(reason);
  }
}

/** RFC 6455 §7.4.1 1009: a frame or message larger than the endpoint accepts. */
export class MessageTooBig extends WebSocketException {
  constructor(reason = 'message too big') {
    super(CloseCode.MessageTooBig, reason);
  }
}

/** RFC 6455 §7.4.1 1011: an unexpected condition; the wire never carries internal detail. */
export class InternalError extends WebSocketException {
  constructor(reason = 'internal error') {
    super(CloseCode.InternalError, reason);
  }
}

/**
 * Who ended a connection: `peer` sent the first close frame; `local` means this endpoint did (the
 * application closed, or the connection was failed on a violation, a slow consumer, a timeout);
 * `transport` means the byte stream ended with no close frame either way (RFC 6455 §7.1.5: 1006).
 */
export type CloseInitiator = 'peer' | 'local' | 'transport';

/**
 * Raised by receive (and by send) once the connection is closed, with the code and reason of the
 * first close frame and who sent it (`initiator`): the peer's (1005 when its frame had no code), this
 * side's (`local`: the code it sent, 1002/1007/1009 after a violation by the peer), or 1006 when the
 * TCP connection ended without a close frame (`transport`; `cause` holds the socket error, if any).
 * Not validated: 1005 and 1006 are local reports that never go on the wire.
 */
export class WebSocketDisconnect extends Error {
  readonly code: number;
  readonly reason: string;
  readonly initiator: CloseInitiator;

  constructor(code: number = CloseCode.NormalClosure, reason = '', initiator: CloseInitiator = 'peer', cause?: unknown) {
    const by = initiator === 'local' ? 'closed by this side' : initiator === 'peer' ? 'closed by the peer' : 'connection lost';
    super(
      reason === '' ? `WebSocket ${by} with code ${code}` : `WebSocket ${by} with code ${code}: ${reason}`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'WebSocketDisconnect';
    this.code = code;
    this.reason = reason;
    this.initiator = initiator;
  }
}

/** HTTP header fields to add to a handshake refusal (for example `Sec-WebSocket-Version` with 426). */
export type HttpHeaders = Record<string, string | readonly string[]>;

/**
 * An opening handshake that did not happen, with its HTTP status (RFC 6455 §4.1, §4.2).
 *
 * On the server: a refusal, raised by the handshake primitives and by a handler or hook to refuse with
 * any error status (401, 403, 429...); `body` is null and the reason is sent as the body.
 *
 * On the client: `connect()` rejects with it when the server's answer was not an acceptable 101 (a
 * refusal, a redirect, a 101 that fails the checks of §4.1). `status`, `headers` and `body` are then
 * what the server sent, so a 401/403/404/503 is readable by the caller.
 */
export class HandshakeError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly headers: HttpHeaders;
  /** The response body the server sent (client side; null on the server side). */
  readonly body: Buffer | null;

  /**
   * `status` is an HTTP status: 400-599 for a refusal made here; `connect()` also reports the 1xx-3xx
   * it received (a redirect, a 200, a 101 that failed verification).
   */
  constructor(status: number, reason = '', headers: HttpHeaders = {}, body: Buffer | null = null) {
    const valid = Number.isInteger(status) && (body === null ? status >= 400 : status >= 100) && status <= 599;
    if (!valid) {
      throw new RangeError(`handshake refusal status must be an HTTP error status (400-599), got ${status}`);
    }
    super(reason === '' ? `handshake refused with HTTP ${status}` : `handshake refused with HTTP ${status}: ${reason}`);
    this.name = 'HandshakeError';
    this.status = status;
    this.reason = reason;
    this.headers = headers;
    this.body = body;
  }
}
