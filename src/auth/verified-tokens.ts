/**
 * Access tokens whose signature and claims were already verified, keyed by the token text itself: a token seen again
 * is answered from memory until its `exp`, without hashing it again. (fast-jwt's own cache keys by a SHA-256 of the
 * token, which costs about as much as the HMAC it saves.) The same text always verifies the same way — the secret,
 * algorithm, issuer and audience are fixed for the life of the process — so only expiry has to be checked on a hit.
 * Revocation does not depend on this: the caller and the session are checked on every request.
 */
export interface VerifiedClaims {
  /** Expiry, in seconds since the epoch (RFC 7519 `exp`, a required claim). */
  exp: number;
}

export class VerifiedTokens<Claims extends VerifiedClaims> {
  readonly #entries = new Map<string, Claims>();
  readonly #maxEntries: number;
  readonly #nowS: () => number;

  constructor({ maxEntries = 2000, nowS = () => Date.now() / 1000 }: { maxEntries?: number; nowS?: () => number } = {}) {
    this.#maxEntries = maxEntries;
    this.#nowS = nowS;
  }

  /** The claims of a token verified before and not expired since, or undefined (then verify it and `remember` it). */
  get(token: string): Claims | undefined {
    const claims = this.#entries.get(token);
    if (claims === undefined) return undefined;
    if (claims.exp > this.#nowS()) return claims;
    this.#entries.delete(token);
    return undefined;
  }

  remember(token: string, claims: Claims): void {
    if (this.#entries.size >= this.#maxEntries) {
      // Insertion order: the oldest token goes first (it is also the nearest to expiry).
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(token, claims);
  }

  get size(): number {
    return this.#entries.size;
  }
}
