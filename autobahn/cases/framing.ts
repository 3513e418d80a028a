/**
 * Section 1, Framing: text (1.1.x) and binary (1.2.x) messages at the payload-length encoding
 * boundaries (7-bit up to 125, 16-bit from 126 to 65535, 64-bit from 65536), echoed unchanged. The
 * last case of each group sends its frame in writes of 997 bytes.
 */
import { Opcode } from '../../src/constants.ts';
import type { ConformanceCase } from '../harness.ts';
import { cases, message, normalClose, repeatTo } from './common.ts';

const SIZES: readonly (readonly [size: number, chop?: number])[] = [
  [0],
  [125],
  [126],
  [127],
  [128],
  [65535],
  [65536],
  [65536, 997],
];

function echoCase(group: 1 | 2, index: number, size: number, chop: number | undefined): ConformanceCase {
  const binary = group === 2;
  const kind = binary ? 'binary' : 'text';
  return {
    id: `1.${group}.${index}`,
    description: `Send a ${kind} message with a payload of ${size} bytes${chop === undefined ? '' : `, written in chops of ${chop} bytes`}.`,
    expectation: `The ${kind} message comes back unchanged; clean close with 1000.`,
    // The boundaries themselves are cheap: all of them run in the quick selection.
    quick: true,
    onOpen(run) {
      const payload = repeatTo(binary ? Buffer.of(0xfe) : '*', size);
      run.expect('OK', [message(payload, binary)]);
      run.expectClose(normalClose);
      run.client.sendFrame(binary ? Opcode.Binary : Opcode.Text, payload, chop === undefined ? {} : { chop });
      run.killAfter(size > 128 ? 10 : 1);
    },
  };
}

export default cases(
  ([1, 2] as const).flatMap((group) => SIZES.map(([size, chop], i) => echoCase(group, i + 1, size, chop))),
);
