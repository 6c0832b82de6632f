// A small QR code encoder (ISO/IEC 18004): byte mode, error correction level M, versions 1 to 10,
// mask chosen by the standard's penalty rules. Enough for a safety number's payload; it renders
// to an SVG element built through the DOM (no markup strings, no inline styles).

const SVG_NS = 'http://www.w3.org/2000/svg';

// Per version: [error correction codewords per block, [[block count, data codewords], ...]].
const LEVEL_M_BLOCKS = [
  null,
  [10, [[1, 16]]],
  [16, [[1, 28]]],
  [26, [[1, 44]]],
  [18, [[2, 32]]],
  [24, [[2, 43]]],
  [16, [[4, 27]]],
  [18, [[4, 31]]],
  [22, [[2, 38], [2, 39]]],
  [22, [[3, 36], [2, 37]]],
  [26, [[4, 43], [1, 44]]],
];

const ALIGNMENT_CENTRES = [
  null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34],
  [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50],
];

const LEVEL_M_FORMAT_BITS = 0b00;
const MAX_VERSION = 10;
const PENALTY_RUN = 3;
const PENALTY_BLOCK = 3;
const PENALTY_FINDER = 40;
const PENALTY_BALANCE = 10;

/** Data codewords a version holds at level M. */
function dataCapacity(version) {
  return LEVEL_M_BLOCKS[version][1].reduce((sum, [count, size]) => sum + count * size, 0);
}

/** The largest number of bytes a QR code of versions 1 to 10 at level M can hold. */
export const MAX_QR_BYTES = dataCapacity(MAX_VERSION) - 3;

function countBits(version) {
  return version < 10 ? 8 : 16;
}

// GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1.
function gfMultiply(x, y) {
  let product = 0;
  for (let bit = 7; bit >= 0; bit--) {
    product = (product << 1) ^ ((product >>> 7) * 0x11d);
    product ^= ((y >>> bit) & 1) * x;
  }
  return product & 0xff;
}

function reedSolomonDivisor(degree) {
  const divisor = new Uint8Array(degree);
  divisor[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < degree; j++) {
      divisor[j] = gfMultiply(divisor[j], root);
      if (j + 1 < degree) divisor[j] ^= divisor[j + 1];
    }
    root = gfMultiply(root, 0x02);
  }
  return divisor;
}

function reedSolomonRemainder(data, divisor) {
  const remainder = new Uint8Array(divisor.length);
  for (const byte of data) {
    const factor = byte ^ remainder[0];
    remainder.copyWithin(0, 1);
    remainder[remainder.length - 1] = 0;
    for (let i = 0; i < divisor.length; i++) remainder[i] ^= gfMultiply(divisor[i], factor);
  }
  return remainder;
}

function toBytes(input) {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  return new TextEncoder().encode(String(input));
}

function chooseVersion(length) {
  for (let version = 1; version <= MAX_VERSION; version++) {
    const bitsNeeded = 4 + countBits(version) + 8 * length;
    if (bitsNeeded <= dataCapacity(version) * 8) return version;
  }
  throw new RangeError(`Too much data for a QR code up to version ${MAX_VERSION} (${length} bytes; at most ${MAX_QR_BYTES}).`);
}

function dataCodewords(bytes, version) {
  const capacityBits = dataCapacity(version) * 8;
  const bits = [];
  const push = (value, length) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  push(0b0100, 4);
  push(bytes.length, countBits(version));
  for (const byte of bytes) push(byte, 8);
  push(0, Math.min(4, capacityBits - bits.length));
  push(0, (8 - (bits.length % 8)) % 8);
  const codewords = [];
  for (let i = 0; i < bits.length; i += 8) {
    let byte = 0;
    for (let j = 0; j < 8; j++) byte = (byte << 1) | bits[i + j];
    codewords.push(byte);
  }
  for (let pad = 0xec; codewords.length < capacityBits / 8; pad ^= 0xec ^ 0x11) codewords.push(pad);
  return codewords;
}

function interleavedCodewords(data, version) {
  const [ecLength, groups] = LEVEL_M_BLOCKS[version];
  const divisor = reedSolomonDivisor(ecLength);
  const blocks = [];
  let offset = 0;
  for (const [count, size] of groups) {
    for (let i = 0; i < count; i++) {
      const block = data.slice(offset, offset + size);
      offset += size;
      blocks.push({ data: block, ec: reedSolomonRemainder(block, divisor) });
    }
  }
  const result = [];
  const longest = Math.max(...blocks.map((block) => block.data.length));
  for (let i = 0; i < longest; i++) {
    for (const block of blocks) if (i < block.data.length) result.push(block.data[i]);
  }
  for (let i = 0; i < ecLength; i++) {
    for (const block of blocks) result.push(block.ec[i]);
  }
  return result;
}

class Matrix {
  constructor(version) {
    this.version = version;
    this.size = version * 4 + 17;
    this.dark = new Uint8Array(this.size * this.size);
    this.reserved = new Uint8Array(this.size * this.size);
  }

  get(x, y) {
    return this.dark[y * this.size + x] === 1;
  }

  set(x, y, dark) {
    this.dark[y * this.size + x] = dark ? 1 : 0;
  }

  setFunction(x, y, dark) {
    this.set(x, y, dark);
    this.reserved[y * this.size + x] = 1;
  }

  isReserved(x, y) {
    return this.reserved[y * this.size + x] === 1;
  }

  drawFunctionPatterns() {
    const { size } = this;
    for (let i = 0; i < size; i++) {
      this.setFunction(6, i, i % 2 === 0);
      this.setFunction(i, 6, i % 2 === 0);
    }
    this.drawFinder(3, 3);
    this.drawFinder(size - 4, 3);
    this.drawFinder(3, size - 4);
    const centres = ALIGNMENT_CENTRES[this.version];
    const last = centres.length - 1;
    centres.forEach((x, i) => {
      centres.forEach((y, j) => {
        const overlapsFinder = (i === 0 && j === 0) || (i === 0 && j === last) || (i === last && j === 0);
        if (!overlapsFinder) this.drawAlignment(x, y);
      });
    });
    this.drawFormatBits(0);
    this.drawVersionBits();
  }

  drawFinder(cx, cy) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx;
        const y = cy + dy;
        if (x < 0 || y < 0 || x >= this.size || y >= this.size) continue;
        const distance = Math.max(Math.abs(dx), Math.abs(dy));
        this.setFunction(x, y, distance !== 2 && distance !== 4);
      }
    }
  }

  drawAlignment(cx, cy) {
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) {
        this.setFunction(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
      }
    }
  }

  drawFormatBits(mask) {
    const data = (LEVEL_M_FORMAT_BITS << 3) | mask;
    let remainder = data;
    for (let i = 0; i < 10; i++) remainder = (remainder << 1) ^ ((remainder >>> 9) * 0x537);
    const bits = ((data << 10) | remainder) ^ 0x5412;
    const bit = (i) => ((bits >>> i) & 1) === 1;
    const { size } = this;
    for (let i = 0; i <= 5; i++) this.setFunction(8, i, bit(i));
    this.setFunction(8, 7, bit(6));
    this.setFunction(8, 8, bit(7));
    this.setFunction(7, 8, bit(8));
    for (let i = 9; i < 15; i++) this.setFunction(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) this.setFunction(size - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) this.setFunction(8, size - 15 + i, bit(i));
    this.setFunction(8, size - 8, true);
  }

  drawVersionBits() {
    if (this.version < 7) return;
    let remainder = this.version;
    for (let i = 0; i < 12; i++) remainder = (remainder << 1) ^ ((remainder >>> 11) * 0x1f25);
    const bits = (this.version << 12) | remainder;
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >>> i) & 1) === 1;
      const a = this.size - 11 + (i % 3);
      const b = Math.floor(i / 3);
      this.setFunction(a, b, dark);
      this.setFunction(b, a, dark);
    }
  }

  drawCodewords(codewords) {
    const { size } = this;
    const totalBits = codewords.length * 8;
    let index = 0;
    for (let right = size - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      const upward = ((right + 1) & 2) === 0;
      for (let step = 0; step < size; step++) {
        const y = upward ? size - 1 - step : step;
        for (let j = 0; j < 2; j++) {
          const x = right - j;
          if (this.isReserved(x, y)) continue;
          const dark = index < totalBits && ((codewords[index >>> 3] >>> (7 - (index & 7))) & 1) === 1;
          this.set(x, y, dark);
          index++;
        }
      }
    }
  }

  applyMask(mask) {
    for (let y = 0; y < this.size; y++) {
      for (let x = 0; x < this.size; x++) {
        if (this.isReserved(x, y)) continue;
        if (maskApplies(mask, x, y)) this.dark[y * this.size + x] ^= 1;
      }
    }
  }

  penalty() {
    const { size } = this;
    let score = 0;
    for (let line = 0; line < size; line++) {
      score += this.linePenalty((i) => this.get(i, line));
      score += this.linePenalty((i) => this.get(line, i));
    }
    for (let y = 0; y < size - 1; y++) {
      for (let x = 0; x < size - 1; x++) {
        const colour = this.get(x, y);
        if (colour === this.get(x + 1, y) && colour === this.get(x, y + 1) && colour === this.get(x + 1, y + 1)) {
          score += PENALTY_BLOCK;
        }
      }
    }
    let darkCount = 0;
    for (const module of this.dark) darkCount += module;
    const total = size * size;
    const k = Math.ceil(Math.abs(darkCount * 20 - total * 10) / total) - 1;
    score += k * PENALTY_BALANCE;
    return score;
  }

  // Runs of five or more of one colour, and finder-like 1:1:3:1:1 patterns with four light
  // modules on either side (the light area outside the symbol counts as light).
  linePenalty(moduleAt) {
    const { size } = this;
    let score = 0;
    let runColour = false;
    let runLength = 0;
    const history = [0, 0, 0, 0, 0, 0, 0];
    const addHistory = (length) => {
      if (history[0] === 0) length += size;
      history.pop();
      history.unshift(length);
    };
    const finderPatterns = () => {
      const n = history[1];
      const core = n > 0 && history[2] === n && history[3] === n * 3 && history[4] === n && history[5] === n;
      return (core && history[0] >= n * 4 && history[6] >= n ? 1 : 0) + (core && history[6] >= n * 4 && history[0] >= n ? 1 : 0);
    };
    for (let i = 0; i < size; i++) {
      const colour = moduleAt(i);
      if (colour === runColour) {
        runLength++;
        if (runLength === 5) score += PENALTY_RUN;
        else if (runLength > 5) score += 1;
      } else {
        addHistory(runLength);
        if (!runColour) score += finderPatterns() * PENALTY_FINDER;
        runColour = colour;
        runLength = 1;
      }
    }
    if (runColour) {
      addHistory(runLength);
      runLength = 0;
    }
    addHistory(runLength + size);
    score += finderPatterns() * PENALTY_FINDER;
    return score;
  }
}

function maskApplies(mask, x, y) {
  switch (mask) {
    case 0: return (x + y) % 2 === 0;
    case 1: return y % 2 === 0;
    case 2: return x % 3 === 0;
    case 3: return (x + y) % 3 === 0;
    case 4: return (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0;
    case 5: return ((x * y) % 2) + ((x * y) % 3) === 0;
    case 6: return (((x * y) % 2) + ((x * y) % 3)) % 2 === 0;
    case 7: return (((x + y) % 2) + ((x * y) % 3)) % 2 === 0;
    default: throw new RangeError(`No QR mask ${mask}`);
  }
}

/**
 * Encodes text (as UTF-8) or bytes. Returns {version, mask, size, isDark(x, y)}.
 * `mask` forces one of the eight masks; by default the one with the lowest penalty is used.
 */
export function encodeQR(input, { mask } = {}) {
  const bytes = toBytes(input);
  const version = chooseVersion(bytes.length);
  const codewords = interleavedCodewords(dataCodewords(bytes, version), version);
  const matrix = new Matrix(version);
  matrix.drawFunctionPatterns();
  matrix.drawCodewords(codewords);

  let chosen = mask;
  if (chosen === undefined) {
    let lowest = Infinity;
    for (let candidate = 0; candidate < 8; candidate++) {
      matrix.applyMask(candidate);
      matrix.drawFormatBits(candidate);
      const score = matrix.penalty();
      if (score < lowest) {
        lowest = score;
        chosen = candidate;
      }
      matrix.applyMask(candidate);
    }
  }
  matrix.applyMask(chosen);
  matrix.drawFormatBits(chosen);
  const { size } = matrix;
  return { version, mask: chosen, size, isDark: (x, y) => matrix.get(x, y) };
}

/** The code as an SVG element: dark modules as one path on a light background with a quiet zone. */
export function qrToSvg(qr, { label, quietZone = 4 } = {}) {
  const extent = qr.size + quietZone * 2;
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${extent} ${extent}`);
  svg.setAttribute('class', 'qr-code');
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.setAttribute('role', 'img');
  if (label) svg.setAttribute('aria-label', label);
  const background = document.createElementNS(SVG_NS, 'rect');
  background.setAttribute('width', String(extent));
  background.setAttribute('height', String(extent));
  background.setAttribute('fill', '#ffffff');
  svg.append(background);
  const parts = [];
  for (let y = 0; y < qr.size; y++) {
    for (let x = 0; x < qr.size; x++) {
      if (qr.isDark(x, y)) parts.push(`M${x + quietZone} ${y + quietZone}h1v1h-1z`);
    }
  }
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', parts.join(''));
  path.setAttribute('fill', '#000000');
  svg.append(path);
  return svg;
}
