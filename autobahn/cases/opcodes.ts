/**
 * Section 4, Opcodes: reserved data opcodes 3-7 (4.1.x) and reserved control opcodes 11-15 (4.2.x)
 * fail the connection with 1002 (or a TCP drop), RFC 6455 §5.2. Where a valid message precedes the bad
 * frame, echoing it first is strict (OK), failing before echoing it is NON-STRICT.
 */
import type { WriteOptions } from '../client.ts';
import type { ConformanceCase } from '../harness.ts';
import { cases, failsAfterMessage, failsOnFrame, HELLO } from './common.ts';

function kindOf(opcode: number): string {
  return opcode < 8 ? 'non-control' : 'control';
}

function alone(id: string, opcode: number, payload: string): ConformanceCase {
  return failsOnFrame(
    id,
    `Send a frame with the reserved ${kindOf(opcode)} opcode ${opcode}${payload === '' ? '' : ' and a payload'}.`,
    'The connection is failed at once (1002 or TCP drop).',
    { opcode, payload },
  );
}

function afterMessage(id: string, opcode: number, payload: string, write: WriteOptions): ConformanceCase {
  return failsAfterMessage(
    id,
    `Send a small text message, then a frame with the reserved ${kindOf(opcode)} opcode ${opcode}` +
      `${payload === '' ? '' : ' and a payload'}, then a ping${write.chop === 1 ? ', every byte in its own write' : ''}.`,
    'The message is echoed, then the connection is failed (1002 or TCP drop); no pong.',
    { opcode, payload },
    write,
  );
}

export default cases([
  alone('4.1.1', 3, ''),
  alone('4.1.2', 4, 'reserved opcode payload'),
  afterMessage('4.1.3', 5, '', {}),
  afterMessage('4.1.4', 6, HELLO, {}),
  afterMessage('4.1.5', 7, HELLO, { chop: 1 }),
  alone('4.2.1', 11, ''),
  alone('4.2.2', 12, 'reserved opcode payload'),
  afterMessage('4.2.3', 13, '', {}),
  afterMessage('4.2.4', 14, HELLO, {}),
  afterMessage('4.2.5', 15, HELLO, { chop: 1 }),
]);
