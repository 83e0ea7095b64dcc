// The text a sender gets back when theirs was not delivered: by WebSMS (the ITSP refused it) or by
// the texts service (it expired, or the recipient had too many waiting). One wording for both.

/** A reason for a person: one line, short. */
export const oneLine = (s: string, max: number): string => {
  const line = s.replace(/\s+/g, ' ').trim()
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

export function noticeText(job: { to: string; body: string }, reason: string): string {
  return `⚠ Not delivered to ${job.to}: ${oneLine(reason, 160)}. Your text: “${oneLine(job.body, 60)}”`
}
