/**
 * Epoch domains (the ZNS-Slab allocator's Phase 3): scoped epoch lifetimes. The allocator's RAII wrappers become
 * `using` (Symbol.dispose); its thread-local implicit domain becomes an AsyncLocalStorage, so
 * `store.put(bytes)` inside `domain.run(fn)` allocates in the domain's epoch across awaits, and
 * concurrent requests never see each other's domain.
 *
 * - `store.epochDomainCreate()`: auto-closing (the web-request pattern). A fresh epoch; when the
 *   last user exits (or the domain is disposed with no user inside), the epoch closes and its
 *   zones reset. Its objects are scoped to it: flush() does not persist them.
 * - `store.epochDomainWrap(epoch)`: manual control over an existing epoch (the reusable-frame
 *   pattern). Exiting or disposing never closes it; `forceClose()` does.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ErrorCode, ZnsSlabError, assert } from '../errors.js';

/** What a domain needs from its store. */
export interface DomainHost {
  readonly domainContext: AsyncLocalStorage<EpochDomain>;
  /** Closes the epoch (zones reset); a no-op if it is already closed. */
  closeDomainEpoch(epoch: number): void;
  isEpochClosed(epoch: number): boolean;
}

/** A scope returned by `enter()`: disposing it exits once. */
export interface DomainScope extends Disposable {
  readonly domain: EpochDomain;
  exit(): void;
}

export class EpochDomain implements Disposable {
  readonly epoch: number;
  /** Closes its epoch when the last user exits. */
  readonly autoClose: boolean;
  private readonly host: DomainHost;
  private refs = 0;
  private disposed = false;

  /** Use `store.epochDomainCreate()` or `store.epochDomainWrap(epoch)`. */
  constructor(host: DomainHost, epoch: number, autoClose: boolean) {
    this.host = host;
    this.epoch = epoch;
    this.autoClose = autoClose;
  }

  /** Users inside the domain now. */
  get refCount(): number {
    return this.refs;
  }

  /** Its epoch is closed: it takes no puts and its handles are stale. */
  get closed(): boolean {
    return this.host.isEpochClosed(this.epoch);
  }

  /** One more user. Returns a scope whose disposal (or `exit()`) is that user leaving. */
  enter(): DomainScope {
    if (this.closed) {
      throw new ZnsSlabError(ErrorCode.EPOCH_CLOSED, `domain of epoch ${this.epoch} is closed: it cannot be entered`);
    }
    this.refs++;
    let left = false;
    const scope: DomainScope = {
      domain: this,
      exit: () => {
        if (left) throw new ZnsSlabError(ErrorCode.DOMAIN_UNBALANCED, `this scope of the domain of epoch ${this.epoch} has already exited`);
        left = true;
        this.exit();
      },
      [Symbol.dispose]: () => scope.exit(),
    };
    return scope;
  }

  /**
   * One user leaves. The last one out of an auto-closing domain closes its epoch. Exiting more
   * often than entering is ERR_DOMAIN_UNBALANCED, and changes nothing.
   */
  exit(): void {
    if (this.refs === 0) {
      throw new ZnsSlabError(ErrorCode.DOMAIN_UNBALANCED, `domain of epoch ${this.epoch} exited more often than it was entered`);
    }
    this.refs--;
    if (this.refs === 0 && this.autoClose) this.host.closeDomainEpoch(this.epoch);
  }

  /**
   * Runs `fn` inside the domain: entered for its duration (until its promise settles, if it
   * returns one), and the implicit domain of `store.put` in every async continuation of `fn`.
   */
  run<T>(fn: () => T): T {
    const scope = this.enter();
    let result: T;
    try {
      result = this.host.domainContext.run(this, fn);
    } catch (err) {
      scope.exit();
      throw err;
    }
    if (result instanceof Promise) {
      return result.finally(() => scope.exit()) as T;
    }
    scope.exit();
    return result;
  }

  /** Closes the epoch now, whoever is inside (explicit reclamation). Returns false if it already was. */
  forceClose(): boolean {
    if (this.closed) return false;
    this.host.closeDomainEpoch(this.epoch);
    assert(this.closed, 'forceClose closed the epoch');
    return true;
  }

  /**
   * End of the domain's lexical scope. An auto-closing domain with nobody inside closes now;
   * with users still inside (async work it started), the last exit closes it. A wrapping domain
   * is left open. Disposing twice is ERR_DOMAIN_DISPOSED.
   */
  [Symbol.dispose](): void {
    if (this.disposed) throw new ZnsSlabError(ErrorCode.DOMAIN_DISPOSED, `domain of epoch ${this.epoch} was already disposed`);
    this.disposed = true;
    if (this.autoClose && this.refs === 0 && !this.closed) this.host.closeDomainEpoch(this.epoch);
  }
}
