/**
 * HTTP/2 serialisation of the transport-neutral handshake results, next to `http1.ts`: a response
 * becomes the header block of `stream.respond()` (RFC 9113 §8.3.2: `:status` and lower-case names),
 * without the fields HTTP/2 forbids, and its body is the stream's DATA (RFC 8441 §5).
 */
import type { OutgoingHttpHeaders } from 'node:http2';
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
