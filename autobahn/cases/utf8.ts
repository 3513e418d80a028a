/**
 * Section 6, UTF-8 Handling (RFC 6455 §5.6, §8.1): valid text is echoed however it is fragmented, and
 * invalid text fails the connection with 1007 (or a TCP drop), by the server.
 *
 * 6.4.x grade fail-fast: a message made invalid by its second part is sent in three parts with a wait
 * (1 s at Autobahn's timing) after the first and after the second. The server must close during the
 * second wait, before the rest of the message is sent (OK); closing only after the whole message is
 * NON-STRICT; closing during the first wait, on a valid prefix, fails.
 *
 * 6.5-6.23 send one text frame each with the test vectors of Markus Kuhn's UTF-8 decoder stress test,
 * as Autobahn groups and numbers them.
 */
import { Opcode } from '../../src/constants.ts';
import type { CaseRun, ConformanceCase } from '../harness.ts';
import { cases, hex, message, normalClose, serverFailsUtf8, timeout } from './common.ts';

/** κόσμε: 2-, 3- and 2-byte sequences, used throughout Autobahn's UTF-8 cases. */
const KOSME = hex('ce ba e1 bd b9 cf 83 ce bc ce b5');
/** The surrogate U+D800 encoded as if it were a code point: invalid at its second byte. */
const SURROGATE = hex('ed a0 80');
/** U+110000 in the 4-byte pattern: above U+10FFFF, invalid at its second byte. */
const ABOVE_MAX = hex('f4 90 80 80');
const EDITED = Buffer.from('edited');
const HELLO_UTF8 = 'Hello-µ@ßöäüàá-UTF-8!!';

function validCase(id: string, description: string, send: (run: CaseRun) => void, payload: Buffer | string): ConformanceCase {
  return {
    id,
    description,
    expectation: 'The message is echoed; clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [message(payload)]);
      run.expectClose(normalClose);
      send(run);
      run.closeAfter(1);
    },
  };
}

function invalidCase(id: string, description: string, send: (run: CaseRun) => void): ConformanceCase {
  return {
    id,
    description,
    expectation: 'The connection is failed by the server (1007 or TCP drop): the payload is not valid UTF-8.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFailsUtf8);
      send(run);
      run.killAfter(1);
    },
  };
}

/**
 * A fail-fast case: `parts[0]` (valid on its own), a wait, `parts[1]` (makes the message invalid), a
 * wait, `parts[2]`. As three frames, or as three chops of one frame.
 */
function failFast(id: string, parts: readonly [Buffer, Buffer, Buffer], asChops: boolean): ConformanceCase {
  const [first, second, third] = parts;
  /** When the invalid part was written, per run. */
  const invalidSentAt = new WeakMap<CaseRun, number>();
  return {
    id,
    description:
      `Send an invalid text message in 3 ${asChops ? 'writes of one frame' : 'frames'}: ${first.toString('hex')}, ` +
      `wait, ${second.toString('hex')} (makes it invalid), wait, ${third.toString('hex')}.`,
    expectation:
      'The first part is accepted (the first wait times out); the second is refused at once with 1007, before ' +
      'the third is sent (fail fast). Refusing only at the end of the message is NON-STRICT.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [timeout('A')]);
      run.expect('NON-STRICT', [timeout('A'), timeout('B')]);
      run.expectClose(serverFailsUtf8);
      let sendPart: (part: Buffer, last: boolean) => void;
      if (asChops) {
        // One frame announcing the whole length, its bytes written in three pieces.
        const frame = run.client.frame(Opcode.Text, Buffer.concat([first, second, third]));
        let offset = 0;
        const ends = [frame.length - second.length - third.length, frame.length - third.length, frame.length];
        let piece = 0;
        sendPart = () => {
          const end = ends[piece++]!;
          run.client.write(frame.subarray(offset, end));
          offset = end;
        };
      } else {
        let firstFrame = true;
        sendPart = (part, last) => {
          run.client.sendFrame(firstFrame ? Opcode.Text : Opcode.Continuation, part, { fin: last });
          firstFrame = false;
        };
      }
      sendPart(first, false);
      run.continueLater(1, () => {
        if (run.client.state !== 'open') return;
        run.observe(timeout('A'));
        invalidSentAt.set(run, performance.now());
        sendPart(second, false);
        run.continueLater(1, () => {
          if (run.client.state !== 'open') return;
          run.observe(timeout('B'));
          sendPart(third, true);
          run.killAfter(1);
        });
      });
    },
    finish(verdict, run) {
      const sentAt = invalidSentAt.get(run);
      const closedAt = run.client.closeReceivedAt;
      if (sentAt !== undefined && closedAt !== null && closedAt >= sentAt) {
        verdict.result += ` The server's close came ${(closedAt - sentAt).toFixed(1)} ms after the invalid part.`;
      }
    },
  };
}

// ---------------------------------------------------------------- 6.5-6.23: the test vectors

type Vector = readonly [valid: boolean, bytes: Buffer];
const ok = (text: string): Vector => [true, hex(text)];
const bad = (text: string): Vector => [false, hex(text)];

/** Each byte in [from, to) followed by a space, as one payload. */
function lonelyStarts(from: number, to: number): Buffer {
  const bytes: number[] = [];
  for (let b = from; b < to; b++) bytes.push(b, 0x20);
  return Buffer.from(bytes);
}

const INCOMPLETE = ['c0', 'e0 80', 'f0 80 80', 'f8 80 80 80', 'fc 80 80 80 80', 'df', 'ef bf', 'f7 bf bf', 'fb bf bf bf', 'fd bf bf bf bf'];

function nonCharacters(): Vector[] {
  const vectors: Vector[] = [ok('ef bf be'), ok('ef bf bf')];
  for (const lead of [0xf0, 0xf1, 0xf2, 0xf3, 0xf4]) {
    for (const second of [0x8f, 0x9f, 0xaf, 0xbf]) {
      if (lead === 0xf4 && second !== 0x8f) continue; // beyond U+10FFFF
      if (lead === 0xf0 && second === 0x8f) continue; // overlong
      for (const last of [0xbe, 0xbf]) vectors.push([true, Buffer.of(lead, second, 0xbf, last)]);
    }
  }
  return vectors;
}

/** Autobahn's groups 6.5 to 6.23, in order. */
const GROUPS: readonly (readonly [title: string, vectors: readonly Vector[]])[] = [
  ['Some valid UTF-8 sequences', [ok('68656c6c6f 24 776f726c64'), ok('68656c6c6f c2a2 776f726c64'), ok('68656c6c6f e282ac 776f726c64'), ok('68656c6c6f f0a4ada2 776f726c64'), [true, KOSME]]],
  [
    'All prefixes of a valid UTF-8 string that contains multi-byte code points',
    // Valid exactly where a prefix ends on a code point boundary: after bytes 2, 5, 7, 9 and 11.
    Array.from({ length: KOSME.length }, (_, i): Vector => [[2, 5, 7, 9, 11].includes(i + 1), KOSME.subarray(0, i + 1)]),
  ],
  ['First possible sequence of a certain length', [ok('00'), ok('c2 80'), ok('e0 a0 80'), ok('f0 90 80 80')]],
  ['First possible sequence length 5/6 (invalid code points)', [bad('f8 88 80 80 80'), bad('fc 84 80 80 80 80')]],
  ['Last possible sequence of a certain length', [ok('7f'), ok('df bf'), ok('ef bf bf'), ok('f4 8f bf bf')]],
  ['Last possible sequence length 4/5/6 (invalid code points)', [bad('f7 bf bf bf'), bad('fb bf bf bf bf'), bad('fd bf bf bf bf bf')]],
  ['Other boundary conditions', [ok('ed 9f bf'), ok('ee 80 80'), ok('ef bf bd'), ok('f4 8f bf bf'), bad('f4 90 80 80')]],
  [
    'Unexpected continuation bytes',
    [
      bad('80'),
      bad('bf'),
      bad('80 bf'),
      bad('80 bf 80'),
      bad('80 bf 80 bf'),
      bad('80 bf 80 bf 80'),
      bad('80 bf 80 bf 80 bf'),
      [false, Buffer.from(Array.from({ length: 0xbf - 0x80 }, (_, i) => 0x80 + i))],
    ],
  ],
  [
    'Lonely start characters',
    [
      [false, lonelyStarts(0xc0, 0xdf)],
      [false, lonelyStarts(0xe0, 0xef)],
      [false, lonelyStarts(0xf0, 0xf7)],
      [false, lonelyStarts(0xf8, 0xfb)],
      [false, lonelyStarts(0xfc, 0xfd)],
    ],
  ],
  ['Sequences with last continuation byte missing', INCOMPLETE.map(bad)],
  ['Concatenation of incomplete sequences', [bad(INCOMPLETE.join(''))]],
  ['Impossible bytes', [bad('fe'), bad('ff'), bad('fe fe ff ff')]],
  ['Examples of an overlong ASCII character', [bad('c0 af'), bad('e0 80 af'), bad('f0 80 80 af'), bad('f8 80 80 80 af'), bad('fc 80 80 80 80 af')]],
  ['Maximum overlong sequences', [bad('c1 bf'), bad('e0 9f bf'), bad('f0 8f bf bf'), bad('f8 87 bf bf bf'), bad('fc 83 bf bf bf bf')]],
  ['Overlong representation of the NUL character', [bad('c0 80'), bad('e0 80 80'), bad('f0 80 80 80'), bad('f8 80 80 80 80'), bad('fc 80 80 80 80 80')]],
  ['Single UTF-16 surrogates', ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf', 'ed b0 80', 'ed be 80', 'ed bf bf'].map(bad)],
  [
    'Paired UTF-16 surrogates',
    ['ed a0 80', 'ed ad bf', 'ed ae 80', 'ed af bf'].flatMap((high) => ['ed b0 80', 'ed bf bf'].map((low) => bad(`${high} ${low}`))),
  ],
  ['Non-character code points (valid UTF-8)', nonCharacters()],
  ['Unicode specials (i.e. replacement char)', ['ef bf b9', 'ef bf ba', 'ef bf bb', 'ef bf bc', 'ef bf bd', 'ef bf be', 'ef bf bf'].map(ok)],
];

function vectorCase(id: string, group: string, [valid, bytes]: Vector): ConformanceCase {
  return {
    id,
    description: `${group}: send a text message of ${valid ? 'valid' : 'invalid'} UTF-8 in one frame: 0x${bytes.toString('hex')}.`,
    expectation: valid
      ? 'The message is echoed; clean close with 1000.'
      : 'The connection is failed by the server (1007 or TCP drop): the payload is not valid UTF-8.',
    quick: true,
    onOpen(run) {
      if (valid) {
        run.expect('OK', [message(bytes)]);
        run.expectClose(normalClose);
      } else {
        run.expect('OK', []);
        run.expectClose(serverFailsUtf8);
      }
      run.client.sendMessage(bytes, false);
      // Autobahn gives these cases 0.5 s.
      run.killAfter(0.5);
    },
  };
}

const vectorCases: ConformanceCase[] = GROUPS.flatMap(([title, vectors], g) =>
  vectors.map((vector, i) => vectorCase(`6.${g + 5}.${i + 1}`, title, vector)),
);

const helloParts = [Buffer.from('Hello-µ@ßöä'), Buffer.from('üàá-UTF-8!!')] as const;
const invalid631 = Buffer.concat([KOSME, SURROGATE, EDITED]);
const invalid641 = Buffer.concat([KOSME, ABOVE_MAX, EDITED]);

export default cases([
  validCase('6.1.1', 'Send a text message of length 0.', (run) => run.client.sendFrame(Opcode.Text, ''), ''),
  validCase(
    '6.1.2',
    'Send a fragmented text message: 3 fragments of length 0.',
    (run) => {
      run.client.sendFrame(Opcode.Text, '', { fin: false });
      run.client.sendFrame(Opcode.Continuation, '', { fin: false });
      run.client.sendFrame(Opcode.Continuation, '');
    },
    '',
  ),
  validCase(
    '6.1.3',
    'Send a fragmented text message: 3 fragments, the first and last of length 0.',
    (run) => {
      run.client.sendFrame(Opcode.Text, '', { fin: false });
      run.client.sendFrame(Opcode.Continuation, 'middle frame payload', { fin: false });
      run.client.sendFrame(Opcode.Continuation, '');
    },
    'middle frame payload',
  ),
  validCase('6.2.1', 'Send a valid UTF-8 text message in one frame.', (run) => run.client.sendMessage(HELLO_UTF8, false), HELLO_UTF8),
  validCase(
    '6.2.2',
    'Send a valid UTF-8 text message in 2 frames, split on a code point boundary.',
    (run) => {
      run.client.sendFrame(Opcode.Text, helloParts[0], { fin: false });
      run.client.sendFrame(Opcode.Continuation, helloParts[1]);
    },
    Buffer.concat(helloParts),
  ),
  validCase(
    '6.2.3',
    'Send a valid UTF-8 text message in frames of 1 byte, so frames end inside code points.',
    (run) => run.client.sendMessage(HELLO_UTF8, false, 1),
    HELLO_UTF8,
  ),
  validCase(
    '6.2.4',
    'Send a valid UTF-8 text message (κόσμε) in frames of 1 byte, so frames end inside code points.',
    (run) => run.client.sendMessage(KOSME, false, 1),
    KOSME,
  ),
  invalidCase(`6.3.1`, `Send an invalid UTF-8 text message in one frame: 0x${invalid631.toString('hex')}.`, (run) =>
    run.client.sendMessage(invalid631, false),
  ),
  invalidCase('6.3.2', 'Send the invalid UTF-8 text message of 6.3.1 in frames of 1 byte.', (run) =>
    run.client.sendMessage(invalid631, false, 1),
  ),
  failFast('6.4.1', [KOSME, ABOVE_MAX, EDITED], false),
  failFast('6.4.2', [invalid641.subarray(0, 12), invalid641.subarray(12, 13), invalid641.subarray(13)], false),
  failFast('6.4.3', [KOSME, ABOVE_MAX, EDITED], true),
  failFast('6.4.4', [invalid641.subarray(0, 12), invalid641.subarray(12, 13), invalid641.subarray(13)], true),
  ...vectorCases,
]);
