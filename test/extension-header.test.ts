/**
 * The Sec-WebSocket-Extensions header (RFC 6455 §9.1): elements, parameters, token and quoted-string
 * values, and malformed elements kept (marked) rather than thrown, so a negotiation can skip them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { formatExtension, parseExtensionHeader, type ExtensionOffer } from '../src/protocol/index.ts';

const offer = (name: string, parameters: Array<[string, string | null]> = []): ExtensionOffer => ({
  name,
  parameters: parameters.map(([parameterName, value]) => ({ name: parameterName, value })),
  malformed: false,
});

const malformed = (name: string): ExtensionOffer => ({ name, parameters: [], malformed: true });

describe('parseExtensionHeader — well-formed elements (RFC 6455 §9.1)', () => {
  test('no header is no offer; an empty header is no offer', () => {
    assert.deepEqual(parseExtensionHeader(undefined), []);
    assert.deepEqual(parseExtensionHeader(''), []);
    assert.deepEqual(parseExtensionHeader('   '), []);
  });

  test('one extension without parameters', () => {
    assert.deepEqual(parseExtensionHeader('permessage-deflate'), [offer('permessage-deflate')]);
  });

  test('several elements keep their order and their own parameters', () => {
    assert.deepEqual(parseExtensionHeader('foo; a=1, permessage-deflate; client_max_window_bits, bar'), [
      offer('foo', [['a', '1']]),
      offer('permessage-deflate', [['client_max_window_bits', null]]),
      offer('bar'),
    ]);
  });

  test('several headers joined with ", " (RFC 7230 §3.2.2) read as one list', () => {
    const headers = ['permessage-deflate; server_max_window_bits=10', 'permessage-deflate', 'x-other; k'];
    assert.deepEqual(parseExtensionHeader(headers.join(', ')), [
      offer('permessage-deflate', [['server_max_window_bits', '10']]),
      offer('permessage-deflate'),
      offer('x-other', [['k', null]]),
    ]);
  });

  test('parameters with and without values, in order; a repeated parameter is kept twice (the negotiation judges it)', () => {
    assert.deepEqual(
      parseExtensionHeader('permessage-deflate; server_no_context_takeover; client_max_window_bits=9; server_no_context_takeover'),
      [
        offer('permessage-deflate', [
          ['server_no_context_takeover', null],
          ['client_max_window_bits', '9'],
          ['server_no_context_takeover', null],
        ]),
      ],
    );
  });

  test('whitespace around elements, semicolons and "=" is ignored', () => {
    assert.deepEqual(parseExtensionHeader('  permessage-deflate ;  client_max_window_bits = 10 ;server_no_context_takeover ,foo  '), [
      offer('permessage-deflate', [
        ['client_max_window_bits', '10'],
        ['server_no_context_takeover', null],
      ]),
      offer('foo'),
    ]);
  });

  test('extension and parameter names are lower-cased; values keep their case', () => {
    assert.deepEqual(parseExtensionHeader('PerMessage-Deflate; Client_Max_Window_Bits; Key=VaLuE'), [
      offer('permessage-deflate', [
        ['client_max_window_bits', null],
        ['key', 'VaLuE'],
      ]),
    ]);
  });

  test('every RFC 7230 token character is accepted in names and values', () => {
    const token = "!#$%&'*+-.^_`|~09AZaz";
    assert.deepEqual(parseExtensionHeader(`x${token}; p${token}=${token}`), [
      offer(`x${token}`.toLowerCase(), [[`p${token}`.toLowerCase(), token]]),
    ]);
  });

  test('a quoted-string value is unquoted and unescaped: "10" -> 10, "1\\0" -> 10, "a\\bc" -> abc', () => {
    assert.deepEqual(parseExtensionHeader('permessage-deflate; client_max_window_bits="10"; a="1\\0"; b="a\\bc"'), [
      offer('permessage-deflate', [
        ['client_max_window_bits', '10'],
        ['a', '10'],
        ['b', 'abc'],
      ]),
    ]);
  });

  test('commas and semicolons inside a quoted-string do not split elements or parameters', () => {
    // The quoted value is one element's (not a token once unescaped, so that element is malformed).
    assert.deepEqual(parseExtensionHeader('x; a="1,2;3", y'), [malformed('x'), offer('y')]);
  });

  test('empty elements (", ,", leading and trailing commas) are ignored', () => {
    assert.deepEqual(parseExtensionHeader(', ,permessage-deflate,, ,foo,'), [offer('permessage-deflate'), offer('foo')]);
  });
});

describe('parseExtensionHeader — malformed elements are marked, never thrown', () => {
  test('a bad token as the extension name', () => {
    assert.deepEqual(parseExtensionHeader('per message, good'), [malformed('per message'), offer('good')]);
    assert.deepEqual(parseExtensionHeader('a/b'), [malformed('a/b')]);
    assert.deepEqual(parseExtensionHeader('"quoted"'), [malformed('"quoted"')]);
  });

  test('a bad token as a parameter name: the element is malformed, its neighbours are not', () => {
    assert.deepEqual(parseExtensionHeader('first, x; a b, x; é=1, last'), [
      offer('first'),
      malformed('x'),
      malformed('x'),
      offer('last'),
    ]);
  });

  test('"=" without a parameter name, and an empty parameter (trailing ";")', () => {
    assert.deepEqual(parseExtensionHeader('x; =5, y; ;a, z;'), [malformed('x'), malformed('y'), malformed('z')]);
  });

  test('"=" without a value', () => {
    assert.deepEqual(parseExtensionHeader('x; a=, y'), [malformed('x'), offer('y')]);
  });

  test('a value that is neither a token nor a quoted-string: a space, a slash, a half-quoted value', () => {
    assert.deepEqual(parseExtensionHeader('x; a=1 2, x; a=b/c, x; a="b"c, x; a=b"c", y'), [
      malformed('x'),
      malformed('x'),
      malformed('x'),
      malformed('x'),
      offer('y'),
    ]);
  });

  test(
    'a value made of two quoted-strings ("b"c"d") is neither a token nor a quoted-string',
    () => {
      assert.deepEqual(parseExtensionHeader('x; a="b"c"d", y'), [malformed('x'), offer('y')]);
      assert.deepEqual(parseExtensionHeader('x; a="1" "0"'), [malformed('x')]);
    },
  );

  test(
    'a quoted-string whose unescaped value is not a token is malformed (RFC 6455 §9.1)',
    () => {
      assert.deepEqual(parseExtensionHeader('x; a="1 2", y'), [malformed('x'), offer('y')]);
      assert.deepEqual(parseExtensionHeader('x; a="a\\"b"'), [malformed('x')]);
    },
  );

  test('an unterminated quoted-string makes its element malformed, and the rest of the header with it', () => {
    // The element boundaries after an open quote are unknowable; the elements before it stand.
    assert.deepEqual(parseExtensionHeader('permessage-deflate; a="10'), [malformed('permessage-deflate')]);
    assert.deepEqual(parseExtensionHeader('x; a="1\\"'), [malformed('x')]);
    assert.deepEqual(parseExtensionHeader('permessage-deflate, x; a="b, y'), [offer('permessage-deflate'), malformed('x')]);
    assert.deepEqual(parseExtensionHeader('"'), [malformed('"')]);
  });

  test(
    'an element with parameters but no name is kept as malformed, not dropped as empty',
    () => {
      const offers = parseExtensionHeader('; a=1, y');
      assert.equal(offers.length, 2);
      assert.equal(offers[0]!.malformed, true);
      assert.deepEqual(offers[1], offer('y'));
    },
  );

  test('no input throws: a sweep of hostile headers returns a list of offers', () => {
    const pieces = ['x', ';', ',', '=', '"', '\\', ' ', 'a', '1', '\t', 'é', '\u0000'];
    let seed = 7;
    for (let round = 0; round < 2000; round++) {
      let header = '';
      const length = round % 17;
      for (let i = 0; i < length; i++) {
        seed = (seed * 1103515245 + 12345) >>> 0;
        header += pieces[seed % pieces.length];
      }
      const offers = parseExtensionHeader(header);
      assert.ok(Array.isArray(offers), JSON.stringify(header));
      for (const parsed of offers) {
        assert.equal(typeof parsed.malformed, 'boolean');
        if (parsed.malformed) assert.deepEqual(parsed.parameters, [], JSON.stringify(header));
      }
    }
  });
});

describe('formatExtension', () => {
  test('a name alone', () => {
    assert.equal(formatExtension('permessage-deflate', []), 'permessage-deflate');
  });

  test('parameters in order: "; name" without a value, "; name=value" with one', () => {
    assert.equal(
      formatExtension('permessage-deflate', [
        { name: 'server_no_context_takeover', value: null },
        { name: 'server_max_window_bits', value: '10' },
        { name: 'client_max_window_bits', value: '9' },
      ]),
      'permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9',
    );
  });

  test('what formatExtension writes, parseExtensionHeader reads back', () => {
    const parameters = [
      { name: 'client_no_context_takeover', value: null },
      { name: 'server_max_window_bits', value: '12' },
    ];
    assert.deepEqual(parseExtensionHeader(formatExtension('permessage-deflate', parameters)), [
      { name: 'permessage-deflate', parameters, malformed: false },
    ]);
  });
});
