// When to restart a crashed Asterisk, and when to give up so the orchestrator sees the failure.
// Pure: the supervisor feeds it crash times and uptime.
import { doublingDelay } from '../base/backoff.ts'

export interface RestartPolicy {
  firstDelayMs: number
  maxDelayMs: number
  /** An Asterisk that stayed up this long counts as healthy again: the delay starts over. */
  resetAfterMs: number
  /** This many crashes within `windowMs` is a crash loop. */
  maxCrashes: number
  windowMs: number
}

export const DEFAULT_POLICY: RestartPolicy = {
  firstDelayMs: 1_000,
  maxDelayMs: 30_000,
  resetAfterMs: 60_000,
  maxCrashes: 5,
  windowMs: 5 * 60_000,
}

export interface CrashHistory {
  /** Times of earlier crashes, oldest first. */
  crashes: number[]
  /** Consecutive quick crashes, which the delay doubles with. */
  streak: number
}

export type Decision =
  | { action: 'restart'; delayMs: number; history: CrashHistory }
  | { action: 'give-up'; reason: string; history: CrashHistory }

export function onCrash(
  history: CrashHistory,
  crashedAt: number,
  uptimeMs: number,
  policy: RestartPolicy = DEFAULT_POLICY,
): Decision {
  const crashes = [...history.crashes, crashedAt].filter((t) => crashedAt - t < policy.windowMs)
  const streak = uptimeMs >= policy.resetAfterMs ? 0 : history.streak + 1
  const next = { crashes, streak }
  if (crashes.length >= policy.maxCrashes) {
    return {
      action: 'give-up',
      reason: `${crashes.length} crashes within ${policy.windowMs / 60_000} minutes`,
      history: next,
    }
  }
  const delayMs = doublingDelay(streak, policy.firstDelayMs, policy.maxDelayMs)
  return { action: 'restart', delayMs, history: next }
}
