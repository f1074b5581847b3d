/** The one shell-quoting rule (POSIX sh): a word in single quotes, each `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** As `shellQuote`, but words that need no quoting (flags, names, paths) stay readable in logs. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=-]+$/.test(word) ? word : shellQuote(word);
}
