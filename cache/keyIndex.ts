/**
 * The cache's index: key hash -> engine handle, in three typed arrays and a bitset instead of a
 * Map of strings (the target: 24 bytes or less per entry at a million entries).
 *
 * - Open addressing with linear probing in Robin Hood order, and backward-shift deletion (no
 *   tombstones), over a table of any size: the home slot is `hash * capacity / 2^32`, so the
 *   table grows by half (not double) and stays between MIN_LOAD and MAX_LOAD full.
 * - A slot holds the key's 32-bit hash (0 means empty: a hash of 0 is stored as 1) and the
 *   handle's two 32-bit halves, side by side in one Uint32Array (three words a slot), so a probe
 *   touches one cache line, not three. The index never holds keys: two keys with one hash are told
 *   apart by the caller's `matches`, which compares the full key stored beside the value (so a
 *   collision costs a read, never another key's value).
 * - One access bit per slot, set by `touch`, for the cache's reinsertion (CLOCK-style).
 */

/** A position in the table's arrays (not a count): branded so it is not mixed with one. */
type Slot = number & { readonly __slot: unique symbol };

/** Fullest the table gets before it grows by GROWTH. */
export const MAX_LOAD = 0.85;
/** Growth factor: after growing the table is MAX_LOAD / GROWTH full (about 57%). */
export const GROWTH = 1.5;
export const MIN_CAPACITY_SLOTS = 64;
/** Words of the table per slot: tag, handle high, handle low. */
const WORDS_PER_SLOT = 3;
/** Bytes one slot costs: tag, handle high and low words, and its access bit. */
export const BYTES_PER_SLOT = 4 + 4 + 4 + 1 / 8;

const TWO_POW_32 = 4294967296;

/** Called with a candidate's handle: is this the entry for the key being looked up? */
export type Matches = (handle: bigint) => boolean;

export class KeyIndex {
  #capacity: number;
  /** [tag, handle hi, handle lo] per slot. */
  #table: Uint32Array;
  #accessed: Uint8Array;
  #size = 0;

  constructor(initialCapacity = MIN_CAPACITY_SLOTS) {
    if (!Number.isSafeInteger(initialCapacity) || initialCapacity < 1) {
      throw new RangeError(`KeyIndex: initialCapacity must be a positive integer, got ${String(initialCapacity)}`);
    }
    this.#capacity = Math.max(MIN_CAPACITY_SLOTS, Math.ceil(initialCapacity / MAX_LOAD));
    this.#table = new Uint32Array(this.#capacity * WORDS_PER_SLOT);
    this.#accessed = new Uint8Array(Math.ceil(this.#capacity / 8));
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  /** Slots in the table. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Bytes of the typed arrays behind the table (all the memory it holds besides the object). */
  get bytes(): number {
    return this.#table.byteLength + this.#accessed.byteLength;
  }

  /** The handle stored for the key whose hash is `hash` and that `matches` accepts. */
  get(hash: number, matches: Matches): bigint | undefined {
    const slot = this.#find(tagOf(hash), matches);
    return slot === undefined ? undefined : this.#handle(slot);
  }

  /** Marks the entry as read since it was written (the cache reinserts such entries before eviction). */
  touch(hash: number, matches: Matches): boolean {
    const slot = this.#find(tagOf(hash), matches);
    if (slot === undefined) return false;
    this.#accessed[slot >>> 3]! |= 1 << (slot & 7);
    return true;
  }

  /** Whether the entry was touched since it was set. */
  accessed(hash: number, matches: Matches): boolean {
    const slot = this.#find(tagOf(hash), matches);
    return slot !== undefined && (this.#accessed[slot >>> 3]! & (1 << (slot & 7))) !== 0;
  }

  /**
   * Stores `handle` for the key (its access bit cleared). Returns the handle it replaces, if
   * the key was there.
   */
  set(hash: number, handle: bigint, matches: Matches): bigint | undefined {
    const tag = tagOf(hash);
    const existing = this.#find(tag, matches);
    if (existing !== undefined) {
      const old = this.#handle(existing);
      this.#write(existing, tag, handle, false);
      return old;
    }
    if (this.#size + 1 > this.#capacity * MAX_LOAD) this.#grow();
    this.#insert(tag, Number(handle >> 32n), Number(handle & 0xffffffffn), false);
    this.#size++;
    return undefined;
  }

  /** Removes the key's entry; returns its handle. */
  delete(hash: number, matches: Matches): bigint | undefined {
    const slot = this.#find(tagOf(hash), matches);
    if (slot === undefined) return undefined;
    const old = this.#handle(slot);
    this.#removeAt(slot);
    this.#size--;
    return old;
  }

  // ---- slot-level access, for the cache's hot paths (one probe per operation) -------------

  /** The slot holding the key's entry, or -1. A slot is valid until the next set or delete. */
  find(hash: number, matches: Matches): number {
    const slot = this.#find(tagOf(hash), matches);
    return slot === undefined ? -1 : slot;
  }

  /** The handle's high 32 bits at an occupied slot. */
  hiAt(slot: number): number {
    return this.#table[slot * 3 + 1]!;
  }

  /** The handle's low 32 bits at an occupied slot. */
  loAt(slot: number): number {
    return this.#table[slot * 3 + 2]!;
  }

  handleAt(slot: number): bigint {
    return this.#handle(slot as Slot);
  }

  accessedAt(slot: number): boolean {
    return (this.#accessed[slot >>> 3]! & (1 << (slot & 7))) !== 0;
  }

  /** Sets the access bit of an occupied slot (a read since the entry was written). */
  markAccessed(slot: number): void {
    this.#accessed[slot >>> 3]! |= 1 << (slot & 7);
  }

  /** Gives an occupied slot's entry a new handle (its key, and so its slot, stay); clears its access bit. */
  replaceAt(slot: number, handle: bigint): void {
    this.#write(slot as Slot, this.#table[slot * 3]!, handle, false);
  }

  /** Removes the entry at an occupied slot. */
  deleteAt(slot: number): void {
    if (this.#table[slot * 3] === 0) throw new RangeError(`KeyIndex.deleteAt: slot ${slot} is empty`);
    this.#removeAt(slot as Slot);
    this.#size--;
  }

  /**
   * Visits every entry exactly once; an entry for which `keep` returns false is removed. `keep`
   * may `replaceAt` its own slot, and must not set or delete otherwise. The walk starts after
   * an empty slot, so backward-shift deletion never moves an unvisited entry behind the walk
   * nor a visited one ahead of it. Returns the entries removed.
   */
  sweep(keep: (slot: number, hi: number, lo: number) => boolean): number {
    let start = 0;
    while (start < this.#capacity && this.#table[start * 3] !== 0) start++;
    if (start === this.#capacity) throw new Error('KeyIndex: a table below MAX_LOAD has an empty slot');
    let removed = 0;
    for (let i = 1; i <= this.#capacity; i++) {
      const slot = (start + i) % this.#capacity;
      // After a removal the next entry of the run shifts into this slot: look at it again.
      while (this.#table[slot * 3] !== 0 && !keep(slot, this.#table[slot * 3 + 1]!, this.#table[slot * 3 + 2]!)) {
        this.#removeAt(slot as Slot);
        this.#size--;
        removed++;
      }
    }
    return removed;
  }

  /** The table (tag, handle hi, handle lo per slot) and access bits, for a checkpoint: live views, write them before changing the index. */
  arrays(): { table: Uint32Array; accessed: Uint8Array; size: number } {
    return { table: this.#table, accessed: this.#accessed, size: this.#size };
  }

  /** An index over arrays from `arrays()` (a checkpoint read back); checks their shapes and counts the size. */
  static fromArrays(table: Uint32Array, accessed: Uint8Array): KeyIndex {
    const capacity = table.length / WORDS_PER_SLOT;
    if (!Number.isInteger(capacity) || capacity < MIN_CAPACITY_SLOTS || accessed.length !== Math.ceil(capacity / 8)) {
      throw new RangeError('KeyIndex.fromArrays: arrays of mismatched lengths');
    }
    const index = new KeyIndex(1);
    index.#capacity = capacity;
    index.#table = table;
    index.#accessed = accessed;
    let size = 0;
    for (let s = 0; s < capacity; s++) if (table[s * 3] !== 0) size++;
    index.#size = size;
    if (size + 1 > capacity * MAX_LOAD) index.#grow();
    return index;
  }

  /** Every entry's hash and handle (in table order; do not change the index meanwhile). */
  *entries(): IterableIterator<[hash: number, handle: bigint]> {
    for (let s = 0; s < this.#capacity; s++) {
      if (this.#table[s * 3] !== 0) yield [this.#table[s * 3]!, this.#handle(s as Slot)];
    }
  }

  clear(): void {
    this.#table.fill(0);
    this.#accessed.fill(0);
    this.#size = 0;
  }

  /** Checks the table's invariants (for tests): Robin Hood order, no lost entries, the size. */
  verify(): void {
    let n = 0;
    for (let s = 0; s < this.#capacity; s++) {
      const tag = this.#table[s * 3]!;
      if (tag === 0) continue;
      n++;
      // Every slot between an entry's home and its slot is occupied (lookups would stop early otherwise).
      for (let p = this.#home(tag); p !== s; p = this.#next(p)) {
        if (this.#table[p * 3] === 0) throw new Error(`KeyIndex: entry in slot ${s} is cut off from its home by an empty slot ${p}`);
      }
    }
    if (n !== this.#size) throw new Error(`KeyIndex: size ${this.#size}, counted ${n}`);
  }

  #home(tag: number): Slot {
    return Math.floor((tag * this.#capacity) / TWO_POW_32) as Slot;
  }

  #next(slot: number): Slot {
    return (slot + 1 === this.#capacity ? 0 : slot + 1) as Slot;
  }

  #distance(slot: number, tag: number): number {
    const home = this.#home(tag);
    return slot >= home ? slot - home : slot + this.#capacity - home;
  }

  #handle(slot: Slot): bigint {
    return (BigInt(this.#table[slot * 3 + 1]!) << 32n) | BigInt(this.#table[slot * 3 + 2]!);
  }

  #write(slot: Slot, tag: number, handle: bigint, accessed: boolean): void {
    this.#table[slot * 3] = tag;
    this.#table[slot * 3 + 1] = Number(handle >> 32n);
    this.#table[slot * 3 + 2] = Number(handle & 0xffffffffn);
    this.#setAccessed(slot, accessed);
  }

  #setAccessed(slot: number, on: boolean): void {
    if (on) this.#accessed[slot >>> 3]! |= 1 << (slot & 7);
    else this.#accessed[slot >>> 3]! &= ~(1 << (slot & 7));
  }

  #find(tag: number, matches: Matches): Slot | undefined {
    let slot = this.#home(tag);
    for (let dist = 0; ; dist++) {
      const t = this.#table[slot * 3]!;
      // Robin Hood order: past an entry closer to its home than we are to ours, ours is not here.
      if (t === 0 || this.#distance(slot, t) < dist) return undefined;
      if (t === tag && matches(this.#handle(slot))) return slot;
      slot = this.#next(slot);
    }
  }

  /** Robin Hood insertion: the entry farther from home takes the slot. */
  #insert(tag: number, hi: number, lo: number, accessed: boolean): void {
    let slot = this.#home(tag);
    let dist = 0;
    for (;;) {
      const t = this.#table[slot * 3]!;
      if (t === 0) {
        this.#table[slot * 3] = tag;
        this.#table[slot * 3 + 1] = hi;
        this.#table[slot * 3 + 2] = lo;
        this.#setAccessed(slot, accessed);
        return;
      }
      const theirs = this.#distance(slot, t);
      if (theirs < dist) {
        const [oh, ol, oa] = [this.#table[slot * 3 + 1]!, this.#table[slot * 3 + 2]!, (this.#accessed[slot >>> 3]! & (1 << (slot & 7))) !== 0];
        this.#table[slot * 3] = tag;
        this.#table[slot * 3 + 1] = hi;
        this.#table[slot * 3 + 2] = lo;
        this.#setAccessed(slot, accessed);
        tag = t;
        hi = oh;
        lo = ol;
        accessed = oa;
        dist = theirs;
      }
      slot = this.#next(slot);
      dist++;
    }
  }

  /** Backward-shift deletion: later entries of the run move one slot toward home. */
  #removeAt(slot: Slot): void {
    let hole = slot;
    for (let next = this.#next(hole); ; next = this.#next(next)) {
      const t = this.#table[next * 3]!;
      if (t === 0 || this.#distance(next, t) === 0) break;
      this.#table[hole * 3] = t;
      this.#table[hole * 3 + 1] = this.#table[next * 3 + 1]!;
      this.#table[hole * 3 + 2] = this.#table[next * 3 + 2]!;
      this.#setAccessed(hole, (this.#accessed[next >>> 3]! & (1 << (next & 7))) !== 0);
      hole = next;
    }
    this.#table[hole * 3] = 0;
    this.#setAccessed(hole, false);
  }

  #grow(): void {
    const [table, acc, capacity] = [this.#table, this.#accessed, this.#capacity];
    this.#capacity = Math.ceil(capacity * GROWTH);
    this.#table = new Uint32Array(this.#capacity * WORDS_PER_SLOT);
    this.#accessed = new Uint8Array(Math.ceil(this.#capacity / 8));
    for (let s = 0; s < capacity; s++) {
      if (table[s * 3] !== 0) this.#insert(table[s * 3]!, table[s * 3 + 1]!, table[s * 3 + 2]!, (acc[s >>> 3]! & (1 << (s & 7))) !== 0);
    }
  }
}

/** A key hash as stored: never 0 (0 marks an empty slot). */
function tagOf(hash: number): number {
  const h = hash >>> 0;
  return h === 0 ? 1 : h;
}

/**
 * FNV-1a over the key's bytes, then murmur3's finalizer: the table's home slot comes from the
 * hash's high bits, which plain FNV-1a spreads poorly for short keys. Stable across processes
 * (checkpoints store hashes).
 */
export function hashKey(key: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** hashKey's twin for string keys, over UTF-16 code units (no encoding on the hot path). */
export function hashString(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
