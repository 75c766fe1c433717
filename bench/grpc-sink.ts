// Child process for the gRPC ceiling: a bare Coordinator server (the
// generated codec, no tunefleet logic) that counts the gradient bytes one
// Session stream brings and tells the parent when `argv[2]` have arrived.
import * as grpc from '@grpc/grpc-js';
import { CoordinatorService, WorkerMessage } from '../proto/gen/tunefleet/v1/tunefleet';

const expected = Number(process.argv[2]);
const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 << 20 });
server.addService(CoordinatorService, {
  session: (call: grpc.ServerDuplexStream<WorkerMessage, unknown>) => {
    let got = 0;
    call.on('data', (m: WorkerMessage) => {
      if (m.kind?.$case === 'gradient') got += m.kind.value.data.length;
      if (got >= expected) { process.send!('done'); call.end(); }
    });
  },
  getLedger: () => {},
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (_err, port) => process.send!(port));
