/**
 * The close codec (RFC 6455 §5.5.1, §7.4) and the error classes that share its rules: only codes a peer
 * may send (1000-1003, 1007-1014, 3000-4999) and a well-formed reason of at most 123 UTF-8 bytes can be
 * expressed, and a received close payload is checked with the same rules.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CloseCode,
  HandshakeError,
  InternalError,
  InvalidPayloadData,
  MessageTooBig,
  PolicyViolation,
  ProtocolError,
  UnsupportedData,
  WebSocketDisconnect,
  WebSocketException,
} from '../src/index.ts';
import { decodeClose, encodeClose, isSendableCloseCode } from '../src/protocol/index.ts';
import { readFrames } from './helpers/frames.ts';

const NOT_SENDABLE = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999, 5000, 65535, -1000, 1.5, 1000.5, NaN, Infinity];
const SENDABLE = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];

/** A string of exactly `bytes` UTF-8 bytes built from `unit` (whose byte length divides `bytes`), plus a filler. */
function reasonOf(bytes: number, unit: string, filler = 'a'): string {
  const unitBytes = Buffer.byteLength(unit);
  const units = Math.floor(bytes / unitBytes);
  return unit.repeat(units) + filler.repeat(bytes - units * unitBytes);
}

describe('encodeClose — RFC 6455 §5.5.1', () => {
  test('no code: an empty close frame 88 00', () => {
    assert.deepEqual(encodeClose(), Buffer.from([0x88, 0x00]));
  });

  test('1000: 88 02 03 e8', () => {
    assert.deepEqual(encodeClose(1000), Buffer.from([0x88, 0x02, 0x03, 0xe8]));
    assert.deepEqual(encodeClose(CloseCode.NormalClosure, ''), Buffer.from([0x88, 0x02, 0x03, 0xe8]));
  });

  test('code and reason: the code in network order, then the reason in UTF-8', () => {
    assert.deepEqual(encodeClose(1001, 'bye'), Buffer.from([0x88, 0x05, 0x03, 0xe9, 0x62, 0x79, 0x65]));
    assert.deepEqual(encodeClose(4999, 'é'), Buffer.from([0x88, 0x04, 0x13, 0x87, 0xc3, 0xa9]));
  });

  test('masked (client role, §5.3): mask bit, 4-byte key, payload unmasks to the code and reason', () => {
    for (const reason of ['', 'bye', 'x'.repeat(40), 'ü'.repeat(61)]) {
      const frame = encodeClose(1000, reason, true);
      const payloadLength = 2 + Buffer.byteLength(reason);
      assert.equal(frame.length, 6 + payloadLength);
      assert.equal(frame[0], 0x88);
      assert.equal(frame[1], 0x80 | payloadLength);
      const [read] = readFrames(frame);
      assert.ok(read);
      assert.equal(read.masked, true);
      assert.equal(read.headerSize, 6);
      assert.deepEqual(read.payload, Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from(reason)]));
    }
  });

  test('masked with no code: 88 80 and a key, no payload', () => {
    const frame = encodeClose(undefined, '', true);
    assert.equal(frame.length, 6);
    assert.deepEqual(frame.subarray(0, 2), Buffer.from([0x88, 0x80]));
  });

  test('masking keys differ between frames (§5.3: unpredictable)', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 20; i++) keys.add(encodeClose(1000, '', true).subarray(2, 6).toString('hex'));
    assert.ok(keys.size > 15, `only ${keys.size} distinct keys in 20 frames`);
  });

  test('RangeError for every code a peer may not send (§7.4.1, §7.4.2)', () => {
    for (const code of NOT_SENDABLE) {
      assert.throws(() => encodeClose(code), RangeError, `code ${code}`);
      assert.throws(() => encodeClose(code, 'reason'), RangeError, `code ${code} with reason`);
    }
  });

  test('accepts 1000-1003, 1007-1014 and 3000-4999', () => {
    for (const code of SENDABLE) {
      const frame = encodeClose(code);
      assert.equal(frame.readUInt16BE(2), code, `code ${code}`);
    }
  });

  test('isSendableCloseCode follows the same table', () => {
    for (const code of SENDABLE) assert.equal(isSendableCloseCode(code), true, `code ${code}`);
    for (const code of NOT_SENDABLE) assert.equal(isSendableCloseCode(code), false, `code ${code}`);
  });

  test('a reason of 123 UTF-8 bytes fits, 124 is a RangeError (§5.5: 125-byte control payload)', () => {
    const frame = encodeClose(1000, 'a'.repeat(123));
    assert.equal(frame.length, 2 + 125);
    assert.equal(frame[1], 125);
    assert.throws(() => encodeClose(1000, 'a'.repeat(124)), RangeError);
  });

  test('the 123/124-byte limit counts UTF-8 bytes, not characters', () => {
    // 2-byte characters: 61 × 'é' + 'a' = 123 bytes (62 characters); 62 × 'é' = 124 bytes.
    assert.equal(encodeClose(1000, reasonOf(123, 'é')).length, 127);
    assert.throws(() => encodeClose(1000, 'é'.repeat(62)), RangeError);
    // 3-byte characters: 41 × '€' = 123 bytes; 41 × '€' + 'a' = 124 bytes.
    assert.equal(encodeClose(1000, '€'.repeat(41)).length, 127);
    assert.throws(() => encodeClose(1000, '€'.repeat(41) + 'a'), RangeError);
    // 4-byte characters (a surrogate pair each, 2 UTF-16 units): 30 × '😀' + 'aaa' = 123; + 'aaaa' = 124.
    assert.equal(encodeClose(1000, '😀'.repeat(30) + 'aaa').length, 127);
    assert.throws(() => encodeClose(1000, '😀'.repeat(31)), RangeError);
    // 42 characters of 3 bytes: only 42 characters but 126 bytes.
    assert.throws(() => encodeClose(1000, '€'.repeat(42)), RangeError);
  });

  test('a reason with a lone surrogate is a TypeError (it cannot be encoded as UTF-8)', () => {
    assert.throws(() => encodeClose(1000, 'bad \ud800'), TypeError);
    assert.throws(() => encodeClose(1000, '\udfff'), TypeError);
    assert.throws(() => encodeClose(1000, 'x\udc00\ud800'), TypeError);
  });

  test('a reason without a code is a TypeError (§5.5.1: the reason follows the code)', () => {
    assert.throws(() => encodeClose(undefined, 'reason'), TypeError);
  });
});

describe('decodeClose — RFC 6455 §5.5.1, §7.4', () => {
  test('an empty payload is 1005 (no status received) with no reason', () => {
    assert.deepEqual(decodeClose(new Uint8Array(0)), { code: 1005, reason: '' });
  });

  test('a 1-byte payload is a ProtocolError (1002)', () => {
    assert.throws(
      () => decodeClose(Uint8Array.of(0x03)),
      (error: unknown) => error instanceof ProtocolError && error.code === 1002,
    );
  });

  test('a code a peer may not send is a ProtocolError (1002)', () => {
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code);
      assert.throws(
        () => decodeClose(payload),
        (error: unknown) => error instanceof ProtocolError && error.code === 1002,
        `code ${code}`,
      );
    }
  });

  test('a reason that is not valid UTF-8 is InvalidPayloadData (1007, §8.1)', () => {
    for (const reason of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0x61, 0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]]) {
      const payload = Buffer.from([0x03, 0xe8, ...reason]);
      assert.throws(
        () => decodeClose(payload),
        (error: unknown) => error instanceof InvalidPayloadData && error.code === 1007,
        Buffer.from(reason).toString('hex'),
      );
    }
  });

  test('returns the code and the decoded reason', () => {
    assert.deepEqual(decodeClose(Buffer.from([0x03, 0xe8])), { code: 1000, reason: '' });
    assert.deepEqual(decodeClose(Buffer.from([0x0b, 0xb8, ...Buffer.from('Grüße')])), { code: 3000, reason: 'Grüße' });
    assert.deepEqual(decodeClose(Buffer.from([0x13, 0x87, ...Buffer.from('😀')])), { code: 4999, reason: '😀' });
    for (const code of SENDABLE) {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(code);
      assert.equal(decodeClose(payload).code, code);
    }
  });

  test('decodes only its view of a larger buffer', () => {
    const whole = Buffer.from([0xff, 0x03, 0xe9, 0x6f, 0x6b, 0xff]);
    assert.deepEqual(decodeClose(whole.subarray(1, 5)), { code: 1001, reason: 'ok' });
  });

  test('round-trips everything encodeClose can make', () => {
    for (const code of SENDABLE) {
      for (const reason of ['', 'bye', reasonOf(123, 'é'), '😀'.repeat(30)]) {
        const frame = encodeClose(code, reason);
        assert.deepEqual(decodeClose(frame.subarray(2)), { code, reason });
      }
    }
  });
});

describe('WebSocketException and subclasses validate like encodeClose', () => {
  test('WebSocketException carries a sendable code and reason', () => {
    const error = new WebSocketException(4000, 'custom');
    assert.equal(error.code, 4000);
    assert.equal(error.reason, 'custom');
    assert.equal(error.name, 'WebSocketException');
    assert.ok(error instanceof Error);
    assert.equal(new WebSocketException(1000).reason, '');
  });

  test('RangeError for a code that may not be sent (1005, 1006, 1004, 1015, 999, 5000)', () => {
    for (const code of [1005, 1006, 1004, 1015, 999, 5000, 2999, 1.5]) {
      assert.throws(() => new WebSocketException(code), RangeError, `code ${code}`);
    }
  });

  test('RangeError for a 124-byte reason, TypeError for a lone surrogate', () => {
    assert.equal(new WebSocketException(1000, 'a'.repeat(123)).reason.length, 123);
    assert.throws(() => new WebSocketException(1000, 'a'.repeat(124)), RangeError);
    assert.throws(() => new WebSocketException(1000, 'é'.repeat(62)), RangeError);
    assert.throws(() => new WebSocketException(1000, '\ud83d'), TypeError);
  });

  test('subclasses carry their codes (§7.4.1) and their class names', () => {
    const cases: Array<[WebSocketException, number, string]> = [
      [new ProtocolError(), 1002, 'ProtocolError'],
      [new UnsupportedData(), 1003, 'UnsupportedData'],
      [new InvalidPayloadData(), 1007, 'InvalidPayloadData'],
      [new PolicyViolation(), 1008, 'PolicyViolation'],
      [new MessageTooBig(), 1009, 'MessageTooBig'],
      [new InternalError(), 1011, 'InternalError'],
    ];
    for (const [error, code, name] of cases) {
      assert.equal(error.code, code, name);
      assert.equal(error.name, name);
      assert.ok(error instanceof WebSocketException, name);
      assert.ok(error.reason.length > 0, `${name} has a default reason`);
    }
    assert.equal(new PolicyViolation('no').reason, 'no');
    assert.throws(() => new PolicyViolation('a'.repeat(124)), RangeError);
  });

  test('WebSocketDisconnect accepts the local-only codes 1005 and 1006 and defaults to 1000', () => {
    assert.equal(new WebSocketDisconnect(1005).code, 1005);
    assert.equal(new WebSocketDisconnect(1006, 'gone').reason, 'gone');
    assert.equal(new WebSocketDisconnect().code, 1000);
    assert.equal(new WebSocketDisconnect().name, 'WebSocketDisconnect');
    assert.ok(!(new WebSocketDisconnect() instanceof WebSocketException));
  });

  test('HandshakeError carries status, reason and headers; non-error statuses are a RangeError', () => {
    const error = new HandshakeError(426, 'version', { 'Sec-WebSocket-Version': '13' });
    assert.equal(error.status, 426);
    assert.equal(error.reason, 'version');
    assert.deepEqual(error.headers, { 'Sec-WebSocket-Version': '13' });
    assert.equal(error.name, 'HandshakeError');
    assert.deepEqual(new HandshakeError(400).headers, {});
    assert.equal(new HandshakeError(599).status, 599);
    for (const status of [101, 200, 302, 399, 600, 400.5, NaN]) {
      assert.throws(() => new HandshakeError(status), RangeError, `status ${status}`);
    }
  });
});
