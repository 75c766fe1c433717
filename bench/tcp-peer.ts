// Child process for the raw-TCP ceiling: one "worker" of the step's traffic
// pattern. Connects to the parent, and `argv[4]` times receives `argv[3]`
// bytes (read with onread straight into one preallocated buffer, the best
// node allows) and then sends them back.
import { connect } from 'node:net';

const [port, bytes, rounds] = process.argv.slice(2).map(Number);
const buffer = Buffer.alloc(bytes);
let got = 0;
let round = 0;
const socket = connect({
  port, host: '127.0.0.1',
  onread: {
    buffer: () => buffer.subarray(got, Math.min(bytes, got + (4 << 20))),
    callback: (n) => {
      got += n;
      if (got < bytes) return true;
      got = 0;
      socket.write(buffer);
      if (++round === rounds) socket.end();
      return true;
    },
  },
});
socket.setNoDelay(true);
