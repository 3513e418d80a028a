/**
 * HTTP/1.1 serialisation of the transport-neutral handshake results (RFC 7230 §3): the one place that
 * knows about status lines, CRLF and message framing. The handshake functions decide what to answer;
 * an HTTP/1.1 transport writes it with this, an HTTP/2 transport would answer on a stream instead.
 */
import type { HttpHeaders } from './errors.ts';
import type { HandshakeResponse } from './handshake.ts';

const STATUS_TEXT: Readonly<Record<number, string>> = {
  101: 'Switching Protocols',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** The HTTP reason phrase for a status, "Error" for one not in the table. */
export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? 'Error';
}

/** Header lines, one per value; names and values were checked by the handshake function that made them. */
export function formatHeaderLines(headers: HttpHeaders): string {
  let lines = '';
  for (const name in headers) {
    const value = headers[name]!;
    if (typeof value === 'string') lines += `${name}: ${value}\r\n`;
    else for (const item of value) lines += `${name}: ${item}\r\n`;
  }
  return lines;
}

/**
 * A handshake response as HTTP/1.1 bytes. A 101 is the head alone (the connection then speaks
 * WebSocket, RFC 6455 §4.2.2); any other status is a refusal: its body is framed by Content-Length and
 * the connection closes after it (`Connection: close`).
 */
export function serializeResponse(response: HandshakeResponse): string {
  const head = `HTTP/1.1 ${response.status} ${statusText(response.status)}\r\n`;
  if (response.status === 101) return head + formatHeaderLines(response.headers) + '\r\n';
  return (
    head +
    'Connection: close\r\n' +
    `Content-Length: ${Buffer.byteLength(response.body)}\r\n` +
    formatHeaderLines(response.headers) +
    '\r\n' +
    response.body
  );
}
