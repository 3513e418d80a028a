/**
 * The client side of the opening handshake as pure functions (RFC 6455 §4.1), without a network:
 * `clientRequest` (the WebSocket URI of §3, the key, the offered subprotocols and extensions, header
 * safety), `verifyResponse` (every check §4.1 asks of the server's response, each failure a
 * HandshakeError carrying the response), and the client half of the permessage-deflate negotiation
 * (`deflateOffer`, `acceptDeflateResponse`, RFC 7692 §5 and §7.1).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HandshakeError } from '../src/index.ts';
import {
  acceptDeflateResponse,
  acceptKey,
  clientRequest,
  deflateOffer,
  parseExtensionHeader,
  resolveDeflateOptions,
  verifyResponse,
  type ClientAgreement,
  type ClientRequest,
  type ClientRequestOptions,
  type DeflateParameters,
  type DeflateSettings,
  type PerMessageDeflateOptions,
  type ReceivedResponse,
  type RequestHeaders,
} from '../src/protocol/index.ts';

/** RFC 6455 §1.3: the sample nonce and its accept value. */
const RFC_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const RFC_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** Base64 of exactly 16 bytes (RFC 6455 §4.1 item 7). */
const KEY_SHAPE = /^[A-Za-z0-9+/]{22}==$/;

const EMPTY = Buffer.alloc(0);

function settings(options: PerMessageDeflateOptions = {}): DeflateSettings {
  return resolveDeflateOptions(options)!;
}

/** A request as `clientRequest` builds it, with the RFC's sample key in place of the random one. */
function requestWithKey(url = 'ws://server.example.com/chat', options: ClientRequestOptions = {}): ClientRequest {
  return { ...clientRequest(url, options), key: RFC_KEY };
}

/** A valid 101 for the RFC key; `headers` adds or (with undefined) removes fields (lower-case names, as Node gives them). */
function response(headers: RequestHeaders = {}, status = 101, body: Buffer = EMPTY): ReceivedResponse {
  const merged: Record<string, string | readonly string[] | undefined> = {
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-accept': RFC_ACCEPT,
    ...headers,
  };
  for (const [name, value] of Object.entries(merged)) if (value === undefined) delete merged[name];
  return { status, headers: merged, body };
}

/** Asserts verifyResponse refuses with a HandshakeError of `status` whose reason matches `reason`. */
function expectFailure(received: ReceivedResponse, request: ClientRequest, status: number, reason?: RegExp): HandshakeError {
  let thrown: unknown = null;
  try {
    verifyResponse(received, request);
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown instanceof HandshakeError, `expected HandshakeError ${status}, got ${String(thrown)}`);
  assert.equal(thrown.status, status, thrown.message);
  if (reason !== undefined) assert.match(thrown.reason, reason);
  return thrown;
}

function verify(received: ReceivedResponse, request: ClientRequest = requestWithKey()): ClientAgreement {
  return verifyResponse(received, request);
}

/** The permessage-deflate element of a response header value. */
function element(value: string): ReturnType<typeof parseExtensionHeader>[number] {
  const elements = parseExtensionHeader(value);
  assert.equal(elements.length, 1, `one element in ${JSON.stringify(value)}`);
  return elements[0]!;
}

/** acceptDeflateResponse for a response header value; asserts it agrees and returns the parameters. */
function agreed(value: string, offered: DeflateSettings): DeflateParameters {
  const result = acceptDeflateResponse(element(value), offered);
  assert.ok(typeof result !== 'string', `${JSON.stringify(value)} was refused: ${String(result)}`);
  return result;
}

/** acceptDeflateResponse for a response header value; asserts it is refused and returns the reason. */
function refused(value: string, offered: DeflateSettings): string {
  const result = acceptDeflateResponse(element(value), offered);
  assert.equal(typeof result, 'string', `${JSON.stringify(value)} was accepted: ${JSON.stringify(result)}`);
  return result as string;
}

describe('clientRequest — the WebSocket URI (RFC 6455 §3, §4.1 items 1, 3, 4)', () => {
  test('ws: is plain on port 80, wss: is secure on port 443; the default port is left out of Host', () => {
    const plain = clientRequest('ws://example.com/chat');
    assert.deepEqual(
      [plain.secure, plain.hostname, plain.port, plain.path, plain.headers['Host']],
      [false, 'example.com', 80, '/chat', 'example.com'],
    );
    const secure = clientRequest('wss://example.com/chat');
    assert.deepEqual(
      [secure.secure, secure.hostname, secure.port, secure.path, secure.headers['Host']],
      [true, 'example.com', 443, '/chat', 'example.com'],
    );
    // A default port written out is still the default: not repeated in Host.
    assert.equal(clientRequest('ws://example.com:80/').headers['Host'], 'example.com');
    assert.equal(clientRequest('wss://example.com:443/').headers['Host'], 'example.com');
  });

  test('a port other than the default is used and named in Host (item 4)', () => {
    const request = clientRequest('ws://example.com:8080/');
    assert.equal(request.port, 8080);
    assert.equal(request.headers['Host'], 'example.com:8080');
    const secure = clientRequest('wss://example.com:8443/');
    assert.deepEqual([secure.port, secure.headers['Host']], [8443, 'example.com:8443']);
    // Port 443 is not the default of ws:, nor 80 of wss:.
    assert.equal(clientRequest('ws://example.com:443/').headers['Host'], 'example.com:443');
    assert.equal(clientRequest('wss://example.com:80/').headers['Host'], 'example.com:80');
  });

  test('http: is taken as ws: and https: as wss: (as browsers do)', () => {
    const plain = clientRequest('http://example.com/a');
    assert.deepEqual([plain.url.protocol, plain.secure, plain.port], ['ws:', false, 80]);
    const secure = clientRequest('https://example.com/a');
    assert.deepEqual([secure.url.protocol, secure.secure, secure.port], ['wss:', true, 443]);
  });

  test('a URL object is accepted as well as a string', () => {
    const request = clientRequest(new URL('ws://example.com:9000/x?y=1'));
    assert.deepEqual([request.hostname, request.port, request.path], ['example.com', 9000, '/x?y=1']);
  });

  test('an IPv6 literal: hostname without brackets (to connect), Host with them (item 4)', () => {
    const withPort = clientRequest('ws://[::1]:8080/x');
    assert.equal(withPort.hostname, '::1');
    assert.equal(withPort.port, 8080);
    assert.equal(withPort.headers['Host'], '[::1]:8080');
    const defaultPort = clientRequest('wss://[2001:db8::7]/');
    assert.equal(defaultPort.hostname, '2001:db8::7');
    assert.equal(defaultPort.port, 443);
    assert.equal(defaultPort.headers['Host'], '[2001:db8::7]');
  });

  test('the request target is the path and the query (item 3: the resource name); "/" when there is no path', () => {
    assert.equal(clientRequest('ws://example.com/a/b?x=1&y=2').path, '/a/b?x=1&y=2');
    assert.equal(clientRequest('ws://example.com').path, '/');
    assert.equal(clientRequest('ws://example.com/').path, '/');
    assert.equal(clientRequest('ws://example.com?q=1').path, '/?q=1');
    assert.equal(clientRequest('ws://example.com/a%20b').path, '/a%20b');
  });

  test('a fragment is refused, even an empty one (§3: fragments MUST NOT be used)', () => {
    for (const url of ['ws://example.com/#frag', 'ws://example.com/chat#', 'wss://example.com/?q=1#x']) {
      assert.throws(() => clientRequest(url), TypeError, url);
    }
  });

  test('user information is refused: the ws-URI grammar has none (§3)', () => {
    for (const url of ['ws://user:secret@example.com/', 'wss://user@example.com/', 'ws://:secret@example.com/']) {
      assert.throws(() => clientRequest(url), /user information/, url);
    }
  });

  test('other schemes and invalid URLs are refused with TypeError', () => {
    for (const url of ['ftp://example.com/', 'file:///etc/passwd', 'mailto:a@example.com', 'javascript:alert(1)', 'example.com', 'not a url', 'ws://', '']) {
      assert.throws(() => clientRequest(url), TypeError, url);
    }
  });
});

describe('clientRequest — the request headers (RFC 6455 §4.1 items 4–12)', () => {
  test('the handshake headers, Host first, and nothing else by default', () => {
    const request = clientRequest('ws://example.com/chat');
    assert.deepEqual(Object.keys(request.headers), ['Host', 'Upgrade', 'Connection', 'Sec-WebSocket-Key', 'Sec-WebSocket-Version']);
    assert.equal(request.headers['Upgrade'], 'websocket');
    assert.equal(request.headers['Connection'], 'Upgrade');
    assert.equal(request.headers['Sec-WebSocket-Version'], '13');
    assert.equal(request.headers['Sec-WebSocket-Key'], request.key);
    assert.deepEqual(request.subprotocols, []);
    assert.equal(request.deflate, null);
  });

  test('the key is base64 of 16 bytes, fresh on every call (item 7)', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const { key } = clientRequest('ws://example.com/');
      assert.match(key, KEY_SHAPE);
      assert.equal(Buffer.from(key, 'base64').length, 16);
      keys.add(key);
    }
    assert.equal(keys.size, 100, 'no key repeats');
  });

  test('subprotocols are offered in order in one header (item 10)', () => {
    const request = clientRequest('ws://example.com/', { subprotocols: ['v2.chat', 'chat'] });
    assert.equal(request.headers['Sec-WebSocket-Protocol'], 'v2.chat, chat');
    assert.deepEqual(request.subprotocols, ['v2.chat', 'chat']);
    assert.equal(clientRequest('ws://example.com/', { subprotocols: [] }).headers['Sec-WebSocket-Protocol'], undefined);
  });

  test('a subprotocol that is not a token is refused (item 10: 1#token)', () => {
    for (const protocol of ['', 'a b', 'a,b', 'chat;v=1', '"chat"', 'a/b', 'ü', 'x\r\ny']) {
      assert.throws(() => clientRequest('ws://example.com/', { subprotocols: [protocol] }), TypeError, JSON.stringify(protocol));
    }
  });

  test('a subprotocol offered twice is refused (item 10: "MUST all be unique")', () => {
    assert.throws(() => clientRequest('ws://example.com/', { subprotocols: ['chat', 'other', 'chat'] }), TypeError);
  });

  test('extra headers are sent after the handshake headers', () => {
    const request = clientRequest('ws://example.com/', { headers: { Authorization: 'Bearer t', Cookie: ['a=1', 'b=2'] } });
    assert.equal(request.headers['Authorization'], 'Bearer t');
    assert.deepEqual(request.headers['Cookie'], ['a=1', 'b=2']);
    assert.deepEqual(Object.keys(request.headers).slice(-2), ['Authorization', 'Cookie']);
  });

  test('a header of the handshake cannot be set by the caller, whatever its case', () => {
    const names = [
      'Host',
      'host',
      'HOST',
      'Upgrade',
      'CONNECTION',
      'Sec-WebSocket-Key',
      'sec-websocket-key',
      'Sec-WebSocket-Version',
      'SEC-WEBSOCKET-PROTOCOL',
      'sec-WebSocket-Extensions',
    ];
    for (const name of names) {
      assert.throws(() => clientRequest('ws://example.com/', { headers: { [name]: 'x' } }), TypeError, name);
    }
  });

  test('CR, LF or NUL in a header value or name, or a name that is not a token, is refused (request splitting)', () => {
    for (const headers of [
      { 'X-A': 'v\r\nInjected: 1' },
      { 'X-A': 'v\nx' },
      { 'X-A': 'v\rx' },
      { 'X-A': 'nul\0' },
      { 'X-A': ['ok', 'bad\r\nX: y'] },
      { 'X-A\r\nInjected': 'v' },
      { 'Bad Name': 'v' },
      { '': 'v' },
    ]) {
      assert.throws(() => clientRequest('ws://example.com/', { headers }), TypeError, JSON.stringify(headers));
    }
  });

  test('Origin is sent when given (item 8), and checked like any header', () => {
    assert.equal(clientRequest('ws://example.com/', { origin: 'https://app.example.com' }).headers['Origin'], 'https://app.example.com');
    assert.equal(clientRequest('ws://example.com/').headers['Origin'], undefined);
    assert.throws(() => clientRequest('ws://example.com/', { origin: 'https://a.example\r\nX-Injected: 1' }), TypeError);
  });

  test('the permessage-deflate offer is one element in Sec-WebSocket-Extensions (item 11, RFC 7692 §5)', () => {
    const request = clientRequest('ws://example.com/', { deflate: settings() });
    assert.equal(request.headers['Sec-WebSocket-Extensions'], 'permessage-deflate; server_no_context_takeover; client_max_window_bits');
    assert.deepEqual(request.deflate, settings());
    assert.equal(clientRequest('ws://example.com/', { deflate: null }).headers['Sec-WebSocket-Extensions'], undefined);
  });
});

describe('verifyResponse — the status (RFC 6455 §4.1, response item 1)', () => {
  test('a valid 101 for the RFC key is accepted: no subprotocol, no extension', () => {
    assert.deepEqual(verify(response()), { subprotocol: null, extensions: '', deflate: null });
  });

  test('a status other than 101 is a HandshakeError with that status, the headers and the body', () => {
    const body = Buffer.from('go away');
    for (const status of [200, 400, 401, 403, 404, 426, 500, 503]) {
      const received: ReceivedResponse = {
        status,
        headers: { 'content-type': 'text/plain', 'www-authenticate': 'Bearer', 'x-missing': undefined },
        body,
      };
      const error = expectFailure(received, requestWithKey(), status, /did not switch protocols/);
      assert.deepEqual(error.headers, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' });
      assert.equal(error.body, body);
    }
  });

  test('a 3xx with Location: the reason names the redirect; without Location it is a plain refusal', () => {
    for (const status of [301, 302, 303, 307, 308]) {
      const error = expectFailure(response({ location: 'wss://elsewhere.example/chat' }, status), requestWithKey(), status);
      assert.match(error.reason, /redirect/);
      assert.match(error.reason, /wss:\/\/elsewhere\.example\/chat/);
      assert.equal(error.headers['location'], 'wss://elsewhere.example/chat');
    }
    const error = expectFailure(response({}, 302), requestWithKey(), 302);
    assert.doesNotMatch(error.reason, /redirect/);
  });

  test('a 101 body is carried as given', () => {
    const error = expectFailure(response({ upgrade: undefined }, 101, Buffer.from('x')), requestWithKey(), 101);
    assert.deepEqual(error.body, Buffer.from('x'));
  });
});

describe('verifyResponse — Upgrade, Connection, Sec-WebSocket-Accept (RFC 6455 §4.1, response items 2–4)', () => {
  test('a missing or wrong Upgrade fails with the 101 (item 2)', () => {
    // Item 2 asks for a case-insensitive match of the whole value: a list that names websocket among
    // others is not one.
    for (const upgrade of [undefined, '', 'h2c', 'websocketx', 'web socket', 'HTTP/2.0', 'h2c, websocket', 'websocket, h2c']) {
      expectFailure(response({ upgrade }), requestWithKey(), 101, /Upgrade/);
    }
  });

  test('Upgrade is compared case-insensitively (item 2)', () => {
    for (const upgrade of ['WebSocket', 'WEBSOCKET', ' websocket ']) verify(response({ upgrade }));
  });

  test('a missing Connection, or one without the upgrade token, fails (item 3)', () => {
    for (const connection of [undefined, '', 'keep-alive', 'close', 'upgradex', 'Upgrade-Insecure']) {
      expectFailure(response({ connection }), requestWithKey(), 101, /Connection/);
    }
  });

  test('Connection is a case-insensitive token list (item 3)', () => {
    for (const connection of ['upgrade', 'UPGRADE', 'keep-alive, Upgrade', 'Upgrade,keep-alive', ['keep-alive', 'Upgrade']]) {
      verify(response({ connection }));
    }
  });

  test('a wrong or missing Sec-WebSocket-Accept fails (item 4)', () => {
    const wrong = [
      undefined,
      '',
      acceptKey('x3JJHMbDL1EzLkh9GBhXDw=='),
      RFC_ACCEPT.toLowerCase(),
      RFC_ACCEPT.slice(0, -1),
      RFC_KEY,
      `${RFC_ACCEPT}, ${RFC_ACCEPT}`,
      [RFC_ACCEPT, RFC_ACCEPT],
    ];
    for (const accept of wrong) {
      expectFailure(response({ 'sec-websocket-accept': accept }), requestWithKey(), 101, /Sec-WebSocket-Accept/);
    }
  });

  test('the accept value is checked against the key of this request', () => {
    const request = clientRequest('ws://example.com/');
    expectFailure(response(), request, 101, /Sec-WebSocket-Accept/);
    verify(response({ 'sec-websocket-accept': acceptKey(request.key) }), request);
  });

  test('leading and trailing whitespace around the accept value is ignored (item 4)', () => {
    for (const accept of [` ${RFC_ACCEPT}`, `${RFC_ACCEPT} `, `\t ${RFC_ACCEPT} \t`]) {
      verify(response({ 'sec-websocket-accept': accept }));
    }
  });
});

describe('verifyResponse — subprotocol (RFC 6455 §4.1, response item 6)', () => {
  const offered = (): ClientRequest => requestWithKey('ws://example.com/', { subprotocols: ['chat', 'superchat'] });

  test('one offered subprotocol is selected; none selected is allowed', () => {
    assert.equal(verify(response({ 'sec-websocket-protocol': 'superchat' }), offered()).subprotocol, 'superchat');
    assert.equal(verify(response({ 'sec-websocket-protocol': ' chat ' }), offered()).subprotocol, 'chat');
    assert.equal(verify(response(), offered()).subprotocol, null);
  });

  test('a subprotocol that was not offered fails, compared exactly (case-sensitively)', () => {
    for (const protocol of ['other', 'Chat', 'CHAT', 'cha']) {
      expectFailure(response({ 'sec-websocket-protocol': protocol }), offered(), 101, /subprotocol/);
    }
  });

  test('two subprotocols selected fail, even both offered', () => {
    expectFailure(response({ 'sec-websocket-protocol': 'chat, superchat' }), offered(), 101, /subprotocol/);
    expectFailure(response({ 'sec-websocket-protocol': ['chat', 'superchat'] }), offered(), 101, /subprotocol/);
    expectFailure(response({ 'sec-websocket-protocol': 'chat, chat' }), offered(), 101, /subprotocol/);
  });

  test('a subprotocol selected when none was offered fails; so does an empty value', () => {
    expectFailure(response({ 'sec-websocket-protocol': 'chat' }), requestWithKey(), 101, /subprotocol/);
    expectFailure(response({ 'sec-websocket-protocol': '' }), offered(), 101, /subprotocol/);
  });
});

describe('verifyResponse — extensions (RFC 6455 §4.1 response item 5, §9.1; RFC 7692 §5)', () => {
  const deflating = (options: PerMessageDeflateOptions = {}): ClientRequest =>
    requestWithKey('ws://example.com/', { deflate: settings(options) });

  test('an accepted permessage-deflate offer gives its parameters and the header value', () => {
    const agreement = verify(response({ 'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover' }), deflating());
    assert.equal(agreement.extensions, 'permessage-deflate; server_no_context_takeover');
    assert.deepEqual(agreement.deflate, {
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
    });
  });

  test('a server that declines the offer (no header) leaves compression off', () => {
    assert.deepEqual(verify(response(), deflating()), { subprotocol: null, extensions: '', deflate: null });
  });

  test('an extension that was not offered fails, with or without a deflate offer', () => {
    expectFailure(response({ 'sec-websocket-extensions': 'x-foo' }), requestWithKey(), 101, /x-foo/);
    expectFailure(response({ 'sec-websocket-extensions': 'x-foo' }), deflating(), 101, /x-foo/);
    expectFailure(
      response({ 'sec-websocket-extensions': 'permessage-deflate; server_no_context_takeover, x-foo' }),
      deflating(),
      101,
      /x-foo/,
    );
  });

  test('permessage-deflate when it was not offered fails', () => {
    expectFailure(response({ 'sec-websocket-extensions': 'permessage-deflate' }), requestWithKey(), 101, /permessage-deflate/);
  });

  test('permessage-deflate accepted twice fails', () => {
    const twice = 'permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover';
    expectFailure(response({ 'sec-websocket-extensions': twice }), deflating(), 101, /twice/);
    expectFailure(
      response({ 'sec-websocket-extensions': ['permessage-deflate; server_no_context_takeover', 'permessage-deflate; server_no_context_takeover'] }),
      deflating(),
      101,
      /twice/,
    );
  });

  test('a malformed permessage-deflate element fails', () => {
    for (const value of [
      'permessage-deflate; server_no_context_takeover; client_max_window_bits="1',
      'permessage-deflate; =5',
      'permessage-deflate; server_max_window_bits=a b',
    ]) {
      expectFailure(response({ 'sec-websocket-extensions': value }), deflating(), 101, /permessage-deflate/);
    }
  });

  test('an unacceptable permessage-deflate response fails with the negotiation\'s reason', () => {
    const error = expectFailure(response({ 'sec-websocket-extensions': 'permessage-deflate' }), deflating(), 101);
    assert.match(error.reason, /server_no_context_takeover/);
  });
});

describe('deflateOffer — the client\'s offer (RFC 7692 §5, §7.1)', () => {
  test('the defaults: ask for server_no_context_takeover, say any client window can be limited', () => {
    assert.equal(deflateOffer(settings()), 'permessage-deflate; server_no_context_takeover; client_max_window_bits');
  });

  test('without serverNoContextTakeover only client_max_window_bits (no value) is offered (§7.1.2.2)', () => {
    assert.equal(deflateOffer(settings({ serverNoContextTakeover: false })), 'permessage-deflate; client_max_window_bits');
  });

  test('client_no_context_takeover when the client will not carry history (§7.1.1.2)', () => {
    assert.equal(
      deflateOffer(settings({ serverNoContextTakeover: false, clientNoContextTakeover: true })),
      'permessage-deflate; client_no_context_takeover; client_max_window_bits',
    );
  });

  test('window limits below 15 are stated with their values (§7.1.2.1, §7.1.2.2)', () => {
    assert.equal(
      deflateOffer(settings({ serverMaxWindowBits: 10, clientMaxWindowBits: 12 })),
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12',
    );
    assert.equal(
      deflateOffer(settings({ serverNoContextTakeover: false, clientNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 8 })),
      'permessage-deflate; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8',
    );
  });

  test('the offer parses back as one well-formed permessage-deflate element', () => {
    const offer = element(deflateOffer(settings({ serverMaxWindowBits: 9, clientMaxWindowBits: 11, clientNoContextTakeover: true })));
    assert.equal(offer.name, 'permessage-deflate');
    assert.equal(offer.malformed, false);
    assert.deepEqual(offer.parameters, [
      { name: 'server_no_context_takeover', value: null },
      { name: 'client_no_context_takeover', value: null },
      { name: 'server_max_window_bits', value: '9' },
      { name: 'client_max_window_bits', value: '11' },
    ]);
  });
});

describe('acceptDeflateResponse — server_no_context_takeover (RFC 7692 §7.1.1.1)', () => {
  test('required in the response when the offer asked for it', () => {
    assert.match(refused('permessage-deflate', settings()), /server_no_context_takeover/);
    assert.match(refused('permessage-deflate; client_no_context_takeover', settings()), /server_no_context_takeover/);
    assert.equal(agreed('permessage-deflate; server_no_context_takeover', settings()).serverNoContextTakeover, true);
  });

  test('not required when not asked for, and accepted when the server adds it anyway', () => {
    const offered = settings({ serverNoContextTakeover: false });
    assert.equal(agreed('permessage-deflate', offered).serverNoContextTakeover, false);
    assert.equal(agreed('permessage-deflate; server_no_context_takeover', offered).serverNoContextTakeover, true);
  });

  test('it takes no value', () => {
    refused('permessage-deflate; server_no_context_takeover=1', settings());
    refused('permessage-deflate; server_no_context_takeover="x"', settings());
  });
});

describe('acceptDeflateResponse — client_no_context_takeover (RFC 7692 §7.1.1.2)', () => {
  test('honoured when the server asks for it', () => {
    const parameters = agreed('permessage-deflate; server_no_context_takeover; client_no_context_takeover', settings());
    assert.equal(parameters.clientNoContextTakeover, true);
  });

  test('kept when the client offered it, even if the response leaves it out', () => {
    const offered = settings({ clientNoContextTakeover: true });
    assert.equal(agreed('permessage-deflate; server_no_context_takeover', offered).clientNoContextTakeover, true);
  });

  test('off when neither side asked for it', () => {
    assert.equal(agreed('permessage-deflate; server_no_context_takeover', settings()).clientNoContextTakeover, false);
  });

  test('it takes no value', () => {
    refused('permessage-deflate; server_no_context_takeover; client_no_context_takeover=1', settings());
  });
});

describe('acceptDeflateResponse — server_max_window_bits (RFC 7692 §7.1.2.1)', () => {
  test('15 when the response does not state it', () => {
    assert.equal(agreed('permessage-deflate; server_no_context_takeover', settings()).serverMaxWindowBits, 15);
  });

  test('the value asked for, or a smaller one, is accepted', () => {
    const offered = settings({ serverMaxWindowBits: 10 });
    for (const bits of [8, 9, 10]) {
      assert.equal(agreed(`permessage-deflate; server_no_context_takeover; server_max_window_bits=${bits}`, offered).serverMaxWindowBits, bits);
    }
  });

  test('a value larger than asked for is refused', () => {
    const offered = settings({ serverMaxWindowBits: 10 });
    for (const bits of [11, 12, 15]) {
      assert.match(refused(`permessage-deflate; server_no_context_takeover; server_max_window_bits=${bits}`, offered), /server_max_window_bits/);
    }
  });

  test('a response that limits the window unasked is accepted (a smaller window only makes inflating easier)', () => {
    assert.equal(agreed('permessage-deflate; server_no_context_takeover; server_max_window_bits=9', settings()).serverMaxWindowBits, 9);
  });

  test('a missing or invalid value is refused (8 to 15, no leading zeros)', () => {
    for (const value of ['', '=7', '=16', '=08', '=015', '=0', '=-9', '=9.0', '=abc', '=""', '=" 9"']) {
      refused(`permessage-deflate; server_no_context_takeover; server_max_window_bits${value}`, settings());
    }
  });

  test('a quoted value is unquoted (RFC 6455 §9.1: the value after unescaping is a token)', () => {
    assert.equal(agreed('permessage-deflate; server_no_context_takeover; server_max_window_bits="12"', settings()).serverMaxWindowBits, 12);
  });
});

describe('acceptDeflateResponse — client_max_window_bits (RFC 7692 §7.1.2.2)', () => {
  test('absent from the response: the client uses its own setting', () => {
    assert.equal(agreed('permessage-deflate; server_no_context_takeover', settings()).clientMaxWindowBits, 15);
    assert.equal(agreed('permessage-deflate; server_no_context_takeover', settings({ clientMaxWindowBits: 11 })).clientMaxWindowBits, 11);
  });

  test('with a value no larger than offered: the client uses it', () => {
    assert.equal(agreed('permessage-deflate; server_no_context_takeover; client_max_window_bits=9', settings()).clientMaxWindowBits, 9);
    const offered = settings({ clientMaxWindowBits: 12 });
    for (const bits of [8, 12]) {
      assert.equal(agreed(`permessage-deflate; server_no_context_takeover; client_max_window_bits=${bits}`, offered).clientMaxWindowBits, bits);
    }
  });

  test('without a value it is refused (the response must state a window)', () => {
    assert.match(refused('permessage-deflate; server_no_context_takeover; client_max_window_bits', settings()), /client_max_window_bits/);
  });

  test('larger than offered is refused', () => {
    const offered = settings({ clientMaxWindowBits: 12 });
    for (const bits of [13, 15]) {
      assert.match(refused(`permessage-deflate; server_no_context_takeover; client_max_window_bits=${bits}`, offered), /client_max_window_bits/);
    }
  });

  test('an invalid value is refused', () => {
    for (const value of ['=7', '=16', '=08', '=1 2', '=x']) {
      refused(`permessage-deflate; server_no_context_takeover; client_max_window_bits${value}`, settings());
    }
  });
});

describe('acceptDeflateResponse — parameters in general (RFC 7692 §7)', () => {
  test('an unknown parameter is refused', () => {
    for (const parameter of ['x', 'x=1', 'server_max_window', 'client_context_takeover', 'mux']) {
      refused(`permessage-deflate; server_no_context_takeover; ${parameter}`, settings());
    }
  });

  test('a repeated parameter is refused, even with the same value', () => {
    for (const value of [
      'permessage-deflate; server_no_context_takeover; server_no_context_takeover',
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_no_context_takeover',
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=10; server_max_window_bits=10',
      'permessage-deflate; server_no_context_takeover; client_max_window_bits=10; client_max_window_bits=9',
    ]) {
      refused(value, settings());
    }
  });

  test('parameter names are case-insensitive', () => {
    const parameters = agreed('permessage-deflate; Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS=10', settings());
    assert.deepEqual(parameters, { serverNoContextTakeover: true, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 10 });
  });

  test('a malformed element is refused', () => {
    const malformed = parseExtensionHeader('permessage-deflate; server_max_window_bits="10')[0]!;
    assert.equal(malformed.malformed, true);
    assert.equal(typeof acceptDeflateResponse(malformed, settings()), 'string');
  });

  test('every agreed parameter at once', () => {
    const offered = settings({ serverMaxWindowBits: 12, clientMaxWindowBits: 13 });
    assert.deepEqual(
      agreed('permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10', offered),
      { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 10 },
    );
  });
});
