// Who is banned and until when: failed attempts counted per source address in a sliding window,
// a ban past the threshold, longer bans for repeat offenders. Pure: time comes in as an argument,
// nothing here touches the network, the disk or a timer (the service does).

export interface PolicyConfig {
  /** Failures within `windowMs` that ban an address. */
  threshold: number
  windowMs: number
  /** A first ban's length; each repeat is `repeatFactor` times the one before, at most `maxBanMs`. */
  banMs: number
  repeatFactor: number
  maxBanMs: number
  /**
   * Addresses whose failures (or past bans) are remembered at once. A flood of distinct
   * addresses (IPv6 gives an attacker plenty) evicts the ones seen first, so memory stays bounded
   * whatever the flood.
   */
  maxTracked: number
  /** Bans at once; past it the one ending soonest makes room. */
  maxBans: number
}

export interface Ban {
  address: string
  /** What the last counted failure was, e.g. "wrong password for alice". */
  reason: string
  /** Failures counted when it was banned. */
  count: number
  /** 1 for a first ban, 2 for the next within the repeat memory, ... */
  strike: number
  since: number
  until: number
}

/** What outlives a ban: how often the address was banned, until the policy forgets it. */
export interface History {
  strikes: number
  forgetAt: number
}

export interface Snapshot {
  bans: Ban[]
  records: [string, History][]
}

export interface Outcome {
  ban: Ban
  /** A ban ended early to stay within maxBans. */
  evicted?: Ban
}

/** A ban's length for its `strike`-th time: banMs, then times repeatFactor each time, capped. */
export function banLength(cfg: PolicyConfig, strike: number): number {
  return Math.min(cfg.maxBanMs, cfg.banMs * cfg.repeatFactor ** Math.max(0, strike - 1))
}

/** A ban's length as the log says it: 2 s, 20 min, 5 h, 7 days. */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000)
  if (s < 120) return `${s} s`
  if (s < 2 * 3600) return `${Math.round(s / 60)} min`
  if (s < 2 * 86400) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86400)} days`
}

/** Moves `key` to the end (most recent) of a Map used as an LRU list, and trims its head. */
function touch<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key)
  map.set(key, value)
  while (map.size > max) map.delete(map.keys().next().value!)
}

export class BanPolicy {
  readonly cfg: PolicyConfig
  /** Per address, the times of its failures in the window, oldest first, at most `threshold`; first seen first. */
  private readonly failures = new Map<string, number[]>()
  private readonly active = new Map<string, Ban>()
  private readonly records = new Map<string, History>()

  constructor(cfg: PolicyConfig) {
    this.cfg = cfg
  }

  /** A failed attempt from `address`: the ban it earned, if this one crossed the threshold. */
  failure(address: string, reason: string, now: number): Outcome | undefined {
    if (this.active.has(address)) return undefined
    const since = now - this.cfg.windowMs
    // Changed in place: a Map entry deleted and set again on every failure leaves V8 rebuilding
    // the Map's table over and over, which under a flood cost several MB of heap.
    let times = this.failures.get(address)
    if (!times) {
      times = []
      this.failures.set(address, times)
      // First seen first forgotten.
      if (this.failures.size > this.cfg.maxTracked) this.failures.delete(this.failures.keys().next().value!)
    }
    while (times.length && times[0]! <= since) times.shift()
    times.push(now)
    if (times.length < this.cfg.threshold) return undefined
    this.failures.delete(address)
    const past = this.records.get(address)
    const strike = past && past.forgetAt > now ? past.strikes + 1 : 1
    const until = now + banLength(this.cfg, strike)
    const ban: Ban = { address, reason, count: times.length, strike, since: now, until }
    touch(this.records, address, { strikes: strike, forgetAt: until + this.cfg.maxBanMs }, this.cfg.maxTracked)
    let evicted: Ban | undefined
    if (this.active.size >= this.cfg.maxBans) {
      evicted = [...this.active.values()].reduce((a, b) => (b.until < a.until ? b : a))
      this.active.delete(evicted.address)
    }
    this.active.set(address, ban)
    return evicted ? { ban, evicted } : { ban }
  }

  /** A successful login from `address`: its count starts again (a user who mistyped, then got it right). */
  success(address: string): void {
    this.failures.delete(address)
  }

  /** Ends the bans that are over at `now`, and forgets what is too old to matter; returns the ended bans. */
  expire(now: number): Ban[] {
    const ended: Ban[] = []
    for (const ban of this.active.values()) if (ban.until <= now) ended.push(ban)
    for (const ban of ended) this.active.delete(ban.address)
    for (const [address, r] of this.records) if (r.forgetAt <= now) this.records.delete(address)
    return ended
  }

  /** An administrator lifts a ban: the address starts with a clean slate. */
  lift(address: string): Ban | undefined {
    const ban = this.active.get(address)
    this.active.delete(address)
    this.records.delete(address)
    this.failures.delete(address)
    return ban
  }

  isBanned(address: string): boolean {
    return this.active.has(address)
  }

  bans(): Ban[] {
    return [...this.active.values()]
  }

  /** When the soonest ban ends. */
  nextExpiry(): number | undefined {
    let next: number | undefined
    for (const ban of this.active.values()) if (next === undefined || ban.until < next) next = ban.until
    return next
  }

  /** Addresses with failures counted right now: what the flood bound caps. */
  tracked(): number {
    return this.failures.size
  }

  snapshot(): Snapshot {
    return { bans: this.bans(), records: [...this.records] }
  }

  /** What a previous run saved: bans and records still in force at `now`; the rest is dropped. */
  restore(saved: Snapshot, now: number): void {
    for (const [address, r] of saved.records) if (r.forgetAt > now) touch(this.records, address, r, this.cfg.maxTracked)
    for (const ban of saved.bans.filter((b) => b.until > now).sort((a, b) => b.until - a.until))
      if (this.active.size < this.cfg.maxBans) this.active.set(ban.address, ban)
  }
}
