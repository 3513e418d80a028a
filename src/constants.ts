/**
 * Protocol constants: opcodes, close codes with their IANA names, the handshake GUID and the
 * defaults of every limit. Constants, not magic numbers.
 */

/** RFC 6455 §1.3: the GUID concatenated to Sec-WebSocket-Key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** RFC 6455 §5.2 / §11.8: frame opcodes. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;
export type Opcode = (typeof Opcode)[keyof typeof Opcode];

/**
 * RFC 6455 §7.4.1 and the IANA "WebSocket Close Code Number Registry".
 * 1005, 1006 and 1015 may be reported locally but never appear in a close frame.
 */
export const CloseCode = {
  NormalClosure: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  NoStatusReceived: 1005,
  AbnormalClosure: 1006,
  InvalidFramePayloadData: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  ServiceRestart: 1012,
  TryAgainLater: 1013,
  BadGateway: 1014,
  TLSHandshake: 1015,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** RFC 6455 §5.5: control frame payloads are at most 125 bytes. */
export const MAX_CONTROL_PAYLOAD = 125;

/** RFC 6455 §5.5.1: a close payload is a 2-byte code plus a reason, so the reason fits in 123 bytes. */
export const MAX_CLOSE_REASON_BYTES = 123;

/** Default largest message (all fragments together) accepted from a peer: 16 MiB. */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024;

/** Default largest single frame accepted from a peer (by default as large as a message). */
export const DEFAULT_MAX_FRAME_SIZE = DEFAULT_MAX_MESSAGE_SIZE;
