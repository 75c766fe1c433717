// Child process for the raw-TCP ceiling: accept one connection, count bytes,
// tell the parent when `argv[2]` bytes have arrived.
import { createServer } from 'node:net';
import { AddressInfo } from 'node:net';

const expected = Number(process.argv[2]);
const server = createServer((socket) => {
  let got = 0;
  socket.on('data', (d) => { got += d.length; if (got >= expected) process.send!('done'); });
});
server.listen(0, '127.0.0.1', () => process.send!((server.address() as AddressInfo).port));
