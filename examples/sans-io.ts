/**
 * The protocol core without a socket: feed it bytes, pull events, collect the bytes it writes.
 *
 *   node --import tsx examples/sans-io.ts
 */
import { Protocol, acceptKey, type ProtocolSink } from '../src/protocol/index.ts';

const written: Buffer[] = [];
const sink: ProtocolSink = {
  writeFrame(header, payload) {
    written.push(payload === null ? header : Buffer.concat([header, payload]));
  },
  endTransport() {
    written.push(Buffer.from('<end of transport>'));
  },
  awaitTransportEnd() {
    written.push(Buffer.from('<waiting for the server to end the transport>'));
  },
};

const protocol = new Protocol(sink, { role: 'server', maxMessageSize: 1024 * 1024 });

// RFC 6455 §5.7: a masked text frame "Hello", delivered in two TCP reads.
const frame = Buffer.from('818537fa213d7f9f4d5158', 'hex');
protocol.receive(frame.subarray(0, 4));
protocol.receive(frame.subarray(4));

const message = protocol.nextEvent();
if (message !== undefined && message.type !== 'close') {
  console.log(`received ${message.type}: ${message.text}`);
  protocol.sendMessage(message); // echo it: 81 05 48 65 6c 6c 6f
}

// A masked close frame with code 1000: pulling the close event answers it.
protocol.receive(Buffer.from('88820000000003e8', 'hex'));
console.log(protocol.nextEvent()); // { type: 'close', code: 1000, reason: '', initiator: 'peer', error: null }

for (const bytes of written) console.log('wrote', bytes.toString('hex'));
console.log('state:', protocol.state);
console.log('accept key for the RFC §1.3 example:', acceptKey('dGhlIHNhbXBsZSBub25jZQ=='));
