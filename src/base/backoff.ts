// Exponential backoff, the one formula every retry loop here uses: the Asterisk restarts, the
// WebSMS queue's lanes and the certificate checks.

/** The delay after the `attempt`-th failure in a row (1 = the first): `firstMs`, doubling, at most `maxMs`. */
export function doublingDelay(attempt: number, firstMs: number, maxMs: number): number {
  // 2**30 times any first delay is past any cap; the bound keeps the number finite.
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30)
  return Math.min(maxMs, firstMs * 2 ** exponent)
}
