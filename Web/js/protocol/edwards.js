/**
 * Just enough edwards25519 arithmetic (BigInt, variable time: public keys only) to tell whether
 * a public key lies in the prime-order subgroup (docs/PROTOCOL.md section 3): decompress the
 * point and check that [L]A is the identity. A key of mixed order (a valid key plus a torsion
 * point) passes the small-order check; Circle refuses it at registration and when pinning.
 * The same as CircleCrypto/Edwards25519.swift.
 * @module protocol/edwards
 */
const p = (1n << 255n) - 19n;
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const mod = (a) => ((a % p) + p) % p;

function power(base, exponent) {
  let result = 1n;
  let b = mod(base);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % p;
    b = (b * b) % p;
    e >>= 1n;
  }
  return result;
}

const d = mod(-121665n * power(121666n, p - 2n));
const sqrtMinusOne = power(2n, (p - 1n) / 4n);

/** The point (extended coordinates) a 32-byte encoding names, or null. */
function decode(bytes) {
  if (bytes.length !== 32) return null;
  let n = 0n;
  for (let i = 31; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  const sign = n >> 255n;
  const y = n & ((1n << 255n) - 1n);
  if (y >= p) return null;
  const u = mod(y * y - 1n);
  const v = mod(d * y * y + 1n);
  let x = mod(u * power(v, 3n) * power(u * power(v, 7n), (p - 5n) / 8n));
  if (mod(v * x * x - u) !== 0n) {
    x = mod(x * sqrtMinusOne);
    if (mod(v * x * x - u) !== 0n) return null;
  }
  if (x === 0n && sign === 1n) return null;
  if ((x & 1n) !== sign) x = mod(-x);
  return [x, y, 1n, mod(x * y)];
}

/** The unified addition for a = -1 (complete: d is not a square), also used for doubling. */
function add([x1, y1, z1, t1], [x2, y2, z2, t2]) {
  const a = mod((y1 - x1) * (y2 - x2));
  const b = mod((y1 + x1) * (y2 + x2));
  const c = mod(t1 * 2n * d * t2);
  const dd = mod(z1 * 2n * z2);
  const e = b - a;
  const f = dd - c;
  const g = dd + c;
  const h = b + a;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

/**
 * Whether the encoding is a point of the prime-order subgroup ([L]A is the identity).
 * @param {Uint8Array} bytes
 * @returns {boolean}
 */
export function isInPrimeOrderSubgroup(bytes) {
  let addend = decode(bytes);
  if (!addend) return false;
  let result = [0n, 1n, 1n, 0n];
  for (let k = L; k > 0n; k >>= 1n) {
    if (k & 1n) result = add(result, addend);
    addend = add(addend, addend);
  }
  const [x, y, z] = result;
  return x === 0n && y === z;
}
