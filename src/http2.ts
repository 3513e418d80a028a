/**
 * HTTP/2 serialisation of the transport-neutral handshake results, next to `http1.ts`: a response
 * becomes the header block of `stream.respond()` (RFC 9113 §8.3.2: `:status` and lower-case names),
 * without the fields HTTP/2 forbids, and its body is the stream's DATA (RFC 8441 §5). Also the two
 * ways a stream is answered with one: accepted (the headers alone) or refused (headers, body, end).
 */
import { constants, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { CONNECTION_SPECIFIC_HEADERS, type HandshakeResponse } from './handshake.ts';

/**
 * The header block answering an extended CONNECT. A refusal keeps its status and fields but drops the
 * connection-specific ones (the `Upgrade: websocket` of a 426 names an HTTP/1.1 mechanism, RFC 9113
 * §8.2.2); its body goes out as DATA with END_STREAM.
 */
export function streamResponseHeaders(response: HandshakeResponse): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ':status': response.status };
  for (const name in response.headers) {
    const lower = name.toLowerCase();
    if (CONNECTION_SPECIFIC_HEADERS.has(lower)) continue;
    const value = response.headers[name]!;
    headers[lower] = typeof value === 'string' ? value : [...value];
  }
  if (response.body !== '') headers['content-length'] = Buffer.byteLength(response.body);
  return headers;
}

/**
 * Sends a response's header block on a stream; false when the stream is already gone (a peer's
 * RST_STREAM arrives before Node emits 'close', and respond() would throw) or was answered.
 */
export function respondOnStream(stream: ServerHttp2Stream, response: HandshakeResponse): boolean {
  if (stream.destroyed || stream.headersSent) return false;
  stream.respond(streamResponseHeaders(response));
  return true;
}

/**
 * Answers a stream with a complete refusal: the header block, the body with END_STREAM, then
 * RST_STREAM(NO_ERROR) once that is out (RFC 9113 §8.1: the rest of the request is not wanted).
 * False when the stream was already gone.
 */
export function refuseOnStream(stream: ServerHttp2Stream, response: HandshakeResponse): boolean {
  if (!respondOnStream(stream, response)) return false;
  stream.end(response.body);
  stream.close(constants.NGHTTP2_NO_ERROR);
  return true;
}
