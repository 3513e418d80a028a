/**
 * The HTTP/2 opening handshake (RFC 8441) as pure functions: which requests are extended CONNECTs for
 * a WebSocket, the status of each refusal (including the pseudo-headers node:http2's client cannot
 * leave out), the 200 that accepts one, and the header block a response becomes on a stream.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HandshakeError } from '../src/index.ts';
import {
  acceptResponse,
  isWebSocketConnect,
  parseConnectRequest,
  parseUpgradeRequest,
  refusalResponse,
  streamResponseHeaders,
  type RequestHeaders,
} from '../src/protocol/index.ts';

const CONNECT: RequestHeaders = {
  ':method': 'CONNECT',
  ':protocol': 'websocket',
  ':scheme': 'https',
  ':path': '/chat?room=1',
  ':authority': 'server.example.com',
  'sec-websocket-version': '13',
  'sec-websocket-protocol': 'chat, superchat',
  'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
  origin: 'https://example.com',
};

function without(name: string): RequestHeaders {
  const headers: Record<string, string | readonly string[] | undefined> = { ...CONNECT };
  delete headers[name];
  return headers;
}

/** The HandshakeError a request is refused with (fails when it is not refused). */
function refusal(headers: RequestHeaders): HandshakeError {
  try {
    parseConnectRequest(headers);
  } catch (error) {
    assert.ok(error instanceof HandshakeError, `a HandshakeError, not ${String(error)}`);
    return error;
  }
  assert.fail('the request was accepted');
}

describe('isWebSocketConnect (RFC 8441 §4)', () => {
  test('only :method CONNECT with :protocol websocket is a WebSocket', () => {
    assert.equal(isWebSocketConnect(CONNECT), true);
    assert.equal(isWebSocketConnect(without(':protocol')), false, 'a plain CONNECT (RFC 9113 §8.5)');
    assert.equal(isWebSocketConnect({ ...CONNECT, ':protocol': 'webtransport' }), false);
    assert.equal(isWebSocketConnect({ ...CONNECT, ':protocol': 'WebSocket' }), false, 'the token is compared exactly');
    assert.equal(isWebSocketConnect({ ...CONNECT, ':method': 'GET' }), false);
  });
});

describe('parseConnectRequest', () => {
  test('a valid extended CONNECT: no key, :authority as the host, the offers as on HTTP/1.1', () => {
    const request = parseConnectRequest(CONNECT);
    assert.equal(request.key, null);
    assert.equal(request.host, 'server.example.com');
    assert.deepEqual(request.protocols, ['chat', 'superchat']);
    assert.deepEqual(
      request.extensions.map((offer) => offer.name),
      ['permessage-deflate'],
    );
    assert.equal(request.origin, 'https://example.com');
  });

  test('no Sec-WebSocket-Key is needed, and one sent anyway is ignored', () => {
    assert.equal(parseConnectRequest({ ...CONNECT, 'sec-websocket-key': 'not base64 at all' }).key, null);
  });

  test('405 with Allow: CONNECT for anything but an extended CONNECT for websocket', () => {
    for (const headers of [without(':protocol'), { ...CONNECT, ':protocol': 'other' }, { ...CONNECT, ':method': 'GET' }]) {
      const error = refusal(headers);
      assert.equal(error.status, 405);
      assert.deepEqual(error.headers, { Allow: 'CONNECT' });
    }
  });

  test('400 without :scheme, :path or :authority, or with an empty one (node:http2 cannot send these)', () => {
    for (const name of [':scheme', ':path', ':authority']) {
      const missing = refusal(without(name));
      assert.equal(missing.status, 400, name);
      assert.equal(missing.reason, `${name} is required`);
      assert.equal(refusal({ ...CONNECT, [name]: '' }).status, 400, `empty ${name}`);
      assert.equal(refusal({ ...CONNECT, [name]: '  ' }).status, 400, `blank ${name}`);
    }
  });

  test('426 with Sec-WebSocket-Version: 13 for another version or none, as on HTTP/1.1', () => {
    for (const headers of [{ ...CONNECT, 'sec-websocket-version': '8' }, without('sec-websocket-version')]) {
      const error = refusal(headers);
      assert.equal(error.status, 426);
      assert.deepEqual(error.headers, { 'Sec-WebSocket-Version': '13' });
    }
  });

  test('400 for a subprotocol that is not a token, as on HTTP/1.1', () => {
    assert.equal(refusal({ ...CONNECT, 'sec-websocket-protocol': 'chat, bad value' }).status, 400);
  });

  test('the HTTP/1.1 parser refuses an extended CONNECT: the two are not interchangeable', () => {
    assert.throws(() => parseUpgradeRequest({ method: 'CONNECT', headers: CONNECT }), (error: unknown) => {
      return error instanceof HandshakeError && error.status === 405;
    });
  });
});

describe('acceptResponse over HTTP/2 (RFC 8441 §5)', () => {
  const request = parseConnectRequest(CONNECT);

  test('200 with no Upgrade, Connection or Sec-WebSocket-Accept, and an empty body', () => {
    assert.deepEqual(acceptResponse(request), { status: 200, headers: {}, body: '' });
  });

  test('the subprotocol, the extensions and extra headers are kept', () => {
    const response = acceptResponse(request, { subprotocol: 'superchat', headers: { 'Set-Cookie': 'a=1' } }, 'permessage-deflate');
    assert.equal(response.status, 200);
    assert.deepEqual(response.headers, {
      'Sec-WebSocket-Protocol': 'superchat',
      'Sec-WebSocket-Extensions': 'permessage-deflate',
      'Set-Cookie': 'a=1',
    });
  });

  test('a connection-specific header is a TypeError on HTTP/2 (RFC 9113 §8.2.2)', () => {
    for (const name of ['Keep-Alive', 'transfer-encoding', 'Proxy-Connection']) {
      assert.throws(() => acceptResponse(request, { headers: { [name]: 'x' } }), TypeError, name);
    }
    for (const name of ['Upgrade', 'Connection', 'Sec-WebSocket-Accept']) {
      assert.throws(() => acceptResponse(request, { headers: { [name]: 'x' } }), TypeError, name);
    }
  });

  test('a subprotocol the client did not offer is a TypeError', () => {
    assert.throws(() => acceptResponse(request, { subprotocol: 'mqtt' }), TypeError);
  });
});

describe('streamResponseHeaders', () => {
  test('an acceptance: :status 200, lower-case names, no content-length', () => {
    const response = acceptResponse(parseConnectRequest(CONNECT), { subprotocol: 'chat', headers: { 'X-Trace': ['a', 'b'] } });
    assert.deepEqual(streamResponseHeaders(response), { ':status': 200, 'sec-websocket-protocol': 'chat', 'x-trace': ['a', 'b'] });
  });

  test('a 426 keeps Sec-WebSocket-Version but drops Upgrade (an HTTP/1.1 mechanism), with the body length', () => {
    const response = refusalResponse(new HandshakeError(426, 'Sec-WebSocket-Version must be 13', { 'Sec-WebSocket-Version': '13' }));
    assert.equal(response.headers['Upgrade'], 'websocket', 'the transport-neutral result has it, for HTTP/1.1');
    assert.deepEqual(streamResponseHeaders(response), {
      ':status': 426,
      'sec-websocket-version': '13',
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength('Sec-WebSocket-Version must be 13\n'),
    });
  });

  test('a refusal with a multi-byte reason: content-length counts bytes', () => {
    const response = refusalResponse(new HandshakeError(403, 'interdit – non'));
    assert.equal(streamResponseHeaders(response)['content-length'], Buffer.byteLength('interdit – non\n'));
    assert.notEqual(Buffer.byteLength('interdit – non\n'), 'interdit – non\n'.length);
  });

  test('caller headers that frame the message or are connection-specific never reach the block', () => {
    const response = refusalResponse(
      new HandshakeError(401, 'no', { Connection: 'keep-alive', 'Content-Length': '99', 'Keep-Alive': 'timeout=5', 'WWW-Authenticate': 'Bearer' }),
    );
    assert.deepEqual(streamResponseHeaders(response), {
      ':status': 401,
      'www-authenticate': 'Bearer',
      'content-type': 'text/plain; charset=utf-8',
      'content-length': 3,
    });
  });
});
