/**
 * The opening handshake as pure functions (RFC 6455 §4.2): request validation with the HTTP status of
 * each refusal, the accept key, subprotocol selection, the transport-neutral results and the exact
 * HTTP/1.1 bytes they serialise to.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HandshakeError } from '../src/index.ts';
import {
  acceptKey,
  acceptResponse,
  parseUpgradeRequest,
  refusalResponse,
  serializeResponse,
  selectSubprotocol,
  type RequestHead,
  type RequestHeaders,
  type UpgradeRequest,
} from '../src/protocol/index.ts';

/** The HTTP/1.1 bytes an HTTP/1.1 transport writes for the transport-neutral results. */
function accept(...args: Parameters<typeof acceptResponse>): string {
  return serializeResponse(acceptResponse(...args));
}

function refuse(error: HandshakeError): string {
  return serializeResponse(refusalResponse(error));
}


/** RFC 6455 §1.3 / §4.2.2: the sample nonce and its accept value. */
const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

const VALID_HEADERS: RequestHeaders = {
  host: 'server.example.com',
  upgrade: 'websocket',
  connection: 'Upgrade',
  'sec-websocket-key': RFC_KEY,
  origin: 'http://example.com',
  'sec-websocket-protocol': 'chat, superchat',
  'sec-websocket-version': '13',
};

function request(headers: RequestHeaders = {}, overrides: Partial<RequestHead> = {}): RequestHead {
  const merged: Record<string, string | readonly string[] | undefined> = { ...VALID_HEADERS, ...headers };
  for (const [name, value] of Object.entries(merged)) if (value === undefined) delete merged[name];
  return { method: 'GET', httpVersion: '1.1', headers: merged, ...overrides };
}

/** Asserts parseUpgradeRequest refuses with `status` (and returns the HandshakeError). */
function expectRefusal(head: RequestHead, status: number): HandshakeError {
  let thrown: unknown = null;
  try {
    parseUpgradeRequest(head);
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof HandshakeError, `expected HandshakeError ${status}, got ${String(thrown)}`);
  assert.equal(thrown.status, status, thrown.message);
  return thrown;
}

describe('acceptKey — RFC 6455 §1.3, §4.2.2', () => {
  test('the RFC sample: dGhlIHNhbXBsZSBub25jZQ== -> s3pPLMBiTxaQ9kYGzzhZRbK+xOo=', () => {
    assert.equal(acceptKey(RFC_KEY), RFC_ACCEPT);
  });

  test('another key (cross-checked with base64(SHA-1(key + GUID)))', () => {
    assert.equal(acceptKey('x3JJHMbDL1EzLkh9GBhXDw=='), 'HSmrc0sMlYUkAGmm5OPpG2HaGWk=');
  });
});

describe('parseUpgradeRequest — RFC 6455 §4.2.1', () => {
  test('a valid request (the RFC §1.3 example) is accepted with its fields', () => {
    const parsed = parseUpgradeRequest(request());
    assert.deepEqual(parsed, {
      key: RFC_KEY,
      protocols: ['chat', 'superchat'],
      extensions: [],
      origin: 'http://example.com',
      host: 'server.example.com',
    });
  });

  test('HTTP/2 and later versions, and a transport without a version, are accepted', () => {
    for (const httpVersion of ['1.1', '1.2', '2', '2.0', '3']) {
      assert.equal(parseUpgradeRequest(request({}, { httpVersion })).key, RFC_KEY, httpVersion);
    }
    const { httpVersion: _omitted, ...noVersion } = request();
    assert.equal(parseUpgradeRequest(noVersion).key, RFC_KEY);
  });

  test('a method other than GET is 405 with Allow: GET (item 1)', () => {
    for (const method of ['POST', 'PUT', 'HEAD', 'get', 'CONNECT']) {
      const error = expectRefusal(request({}, { method }), 405);
      assert.deepEqual(error.headers, { Allow: 'GET' });
    }
  });

  test('HTTP/1.0 (and 0.9) is 400 (item 1: HTTP/1.1 or higher)', () => {
    for (const httpVersion of ['1.0', '0.9', '1', 'x']) expectRefusal(request({}, { httpVersion }), 400);
  });

  test('a missing or wrong Upgrade header is 400 (item 3)', () => {
    expectRefusal(request({ upgrade: undefined }), 400);
    expectRefusal(request({ upgrade: 'h2c' }), 400);
    expectRefusal(request({ upgrade: 'websocketx' }), 400);
    expectRefusal(request({ upgrade: '' }), 400);
  });

  test('Upgrade is a case-insensitive token list (item 3)', () => {
    for (const upgrade of ['WebSocket', 'WEBSOCKET', 'h2c, websocket', ' websocket ']) {
      assert.equal(parseUpgradeRequest(request({ upgrade })).key, RFC_KEY, upgrade);
    }
  });

  test('Connection must include the Upgrade token, case-insensitively (item 4)', () => {
    for (const connection of ['keep-alive, Upgrade', 'UPGRADE', 'upgrade', 'Upgrade,keep-alive', ['keep-alive', 'Upgrade']]) {
      assert.equal(parseUpgradeRequest(request({ connection })).key, RFC_KEY, String(connection));
    }
    for (const connection of [undefined, 'keep-alive', 'upgradex', 'Upgrade-Insecure', 'close']) {
      expectRefusal(request({ connection }), 400);
    }
  });

  test('a missing or empty Host is 400 (item 2)', () => {
    expectRefusal(request({ host: undefined }), 400);
    expectRefusal(request({ host: '  ' }), 400);
  });

  test('a version other than 13, or none, is 426 with Sec-WebSocket-Version: 13 (§4.2.2, §4.4)', () => {
    for (const version of [undefined, '8', '12', '14', '', '13, 8']) {
      const error = expectRefusal(request({ 'sec-websocket-version': version }), 426);
      assert.deepEqual(error.headers, { 'Sec-WebSocket-Version': '13' });
    }
  });

  test('a key that is missing, not base64 of 16 bytes, or repeated is 400 (item 5)', () => {
    const fifteen = Buffer.alloc(15, 1).toString('base64');
    const seventeen = Buffer.alloc(17, 1).toString('base64');
    assert.equal(Buffer.from(fifteen, 'base64').length, 15);
    for (const key of [undefined, '', fifteen, seventeen, 'not base64 at all!!!!!==', 'dGhlIHNhbXBsZSBub25jZQ', '!GhlIHNhbXBsZSBub25jZQ==', [RFC_KEY, RFC_KEY]]) {
      expectRefusal(request({ 'sec-websocket-key': key }), 400);
    }
  });

  test('a key with surrounding whitespace is accepted trimmed', () => {
    assert.equal(parseUpgradeRequest(request({ 'sec-websocket-key': ` ${RFC_KEY} ` })).key, RFC_KEY);
  });

  test('subprotocols are parsed in the client order, from one or several header lines (§4.1 item 10)', () => {
    assert.deepEqual(parseUpgradeRequest(request({ 'sec-websocket-protocol': 'b, a ,c' })).protocols, ['b', 'a', 'c']);
    assert.deepEqual(parseUpgradeRequest(request({ 'sec-websocket-protocol': ['x', 'y, z'] })).protocols, ['x', 'y', 'z']);
    assert.deepEqual(parseUpgradeRequest(request({ 'sec-websocket-protocol': undefined })).protocols, []);
  });

  test('an invalid subprotocol token is 400', () => {
    for (const value of ['chat, bad value', 'a/b', 'x;y', '"quoted"', 'ü']) {
      expectRefusal(request({ 'sec-websocket-protocol': value }), 400);
    }
  });

  test('offered extensions are parsed in order with their parameters, names lower-cased (§9.1)', () => {
    const parsed = parseUpgradeRequest(
      request({ 'sec-websocket-extensions': ['permessage-deflate; Client_Max_Window_Bits', 'X-Custom; a="12"'] }),
    );
    assert.deepEqual(parsed.extensions, [
      { name: 'permessage-deflate', parameters: [{ name: 'client_max_window_bits', value: null }], malformed: false },
      { name: 'x-custom', parameters: [{ name: 'a', value: '12' }], malformed: false },
    ]);
  });

  test('a malformed Sec-WebSocket-Extensions never refuses the handshake (the offer is skipped later)', () => {
    const parsed = parseUpgradeRequest(request({ 'sec-websocket-extensions': 'permessage-deflate; =5, "' }));
    assert.equal(parsed.extensions[0]?.malformed, true);
  });

  test('checks run in a fixed order: the method is refused before anything else', () => {
    expectRefusal(request({ upgrade: undefined, 'sec-websocket-version': '8' }, { method: 'POST' }), 405);
    expectRefusal(request({ 'sec-websocket-key': undefined, 'sec-websocket-version': '8' }), 426);
  });
});

describe('selectSubprotocol — RFC 6455 §4.2.2 item 5.4', () => {
  test('picks the client’s most preferred supported subprotocol', () => {
    assert.equal(selectSubprotocol(['chat', 'superchat'], ['superchat', 'chat']), 'chat');
    assert.equal(selectSubprotocol(['v2', 'v1'], ['v1']), 'v1');
  });

  test('null when there is nothing in common, or nothing offered', () => {
    assert.equal(selectSubprotocol(['a'], ['b']), null);
    assert.equal(selectSubprotocol([], ['b']), null);
    assert.equal(selectSubprotocol(['a'], []), null);
  });

  test('comparison is exact (case-sensitive)', () => {
    assert.equal(selectSubprotocol(['Chat'], ['chat']), null);
  });
});

describe('acceptResponse — RFC 6455 §4.2.2 item 5', () => {
  const upgrade: UpgradeRequest = parseUpgradeRequest(request());

  test('exact bytes for the RFC key', () => {
    assert.equal(
      accept(upgrade),
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
        '\r\n',
    );
  });

  test('with a selected subprotocol and extra headers', () => {
    assert.equal(
      accept(upgrade, { subprotocol: 'chat', headers: { 'Set-Cookie': ['a=1', 'b=2'], 'X-Id': '7' } }),
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${RFC_ACCEPT}\r\n` +
        'Sec-WebSocket-Protocol: chat\r\n' +
        'Set-Cookie: a=1\r\n' +
        'Set-Cookie: b=2\r\n' +
        'X-Id: 7\r\n' +
        '\r\n',
    );
  });

  test('protocol null or undefined sends no Sec-WebSocket-Protocol', () => {
    assert.ok(!accept(upgrade, { subprotocol: null }).includes('Sec-WebSocket-Protocol'));
    assert.ok(!accept(upgrade, { subprotocol: undefined }).includes('Sec-WebSocket-Protocol'));
  });

  test('a subprotocol the client did not offer is a TypeError', () => {
    assert.throws(() => accept(upgrade, { subprotocol: 'other' }), TypeError);
  });

  test('header injection (CR, LF, NUL in a value; a bad name) is a TypeError', () => {
    for (const headers of [
      { 'X-A': 'v\r\nInjected: 1' },
      { 'X-A': 'v\nx' },
      { 'X-A': 'v\rx' },
      { 'X-A': ['ok', 'bad\r\n'] },
      { 'X-A': 'nul\0' },
      { 'Bad Name': 'v' },
      { 'X-A\r\nInjected': 'v' },
      { '': 'v' },
    ]) {
      assert.throws(() => accept(upgrade, { headers }), TypeError, JSON.stringify(headers));
    }
  });

  test('overriding a handshake header (Upgrade, Connection, Sec-WebSocket-*) is a TypeError', () => {
    for (const name of ['Upgrade', 'upgrade', 'Connection', 'Sec-WebSocket-Accept', 'sec-websocket-protocol', 'Sec-WebSocket-Extensions']) {
      assert.throws(() => accept(upgrade, { headers: { [name]: 'x' } }), TypeError, name);
    }
  });
});

describe('refusalResponse — RFC 6455 §4.2.1, §4.2.2', () => {
  /** Splits a response into status line, header map (lower-case names, values in order) and body. */
  function parseResponse(response: string): { status: string; headers: Map<string, string[]>; body: string } {
    const end = response.indexOf('\r\n\r\n');
    assert.ok(end > 0, 'the head ends with CRLF CRLF');
    const [status, ...lines] = response.slice(0, end).split('\r\n');
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
    }
    return { status: status!, headers, body: response.slice(end + 4) };
  }

  test('400: status line, Connection: close, Content-Length matching the body', () => {
    const response = refuse(new HandshakeError(400, 'Upgrade header must include "websocket"'));
    const { status, headers, body } = parseResponse(response);
    assert.equal(status, 'HTTP/1.1 400 Bad Request');
    assert.deepEqual(headers.get('connection'), ['close']);
    assert.equal(body, 'Upgrade header must include "websocket"\n');
    assert.deepEqual(headers.get('content-length'), [String(Buffer.byteLength(body))]);
  });

  test('Content-Length counts UTF-8 bytes of a non-ASCII reason', () => {
    const { headers, body } = parseResponse(refuse(new HandshakeError(403, 'verboten: Zugriff für Gäste')));
    assert.deepEqual(headers.get('content-length'), [String(Buffer.byteLength(body, 'utf8'))]);
    assert.notEqual(Buffer.byteLength(body), body.length);
  });

  test('an empty reason uses the status text as the body; an unknown status is "Error"', () => {
    const { status, body } = parseResponse(refuse(new HandshakeError(404)));
    assert.equal(status, 'HTTP/1.1 404 Not Found');
    assert.equal(body, 'Not Found\n');
    assert.equal(parseResponse(refuse(new HandshakeError(418))).status, 'HTTP/1.1 418 Error');
  });

  test('426 from a bad version carries Sec-WebSocket-Version: 13 and Upgrade: websocket', () => {
    const error = expectRefusal(request({ 'sec-websocket-version': '8' }), 426);
    const { status, headers } = parseResponse(refuse(error));
    assert.equal(status, 'HTTP/1.1 426 Upgrade Required');
    assert.deepEqual(headers.get('sec-websocket-version'), ['13']);
    assert.deepEqual(headers.get('upgrade'), ['websocket']);
    assert.deepEqual(headers.get('connection'), ['close']);
  });

  test('405 from a POST carries Allow: GET', () => {
    const error = expectRefusal(request({}, { method: 'POST' }), 405);
    const { status, headers } = parseResponse(refuse(error));
    assert.equal(status, 'HTTP/1.1 405 Method Not Allowed');
    assert.deepEqual(headers.get('allow'), ['GET']);
  });

  test('exact bytes of a simple refusal', () => {
    assert.equal(
      refuse(new HandshakeError(400, 'bad')),
      'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 4\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbad\n',
    );
  });

  test('header injection in a refusal header is a TypeError', () => {
    assert.throws(() => refuse(new HandshakeError(401, '', { 'WWW-Authenticate': 'Basic\r\nX: y' })), TypeError);
  });
});

describe('refusalResponse framing headers', () => {
  test('a caller cannot add a second Content-Length or Connection header', () => {
    const response = refuse(new HandshakeError(401, 'no', { 'Content-Length': '0', Connection: 'keep-alive', 'WWW-Authenticate': 'Bearer' }));
    assert.equal(response.match(/^content-length:/gim)?.length, 1);
    assert.equal(response.match(/^connection:/gim)?.length, 1);
    assert.match(response, /^Content-Length: 3\r\n/m);
    assert.match(response, /^WWW-Authenticate: Bearer\r\n/m);
  });
});

describe('transport-neutral results', () => {
  test('acceptResponse is { status: 101, headers, body: "" } with no HTTP/1.1 syntax in it', () => {
    const upgrade = parseUpgradeRequest(request({ 'sec-websocket-protocol': 'chat' }));
    const response = acceptResponse(upgrade, { subprotocol: 'chat', headers: { 'X-Id': '7' } }, 'permessage-deflate');
    assert.deepEqual(response, {
      status: 101,
      headers: {
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Accept': RFC_ACCEPT,
        'Sec-WebSocket-Protocol': 'chat',
        'Sec-WebSocket-Extensions': 'permessage-deflate',
        'X-Id': '7',
      },
      body: '',
    });
  });

  test('refusalResponse keeps the status, the caller\'s headers and the reason as the body; framing is the transport\'s', () => {
    const response = refusalResponse(new HandshakeError(401, 'log in', { 'WWW-Authenticate': 'Bearer', 'Content-Length': '9' }));
    assert.deepEqual(response, {
      status: 401,
      headers: { 'WWW-Authenticate': 'Bearer', 'Content-Type': 'text/plain; charset=utf-8' },
      body: 'log in\n',
    });
  });
});
