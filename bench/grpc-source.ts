// Child process for the gRPC ceiling's sending side: streams `argv[3]` bytes
// of 1 MiB gradient chunks (the generated codec, backpressure respected) to
// the sink at port `argv[2]`, in a fresh process as a worker would, and tells
// the parent when it starts.
import * as grpc from '@grpc/grpc-js';
import { writeWithBackpressure } from '../core/wire/backpressure';
import { CoordinatorClient, DType } from '../proto/gen/tunefleet/v1/tunefleet';

const [port, bytes] = process.argv.slice(2).map(Number);
const MiB = 2 ** 20;

async function main() {
  const client = new CoordinatorClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 16 * MiB });
  const call = client.session();
  call.on('data', () => {});
  call.on('error', () => {});
  const data = new Uint8Array(MiB);
  process.send!('start');
  for (let offset = 0; offset < bytes; offset += MiB) {
    await writeWithBackpressure(call, { kind: { $case: 'gradient', value: { name: 'w', dtype: DType.FLOAT32, shape: [bytes / 4], offset, data } } });
  }
}

void main();
