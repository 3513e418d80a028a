/**
 * Section 7, Close Handling (RFC 6455 §5.5.1, §7): the client starts the closing handshake in every
 * case. Nothing is processed after a close frame (7.1.x); a close payload of 1 byte or over 125 bytes,
 * or with a reason that is not UTF-8, is a violation (7.3.x, 7.5.1); valid codes are answered with 1000
 * or echoed (7.7.x); codes that may not be sent are answered with 1002 or a TCP drop (7.9.x). In this
 * section an answer with a close code that is not allowed fails the case. 7.1.6 and 7.13.x are
 * informational: the RFC leaves their outcome open.
 */
import { CloseCode, Opcode } from '../../src/constants.ts';
import { Behavior, CloseBehavior, type ConformanceCase, type ExpectedClose } from '../harness.ts';
import { KiB, cases, hex, message, normalClose, repeatTo, wrongCodeIsFatal } from './common.ts';

const HELLO = 'Hello World!';

/** The client closes; the server answers with one of `codes` (or, when not `clean`, may drop TCP). */
const clientCloses = (codes: readonly number[], clean: boolean): ExpectedClose => ({
  closedByMe: true,
  codes,
  requireClean: clean,
});

function closeCase(
  id: string,
  description: string,
  expectation: string,
  close: ExpectedClose,
  send: ConformanceCase['onOpen'],
): ConformanceCase {
  return {
    id,
    description,
    expectation,
    quick: true,
    suppressClose: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(close);
      send(run);
      run.killAfter(1);
    },
    finish: wrongCodeIsFatal,
  };
}

const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999];
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999];

function informational(id: string, description: string, code: number): ConformanceCase {
  return {
    id,
    description,
    expectation: 'Undefined by the RFC: recorded for information.',
    quick: true,
    suppressClose: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(clientCloses([CloseCode.NormalClosure, code, CloseCode.ProtocolError], false));
      run.client.sendCloseFrame(code);
      run.killAfter(1);
    },
    finish(verdict) {
      verdict.behavior = Behavior.Informational;
      verdict.behaviorClose = CloseBehavior.Informational;
      verdict.result = 'Undefined by the RFC.';
    },
  };
}

export default cases([
  {
    id: '7.1.1',
    description: 'Send a message, then (once it is echoed) a close frame.',
    expectation: 'The message is echoed, then a clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [message(HELLO)]);
      run.expectClose(normalClose);
      run.client.sendFrame(Opcode.Text, HELLO);
      run.killAfter(1);
    },
    finish: wrongCodeIsFatal,
  },
  closeCase('7.1.2', 'Send two close frames.', 'Clean close with 1000; the second close frame is ignored.', normalClose, (run) => {
    run.client.sendClose(CloseCode.NormalClosure);
    run.client.sendFrame(Opcode.Close);
  }),
  closeCase('7.1.3', 'Send a ping after the close frame.', 'Clean close with 1000; no pong.', normalClose, (run) => {
    run.client.sendClose(CloseCode.NormalClosure);
    run.client.sendFrame(Opcode.Ping);
  }),
  closeCase('7.1.4', 'Send a text message after the close frame.', 'Clean close with 1000; the message is ignored.', normalClose, (run) => {
    run.client.sendClose(CloseCode.NormalClosure);
    run.client.sendFrame(Opcode.Text, HELLO);
  }),
  closeCase(
    '7.1.5',
    'Send the first fragment of a message, a close frame, then the last fragment.',
    'Clean close with 1000; nothing is echoed.',
    normalClose,
    (run) => {
      run.client.sendFrame(Opcode.Text, 'fragment1', { fin: false });
      run.client.sendClose(CloseCode.NormalClosure);
      run.client.sendFrame(Opcode.Continuation, 'fragment2');
    },
  ),
  {
    id: '7.1.6',
    description: 'Send a 256 KiB text message, a small text message, a close frame and a ping, back to back.',
    expectation:
      'Depends on how the server orders its writes: the messages may or may not be echoed before the close. ' +
      'Recorded for information.',
    quick: true,
    suppressClose: true,
    onOpen(run) {
      run.expect('OK', [message(HELLO)]);
      run.expect('NON-STRICT', []);
      run.expectClose(normalClose);
      run.client.sendFrame(Opcode.Text, repeatTo('BAsd7&jh23', 256 * KiB));
      run.client.sendFrame(Opcode.Text, HELLO);
      run.client.sendClose(CloseCode.NormalClosure);
      run.client.sendFrame(Opcode.Ping);
      run.killAfter(1);
    },
    finish(verdict, run) {
      // Autobahn's lists: OK when only the small message came back, NON-STRICT when none did. A server
      // that echoes both messages before the close matches neither; all three are informational.
      const echoed = run.received.filter((event) => event.kind === 'message').length;
      verdict.result = `${echoed} of the 2 messages were echoed before the close.`;
      verdict.behavior = Behavior.Informational;
      verdict.behaviorClose = CloseBehavior.Informational;
    },
  },
  closeCase('7.3.1', 'Send a close frame with an empty payload (no code, no reason).', 'Clean close with 1000.', normalClose, (run) =>
    run.client.sendCloseFrame(null),
  ),
  closeCase(
    '7.3.2',
    'Send a close frame with a payload of 1 byte.',
    'Close with 1002 or a TCP drop.',
    clientCloses([CloseCode.ProtocolError], false),
    (run) => run.client.sendCloseFrame(null, 'a'),
  ),
  closeCase('7.3.3', 'Send a close frame with a payload of 2 bytes (the code 1000).', 'Clean close with 1000.', normalClose, (run) =>
    run.client.sendClose(CloseCode.NormalClosure),
  ),
  closeCase('7.3.4', 'Send a close frame with the code 1000 and a reason.', 'Clean close with 1000.', normalClose, (run) =>
    run.client.sendClose(CloseCode.NormalClosure, HELLO),
  ),
  closeCase(
    '7.3.5',
    'Send a close frame with the code 1000 and a reason of the maximum length (123 bytes).',
    'Clean close with 1000.',
    normalClose,
    (run) => run.client.sendClose(CloseCode.NormalClosure, '*'.repeat(123)),
  ),
  closeCase(
    '7.3.6',
    'Send a close frame with the code 1000 and a reason of 124 bytes (a 126-byte payload).',
    'Close with 1002 or a TCP drop: a control frame carries at most 125 bytes.',
    clientCloses([CloseCode.ProtocolError], false),
    (run) => run.client.sendCloseFrame(CloseCode.NormalClosure, '*'.repeat(124)),
  ),
  closeCase(
    '7.5.1',
    'Send a close frame with the code 1000 and a reason that is not valid UTF-8.',
    'Close with 1002 or 1007, or a TCP drop.',
    clientCloses([CloseCode.ProtocolError, CloseCode.InvalidFramePayloadData], false),
    (run) => run.client.sendCloseFrame(CloseCode.NormalClosure, hex('ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64')),
  ),
  ...VALID_CODES.map((code, i) =>
    closeCase(
      `7.7.${i + 1}`,
      `Send a close frame with the valid close code ${code}.`,
      'Clean close with 1000 or the code echoed.',
      clientCloses([CloseCode.NormalClosure, code], true),
      (run) => run.client.sendCloseFrame(code),
    ),
  ),
  ...INVALID_CODES.map((code, i) =>
    closeCase(
      `7.9.${i + 1}`,
      `Send a close frame with the close code ${code}, which may not be sent.`,
      'Close with 1002 or a TCP drop.',
      clientCloses([CloseCode.ProtocolError], false),
      (run) => run.client.sendCloseFrame(code),
    ),
  ),
  informational('7.13.1', 'Send a close frame with the close code 5000.', 5000),
  informational('7.13.2', 'Send a close frame with the close code 65535.', 65535),
]);
