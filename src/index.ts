/**
 * rfc6455: the public API. Everything exported here is documented in README.md; nothing else is public.
 */
export { CloseCode, Opcode, WEBSOCKET_GUID, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_FRAME_SIZE } from './constants.ts';
export {
  WebSocketException,
  ProtocolError,
  UnsupportedData,
  InvalidPayloadData,
  PolicyViolation,
  MessageTooBig,
  InternalError,
  WebSocketDisconnect,
  HandshakeError,
  type HttpHeaders,
} from './errors.ts';
export { mask, unmask } from './protocol/mask.ts';
export { isValidUtf8, Utf8Validator } from './protocol/utf8.ts';
export { encodeClose, decodeClose, type CloseInfo } from './protocol/close.ts';
export { isSendableCloseCode } from './protocol/close-rules.ts';
export { FrameParser, type FrameHandler, type FrameParserOptions, type Role } from './protocol/frame-parser.ts';
export { encodeFrame, encodeTextFrame, encodeFragmented, type FrameSink } from './protocol/frame-encoder.ts';
export { Message } from './protocol/message.ts';
export {
  Protocol,
  type ProtocolOptions,
  type ProtocolSink,
  type ProtocolEvent,
  type ProtocolState,
  type CloseEvent,
} from './protocol/protocol.ts';
export {
  parseUpgradeRequest,
  acceptKey,
  selectSubprotocol,
  acceptResponse,
  refusalResponse,
  type RequestHead,
  type RequestHeaders,
  type UpgradeRequest,
  type AcceptOptions,
} from './handshake.ts';
export {
  WebSocket,
  type AcceptOptions as WebSocketAcceptOptions,
  type ConnectionState,
  type RequestInfo,
} from './connection.ts';
export {
  WebSocketServer,
  serve,
  type Handler,
  type ServerOptions,
  type ListenOptions,
  type CloseOptions,
  type AttachOptions,
} from './server.ts';
export { prepareMessage, type PreparedMessage } from './protocol/frame-encoder.ts';
