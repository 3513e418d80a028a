/**
 * rfc6455: the user API (the server, the client, the connection, messages, exceptions, close codes). Everything
 * exported here is documented in README.md; nothing else is public. The sans-I/O building blocks
 * (frame parser and encoder, masking, UTF-8, handshake primitives, `Protocol`) are `rfc6455/protocol`.
 */
export { CloseCode } from './constants.ts';
export {
  WebSocketException,
  ProtocolError,
  UnsupportedData,
  InvalidPayloadData,
  PolicyViolation,
  SlowConsumer,
  MessageTooBig,
  InternalError,
  WebSocketDisconnect,
  HandshakeError,
  type CloseInitiator,
  type HttpHeaders,
} from './errors.ts';
export { Message } from './protocol/message.ts';
export { prepareMessage, PreparedMessage } from './protocol/frame-encoder.ts';
export type { AcceptOptions } from './handshake.ts';
export type { ConnectionOptions, ServerOptions, SlowConsumerPolicy } from './options.ts';
export { connect } from './client.ts';
export type { ClientOptions, ClientTlsOptions } from './client-options.ts';
export type { PerMessageDeflateOptions } from './protocol/permessage-deflate.ts';
export { WebSocket, type ConnectionState, type RequestInfo, type WebSocketEvents } from './websocket.ts';
export {
  WebSocketServer,
  serve,
  type Handler,
  type ListenOptions,
  type CloseOptions,
  type AttachOptions,
  type BroadcastResult,
} from './server.ts';
export type { Backplane, BackplaneHost, PublishOptions, PublishResult } from './topics.ts';
export { runWorkers, clusterBackplane, type WorkerPool, type WorkersOptions, type ClusterBackplaneOptions } from './cluster.ts';
export { redisBackplane, type RedisBackplaneOptions, type RedisClientLike, type RedisSubscriberLike } from './redis-backplane.ts';
