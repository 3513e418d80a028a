/**
 * permessage-deflate settings and negotiation (RFC 7692 §5, §7.1): option validation, every parameter
 * with and without a value, offers that must be skipped (never a refused handshake), and a response
 * that carries exactly the accepted parameters.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  negotiateDeflate,
  parseExtensionHeader,
  parseUpgradeRequest,
  resolveDeflateOptions,
  type DeflateAgreement,
  type DeflateSettings,
  type ExtensionOffer,
  type PerMessageDeflateOptions,
} from '../src/protocol/index.ts';

const DEFAULTS: DeflateSettings = resolveDeflateOptions(true)!;

/** The server's non-default settings of the brief: each one differs from the default. */
const CUSTOM: DeflateSettings = resolveDeflateOptions({
  serverNoContextTakeover: false,
  clientNoContextTakeover: true,
  serverMaxWindowBits: 10,
  clientMaxWindowBits: 9,
})!;

function negotiate(header: string, settings: DeflateSettings = DEFAULTS): DeflateAgreement | null {
  return negotiateDeflate(parseExtensionHeader(header), settings);
}

function expectAgreement(header: string, settings: DeflateSettings = DEFAULTS): DeflateAgreement {
  const agreement = negotiate(header, settings);
  assert.ok(agreement !== null, `expected ${JSON.stringify(header)} to be accepted`);
  return agreement;
}

/** What parseUpgradeRequest reads from a valid upgrade request carrying `extensions` (one line or several). */
function offersIn(extensions: string | string[]): readonly ExtensionOffer[] {
  return parseUpgradeRequest({
    method: 'GET',
    httpVersion: '1.1',
    headers: {
      host: 'example.com',
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
      'sec-websocket-extensions': extensions,
    },
  }).extensions;
}

/** The agreement as a plain object, for deepEqual. */
function plain(agreement: DeflateAgreement | null): object | null {
  if (agreement === null) return null;
  const { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits, response } = agreement;
  return { serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits, response };
}

const PMD = 'permessage-deflate';
const SNCT = 'server_no_context_takeover';

describe('resolveDeflateOptions', () => {
  test('undefined and false disable the extension (null)', () => {
    assert.equal(resolveDeflateOptions(undefined), null);
    assert.equal(resolveDeflateOptions(false), null);
  });

  test('true is every default: threshold 1024, level 6, memLevel 8, no server takeover, 15-bit windows', () => {
    assert.deepEqual(resolveDeflateOptions(true), {
      threshold: 1024,
      level: 6,
      memLevel: 8,
      serverNoContextTakeover: true,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
    });
  });

  test('an empty object is the defaults; given settings replace only themselves', () => {
    assert.deepEqual(resolveDeflateOptions({}), DEFAULTS);
    assert.deepEqual(resolveDeflateOptions({ level: 1, clientMaxWindowBits: 8 }), { ...DEFAULTS, level: 1, clientMaxWindowBits: 8 });
  });

  test('the edges of every range are accepted', () => {
    const low = { threshold: 0, level: 0, memLevel: 1, serverMaxWindowBits: 8, clientMaxWindowBits: 8 };
    const high = { threshold: Infinity, level: 9, memLevel: 9, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
    assert.deepEqual(resolveDeflateOptions(low), { ...DEFAULTS, ...low });
    assert.deepEqual(resolveDeflateOptions(high), { ...DEFAULTS, ...high });
    assert.deepEqual(resolveDeflateOptions({ serverNoContextTakeover: false, clientNoContextTakeover: true }), {
      ...DEFAULTS,
      serverNoContextTakeover: false,
      clientNoContextTakeover: true,
    });
  });

  const badSettings: Array<[keyof PerMessageDeflateOptions, unknown, typeof RangeError | typeof TypeError]> = [
    ['threshold', -1, RangeError],
    ['threshold', 1.5, RangeError],
    ['threshold', Number.NaN, RangeError],
    ['threshold', '1024', RangeError],
    ['level', -1, RangeError],
    ['level', 10, RangeError],
    ['level', 2.5, RangeError],
    ['level', '6', RangeError],
    ['memLevel', 0, RangeError],
    ['memLevel', 10, RangeError],
    ['serverMaxWindowBits', 7, RangeError],
    ['serverMaxWindowBits', 16, RangeError],
    ['serverMaxWindowBits', 9.5, RangeError],
    ['clientMaxWindowBits', 7, RangeError],
    ['clientMaxWindowBits', 16, RangeError],
    ['clientMaxWindowBits', '15', RangeError],
    ['serverNoContextTakeover', 'yes', TypeError],
    ['serverNoContextTakeover', 1, TypeError],
    ['clientNoContextTakeover', 0, TypeError],
  ];
  for (const [name, value, errorClass] of badSettings) {
    test(`${name}: ${typeof value === 'string' ? JSON.stringify(value) : String(value)} is a ${errorClass.name} naming perMessageDeflate.${name}`, () => {
      const options = { [name]: value } as unknown as PerMessageDeflateOptions;
      assert.throws(
        () => resolveDeflateOptions(options),
        (error: unknown) => error instanceof errorClass && error.message.includes(`perMessageDeflate.${name}`),
      );
    });
  }

  test('an option that is neither a boolean nor an object is a TypeError', () => {
    for (const option of [null, 1, 'true']) {
      assert.throws(() => resolveDeflateOptions(option as unknown as boolean), TypeError, String(option));
    }
  });
});

describe('negotiateDeflate — each parameter (RFC 7692 §7.1), default settings', () => {
  // Default settings: the server never keeps its history (server_no_context_takeover added unasked),
  // lets the client keep its own, and uses 15-bit windows.
  const cases: Array<[offer: string, response: string, parameters: { s: boolean; c: boolean; sBits: number; cBits: number }]> = [
    [PMD, `${PMD}; ${SNCT}`, { s: true, c: false, sBits: 15, cBits: 15 }],
    [`${PMD}; ${SNCT}`, `${PMD}; ${SNCT}`, { s: true, c: false, sBits: 15, cBits: 15 }],
    [`${PMD}; client_no_context_takeover`, `${PMD}; ${SNCT}; client_no_context_takeover`, { s: true, c: true, sBits: 15, cBits: 15 }],
    [`${PMD}; server_max_window_bits=10`, `${PMD}; ${SNCT}; server_max_window_bits=10`, { s: true, c: false, sBits: 10, cBits: 15 }],
    [`${PMD}; server_max_window_bits=8`, `${PMD}; ${SNCT}; server_max_window_bits=8`, { s: true, c: false, sBits: 8, cBits: 15 }],
    [`${PMD}; server_max_window_bits=15`, `${PMD}; ${SNCT}; server_max_window_bits=15`, { s: true, c: false, sBits: 15, cBits: 15 }],
    [`${PMD}; client_max_window_bits`, `${PMD}; ${SNCT}`, { s: true, c: false, sBits: 15, cBits: 15 }],
    [`${PMD}; client_max_window_bits=10`, `${PMD}; ${SNCT}; client_max_window_bits=10`, { s: true, c: false, sBits: 15, cBits: 10 }],
    [`${PMD}; client_max_window_bits=15`, `${PMD}; ${SNCT}`, { s: true, c: false, sBits: 15, cBits: 15 }],
    [`${PMD}; server_max_window_bits="9"`, `${PMD}; ${SNCT}; server_max_window_bits=9`, { s: true, c: false, sBits: 9, cBits: 15 }],
    [
      `${PMD}; client_no_context_takeover; ${SNCT}; client_max_window_bits=12; server_max_window_bits=11`,
      `${PMD}; ${SNCT}; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=12`,
      { s: true, c: true, sBits: 11, cBits: 12 },
    ],
    [
      'PerMessage-Deflate; Client_Max_Window_Bits=9; SERVER_NO_CONTEXT_TAKEOVER',
      `${PMD}; ${SNCT}; client_max_window_bits=9`,
      { s: true, c: false, sBits: 15, cBits: 9 },
    ],
  ];
  for (const [offer, response, { s, c, sBits, cBits }] of cases) {
    test(`${offer} -> ${response}`, () => {
      assert.deepEqual(plain(negotiate(offer)), {
        serverNoContextTakeover: s,
        clientNoContextTakeover: c,
        serverMaxWindowBits: sBits,
        clientMaxWindowBits: cBits,
        response,
      });
    });
  }
});

describe('negotiateDeflate — offers that cannot be accepted are skipped', () => {
  const badOffers = [
    // §7.1.2.1: server_max_window_bits needs a value from 8 to 15, written without leading zeros.
    'server_max_window_bits',
    'server_max_window_bits=7',
    'server_max_window_bits=16',
    'server_max_window_bits=08',
    'server_max_window_bits=abc',
    'server_max_window_bits=-9',
    'server_max_window_bits="08"',
    'server_max_window_bits=1e1',
    // §7.1.2.2: client_max_window_bits may come without a value, but a value must be 8 to 15.
    'client_max_window_bits=7',
    'client_max_window_bits=16',
    'client_max_window_bits=08',
    'client_max_window_bits=abc',
    'client_max_window_bits=0',
    // §7.1.1: the no_context_takeover parameters take no value.
    'server_no_context_takeover=1',
    'server_no_context_takeover=true',
    'client_no_context_takeover=1',
    'client_no_context_takeover=""',
    // §7: a parameter twice, even with the same value.
    'server_no_context_takeover; server_no_context_takeover',
    'client_no_context_takeover; client_no_context_takeover',
    'server_max_window_bits=10; server_max_window_bits=10',
    'client_max_window_bits; client_max_window_bits=10',
    'Client_Max_Window_Bits; client_max_window_bits',
    // §7: an unknown parameter.
    'foo',
    'x-extension-parameter=1',
    'client_max_window_bits; mux',
  ];
  for (const parameters of badOffers) {
    test(`${PMD}; ${parameters} alone: no agreement; before a good offer: skipped`, () => {
      assert.equal(negotiate(`${PMD}; ${parameters}`), null);
      assert.equal(negotiate(`${PMD}; ${parameters}`, CUSTOM), null);
      const second = expectAgreement(`${PMD}; ${parameters}, ${PMD}; client_max_window_bits=11`);
      assert.equal(second.response, `${PMD}; ${SNCT}; client_max_window_bits=11`);
    });
  }

  test('a malformed element named permessage-deflate is skipped', () => {
    assert.equal(negotiate(`${PMD}; =5`), null);
    assert.equal(negotiate(`${PMD}; a b, ${PMD}`)?.response, `${PMD}; ${SNCT}`);
  });

  test('no offer, or only other extensions: no agreement', () => {
    assert.equal(negotiateDeflate([], DEFAULTS), null);
    assert.equal(negotiate('x-webkit-deflate-frame, permessage-foo; client_max_window_bits'), null);
    assert.equal(negotiate('deflate-frame'), null);
  });

  test('a bad Sec-WebSocket-Extensions header does not refuse the handshake (no 400): the connection runs uncompressed', () => {
    for (const header of [`${PMD}; server_max_window_bits=99`, `${PMD}; a="unterminated`, `${PMD};;;`, '"']) {
      assert.equal(negotiateDeflate(offersIn(header), DEFAULTS), null, header);
    }
  });
});

describe('negotiateDeflate — several offers (RFC 7692 §5: the first acceptable one wins)', () => {
  test('of two acceptable offers in one header, the first is answered', () => {
    const agreement = expectAgreement(`${PMD}; client_max_window_bits=10, ${PMD}; client_no_context_takeover`);
    assert.equal(agreement.response, `${PMD}; ${SNCT}; client_max_window_bits=10`);
    assert.equal(agreement.clientNoContextTakeover, false);
  });

  test('offers over several headers (joined) are tried in order', () => {
    const headers = [`${PMD}; server_max_window_bits=16`, `${PMD}; server_max_window_bits=12`, PMD];
    assert.equal(expectAgreement(headers.join(', ')).response, `${PMD}; ${SNCT}; server_max_window_bits=12`);
    assert.equal(negotiateDeflate(offersIn(headers), DEFAULTS)?.response, `${PMD}; ${SNCT}; server_max_window_bits=12`);
  });

  test('other extensions before and after the offer are passed over', () => {
    const header = `x-webkit-deflate-frame, foo; a=1, ${PMD}; client_max_window_bits, bar, ${PMD}; client_no_context_takeover`;
    assert.equal(expectAgreement(header).response, `${PMD}; ${SNCT}`);
    assert.equal(expectAgreement(`${PMD}, x-later`).response, `${PMD}; ${SNCT}`);
  });

  test('every bad offer is skipped until a good one, however many', () => {
    const header = [`${PMD}; foo`, `${PMD}; server_max_window_bits`, `${PMD}; client_max_window_bits=7`, `${PMD}; server_max_window_bits=9`].join(', ');
    assert.equal(expectAgreement(header).serverMaxWindowBits, 9);
  });
});

describe('negotiateDeflate — the server’s settings (RFC 7692 §7.1)', () => {
  test('serverNoContextTakeover false: takeover is kept unless the client asks for none (then echoed)', () => {
    const settings = resolveDeflateOptions({ serverNoContextTakeover: false })!;
    assert.deepEqual(plain(negotiate(PMD, settings)), {
      serverNoContextTakeover: false,
      clientNoContextTakeover: false,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 15,
      response: PMD,
    });
    const asked = expectAgreement(`${PMD}; ${SNCT}`, settings);
    assert.equal(asked.serverNoContextTakeover, true);
    assert.equal(asked.response, `${PMD}; ${SNCT}`);
  });

  test('the custom settings (no server limit on takeover, client_no_context_takeover, 10 and 9 bits) on a bare offer', () => {
    // §7.1.2.2: client_max_window_bits only when offered, so the client keeps 15 bits here.
    assert.deepEqual(plain(negotiate(PMD, CUSTOM)), {
      serverNoContextTakeover: false,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 15,
      response: `${PMD}; client_no_context_takeover; server_max_window_bits=10`,
    });
  });

  const customCases: Array<[offer: string, response: string, sBits: number, cBits: number]> = [
    [`${PMD}; client_max_window_bits`, `${PMD}; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9`, 10, 9],
    [`${PMD}; client_max_window_bits=12`, `${PMD}; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9`, 10, 9],
    [`${PMD}; client_max_window_bits=8`, `${PMD}; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=8`, 10, 8],
    [`${PMD}; server_max_window_bits=12`, `${PMD}; client_no_context_takeover; server_max_window_bits=10`, 10, 15],
    [`${PMD}; server_max_window_bits=9`, `${PMD}; client_no_context_takeover; server_max_window_bits=9`, 9, 15],
    [`${PMD}; client_no_context_takeover`, `${PMD}; client_no_context_takeover; server_max_window_bits=10`, 10, 15],
  ];
  for (const [offer, response, sBits, cBits] of customCases) {
    test(`custom settings: ${offer} -> ${response}`, () => {
      const agreement = expectAgreement(offer, CUSTOM);
      assert.equal(agreement.response, response);
      assert.equal(agreement.serverMaxWindowBits, sBits);
      assert.equal(agreement.clientMaxWindowBits, cBits);
      assert.equal(agreement.clientNoContextTakeover, true);
    });
  }

  test('the response respects every offer under every setting, and states exactly the agreed parameters', () => {
    const bitsChoices = [null, 8, 9, 12, 15];
    let checked = 0;
    for (const settingS of [true, false]) {
      for (const settingC of [true, false]) {
        for (const settingSBits of [8, 10, 15]) {
          for (const settingCBits of [8, 9, 15]) {
            const settings = resolveDeflateOptions({
              serverNoContextTakeover: settingS,
              clientNoContextTakeover: settingC,
              serverMaxWindowBits: settingSBits,
              clientMaxWindowBits: settingCBits,
            })!;
            for (const offerS of [false, true]) {
              for (const offerC of [false, true]) {
                for (const offerSBits of bitsChoices) {
                  for (const offerCBits of [...bitsChoices, 0]) {
                    const parameters: string[] = [];
                    if (offerS) parameters.push(SNCT);
                    if (offerC) parameters.push('client_no_context_takeover');
                    if (offerSBits !== null) parameters.push(`server_max_window_bits=${offerSBits}`);
                    if (offerCBits === 0) parameters.push('client_max_window_bits');
                    else if (offerCBits !== null) parameters.push(`client_max_window_bits=${offerCBits}`);
                    const offer = [PMD, ...parameters].join('; ');
                    const agreement = expectAgreement(offer, settings);
                    const [answered] = parseExtensionHeader(agreement.response);
                    assert.ok(answered !== undefined && answered.name === PMD && !answered.malformed, agreement.response);
                    const response = new Map(answered.parameters.map((p) => [p.name, p.value]));
                    assert.equal(response.size, answered.parameters.length, `no parameter twice: ${agreement.response}`);
                    const context = `${offer} under ${JSON.stringify(settings)} -> ${agreement.response}`;
                    // §7.1.1.1: an offered server_no_context_takeover must be accepted (echoed).
                    if (offerS) assert.ok(response.has(SNCT), context);
                    // §7.1.2.1: an offered server_max_window_bits is answered with the same or a smaller value.
                    if (offerSBits !== null) assert.ok(Number(response.get('server_max_window_bits')) <= offerSBits, context);
                    // §7.1.2.2: client_max_window_bits only when offered, no larger than an offered value.
                    if (offerCBits === null) assert.ok(!response.has('client_max_window_bits'), context);
                    if (offerCBits !== null && offerCBits > 0 && response.has('client_max_window_bits')) {
                      assert.ok(Number(response.get('client_max_window_bits')) <= offerCBits, context);
                    }
                    // The agreed parameters are exactly what the response says (15 when unlimited).
                    assert.equal(agreement.serverNoContextTakeover, response.has(SNCT), context);
                    assert.equal(agreement.clientNoContextTakeover, response.has('client_no_context_takeover'), context);
                    assert.equal(agreement.serverMaxWindowBits, Number(response.get('server_max_window_bits') ?? 15), context);
                    assert.equal(agreement.clientMaxWindowBits, Number(response.get('client_max_window_bits') ?? 15), context);
                    // The client's limits and the server's settings both hold.
                    assert.ok(agreement.serverMaxWindowBits <= Math.min(settingSBits, offerSBits ?? 15), context);
                    if (offerCBits !== null) assert.ok(agreement.clientMaxWindowBits <= Math.min(settingCBits, offerCBits || 15), context);
                    assert.equal(agreement.serverNoContextTakeover, offerS || settingS, context);
                    assert.equal(agreement.clientNoContextTakeover, offerC || settingC, context);
                    checked++;
                  }
                }
              }
            }
          }
        }
      }
    }
    assert.equal(checked, 2 * 2 * 3 * 3 * 2 * 2 * 5 * 6);
  });
});
