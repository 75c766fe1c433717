// The one shape every layer passes tensors in: named Float32Arrays, by a
// variable's stable name (`conv1/kernel`) or a shard's piece name — a
// model's parameters, their gradients, their momentum. Plain data: the math
// over them (optimizer, aggregator, shards) needs no tfjs.
export type Tensors = Map<string, Float32Array>;
