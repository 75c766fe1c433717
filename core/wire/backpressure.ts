// Writing to a gRPC stream without outrunning the peer: when write() reports
// a full buffer, wait for 'drain' (or for the stream to close, so a dead peer
// never hangs the writer).
import { Writable } from 'node:stream';

export async function writeWithBackpressure<T>(stream: Writable, msg: T): Promise<void> {
  if (stream.write(msg)) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
