/**
 * rfc6455/protocol: the sans-I/O building blocks under the server, for clients, proxies, other
 * transports and tests. No sockets and no timers: bytes in, events and bytes out.
 */
export { CloseCode, Opcode, WEBSOCKET_GUID, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_FRAME_SIZE } from '../constants.ts';
export { mask, unmask } from './mask.ts';
export { isValidUtf8, Utf8Validator } from './utf8.ts';
export { encodeClose, decodeClose, type CloseInfo } from './close.ts';
export { isSendableCloseCode } from './close-rules.ts';
export { FrameParser, type FrameHandler, type FrameParserOptions, type Role } from './frame-parser.ts';
export {
  encodeFrame,
  encodeTextFrame,
  encodeFragmented,
  prepareMessage,
  PreparedMessage,
  type FrameSink,
} from './frame-encoder.ts';
export { Message } from './message.ts';
export { parseExtensionHeader, formatExtension, type ExtensionOffer, type ExtensionParameter } from './extension-header.ts';
export {
  negotiateDeflate,
  deflateOffer,
  acceptDeflateResponse,
  resolveDeflateOptions,
  PERMESSAGE_DEFLATE,
  type PerMessageDeflateOptions,
  type DeflateSettings,
  type DeflateParameters,
  type DeflateAgreement,
} from './permessage-deflate.ts';
export { PerMessageDeflate } from './deflate-codec.ts';
export {
  Protocol,
  type ProtocolOptions,
  type ProtocolSink,
  type ProtocolEvent,
  type ProtocolState,
  type CloseEvent,
} from './protocol.ts';
export {
  parseUpgradeRequest,
  parseConnectRequest,
  isWebSocketConnect,
  acceptKey,
  selectSubprotocol,
  acceptResponse,
  refusalResponse,
  type AcceptOptions,
  type HandshakeResponse,
  type RequestHead,
  type RequestHeaders,
  type UpgradeRequest,
} from '../handshake.ts';
export {
  clientRequest,
  verifyResponse,
  generateKey,
  parseWebSocketUrl,
  type ClientRequest,
  type ClientRequestOptions,
  type ClientAgreement,
  type ReceivedResponse,
} from '../client-handshake.ts';
export { serializeResponse } from '../http1.ts';
export { streamResponseHeaders } from '../http2.ts';
export type { CloseInitiator } from '../errors.ts';
