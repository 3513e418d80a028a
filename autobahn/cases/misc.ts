/**
 * Section 10, Misc: 10.1.1 sends a 64 KiB text message auto-fragmented into frames of 1300 bytes (one
 * text frame, 50 continuations, the last of 536 bytes) and expects it echoed as one message.
 */
import { Opcode } from '../../src/constants.ts';
import { Behavior } from '../harness.ts';
import { KiB, cases, message, normalClose, repeatTo } from './common.ts';

const FRAGMENT = 1300;
const LENGTH = 64 * KiB;

export default cases([
  {
    id: '10.1.1',
    description: `Send a text message of ${LENGTH} bytes, auto-fragmented into frames of ${FRAGMENT} bytes.`,
    expectation: 'The message comes back unchanged (and the expected frame counts were sent); clean close with 1000.',
    quick: true,
    onOpen(run) {
      const payload = repeatTo('*', LENGTH);
      run.expect('OK', [message(payload)]);
      run.expectClose(normalClose);
      run.client.sendMessage(payload, false, FRAGMENT);
      run.killAfter(10);
    },
    finish(verdict, run) {
      // Autobahn checks the frames it sent itself: one text frame and floor(65536 / 1300) continuations.
      const text = run.client.txFrames.get(Opcode.Text) ?? 0;
      const continuations = run.client.txFrames.get(Opcode.Continuation) ?? 0;
      if (text !== 1 || continuations !== Math.floor(LENGTH / FRAGMENT)) {
        verdict.behavior = Behavior.Failed;
        verdict.result = `Sent ${text} text and ${continuations} continuation frames, expected 1 and ${Math.floor(LENGTH / FRAGMENT)}.`;
      }
    },
  },
]);
