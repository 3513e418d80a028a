/**
 * Section 2, Pings/Pongs: a ping is answered by a pong with the same payload (0 to 125 bytes, any
 * bytes), a 126-byte ping fails the connection, unsolicited pongs are ignored, ten pings get ten pongs
 * in order, also when every byte arrives in its own TCP write.
 */
import { CloseCode, Opcode } from '../../src/constants.ts';
import type { ConformanceCase } from '../harness.ts';
import { cases, hex, normalClose, pong, repeatTo, serverFails } from './common.ts';

function pingCase(id: string, description: string, payload: Buffer, chop?: number): ConformanceCase {
  return {
    id,
    description,
    expectation: 'A pong with the same payload answers the ping; clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [pong(payload)]);
      run.expectClose(normalClose);
      run.client.sendFrame(Opcode.Ping, payload, chop === undefined ? {} : { chop });
      run.closeAfter(chop === undefined ? 1 : 2);
    },
  };
}

function tenPings(id: string, chop: number | undefined): ConformanceCase {
  return {
    id,
    description: `Send 10 pings with payloads "payload-0" to "payload-9"${chop === undefined ? '' : ', every byte in its own write'}.`,
    expectation: 'Ten pongs with the same payloads, in order (not required by the RFC, checked anyway); clean close with 1000.',
    quick: true,
    onOpen(run) {
      const payloads = Array.from({ length: 10 }, (_, i) => `payload-${i}`);
      run.expect('OK', payloads.map((p) => pong(p)));
      for (const p of payloads) run.client.sendFrame(Opcode.Ping, p, chop === undefined ? {} : { chop });
      run.expectClose(normalClose);
      run.closeAfter(3);
    },
  };
}

export default cases([
  pingCase('2.1', 'Send a ping without payload.', Buffer.alloc(0)),
  pingCase('2.2', 'Send a ping with a small text payload.', Buffer.from('Hello, world!')),
  pingCase('2.3', 'Send a ping with a small binary (non UTF-8) payload.', hex('00 ff fe fd fc fb 00 ff')),
  pingCase('2.4', 'Send a ping with a binary payload of 125 bytes.', repeatTo(Buffer.of(0xfe), 125)),
  {
    id: '2.5',
    description: 'Send a ping with a binary payload of 126 bytes.',
    expectation: 'The connection is failed at once (1002 or TCP drop): control frames carry at most 125 bytes.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(serverFails(CloseCode.ProtocolError));
      run.client.sendFrame(Opcode.Ping, repeatTo(Buffer.of(0xfe), 126));
      run.killAfter(1);
    },
  },
  pingCase('2.6', 'Send a ping with a binary payload of 125 bytes, every byte in its own write.', repeatTo(Buffer.of(0xfe), 125), 1),
  {
    id: '2.7',
    description: 'Send an unsolicited pong without payload, then close.',
    expectation: 'Nothing comes back for the pong; clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(normalClose);
      run.client.sendFrame(Opcode.Pong);
      run.client.sendClose(CloseCode.NormalClosure);
      run.closeAfter(1);
    },
  },
  {
    id: '2.8',
    description: 'Send an unsolicited pong with payload, then close.',
    expectation: 'Nothing comes back for the pong; clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', []);
      run.expectClose(normalClose);
      run.client.sendFrame(Opcode.Pong, 'unsolicited pong payload');
      run.client.sendClose(CloseCode.NormalClosure);
      run.closeAfter(1);
    },
  },
  {
    id: '2.9',
    description: 'Send an unsolicited pong with payload, then a ping with payload.',
    expectation: 'Nothing for the pong, a pong for the ping; clean close with 1000.',
    quick: true,
    onOpen(run) {
      run.expect('OK', [pong('ping payload')]);
      run.expectClose(normalClose);
      run.client.sendFrame(Opcode.Pong, 'unsolicited pong payload');
      run.client.sendFrame(Opcode.Ping, 'ping payload');
      run.closeAfter(1);
    },
  },
  tenPings('2.10', undefined),
  tenPings('2.11', 1),
]);
