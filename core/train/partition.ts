// How parameter shards (cluster.shards > 0) split the model: the variables,
// in model order, as one flat vector of float32s, cut into equal partitions
// of at most `partitionBytes`, handed round-robin to the shards. A variable
// may span partitions, so a shard holds *pieces*: element ranges of
// variables. The partition count is a multiple of the shard count, so every
// shard holds the same number of partitions and the same bytes, give or take
// the rounding of the last one.
//
// The coordinator, every shard and every worker compute the same layout from
// the same inputs (the variables' sizes, the shard count, the partition
// size); a frame names a piece by its index in its shard's list.
export interface Piece {
  /** The variable: its index in model order. */
  variable: number;
  /** First element of the range within the variable, and how many. */
  start: number;
  count: number;
}

/** Each shard's pieces, in flat-vector order: `layout[s][i]` is piece i of shard s. */
export type Layout = Piece[][];

export function partition(sizes: number[], shards: number, partitionBytes: number): Layout {
  if (!(Number.isInteger(shards) && shards >= 1)) throw new Error(`shards must be a whole number >= 1, not ${shards}`);
  const total = sizes.reduce((a, n) => a + n, 0);
  const perPartition = Math.max(1, Math.floor(partitionBytes / 4));
  const partitions = shards * Math.max(1, Math.ceil(total / (shards * perPartition)));
  const size = Math.ceil(total / partitions);
  const layout: Layout = Array.from({ length: shards }, () => []);
  let variable = 0, start = 0; // where the walk over the flat vector stands
  for (let p = 0; p < partitions; p++) {
    let room = size;
    while (room > 0 && variable < sizes.length) {
      const count = Math.min(room, sizes[variable] - start);
      if (count > 0) layout[p % shards].push({ variable, start, count });
      room -= count;
      start += count;
      if (start === sizes[variable]) { variable++; start = 0; }
    }
  }
  return layout;
}

/** The name a piece goes by in a shard's buffers and its snapshots: `p<index>`. */
export const pieceName = (i: number) => `p${i}`;
export const pieceIndex = (name: string) => Number(name.slice(1));

/** Each variable's pieces, with the shard and index each has there, in element order (how a worker routes a gradient). */
export function piecesByVariable(layout: Layout, variables: number): { shard: number; index: number; piece: Piece }[][] {
  const out: { shard: number; index: number; piece: Piece }[][] = Array.from({ length: variables }, () => []);
  layout.forEach((pieces, shard) => pieces.forEach((piece, index) => out[piece.variable].push({ shard, index, piece })));
  for (const list of out) list.sort((a, b) => a.piece.start - b.piece.start);
  return out;
}

/** Views of `tensors` (whole variables by name) for those of `pieces` whose variable it holds, by piece name: how a shard's pieces are read from and written into whole variables. */
export function pieceViews(pieces: Piece[], variables: { name: string }[], tensors: Map<string, Float32Array>): Map<string, Float32Array> {
  const views = new Map<string, Float32Array>();
  pieces.forEach((p, i) => {
    const whole = tensors.get(variables[p.variable].name);
    if (whole) views.set(pieceName(i), whole.subarray(p.start, p.start + p.count));
  });
  return views;
}
