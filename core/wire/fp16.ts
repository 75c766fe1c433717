// IEEE 754 half precision for gradient transfer (cluster.gradientDtype:
// float16): half the bytes of float32, ~3 significant digits, range
// ±65504, smallest subnormal 6e-8. Node 20 has no Float16Array, so the
// conversions are table-driven (van der Pol, "Fast Half Float Conversions"):
// one lookup per element, rounding to nearest even.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// float32 → float16: by the float32's sign and exponent (9 bits), a base
// (sign and exponent bits) and how far to shift the 24-bit mantissa (with its
// implicit leading 1) right; NONE: the result is the base alone.
const NONE = 255;
const BASE = new Uint16Array(512);
const SHIFT = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  const e = i - 127;
  const [base, shift] =
    e < -25 ? [0, NONE] // under half the smallest subnormal: ±0
      : e < -14 ? [0, -e - 1] // subnormal: the mantissa, implicit 1 included, in units of 2^-24
        : e <= 15 ? [(e + 14) << 10, 13] // normal: the implicit 1 adds the last exponent step
          : [0x7c00, NONE]; // too large, Inf or NaN: ±Inf (NaN below)
  BASE[i] = base; BASE[i | 0x100] = base | 0x8000;
  SHIFT[i] = shift; SHIFT[i | 0x100] = shift;
}

/** float32 values → float16 bits, rounded to nearest even. */
export function toFloat16(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const x = u32[0];
    const idx = x >>> 23;
    const shift = SHIFT[idx];
    let h = BASE[idx];
    if ((idx & 0xff) === 0xff && x & 0x7fffff) h |= 0x200; // NaN stays NaN
    else if (shift !== NONE) {
      const m = (x & 0x7fffff) | 0x800000;
      const kept = m >>> shift;
      const rest = m - kept * 2 ** shift;
      const half = 2 ** (shift - 1);
      h += kept + (rest > half || (rest === half && kept & 1) ? 1 : 0); // a carry rolls into the exponent, as it should
    }
    out[i] = h;
  }
  return out;
}

// float16 → float32: every one of the 65536 values, precomputed.
const HALF_TO_FLOAT = new Float32Array(65536);
for (let h = 0; h < 65536; h++) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  HALF_TO_FLOAT[h] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** float16 bits → float32 values (exact). */
export function fromFloat16(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  for (let i = 0; i < bits.length; i++) out[i] = HALF_TO_FLOAT[bits[i]];
  return out;
}

/** Magnitudes from here up round to ±Inf in float16 (65504 is the largest half; 65520 is the tie above it, rounding to even: up). */
export const FLOAT16_OVERFLOW = 65520;

/**
 * Whether `values` survive float16 without turning finite numbers into ±Inf.
 * A worker sends a gradient that does not as float32 instead (the coordinator
 * accepts either when the job asks for float16), so a large but finite
 * gradient is never mistaken for a diverged model or a bad worker.
 */
export function fitsFloat16(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]) >= FLOAT16_OVERFLOW) return false;
  return true;
}
