// minivm.conf's mailcmd is a shell command line MiniVM runs for each message. apply edits its
// minivm-send flags and the spool flush reuses them, both as shell words, never as text.
import shellQuote from 'shell-quote'

/** Whether a mailcmd's command word runs our mailer (on PATH, or by path to the executable). */
export function isMinivmSend(command: string): boolean {
  return /^minivm-send(\.js)?$/.test(command.split('/').at(-1) ?? '')
}

/** The words of a mailcmd, or undefined when it uses shell operators (pipes, redirects, globs...). */
export function mailcmdWords(mailcmd: string): string[] | undefined {
  const words: string[] = []
  for (const w of shellQuote.parse(mailcmd)) {
    if (typeof w !== 'string') return undefined
    words.push(w)
  }
  return words
}

/** The mailcmd that runs exactly these words. */
export const quoteMailcmd = (words: string[]): string => shellQuote.quote(words)
